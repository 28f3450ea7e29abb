//! What a module instance may use and hand back, with the defaults, and per-account overrides.

use std::time::Duration;

use serde::Deserialize;

/// Limits applied to module instances. [`Limits::default`] gives the documented defaults; the
/// configuration's `[limits]` changes them for everyone, `[accounts.<id>.limits]` for one
/// account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time a `handle` call may spend running WebAssembly (waits in host calls not counted).
    pub handle_deadline: Duration,
    /// The same for an `on-termination` callback.
    pub callback_deadline: Duration,
    /// Instructions (wasmtime fuel units) a `handle` or callback may execute; `None`: no budget.
    pub fuel: Option<u64>,
    /// Largest linear memory an instance may grow to.
    pub memory_bytes: usize,
    /// Largest table an instance may grow to, in elements.
    pub table_elements: usize,
    /// Most bytes an outcome may carry (child keys, or a branch's callflow id).
    pub outcome_bytes: usize,
    /// Most bytes of strings one notification may carry.
    pub notification_bytes: usize,
    /// Most bytes an instance may log; later lines are dropped and counted.
    pub log_bytes: usize,
    /// Most termination callbacks one module may register in one call.
    pub callbacks_per_call: usize,
    /// Most bytes of state one termination callback may register.
    pub callback_state_bytes: usize,
    /// How long one host call (answer, bridge, record, hang up) may wait on the switch.
    pub host_call_timeout: Duration,
    /// Run time all of one call's instances may spend together, termination callbacks
    /// included; once spent, the flow ends and callbacks not yet run are not run.
    pub call_cpu: Duration,
    /// Most nodes one call may run, across all its branches.
    pub nodes_per_call: u32,
    /// How many of the account's instances may run WebAssembly at once ([`super::share`]).
    pub cpu_share: usize,
}

/// The default share of an account: half the host's threads, at least one.
pub fn default_cpu_share() -> usize {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    (threads / 2).max(1)
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handle_deadline: Duration::from_secs(2),
            callback_deadline: Duration::from_secs(2),
            fuel: None,
            // A Python module (componentize-py) starts at about 13 MiB, a JavaScript one
            // (componentize-js) at about 9 MiB: the default leaves either room to work.
            memory_bytes: 32 << 20,
            table_elements: 10_000,
            outcome_bytes: 4 << 10,
            notification_bytes: 64 << 10,
            log_bytes: 16 << 10,
            callbacks_per_call: 32,
            callback_state_bytes: 16 << 10,
            host_call_timeout: Duration::from_secs(300),
            call_cpu: Duration::from_secs(10),
            nodes_per_call: 1000,
            cpu_share: default_cpu_share(),
        }
    }
}

/// Limits as written in the configuration: every key optional, each replacing one limit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    pub handle_deadline_ms: Option<u64>,
    pub callback_deadline_ms: Option<u64>,
    pub fuel: Option<u64>,
    pub memory_mib: Option<usize>,
    pub table_elements: Option<usize>,
    pub outcome_bytes: Option<usize>,
    pub notification_bytes: Option<usize>,
    pub log_bytes: Option<usize>,
    pub callbacks_per_call: Option<usize>,
    pub callback_state_bytes: Option<usize>,
    pub host_call_timeout_ms: Option<u64>,
    pub call_cpu_ms: Option<u64>,
    pub nodes_per_call: Option<u32>,
    pub cpu_share: Option<usize>,
}

impl Limits {
    /// These limits with `overrides` applied.
    pub fn with(&self, overrides: &LimitOverrides) -> Limits {
        let ms = Duration::from_millis;
        Limits {
            handle_deadline: overrides
                .handle_deadline_ms
                .map_or(self.handle_deadline, ms),
            callback_deadline: overrides
                .callback_deadline_ms
                .map_or(self.callback_deadline, ms),
            fuel: overrides.fuel.or(self.fuel),
            memory_bytes: overrides
                .memory_mib
                .map_or(self.memory_bytes, |mib| mib << 20),
            table_elements: overrides.table_elements.unwrap_or(self.table_elements),
            outcome_bytes: overrides.outcome_bytes.unwrap_or(self.outcome_bytes),
            notification_bytes: overrides
                .notification_bytes
                .unwrap_or(self.notification_bytes),
            log_bytes: overrides.log_bytes.unwrap_or(self.log_bytes),
            callbacks_per_call: overrides
                .callbacks_per_call
                .unwrap_or(self.callbacks_per_call),
            callback_state_bytes: overrides
                .callback_state_bytes
                .unwrap_or(self.callback_state_bytes),
            host_call_timeout: overrides
                .host_call_timeout_ms
                .map_or(self.host_call_timeout, ms),
            call_cpu: overrides.call_cpu_ms.map_or(self.call_cpu, ms),
            nodes_per_call: overrides.nodes_per_call.unwrap_or(self.nodes_per_call),
            cpu_share: overrides.cpu_share.unwrap_or(self.cpu_share).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_they_name() {
        let overrides: LimitOverrides =
            toml::from_str("handle_deadline_ms = 50\nmemory_mib = 4\nfuel = 1000").unwrap();
        let limits = Limits::default().with(&overrides);
        assert_eq!(limits.handle_deadline, Duration::from_millis(50));
        assert_eq!(limits.memory_bytes, 4 << 20);
        assert_eq!(limits.fuel, Some(1000));
        assert_eq!(
            limits.callback_deadline,
            Limits::default().callback_deadline
        );
        assert_eq!(limits.log_bytes, Limits::default().log_bytes);
        let err = toml::from_str::<LimitOverrides>("deadline = 5").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `deadline`"),
            "{err}"
        );
    }
}
