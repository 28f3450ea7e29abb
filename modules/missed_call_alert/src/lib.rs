//! `missed_call_alert`: on an inbound call, registers a termination callback that publishes a
//! `missed_call` notification when the call ended neither bridged nor with a voicemail message.
//! KAZOO's `cf_missed_call_alert` (kazoo-semantics.md §1), rule for rule.

use cfhost_sdk::notify::{MissedCall, Notification, NotifyField};
use cfhost_sdk::{CallInfo, CallflowModule, Capability, Description, HangupInfo, Outcome, log};
use serde::Deserialize;

struct MissedCallAlert;

/// The part of the node data the callback needs; it is also the registered state.
#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    recipients: Vec<serde_json::Value>,
}

/// Authorizing types of calls that come from outside the account: a carrier resource, a trunk
/// PBX; a call with none comes from another account.
fn is_inbound(authorizing_type: Option<&str>) -> bool {
    matches!(authorizing_type, None | Some("resource") | Some("sys_info"))
}

impl CallflowModule for MissedCallAlert {
    fn describe() -> Description {
        cfhost_sdk::description(
            "missed_call_alert",
            env!("CARGO_PKG_VERSION"),
            "Emails recipients about inbound calls that were missed and left no voicemail",
            include_str!("schema.json"),
            vec![
                Capability::Callbacks,
                Capability::Directory,
                Capability::Notify,
                Capability::Log,
            ],
        )
    }

    fn handle(call: CallInfo, data: &str) -> Result<Outcome, String> {
        let authorizing_type = call.authorizing_type.as_deref();
        if is_inbound(authorizing_type) {
            // The whole node data is the state, as KAZOO passes `[Data]`: identical nodes
            // register once.
            if let Err(e) = cfhost_sdk::register_termination_raw(data.as_bytes()) {
                log::error(&format!("could not register the missed-call callback: {e}"));
            }
        } else {
            log::info(&format!(
                "internal call (authorizing type {}): no missed-call alert",
                authorizing_type.unwrap_or_default()
            ));
        }
        Ok(cfhost_sdk::next())
    }

    fn on_termination(
        call: CallInfo,
        hangup: Option<HangupInfo>,
        state: Vec<u8>,
    ) -> Result<(), String> {
        if call.flags.bridged || call.flags.message_left {
            log::info(&format!(
                "call was bridged ({}) or a message was left ({}): doing nothing",
                call.flags.bridged, call.flags.message_left
            ));
            return Ok(());
        }
        let data: Data = cfhost_sdk::termination_state(&state)?;
        let to = recipients::resolve(
            &data.recipients,
            recipients::MISSED_CALL_ALERT,
            cfhost_sdk::user_emails,
        );
        let notify = match hangup {
            Some(info) => NotifyField::Hangup(info),
            None => NotifyField::Omitted,
        };
        cfhost_sdk::notify::publish(&Notification::MissedCall(MissedCall { to, notify }))
    }
}

cfhost_sdk::export_module!(MissedCallAlert);
