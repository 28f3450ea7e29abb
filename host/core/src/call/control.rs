//! What modules ask a switch to do, and what it answers: cfhost's own types, which the
//! `call-control` import converts from and to the WIT bindings (`imports/call_control.rs`), so
//! that a backend never depends on the WIT.

use crate::hangup::Hangup;

/// A place to ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    /// A SIP URI or other address the switch understands; `None`: the switch's default for
    /// the id.
    pub address: Option<String>,
}

/// How the endpoints of a bridge are rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingStrategy {
    /// All endpoints at once; the first to answer wins.
    Simultaneous,
    /// One after another, each for the timeout.
    Single,
}

/// Ring these endpoints and bridge the call to the first that answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRequest {
    pub endpoints: Vec<Endpoint>,
    /// Seconds to ring (each endpoint, for [`RingStrategy::Single`]) before giving up.
    pub timeout_secs: u32,
    /// Seconds to wait before ringing.
    pub delay_secs: u32,
    pub strategy: RingStrategy,
}

/// How a bridge ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeOutcome {
    /// Somebody answered and the call was bridged; it is over when this is returned.
    Answered,
    /// Nobody answered, or the far end refused: the cause and code say why.
    Failed(Hangup),
    /// The caller hung up while the endpoints rang.
    CallerHungUp,
}

/// How recording a voicemail message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// A message of this many seconds was recorded and kept.
    Recorded { secs: u32 },
    /// The caller hung up before anything worth keeping was recorded.
    CallerHungUp,
    /// The recording failed.
    Failed(String),
}
