//! Capabilities the operator grants, per module and per account. Deny by default: a module
//! dropped into the modules directory gets nothing unless the configuration grants it; the
//! shipped modules are granted what they declare unless the configuration says otherwise.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// What a module may reach beyond its own call info: one per WIT interface that needs a grant.
/// In the configuration and the API, by its WIT name (`call-control`, `log`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Answer, bridge, record, hang up.
    CallControl,
    /// Read users of the call's account.
    Directory,
    /// Publish notifications for the call's account.
    Notify,
    /// Register termination callbacks.
    Callbacks,
    /// Write to the call's trace and the host's log.
    Log,
    /// Read the real time.
    Clock,
}

impl Capability {
    /// Every capability, in WIT order.
    pub const ALL: [Capability; 6] = [
        Capability::CallControl,
        Capability::Directory,
        Capability::Notify,
        Capability::Callbacks,
        Capability::Log,
        Capability::Clock,
    ];

    /// The WIT name.
    pub fn name(self) -> &'static str {
        match self {
            Capability::CallControl => "call-control",
            Capability::Directory => "directory",
            Capability::Notify => "notify",
            Capability::Callbacks => "callbacks",
            Capability::Log => "log",
            Capability::Clock => "clock",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no capability.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability `{0}` (known: call-control, directory, notify, callbacks, log, clock)")]
pub struct UnknownCapability(pub String);

impl FromStr for Capability {
    type Err = UnknownCapability;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| UnknownCapability(name.to_string()))
    }
}

/// The operator's grants.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Module name → what it is granted for every account.
    modules: HashMap<String, Vec<Capability>>,
    /// Account → module → what the module is granted for that account, replacing the above.
    accounts: HashMap<String, HashMap<String, Vec<Capability>>>,
}

impl Grants {
    /// Grants `capabilities` to `module` for every account.
    pub fn grant_module(&mut self, module: &str, capabilities: Vec<Capability>) {
        self.modules.insert(module.to_string(), capabilities);
    }

    /// Grants `capabilities` to `module` for `account` only, replacing its module-wide grant.
    pub fn grant_account(&mut self, account: &str, module: &str, capabilities: Vec<Capability>) {
        self.accounts
            .entry(account.to_string())
            .or_default()
            .insert(module.to_string(), capabilities);
    }

    /// The first of `declared` that the module-wide grant lacks. A module without a grant of
    /// its own is granted what it declares when `trusted` (shipped), nothing otherwise.
    pub fn missing_for_module(
        &self,
        module: &str,
        declared: &[Capability],
        trusted: bool,
    ) -> Option<Capability> {
        let granted = match self.modules.get(module) {
            Some(granted) => granted.as_slice(),
            None if trusted => return None,
            None => &[],
        };
        declared.iter().copied().find(|c| !granted.contains(c))
    }

    /// The first of `declared` that an account's own module (uploaded or dropped into the
    /// account's module directory) is not granted: the account's grant for it if there is one,
    /// else the module-wide grant, else nothing.
    pub fn missing_for_account_module(
        &self,
        account: &str,
        module: &str,
        declared: &[Capability],
    ) -> Option<Capability> {
        let granted = self
            .accounts
            .get(account)
            .and_then(|modules| modules.get(module))
            .or_else(|| self.modules.get(module))
            .map_or(&[][..], Vec::as_slice);
        declared.iter().copied().find(|c| !granted.contains(c))
    }

    /// The first of `declared` that `account`'s own grant for `module` lacks (none when the
    /// account has no grant of its own: the module-wide grant, checked at load, applies).
    pub fn missing_in_account_grant(
        &self,
        account: &str,
        module: &str,
        declared: &[Capability],
    ) -> Option<Capability> {
        let granted = self.accounts.get(account)?.get(module)?;
        declared.iter().copied().find(|c| !granted.contains(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_modules_get_the_account_grant_else_the_module_grant_else_nothing() {
        let mut grants = Grants::default();
        let declared = [Capability::Log, Capability::Clock];
        assert_eq!(
            grants.missing_for_account_module("acme", "router", &declared),
            Some(Capability::Log)
        );
        grants.grant_module("router", vec![Capability::Log]);
        assert_eq!(
            grants.missing_for_account_module("acme", "router", &declared),
            Some(Capability::Clock)
        );
        grants.grant_account("acme", "router", declared.to_vec());
        assert_eq!(
            grants.missing_for_account_module("acme", "router", &declared),
            None
        );
        assert_eq!(
            grants.missing_for_account_module("other", "router", &declared),
            Some(Capability::Clock),
            "another account's grant does not carry over"
        );
    }

    #[test]
    fn deny_by_default_unless_shipped_and_accounts_narrow() {
        let declared = [Capability::Notify, Capability::Log];
        let mut grants = Grants::default();
        assert_eq!(
            grants.missing_for_module("dropped", &declared, false),
            Some(Capability::Notify)
        );
        assert_eq!(grants.missing_for_module("shipped", &declared, true), None);
        grants.grant_module("shipped", vec![Capability::Log]);
        assert_eq!(
            grants.missing_for_module("shipped", &declared, true),
            Some(Capability::Notify),
            "the configuration can take from a shipped module"
        );
        grants.grant_module("dropped", declared.to_vec());
        assert_eq!(grants.missing_for_module("dropped", &declared, false), None);
        assert_eq!(
            grants.missing_in_account_grant("acme", "dropped", &declared),
            None
        );
        grants.grant_account("acme", "dropped", vec![Capability::Log]);
        assert_eq!(
            grants.missing_in_account_grant("acme", "dropped", &declared),
            Some(Capability::Notify)
        );
        assert_eq!(
            grants.missing_in_account_grant("other", "dropped", &declared),
            None
        );
    }

    #[test]
    fn names_round_trip() {
        for capability in Capability::ALL {
            assert_eq!(capability.to_string().parse(), Ok(capability));
        }
        let unknown = "filesystem".parse::<Capability>().unwrap_err();
        assert!(
            unknown.to_string().contains("known: call-control"),
            "{unknown}"
        );
        let parsed: Vec<Capability> = serde_json::from_str(r#"["call-control", "log"]"#).unwrap();
        assert_eq!(parsed, [Capability::CallControl, Capability::Log]);
        assert!(serde_json::from_str::<Vec<Capability>>(r#"["files"]"#).is_err());
    }
}
