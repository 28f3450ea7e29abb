//! Fairness between tenants (issue 17): a call's budget (run time of all its instances, nodes
//! across branches) ends it without charging the module, and one account's heavy calls wait
//! behind their own account's share of threads, not in front of another account's calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cfhost_core::executor::EndReason;
use cfhost_core::policy::{FailureKind, Limits};
use cfhost_core::trace::{NodeResult, TraceEvent};
use cfhost_tests::fairness::{self, HEAVY, HeavyLoad, LIGHT, percentile};
use cfhost_tests::{Builder, TestHost};
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

/// The experiment: `light`'s calls alone, then with `heavy` running 4 calls per thread.
async fn light_p99_idle_and_busy(host: TestHost) -> (Duration, Duration, usize) {
    let host = Arc::new(host);
    fairness::light_latencies(&host, 50).await; // warm-up
    let idle = percentile(&fairness::light_latencies(&host, 300).await, 99.0);
    let load = HeavyLoad::start(&host, 8);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = percentile(&fairness::light_latencies(&host, 300).await, 99.0);
    let heavy_calls = load.stop().await;
    (idle, busy, heavy_calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_heavy_calls_do_not_slow_simple_calls() {
    // Each heavy call runs for about half a second, in nodes of a few milliseconds.
    let host = fairness::builder(40, ROUNDS * 3)
        .policy(|policy| {
            policy.set_account_limits(
                HEAVY,
                Limits {
                    cpu_share: 1,
                    ..Limits::default()
                },
            )
        })
        .start()
        .await;
    let (idle, busy, heavy_calls) = light_p99_idle_and_busy(host).await;
    // Generous, for a loaded CI machine running other tests beside it (5.2 ms was seen there
    // with the share). It catches a host where the heavy account's calls hold the threads for
    // many ticks; the benchmark measures the 2× target, with and without the share.
    let bound = (idle * 4).max(idle + Duration::from_millis(25));
    assert!(
        busy <= bound,
        "light p99 {busy:?} with the heavy load, {idle:?} idle (bound {bound:?})"
    );
    assert!(heavy_calls > 0, "no heavy call ran");
}
