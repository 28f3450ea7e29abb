//! `GET /metrics`: Prometheus text exposition of the calls the API ran, the modules' counters
//! and the notifications.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cfhost_core::policy::{Health, ModuleCounters};

/// Counters of the calls run through the API.
#[derive(Default)]
pub struct CallMetrics {
    ok: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
    seconds: Mutex<f64>,
}

impl CallMetrics {
    /// Counts a call as in flight until [`CallMetrics::finished`].
    pub fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a finished call and how long it took.
    pub fn finished(&self, ok: bool, took: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let counter = if ok { &self.ok } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
        *self.seconds.lock().unwrap_or_else(|e| e.into_inner()) += took.as_secs_f64();
    }

    /// Calls running now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Calls that finished, whatever their result.
    pub fn finished_total(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

/// What the exposition needs besides the call counters.
pub struct Snapshot<'a> {
    pub calls: &'a CallMetrics,
    pub health: &'a Health,
    pub notifications_published: u64,
    /// Undelivered notifications in the AMQP outbox, when there is one.
    pub outbox: Option<usize>,
    /// Module files the last reloads rejected.
    pub rejected_modules: usize,
}

/// The Prometheus text of `snapshot`.
pub fn render(snapshot: &Snapshot<'_>) -> String {
    let mut out = String::new();
    let calls = snapshot.calls;
    let ok = calls.ok.load(Ordering::Relaxed);
    let failed = calls.failed.load(Ordering::Relaxed);
    family(
        &mut out,
        "cfhost_calls_total",
        "counter",
        "Calls run through the API, by result.",
    );
    let _ = writeln!(out, "cfhost_calls_total{{result=\"ok\"}} {ok}");
    let _ = writeln!(out, "cfhost_calls_total{{result=\"error\"}} {failed}");
    family(
        &mut out,
        "cfhost_calls_in_flight",
        "gauge",
        "Calls running now.",
    );
    let _ = writeln!(out, "cfhost_calls_in_flight {}", calls.in_flight());
    family(
        &mut out,
        "cfhost_call_duration_seconds",
        "summary",
        "Time from request to the end of the call's termination callbacks.",
    );
    let seconds = *calls.seconds.lock().unwrap_or_else(|e| e.into_inner());
    let _ = writeln!(out, "cfhost_call_duration_seconds_sum {seconds}");
    let _ = writeln!(out, "cfhost_call_duration_seconds_count {}", ok + failed);

    family(
        &mut out,
        "cfhost_modules_rejected",
        "gauge",
        "Module files the last reloads rejected (GET /v1/modules/rejected says why).",
    );
    let _ = writeln!(out, "cfhost_modules_rejected {}", snapshot.rejected_modules);

    let counters = snapshot.health.counters();
    let per_module =
        |out: &mut String, name: &str, help: &str, value: fn(&ModuleCounters) -> u64| {
            family(out, name, "counter", help);
            for (module, c) in &counters {
                let _ = writeln!(out, "{name}{{module=\"{module}\"}} {}", value(c));
            }
        };
    per_module(
        &mut out,
        "cfhost_module_nodes_total",
        "Nodes run, by module.",
        |c| c.nodes,
    );
    per_module(
        &mut out,
        "cfhost_module_callbacks_total",
        "Termination callbacks run, by module.",
        |c| c.callbacks,
    );
    family(
        &mut out,
        "cfhost_module_run_seconds_total",
        "counter",
        "Time instances of the module ran (not waits in host calls), by module.",
    );
    for (module, c) in &counters {
        let seconds = c.run_micros as f64 / 1e6;
        let _ = writeln!(
            out,
            "cfhost_module_run_seconds_total{{module=\"{module}\"}} {seconds}"
        );
    }
    per_module(
        &mut out,
        "cfhost_module_quarantines_total",
        "Times a module was quarantined for an account.",
        |c| c.quarantines,
    );
    family(
        &mut out,
        "cfhost_module_failures_total",
        "counter",
        "Module failures, by module and kind.",
    );
    for (module, c) in &counters {
        for (kind, n) in &c.failures {
            let _ = writeln!(
                out,
                "cfhost_module_failures_total{{module=\"{module}\",kind=\"{kind}\"}} {n}"
            );
        }
    }
    family(
        &mut out,
        "cfhost_notifications_published_total",
        "counter",
        "Notifications handed to the sink.",
    );
    let _ = writeln!(
        out,
        "cfhost_notifications_published_total {}",
        snapshot.notifications_published
    );
    if let Some(waiting) = snapshot.outbox {
        family(
            &mut out,
            "cfhost_notifications_in_outbox",
            "gauge",
            "Notifications in the outbox, not yet confirmed by the broker.",
        );
        let _ = writeln!(out, "cfhost_notifications_in_outbox {waiting}");
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}
