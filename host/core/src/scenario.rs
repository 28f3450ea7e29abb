//! The simulator's scenario file: a JSON array of calls.
//!
//! ```json
//! [{ "account_id": "acct", "to": "+15554441111",
//!    "caller_id_name": "Alice", "caller_id_number": "+15550001111",
//!    "authorizing_type": "resource", "call_id": "optional",
//!    "behaviour": { "bridge": "no_answer", "voicemail": "hangup" } }]
//! ```
//!
//! `behaviour.bridge` is `answer`, `no_answer` (default), `busy` or `transfer` and applies to
//! every bridge of the call; `behaviour.voicemail` is `leave_message` or `hangup` (default).
//! Unknown keys are refused, so a typo cannot silently change a scenario.

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
