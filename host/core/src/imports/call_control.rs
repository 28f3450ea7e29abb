//! `cfhost:callflow/call-control`: answer, bridge, record, hang up, served by the call's
//! switch backend, outside the module's deadline. Answer and hang up wait at most the
//! host-call timeout; a bridge and a recording last as long as the call needs them (the
//! switch ends them), so a call of any length is never cut by a host timer.
//!
//! The WIT's requests and results are converted to and from cfhost's own
//! ([`crate::call::control`]) here. A backend that fails is the host's fault, not the
//! module's: a bridge then fails with `NORMAL_TEMPORARY_FAILURE` / `sip:503` and a recording
//! with the backend's error, so the flow goes on (to voicemail, say) as it would on KAZOO.

use super::InstanceState;
use crate::bindings::cfhost::callflow::call::ControlError;
use crate::bindings::cfhost::callflow::call_control::{
    BridgeRequest, BridgeResult, Endpoint, Host, RecordResult, RingStrategy,
};
use crate::call::{self, BridgeOutcome, Hangup, HangupCause, RecordOutcome};
use crate::policy::Capability;
use crate::switch::SwitchError;

impl Host for InstanceState {
    async fn answer(&mut self) -> wasmtime::Result<Result<(), ControlError>> {
        let context = self.granted(Capability::CallControl)?;
        let answered = self
            .wait_for("answer", context.switch().answer(context.call()))
            .await?;
        Ok(answered.map_err(|error| match error {
            SwitchError::Gone => ControlError::CallerGone,
            error => ControlError::Failed(error.to_string()),
        }))
    }

    async fn bridge(&mut self, request: BridgeRequest) -> wasmtime::Result<BridgeResult> {
        let context = self.granted(Capability::CallControl)?;
        let request = call::BridgeRequest::from(request);
        let bridged = self
            .wait_on_switch(context.switch().bridge(context.call(), &request))
            .await?;
        Ok(match bridged {
            Ok(outcome) => outcome.into(),
            Err(SwitchError::Gone) => BridgeResult::CallerHungUp,
            Err(error) => {
                tracing::error!(module = &*self.module_name, "bridge: {error}");
                let failed = Hangup::new(HangupCause::NORMAL_TEMPORARY_FAILURE, 503);
                BridgeResult::Failed((&failed).into())
            }
        })
    }

    async fn record_voicemail(
        &mut self,
        box_id: String,
        max_secs: u32,
    ) -> wasmtime::Result<RecordResult> {
        let context = self.granted(Capability::CallControl)?;
        let record = context
            .switch()
            .record_voicemail(context.call(), &box_id, max_secs);
        Ok(match self.wait_on_switch(record).await? {
            Ok(outcome) => outcome.into(),
            Err(SwitchError::Gone) => RecordResult::CallerHungUp,
            Err(error) => {
                tracing::error!(module = &*self.module_name, "record-voicemail: {error}");
                RecordResult::Failed(error.to_string())
            }
        })
    }

    async fn hangup(&mut self, cause: Option<String>) -> wasmtime::Result<()> {
        let context = self.granted(Capability::CallControl)?;
        let cause = cause.map_or(HangupCause::NORMAL_CLEARING, HangupCause::from);
        let hung_up = context.switch().hangup(context.call(), &cause);
        if let Err(error) = self.wait_for("hangup", hung_up).await? {
            tracing::warn!(module = &*self.module_name, "hangup: {error}");
        }
        Ok(())
    }
}

impl From<BridgeRequest> for call::BridgeRequest {
    fn from(request: BridgeRequest) -> Self {
        call::BridgeRequest {
            endpoints: request
                .endpoints
                .into_iter()
                .map(|Endpoint { id, address }| call::Endpoint { id, address })
                .collect(),
            timeout_secs: request.timeout_secs,
            delay_secs: request.delay_secs,
            strategy: match request.strategy {
                RingStrategy::Simultaneous => call::RingStrategy::Simultaneous,
                RingStrategy::Single => call::RingStrategy::Single,
            },
        }
    }
}

impl From<BridgeOutcome> for BridgeResult {
    fn from(outcome: BridgeOutcome) -> Self {
        match outcome {
            BridgeOutcome::Answered => BridgeResult::Answered,
            BridgeOutcome::Failed(hangup) => BridgeResult::Failed((&hangup).into()),
            BridgeOutcome::CallerHungUp => BridgeResult::CallerHungUp,
        }
    }
}

impl From<RecordOutcome> for RecordResult {
    fn from(outcome: RecordOutcome) -> Self {
        match outcome {
            RecordOutcome::Recorded { secs } => RecordResult::Recorded(secs),
            RecordOutcome::CallerHungUp => RecordResult::CallerHungUp,
            RecordOutcome::Failed(error) => RecordResult::Failed(error),
        }
    }
}
