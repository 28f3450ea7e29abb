//! The call-control boundary. A [`Switch`] carries out what modules ask (answer, bridge, record,
//! hang up) for one call, in cfhost's own types ([`crate::call::control`]); the backend that
//! took the call also reports channel events on its [`Call`] whenever they happen (a BYE while
//! a module runs, a CANCEL while a bridge rings), and the executor applies KAZOO's rules to
//! them. The simulator ([`simulator`]) is the embedded backend; SIP is another (`cfhost-sip`).
//!
//! The trait uses `async_trait` rather than native `async fn`: backends are held as
//! `Arc<dyn Switch>`, and native async trait methods are not dyn-compatible.

pub mod gate;
pub mod simulator;

use std::time::SystemTime;

use crate::call::{BridgeOutcome, BridgeRequest, Call, HangupCause, RecordOutcome};

pub use gate::RingGate;
pub use simulator::{
    BridgeBehaviour, BridgeHook, SimulatedSwitch, SimulatorBehaviour, VoicemailBehaviour,
};

/// Why a switch could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// The channel is gone (hung up, transferred): there is nothing left to act on.
    #[error("the channel is gone")]
    Gone,
    /// The backend failed (a network or protocol error, a resource it lacks).
    #[error("the switch failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A call-control backend for one or more calls.
#[async_trait::async_trait]
pub trait Switch: Send + Sync {
    /// Answers the call.
    async fn answer(&self, call: &Call) -> Result<(), SwitchError>;
    /// Rings the endpoints and bridges the call to the first that answers.
    async fn bridge(
        &self,
        call: &Call,
        request: &BridgeRequest,
    ) -> Result<BridgeOutcome, SwitchError>;
    /// Records a voicemail message into `box_id`, up to `max_secs`.
    async fn record_voicemail(
        &self,
        call: &Call,
        box_id: &str,
        max_secs: u32,
    ) -> Result<RecordOutcome, SwitchError>;
    /// Hangs the call up with `cause`.
    async fn hangup(&self, call: &Call, cause: &HangupCause) -> Result<(), SwitchError>;
    /// The switch's clock: what notifications are stamped with.
    fn now(&self) -> SystemTime;
}
