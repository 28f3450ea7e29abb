//! Checks every node of a callflow against the module it names, when the callflow loads.

use std::fmt;
use std::path::PathBuf;

use crate::registry::ModuleView;

use super::{Callflow, CallflowError, Child};

/// A node that names no loaded module: at run time it is skipped, as KAZOO does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownModule {
    pub file: PathBuf,
    /// The node's place in its document, e.g. `flow.children._`.
    pub path: String,
    pub module: String,
}

impl fmt::Display for UnknownModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: unknown module `{}`; the node will be skipped",
            self.file.display(),
            self.path,
            self.module
        )
    }
}

/// Checks each node's `data` against its module's JSON Schema. Returns warnings (nodes that
/// name no loaded module: they are skipped at run time, as KAZOO does) or the first node whose
/// data breaks its module's schema.
pub fn validate_callflow(
    callflow: &Callflow,
    modules: ModuleView<'_>,
) -> Result<Vec<UnknownModule>, CallflowError> {
    let Child::Node(root) = &callflow.flow else {
        return Ok(Vec::new());
    };
    let mut warnings = Vec::new();
    for node in root.walk() {
        let Some(module) = modules.get(&node.module) else {
            warnings.push(UnknownModule {
                file: callflow.source.clone(),
                path: node.path.clone(),
                module: node.module.clone(),
            });
            continue;
        };
        module
            .check_data(&node.data)
            .map_err(|errors| CallflowError::Data {
                file: callflow.source.clone(),
                path: node.path.clone(),
                module: node.module.clone(),
                errors,
            })?;
    }
    Ok(warnings)
}
