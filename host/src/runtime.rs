//! A loaded host: the sandbox, the modules, the accounts' data and the notification sink,
//! ready to run calls.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::accounts::{Accounts, LoadReport};
use crate::bindings::Outcome;
use crate::call::{Call, CallDetails};
use crate::callflow::{AccountCallflows, Callflow};
use crate::engine::{EngineSettings, Sandbox};
use crate::executor::{CallEnv, CallReport, DEFAULT_MAX_BRANCHES, Executor, WarmInstances};
use crate::notify::{Notifier, Sink};
use crate::policy::{Health, Policy};
use crate::registry::{ModuleSource, Registry};
use crate::switch::Switch;

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot read the data directory: {0}")]
    Data(#[from] std::io::Error),
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
    #[error("module `{module}`: {message}")]
    Node { module: String, message: String },
}

/// Everything loaded at start.
#[derive(Debug, Default)]
pub struct StartReport {
    /// Modules that did not load.
    pub module_errors: Vec<String>,
    /// Data documents that were rejected or deserve a look.
    pub data: LoadReport,
}

/// How to start a host.
pub struct HostOptions<'a> {
    pub data_dir: &'a Path,
    /// Components to load, in order (a later one replaces an earlier one of the same name).
    pub modules: Vec<ModuleSource>,
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
            modules: crate::registry::embedded_modules(),
            sink,
            node: crate::notify::default_node_name(),
            policy: Policy::default(),
            engine: EngineSettings::default(),
            max_branches: DEFAULT_MAX_BRANCHES,
        }
    }
}

/// A host ready to run calls.
pub struct Runtime {
    sandbox: Sandbox,
    registry: Registry,
    data_dir: PathBuf,
    /// Swapped whole when an account's documents change; a call keeps the version it started
    /// with.
    accounts: RwLock<Arc<Accounts>>,
    notifier: Arc<Notifier>,
    policy: Policy,
    health: Health,
    warm: WarmInstances,
    max_branches: u32,
}

impl Runtime {
    /// Loads modules and data. Bad modules and documents are reported and left out; only an
    /// engine that cannot start or an unreadable data directory is an error.
    pub async fn start(options: HostOptions<'_>) -> Result<(Runtime, StartReport), StartError> {
        let policy = options.policy;
        let sandbox = Sandbox::new(&options.engine, &policy)
            .map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let (registry, module_errors) = Registry::load(&sandbox, &policy, options.modules).await;
        let (accounts, data) = Accounts::load(options.data_dir, &registry)?;
        let report = StartReport {
            module_errors: module_errors.iter().map(ToString::to_string).collect(),
            data,
        };
        let runtime = Runtime {
            sandbox,
            registry,
            data_dir: options.data_dir.to_path_buf(),
            accounts: RwLock::new(Arc::new(accounts)),
            notifier: Arc::new(Notifier::new(options.sink, options.node)),
            health: Health::new(policy.quarantine.clone()),
            warm: WarmInstances::default(),
            policy,
            max_branches: options.max_branches,
        };
        Ok((runtime, report))
    }

    /// The loaded modules.
    pub fn registry(&self) -> &Registry {
        &self.registry
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
        Arc::clone(&self.accounts.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Reads `account_id`'s documents again from the data directory, for the calls that start
    /// from now on; reports the documents it rejected. Callers that write documents serialise
    /// their write and this reload.
    pub fn reload_account(&self, account_id: &str) -> LoadReport {
        let (accounts, report) =
            self.accounts()
                .with_account_reloaded(&self.data_dir, account_id, &self.registry);
        *self.accounts.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(accounts);
        report
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

    /// Runs one call: finds its callflow, walks it, runs its termination callbacks.
    pub async fn run_call(
        &self,
        details: CallDetails,
        switch: Arc<dyn Switch>,
    ) -> Result<CallReport, CallError> {
        let accounts = self.accounts();
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
        let (executor, env) =
            self.prepare(details, switch, Arc::clone(&accounts), &account.callflows);
        Ok(executor.run(env, callflow).await)
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
        let loaded = self
            .registry
            .get(module)
            .ok_or_else(|| CallError::UnknownModule(module.to_string()))?;
        let node_error = |message| CallError::Node {
            module: module.to_string(),
            message,
        };
        loaded.check_data(data).map_err(node_error)?;
        let no_callflows = AccountCallflows::default();
        let (executor, env) = self.prepare(details, switch, self.accounts(), &no_callflows);
        executor
            .run_node(&env, loaded, data)
            .await
            .map_err(node_error)
    }

    /// Runs one call through `callflow`, branching into `callflows`: a callflow that was not
    /// loaded from the data directory (being tried out, or generated by a test).
    pub async fn run_callflow(
        &self,
        details: CallDetails,
        switch: Arc<dyn Switch>,
        callflows: &AccountCallflows,
        callflow: &Callflow,
    ) -> CallReport {
        let (executor, env) = self.prepare(details, switch, self.accounts(), callflows);
        executor.run(env, callflow).await
    }

    /// The executor and environment of a new call.
    fn prepare<'a>(
        &'a self,
        details: CallDetails,
        switch: Arc<dyn Switch>,
        accounts: Arc<Accounts>,
        callflows: &'a AccountCallflows,
    ) -> (Executor<'a>, Arc<CallEnv>) {
        let limits = Arc::clone(self.policy.limits(&details.account_id));
        let env = Arc::new(CallEnv::new(
            Call::new(details),
            switch,
            accounts,
            Arc::clone(&self.notifier),
        ));
        let executor = Executor {
            sandbox: &self.sandbox,
            registry: &self.registry,
            callflows,
            max_branches: self.max_branches,
            limits,
            policy: &self.policy,
            health: &self.health,
            warm: &self.warm,
        };
        (executor, env)
    }
}
