//! Why a module failed, and what the host does about it.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// What the host does when a module's node fails (or its module is quarantined).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    /// Log, count, and continue to the node's `_` child (KAZOO's behaviour for a crash).
    FailOpen,
    /// Log, count, and hang the call up with the configured cause.
    FailClosed,
}

/// The kinds of failure the host counts, per module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// Ran past its wall-clock deadline.
    Deadline,
    /// Spent its instruction budget.
    Fuel,
    /// Tried to grow memory or a table past its limit.
    Memory,
    /// Overflowed its stack.
    StackOverflow,
    /// Trapped otherwise (a panic, `unreachable`, a bad memory access).
    Trap,
    /// Used, or needs, a capability it was not granted.
    Capability,
    /// Handed back more than the limits allow (outcome, notification, callbacks).
    Output,
    /// A short host call it made (answer, hang up) waited too long on the switch: the
    /// host's fault, never towards quarantine.
    HostCallTimeout,
    /// Returned an error.
    Error,
    /// Could not be instantiated: every slot of the instance pool was taken. The host's
    /// capacity, not the module's doing: it never counts towards quarantine.
    Capacity,
    /// Failed after one of the host's own services failed it (the notification sink or the
    /// outbox refused a publish): the host's fault, counted apart, never towards quarantine.
    Host,
    /// Stopped because the call's CPU budget was spent (by this instance and the call's
    /// others): the call's matter, never towards quarantine.
    CallBudget,
}

impl FailureKind {
    /// The name used in logs, traces and counters.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Deadline => "deadline",
            FailureKind::Fuel => "fuel",
            FailureKind::Memory => "memory",
            FailureKind::StackOverflow => "stack_overflow",
            FailureKind::Trap => "trap",
            FailureKind::Capability => "capability",
            FailureKind::Output => "output",
            FailureKind::HostCallTimeout => "host_call_timeout",
            FailureKind::Error => "error",
            FailureKind::Capacity => "capacity",
            FailureKind::Host => "host",
            FailureKind::CallBudget => "call_budget",
        }
    }

    /// Classifies an error raised while instantiating or calling a module.
    pub fn of(error: &wasmtime::Error) -> FailureKind {
        if let Some(refusal) = error.downcast_ref::<Refusal>() {
            return refusal.kind();
        }
        if error.is::<wasmtime::PoolConcurrencyLimitError>() {
            return FailureKind::Capacity;
        }
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => FailureKind::Deadline,
            Some(wasmtime::Trap::OutOfFuel) => FailureKind::Fuel,
            Some(wasmtime::Trap::StackOverflow) => FailureKind::StackOverflow,
            _ => FailureKind::Trap,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The host stopping a module: raised as a trap from a limiter, the deadline check or an
/// import, so that the failure can be classified.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("module `{module}` ran WebAssembly for more than its {deadline:?} deadline")]
    Deadline { module: String, deadline: Duration },
    #[error("module `{module}` was stopped: the call spent its CPU budget of {budget:?}")]
    CallBudget { module: String, budget: Duration },
    #[error("module `{module}` tried to grow its memory to {desired} bytes; the limit is {limit}")]
    Memory {
        module: String,
        desired: usize,
        limit: usize,
    },
    #[error("module `{module}` tried to grow a table to {desired} elements; the limit is {limit}")]
    Table {
        module: String,
        desired: usize,
        limit: usize,
    },
    #[error("module `{module}` used capability `{capability}` without asking for it")]
    Undeclared {
        module: String,
        capability: super::Capability,
    },
    #[error("host call `{call}` of module `{module}` waited more than {timeout:?}")]
    HostCallTimeout {
        module: String,
        call: &'static str,
        timeout: Duration,
    },
}

impl Refusal {
    fn kind(&self) -> FailureKind {
        match self {
            Refusal::Deadline { .. } => FailureKind::Deadline,
            Refusal::CallBudget { .. } => FailureKind::CallBudget,
            Refusal::Memory { .. } | Refusal::Table { .. } => FailureKind::Memory,
            Refusal::Undeclared { .. } => FailureKind::Capability,
            Refusal::HostCallTimeout { .. } => FailureKind::HostCallTimeout,
        }
    }
}

/// A failed node or callback: its kind and a message for the trace and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// The longest failure message kept in traces and logs; a module's error text is its own
/// output and is cut to this length.
const MAX_MESSAGE: usize = 1024;

impl Failure {
    /// A failure of `kind`, its message cut to a sane length.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str("… (cut)");
        }
        Failure { kind, message }
    }

    /// A failure raised by wasmtime while instantiating or calling: the host's refusal or the
    /// trap, without the wasm backtrace.
    pub fn from_wasmtime(error: &wasmtime::Error, doing: &str) -> Self {
        let detail = if let Some(refusal) = error.downcast_ref::<Refusal>() {
            refusal.to_string()
        } else if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
            trap.to_string()
        } else {
            format!("{error:#}")
        };
        Failure::new(FailureKind::of(error), format!("{doing}: {detail}"))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_through_context() {
        let refusal = wasmtime::Error::new(Refusal::Deadline {
            module: "m".into(),
            deadline: Duration::from_secs(1),
        })
        .context("calling handle");
        assert_eq!(FailureKind::of(&refusal), FailureKind::Deadline);
        let trap = wasmtime::Error::new(wasmtime::Trap::StackOverflow);
        assert_eq!(FailureKind::of(&trap), FailureKind::StackOverflow);
        let other = wasmtime::Error::msg("something else");
        assert_eq!(FailureKind::of(&other), FailureKind::Trap);
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let failure = Failure::new(FailureKind::Error, "é".repeat(2000));
        assert!(failure.message.len() < MAX_MESSAGE + 16);
        assert!(failure.message.ends_with("(cut)"));
    }
}
