//! Fairness between tenants (issue 17): a call's budget (run time of all its instances, nodes
//! across branches) ends it without charging the module, and one account's heavy calls wait
//! behind their own account's share of threads, not in front of another account's calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cfhost_core::executor::EndReason;
use cfhost_core::policy::{FailureKind, Limits};
use cfhost_core::trace::{NodeResult, TraceEvent};
use cfhost_tests::Builder;
use cfhost_tests::fairness::{self, HEAVY, HeavyLoad, LIGHT, percentile};
use serde_json::json;

/// Rounds of `work` that take a few milliseconds of CPU.
const ROUNDS: u64 = 2_000_000;

fn failures(report: &cfhost_core::executor::CallReport) -> Vec<String> {
    report
        .trace
        .iter()
        .filter_map(|event| match event {
            TraceEvent::NodeResult {
                result: NodeResult::Failed { failure, .. },
                ..
            } => Some(failure.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_call_that_spends_its_cpu_budget_ends_and_its_module_is_not_charged() {
    // Each node may run 2 s; the call may run 150 ms in all. 40 nodes of tens of
    // milliseconds each would run far longer.
    let limits = Limits {
        call_cpu: Duration::from_millis(150),
        ..Limits::default()
    };
    let host = fairness::builder(40, ROUNDS * 10)
        .policy(|policy| {
            policy.set_account_limits(HEAVY, limits);
            policy.quarantine.after_failures = 2;
        })
        .start()
        .await;
    for _ in 0..4 {
        let started = Instant::now();
        let report = host.run(json!({"account_id": HEAVY, "to": "500"})).await;
        let took = started.elapsed();
        assert_eq!(report.end, EndReason::CallBudget, "{:?}", report.trace);
        let nodes = report.nodes_run().len();
        assert!((1..40).contains(&nodes), "{nodes} nodes ran");
        // The budget is checked at each epoch tick (10 ms) of the node that spends it.
        assert!(took < Duration::from_secs(2), "the call took {took:?}");
        for failure in failures(&report) {
            assert!(failure.contains("CPU budget of 150ms"), "{failure}");
        }
    }
    let counters = host.runtime().health().counters();
    let fixture = &counters["test_fixture"];
    assert_eq!(fixture.quarantines, 0, "the budget quarantined the module");
    assert!(!fixture.failures.contains_key(&FailureKind::Deadline));
    // The account's other calls, and other accounts, are not affected.
    let light = host
        .run(json!({"account_id": LIGHT, "to": "200", "caller_id_number": "201"}))
        .await;
    assert_eq!(light.end, EndReason::FlowEnded);
    assert_eq!(host.template_ids(), ["light"]);
}

#[tokio::test]
async fn a_branch_loop_ends_at_the_node_budget() {
    let looping = json!({"module": "test_fixture", "data": {"outcome": "branch", "branch": "loop"},
                         "children": {}});
    let host = Builder::new()
        .policy(|policy| {
            policy.set_limits(Limits {
                nodes_per_call: 7,
                ..Limits::default()
            })
        })
        .callflow("acme", "loop", json!({"numbers": ["100"], "flow": looping}))
        .start()
        .await;
    let report = host.run(json!({"account_id": "acme", "to": "100"})).await;
    assert_eq!(report.end, EndReason::CallBudget);
    assert_eq!(report.nodes_run().len(), 7);
    let said = report.trace.iter().any(|event| {
        matches!(event, TraceEvent::Log { message, .. }
                 if message.contains("ran its budget of 7 nodes"))
    });
    assert!(said, "{:?}", report.trace);
}

#[tokio::test]
async fn callbacks_after_the_budget_is_spent_are_reported_not_run() {
    let flow = json!({"module": "test_fixture",
        "data": {"register": [{"template_id": "first"}]},
        "children": {"_": {"module": "test_fixture", "data": {"outcome": "spin"}, "children": {}}}});
    let host = Builder::new()
        .policy(|policy| {
            policy.set_limits(Limits {
                call_cpu: Duration::from_millis(100),
                ..Limits::default()
            })
        })
        .callflow("acme", "spin", json!({"numbers": ["100"], "flow": flow}))
        .start()
        .await;
    let report = host.run(json!({"account_id": "acme", "to": "100"})).await;
    assert_eq!(report.end, EndReason::CallBudget);
    let callbacks = report.callbacks();
    assert_eq!(callbacks.len(), 1);
    let error = callbacks[0].1.expect("the callback was not run");
    assert!(
        error.contains("not run") && error.contains("CPU budget"),
        "{error}"
    );
    assert!(host.template_ids().is_empty());
}

/// Light latencies: alone (p99), then beside `heavy` running 8 calls at once (p99, and how
/// many took longer than [`SLOW`]).
struct Experiment {
    idle_p99: Duration,
    busy_p99: Duration,
    busy_slow: usize,
    heavy_calls: usize,
}

/// Well under the 10 ms epoch tick that a light call waits for when every thread runs a
/// heavy instance, well over a light call's own time (about 0.1 ms).
const SLOW: Duration = Duration::from_millis(4);

/// The experiment with `heavy` held to `cpu_share` threads; each heavy call runs for about half
/// a second, in nodes of a few milliseconds.
async fn experiment(cpu_share: usize) -> Experiment {
    let host = fairness::builder(40, ROUNDS * 3)
        .policy(|policy| {
            policy.set_account_limits(
                HEAVY,
                Limits {
                    cpu_share,
                    ..Limits::default()
                },
            )
        })
        .start()
        .await;
    let host = Arc::new(host);
    fairness::light_latencies(&host, 50).await; // warm-up
    let idle_p99 = percentile(&fairness::light_latencies(&host, 300).await, 99.0);
    let load = HeavyLoad::start(&host, 8);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = fairness::light_latencies(&host, 300).await;
    let heavy_calls = load.stop().await;
    Experiment {
        idle_p99,
        busy_p99: percentile(&busy, 99.0),
        busy_slow: busy.iter().filter(|&&took| took > SLOW).count(),
        heavy_calls,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_heavy_calls_do_not_slow_simple_calls() {
    // The experiment runs beside the other tests of this binary, whose load lands on the held
    // and the unheld run unevenly (a clean-clone CI run once counted 6 slow light calls with
    // the share and 9 without, where the test alone passed three runs out of three): it is
    // repeated up to three times. A share that does nothing fails all three.
    let mut attempts = Vec::new();
    for _ in 0..3 {
        match share_keeps_light_calls_fast().await {
            Ok(()) => return,
            Err(why) => attempts.push(why),
        }
    }
    panic!("in three attempts: {attempts:#?}");
}

/// One held and one unheld experiment on the same machine moment; why the share failed, if
/// it did.
async fn share_keeps_light_calls_fast() -> Result<(), String> {
    let held = experiment(1).await;
    // Without the share: as many turns as heavy calls, so all 8 run at once.
    let unheld = experiment(8).await;
    assert!(
        held.heavy_calls > 0 && unheld.heavy_calls > 0,
        "no heavy call ran"
    );
    // Generous, for a loaded CI machine running other tests beside it (5.2 ms was seen there
    // with the share); the benchmark measures the 2× target.
    let bound = (held.idle_p99 * 4).max(held.idle_p99 + Duration::from_millis(25));
    if held.busy_p99 > bound {
        return Err(format!(
            "light p99 {:?} with the heavy load, {:?} idle (bound {bound:?})",
            held.busy_p99, held.idle_p99
        ));
    }
    // What the share does, against the same host without it in the same run: unheld, a
    // light call that finds every thread running a heavy instance waits for a tick (5 to 10%
    // of them, measured); held, a thread is free for it. Counting those beats a percentile on
    // a loaded machine, where other processes' noise lands on both runs alike.
    if unheld.busy_slow < 6 {
        return Err(format!(
            "without the share only {} of 300 light calls waited: the experiment did not load \
             the host",
            unheld.busy_slow
        ));
    }
    if held.busy_slow * 2 >= unheld.busy_slow {
        return Err(format!(
            "light calls over {SLOW:?}: {} with the share, {} without: the share made no \
             difference",
            held.busy_slow, unheld.busy_slow
        ));
    }
    Ok(())
}
