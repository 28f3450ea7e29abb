//! `cfhost new-module NAME [--dir PATH]`: writes a module crate that builds with one
//! `cargo build --release --target wasm32-wasip2` and passes its own tests. It carries a copy
//! of the SDK and of the WIT this host speaks (`sdk/`), so it builds anywhere, against exactly
//! the contract of the host that made it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use cfhost_core::bindings::WIT_VERSION;

/// The command's arguments.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// The module's name: its crate, its `.wasm` and the callflow `module` it implements
    /// (lower case letters, digits and `_`, starting with a letter).
    pub name: String,
    /// Where to create the crate's directory (`<DIR>/<NAME>`).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// Each file of a new module: where it goes and its template (`{{name}}` and
/// `{{wit_version}}` are filled in).
const FILES: [(&str, &str); 11] = [
    ("Cargo.toml", include_str!("scaffold/Cargo.toml.in")),
    (
        ".cargo/config.toml",
        include_str!("scaffold/cargo-config.toml.in"),
    ),
    (".gitignore", "/target\n"),
    ("README.md", include_str!("scaffold/README.md.in")),
    ("src/lib.rs", include_str!("scaffold/lib.rs.in")),
    ("sdk/Cargo.toml", include_str!("scaffold/sdk-Cargo.toml.in")),
    (
        "sdk/src/lib.rs",
        include_str!("../../../../modules/sdk/src/lib.rs"),
    ),
    (
        "sdk/src/call.rs",
        include_str!("../../../../modules/sdk/src/call.rs"),
    ),
    (
        "sdk/src/errors.rs",
        include_str!("../../../../modules/sdk/src/errors.rs"),
    ),
    (
        "sdk/src/host.rs",
        include_str!("../../../../modules/sdk/src/host.rs"),
    ),
    (
        "sdk/src/testing.rs",
        include_str!("../../../../modules/sdk/src/testing.rs"),
    ),
];

/// The WIT, which the SDK reads from `sdk/wit/`.
const WIT: (&str, &str) = (
    "sdk/wit/callflow.wit",
    include_str!("../../../../wit/callflow.wit"),
);

pub fn run(options: Options) -> anyhow::Result<ExitCode> {
    if !is_module_name(&options.name) {
        anyhow::bail!(
            "`{}` cannot name a module: use lower case letters, digits and `_`, starting with a \
             letter (e.g. `caller_blocklist`)",
            options.name
        );
    }
    let root = options.dir.join(&options.name);
    if root.exists() {
        anyhow::bail!(
            "{} already exists: choose another name or --dir",
            root.display()
        );
    }
    for (file, template) in FILES.iter().chain([&WIT]) {
        let text = template
            .replace("{{name}}", &options.name)
            .replace("{{wit_version}}", WIT_VERSION);
        write_new(&root.join(file), &text)?;
    }
    println!("created {}", root.display());
    println!("next:");
    println!("  cd {}", root.display());
    println!("  cargo test");
    println!("  cargo build --release --target wasm32-wasip2");
    println!(
        "  cfhost module check target/wasm32-wasip2/release/{}.wasm",
        options.name
    );
    Ok(ExitCode::SUCCESS)
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Lower case letters, digits and `_`, starting with a letter: a crate name, a file name and
/// a callflow module name at once.
fn is_module_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scaffolded_module_is_under_30_lines_of_code() {
        let (_, lib) = FILES
            .iter()
            .find(|(file, _)| *file == "src/lib.rs")
            .unwrap();
        let module = lib.split("#[cfg(test)]").next().unwrap();
        let code = module
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("//"))
            .count();
        assert!(code < 30, "{code} lines of code:\n{module}");
    }

    #[test]
    fn module_names_are_crate_file_and_callflow_names() {
        assert!(is_module_name("caller_blocklist"));
        assert!(is_module_name("tod2"));
        for bad in ["", "2fa", "Caller", "caller-blocklist", "../x", "a b"] {
            assert!(!is_module_name(bad), "{bad}");
        }
    }
}
