//! The macros a template renders with, filled as teletype fills them
//! (`teletype_util:build_call_data/2`, `account_params/1`, `system_params/0`): `system.*`,
//! `account.*`, `caller_id.*`, `callee_id.*`, `date_called.*`, `from.*`, `to.*`, `call_id`,
//! and `missed_call.*` for a missed call or `call.*` (the whole normalised payload) for a
//! `cf_notification`.

pub mod numbers;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use serde_json::{Map, Value, json};

use crate::account::AccountInfo;
use crate::notification::{Kind, Notification};

/// The time now, in Unix seconds: the `now` that dates a notification without a timestamp.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Seconds from year 0 (KAZOO's Gregorian seconds) to 1970.
pub const GREGORIAN_TO_UNIX: i64 = 62_167_219_200;

/// Who sends: `system.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemParams {
    /// The mailer's host name.
    pub hostname: String,
    /// The node name, as an Erlang node is named (`cfhost_mailer@host`).
    pub node: String,
}

impl SystemParams {
    /// `system.*`: the names, and each as base64url(MD5) without padding, as KAZOO encodes
    /// them (`kz_base64url:encode(erlang:md5(...))`).
    pub fn to_json(&self) -> Value {
        json!({
            "hostname": self.hostname,
            "encoded_hostname": encode(&self.hostname),
            "node": self.node,
            "encoded_node": encode(&self.node),
        })
    }
}

/// base64url of the MD5 of `text`, unpadded (22 characters).
pub fn encode(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Md5::digest(text.as_bytes()))
}

/// Every macro of `notification`, for `account`, sent by `system`; `now` (Unix seconds)
/// stands for a notification without a usable timestamp.
pub fn build(
    notification: &Notification,
    account: &AccountInfo,
    system: &SystemParams,
    now: i64,
) -> Value {
    let mut macros = Map::new();
    macros.insert("system".into(), system.to_json());
    macros.insert("account".into(), account.to_json());
    match notification.kind {
        Kind::MissedCall => {
            macros.insert("missed_call".into(), missed_call(notification));
        }
        Kind::CfNotification => {
            macros.insert("call".into(), Value::Object(notification.fields.clone()));
        }
    }
    macros.extend(call_data(notification, &account.timezone, now));
    Value::Object(macros)
}

/// `missed_call.reason`, `is_bridged`, `is_message_left`.
fn missed_call(notification: &Notification) -> Value {
    let cause = notification
        .fields
        .get("notify")
        .and_then(|notify| notify.get("hangup_cause"))
        .and_then(Value::as_str)
        .filter(|cause| !cause.is_empty());
    let reason = match cause {
        Some(cause) => format!("No voicemail message was left ({cause})"),
        None => "no voicemail message was left".to_string(),
    };
    json!({
        "reason": reason,
        "is_bridged": notification.flag("call_bridged"),
        "is_message_left": notification.flag("message_left"),
    })
}

/// teletype's call data: caller and callee, the date called, from, to and the call id.
fn call_data(notification: &Notification, timezone: &str, now: i64) -> Map<String, Value> {
    let party = |name_key: &str, number_key: &str| {
        let name = numbers::pretty_print(notification.text(name_key).as_deref());
        let number = numbers::pretty_print(notification.text(number_key).as_deref());
        let mut party = json!({"name": name, "number": number});
        if let Some(both) = numbers::name_number(&name, &number) {
            party["name_number"] = json!(both);
        }
        party
    };
    let first = |keys: [&str; 2]| keys.iter().find_map(|key| notification.text(key));
    let endpoint = |user_keys: [&str; 2], realm_key: &str| {
        let mut endpoint = json!({"user": numbers::pretty_print(first(user_keys).as_deref())});
        if let Some(realm) = notification.text(realm_key) {
            endpoint["realm"] = json!(realm);
        }
        endpoint
    };
    let mut data = Map::new();
    data.insert(
        "caller_id".into(),
        party("caller_id_name", "caller_id_number"),
    );
    data.insert(
        "callee_id".into(),
        party("callee_id_name", "callee_id_number"),
    );
    data.insert(
        "date_called".into(),
        date_called(notification, timezone, now),
    );
    data.insert(
        "from".into(),
        endpoint(["from_user", "caller_id_number"], "from_realm"),
    );
    data.insert(
        "to".into(),
        endpoint(["to_user", "callee_id_number"], "to_realm"),
    );
    if let Some(call_id) = &notification.call_id {
        data.insert("call_id".into(), json!(call_id));
    }
    data
}

/// `date_called.{utc, local, timestamp, timezone}`: the first of `voicemail_timestamp`,
/// `fax_timestamp` and `timestamp` (Gregorian seconds; one that does not read as a number is
/// "now"), as civil times (`2024-03-30T05:25:00`) that the `date` filter formats. A zone
/// jiff does not know is read as UTC (KAZOO prints the format string instead of a date).
fn date_called(notification: &Notification, timezone: &str, now: i64) -> Value {
    let gregorian = ["voicemail_timestamp", "fax_timestamp", "timestamp"]
        .iter()
        .find_map(|key| notification.fields.get(*key))
        .and_then(|value| match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .unwrap_or(now + GREGORIAN_TO_UNIX);
    let instant = jiff::Timestamp::from_second(gregorian - GREGORIAN_TO_UNIX)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let zone = jiff::tz::TimeZone::get(timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let civil = |zone: jiff::tz::TimeZone| {
        instant
            .to_zoned(zone)
            .datetime()
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    json!({
        "utc": civil(jiff::tz::TimeZone::UTC),
        "local": civil(zone),
        "timestamp": gregorian,
        "timezone": timezone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_as_kazoo_encodes_them() {
        // base64url(md5("kazoo_apps@kz1.example.net")), unpadded, from Python's hashlib.
        assert_eq!(
            encode("kazoo_apps@kz1.example.net"),
            "lXVHyH8VhPH1iay91PAwVg"
        );
    }

    #[test]
    fn a_missed_calls_macros_follow_teletype() {
        let body = json!({"App-Name": "callflow", "App-Version": "4.0.0",
            "Event-Category": "notification", "Event-Name": "missed_call", "Msg-ID": "m",
            "Account-ID": "acme", "Call-ID": "c1", "Call-Bridged": false, "Message-Left": false,
            "Caller-ID-Name": "unknown", "Caller-ID-Number": "+14158867900",
            "To-User": "2125550100", "Timestamp": 63879009900_i64});
        let notification = Notification::parse(body.to_string().as_bytes()).unwrap();
        let account = AccountInfo::unnamed("acme");
        let system = SystemParams {
            hostname: "mx".into(),
            node: "cfhost_mailer@mx".into(),
        };
        let macros = build(&notification, &account, &system, 0);
        assert_eq!(macros["caller_id"]["name_number"], "(415) 886 - 7900");
        assert_eq!(
            macros["callee_id"],
            json!({"name": "unknown", "number": "unknown"})
        );
        assert_eq!(macros["to"]["user"], "(212) 555 - 0100");
        assert_eq!(macros["from"]["user"], "(415) 886 - 7900");
        assert_eq!(
            macros["missed_call"]["reason"],
            "no voicemail message was left"
        );
        // KAZOO's default zone when the account names none.
        assert_eq!(macros["date_called"]["local"], "2024-03-30T02:25:00");
        assert_eq!(macros["date_called"]["utc"], "2024-03-30T09:25:00");
        assert_eq!(macros["account"]["timezone"], "America/Los_Angeles");
    }
}
