//! KAZOO's notification wire format (kazoo-semantics.md §4): a flat JSON object with the
//! envelope headers and the `missed_call` or `cf_notification` fields, published on the topic
//! exchange `notifications`.
//!
//! As KAZOO's `prepare_api_payload` does, values that are undefined or `""` are dropped (in
//! nested objects too), `false`, `0` and `[]` are kept, and a required key left missing is an
//! error.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::bindings::HangupInfo;
use crate::bindings::cfhost::callflow::notify::{
    CfNotification, MissedCall, Notification, NotifyField,
};
use crate::call::Call;

/// The exchange every notification goes to.
pub const EXCHANGE: &str = "notifications";
/// `App-Name` of the envelope, as KAZOO's callflow app sends it.
pub const APP_NAME: &str = "callflow";
/// `App-Version` of the envelope, as KAZOO's callflow app sends it.
pub const APP_VERSION: &str = "4.0.0";
/// Seconds from 0000-01-01 to 1970-01-01: KAZOO timestamps are Gregorian seconds.
pub const GREGORIAN_OFFSET_SECS: u64 = 62_167_219_200;

/// A notification ready for a sink: where it goes and its body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundNotification {
    pub exchange: String,
    pub routing_key: String,
    pub payload: Map<String, Value>,
}

/// A notification that cannot be put on the wire.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("`{field}` is not valid JSON: {reason}")]
    InvalidJson { field: &'static str, reason: String },
    #[error("required key `{key}` of `{event}` is missing or empty")]
    MissingRequired {
        event: &'static str,
        key: &'static str,
    },
}

struct Definition {
    event_name: &'static str,
    category: &'static str,
    required: &'static [&'static str],
}

const MISSED_CALL: Definition = Definition {
    event_name: "missed_call",
    category: "sip",
    required: &["Account-ID", "Call-Bridged", "Call-ID", "Message-Left"],
};

const CF_NOTIFICATION: Definition = Definition {
    event_name: "cf_notification",
    category: "account",
    required: &["Account-ID", "Template-ID"],
};

/// Builds the wire form of `notification` for `call` at `now`, from host `node`.
pub fn build(
    call: &Call,
    now: SystemTime,
    node: &str,
    notification: &Notification,
) -> Result<OutboundNotification, WireError> {
    let (definition, to, notify) = match notification {
        Notification::MissedCall(MissedCall { to, notify }) => (&MISSED_CALL, to, notify),
        Notification::CfNotification(CfNotification { to, notify, .. }) => {
            (&CF_NOTIFICATION, to, notify)
        }
    };
    let mut payload = call_fields(call, now);
    if let Notification::CfNotification(n) = notification {
        payload.insert("Template-ID".into(), json!(n.template_id));
        if let Some(comments) = &n.comments {
            payload.insert("Comments".into(), raw_json("comments", comments)?);
        }
        if let Some(media) = &n.notification_media {
            payload.insert(
                "Notification-Media".into(),
                raw_json("notification_media", media)?,
            );
        }
    }
    match notify {
        NotifyField::Omitted => {}
        NotifyField::Empty => {
            payload.insert("Notify".into(), json!([]));
        }
        NotifyField::Hangup(info) => {
            payload.insert("Notify".into(), hangup_object(info));
        }
    }
    if !to.is_empty() {
        payload.insert("To".into(), json!(to));
    }
    payload.insert("Event-Category".into(), json!("notification"));
    payload.insert("Event-Name".into(), json!(definition.event_name));
    payload.insert("App-Name".into(), json!(APP_NAME));
    payload.insert("App-Version".into(), json!(APP_VERSION));
    payload.insert("Node".into(), json!(node));
    payload.insert("Msg-ID".into(), json!(new_msg_id()));
    remove_empty(&mut payload);
    if let Some(key) = definition
        .required
        .iter()
        .find(|key| !payload.contains_key(**key))
    {
        return Err(WireError::MissingRequired {
            event: definition.event_name,
            key,
        });
    }
    Ok(OutboundNotification {
        exchange: EXCHANGE.to_string(),
        routing_key: format!(
            "notifications.{}.{}",
            definition.category, definition.event_name
        ),
        payload,
    })
}

/// The fields both events take from the call.
fn call_fields(call: &Call, now: SystemTime) -> Map<String, Value> {
    let d = call.details();
    let flags = call.flags();
    let caller_id = call.caller_id();
    let non_empty_or = |value: &Option<String>, default: &str| match value.as_deref() {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => default.to_string(),
    };
    // Room for every key of the largest event, so the map never grows.
    let mut fields = Map::with_capacity(24);
    fields.insert("Account-ID".into(), json!(d.account_id));
    fields.insert("Call-ID".into(), json!(d.call_id));
    fields.insert(
        "Caller-ID-Name".into(),
        json!(non_empty_or(&caller_id.name, "unknown")),
    );
    fields.insert(
        "Caller-ID-Number".into(),
        json!(non_empty_or(&caller_id.number, "anonymous")),
    );
    fields.insert("From-User".into(), json!(d.from_user));
    fields.insert("From-Realm".into(), json!(d.from_realm));
    fields.insert("To-User".into(), json!(d.to_user));
    fields.insert("To-Realm".into(), json!(d.to_realm));
    fields.insert("Timestamp".into(), json!(gregorian_seconds(now)));
    fields.insert("Call-Bridged".into(), json!(flags.bridged));
    fields.insert("Message-Left".into(), json!(flags.message_left));
    fields
}

/// KAZOO's hangup info object, as carried in `Notify`.
fn hangup_object(info: &HangupInfo) -> Value {
    json!({
        "Disposition": info.disposition,
        "Hangup-Cause": info.hangup_cause,
        "Hangup-Code": info.hangup_code,
    })
}

fn raw_json(field: &'static str, text: &str) -> Result<Value, WireError> {
    serde_json::from_str(text).map_err(|e| WireError::InvalidJson {
        field,
        reason: e.to_string(),
    })
}

/// Seconds since year 0 of the Gregorian calendar, as KAZOO's `kz_time:now_s()`.
pub fn gregorian_seconds(time: SystemTime) -> u64 {
    let unix = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    unix + GREGORIAN_OFFSET_SECS
}

/// 16 random bytes as 32 lowercase hex characters.
pub fn new_msg_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes: [u8; 16] = rand::random();
    let mut id = String::with_capacity(32);
    for byte in bytes {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    id
}

/// Drops `null` and `""` values from an object and the objects nested in it.
fn remove_empty(object: &mut Map<String, Value>) {
    object.retain(|_, value| match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Object(inner) => {
            remove_empty(inner);
            true
        }
        _ => true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_32_lowercase_hex_digits_and_differ() {
        let (a, b) = (new_msg_id(), new_msg_id());
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(a, b);
    }
    use crate::call::{CallDetails, ChannelEvent};
    use std::time::Duration;

    fn call(caller_name: Option<&str>, caller_number: Option<&str>) -> Call {
        Call::new(CallDetails {
            call_id: "call-1".into(),
            account_id: "acct".into(),
            request: "+15554441111".into(),
            caller_id_name: caller_name.map(str::to_string),
            caller_id_number: caller_number.map(str::to_string),
            from_user: Some("+15550001111".into()),
            from_realm: Some(String::new()),
            to_user: Some("+15554441111".into()),
            ..Default::default()
        })
    }

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    fn missed(notify: NotifyField, to: &[&str]) -> Notification {
        Notification::MissedCall(MissedCall {
            to: to.iter().map(|s| s.to_string()).collect(),
            notify,
        })
    }

    #[test]
    fn missed_call_has_kazoo_envelope_and_fields() {
        let call = call(Some("Alice"), Some("+15550001111"));
        let n = build(
            &call,
            at(1_700_000_000),
            "cfhost@test",
            &missed(NotifyField::Omitted, &["a@x"]),
        )
        .unwrap();
        assert_eq!(n.exchange, "notifications");
        assert_eq!(n.routing_key, "notifications.sip.missed_call");
        let p = &n.payload;
        assert_eq!(p["Event-Category"], "notification");
        assert_eq!(p["Event-Name"], "missed_call");
        assert_eq!(p["App-Name"], "callflow");
        assert_eq!(p["App-Version"], "4.0.0");
        assert_eq!(p["Node"], "cfhost@test");
        assert_eq!(p["Timestamp"], 1_700_000_000u64 + 62_167_219_200);
        assert_eq!(p["Call-Bridged"], false);
        assert_eq!(p["Message-Left"], false);
        assert_eq!(p["To"], json!(["a@x"]));
        assert_eq!(p["Caller-ID-Name"], "Alice");
        let msg_id = p["Msg-ID"].as_str().unwrap();
        assert_eq!(msg_id.len(), 32);
        assert!(msg_id.bytes().all(|b| b.is_ascii_hexdigit()));
        // Undefined and empty values are dropped; absent Notify stays absent.
        assert!(!p.contains_key("From-Realm"));
        assert!(!p.contains_key("To-Realm"));
        assert!(!p.contains_key("Notify"));
    }

    #[test]
    fn empty_caller_id_gets_kazoo_defaults_and_empty_to_is_omitted() {
        let call = call(Some(""), None);
        let n = build(&call, at(0), "n", &missed(NotifyField::Omitted, &[])).unwrap();
        assert_eq!(n.payload["Caller-ID-Name"], "unknown");
        assert_eq!(n.payload["Caller-ID-Number"], "anonymous");
        assert!(!n.payload.contains_key("To"));
    }

    #[test]
    fn notify_carries_hangup_info_or_an_empty_list() {
        let call = call(None, None);
        call.apply(&ChannelEvent::Bridge {
            call_id: "x".into(),
        });
        let info = HangupInfo {
            disposition: None,
            hangup_cause: "NORMAL_CLEARING".into(),
            hangup_code: "sip:200".into(),
        };
        let n = build(&call, at(0), "n", &missed(NotifyField::Hangup(info), &[])).unwrap();
        assert_eq!(
            n.payload["Notify"],
            json!({"Hangup-Cause": "NORMAL_CLEARING", "Hangup-Code": "sip:200"})
        );
        assert_eq!(n.payload["Call-Bridged"], true);
        let n = build(&call, at(0), "n", &missed(NotifyField::Empty, &[])).unwrap();
        assert_eq!(n.payload["Notify"], json!([]));
    }

    #[test]
    fn cf_notification_copies_raw_values_and_requires_a_template() {
        let call = call(None, None);
        let mut cf = CfNotification {
            template_id: "tpl".into(),
            to: vec!["".into(), "b@x".into()],
            notify: NotifyField::Empty,
            comments: Some(r#""hello""#.into()),
            notification_media: Some(r#"["email","sms"]"#.into()),
        };
        let n = build(&call, at(0), "n", &Notification::CfNotification(cf.clone())).unwrap();
        assert_eq!(n.routing_key, "notifications.account.cf_notification");
        assert_eq!(n.payload["Template-ID"], "tpl");
        assert_eq!(n.payload["Comments"], "hello");
        assert_eq!(n.payload["Notification-Media"], json!(["email", "sms"]));
        assert_eq!(n.payload["To"], json!(["", "b@x"]));
        cf.comments = Some("not json".into());
        let err = build(&call, at(0), "n", &Notification::CfNotification(cf.clone())).unwrap_err();
        assert!(matches!(
            err,
            WireError::InvalidJson {
                field: "comments",
                ..
            }
        ));
        cf.comments = None;
        cf.template_id = String::new();
        let err = build(&call, at(0), "n", &Notification::CfNotification(cf)).unwrap_err();
        assert_eq!(
            err,
            WireError::MissingRequired {
                event: "cf_notification",
                key: "Template-ID"
            }
        );
    }
}
