//! Checks every node of a callflow against the module it names, when the callflow loads.

use crate::registry::ModuleView;

use super::{Callflow, CallflowError, Child};

/// Checks each node's `data` against its module's JSON Schema. Returns warnings (nodes that
/// name no loaded module: they are skipped at run time, as KAZOO does) or the first node whose
/// data breaks its module's schema.
pub fn validate_callflow(
    callflow: &Callflow,
    modules: ModuleView<'_>,
) -> Result<Vec<String>, CallflowError> {
    let Child::Node(root) = &callflow.flow else {
        return Ok(Vec::new());
    };
    let mut warnings = Vec::new();
    for node in root.walk() {
        let Some(module) = modules.get(&node.module) else {
            warnings.push(format!(
                "{}: {}: unknown module `{}`; the node will be skipped",
                callflow.source.display(),
                node.path,
                node.module
            ));
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
