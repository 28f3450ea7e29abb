//! The per-call trace: every node run or skipped, flags set, module log lines, notifications,
//! and every termination callback with its outcome. The simulator prints it; tests read it.

use std::fmt;
use std::sync::Mutex;

use crate::hangup::{Hangup, HangupCause};

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        })
    }
}

/// How a node ended, and so where the flow goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeResult {
    /// Continue to the first of these children that exists, else `_` (none: `_`).
    Continue(Vec<String>),
    /// Stop this flow.
    Stop,
    /// Branch into the account's callflow with this id.
    Branch(String),
    /// The module failed (the failure and its kind, as text); then what its failure mode did.
    Failed { failure: String, then: AfterFailure },
    /// Not run: the module is quarantined for the account; then what its failure mode did.
    Quarantined { then: AfterFailure },
}

/// What a failed or quarantined node's failure mode did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Fail-open: on to the node's `_` child.
    Continue,
    /// Fail-closed: the host hung up with this cause.
    HangUp(HangupCause),
    /// The call's budget ran out: the flow ended, whatever the failure mode.
    EndCall,
}

impl fmt::Display for NodeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let then = |f: &mut fmt::Formatter<'_>, then: &AfterFailure| match then {
            AfterFailure::Continue => write!(f, "; continuing"),
            AfterFailure::HangUp(cause) => write!(f, "; hanging up with {cause} (fail-closed)"),
            AfterFailure::EndCall => write!(f, "; ending the call"),
        };
        match self {
            NodeResult::Continue(keys) if keys.is_empty() => write!(f, "continue"),
            NodeResult::Continue(keys) => write!(f, "continue to {}", keys.join(" | ")),
            NodeResult::Stop => write!(f, "stop"),
            NodeResult::Branch(id) => write!(f, "branch to {id}"),
            NodeResult::Failed {
                failure,
                then: after,
            } => {
                write!(f, "FAILED: {failure}")?;
                then(f, after)
            }
            NodeResult::Quarantined { then: after } => {
                write!(f, "QUARANTINED")?;
                then(f, after)
            }
        }
    }
}

/// One thing that happened during a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEvent {
    /// A node starts; `path` is where it sits in its callflow (e.g. `flow.children._`).
    Node { path: String, module: String },
    /// The node that started last finished with this result.
    NodeResult { module: String, result: NodeResult },
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
        level: Level,
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
        hangup: Option<Hangup>,
        bridged: bool,
        message_left: bool,
    },
    /// A termination callback starts.
    Callback { module: String },
    /// The switch backend reports something of its own (a SIP request in, a leg rung and its
    /// final response, who hung up).
    Switch { event: String },
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

    /// Records an event of the switch backend.
    pub fn switch(&self, event: impl Into<String>) {
        self.push(TraceEvent::Switch {
            event: event.into(),
        });
    }

    pub(crate) fn flag_set(&self, module: &str, flag: &str) {
        self.push(TraceEvent::Flag {
            module: module.to_string(),
            flag: flag.to_string(),
        });
    }

    pub(crate) fn log(&self, module: &str, level: Level, message: String) {
        self.push(TraceEvent::Log {
            module: module.to_string(),
            level,
            message,
        });
    }

    /// A notification was published under `routing_key`, or refused for `error`.
    pub(crate) fn published(&self, module: &str, routing_key: Option<&str>, error: Option<String>) {
        let routing_key = routing_key.map(str::to_string);
        self.push(TraceEvent::Published {
            module: module.to_string(),
            routing_key,
            error,
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
                    Some(h) => write!(f, "; hangup {} ({})", h.cause, h.code),
                    None => write!(f, "; no hangup info"),
                }
            }
            TraceEvent::Callback { module } => write!(f, "termination callback of {module}"),
            TraceEvent::Switch { event } => write!(f, "switch: {event}"),
            TraceEvent::CallbackResult { error, .. } => match error {
                None => write!(f, "  => ok"),
                Some(e) => write!(f, "  => FAILED: {e}"),
            },
        }
    }
}
