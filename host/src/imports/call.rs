//! `cfhost:callflow/call`: the call's flags. Always available.

use super::InstanceState;
use crate::bindings::CallFlags;
use crate::bindings::cfhost::callflow::call::Host;

impl Host for InstanceState {
    fn current_flags(&mut self) -> wasmtime::Result<CallFlags> {
        Ok(self.env()?.call.flags())
    }

    fn set_message_left(&mut self) -> wasmtime::Result<()> {
        let env = self.env()?;
        env.call.set_message_left();
        env.trace.flag_set(&self.module_name, "message_left");
        Ok(())
    }
}
