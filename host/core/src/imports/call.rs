//! `cfhost:callflow/call`: the call's flags. Always available.

use super::InstanceState;
use crate::bindings::CallFlags;
use crate::bindings::cfhost::callflow::call::Host;
use crate::bindings::cfhost::callflow::types::CallInfo;
use crate::call::Call;

impl Host for InstanceState {
    fn current_flags(&mut self) -> wasmtime::Result<CallFlags> {
        Ok(self.context()?.call().flags().into())
    }

    fn set_message_left(&mut self) -> wasmtime::Result<()> {
        let context = self.context()?;
        context.call().set_message_left();
        context.trace().flag_set(&self.module_name, "message_left");
        Ok(())
    }
}

/// The call as a module sees it now: what `handle` and `on-termination` are called with.
pub fn call_info(call: &Call) -> CallInfo {
    let d = call.details();
    CallInfo {
        call_id: d.call_id.clone(),
        account_id: d.account_id.clone(),
        request: d.request.clone(),
        caller_id_name: d.caller_id_name.clone(),
        caller_id_number: d.caller_id_number.clone(),
        callee_id_name: d.callee_id_name.clone(),
        callee_id_number: d.callee_id_number.clone(),
        from_user: d.from_user.clone(),
        from_realm: d.from_realm.clone(),
        to_user: d.to_user.clone(),
        to_realm: d.to_realm.clone(),
        authorizing_type: d.authorizing_type.clone(),
        authorizing_id: d.authorizing_id.clone(),
        flags: call.flags().into(),
    }
}
