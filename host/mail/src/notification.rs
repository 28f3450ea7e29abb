//! A notification as it arrives on the `notifications` exchange, in KAZOO's wire format
//! (`missed_call` or `cf_notification`), checked as teletype's validators check it and
//! normalised as teletype normalises it (keys lower-cased, `-` as `_`, at every depth).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The notifications the mailer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `notifications.sip.missed_call`, from `missed_call_alert`.
    MissedCall,
    /// `notifications.account.cf_notification`, from `notification`: the account's own
    /// template `Template-ID`.
    CfNotification,
}

impl Kind {
    /// KAZOO's `Event-Name`.
    pub fn event_name(self) -> &'static str {
        match self {
            Kind::MissedCall => "missed_call",
            Kind::CfNotification => "cf_notification",
        }
    }

    /// The routing key it is published with.
    pub fn routing_key(self) -> &'static str {
        match self {
            Kind::MissedCall => "notifications.sip.missed_call",
            Kind::CfNotification => "notifications.account.cf_notification",
        }
    }
}

/// Why a message is not a notification the mailer can send: teletype's `validation_failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the body is not a JSON object: {0}")]
    NotJson(String),
    #[error("`Event-Name` `{0}` is not a notification the mailer sends")]
    UnknownEvent(String),
    #[error("`{0}` is required")]
    Missing(&'static str),
    #[error("`{field}` is not a plain name: `{value}`")]
    NotAName { field: &'static str, value: String },
}

/// A checked notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub kind: Kind,
    pub account_id: String,
    /// `missed_call` for a missed call, the account's template for a `cf_notification`.
    pub template_id: String,
    pub call_id: Option<String>,
    pub msg_id: String,
    /// Where KAZOO's publisher waits for `notify_update` replies.
    pub server_id: Option<String>,
    /// The payload, normalised: `caller_id_name`, `notify.hangup_cause`, ...
    pub fields: Map<String, Value>,
}

/// The headers every KAZOO API message carries.
const DEFAULT_HEADERS: [&str; 5] = [
    "App-Name",
    "App-Version",
    "Event-Category",
    "Event-Name",
    "Msg-ID",
];

impl Notification {
    /// Reads and checks a message body.
    pub fn parse(body: &[u8]) -> Result<Notification, Invalid> {
        let payload: Map<String, Value> =
            serde_json::from_slice(body).map_err(|e| Invalid::NotJson(e.to_string()))?;
        let text = |key: &'static str| {
            payload
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let event = text("Event-Name").ok_or(Invalid::Missing("Event-Name"))?;
        let kind = match event {
            "missed_call" => Kind::MissedCall,
            "cf_notification" => Kind::CfNotification,
            other => return Err(Invalid::UnknownEvent(other.to_string())),
        };
        for key in DEFAULT_HEADERS {
            text(key).ok_or(Invalid::Missing(key))?;
        }
        let required: &[&'static str] = match kind {
            Kind::MissedCall => &["Account-ID", "Call-ID"],
            Kind::CfNotification => &["Account-ID", "Template-ID"],
        };
        for &key in required {
            text(key).ok_or(Invalid::Missing(key))?;
        }
        if kind == Kind::MissedCall {
            for key in ["Call-Bridged", "Message-Left"] {
                payload.get(key).ok_or(Invalid::Missing(key))?;
            }
        }
        let name = |field: &'static str| -> Result<String, Invalid> {
            let value = text(field).unwrap_or_default();
            if is_plain_name(value) {
                Ok(value.to_string())
            } else {
                Err(Invalid::NotAName {
                    field,
                    value: value.chars().take(80).collect(),
                })
            }
        };
        let account_id = name("Account-ID")?;
        let template_id = match kind {
            Kind::MissedCall => "missed_call".to_string(),
            Kind::CfNotification => name("Template-ID")?,
        };
        Ok(Notification {
            kind,
            account_id,
            template_id,
            call_id: text("Call-ID").map(str::to_string),
            msg_id: text("Msg-ID").unwrap_or_default().to_string(),
            server_id: text("Server-ID").map(str::to_string),
            fields: normalize(payload),
        })
    }

    /// What makes two deliveries of a message the same notification: event, call, template
    /// and `Msg-ID` (the host publishes a notification again, after a broker failure, with
    /// the same `Msg-ID`), as 64 hex digits.
    pub fn identity(&self) -> String {
        let mut hash = Sha256::new();
        for part in [
            self.kind.event_name(),
            self.call_id.as_deref().unwrap_or_default(),
            &self.template_id,
            &self.msg_id,
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A normalised field as text (strings as they are, numbers written out).
    pub fn text(&self, key: &str) -> Option<String> {
        match self.fields.get(key)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A normalised field as a boolean (`true`, or the string `"true"`).
    pub fn flag(&self, key: &str) -> bool {
        match self.fields.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        }
    }
}

/// 1 to 128 letters, digits, `-` and `_`: safe as a file name.
pub fn is_plain_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// teletype's key normalisation (`kz_json:normalize`), at every depth.
fn normalize(object: Map<String, Value>) -> Map<String, Value> {
    object
        .into_iter()
        .map(|(key, value)| (key.to_lowercase().replace('-', "_"), normalize_value(value)))
        .collect()
}

fn normalize_value(value: Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(normalize(object)),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize_value).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn missed_call() -> Value {
        json!({"App-Name": "callflow", "App-Version": "4.0.0", "Event-Category": "notification",
            "Event-Name": "missed_call", "Msg-ID": "m1", "Account-ID": "acme", "Call-ID": "c1",
            "Call-Bridged": false, "Message-Left": false,
            "Notify": {"Hangup-Cause": "NO_ANSWER"}, "Caller-ID-Name": "Jane"})
    }

    #[test]
    fn a_missed_call_is_checked_and_normalised() {
        let n = Notification::parse(missed_call().to_string().as_bytes()).unwrap();
        assert_eq!(
            (n.kind, n.template_id.as_str()),
            (Kind::MissedCall, "missed_call")
        );
        assert_eq!(n.fields["notify"]["hangup_cause"], "NO_ANSWER");
        assert_eq!(n.text("caller_id_name").unwrap(), "Jane");
        assert!(!n.flag("call_bridged"));
        assert_eq!(n.identity().len(), 64);
    }

    #[test]
    fn what_teletype_would_refuse_is_invalid() {
        let mut body = missed_call();
        body.as_object_mut().unwrap().remove("Call-ID");
        assert_eq!(
            Notification::parse(body.to_string().as_bytes()),
            Err(Invalid::Missing("Call-ID"))
        );
        let mut body = missed_call();
        body["Account-ID"] = json!("../etc");
        assert!(matches!(
            Notification::parse(body.to_string().as_bytes()),
            Err(Invalid::NotAName { .. })
        ));
        let mut body = missed_call();
        body["Event-Name"] = json!("cf_notification");
        assert_eq!(
            Notification::parse(body.to_string().as_bytes()),
            Err(Invalid::Missing("Template-ID"))
        );
        assert!(matches!(
            Notification::parse(b"[1]"),
            Err(Invalid::NotJson(_))
        ));
    }

    #[test]
    fn the_identity_changes_with_the_msg_id_and_not_with_other_fields() {
        let a = Notification::parse(missed_call().to_string().as_bytes()).unwrap();
        let mut body = missed_call();
        body["Caller-ID-Name"] = json!("Other");
        let b = Notification::parse(body.to_string().as_bytes()).unwrap();
        body["Msg-ID"] = json!("m2");
        let c = Notification::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(a.identity(), b.identity());
        assert_ne!(a.identity(), c.identity());
    }
}
