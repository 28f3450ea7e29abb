//! A loaded host: the sandbox, the modules, the accounts' data and the notification sink,
//! ready to run calls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use cfhost_store::{AccountData, FilesStore, MessageSpool, Store, StoreError};

use crate::accounts::{Accounts, DataReport, Warning};
use crate::bindings::Outcome;
use crate::call::{Call, CallDetails};
use crate::callflow::{AccountCallflows, Callflow};
use crate::context::CallContext;
use crate::engine::{EngineSettings, Provenance, Sandbox};
use crate::executor::{
    CallBudget, CallReport, DEFAULT_MAX_BRANCHES, Executor, NodeError, WarmInstances,
};
use crate::notify::{Notifier, Sink};
use crate::policy::{CpuShares, Health, Policy};
use crate::registry::{
    DataError, LoadedModule, ModuleError, ModuleSet, ModuleSource, ModuleView, Registry, Rejection,
    Scope, modules_in_dir,
};
use crate::switch::Switch;

/// The folder of the data directory where voicemail messages wait while the store is away.
pub const VOICEMAIL_SPOOL: &str = "voicemail-spool";

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot set up the WebAssembly engine: {0:#}")]
    Engine(#[source] wasmtime::Error),
    #[error("cannot read the data directory: {0}")]
    Data(#[from] std::io::Error),
    #[error("cannot read the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read the module directory {dir}: {source}")]
    Modules {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Why a call could not run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    #[error("account `{0}` does not exist")]
    UnknownAccount(String),
    #[error("account `{account_id}` has no callflow for `{number}` (numbers, patterns, no_match)")]
    NoCallflow { account_id: String, number: String },
    #[error("no module `{0}` is loaded")]
    UnknownModule(String),
    #[error(
        "module `{module}`: {}",
        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Data {
        module: String,
        errors: Vec<DataError>,
    },
    #[error("module `{module}`: {source}")]
    Node {
        module: String,
        #[source]
        source: NodeError,
    },
}

/// Why an account's module was not installed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("account `{0}` does not exist")]
    UnknownAccount(String),
    #[error("{0}")]
    Invalid(#[from] ModuleError),
    #[error("the component describes itself as `{described}`, not `{name}`")]
    NameMismatch { name: String, described: String },
    #[error("cannot store the module: {0}")]
    Store(#[from] StoreError),
    /// It was stored, but the reload that followed did not load it (the file changed under
    /// the host in between).
    #[error("module `{0}` was stored but did not load")]
    NotLoaded(String),
}

/// Everything loaded at start, or at a reload.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Module files that did not load.
    pub module_errors: Vec<Arc<Rejection>>,
    /// Data documents that were rejected or deserve a look.
    pub data: DataReport,
}

/// How to start a host.
pub struct HostOptions<'a> {
    /// The node's own directory (the outbox, voicemail waiting for the store).
    pub data_dir: &'a Path,
    /// Where the accounts' documents and modules are: by default the data directory itself.
    pub store: Arc<dyn Store>,
    /// Components to load, in order (a later one replaces an earlier one of the same name).
    pub modules: Vec<ModuleSource>,
    /// The operator's module directory: its `*.wasm` load after `modules`, at start and at
    /// every [`Runtime::reload_system_modules`].
    pub modules_dir: Option<PathBuf>,
    pub sink: Arc<dyn Sink>,
    /// `Node` in notification envelopes.
    pub node: String,
    /// Limits, failure modes, grants, lifecycles.
    pub policy: Policy,
    /// Instance allocation and the compiled-component cache.
    pub engine: EngineSettings,
    pub max_branches: u32,
}

impl<'a> HostOptions<'a> {
    /// The defaults: embedded modules, the default policy, KAZOO's branch limit.
    pub fn new(data_dir: &'a Path, sink: Arc<dyn Sink>) -> Self {
        HostOptions {
            data_dir,
            store: Arc::new(FilesStore::new(data_dir)),
            modules: crate::registry::embedded_modules(),
            modules_dir: None,
            sink,
            node: crate::notify::default_node_name(),
            policy: Policy::default(),
            engine: EngineSettings::default(),
            max_branches: DEFAULT_MAX_BRANCHES,
        }
    }
}

/// The modules and the accounts' documents that new calls use. Both are swapped whole, so a
/// call keeps the versions it started with.
#[derive(Clone)]
struct Live {
    modules: Arc<ModuleSet>,
    accounts: Arc<Accounts>,
}

impl Live {
    /// `account_id`'s own modules now (empty when it has none).
    fn account_modules(&self, account_id: &str) -> Registry {
        self.modules
            .account(account_id)
            .cloned()
            .unwrap_or_default()
    }
}

/// A host ready to run calls.
pub struct Runtime {
    sandbox: Sandbox,
    data_dir: PathBuf,
    store: Arc<dyn Store>,
    voicemail: Arc<MessageSpool>,
    /// The modules loaded from these sources (and `modules_dir`) are the system modules.
    base_modules: Vec<ModuleSource>,
    modules_dir: Option<PathBuf>,
    live: RwLock<Live>,
    /// Serialises reloads: each reads the live state, builds the next one and swaps it in.
    reloading: tokio::sync::Mutex<()>,
    /// The files the last reload of each scope rejected (`None`: the system modules).
    rejected: RwLock<BTreeMap<Option<String>, Vec<Arc<Rejection>>>>,
    notifier: Arc<Notifier>,
    policy: Policy,
    health: Health,
    warm: WarmInstances,
    shares: CpuShares,
    max_branches: u32,
}

impl Runtime {
    /// Loads modules and data. Bad modules and documents are reported and left out; only an
    /// engine that cannot start or an unreadable data or module directory is an error.
    pub async fn start(options: HostOptions<'_>) -> Result<(Runtime, LoadReport), StartError> {
        let policy = options.policy;
        let sandbox = Sandbox::new(&options.engine, &policy).map_err(StartError::Engine)?;
        let runtime = Runtime {
            sandbox,
            data_dir: options.data_dir.to_path_buf(),
            voicemail: Arc::new(MessageSpool::new(
                Arc::clone(&options.store),
                options.data_dir.join(VOICEMAIL_SPOOL),
            )),
            store: options.store,
            base_modules: options.modules,
            modules_dir: options.modules_dir,
            live: RwLock::new(Live {
                modules: Arc::default(),
                accounts: Arc::default(),
            }),
            reloading: tokio::sync::Mutex::new(()),
            rejected: RwLock::default(),
            notifier: Arc::new(Notifier::new(options.sink, options.node)),
            health: Health::new(policy.quarantine.clone()),
            warm: WarmInstances::default(),
            shares: CpuShares::default(),
            policy,
            max_branches: options.max_branches,
        };
        if !runtime.data_dir.is_dir() {
            return Err(StartError::Data(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is not a directory", runtime.data_dir.display()),
            )));
        }
        let report = runtime.reload_system_modules().await?;
        Ok((runtime, report))
    }

    /// Loads the system modules again (the base sources and the module directory), then every
    /// account's modules and documents against them. A file that did not change keeps its
    /// loaded module; a file that fails to load keeps its previous version serving, if it had
    /// one; a file that is gone takes its module with it. Calls in flight keep the modules
    /// they started with.
    pub async fn reload_system_modules(&self) -> Result<LoadReport, StartError> {
        let _reloading = self.reloading.lock().await;
        let mut sources = self.base_modules.clone();
        if let Some(dir) = &self.modules_dir {
            sources.extend(modules_in_dir(dir).map_err(|source| StartError::Modules {
                dir: dir.clone(),
                source,
            })?);
        }
        let live = self.live();
        let scope = Scope::System;
        let (system, rejected) = Registry::load(
            &self.sandbox,
            &self.policy,
            scope,
            sources,
            live.modules.system(),
        )
        .await;
        let mut report = LoadReport {
            module_errors: rejected.into_iter().map(Arc::new).collect(),
            data: DataReport::default(),
        };
        let mut rejections = BTreeMap::from([(None, report.module_errors.clone())]);
        let mut modules = ModuleSet::new(system);
        let data = self.store.read_all().await?;
        for account in &data {
            let previous = live.account_modules(&account.id);
            let (registry, errors) = self
                .load_account_modules(modules.system(), &previous, account)
                .await;
            report.module_errors.extend(errors.iter().cloned());
            rejections.insert(Some(account.id.clone()), errors);
            modules = modules.with_account(&account.id, registry);
        }
        *self.rejected.write().unwrap_or_else(|e| e.into_inner()) = rejections;
        let (accounts, mut documents) = Accounts::from_data(&data, &modules, &live.accounts);
        if data.is_empty() {
            documents.warnings.push(Warning::NoAccounts {
                store: self.store.describe(),
            });
        }
        report.data = documents;
        self.swap(Live {
            modules: Arc::new(modules),
            accounts: Arc::new(accounts),
        });
        Ok(report)
    }

    /// Reads `account_id` again from the store (its modules, then its documents against them)
    /// for the calls that start from now on; see [`Runtime::reload_system_modules`] for what
    /// is kept. An account the store no longer has is gone. When the store cannot be read,
    /// nothing changes.
    pub async fn reload_account(&self, account_id: &str) -> Result<LoadReport, StoreError> {
        let _reloading = self.reloading.lock().await;
        self.reload_account_locked(account_id).await
    }

    /// [`Runtime::reload_account`], the reload lock taken.
    async fn reload_account_locked(&self, account_id: &str) -> Result<LoadReport, StoreError> {
        let live = self.live();
        let previous = live.account_modules(account_id);
        self.reload_account_over(account_id, &live, &previous).await
    }

    /// Reloads `account_id` over `previous` (the modules that a stored module that did not
    /// change keeps).
    async fn reload_account_over(
        &self,
        account_id: &str,
        live: &Live,
        previous: &Registry,
    ) -> Result<LoadReport, StoreError> {
        let data = self.store.read_account(account_id).await?;
        let (modules, module_errors) = match &data {
            Some(data) => {
                let (registry, errors) = self
                    .load_account_modules(live.modules.system(), previous, data)
                    .await;
                (live.modules.with_account(account_id, registry), errors)
            }
            None => (
                live.modules.with_account(account_id, Registry::default()),
                Vec::new(),
            ),
        };
        self.rejected
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(Some(account_id.to_string()), module_errors.clone());
        let (accounts, data) =
            live.accounts
                .with_account(account_id, data.as_ref(), modules.view(account_id));
        self.swap(Live {
            modules: Arc::new(modules),
            accounts: Arc::new(accounts),
        });
        Ok(LoadReport {
            module_errors,
            data,
        })
    }

    /// Checks `bytes` as `account_id`'s module `name` (it must load for the account and
    /// describe itself as `name`), then stores it and makes it live for new calls. On any
    /// error nothing is written and the live modules stay.
    pub async fn install_account_module(
        &self,
        account_id: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<(Arc<LoadedModule>, LoadReport), InstallError> {
        let _reloading = self.reloading.lock().await;
        let live = self.live();
        if live.accounts.get(account_id).is_none() {
            return Err(InstallError::UnknownAccount(account_id.to_string()));
        }
        let scope = Scope::Account {
            id: account_id,
            system: live.modules.system(),
        };
        let source = ModuleSource {
            origin: self.store.module_origin(account_id, name),
            bytes: Arc::from(bytes),
            shipped: false,
        };
        let checked =
            Registry::check_one(&self.sandbox, &self.policy, scope, source.clone()).await?;
        if &**checked.name() != name {
            if checked.provenance() == Provenance::Compiled {
                self.sandbox.forget(&source.bytes);
            }
            return Err(InstallError::NameMismatch {
                name: name.to_string(),
                described: checked.name().to_string(),
            });
        }
        self.store
            .put_module(account_id, name, Arc::clone(&source.bytes))
            .await?;
        // The stored module is the one just checked: the reload keeps it instead of loading
        // it again.
        let previous = live.account_modules(account_id).with(Arc::new(checked));
        let report = self
            .reload_account_over(account_id, &live, &previous)
            .await?;
        let installed = self
            .modules()
            .view(account_id)
            .get(name)
            .cloned()
            .ok_or_else(|| InstallError::NotLoaded(name.to_string()))?;
        Ok((installed, report))
    }

    /// Removes `account_id`'s module `name`, if it has one; calls in flight keep it.
    pub async fn remove_account_module(
        &self,
        account_id: &str,
        name: &str,
    ) -> Result<Option<LoadReport>, StoreError> {
        let _reloading = self.reloading.lock().await;
        if !self.store.delete_module(account_id, name).await? {
            return Ok(None);
        }
        Ok(Some(self.reload_account_locked(account_id).await?))
    }

    /// `account_id`'s own modules (as the store read them) loaded next to the `system`
    /// modules, keeping those of `previous` that did not change.
    async fn load_account_modules(
        &self,
        system: &Registry,
        previous: &Registry,
        account: &AccountData,
    ) -> (Registry, Vec<Arc<Rejection>>) {
        let mut errors: Vec<Arc<Rejection>> = account
            .module_problems
            .iter()
            .map(|problem| {
                Arc::new(Rejection {
                    error: ModuleError::Unreadable {
                        origin: problem.place.display().to_string(),
                        source: problem.io_error(),
                    },
                    kept_previous: false,
                })
            })
            .collect();
        let sources = account.modules.iter().map(|module| ModuleSource {
            origin: module.origin.clone(),
            bytes: Arc::clone(&module.bytes),
            shipped: false,
        });
        let scope = Scope::Account {
            id: &account.id,
            system,
        };
        let (registry, rejected) = Registry::load(
            &self.sandbox,
            &self.policy,
            scope,
            sources.collect::<Vec<_>>(),
            previous,
        )
        .await;
        errors.extend(rejected.into_iter().map(Arc::new));
        (registry, errors)
    }

    fn live(&self) -> Live {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `live` the state of new calls and lets go of idle instances of modules it no
    /// longer has.
    fn swap(&self, live: Live) {
        let ids = live.modules.ids();
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = live;
        self.warm.keep_only(&ids);
    }

    /// The module files the last reloads rejected, each with the account whose module directory
    /// it is in (`None` for the system's), in order.
    pub fn rejected_modules(&self) -> Vec<(Option<String>, Arc<Rejection>)> {
        let rejected = self.rejected.read().unwrap_or_else(|e| e.into_inner());
        rejected
            .iter()
            .flat_map(|(scope, errors)| errors.iter().map(|e| (scope.clone(), Arc::clone(e))))
            .collect()
    }

    /// The modules now (a call keeps the set it started with).
    pub fn modules(&self) -> Arc<ModuleSet> {
        self.live().modules
    }

    /// Counters and quarantines of the modules.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Limits, failure modes, grants, lifecycles.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The engine.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Idle warm instances of pooled modules.
    pub fn warm_instances(&self) -> &WarmInstances {
        &self.warm
    }

    /// The accounts now (a call keeps the version it started with).
    pub fn accounts(&self) -> Arc<Accounts> {
        self.live().accounts
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The operator's module directory, if there is one.
    pub fn modules_dir(&self) -> Option<&Path> {
        self.modules_dir.as_deref()
    }

    /// Where the accounts' documents and modules are.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Where voicemail messages go: the store, or the node's spool while it is away.
    pub fn voicemail(&self) -> &Arc<MessageSpool> {
        &self.voicemail
    }

    /// Fills in the details a switch would: From/To user and realm from the dialed number, the
    /// caller id and the account's realm, where not given.
    pub fn complete_details(&self, mut details: CallDetails) -> CallDetails {
        let realm = self
            .accounts()
            .get(&details.account_id)
            .and_then(|account| account.realm.clone());
        details.from_user = details
            .from_user
            .or_else(|| details.caller_id_number.clone());
        details.from_realm = details.from_realm.or_else(|| realm.clone());
        details.to_user = details.to_user.or_else(|| Some(details.request.clone()));
        details.to_realm = details.to_realm.or(realm);
        details
    }

    /// Runs one call: finds its callflow, walks it, runs its termination callbacks. The
    /// backend that took the call keeps `call` and applies channel events to it whenever they
    /// happen (a destroy while a node runs ends the flow after that node).
    pub async fn run_call(
        &self,
        call: Arc<Call>,
        switch: Arc<dyn Switch>,
    ) -> Result<CallReport, CallError> {
        let Live { modules, accounts } = self.live();
        let details = call.details();
        let account = accounts
            .get(&details.account_id)
            .ok_or_else(|| CallError::UnknownAccount(details.account_id.clone()))?;
        let callflow =
            account
                .callflows
                .find(&details.request)
                .ok_or_else(|| CallError::NoCallflow {
                    account_id: details.account_id.clone(),
                    number: details.request.clone(),
                })?;
        let view = modules.view(&details.account_id);
        let (executor, context) = self.prepare(
            call,
            switch,
            Arc::clone(&accounts),
            &account.callflows,
            view,
        );
        Ok(executor.run(context, callflow).await)
    }

    /// Runs one node of `module` with `data` for a call of `details` on `switch`, as a flow
    /// would (the account's grant, limits and quarantine; the module's lifecycle; counters),
    /// and returns its outcome. Data is checked against the module's schema first.
    pub async fn run_node(
        &self,
        details: CallDetails,
        switch: Arc<dyn Switch>,
        module: &str,
        data: &str,
    ) -> Result<Outcome, CallError> {
        let Live { modules, accounts } = self.live();
        let view = modules.view(&details.account_id);
        let loaded = view
            .get(module)
            .ok_or_else(|| CallError::UnknownModule(module.to_string()))?;
        loaded.check_data(data).map_err(|errors| CallError::Data {
            module: module.to_string(),
            errors,
        })?;
        let no_callflows = AccountCallflows::default();
        let call = Arc::new(Call::new(details));
        let (executor, context) = self.prepare(call, switch, accounts, &no_callflows, view);
        executor
            .run_node(&context, loaded, data)
            .await
            .map_err(|source| CallError::Node {
                module: module.to_string(),
                source,
            })
    }

    /// Runs one call through `callflow`, branching into `callflows`: a callflow that was not
    /// loaded from the data directory (being tried out, or generated by a test).
    pub async fn run_callflow(
        &self,
        call: Arc<Call>,
        switch: Arc<dyn Switch>,
        callflows: &AccountCallflows,
        callflow: &Callflow,
    ) -> CallReport {
        let Live { modules, accounts } = self.live();
        let view = modules.view(&call.details().account_id);
        let (executor, context) = self.prepare(call, switch, accounts, callflows, view);
        executor.run(context, callflow).await
    }

    /// The executor and context of a new call.
    fn prepare<'a>(
        &'a self,
        call: Arc<Call>,
        switch: Arc<dyn Switch>,
        accounts: Arc<Accounts>,
        callflows: &'a AccountCallflows,
        modules: ModuleView<'a>,
    ) -> (Executor<'a>, Arc<CallContext>) {
        let account = &call.details().account_id;
        let limits = Arc::clone(self.policy.limits(account));
        let share = self.shares.of(account, limits.cpu_share);
        let context = Arc::new(CallContext::new(
            call,
            switch,
            accounts,
            Arc::clone(&self.notifier),
        ));
        let executor = Executor {
            sandbox: &self.sandbox,
            modules,
            callflows,
            max_branches: self.max_branches,
            budget: CallBudget::new(&limits),
            share,
            limits,
            policy: &self.policy,
            health: &self.health,
            warm: &self.warm,
        };
        (executor, context)
    }
}
