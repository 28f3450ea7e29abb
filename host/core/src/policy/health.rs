//! What the host learns about modules while calls run: counters per module, and quarantine of
//! a module that keeps failing for an account.
//!
//! Quarantine is per (account, module): one tenant's data driving a shared module into
//! failures does not take the module away from other accounts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::failure::FailureKind;

/// When a module is quarantined, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuarantineRule {
    /// Failures within the window that quarantine the module; 0 never quarantines.
    pub after_failures: u32,
    /// The window, in seconds.
    pub window_secs: u64,
    /// How long a quarantine lasts, in seconds.
    pub for_secs: u64,
}

impl Default for QuarantineRule {
    fn default() -> Self {
        QuarantineRule {
            after_failures: 5,
            window_secs: 60,
            for_secs: 300,
        }
    }
}

/// Counters of one module, over all accounts, since the host started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleCounters {
    /// Nodes run (`handle` calls started).
    pub nodes: u64,
    /// Termination callbacks run.
    pub callbacks: u64,
    /// Time its instances ran (instantiation and the call, not waits in host calls), in µs.
    pub run_micros: u64,
    /// Failures, by kind.
    pub failures: BTreeMap<FailureKind, u64>,
    /// Times the module was put into quarantine (for some account).
    pub quarantines: u64,
    /// Nodes and callbacks not run because the module was quarantined.
    pub skipped_in_quarantine: u64,
    /// Log lines dropped because the instance reached its log volume limit.
    pub log_lines_dropped: u64,
    /// Notifications and callback registrations refused for their size or number.
    pub outputs_refused: u64,
}

impl ModuleCounters {
    /// Failures of every kind.
    pub fn total_failures(&self) -> u64 {
        self.failures.values().sum()
    }

    /// The failures by kind, as `deadline 3, trap 1` (`none` when there were none).
    pub fn failures_summary(&self) -> String {
        if self.failures.is_empty() {
            return "none".to_string();
        }
        let kinds: Vec<String> = self
            .failures
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        kinds.join(", ")
    }
}

#[derive(Default)]
struct Record {
    recent_failures: VecDeque<Instant>,
    quarantined_until: Option<Instant>,
}

/// Counters and quarantines, shared by every call.
#[derive(Default)]
pub struct Health {
    rule: QuarantineRule,
    counters: Mutex<HashMap<String, ModuleCounters>>,
    /// Account → module → its recent failures and quarantine.
    records: Mutex<HashMap<String, HashMap<String, Record>>>,
    /// Whether any failure was ever recorded: until then no module can be quarantined, and
    /// the check costs one load instead of a lock.
    any_failure: AtomicBool,
}

impl Health {
    /// Empty counters; modules are quarantined by `rule`.
    pub fn new(rule: QuarantineRule) -> Self {
        Health {
            rule,
            ..Health::default()
        }
    }

    /// A copy of every module's counters.
    pub fn counters(&self) -> BTreeMap<String, ModuleCounters> {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters
            .iter()
            .map(|(module, c)| (module.clone(), c.clone()))
            .collect()
    }

    /// Changes one module's counters.
    pub fn count(&self, module: &str, change: impl FnOnce(&mut ModuleCounters)) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        match counters.get_mut(module) {
            Some(c) => change(c),
            None => change(counters.entry(module.to_string()).or_default()),
        }
    }

    /// Whether `module` is quarantined for `account` now; counts a skip when it is (call it
    /// only when the module would otherwise run).
    pub fn check_quarantine(&self, account: &str, module: &str) -> bool {
        let quarantined = self.is_quarantined(account, module);
        if quarantined {
            self.count(module, |c| c.skipped_in_quarantine += 1);
        }
        quarantined
    }

    /// Whether `module` is quarantined for `account` now, counting nothing.
    pub fn is_quarantined(&self, account: &str, module: &str) -> bool {
        if !self.any_failure.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records
            .get(account)
            .and_then(|modules| modules.get(module))
            .and_then(|r| r.quarantined_until)
            .is_some_and(|until| now < until)
    }

    /// The quarantines in force now: (account, module, time left), by account then module.
    pub fn quarantines(&self) -> Vec<(String, String, Duration)> {
        if !self.any_failure.load(Ordering::Acquire) {
            return Vec::new();
        }
        let now = Instant::now();
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let mut quarantines: Vec<(String, String, Duration)> = records
            .iter()
            .flat_map(|(account, modules)| {
                modules.iter().filter_map(move |(module, record)| {
                    let until = record.quarantined_until.filter(|until| now < *until)?;
                    Some((account.clone(), module.clone(), until - now))
                })
            })
            .collect();
        quarantines.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        quarantines
    }

    /// Records a failure; returns true when it puts the module into quarantine for `account`.
    pub fn failed(&self, account: &str, module: &str, kind: FailureKind) -> bool {
        self.count(module, |c| *c.failures.entry(kind).or_default() += 1);
        // A capability the operator did not grant, a full instance pool, a failing host
        // service, a switch that did not answer in time or a call's spent budget is not the
        // module's misbehaviour.
        if self.rule.after_failures == 0
            || matches!(
                kind,
                FailureKind::Capability
                    | FailureKind::Capacity
                    | FailureKind::Host
                    | FailureKind::HostCallTimeout
                    | FailureKind::CallBudget
            )
        {
            return false;
        }
        let now = Instant::now();
        let window = Duration::from_secs(self.rule.window_secs);
        let quarantine_starts = {
            let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
            self.any_failure.store(true, Ordering::Release);
            let record = records
                .entry(account.to_string())
                .or_default()
                .entry(module.to_string())
                .or_default();
            record.recent_failures.push_back(now);
            while record
                .recent_failures
                .front()
                .is_some_and(|t| now.duration_since(*t) > window)
            {
                record.recent_failures.pop_front();
            }
            let already = record.quarantined_until.is_some_and(|until| now < until);
            let starts =
                !already && record.recent_failures.len() >= self.rule.after_failures as usize;
            if starts {
                record.quarantined_until = Some(now + Duration::from_secs(self.rule.for_secs));
                record.recent_failures.clear();
            }
            starts
        };
        if quarantine_starts {
            self.count(module, |c| c.quarantines += 1);
            tracing::error!(
                module,
                account,
                "module quarantined for account `{account}` for {} s after {} failures in {} s",
                self.rule.for_secs,
                self.rule.after_failures,
                self.rule.window_secs
            );
        }
        quarantine_starts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_quarantine_one_account_only() {
        let health = Health::new(QuarantineRule {
            after_failures: 3,
            window_secs: 60,
            for_secs: 60,
        });
        assert!(!health.failed("a", "m", FailureKind::Trap));
        assert!(!health.failed("a", "m", FailureKind::Deadline));
        assert!(!health.check_quarantine("a", "m"));
        assert!(health.failed("a", "m", FailureKind::Trap));
        assert!(health.check_quarantine("a", "m"));
        assert!(
            !health.check_quarantine("b", "m"),
            "other accounts keep the module"
        );
        let counters = &health.counters()["m"];
        assert_eq!(counters.total_failures(), 3);
        assert_eq!(counters.failures[&FailureKind::Trap], 2);
        assert_eq!(counters.quarantines, 1);
        assert_eq!(counters.failures_summary(), "deadline 1, trap 2");
        assert_eq!(counters.skipped_in_quarantine, 1);
        let quarantines = health.quarantines();
        assert_eq!(quarantines.len(), 1, "{quarantines:?}");
        assert_eq!(
            (quarantines[0].0.as_str(), quarantines[0].1.as_str()),
            ("a", "m")
        );
        assert!(quarantines[0].2 > Duration::from_secs(50));
    }

    #[test]
    fn ungranted_capabilities_and_a_zero_threshold_never_quarantine() {
        let health = Health::new(QuarantineRule {
            after_failures: 1,
            ..QuarantineRule::default()
        });
        assert!(!health.failed("a", "m", FailureKind::Capability));
        let never = Health::new(QuarantineRule {
            after_failures: 0,
            ..QuarantineRule::default()
        });
        assert!(!never.failed("a", "m", FailureKind::Trap));
    }
}
