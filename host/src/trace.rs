//! The per-call trace: every node run or skipped, flags set, module log lines, notifications,
//! and every termination callback with its outcome. The simulator prints it; tests read it.

use std::fmt;
use std::sync::Mutex;

use crate::bindings::HangupInfo;
use crate::bindings::cfhost::callflow::log::Level;
use crate::notify::PublishError;

/// One thing that happened during a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEvent {
    /// A node starts; `path` is where it sits in its callflow (e.g. `flow.children._`).
    Node { path: String, module: String },
    /// The node that started last finished with this result.
    NodeResult { module: String, result: String },
    /// A node was not run: `skip_module` was set, or no such module is loaded.
    Skipped {
        path: String,
        module: String,
        reason: String,
    },
    /// The flow branched into another callflow.
    Branch { callflow_id: String },
    /// A module set a flag.
    Flag { module: String, flag: String },
    /// A module logged a line.
    Log {
        module: String,
        level: String,
        message: String,
    },
    /// A termination callback was registered (or was a duplicate of one already registered).
    Registered { module: String, duplicate: bool },
    /// A notification was published (or refused).
    Published {
        module: String,
        routing_key: Option<String>,
        error: Option<String>,
    },
    /// The flow ended.
    Ended {
        reason: String,
        hangup: Option<HangupInfo>,
        bridged: bool,
        message_left: bool,
    },
    /// A termination callback starts.
    Callback { module: String },
    /// The callback that started last finished; `error` says why it failed.
    CallbackResult {
        module: String,
        error: Option<String>,
    },
}

/// The trace of one call, appended to by the executor and the host imports.
#[derive(Debug, Default)]
pub struct Trace {
    events: Mutex<Vec<TraceEvent>>,
}

impl Trace {
    /// Appends an event.
    pub fn push(&self, event: TraceEvent) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }

    /// Everything recorded so far, leaving the trace empty (for the report at the call's end).
    pub fn take(&self) -> Vec<TraceEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn flag_set(&self, module: &str, flag: &str) {
        self.push(TraceEvent::Flag {
            module: module.to_string(),
            flag: flag.to_string(),
        });
    }

    pub(crate) fn module_log(&self, module: &str, level: Level, message: String) {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.push(TraceEvent::Log {
            module: module.to_string(),
            level: level.to_string(),
            message,
        });
    }

    pub(crate) fn published(&self, module: &str, result: &Result<String, PublishError>) {
        self.push(TraceEvent::Published {
            module: module.to_string(),
            routing_key: result.as_ref().ok().cloned(),
            error: result.as_ref().err().map(|e| e.to_string()),
        });
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceEvent::Node { path, module } => write!(f, "node {module} at {path}"),
            TraceEvent::NodeResult { result, .. } => write!(f, "  => {result}"),
            TraceEvent::Skipped {
                path,
                module,
                reason,
            } => write!(f, "node {module} at {path} skipped: {reason}"),
            TraceEvent::Branch { callflow_id } => write!(f, "branch into callflow {callflow_id}"),
            TraceEvent::Flag { module, flag } => write!(f, "  {module} set {flag}"),
            TraceEvent::Log {
                module,
                level,
                message,
            } => write!(f, "  {module} [{level}] {message}"),
            TraceEvent::Registered { module, duplicate } => {
                if *duplicate {
                    write!(
                        f,
                        "  {module} registered a termination callback (duplicate, kept once)"
                    )
                } else {
                    write!(f, "  {module} registered a termination callback")
                }
            }
            TraceEvent::Published {
                module,
                routing_key,
                error,
            } => match (routing_key, error) {
                (Some(key), _) => write!(f, "  {module} published {key}"),
                (None, Some(e)) => write!(f, "  {module} failed to publish: {e}"),
                (None, None) => write!(f, "  {module} published nothing"),
            },
            TraceEvent::Ended {
                reason,
                hangup,
                bridged,
                message_left,
            } => {
                write!(
                    f,
                    "flow ended ({reason}); bridged={bridged} message_left={message_left}"
                )?;
                match hangup {
                    Some(h) => write!(f, "; hangup {} ({})", h.hangup_cause, h.hangup_code),
                    None => write!(f, "; no hangup info"),
                }
            }
            TraceEvent::Callback { module } => write!(f, "termination callback of {module}"),
            TraceEvent::CallbackResult { error, .. } => match error {
                None => write!(f, "  => ok"),
                Some(e) => write!(f, "  => FAILED: {e}"),
            },
        }
    }
}
