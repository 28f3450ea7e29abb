//! `notification`: publishes a `cf_notification` for an account-defined template, either while
//! the callflow runs (`send_at: callflow_exec`) or when the call ends (`channel_destroy`, the
//! default). KAZOO's `cf_notification` (kazoo-semantics.md §2), rule for rule.

use cfhost_sdk::notify::{CfNotification, Notification, NotifyField};
use cfhost_sdk::{CallInfo, CallflowModule, Capability, Description, HangupInfo, Outcome, log};
use serde_json::Value;

struct NotificationModule;

impl CallflowModule for NotificationModule {
    fn describe() -> Description {
        cfhost_sdk::description(
            "notification",
            env!("CARGO_PKG_VERSION"),
            "Sends an account-defined notification template, now or when the call ends",
            include_str!("schema.json"),
            vec![
                Capability::Callbacks,
                Capability::Directory,
                Capability::Notify,
                Capability::Log,
            ],
        )
    }

    fn handle(_call: CallInfo, data: &str) -> Result<Outcome, String> {
        let node: Value = cfhost_sdk::parse_data(data)?;
        match non_empty_str(&node, "send_at").unwrap_or("channel_destroy") {
            "channel_destroy" => {
                if let Err(e) = cfhost_sdk::register_termination_raw(data.as_bytes()) {
                    log::error(&format!(
                        "could not register the notification callback: {e}"
                    ));
                }
            }
            "callflow_exec" => send(&node, NotifyField::Empty)?,
            other => log::warn(&format!("unknown send_at {other:?}: nothing will be sent")),
        }
        Ok(cfhost_sdk::next())
    }

    fn on_termination(
        _call: CallInfo,
        hangup: Option<HangupInfo>,
        state: Vec<u8>,
    ) -> Result<(), String> {
        let node: Value = cfhost_sdk::termination_state(&state)?;
        let notify = cfhost_sdk::notify::at_hangup(hangup);
        send(&node, notify)
    }
}

/// Publishes the notification the node describes; without a `template_id`, logs and sends
/// nothing. The call flags are not checked: they are reported by the host.
fn send(node: &Value, notify: NotifyField) -> Result<(), String> {
    let Some(template_id) = non_empty_str(node, "template_id") else {
        log::info("no template_id: no notification sent");
        return Ok(());
    };
    let recipients = node
        .get("recipients")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let to = recipients::resolve(
        recipients,
        recipients::NOTIFICATION,
        cfhost_sdk::user_emails,
    );
    let raw = |key: &str| node.get(key).map(Value::to_string);
    cfhost_sdk::notify::publish(&Notification::CfNotification(CfNotification {
        template_id: template_id.to_string(),
        to,
        notify,
        comments: raw("comments"),
        notification_media: raw("notification_media"),
    }))
}

fn non_empty_str<'a>(node: &'a Value, key: &str) -> Option<&'a str> {
    node.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

cfhost_sdk::export_module!(NotificationModule);
