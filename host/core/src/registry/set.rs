//! Every module the host has: the system's, which every account sees, and each account's own,
//! which only that account's callflows see. A set is never changed in place: a reload builds a
//! new one and swaps it in, so a call keeps the modules it started with.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::{LoadedModule, Registry};

/// The system modules and each account's modules.
#[derive(Default, Clone)]
pub struct ModuleSet {
    system: Registry,
    accounts: BTreeMap<String, Registry>,
}

impl ModuleSet {
    /// A set with `system` modules and no account modules.
    pub fn new(system: Registry) -> Self {
        ModuleSet {
            system,
            accounts: BTreeMap::new(),
        }
    }

    /// The modules every account sees.
    pub fn system(&self) -> &Registry {
        &self.system
    }

    /// `account`'s own modules (empty when it has none).
    pub fn account(&self, account: &str) -> Option<&Registry> {
        self.accounts.get(account)
    }

    /// The modules `account`'s callflows can use.
    pub fn view(&self, account: &str) -> ModuleView<'_> {
        ModuleView {
            system: &self.system,
            account: self.accounts.get(account),
        }
    }

    /// This set with `account`'s modules replaced (removed when `modules` is empty).
    pub fn with_account(&self, account: &str, modules: Registry) -> ModuleSet {
        let mut accounts = self.accounts.clone();
        if modules.modules().next().is_some() {
            accounts.insert(account.to_string(), modules);
        } else {
            accounts.remove(account);
        }
        ModuleSet {
            system: self.system.clone(),
            accounts,
        }
    }

    /// The identities ([`LoadedModule::id`]) of every module in the set.
    pub fn ids(&self) -> HashSet<u64> {
        self.system
            .modules()
            .chain(self.accounts.values().flat_map(Registry::modules))
            .map(|m| m.id())
            .collect()
    }
}

/// The modules one account sees: the system's, then its own (which never share a name with a
/// system module).
#[derive(Clone, Copy)]
pub struct ModuleView<'a> {
    system: &'a Registry,
    account: Option<&'a Registry>,
}

impl<'a> ModuleView<'a> {
    /// The module with this callflow name.
    pub fn get(self, name: &str) -> Option<&'a Arc<LoadedModule>> {
        self.system
            .get(name)
            .or_else(|| self.account.and_then(|modules| modules.get(name)))
    }

    /// Every module the account sees: the system's, then its own.
    pub fn modules(self) -> impl Iterator<Item = &'a Arc<LoadedModule>> {
        self.system
            .modules()
            .chain(self.account.into_iter().flat_map(Registry::modules))
    }
}
