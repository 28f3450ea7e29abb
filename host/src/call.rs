//! The state of one call: what the switch told us about it, the flags KAZOO keeps, its hangup
//! info, and the termination callbacks registered on it.
//!
//! Events from the switch are applied with KAZOO's rules (kazoo-semantics.md §3.5):
//! - `CHANNEL_BRIDGE` for any call id sets `bridged`, which is never cleared;
//! - the first `CHANNEL_DESTROY` or `CHANNEL_DISCONNECTED` for this call's id records the
//!   hangup info and marks the call destroyed;
//! - `CHANNEL_TRANSFEREE` marks the call transferred (no termination callbacks then run).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::bindings::{CallFlags, CallInfo, HangupInfo};

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
    pub hangup_cause: Option<String>,
    pub hangup_code: Option<String>,
}

impl HangupEvent {
    /// KAZOO's hangup info: the cause from Application-Response, else Hangup-Cause, else
    /// `UNSPECIFIED`; the code from Hangup-Code, else `sip:600`.
    pub fn hangup_info(&self) -> HangupInfo {
        HangupInfo {
            disposition: self.disposition.clone(),
            hangup_cause: self
                .application_response
                .clone()
                .or_else(|| self.hangup_cause.clone())
                .unwrap_or_else(|| "UNSPECIFIED".to_string()),
            hangup_code: self
                .hangup_code
                .clone()
                .unwrap_or_else(|| "sip:600".to_string()),
        }
    }
}

/// What changes during the call.
#[derive(Debug)]
struct Mutable {
    flags: CallFlags,
    hangup: Option<HangupInfo>,
    transferred: bool,
}

/// One call: its details and its changing state, shared by the executor and the host imports
/// of every module instance running for it.
#[derive(Debug)]
pub struct Call {
    details: CallDetails,
    state: Mutex<Mutable>,
}

impl Call {
    /// A new call, with both flags false and no hangup info.
    pub fn new(details: CallDetails) -> Self {
        Call {
            details,
            state: Mutex::new(Mutable {
                flags: CallFlags {
                    bridged: false,
                    message_left: false,
                },
                hangup: None,
                transferred: false,
            }),
        }
    }

    /// The call's fixed facts.
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

    /// Marks that a voicemail message was left.
    pub fn set_message_left(&self) {
        self.state().flags.message_left = true;
    }

    /// The hangup info of the first destroy event, if one arrived.
    pub fn hangup_info(&self) -> Option<HangupInfo> {
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

    /// Applies a switch event with KAZOO's rules.
    pub fn apply(&self, event: &ChannelEvent) {
        let mut state = self.state();
        match event {
            ChannelEvent::Bridge { .. } => state.flags.bridged = true,
            ChannelEvent::Destroy(hangup) | ChannelEvent::Disconnected(hangup) => {
                if hangup.call_id == self.details.call_id && state.hangup.is_none() {
                    state.hangup = Some(hangup.hangup_info());
                }
            }
            ChannelEvent::Transferee { call_id } => {
                if *call_id == self.details.call_id {
                    state.transferred = true;
                }
            }
        }
    }

    /// The call as a module sees it now.
    pub fn info(&self) -> CallInfo {
        let d = &self.details;
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
            flags: self.flags(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(event.hangup_info().hangup_cause, "UNSPECIFIED");
        assert_eq!(event.hangup_info().hangup_code, "sip:600");
        event.hangup_cause = Some("NORMAL_CLEARING".into());
        assert_eq!(event.hangup_info().hangup_cause, "NORMAL_CLEARING");
        event.application_response = Some("NO_ANSWER".into());
        event.hangup_code = Some("sip:480".into());
        assert_eq!(event.hangup_info().hangup_cause, "NO_ANSWER");
        assert_eq!(event.hangup_info().hangup_code, "sip:480");
    }

    #[test]
    fn only_the_first_destroy_for_this_call_counts() {
        let call = call();
        call.apply(&ChannelEvent::Destroy(destroy("other-leg")));
        assert!(!call.is_destroyed());
        let mut first = destroy("c1");
        first.hangup_cause = Some("ORIGINATOR_CANCEL".into());
        call.apply(&ChannelEvent::Disconnected(first));
        let mut second = destroy("c1");
        second.hangup_cause = Some("NORMAL_CLEARING".into());
        call.apply(&ChannelEvent::Destroy(second));
        assert_eq!(
            call.hangup_info().unwrap().hangup_cause,
            "ORIGINATOR_CANCEL"
        );
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
}
