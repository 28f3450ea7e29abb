//! `cfhost new-module NAME [--lang rust|python|javascript] [--dir PATH]`: writes a module
//! project that passes its own tests and builds the component with one command: a Rust crate
//! (`cargo build --release --target wasm32-wasip2`, the default), a Python project
//! (componentize-py, tests with pytest) or a JavaScript one (componentize-js, tests with
//! `node --test`). Each carries the WIT this host speaks and the language's test helper (the
//! SDK for Rust), so it builds anywhere, against exactly the contract of the host that made it,
//! with pinned tool versions.

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
    /// Where to create the project's directory (`<DIR>/<NAME>`).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The language the module is written in.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
}

/// A language a module can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate with the cfhost SDK, built for `wasm32-wasip2`.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Javascript,
}

/// Python names a Python module cannot take: keywords, and the modules the project imports.
const PYTHON_TAKEN: [&str; 40] = [
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "class",
    "continue",
    "def",
    "del",
    "elif",
    "else",
    "except",
    "finally",
    "for",
    "from",
    "global",
    "if",
    "import",
    "in",
    "is",
    "lambda",
    "nonlocal",
    "not",
    "or",
    "pass",
    "raise",
    "return",
    "try",
    "while",
    "with",
    "yield",
    "json",
    "types",
    "wit_world",
    "cfhost_testing",
    "conftest",
    "componentize_py_types",
    "test",
    "sys",
];

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

/// Each file of a new Python module (`{{name}}` is filled in paths too).
const PYTHON_FILES: [(&str, &str); 8] = [
    ("{{name}}.py", include_str!("scaffold/python/module.py.in")),
    (
        "test_{{name}}.py",
        include_str!("scaffold/python/test_module.py.in"),
    ),
    (
        "conftest.py",
        include_str!("scaffold/python/conftest.py.in"),
    ),
    (
        "cfhost_testing.py",
        include_str!("../../../../modules/python/sdk/cfhost_testing.py"),
    ),
    (
        "requirements.txt",
        include_str!("../../../../modules/python/requirements.txt"),
    ),
    ("README.md", include_str!("scaffold/python/README.md.in")),
    (".gitignore", include_str!("scaffold/python/gitignore.in")),
    (
        "wit/callflow.wit",
        include_str!("../../../../wit/callflow.wit"),
    ),
];

/// Each file of a new JavaScript module.
const JAVASCRIPT_FILES: [(&str, &str); 9] = [
    (
        "{{name}}.js",
        include_str!("scaffold/javascript/module.js.in"),
    ),
    (
        "{{name}}.test.js",
        include_str!("scaffold/javascript/module.test.js.in"),
    ),
    (
        "package.json",
        include_str!("scaffold/javascript/package.json.in"),
    ),
    (
        "cfhost/testing.js",
        include_str!("../../../../modules/javascript/sdk/testing.js"),
    ),
    (
        "cfhost/hooks.js",
        include_str!("../../../../modules/javascript/sdk/hooks.js"),
    ),
    (
        "cfhost/register.js",
        include_str!("../../../../modules/javascript/sdk/register.js"),
    ),
    (
        "README.md",
        include_str!("scaffold/javascript/README.md.in"),
    ),
    (
        ".gitignore",
        include_str!("scaffold/javascript/gitignore.in"),
    ),
    (
        "wit/callflow.wit",
        include_str!("../../../../wit/callflow.wit"),
    ),
];

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
    if options.lang == Lang::Python && PYTHON_TAKEN.contains(&options.name.as_str()) {
        anyhow::bail!(
            "`{}` cannot name a Python module: it is a keyword or a module the project imports",
            options.name
        );
    }
    let files: Vec<&(&str, &str)> = match options.lang {
        Lang::Rust => FILES.iter().chain([&WIT]).collect(),
        Lang::Python => PYTHON_FILES.iter().collect(),
        Lang::Javascript => JAVASCRIPT_FILES.iter().collect(),
    };
    let fill = |text: &str| {
        text.replace("{{name}}", &options.name)
            .replace("{{wit_version}}", WIT_VERSION)
    };
    for (file, template) in files {
        write_new(&root.join(fill(file)), &fill(template))?;
    }
    println!("created {}", root.display());
    println!("next:");
    println!("  cd {}", root.display());
    let name = &options.name;
    let steps = match options.lang {
        Lang::Rust => vec![
            "cargo test".to_string(),
            "cargo build --release --target wasm32-wasip2".to_string(),
            format!("cfhost module check target/wasm32-wasip2/release/{name}.wasm"),
        ],
        Lang::Python => vec![
            "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt".to_string(),
            ".venv/bin/pytest".to_string(),
            format!(
                ".venv/bin/componentize-py -d wit -w callflow-module componentize {name} -o \
                 {name}.wasm"
            ),
            format!("cfhost module check {name}.wasm"),
        ],
        Lang::Javascript => vec![
            "npm install".to_string(),
            "npm test".to_string(),
            "npm run build".to_string(),
            format!("cfhost module check {name}.wasm"),
        ],
    };
    for step in steps {
        println!("  {step}");
    }
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
    fn a_python_keyword_or_an_imported_module_cannot_name_a_python_module() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["class", "json", "wit_world"] {
            let options = Options {
                name: name.to_string(),
                dir: dir.path().to_path_buf(),
                lang: Lang::Python,
            };
            let error = run(options).unwrap_err().to_string();
            assert!(error.contains("cannot name a Python module"), "{error}");
            assert!(
                !dir.path().join(name).exists(),
                "{name}: nothing is written"
            );
        }
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
