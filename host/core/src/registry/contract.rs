//! Whether a component speaks one of this host's contracts: built against a version of the
//! `cfhost:callflow` WIT package the host runs (0.2.x or 0.3.x, [`World`]), and exporting the
//! `callflow-module` world's functions. Checked before linking, so that the error says what is
//! wrong rather than which import failed.

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::bindings::{WIT_PACKAGE, WIT_VERSION, World};

/// The functions the `callflow-module` world exports (in every release).
const WORLD_EXPORTS: [&str; 3] = ["describe", "handle", "on-termination"];

/// Why a component does not speak the contract.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error(
        "built against {WIT_PACKAGE}@{found}, which this host (speaking @{WIT_VERSION}, and \
         @{} for older modules) cannot run: rebuild it against the WIT this host ships",
        crate::bindings::v0_2::WIT_VERSION
    )]
    IncompatibleVersion { found: String },
    #[error(
        "built against two versions of {WIT_PACKAGE} at once (@{first} and @{second}): \
         rebuild it against one"
    )]
    MixedVersions { first: String, second: String },
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

/// What a component speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    /// The release whose world it implements.
    pub world: World,
    /// The version of the package it imports (`None` when it imports nothing of it, which only
    /// a 0.2 module can: a 0.3 module always imports the call resource).
    pub built_against: Option<String>,
}

/// Checks `component`'s imports of our package for their version, then its exports.
pub fn check(engine: &Engine, component: &Component) -> Result<Contract, ContractError> {
    let ty = component.component_type();
    let mut built_against: Option<String> = None;
    let mut world = None;
    for (name, _) in ty.imports(engine) {
        let Some(found) = package_version(name) else {
            continue;
        };
        let Some(speaks) = World::of_version(found) else {
            return Err(ContractError::IncompatibleVersion {
                found: found.to_string(),
            });
        };
        match (&built_against, world) {
            (Some(first), Some(earlier)) if earlier != speaks => {
                return Err(ContractError::MixedVersions {
                    first: first.clone(),
                    second: found.to_string(),
                });
            }
            _ => {
                world = Some(speaks);
                built_against = Some(found.to_string());
            }
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
    Ok(Contract {
        world: world.unwrap_or(World::V0_2),
        built_against,
    })
}

/// The version in an import name of our package: `cfhost:callflow/types@0.2.0` → `0.2.0`.
fn package_version(import: &str) -> Option<&str> {
    let rest = import.strip_prefix(WIT_PACKAGE)?.strip_prefix('/')?;
    Some(rest.split_once('@').map_or("", |(_, version)| version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_names_give_the_package_version() {
        assert_eq!(
            package_version("cfhost:callflow/types@1.0.0"),
            Some("1.0.0")
        );
        assert_eq!(package_version("cfhost:callflow/call"), Some(""));
        assert_eq!(package_version("wasi:io/streams@0.2.0"), None);
        assert_eq!(
            World::of_version(""),
            None,
            "an unversioned package is not ours"
        );
    }
}
