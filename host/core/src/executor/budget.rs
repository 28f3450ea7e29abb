//! The budget of one call: the run time all its instances may spend together (callbacks
//! included) and how many nodes it may run across its branches.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::policy::Limits;

/// What one call has spent of its budget so far.
#[derive(Debug)]
pub struct CallBudget {
    cpu: Duration,
    nodes: u32,
    spent_micros: AtomicU64,
    nodes_run: AtomicU32,
}

impl CallBudget {
    /// A budget of `limits.call_cpu` run time and `limits.nodes_per_call` nodes.
    pub fn new(limits: &Limits) -> Self {
        CallBudget {
            cpu: limits.call_cpu,
            nodes: limits.nodes_per_call,
            spent_micros: AtomicU64::new(0),
            nodes_run: AtomicU32::new(0),
        }
    }

    /// The run time left.
    pub fn cpu_left(&self) -> Duration {
        let spent = Duration::from_micros(self.spent_micros.load(Ordering::Relaxed));
        self.cpu.saturating_sub(spent)
    }

    /// Counts `ran` of run time against the budget.
    pub fn charge(&self, ran: Duration) {
        let micros = u64::try_from(ran.as_micros()).unwrap_or(u64::MAX);
        self.spent_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts one more node; false when the call has run as many as it may (the node is not
    /// counted then).
    pub fn take_node(&self) -> bool {
        self.nodes_run
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |run| {
                (run < self.nodes).then_some(run + 1)
            })
            .is_ok()
    }

    /// What was spent, in words, when the budget ends a call.
    pub fn describe_spent(&self) -> String {
        if self.cpu_left().is_zero() {
            format!("the call spent its CPU budget of {:?}", self.cpu)
        } else {
            format!("the call ran its budget of {} nodes", self.nodes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_time_and_nodes_are_spent_until_none_is_left() {
        let limits = Limits {
            call_cpu: Duration::from_millis(100),
            nodes_per_call: 2,
            ..Limits::default()
        };
        let budget = CallBudget::new(&limits);
        budget.charge(Duration::from_millis(60));
        assert_eq!(budget.cpu_left(), Duration::from_millis(40));
        budget.charge(Duration::from_millis(60));
        assert_eq!(budget.cpu_left(), Duration::ZERO);
        assert!(budget.describe_spent().contains("CPU budget of 100ms"));
        assert!(budget.take_node() && budget.take_node());
        assert!(!budget.take_node());
        assert!(!budget.take_node());
    }
}
