//! One call: its fixed details and changing state ([`state`]), how it ends ([`hangup`]), and
//! what modules ask its switch to do ([`control`]).

pub mod control;
pub mod hangup;
pub mod state;

pub use control::{BridgeOutcome, BridgeRequest, Endpoint, RecordOutcome, RingStrategy};
pub use hangup::{Hangup, HangupCause};
pub use state::{Call, CallDetails, CallFlags, ChannelEvent, HangupEvent};
