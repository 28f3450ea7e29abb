//! `notification`: publishes a `cf_notification` for an account-defined template, either while
//! the callflow runs (`send_at: callflow_exec`) or when the call ends (`channel_destroy`, the
//! default). KAZOO's `cf_notification` (kazoo-semantics.md §2), rule for rule.

use cfhost_sdk::notify::{CfNotification, Notification, NotifyField};
use cfhost_sdk::{Call, CallflowModule, Capability, Description, HangupInfo, Outcome, log};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

struct NotificationModule;

/// Send an account-defined notification template, now or when the call ends. The node data
/// is also the registered callback state.
#[derive(Deserialize, JsonSchema)]
#[schemars(title = "notification")]
struct Data {
    /// Email addresses, user ids, or both; none means the template's own recipients.
    #[serde(default)]
    #[schemars(with = "Vec<recipients::Recipient>")]
    recipients: Vec<Value>,
    /// `channel_destroy` (the default, also when empty): when the call ends; `callflow_exec`:
    /// now. Any other value sends nothing.
    #[serde(default = "default_send_at")]
    send_at: String,
    /// The account's notification template; without it nothing is sent.
    template_id: Option<String>,
    /// Text passed to the template as `call.comments` (any JSON, copied as it is).
    comments: Option<Value>,
    /// Media to notify with, e.g. `["email", "sms"]` (copied as it is).
    #[schemars(with = "Option<Vec<String>>")]
    notification_media: Option<Value>,
}

fn default_send_at() -> String {
    "channel_destroy".to_string()
}

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

    fn handle(_call: Call, data: &str) -> Result<Outcome, String> {
        let node: Data = cfhost_sdk::parse_data(data)?;
        let send_at = Some(node.send_at.as_str()).filter(|s| !s.is_empty());
        match send_at.unwrap_or("channel_destroy") {
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
        _call: Call,
        hangup: Option<HangupInfo>,
        state: Vec<u8>,
    ) -> Result<(), String> {
        let node: Data = cfhost_sdk::termination_state(&state)?;
        let notify = cfhost_sdk::notify::at_hangup(hangup);
        send(&node, notify)
    }
}

/// Publishes the notification the node describes; without a `template_id`, logs and sends
/// nothing. The call flags are not checked: they are reported by the host.
fn send(node: &Data, notify: NotifyField) -> Result<(), String> {
    let Some(template_id) = node.template_id.as_deref().filter(|s| !s.is_empty()) else {
        log::info("no template_id: no notification sent");
        return Ok(());
    };
    let to = recipients::resolve(
        &node.recipients,
        recipients::NOTIFICATION,
        cfhost_sdk::user_emails,
    );
    cfhost_sdk::notify::publish(&Notification::CfNotification(CfNotification {
        template_id: template_id.to_string(),
        to,
        notify,
        comments: node.comments.as_ref().map(Value::to_string),
        notification_media: node.notification_media.as_ref().map(Value::to_string),
    }))?;
    Ok(())
}

cfhost_sdk::export_module!(NotificationModule);

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
}
