//! `cfhost:callflow/call-control`: answer, bridge, record, hang up, served by the call's
//! switch backend. Each waits at most the host-call timeout, outside the module's deadline.

use super::InstanceState;
use crate::bindings::Capability;
use crate::bindings::cfhost::callflow::call_control::{
    BridgeRequest, BridgeResult, Host, RecordResult,
};

impl Host for InstanceState {
    async fn answer(&mut self) -> wasmtime::Result<Result<(), String>> {
        let env = self.granted(Capability::CallControl)?;
        self.wait_for("answer", env.switch.answer(&env.call)).await
    }

    async fn bridge(&mut self, request: BridgeRequest) -> wasmtime::Result<BridgeResult> {
        let env = self.granted(Capability::CallControl)?;
        self.wait_for("bridge", env.switch.bridge(&env.call, &request))
            .await
    }

    async fn record_voicemail(
        &mut self,
        box_id: String,
        max_secs: u32,
    ) -> wasmtime::Result<RecordResult> {
        let env = self.granted(Capability::CallControl)?;
        let record = env.switch.record_voicemail(&env.call, &box_id, max_secs);
        self.wait_for("record-voicemail", record).await
    }

    async fn hangup(&mut self, cause: Option<String>) -> wasmtime::Result<()> {
        let env = self.granted(Capability::CallControl)?;
        let cause = cause.unwrap_or_else(|| "NORMAL_CLEARING".to_string());
        self.wait_for("hangup", env.switch.hangup(&env.call, &cause))
            .await
    }
}
