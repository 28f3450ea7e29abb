//! `missed_call_alert`: on an inbound call, registers a termination callback that publishes a
//! `missed_call` notification when the call ended neither bridged nor with a voicemail message.
//! KAZOO's `cf_missed_call_alert` (kazoo-semantics.md §1), rule for rule.

use cfhost_sdk::notify::{MissedCall, Notification};
use cfhost_sdk::{Call, CallflowModule, Capability, Description, HangupInfo, Outcome, log};
use schemars::JsonSchema;
use serde::Deserialize;

struct MissedCallAlert;

/// Email recipients when an inbound call ends unanswered and without a voicemail message.
/// The node data is also the registered callback state.
#[derive(Deserialize, JsonSchema)]
#[schemars(title = "missed_call_alert")]
struct Data {
    /// Email addresses, user ids, or both; none means the template's own recipients.
    #[serde(default)]
    #[schemars(with = "Vec<recipients::Recipient>")]
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

    fn handle(call: Call, data: &str) -> Result<Outcome, String> {
        let authorizing_type = call.authorizing_type();
        let authorizing_type = authorizing_type.as_deref();
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
        call: Call,
        hangup: Option<HangupInfo>,
        state: Vec<u8>,
    ) -> Result<(), String> {
        let flags = call.flags();
        if flags.bridged || flags.message_left {
            log::info(&format!(
                "call was bridged ({}) or a message was left ({}): doing nothing",
                flags.bridged, flags.message_left
            ));
            return Ok(());
        }
        let data: Data = cfhost_sdk::termination_state(&state)?;
        let to = recipients::resolve(
            &data.recipients,
            recipients::MISSED_CALL_ALERT,
            cfhost_sdk::user_emails,
        );
        let notify = cfhost_sdk::notify::at_hangup(hangup);
        cfhost_sdk::notify::publish(&Notification::MissedCall(MissedCall { to, notify }))?;
        Ok(())
    }
}

cfhost_sdk::export_module!(MissedCallAlert);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_file_is_the_data_types_schema() {
        cfhost_sdk::testing::check_schema_file::<Data>(
            env!("CARGO_MANIFEST_DIR"),
            "src/schema.json",
        );
    }
    use cfhost_sdk::CallFlags;
    use cfhost_sdk::notify::NotifyField;
    use cfhost_sdk::testing::ScriptedCall;
    use serde_json::json;

    fn data() -> serde_json::Value {
        json!({"recipients": [{"type": "user", "id": "u1"}, {"type": "email", "id": "boss@example.com"}]})
    }

    #[test]
    fn an_unanswered_inbound_call_alerts_the_recipients_once() {
        let call = ScriptedCall::new().user_with_email("u1", "desk@example.com");
        assert_eq!(
            call.handle::<MissedCallAlert>(&data()),
            Ok(cfhost_sdk::next())
        );
        assert_eq!(call.callbacks().len(), 1);
        assert_eq!(call.end::<MissedCallAlert>(None), [Ok(())]);
        let notifications = call.notifications();
        let [Notification::MissedCall(alert)] = notifications.as_slice() else {
            panic!("one missed-call alert")
        };
        assert_eq!(alert.to, ["desk@example.com", "boss@example.com"]);
        assert_eq!(alert.notify, NotifyField::Omitted);
    }

    #[test]
    fn internal_calls_register_nothing_and_answered_calls_alert_nobody() {
        let internal = ScriptedCall::new().authorizing_type("device");
        internal.handle::<MissedCallAlert>(&data()).unwrap();
        assert!(internal.callbacks().is_empty());

        let answered = ScriptedCall::new();
        answered.handle::<MissedCallAlert>(&data()).unwrap();
        let answered = answered.flags(CallFlags {
            bridged: true,
            message_left: false,
        });
        assert_eq!(answered.end::<MissedCallAlert>(None), [Ok(())]);
        assert!(answered.notifications().is_empty());
    }
}
