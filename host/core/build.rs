//! Builds every guest crate under `modules/` for `wasm32-wasip2`, so that a plain
//! `cargo build` or `cargo test` of the host can never run against stale or missing modules.
//! The shipped modules (the guest crates whose manifest says `[package.metadata.cfhost]
//! shipped = true`) are embedded into the runtime through `$OUT_DIR/shipped.rs`; the directory
//! with every built module is exported as `CFHOST_MODULES_DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let modules = manifest_dir.join("../../modules");
    let wit = manifest_dir.join("../../wit");
    let target_dir = cargo_target_root().join("wasm-modules");

    watch(&wit);
    watch(&modules);

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    // From the guests' directory, so that their `.cargo/config.toml` applies.
    build
        .current_dir(&modules)
        .arg("build")
        .arg("--release")
        .arg("--target")
        .arg(WASM_TARGET)
        .arg("--manifest-path")
        .arg(modules.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags, wrappers (clippy) and target do not apply to the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .expect("cannot run cargo to build the guest modules");
    if !status.success() {
        panic!(
            "building the guest modules under {} failed (cargo's error is above); if it \
             mentions a missing `core` or `std`, run `rustup target add {WASM_TARGET}`",
            modules.display()
        );
    }
    let out = target_dir.join(WASM_TARGET).join("release");
    println!("cargo:rustc-env=CFHOST_MODULES_DIR={}", out.display());
    write_shipped(&modules, &out);
}

/// Writes `$OUT_DIR/shipped.rs`: `SHIPPED`, the name and bytes of every shipped module, from
/// the guest crates directly under `modules/` whose manifest marks them shipped.
fn write_shipped(modules: &Path, built: &Path) {
    let mut shipped = Vec::new();
    for entry in std::fs::read_dir(modules)
        .expect("modules/ is readable")
        .flatten()
    {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let manifest: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        let package = &manifest["package"];
        let is_shipped = package
            .get("metadata")
            .and_then(|m| m.get("cfhost"))
            .and_then(|m| m.get("shipped"))
            .and_then(toml::Value::as_bool)
            .unwrap_or(false);
        if is_shipped {
            let name = package["name"]
                .as_str()
                .expect("a package name")
                .to_string();
            shipped.push(name.replace('-', "_"));
        }
    }
    shipped.sort();
    assert!(
        !shipped.is_empty(),
        "no guest crate under modules/ is marked shipped"
    );
    let entries: Vec<String> = shipped
        .iter()
        .map(|name| {
            let file = built.join(format!("{name}.wasm"));
            format!(
                "    ({name:?}, include_bytes!({:?})),",
                file.display().to_string()
            )
        })
        .collect();
    let code = format!(
        "/// The shipped modules: name and component bytes.\n\
         const SHIPPED: [(&str, &[u8]); {}] = [\n{}\n];\n",
        entries.len(),
        entries.join("\n")
    );
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("shipped.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}

/// The root of the cargo target directory this build writes into (`OUT_DIR` is
/// `<root>[/<triple>]/<profile>/build/<pkg>-<hash>/out`).
fn cargo_target_root() -> PathBuf {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let build_dir = out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .expect("OUT_DIR is inside a `build` directory");
    let profile_dir = build_dir.parent().unwrap();
    let root = profile_dir.parent().unwrap();
    // With `--target <triple>` there is one more level.
    if root.join("CACHEDIR.TAG").exists() || root.parent().is_none() {
        root.to_path_buf()
    } else {
        root.parent().unwrap().to_path_buf()
    }
}

/// Reruns this script when a source file under `dir` changes (skipping build output).
fn watch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                watch(&path);
            }
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
