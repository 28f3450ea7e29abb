//! The state of one call: what the switch told us about it, the flags KAZOO keeps and its
//! hangup. The backend that took the call holds it (an `Arc<Call>`) and applies channel events
//! whenever they happen, while a module runs or between nodes.
//!
//! Events from the switch are applied with KAZOO's rules (kazoo-semantics.md §3.5):
//! - `CHANNEL_BRIDGE` for any call id sets `bridged`, which is never cleared;
//! - the first `CHANNEL_DESTROY` or `CHANNEL_DISCONNECTED` for this call's id records the
//!   hangup info and marks the call destroyed;
//! - `CHANNEL_TRANSFEREE` marks the call transferred (no termination callbacks then run).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::hangup::{DEFAULT_HANGUP_CODE, Hangup, HangupCause};
use crate::trace::Trace;

/// The fixed facts of a call, as the switch routed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallDetails {
    pub call_id: String,
    pub account_id: String,
    /// The dialed number.
    pub request: String,
    pub caller_id_name: Option<String>,
    pub caller_id_number: Option<String>,
    pub callee_id_name: Option<String>,
    pub callee_id_number: Option<String>,
    pub from_user: Option<String>,
    pub from_realm: Option<String>,
    pub to_user: Option<String>,
    pub to_realm: Option<String>,
    pub authorizing_type: Option<String>,
    pub authorizing_id: Option<String>,
    /// The headers of the INVITE that modules may see (the SIP backend filters them by the
    /// operator's setting), as (name, value) in the order they came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sip_headers: Vec<(String, String)>,
}

/// A caller id: what the far ends of the call's legs are shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerId {
    pub name: Option<String>,
    pub number: Option<String>,
}

/// Flags the host keeps on a call. Once true, a flag stays true.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallFlags {
    /// Set when the switch reports a CHANNEL_BRIDGE for the call.
    pub bridged: bool,
    /// Set by a module (voicemail) when a recording completed.
    pub message_left: bool,
}

/// An event the switch reports about a channel (the subset of KAZOO's call events cfhost acts on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEvent {
    /// Two legs were bridged. Applies whatever the call id (as in KAZOO).
    Bridge { call_id: String },
    /// A channel was destroyed.
    Destroy(HangupEvent),
    /// A channel was disconnected; treated as a destroy.
    Disconnected(HangupEvent),
    /// The call was transferred away: the executor stops and runs no callbacks.
    Transferee { call_id: String },
}

/// The fields of a destroy/disconnect event that make the hangup info.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HangupEvent {
    pub call_id: String,
    pub disposition: Option<String>,
    pub application_response: Option<String>,
    pub hangup_cause: Option<HangupCause>,
    pub hangup_code: Option<String>,
}

impl HangupEvent {
    /// A destroy of `call_id` with `hangup`'s cause, code and disposition.
    pub fn of(call_id: &str, hangup: &Hangup) -> Self {
        HangupEvent {
            call_id: call_id.to_string(),
            disposition: hangup.disposition.clone(),
            application_response: None,
            hangup_cause: Some(hangup.cause.clone()),
            hangup_code: Some(hangup.code.clone()),
        }
    }

    /// KAZOO's hangup info: the cause from Application-Response, else Hangup-Cause, else
    /// `UNSPECIFIED`; the code from Hangup-Code, else `sip:600`.
    pub fn hangup(&self) -> Hangup {
        Hangup {
            disposition: self.disposition.clone(),
            cause: self
                .application_response
                .clone()
                .map(HangupCause::from)
                .or_else(|| self.hangup_cause.clone())
                .unwrap_or(HangupCause::UNSPECIFIED),
            code: self
                .hangup_code
                .clone()
                .unwrap_or_else(|| DEFAULT_HANGUP_CODE.to_string()),
        }
    }
}

/// What changes during the call.
#[derive(Debug)]
struct Mutable {
    flags: CallFlags,
    /// The caller id now: the switch's, until a module sets another.
    caller_id: CallerId,
    hangup: Option<Hangup>,
    transferred: bool,
}

/// One call: its details and its changing state, shared by the backend that took it, the
/// executor and the host imports of every module instance running for it.
#[derive(Debug)]
pub struct Call {
    details: CallDetails,
    state: Mutex<Mutable>,
    /// Becomes true when the channel is destroyed or transferred away.
    over: tokio::sync::watch::Sender<bool>,
    /// What happened during the call: nodes, module output, and the switch's own events.
    trace: Trace,
}

impl Call {
    /// A new call, with both flags false and no hangup info.
    pub fn new(details: CallDetails) -> Self {
        let caller_id = CallerId {
            name: details.caller_id_name.clone(),
            number: details.caller_id_number.clone(),
        };
        Call {
            details,
            state: Mutex::new(Mutable {
                flags: CallFlags::default(),
                caller_id,
                hangup: None,
                transferred: false,
            }),
            over: tokio::sync::watch::channel(false).0,
            trace: Trace::default(),
        }
    }

    /// The call's trace; a switch backend adds its own events with [`Trace::switch`].
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The call's fixed facts, as the switch routed it (the caller id there is the switch's;
    /// [`Call::caller_id`] is the one in force).
    pub fn details(&self) -> &CallDetails {
        &self.details
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Mutable> {
        // A panic while holding this lock cannot leave the plain data inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The flags now.
    pub fn flags(&self) -> CallFlags {
        self.state().flags
    }

    /// The caller id in force: the switch's, or the one a module set since.
    pub fn caller_id(&self) -> CallerId {
        self.state().caller_id.clone()
    }

    /// Sets the caller id for what follows (KAZOO's `kapps_call:set_caller_id_*`): the legs
    /// rung after it, the modules that read it, the notifications. A `None` part is left as
    /// it is.
    pub fn set_caller_id(&self, name: Option<String>, number: Option<String>) {
        let mut state = self.state();
        if name.is_some() {
            state.caller_id.name = name;
        }
        if number.is_some() {
            state.caller_id.number = number;
        }
    }

    /// Marks that a voicemail message was left.
    pub fn set_message_left(&self) {
        self.state().flags.message_left = true;
    }

    /// The hangup of the first destroy event, if one arrived.
    pub fn hangup(&self) -> Option<Hangup> {
        self.state().hangup.clone()
    }

    /// Whether the channel is gone (a destroy or disconnect event arrived).
    pub fn is_destroyed(&self) -> bool {
        self.state().hangup.is_some()
    }

    /// Whether the call was transferred away.
    pub fn is_transferred(&self) -> bool {
        self.state().transferred
    }

    /// Applies a switch event with KAZOO's rules. Safe at any moment, from any task.
    pub fn apply(&self, event: &ChannelEvent) {
        let mut state = self.state();
        match event {
            ChannelEvent::Bridge { .. } => state.flags.bridged = true,
            ChannelEvent::Destroy(hangup) | ChannelEvent::Disconnected(hangup) => {
                if hangup.call_id == self.details.call_id && state.hangup.is_none() {
                    state.hangup = Some(hangup.hangup());
                }
            }
            ChannelEvent::Transferee { call_id } => {
                if *call_id == self.details.call_id {
                    state.transferred = true;
                }
            }
        }
        let over = state.hangup.is_some() || state.transferred;
        drop(state);
        if over {
            self.over.send_replace(true);
        }
    }

    /// Completes once the channel is destroyed or transferred away (at once if it already
    /// is): what a backend waits on beside the far end while a bridge rings or a message
    /// records.
    pub async fn over(&self) {
        let mut over = self.over.subscribe();
        let _ = over.wait_for(|over| *over).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::HangupCause;

    fn call() -> Call {
        Call::new(CallDetails {
            call_id: "c1".into(),
            ..Default::default()
        })
    }

    fn destroy(call_id: &str) -> HangupEvent {
        HangupEvent {
            call_id: call_id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn hangup_cause_prefers_application_response_then_defaults() {
        let mut event = destroy("c1");
        assert_eq!(event.hangup().cause, "UNSPECIFIED");
        assert_eq!(event.hangup().code, "sip:600");
        event.hangup_cause = Some(HangupCause::NORMAL_CLEARING);
        assert_eq!(event.hangup().cause, "NORMAL_CLEARING");
        event.application_response = Some("NO_ANSWER".into());
        event.hangup_code = Some("sip:480".into());
        assert_eq!(event.hangup().cause, "NO_ANSWER");
        assert_eq!(event.hangup().code, "sip:480");
    }

    #[test]
    fn only_the_first_destroy_for_this_call_counts() {
        let call = call();
        call.apply(&ChannelEvent::Destroy(destroy("other-leg")));
        assert!(!call.is_destroyed());
        let mut first = destroy("c1");
        first.hangup_cause = Some(HangupCause::ORIGINATOR_CANCEL);
        call.apply(&ChannelEvent::Disconnected(first));
        let mut second = destroy("c1");
        second.hangup_cause = Some(HangupCause::NORMAL_CLEARING);
        call.apply(&ChannelEvent::Destroy(second));
        assert_eq!(call.hangup().unwrap().cause, "ORIGINATOR_CANCEL");
    }

    #[test]
    fn bridge_from_any_leg_sets_bridged_for_good() {
        let call = call();
        call.apply(&ChannelEvent::Bridge {
            call_id: "another-leg".into(),
        });
        call.apply(&ChannelEvent::Destroy(destroy("c1")));
        assert!(call.flags().bridged);
        assert!(!call.flags().message_left);
    }

    #[test]
    fn a_caller_id_set_replaces_the_switchs_part_by_part() {
        let call = Call::new(CallDetails {
            caller_id_name: Some("Switch".into()),
            caller_id_number: Some("+15550001111".into()),
            ..Default::default()
        });
        call.set_caller_id(None, Some("+15559990000".into()));
        assert_eq!(
            call.caller_id(),
            CallerId {
                name: Some("Switch".into()),
                number: Some("+15559990000".into()),
            }
        );
        call.set_caller_id(Some("Set".into()), None);
        assert_eq!(call.caller_id().name.as_deref(), Some("Set"));
        assert_eq!(
            call.details().caller_id_number.as_deref(),
            Some("+15550001111"),
            "the details keep what the switch said"
        );
    }

    #[test]
    fn transfer_of_another_call_is_ignored() {
        let call = call();
        call.apply(&ChannelEvent::Transferee {
            call_id: "x".into(),
        });
        assert!(!call.is_transferred());
        call.apply(&ChannelEvent::Transferee {
            call_id: "c1".into(),
        });
        assert!(call.is_transferred());
    }

    #[tokio::test]
    async fn a_backend_can_wait_for_the_end_of_the_channel() {
        let call = std::sync::Arc::new(call());
        let waiting = tokio::spawn({
            let call = std::sync::Arc::clone(&call);
            async move { call.over().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        call.apply(&ChannelEvent::Destroy(destroy("c1")));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the wait ends with the channel")
            .unwrap();
        call.over().await;
    }
}
