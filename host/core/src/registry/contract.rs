//! Whether a component speaks this host's contract: built against a compatible version of the
//! `cfhost:callflow` WIT package, and exporting the `callflow-module` world's functions. Checked
//! before linking, so that the error says what is wrong rather than which import failed.

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::bindings::{WIT_PACKAGE, WIT_VERSION};

/// The functions the `callflow-module` world exports.
const WORLD_EXPORTS: [&str; 3] = ["describe", "handle", "on-termination"];

/// Why a component does not speak the contract.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error(
        "built against {WIT_PACKAGE}@{found}, which this host (speaking @{WIT_VERSION}) cannot \
         run: rebuild it against the WIT this host ships"
    )]
    IncompatibleVersion { found: String },
    #[error(
        "exports the wrong world: `callflow-module` needs {}, missing {}; it exports [{}]",
        WORLD_EXPORTS.join(", "),
        missing.join(", "),
        exports.join(", ")
    )]
    WrongWorld {
        missing: Vec<String>,
        exports: Vec<String>,
    },
}

/// Checks `component`'s imports of our package for their version, then its exports. Returns
/// the version of the package it was built against (`None` when it imports nothing of it).
pub fn check(engine: &Engine, component: &Component) -> Result<Option<String>, ContractError> {
    let ty = component.component_type();
    let mut built_against = None;
    for (name, _) in ty.imports(engine) {
        if let Some(found) = package_version(name) {
            if !compatible(found, WIT_VERSION) {
                return Err(ContractError::IncompatibleVersion {
                    found: found.to_string(),
                });
            }
            built_against = Some(found.to_string());
        }
    }
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let missing: Vec<String> = WORLD_EXPORTS
        .iter()
        .filter(|wanted| !exports.iter().any(|e| e == *wanted))
        .map(ToString::to_string)
        .collect();
    if !missing.is_empty() {
        return Err(ContractError::WrongWorld { missing, exports });
    }
    Ok(built_against)
}

/// The version in an import name of our package: `cfhost:callflow/types@0.2.0` → `0.2.0`.
fn package_version(import: &str) -> Option<&str> {
    let rest = import.strip_prefix(WIT_PACKAGE)?.strip_prefix('/')?;
    Some(rest.split_once('@').map_or("", |(_, version)| version))
}

/// Semver compatibility: the same major version, or for 0.x the same minor version.
fn compatible(found: &str, ours: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (parse(found), parse(ours)) {
        (Some((0, found_minor)), Some((0, our_minor))) => found_minor == our_minor,
        (Some((found_major, _)), Some((our_major, _))) => found_major == our_major,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_compatible_by_semver() {
        assert!(compatible("0.2.0", "0.2.0"));
        assert!(compatible("0.2.7", "0.2.0"));
        assert!(!compatible("0.1.0", "0.2.0"));
        assert!(!compatible("1.0.0", "0.2.0"));
        assert!(compatible("1.4.0", "1.0.0"));
        assert!(!compatible("2.0.0", "1.0.0"));
        assert!(
            !compatible("", "0.2.0"),
            "an unversioned package is not ours"
        );
        assert_eq!(
            package_version("cfhost:callflow/types@1.0.0"),
            Some("1.0.0")
        );
        assert_eq!(package_version("wasi:io/streams@0.2.0"), None);
    }
}
