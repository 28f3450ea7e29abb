//! `cfhost:callflow/callbacks`: termination callbacks, kept on the call's environment.

use super::InstanceState;
use crate::bindings::Capability;
use crate::bindings::cfhost::callflow::callbacks::Host;

impl Host for InstanceState {
    fn register_termination(&mut self, state: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        let env = self.granted(Capability::Callbacks)?;
        env.register_callback(&self.module_name, state);
        Ok(Ok(()))
    }
}
