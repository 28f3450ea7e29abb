//! Tenant safety: the limits each module instance runs under ([`limits`]), what the host does
//! when a module fails ([`failure`]), which capabilities the operator granted ([`grants`]), how
//! long instances live ([`lifecycle`]), and what the host learns while calls run: counters and
//! quarantine ([`health`]).
//!
//! [`Policy`] is read from the configuration once; [`Health`] changes as calls run.

pub mod config;
pub mod failure;
pub mod grants;
pub mod health;
pub mod lifecycle;
pub mod limits;
pub mod share;

use std::collections::HashMap;
use std::sync::Arc;

pub use config::{
    AccountConfig, AccountModuleConfig, FailureConfig, LoadingConfig, ModuleConfig, PolicyConfig,
};
pub use failure::{Failure, FailureKind, FailureMode, Refusal};
pub use grants::{Capability, Grants, UnknownCapability};
pub use health::{Health, ModuleCounters, QuarantineRule};
pub use lifecycle::{Lifecycle, LifecycleError, LifecycleName};
pub use limits::{LimitOverrides, Limits};
pub use share::{CpuShares, Turn};

use crate::call::HangupCause;

/// The default largest `.wasm` file a module may be: a Python module (componentize-py) is
/// about 18 MiB, a JavaScript one (componentize-js) about 12 MiB, a Rust one well under 1 MiB.
pub const DEFAULT_MAX_WASM_BYTES: usize = 32 << 20;
/// The default cause of a fail-closed hangup (Q.850 41).
pub const DEFAULT_HANGUP_CAUSE: &str = "NORMAL_TEMPORARY_FAILURE";

/// How the host treats modules, from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    limits: Arc<Limits>,
    account_limits: HashMap<String, Arc<Limits>>,
    /// The failure mode of modules without one of their own.
    pub failure_mode: FailureMode,
    module_failure_modes: HashMap<String, FailureMode>,
    module_lifecycles: HashMap<String, Lifecycle>,
    /// Lifecycles of accounts' own modules, by (account, module).
    account_module_lifecycles: HashMap<(String, String), Lifecycle>,
    /// The cause a fail-closed module's call is hung up with.
    pub hangup_cause: HangupCause,
    /// When a failing module is quarantined.
    pub quarantine: QuarantineRule,
    /// Capabilities granted per module and per account.
    pub grants: Grants,
    /// Largest `.wasm` file a module may be.
    pub max_wasm_bytes: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            limits: Arc::new(Limits::default()),
            account_limits: HashMap::new(),
            failure_mode: FailureMode::FailOpen,
            module_failure_modes: HashMap::new(),
            module_lifecycles: HashMap::new(),
            account_module_lifecycles: HashMap::new(),
            hangup_cause: HangupCause::NORMAL_TEMPORARY_FAILURE,
            quarantine: QuarantineRule::default(),
            grants: Grants::default(),
            max_wasm_bytes: DEFAULT_MAX_WASM_BYTES,
        }
    }
}

impl Policy {
    /// The limits for `account`'s calls.
    pub fn limits(&self, account: &str) -> &Arc<Limits> {
        self.account_limits.get(account).unwrap_or(&self.limits)
    }

    /// Sets the limits of every account without limits of its own.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = Arc::new(limits);
    }

    /// Sets `account`'s limits.
    pub fn set_account_limits(&mut self, account: &str, limits: Limits) {
        self.account_limits
            .insert(account.to_string(), Arc::new(limits));
    }

    /// Whether any limit sets an instruction budget (the engine then counts fuel).
    pub fn uses_fuel(&self) -> bool {
        self.limits.fuel.is_some() || self.account_limits.values().any(|l| l.fuel.is_some())
    }

    /// The largest linear memory (bytes) and table (elements) any account may use: what the
    /// engine reserves per instance.
    pub fn largest_instance(&self) -> (usize, usize) {
        let all = std::iter::once(&self.limits).chain(self.account_limits.values());
        all.fold((0, 0), |(memory, table), limits| {
            (
                memory.max(limits.memory_bytes),
                table.max(limits.table_elements),
            )
        })
    }

    /// How `module`'s instances live.
    pub fn lifecycle(&self, module: &str) -> Lifecycle {
        self.module_lifecycles
            .get(module)
            .copied()
            .unwrap_or_default()
    }

    /// Sets how the instances of `account`'s own module `module` live.
    pub fn set_account_module_lifecycle(
        &mut self,
        account: &str,
        module: &str,
        lifecycle: Lifecycle,
    ) {
        self.account_module_lifecycles
            .insert((account.to_string(), module.to_string()), lifecycle);
    }

    /// How the instances of `account`'s own module `module` live: per node unless the
    /// operator pooled it for the account.
    pub fn account_module_lifecycle(&self, account: &str, module: &str) -> Lifecycle {
        self.account_module_lifecycles
            .get(&(account.to_string(), module.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// Sets how `module`'s instances live.
    pub fn set_module_lifecycle(&mut self, module: &str, lifecycle: Lifecycle) {
        self.module_lifecycles.insert(module.to_string(), lifecycle);
    }

    /// What the host does when `module` fails.
    pub fn failure_mode(&self, module: &str) -> FailureMode {
        self.module_failure_modes
            .get(module)
            .copied()
            .unwrap_or(self.failure_mode)
    }

    /// Sets `module`'s failure mode.
    pub fn set_module_failure_mode(&mut self, module: &str, mode: FailureMode) {
        self.module_failure_modes.insert(module.to_string(), mode);
    }

    /// Builds the policy from the configuration's sections.
    pub fn from_config(config: &PolicyConfig) -> Result<Policy, LifecycleError> {
        let mut policy = Policy {
            limits: Arc::new(Limits::default().with(&config.limits)),
            failure_mode: config.failure.mode,
            hangup_cause: HangupCause::from(config.failure.hangup_cause.as_str()),
            quarantine: config.failure.quarantine.clone(),
            max_wasm_bytes: config.loading.max_wasm_kib << 10,
            ..Policy::default()
        };
        for (module, settings) in &config.modules {
            if let Some(capabilities) = &settings.capabilities {
                policy.grants.grant_module(module, capabilities.clone());
            }
            if let Some(mode) = settings.failure {
                policy.set_module_failure_mode(module, mode);
            }
            let section = format!("modules.{module}");
            let lifecycle =
                Lifecycle::from_config(&section, settings.lifecycle, settings.max_uses)?;
            policy.set_module_lifecycle(module, lifecycle);
        }
        for (account, settings) in &config.accounts {
            let limits = policy.limits.with(&settings.limits);
            policy.set_account_limits(account, limits);
            for (module, grant) in &settings.modules {
                if let Some(capabilities) = &grant.capabilities {
                    policy
                        .grants
                        .grant_account(account, module, capabilities.clone());
                }
                let section = format!("accounts.{account}.modules.{module}");
                let lifecycle = Lifecycle::from_config(&section, grant.lifecycle, grant.max_uses)?;
                policy.set_account_module_lifecycle(account, module, lifecycle);
            }
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    /// The policy's sections of a configuration file.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sections {
        #[serde(default)]
        limits: LimitOverrides,
        #[serde(default)]
        failure: FailureConfig,
        #[serde(default)]
        modules: std::collections::BTreeMap<String, ModuleConfig>,
        #[serde(default)]
        accounts: std::collections::BTreeMap<String, AccountConfig>,
    }

    fn sections(text: &str) -> Result<PolicyConfig, toml::de::Error> {
        let s: Sections = toml::from_str(text)?;
        Ok(PolicyConfig {
            limits: s.limits,
            failure: s.failure,
            modules: s.modules,
            accounts: s.accounts,
            ..PolicyConfig::default()
        })
    }

    #[test]
    fn a_configuration_becomes_a_policy() {
        let config = sections(
            r#"
            [limits]
            handle_deadline_ms = 500
            [failure]
            mode = "fail-closed"
            quarantine = { after_failures = 2, window_secs = 10, for_secs = 30 }
            [modules.hello]
            capabilities = ["log", "notify"]
            failure = "fail-open"
            lifecycle = "pooled"
            max_uses = 50
            [accounts.acme.limits]
            memory_mib = 2
            [accounts.acme.modules.hello]
            capabilities = ["log"]
            [accounts.acme.modules.screen]
            lifecycle = "pooled"
            max_uses = 20
            "#,
        )
        .unwrap();
        let policy = Policy::from_config(&config).unwrap();
        assert_eq!(policy.limits("other").handle_deadline.as_millis(), 500);
        assert_eq!(policy.limits("acme").handle_deadline.as_millis(), 500);
        assert_eq!(policy.limits("acme").memory_bytes, 2 << 20);
        assert_eq!(policy.failure_mode("hello"), FailureMode::FailOpen);
        assert_eq!(policy.failure_mode("other"), FailureMode::FailClosed);
        assert_eq!(policy.quarantine.after_failures, 2);
        let declared = [Capability::Log, Capability::Notify];
        assert_eq!(
            policy.grants.missing_for_module("hello", &declared, false),
            None
        );
        assert_eq!(
            policy
                .grants
                .missing_in_account_grant("acme", "hello", &declared),
            Some(Capability::Notify)
        );
        assert!(!policy.uses_fuel());
        assert_eq!(
            policy.lifecycle("hello"),
            Lifecycle::Pooled { max_uses: 50 }
        );
        assert_eq!(policy.lifecycle("other"), Lifecycle::PerNode);
        assert_eq!(
            policy.account_module_lifecycle("acme", "screen"),
            Lifecycle::Pooled { max_uses: 20 }
        );
        assert_eq!(
            policy.account_module_lifecycle("other", "screen"),
            Lifecycle::PerNode,
            "an account's own module is pooled only where the operator says"
        );
        assert_eq!(
            policy
                .grants
                .missing_in_account_grant("acme", "screen", &declared),
            None,
            "a lifecycle alone does not narrow the grant"
        );
        let bad = sections("[accounts.acme.modules.screen]\nmax_uses = 5").unwrap();
        let err = Policy::from_config(&bad).unwrap_err().to_string();
        assert_eq!(
            err,
            "accounts.acme.modules.screen.max_uses: only for lifecycle = \"pooled\""
        );
        assert_eq!(policy.largest_instance(), (32 << 20, 10_000));
    }

    #[test]
    fn an_unknown_capability_is_refused_when_the_file_is_read_naming_its_place() {
        let err = sections("[accounts.acme.modules.hello]\ncapabilities = [\"files\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `files`"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }
}
