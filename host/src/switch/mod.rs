//! Call-control backends. A switch carries out what modules ask (answer, bridge, record, hang
//! up) and reports channel events on the [`Call`], which applies KAZOO's rules to them.
//! The simulator ([`simulator`]) is the embedded backend.

pub mod hooked;
pub mod simulator;

use std::time::SystemTime;

use crate::bindings::cfhost::callflow::call_control::{BridgeRequest, BridgeResult, RecordResult};
use crate::call::Call;

pub use hooked::{BridgeHook, HookedSwitch, RingGate};
pub use simulator::{BridgeBehaviour, SimulatedSwitch, SimulatorBehaviour, VoicemailBehaviour};

/// A call-control backend for one or more calls.
#[async_trait::async_trait]
pub trait Switch: Send + Sync {
    /// Answers the call.
    async fn answer(&self, call: &Call) -> Result<(), String>;
    /// Rings the endpoints and bridges the call to the first that answers.
    async fn bridge(&self, call: &Call, request: &BridgeRequest) -> BridgeResult;
    /// Records a voicemail message into `box_id`.
    async fn record_voicemail(&self, call: &Call, box_id: &str, max_secs: u32) -> RecordResult;
    /// Hangs the call up with `cause`.
    async fn hangup(&self, call: &Call, cause: &str);
    /// The switch's clock: what notifications are stamped with.
    fn now(&self) -> SystemTime;
}
