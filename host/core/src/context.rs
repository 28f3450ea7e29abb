//! The per-call context that module instances reach through their imports: the call, its
//! switch backend, the account's directory, the notifier, the trace, and the termination
//! callbacks registered so far. It sits below both the executor (which creates it and runs the
//! callbacks) and the imports (which serve from it): the "Ctx" of wasmtime-wasi's layering.

use std::sync::{Arc, Mutex};

use crate::directory::Directory;
use crate::notify::Notifier;
use crate::switch::Switch;
use crate::trace::{Trace, TraceEvent};

use crate::call::Call;

/// Everything a call's module instances reach through their imports.
pub struct CallContext {
    call: Arc<Call>,
    switch: Arc<dyn Switch>,
    directory: Arc<dyn Directory>,
    notifier: Arc<Notifier>,
    callbacks: Mutex<Vec<Registration>>,
    /// The keys of the children of the node running now (none between nodes).
    node_children: Mutex<Option<Arc<[String]>>>,
}

/// A termination callback: which module to call back, with what state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub module: Arc<str>,
    pub state: Vec<u8>,
}

/// A termination callback that was not registered: the module has as many as it may have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "module `{module}` already has {max} termination callbacks in this call, the most it may \
     have"
)]
pub struct TooManyCallbacks {
    pub module: String,
    pub max: usize,
}

impl CallContext {
    /// The context of `call`, served by `switch`, `directory` and `notifier`.
    pub fn new(
        call: Arc<Call>,
        switch: Arc<dyn Switch>,
        directory: Arc<dyn Directory>,
        notifier: Arc<Notifier>,
    ) -> Self {
        CallContext {
            call,
            switch,
            directory,
            notifier,
            callbacks: Mutex::new(Vec::new()),
            node_children: Mutex::new(None),
        }
    }

    /// The call.
    pub fn call(&self) -> &Arc<Call> {
        &self.call
    }

    /// Its switch backend.
    pub fn switch(&self) -> &dyn Switch {
        &*self.switch
    }

    /// The directory of the call's account (every read names the account of the call).
    pub fn directory(&self) -> &dyn Directory {
        &*self.directory
    }

    /// Publishes the call's notifications.
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// The call's trace.
    pub fn trace(&self) -> &Trace {
        self.call.trace()
    }

    /// The account the call belongs to.
    pub fn account_id(&self) -> &str {
        &self.call.details().account_id
    }

    /// Registers a termination callback of `module`; an identical one is kept once. Refused
    /// once `module` has `max` distinct callbacks in this call (so one module cannot crowd
    /// out the others).
    pub fn register_callback(
        &self,
        module: &Arc<str>,
        state: Vec<u8>,
        max: usize,
    ) -> Result<(), TooManyCallbacks> {
        let registration = Registration {
            module: Arc::clone(module),
            state,
        };
        let mut callbacks = self.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        let duplicate = callbacks.contains(&registration);
        if !duplicate {
            let mine = callbacks.iter().filter(|r| r.module == *module).count();
            if mine >= max {
                return Err(TooManyCallbacks {
                    module: module.to_string(),
                    max,
                });
            }
            callbacks.push(registration);
        }
        drop(callbacks);
        self.trace().push(TraceEvent::Registered {
            module: module.to_string(),
            duplicate,
        });
        Ok(())
    }

    /// Sets the keys of the children of the node about to run (shared with its callflow);
    /// `None` once it has run. A call's nodes run one at a time, so there is one node at a
    /// time to describe.
    pub fn set_node_children(&self, keys: Option<Arc<[String]>>) {
        *self.node_children.lock().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    /// The keys of the children of the node running now (none outside a node).
    pub fn node_children(&self) -> Vec<String> {
        let keys = self.node_children.lock().unwrap_or_else(|e| e.into_inner());
        keys.as_deref().map(<[String]>::to_vec).unwrap_or_default()
    }

    /// The callbacks registered so far, in order, leaving none (they run once).
    pub fn take_callbacks(&self) -> Vec<Registration> {
        std::mem::take(&mut *self.callbacks.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
