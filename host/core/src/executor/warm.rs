//! Warm instances of pooled modules ([`Lifecycle::Pooled`](crate::policy::Lifecycle)), idle
//! between uses, per account and loaded module: an instance is only ever reused for calls of
//! the account it was created for, and only of the very version of the module it came from
//! ([`LoadedModule::id`](crate::registry::LoadedModule::id)).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use wasmtime::Store;

use crate::engine::ModuleInstance;
use crate::imports::InstanceState;

/// The most idle warm instances kept over all accounts and modules; past it, an instance is
/// dropped after its use instead of kept.
pub const MAX_IDLE_INSTANCES: usize = 1024;

/// An instance kept for reuse, with its store.
pub struct Warm {
    pub store: Store<InstanceState>,
    pub instance: ModuleInstance,
    /// Uses so far.
    pub uses: u32,
}

/// Idle warm instances by account, then module id.
#[derive(Default)]
pub struct WarmInstances {
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    by_account: HashMap<String, HashMap<u64, Vec<Warm>>>,
    count: usize,
}

impl WarmInstances {
    /// An idle instance of the module loaded as `module_id` for `account`, if one is kept.
    pub fn take(&self, account: &str, module_id: u64) -> Option<Warm> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let warm = idle
            .by_account
            .get_mut(account)?
            .get_mut(&module_id)?
            .pop()?;
        idle.count -= 1;
        Some(warm)
    }

    /// Keeps `warm` for `account`'s next use of the module loaded as `module_id`, unless
    /// [`MAX_IDLE_INSTANCES`] are kept already.
    pub fn give_back(&self, account: &str, module_id: u64, warm: Warm) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.count >= MAX_IDLE_INSTANCES {
            return;
        }
        idle.count += 1;
        let modules = match idle.by_account.get_mut(account) {
            Some(modules) => modules,
            None => idle.by_account.entry(account.to_string()).or_default(),
        };
        modules.entry(module_id).or_default().push(warm);
    }

    /// Drops the idle instances of modules that are no longer loaded (replaced or removed),
    /// giving their slots back to the pool.
    pub fn keep_only(&self, live: &HashSet<u64>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let mut dropped = 0;
        for modules in idle.by_account.values_mut() {
            modules.retain(|id, instances| {
                let keep = live.contains(id);
                if !keep {
                    dropped += instances.len();
                }
                keep
            });
        }
        idle.count -= dropped;
    }

    /// How many instances are idle.
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).count
    }
}
