//! Loaded modules, by callflow module name. Each is checked ([`contract`]: size, WIT version,
//! world), compiled and linked once, describes itself once (name, version, data schema,
//! capabilities), must be granted every capability it declares, and gets its schema compiled
//! into a validator, so a callflow can be checked when it loads rather than when a call fails.

pub mod contract;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::bindings::{CallflowModulePre, Capability, Description};
use crate::engine::{Provenance, Sandbox};
use crate::imports::InstanceState;
use crate::policy::{Limits, Policy, capability_name};

/// The shipped modules, built by `host/build.rs` and embedded in the binary.
const EMBEDDED: [(&str, &[u8]); 4] = [
    (
        "missed_call_alert",
        include_bytes!(concat!(
            env!("CFHOST_MODULES_DIR"),
            "/missed_call_alert.wasm"
        )),
    ),
    (
        "notification",
        include_bytes!(concat!(env!("CFHOST_MODULES_DIR"), "/notification.wasm")),
    ),
    (
        "user",
        include_bytes!(concat!(env!("CFHOST_MODULES_DIR"), "/user.wasm")),
    ),
    (
        "voicemail",
        include_bytes!(concat!(env!("CFHOST_MODULES_DIR"), "/voicemail.wasm")),
    ),
];

/// Where this build put every compiled guest module, test fixtures included (for tests and
/// benchmarks; the binary itself only needs the embedded ones).
pub const BUILT_MODULES_DIR: &str = env!("CFHOST_MODULES_DIR");

/// A component to load and where it came from.
#[derive(Debug, Clone)]
pub struct ModuleSource {
    /// `embedded:<name>` or the file's path.
    pub origin: String,
    pub bytes: Arc<[u8]>,
    /// Shipped with the host: granted what it declares unless the configuration says
    /// otherwise. Modules dropped in by operators are granted only what is configured.
    pub shipped: bool,
}

/// The shipped modules.
pub fn embedded_modules() -> Vec<ModuleSource> {
    EMBEDDED
        .iter()
        .map(|(name, bytes)| ModuleSource {
            origin: format!("embedded:{name}"),
            bytes: Arc::from(*bytes),
            shipped: true,
        })
        .collect()
}

/// Every `*.wasm` file in `dir`, in file-name order.
pub fn modules_in_dir(dir: &Path) -> std::io::Result<Vec<ModuleSource>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            Ok(ModuleSource {
                origin: path.display().to_string(),
                bytes: Arc::from(std::fs::read(&path)?),
                shipped: false,
            })
        })
        .collect()
}

/// A module that could not be loaded; the others load regardless.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("{origin}: the file is {size} bytes; modules may be at most {limit} bytes")]
    TooLarge {
        origin: String,
        size: usize,
        limit: usize,
    },
    #[error("{origin}: not a WebAssembly component: {reason}")]
    NotAComponent { origin: String, reason: String },
    #[error("{origin}: {0}", .source)]
    Contract {
        origin: String,
        source: contract::ContractError,
    },
    #[error("{origin}: not a callflow module component: {reason}")]
    NotAModule { origin: String, reason: String },
    #[error(
        "{origin}: module `{name}` asks for capability `{capability}`, which is not granted to \
         it (grant it under [modules.{name}] capabilities)"
    )]
    NotGranted {
        origin: String,
        name: String,
        capability: &'static str,
    },
    #[error("{origin}: `describe` failed: {reason}")]
    Describe { origin: String, reason: String },
    #[error("{origin}: module `{name}` has an invalid data schema: {reason}")]
    Schema {
        origin: String,
        name: String,
        reason: String,
    },
}

/// One loaded module, ready to instantiate.
pub struct LoadedModule {
    description: Description,
    origin: String,
    name: Arc<str>,
    capabilities: Arc<[Capability]>,
    pre: CallflowModulePre<InstanceState>,
    validator: jsonschema::Validator,
    provenance: Provenance,
}

impl LoadedModule {
    /// The module's self-description.
    pub fn description(&self) -> &Description {
        &self.description
    }

    /// The callflow `module` name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// What the module asked for.
    pub fn capabilities(&self) -> &Arc<[Capability]> {
        &self.capabilities
    }

    /// Whether it was compiled at load or mapped from the compiled-component cache.
    pub fn provenance(&self) -> Provenance {
        self.provenance
    }

    /// The pre-instantiated component.
    pub fn pre(&self) -> &CallflowModulePre<InstanceState> {
        &self.pre
    }

    /// Checks node data (JSON text) against the module's schema; the error lists each
    /// offending place as a JSON pointer into `data` with what is wrong there.
    pub fn check_data(&self, data: &str) -> Result<(), String> {
        let data: Value = serde_json::from_str(data).map_err(|e| e.to_string())?;
        let errors: Vec<String> = self
            .validator
            .iter_errors(&data)
            .map(|e| {
                format!(
                    "at data{}: {e}",
                    pointer_or_root(e.instance_path().as_str())
                )
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

fn pointer_or_root(pointer: &str) -> String {
    if pointer.is_empty() {
        String::new()
    } else {
        pointer.to_string()
    }
}

/// The modules a call can use, by name.
#[derive(Default)]
pub struct Registry {
    modules: BTreeMap<String, Arc<LoadedModule>>,
}

impl Registry {
    /// Loads `sources` in order; a later module with the same name replaces an earlier one
    /// (so a module directory overrides the embedded modules). Returns the modules that
    /// loaded and an error for each that did not.
    pub async fn load(
        sandbox: &Sandbox,
        policy: &Policy,
        sources: impl IntoIterator<Item = ModuleSource>,
    ) -> (Registry, Vec<ModuleError>) {
        let mut registry = Registry::default();
        let mut errors = Vec::new();
        for source in sources {
            match load_one(sandbox, policy, source).await {
                Ok(module) => {
                    if let Some(replaced) = registry.modules.get(&*module.name) {
                        tracing::info!(
                            module = &*module.name,
                            "{} replaces {}",
                            module.origin,
                            replaced.origin
                        );
                    }
                    registry
                        .modules
                        .insert(module.name.to_string(), Arc::new(module));
                }
                Err(e) => errors.push(e),
            }
        }
        (registry, errors)
    }

    /// The loaded modules, by name.
    pub fn modules(&self) -> impl Iterator<Item = &Arc<LoadedModule>> {
        self.modules.values()
    }

    /// The module with this callflow name.
    pub fn get(&self, name: &str) -> Option<&Arc<LoadedModule>> {
        self.modules.get(name)
    }
}

/// How long a module's `describe` may run at load time.
const DESCRIBE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

async fn load_one(
    sandbox: &Sandbox,
    policy: &Policy,
    source: ModuleSource,
) -> Result<LoadedModule, ModuleError> {
    let origin = source.origin;
    if source.bytes.len() > policy.max_wasm_bytes {
        return Err(ModuleError::TooLarge {
            origin,
            size: source.bytes.len(),
            limit: policy.max_wasm_bytes,
        });
    }
    let (component, provenance) =
        sandbox
            .compile(&source.bytes)
            .map_err(|e| ModuleError::NotAComponent {
                origin: origin.clone(),
                reason: format!("{e:#}"),
            })?;
    contract::check(sandbox.engine(), &component).map_err(|source| ModuleError::Contract {
        origin: origin.clone(),
        source,
    })?;
    let pre = sandbox
        .link(&component)
        .map_err(|e| ModuleError::NotAModule {
            origin: origin.clone(),
            reason: format!("{e:#}"),
        })?;
    let describe_error = |e: wasmtime::Error| ModuleError::Describe {
        origin: origin.clone(),
        reason: format!("{e:#}"),
    };
    let limits = Arc::new(Limits::default());
    let state = InstanceState::new(
        None,
        Arc::from("(loading)"),
        Arc::from([]),
        Arc::clone(&limits),
        DESCRIBE_DEADLINE,
    );
    let clock = Arc::clone(state.clock());
    let mut store = sandbox.store(&limits, state);
    let describe = async {
        let instance = pre.instantiate_async(&mut store).await?;
        instance.call_describe(&mut store).await
    };
    let description = clock.time(describe).await.map_err(describe_error)?;
    if let Some(missing) = policy.grants.missing_for_module(
        &description.name,
        &description.capabilities,
        source.shipped,
    ) {
        return Err(ModuleError::NotGranted {
            origin,
            name: description.name,
            capability: capability_name(missing),
        });
    }
    let schema_error = |reason: String| ModuleError::Schema {
        origin: origin.clone(),
        name: description.name.clone(),
        reason,
    };
    let schema: Value =
        serde_json::from_str(&description.data_schema).map_err(|e| schema_error(e.to_string()))?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| schema_error(e.to_string()))?;
    Ok(LoadedModule {
        name: Arc::from(description.name.as_str()),
        capabilities: Arc::from(description.capabilities.clone()),
        description,
        origin,
        pre,
        validator,
        provenance,
    })
}
