//! KAZOO's notification definitions (kapi_notifications, kazoo-semantics.md §4), as a
//! consumer would check a payload: required keys present, no key outside the allowed lists.

use serde_json::Value;

const DEFAULT_HEADERS: &[&str] = &[
    "App-Name",
    "App-Version",
    "Event-Category",
    "Event-Name",
    "Msg-ID",
];
const OPTIONAL_DEFAULT_HEADERS: &[&str] = &[
    "Server-ID",
    "Node",
    "Queue-ID",
    "Log-ID",
    "Account-ID",
    "Call-ID",
    "Access-Group",
    "Defer-Response",
    "Destination-Server",
    "Geo-Location",
    "Raw-Headers",
];
const NOTIFICATION_DEFAULTS: &[&str] = &[
    "Account-DB",
    "Attachment-URL",
    "Bcc",
    "Cc",
    "From",
    "HTML",
    "Preview",
    "Reply-To",
    "Subject",
    "Text",
    "To",
];
const MISSED_CALL_REQUIRED: &[&str] = &["Account-ID", "Call-Bridged", "Call-ID", "Message-Left"];
const MISSED_CALL_OPTIONAL: &[&str] = &[
    "Caller-ID-Name",
    "Caller-ID-Number",
    "From-Realm",
    "From-User",
    "Notify",
    "Timestamp",
    "To",
    "To-Realm",
    "To-User",
];
const CF_NOTIFICATION_REQUIRED: &[&str] = &["Account-ID", "Template-ID"];
const CF_NOTIFICATION_OPTIONAL: &[&str] = &[
    "Caller-ID-Name",
    "Caller-ID-Number",
    "Call-ID",
    "Call-Bridged",
    "Message-Left",
    "From-Realm",
    "From-User",
    "Notify",
    "To",
    "To-Realm",
    "To-User",
    "Timestamp",
    "Comments",
    "Notification-Media",
];

/// Checks `payload` published with `routing_key` against KAZOO's definition of its event.
pub fn check(routing_key: &str, payload: &Value) -> Result<(), String> {
    let (event, required, optional) = match routing_key {
        "notifications.sip.missed_call" => {
            ("missed_call", MISSED_CALL_REQUIRED, MISSED_CALL_OPTIONAL)
        }
        "notifications.account.cf_notification" => (
            "cf_notification",
            CF_NOTIFICATION_REQUIRED,
            CF_NOTIFICATION_OPTIONAL,
        ),
        other => return Err(format!("unknown routing key {other}")),
    };
    let object = payload.as_object().ok_or("payload is not a JSON object")?;
    for key in DEFAULT_HEADERS.iter().chain(required) {
        if !object.contains_key(*key) {
            return Err(format!("{event}: required key {key} is missing"));
        }
    }
    for key in object.keys() {
        let allowed = [
            DEFAULT_HEADERS,
            OPTIONAL_DEFAULT_HEADERS,
            NOTIFICATION_DEFAULTS,
            required,
            optional,
        ]
        .iter()
        .any(|list| list.contains(&key.as_str()));
        if !allowed {
            return Err(format!("{event}: key {key} is not in KAZOO's definition"));
        }
    }
    if object["Event-Category"] != "notification" || object["Event-Name"] != event {
        return Err(format!("{event}: wrong Event-Category/Event-Name"));
    }
    Ok(())
}
