//! One call: its fixed details, changing state and trace ([`state`]), and what modules ask its
//! switch to do ([`control`]). How it ends is [`crate::hangup`], re-exported here.

pub mod control;
pub mod state;

pub use crate::hangup::{Hangup, HangupCause};
pub use control::{BridgeOutcome, BridgeRequest, Endpoint, RecordOutcome, RingStrategy};
pub use state::{Call, CallDetails, CallFlags, CallerId, ChannelEvent, HangupEvent};
