//! `cfhost:callflow/callbacks`: termination callbacks, kept on the call's context, within the
//! limits on their number per call and on the size of their state.

use super::InstanceState;
use crate::bindings::cfhost::callflow::callbacks::{Host, RegisterError};
use crate::policy::Capability;

impl Host for InstanceState {
    fn register_termination(
        &mut self,
        state: Vec<u8>,
    ) -> wasmtime::Result<Result<(), RegisterError>> {
        let context = self.granted(Capability::Callbacks)?;
        let limits = &self.limits;
        let limit = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        if state.len() > limits.callback_state_bytes {
            self.refused.outputs += 1;
            return Ok(Err(RegisterError::TooLarge(limit(
                limits.callback_state_bytes,
            ))));
        }
        let registered =
            context.register_callback(&self.module_name, state, limits.callbacks_per_call);
        if registered.is_err() {
            self.refused.outputs += 1;
        }
        Ok(registered.map_err(|e| RegisterError::TooMany(limit(e.max))))
    }
}
