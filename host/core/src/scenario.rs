//! The simulator's scenario file: a JSON array of calls.
//!
//! ```json
//! [{ "account_id": "acct", "to": "+15554441111",
//!    "caller_id_name": "Alice", "caller_id_number": "+15550001111",
//!    "authorizing_type": "resource", "call_id": "optional",
//!    "sip_headers": { "X-Account-Tier": "gold" },
//!    "behaviour": { "bridge": "no_answer", "voicemail": "hangup" } }]
//! ```
//!
//! `behaviour.bridge` is `answer`, `no_answer` (default), `busy` or `transfer` and applies to
//! every bridge of the call; `behaviour.voicemail` is `leave_message` or `hangup` (default).
//! Unknown keys are refused, so a typo cannot silently change a scenario.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::call::CallDetails;
use crate::switch::SimulatorBehaviour;

/// One simulated call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioCall {
    /// A label for the trace.
    pub name: Option<String>,
    pub account_id: String,
    /// The dialed number.
    pub to: String,
    pub caller_id_name: Option<String>,
    pub caller_id_number: Option<String>,
    pub callee_id_name: Option<String>,
    pub callee_id_number: Option<String>,
    pub authorizing_type: Option<String>,
    pub authorizing_id: Option<String>,
    /// Default: `call-<n>`, n counting from 1 in the file.
    pub call_id: Option<String>,
    pub from_user: Option<String>,
    pub from_realm: Option<String>,
    pub to_user: Option<String>,
    pub to_realm: Option<String>,
    /// Headers of the INVITE modules see (`sip-header`), as a SIP call would carry them;
    /// at most [`MAX_SIP_HEADERS`], each name and value at most [`MAX_SIP_HEADER_BYTES`].
    #[serde(default, deserialize_with = "sip_headers")]
    pub sip_headers: BTreeMap<String, String>,
    /// When the call starts, in Unix seconds (default: when the run starts); at most
    /// [`LATEST_START_TIME`].
    #[serde(default, deserialize_with = "start_time")]
    pub start_time: Option<u64>,
    #[serde(default)]
    pub behaviour: SimulatorBehaviour,
}

/// The latest `start_time` a call may have: 9999-12-31T23:59:59Z, in Unix seconds. Later ones
/// are refused when the scenario is read (past it, clocks and KAZOO's Gregorian timestamps
/// overflow).
pub const LATEST_START_TIME: u64 = 253_402_300_799;

fn start_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<u64>::deserialize(d)? {
        Some(secs) if secs > LATEST_START_TIME => Err(serde::de::Error::custom(format!(
            "start_time {secs} is after 9999-12-31T23:59:59Z ({LATEST_START_TIME})"
        ))),
        start => Ok(start),
    }
}

/// The most SIP headers a scenario call may carry.
pub const MAX_SIP_HEADERS: usize = 64;
/// The longest name or value of a scenario call's SIP header, in bytes.
pub const MAX_SIP_HEADER_BYTES: usize = 1024;

fn sip_headers<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let headers = BTreeMap::<String, String>::deserialize(d)?;
    if headers.len() > MAX_SIP_HEADERS {
        return Err(serde::de::Error::custom(format!(
            "{} sip_headers; a call carries at most {MAX_SIP_HEADERS}",
            headers.len()
        )));
    }
    for (name, value) in &headers {
        let token = |c: char| c.is_ascii_alphanumeric() || "-_.!%*+`'~".contains(c);
        if name.is_empty() || name.len() > MAX_SIP_HEADER_BYTES || !name.chars().all(token) {
            return Err(serde::de::Error::custom(format!(
                "sip_headers: {name:?} is not a header name (1 to {MAX_SIP_HEADER_BYTES} \
                 letters, digits and -_.!%*+`'~)"
            )));
        }
        if value.len() > MAX_SIP_HEADER_BYTES || value.chars().any(char::is_control) {
            return Err(serde::de::Error::custom(format!(
                "sip_headers: the value of {name} must be at most {MAX_SIP_HEADER_BYTES} bytes \
                 without control characters"
            )));
        }
    }
    Ok(headers)
}

impl ScenarioCall {
    /// When the call starts: its `start_time`, else `run_start`.
    pub fn starts_at(&self, run_start: SystemTime) -> SystemTime {
        self.start_time.map_or(run_start, |secs| {
            UNIX_EPOCH + std::time::Duration::from_secs(secs)
        })
    }

    /// The call's details; `index` numbers the default call id.
    pub fn details(&self, index: usize) -> CallDetails {
        CallDetails {
            call_id: self
                .call_id
                .clone()
                .unwrap_or_else(|| format!("call-{}", index + 1)),
            account_id: self.account_id.clone(),
            request: self.to.clone(),
            caller_id_name: self.caller_id_name.clone(),
            caller_id_number: self.caller_id_number.clone(),
            callee_id_name: self.callee_id_name.clone(),
            callee_id_number: self.callee_id_number.clone(),
            from_user: self.from_user.clone(),
            from_realm: self.from_realm.clone(),
            to_user: self.to_user.clone(),
            to_realm: self.to_realm.clone(),
            authorizing_type: self.authorizing_type.clone(),
            authorizing_id: self.authorizing_id.clone(),
            sip_headers: self
                .sip_headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        }
    }
}

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// Reads a scenario file.
pub fn read_scenario(path: &Path) -> Result<Vec<ScenarioCall>, ScenarioError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
        file: file.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ScenarioError::Invalid {
        file,
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_with(headers: serde_json::Value) -> Result<ScenarioCall, serde_json::Error> {
        serde_json::from_value(serde_json::json!({
            "account_id": "acme", "to": "+15550001000", "sip_headers": headers
        }))
    }

    #[test]
    fn sip_headers_are_bounded_and_named_as_sip_names_them() {
        let call = call_with(serde_json::json!({"X-Tier": "gold"})).unwrap();
        assert_eq!(
            call.details(0).sip_headers,
            [("X-Tier".to_string(), "gold".to_string())]
        );
        let many: serde_json::Map<String, serde_json::Value> = (0..=MAX_SIP_HEADERS)
            .map(|n| (format!("X-{n}"), serde_json::json!("v")))
            .collect();
        let error = call_with(many.into()).unwrap_err().to_string();
        assert!(
            error.contains("65 sip_headers; a call carries at most 64"),
            "{error}"
        );
        for (name, value, says) in [
            ("X-Evil\r\nVia", "v", "is not a header name"),
            ("", "v", "is not a header name"),
            ("X-Tier", "a\r\nVia: x", "without control characters"),
            (
                "X-Big",
                &"v".repeat(MAX_SIP_HEADER_BYTES + 1),
                "at most 1024 bytes",
            ),
        ] {
            let error = call_with(serde_json::json!({ name: value }))
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{name:?}: {error}");
        }
    }
}
