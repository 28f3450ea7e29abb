//! Warm instances of pooled modules ([`Lifecycle::Pooled`](crate::policy::Lifecycle)), idle
//! between uses, per account and module: an instance is only ever reused for calls of the
//! account it was created for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wasmtime::Store;

use crate::bindings::CallflowModule;
use crate::imports::InstanceState;

/// The most idle warm instances kept over all accounts and modules; past it, an instance is
/// dropped after its use instead of kept.
pub const MAX_IDLE_INSTANCES: usize = 1024;

/// An instance kept for reuse, with its store.
pub struct Warm {
    pub store: Store<InstanceState>,
    pub instance: CallflowModule,
    /// Uses so far.
    pub uses: u32,
}

/// Idle warm instances by account, then module.
#[derive(Default)]
pub struct WarmInstances {
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    by_account: HashMap<String, HashMap<Arc<str>, Vec<Warm>>>,
    count: usize,
}

impl WarmInstances {
    /// An idle instance of `module` for `account`, if one is kept.
    pub fn take(&self, account: &str, module: &str) -> Option<Warm> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let warm = idle.by_account.get_mut(account)?.get_mut(module)?.pop()?;
        idle.count -= 1;
        Some(warm)
    }

    /// Keeps `warm` for `account`'s next use of `module`, unless [`MAX_IDLE_INSTANCES`] are
    /// kept already.
    pub fn give_back(&self, account: &str, module: &Arc<str>, warm: Warm) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.count >= MAX_IDLE_INSTANCES {
            return;
        }
        idle.count += 1;
        let modules = match idle.by_account.get_mut(account) {
            Some(modules) => modules,
            None => idle.by_account.entry(account.to_string()).or_default(),
        };
        modules.entry(Arc::clone(module)).or_default().push(warm);
    }

    /// How many instances are idle.
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).count
    }
}
