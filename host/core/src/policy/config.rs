//! The policy's own sections of the configuration file: `[limits]`, `[loading]`, `[failure]`,
//! `[modules.<name>]` and `[accounts.<id>]`. The file itself is read by the binary, which hands
//! these sections to [`Policy::from_config`](super::Policy::from_config).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::failure::FailureMode;
use super::grants::Capability;
use super::health::QuarantineRule;
use super::lifecycle::LifecycleName;
use super::limits::LimitOverrides;
use super::{DEFAULT_HANGUP_CAUSE, DEFAULT_MAX_WASM_BYTES};

/// Every section the policy is built from.
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    /// `[limits]`: for every account (see [`Limits`](super::Limits) for the defaults).
    pub limits: LimitOverrides,
    pub loading: LoadingConfig,
    pub failure: FailureConfig,
    /// `[modules.<name>]`: per module.
    pub modules: BTreeMap<String, ModuleConfig>,
    /// `[accounts.<id>]`: per account.
    pub accounts: BTreeMap<String, AccountConfig>,
}

/// `[loading]`: limits on the modules themselves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadingConfig {
    pub max_wasm_kib: usize,
}

impl Default for LoadingConfig {
    fn default() -> Self {
        LoadingConfig {
            max_wasm_kib: DEFAULT_MAX_WASM_BYTES >> 10,
        }
    }
}

/// `[failure]`: the default failure mode, the fail-closed hangup cause, quarantine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailureConfig {
    pub mode: FailureMode,
    pub hangup_cause: String,
    pub quarantine: QuarantineRule,
}

impl Default for FailureConfig {
    fn default() -> Self {
        FailureConfig {
            mode: FailureMode::FailOpen,
            hangup_cause: DEFAULT_HANGUP_CAUSE.to_string(),
            quarantine: QuarantineRule::default(),
        }
    }
}

/// `[modules.<name>]`: a module's grant, failure mode and lifecycle.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleConfig {
    pub capabilities: Option<Vec<Capability>>,
    pub failure: Option<FailureMode>,
    pub lifecycle: Option<LifecycleName>,
    pub max_uses: Option<u32>,
}

/// `[accounts.<id>]`: an account's limits and its own grants.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountConfig {
    pub limits: LimitOverrides,
    pub modules: BTreeMap<String, AccountModuleConfig>,
}

/// `[accounts.<id>.modules.<name>]`: what the module is granted for this account, and, for the
/// account's own module of that name, how its instances live.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountModuleConfig {
    /// Absent: the account gets what `[modules.<name>]` grants.
    pub capabilities: Option<Vec<Capability>>,
    pub lifecycle: Option<LifecycleName>,
    pub max_uses: Option<u32>,
}
