//! The embedded call-control backend: a simulated switch on a virtual clock, so a run is
//! instant and deterministic. Each call has its own [`SimulatedSwitch`] whose behaviour the
//! scenario sets: what happens to every bridge and at the voicemail prompt.
//!
//! | action | behaviour | virtual time | events | result |
//! |---|---|---|---|---|
//! | bridge | `answer` | delay + 5 s ring + talk | BRIDGE, then DESTROY `NORMAL_CLEARING` / `sip:200` | answered |
//! | bridge | `no_answer` | delay + timeout (× endpoints for `single`) | none | failed `NO_ANSWER` / `sip:480` |
//! | bridge | `busy` | delay + 1 s | none | failed `USER_BUSY` / `sip:486` |
//! | bridge | `transfer` | delay + 5 s | BRIDGE, then TRANSFEREE | answered |
//! | record | `leave_message` | message length (≤ max) | DESTROY `NORMAL_CLEARING` after it | recorded |
//! | record | `hangup` | 3 s | DESTROY `NORMAL_CLEARING` | caller hung up |
//! | hangup | any | 0 | DESTROY with the cause | |
//!
//! Once the channel is destroyed, bridges and recordings report that the caller hung up.
//!
//! A hook can run before every bridge ([`SimulatedSwitch::before_bridge`]): real ringing time,
//! or a [`RingGate`](super::RingGate) that holds many calls in flight at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::{Switch, SwitchError};
use crate::call::{
    BridgeOutcome, BridgeRequest, Call, ChannelEvent, Hangup, HangupCause, HangupEvent,
    RecordOutcome, RingStrategy,
};

/// What happens to every bridge of a simulated call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BridgeBehaviour {
    Answer,
    #[default]
    NoAnswer,
    Busy,
    /// Answered, then transferred away: the call ends without termination callbacks.
    Transfer,
}

/// What the caller does at a voicemail prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailBehaviour {
    LeaveMessage,
    #[default]
    Hangup,
}

/// The behaviour of one simulated call (the scenario's `behaviour` object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorBehaviour {
    pub bridge: BridgeBehaviour,
    pub voicemail: VoicemailBehaviour,
    /// Seconds an answered bridge talks before both sides hang up.
    pub talk_secs: u32,
    /// Seconds of a left message.
    pub message_secs: u32,
}

impl Default for SimulatorBehaviour {
    fn default() -> Self {
        SimulatorBehaviour {
            bridge: BridgeBehaviour::default(),
            voicemail: VoicemailBehaviour::default(),
            talk_secs: 60,
            message_secs: 30,
        }
    }
}

const RING_BEFORE_ANSWER_SECS: u64 = 5;
const BUSY_SECS: u64 = 1;
const HANGUP_AT_PROMPT_SECS: u64 = 3;

/// A hook a [`SimulatedSwitch`] awaits before every bridge.
pub type BridgeHook = Box<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// A simulated switch for one call.
pub struct SimulatedSwitch {
    behaviour: SimulatorBehaviour,
    start: SystemTime,
    elapsed_secs: AtomicU64,
    before_bridge: Option<BridgeHook>,
}

impl SimulatedSwitch {
    /// A switch whose virtual clock starts at `start`.
    pub fn new(behaviour: SimulatorBehaviour, start: SystemTime) -> Self {
        SimulatedSwitch {
            behaviour,
            start,
            elapsed_secs: AtomicU64::new(0),
            before_bridge: None,
        }
    }

    /// This switch, awaiting `hook` before every bridge (in real time, outside the virtual
    /// clock).
    pub fn before_bridge(mut self, hook: BridgeHook) -> Self {
        self.before_bridge = Some(hook);
        self
    }

    /// Seconds of virtual time since the call started.
    pub fn elapsed_secs(&self) -> u64 {
        self.elapsed_secs.load(Ordering::Relaxed)
    }

    fn advance(&self, secs: u64) {
        self.elapsed_secs.fetch_add(secs, Ordering::Relaxed);
    }

    fn destroy(call: &Call, cause: &HangupCause, code: Option<&str>) {
        call.apply(&ChannelEvent::Destroy(HangupEvent {
            call_id: call.details().call_id.clone(),
            hangup_cause: Some(cause.clone()),
            hangup_code: code.map(str::to_string),
            ..HangupEvent::default()
        }));
    }

    fn other_leg(call: &Call) -> String {
        format!("{}-leg-b", call.details().call_id)
    }
}

#[async_trait::async_trait]
impl Switch for SimulatedSwitch {
    async fn answer(&self, call: &Call) -> Result<(), SwitchError> {
        if call.is_destroyed() {
            return Err(SwitchError::Gone);
        }
        Ok(())
    }

    async fn bridge(
        &self,
        call: &Call,
        request: &BridgeRequest,
    ) -> Result<BridgeOutcome, SwitchError> {
        if let Some(hook) = &self.before_bridge {
            hook().await;
        }
        if call.is_destroyed() {
            return Ok(BridgeOutcome::CallerHungUp);
        }
        self.advance(u64::from(request.delay_secs));
        let outcome = match self.behaviour.bridge {
            BridgeBehaviour::Answer => {
                self.advance(RING_BEFORE_ANSWER_SECS);
                call.apply(&ChannelEvent::Bridge {
                    call_id: Self::other_leg(call),
                });
                self.advance(u64::from(self.behaviour.talk_secs));
                Self::destroy(call, &HangupCause::NORMAL_CLEARING, Some("sip:200"));
                BridgeOutcome::Answered
            }
            BridgeBehaviour::NoAnswer => {
                let rounds = match request.strategy {
                    RingStrategy::Simultaneous => 1,
                    RingStrategy::Single => request.endpoints.len().max(1) as u64,
                };
                self.advance(rounds * u64::from(request.timeout_secs));
                BridgeOutcome::Failed(Hangup::new(HangupCause::NO_ANSWER, 480))
            }
            BridgeBehaviour::Busy => {
                self.advance(BUSY_SECS);
                BridgeOutcome::Failed(Hangup::new(HangupCause::USER_BUSY, 486))
            }
            BridgeBehaviour::Transfer => {
                self.advance(RING_BEFORE_ANSWER_SECS);
                call.apply(&ChannelEvent::Bridge {
                    call_id: Self::other_leg(call),
                });
                call.apply(&ChannelEvent::Transferee {
                    call_id: call.details().call_id.clone(),
                });
                BridgeOutcome::Answered
            }
        };
        Ok(outcome)
    }

    async fn record_voicemail(
        &self,
        call: &Call,
        _box_id: &str,
        max_secs: u32,
    ) -> Result<RecordOutcome, SwitchError> {
        if call.is_destroyed() {
            return Ok(RecordOutcome::CallerHungUp);
        }
        let outcome = match self.behaviour.voicemail {
            VoicemailBehaviour::LeaveMessage => {
                let secs = self.behaviour.message_secs.min(max_secs);
                self.advance(u64::from(secs));
                Self::destroy(call, &HangupCause::NORMAL_CLEARING, Some("sip:200"));
                RecordOutcome::Recorded { secs }
            }
            VoicemailBehaviour::Hangup => {
                self.advance(HANGUP_AT_PROMPT_SECS);
                Self::destroy(call, &HangupCause::NORMAL_CLEARING, Some("sip:200"));
                RecordOutcome::CallerHungUp
            }
        };
        Ok(outcome)
    }

    async fn hangup(&self, call: &Call, cause: &HangupCause) -> Result<(), SwitchError> {
        Self::destroy(call, cause, None);
        Ok(())
    }

    fn now(&self) -> SystemTime {
        self.start + Duration::from_secs(self.elapsed_secs())
    }
}
