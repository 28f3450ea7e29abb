//! Loaded modules, by callflow module name. Each is checked ([`contract`]: size, WIT version,
//! world), compiled and linked once, describes itself once (name, version, data schema,
//! capabilities), must be granted every capability it declares, and gets its schema compiled
//! into a validator, so a callflow can be checked when it loads rather than when a call fails.

pub mod contract;
mod set;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use set::{ModuleSet, ModuleView};

use crate::bindings::{Description, World};
use crate::engine::{ModulePre, Provenance, Sandbox};
use crate::files::is_plain_name;
use crate::imports::InstanceState;
use crate::policy::{Capability, Lifecycle, Limits, Policy};

// The shipped modules, built by `host/core/build.rs` and embedded in the binary:
// `const SHIPPED: [(&str, &[u8]); N]`, one entry per guest crate whose manifest says
// `[package.metadata.cfhost] shipped = true` (the one place the list is written).
include!(concat!(env!("OUT_DIR"), "/shipped.rs"));

/// The names of the shipped modules.
pub fn shipped_names() -> impl Iterator<Item = &'static str> {
    SHIPPED.iter().map(|(name, _)| *name)
}

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
    SHIPPED
        .iter()
        .map(|(name, bytes)| ModuleSource {
            origin: format!("embedded:{name}"),
            bytes: Arc::from(*bytes),
            shipped: true,
        })
        .collect()
}

/// Why `origin` did not compile: not a component, or (as wasmtime says when a memory's
/// minimum is past the pool's slot) a memory at start larger than the limit.
fn compile_error(origin: &str, source: wasmtime::Error) -> ModuleError {
    let text = format!("{source:#}");
    match text.split_once("memory has a minimum byte size of ") {
        Some((_, detail)) if text.contains("does not fit in pooling allocator") => {
            ModuleError::MemoryAtStart {
                origin: origin.to_string(),
                detail: format!("a minimum of {detail}"),
            }
        }
        _ => ModuleError::NotAComponent {
            origin: origin.to_string(),
            source,
        },
    }
}

/// Every `*.wasm` file in `dir`, in file-name order (none when `dir` does not exist).
pub fn modules_in_dir(dir: &Path) -> std::io::Result<Vec<ModuleSource>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
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
    #[error(
        "{origin}: the file is {size} bytes; modules may be at most {limit} bytes ([loading] \
         max_wasm_kib)"
    )]
    TooLarge {
        origin: String,
        size: usize,
        limit: usize,
    },
    #[error("{origin}: not a WebAssembly component: {source:#}")]
    NotAComponent {
        origin: String,
        #[source]
        source: wasmtime::Error,
    },
    #[error("{origin}: {0}", .source)]
    Contract {
        origin: String,
        source: contract::ContractError,
    },
    #[error(
        "{origin}: its memory at start is larger than an instance may have: {detail}; raise \
         [limits] memory_mib (a Python module starts at about 13 MiB, a JavaScript one at \
         about 9 MiB)"
    )]
    MemoryAtStart { origin: String, detail: String },
    #[error("{origin}: not a callflow module component: {source:#}")]
    NotAModule {
        origin: String,
        #[source]
        source: wasmtime::Error,
    },
    #[error(
        "{origin}: module `{name}` asks for capability `{capability}`, which is not granted to \
         it (grant it under [modules.{name}] capabilities, or for one account under \
         [accounts.<id>.modules.{name}] capabilities)"
    )]
    NotGranted {
        origin: String,
        name: String,
        capability: Capability,
    },
    #[error("{origin}: `describe` failed: {source:#}")]
    Describe {
        origin: String,
        #[source]
        source: wasmtime::Error,
    },
    #[error(
        "{origin}: the module describes itself as `{name}`: a module name is made of letters, \
         digits, `-` and `_`"
    )]
    BadName { origin: String, name: String },
    #[error("{origin}: module `{name}` has an invalid data schema: {reason}")]
    Schema {
        origin: String,
        name: String,
        reason: String,
    },
    #[error("{origin}: `{name}` is a system module; an account's module cannot take its name")]
    SystemName { origin: String, name: String },
    #[error("{origin}: cannot read: {source}")]
    Unreadable {
        origin: String,
        #[source]
        source: std::io::Error,
    },
}

impl ModuleError {
    /// The file (or `embedded:<name>`) the module came from.
    pub fn origin(&self) -> &str {
        match self {
            ModuleError::TooLarge { origin, .. }
            | ModuleError::NotAComponent { origin, .. }
            | ModuleError::MemoryAtStart { origin, .. }
            | ModuleError::Contract { origin, .. }
            | ModuleError::NotAModule { origin, .. }
            | ModuleError::NotGranted { origin, .. }
            | ModuleError::Describe { origin, .. }
            | ModuleError::BadName { origin, .. }
            | ModuleError::Schema { origin, .. }
            | ModuleError::SystemName { origin, .. }
            | ModuleError::Unreadable { origin, .. } => origin,
        }
    }
}

/// A place where node data breaks a module's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    /// A JSON pointer into the node's `data` (empty for the object itself).
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

impl std::fmt::Display for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at data{}: {}", self.pointer, self.message)
    }
}

/// A module that was not loaded, and whether an earlier version from the same file keeps
/// serving in its place.
#[derive(Debug)]
pub struct Rejection {
    pub error: ModuleError,
    pub kept_previous: bool,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)?;
        if self.kept_previous {
            write!(f, " (the previous version keeps serving)")?;
        }
        Ok(())
    }
}

/// Where modules are loaded for: the whole host (embedded modules and the operator's module
/// directory), or one account (its own module directory).
#[derive(Clone, Copy)]
pub enum Scope<'a> {
    System,
    /// An account's modules: granted only what the configuration grants them, always run in
    /// a fresh instance per node, and never named like a module of `system`.
    Account {
        id: &'a str,
        system: &'a Registry,
    },
}

/// Gives every loaded module its own identity, so that warm instances are never reused across
/// versions of a module.
static NEXT_MODULE_ID: AtomicU64 = AtomicU64::new(1);

/// One loaded module, ready to instantiate.
pub struct LoadedModule {
    id: u64,
    digest: [u8; 32],
    /// The `cfhost:callflow` version it was built against, when it imports any of it.
    wit_version: Option<String>,
    /// The release of the contract it speaks.
    world: World,
    description: Description,
    origin: String,
    /// The account that owns it; `None` for a system module.
    account: Option<String>,
    lifecycle: Lifecycle,
    name: Arc<str>,
    capabilities: Arc<[Capability]>,
    pre: ModulePre,
    validator: jsonschema::Validator,
    provenance: Provenance,
}

impl std::fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModule")
            .field("name", &self.name)
            .field("version", &self.description.version)
            .field("origin", &self.origin)
            .field("account", &self.account)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl LoadedModule {
    /// This load of the module: another version of it, even from the same file, has another.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Where it was loaded from: `embedded:<name>` or the file's path.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The account whose module it is; `None` for a system module.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// How its instances live: from the configuration for a system module, always per node
    /// for an account's module.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// The version of the `cfhost:callflow` WIT package it was built against (`None` when it
    /// imports nothing of it).
    pub fn wit_version(&self) -> Option<&str> {
        self.wit_version.as_deref()
    }

    /// The release of the contract it speaks (its world).
    pub fn world(&self) -> World {
        self.world
    }

    /// The SHA-256 of the component, in hex.
    pub fn digest_hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// What an operator sees of it (`GET /v1/modules`, `cfhost module check --json`): name,
    /// version, summary, capabilities, data schema, WIT version, SHA-256, owner and lifecycle.
    pub fn to_json(&self) -> Value {
        let description = &self.description;
        let capabilities: Vec<&str> = self.capabilities.iter().map(|c| c.name()).collect();
        let lifecycle = match self.lifecycle {
            Lifecycle::PerNode => serde_json::json!({"kind": "per-node"}),
            Lifecycle::Pooled { max_uses } => {
                serde_json::json!({"kind": "pooled", "max_uses": max_uses})
            }
        };
        let owner = match &self.account {
            None => serde_json::json!("system"),
            Some(account) => serde_json::json!({ "account": account }),
        };
        serde_json::json!({
            "name": description.name,
            "version": description.version,
            "summary": description.summary,
            "capabilities": capabilities,
            "data_schema": serde_json::from_str::<Value>(&description.data_schema).unwrap_or(Value::Null),
            "wit_version": self.wit_version,
            "world": self.world.qualified_name(),
            "sha256": self.digest_hex(),
            "owner": owner,
            "lifecycle": lifecycle,
        })
    }

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
    pub fn pre(&self) -> &ModulePre {
        &self.pre
    }

    /// Checks node data (JSON text) against the module's schema; the error lists each
    /// offending place as a JSON pointer into `data` with what is wrong there.
    pub fn check_data(&self, data: &str) -> Result<(), Vec<DataError>> {
        let data: Value = serde_json::from_str(data).map_err(|e| {
            vec![DataError {
                pointer: String::new(),
                message: e.to_string(),
            }]
        })?;
        let errors: Vec<DataError> = self
            .validator
            .iter_errors(&data)
            .map(|e| DataError {
                pointer: e.instance_path().as_str().to_string(),
                message: e.to_string(),
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Modules by name, from one scope.
#[derive(Default, Clone)]
pub struct Registry {
    modules: BTreeMap<String, Arc<LoadedModule>>,
}

impl Registry {
    /// Loads `sources` in order for `scope`; a later module with the same name replaces an
    /// earlier one (so a module directory overrides the embedded modules). A source whose
    /// origin and bytes are those of a module in `previous` keeps that module as it is. A
    /// source that fails to load is rejected; when `previous` has a module from the same
    /// origin, that one keeps serving.
    pub async fn load(
        sandbox: &Sandbox,
        policy: &Policy,
        scope: Scope<'_>,
        sources: impl IntoIterator<Item = ModuleSource>,
        previous: &Registry,
    ) -> (Registry, Vec<Rejection>) {
        let mut registry = Registry::default();
        let mut rejections = Vec::new();
        for source in sources {
            let digest: [u8; 32] = Sha256::digest(&source.bytes).into();
            let earlier = previous.modules().find(|m| m.origin == source.origin);
            let module = match earlier {
                Some(earlier) if earlier.digest == digest => Arc::clone(earlier),
                _ => match load_one(sandbox, policy, scope, source, digest).await {
                    Ok(module) => Arc::new(module),
                    Err(error) => {
                        rejections.push(Rejection {
                            error,
                            kept_previous: earlier.is_some(),
                        });
                        match earlier {
                            Some(earlier) => Arc::clone(earlier),
                            None => continue,
                        }
                    }
                },
            };
            if let Some(replaced) = registry.modules.get(&*module.name) {
                tracing::info!(
                    module = &*module.name,
                    "{} replaces {}",
                    module.origin,
                    replaced.origin
                );
            }
            registry.modules.insert(module.name.to_string(), module);
        }
        (registry, rejections)
    }

    /// Loads one component for `scope` without adding it anywhere: what an upload is checked
    /// with before it is stored.
    pub async fn check_one(
        sandbox: &Sandbox,
        policy: &Policy,
        scope: Scope<'_>,
        source: ModuleSource,
    ) -> Result<LoadedModule, ModuleError> {
        let digest: [u8; 32] = Sha256::digest(&source.bytes).into();
        load_one(sandbox, policy, scope, source, digest).await
    }

    /// This registry with `module` added (replacing one of the same name).
    pub fn with(mut self, module: Arc<LoadedModule>) -> Registry {
        self.modules.insert(module.name.to_string(), module);
        self
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

/// Loads one module; a module refused leaves no compiled file in the cache (unless the file
/// was there before, for another module of the same bytes).
async fn load_one(
    sandbox: &Sandbox,
    policy: &Policy,
    scope: Scope<'_>,
    source: ModuleSource,
    digest: [u8; 32],
) -> Result<LoadedModule, ModuleError> {
    let bytes = Arc::clone(&source.bytes);
    let was_cached = sandbox.is_cached(&bytes);
    let loaded = check_and_load(sandbox, policy, scope, source, digest).await;
    if loaded.is_err() && !was_cached {
        sandbox.forget(&bytes);
    }
    loaded
}

async fn check_and_load(
    sandbox: &Sandbox,
    policy: &Policy,
    scope: Scope<'_>,
    source: ModuleSource,
    digest: [u8; 32],
) -> Result<LoadedModule, ModuleError> {
    let origin = source.origin;
    if source.bytes.len() > policy.max_wasm_bytes {
        return Err(ModuleError::TooLarge {
            origin,
            size: source.bytes.len(),
            limit: policy.max_wasm_bytes,
        });
    }
    let (component, provenance) = sandbox
        .compile(&source.bytes)
        .map_err(|source| compile_error(&origin, source))?;
    let contract =
        contract::check(sandbox.engine(), &component).map_err(|source| ModuleError::Contract {
            origin: origin.clone(),
            source,
        })?;
    let pre =
        sandbox
            .link(&component, contract.world)
            .map_err(|source| ModuleError::NotAModule {
                origin: origin.clone(),
                source,
            })?;
    let describe_error = |source: wasmtime::Error| ModuleError::Describe {
        origin: origin.clone(),
        source,
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
    if !is_plain_name(&description.name) {
        return Err(ModuleError::BadName {
            origin,
            name: description.name,
        });
    }
    let capabilities: Vec<Capability> = description
        .capabilities
        .iter()
        .map(|c| Capability::from(*c))
        .collect();
    let missing = match scope {
        Scope::System => {
            policy
                .grants
                .missing_for_module(&description.name, &capabilities, source.shipped)
        }
        Scope::Account { id, system } => {
            if system.get(&description.name).is_some() {
                return Err(ModuleError::SystemName {
                    origin,
                    name: description.name,
                });
            }
            policy
                .grants
                .missing_for_account_module(id, &description.name, &capabilities)
        }
    };
    if let Some(capability) = missing {
        return Err(ModuleError::NotGranted {
            origin,
            name: description.name,
            capability,
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
    let (account, lifecycle) = match scope {
        Scope::System => (None, policy.lifecycle(&description.name)),
        Scope::Account { id, .. } => (
            Some(id.to_string()),
            policy.account_module_lifecycle(id, &description.name),
        ),
    };
    Ok(LoadedModule {
        id: NEXT_MODULE_ID.fetch_add(1, Ordering::Relaxed),
        digest,
        wit_version: contract.built_against,
        world: contract.world,
        account,
        lifecycle,
        name: Arc::from(description.name.as_str()),
        capabilities: Arc::from(capabilities),
        description,
        origin,
        pre,
        validator,
        provenance,
    })
}
