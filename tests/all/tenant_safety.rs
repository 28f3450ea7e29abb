//! Tenant safety: hostile modules, limits, failure policies, quarantine and grants. For each
//! attack the host survives, the call goes on by policy, calls running at the same time are
//! unaffected, other modules' termination callbacks still run, and the counters record it.

use std::sync::Arc;
use std::time::Duration;

use cfhost_core::call::{BridgeOutcome, BridgeRequest, Call, HangupCause, RecordOutcome};
use cfhost_core::executor::{CallReport, EndReason};
use cfhost_core::policy::{FailureKind, FailureMode, Limits};
use cfhost_core::switch::{SimulatorBehaviour, Switch, SwitchError};
use cfhost_core::trace::TraceEvent;
use cfhost_tests::{Builder, TestHost, hooked_switch, module_counters, node_results};
use serde_json::{Value, json};

const ACCOUNT: &str = "acme";
const GOOD_CALLS: usize = 8;

/// Short deadlines, so that attacks are stopped quickly.
fn quick_limits() -> Limits {
    Limits {
        handle_deadline: Duration::from_millis(300),
        callback_deadline: Duration::from_millis(300),
        ..Limits::default()
    }
}

/// A node that registers a callback publishing `template` when the call ends.
fn marker(template: &str, children: Value) -> Value {
    json!({"module": "test_fixture", "data": {"register": [{"template_id": template}]},
           "children": children})
}

fn hostile(attack: &str, place: &str, children: Value) -> Value {
    json!({"module": "hostile", "data": {"attack": attack, "in": place}, "children": children})
}

/// A host with quick limits whose account has three callflows:
/// - `100`: `survivor` registers a callback, `attack` runs in `handle`, then `after` registers;
/// - `101`: `attack` registers a callback that attacks, then `survivor` registers one;
/// - `200`: a good call, registering `good`.
fn builder(attack: &str) -> Builder {
    let in_handle = marker(
        "survivor",
        json!({"_": hostile(attack, "handle", json!({"_": marker("after", json!({}))}))}),
    );
    let in_callback = hostile(
        attack,
        "callback",
        json!({"_": marker("survivor", json!({}))}),
    );
    Builder::new()
        .policy(|policy| policy.set_limits(quick_limits()))
        .callflow(
            ACCOUNT,
            "in-handle",
            json!({"numbers": ["100"], "flow": in_handle}),
        )
        .callflow(
            ACCOUNT,
            "in-callback",
            json!({"numbers": ["101"], "flow": in_callback}),
        )
        .callflow(
            ACCOUNT,
            "good",
            json!({"numbers": ["200"], "flow": marker("good", json!({}))}),
        )
}

fn call(to: &str) -> Value {
    json!({"account_id": ACCOUNT, "to": to, "caller_id_number": "200"})
}

/// Runs `to` and `GOOD_CALLS` good calls at the same time; checks every good one.
async fn alongside_good_calls(host: &TestHost, to: &str) -> CallReport {
    let good = (0..GOOD_CALLS).map(|_| host.run(call("200")));
    let (report, good) = tokio::join!(host.run(call(to)), futures::future::join_all(good));
    for report in good {
        assert_eq!(report.end, EndReason::FlowEnded);
        assert_eq!(report.callbacks(), [("test_fixture", None)]);
        assert_eq!(node_results(&report), ["continue"]);
    }
    report
}

/// The `good` notifications and the others, in order.
fn split_good(templates: Vec<String>) -> (usize, Vec<String>) {
    let good = templates.iter().filter(|t| *t == "good").count();
    let rest = templates.into_iter().filter(|t| t != "good").collect();
    (good, rest)
}

/// Attacks in `handle` that make the node fail, and the failure kind and message they get.
const FAILING_ATTACKS: [(&str, FailureKind, &str); 7] = [
    (
        "infinite_loop",
        FailureKind::Deadline,
        "ran WebAssembly for more than its 300ms deadline",
    ),
    (
        "memory_bomb",
        FailureKind::Memory,
        "tried to grow its memory to",
    ),
    (
        "stack_overflow",
        FailureKind::StackOverflow,
        "call stack exhausted",
    ),
    ("panic", FailureKind::Trap, "unreachable"),
    (
        "huge_outcome",
        FailureKind::Output,
        "outcome of 2000000 bytes exceeds the limit of 4096 bytes",
    ),
    (
        "huge_notification",
        FailureKind::Error,
        // The host's typed `publish-error.too-large(limit)`, as the SDK words it.
        "the notification exceeds the limit of 65536 bytes",
    ),
    (
        "denied_import",
        FailureKind::Capability,
        "module `hostile` used capability `call-control` without asking for it",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attack_in_handle_fails_open_and_harms_nothing_else() {
    for (attack, kind, message) in FAILING_ATTACKS {
        let host = builder(attack).start().await;
        let report = alongside_good_calls(&host, "100").await;
        let results = node_results(&report);
        assert_eq!(results.len(), 3, "{attack}: {results:?}");
        assert!(
            results[1].starts_with("FAILED: handle: ") && results[1].contains(message),
            "{attack}: {}",
            results[1]
        );
        assert!(
            results[1].ends_with(&format!("({kind}); continuing")),
            "{attack}: {}",
            results[1]
        );
        // Fail-open: the flow went on to `_`; both callbacks ran, in order.
        assert_eq!(report.end, EndReason::FlowEnded, "{attack}");
        let (good, rest) = split_good(host.template_ids());
        assert_eq!(good, GOOD_CALLS, "{attack}");
        assert_eq!(rest, ["survivor", "after"], "{attack}");
        let hostile = module_counters(&host, "hostile");
        assert_eq!(hostile.nodes, 1, "{attack}");
        assert_eq!(
            hostile.failures.get(&kind),
            Some(&1),
            "{attack}: {hostile:?}"
        );
        assert_eq!(hostile.total_failures(), 1, "{attack}: {hostile:?}");
        assert_eq!(module_counters(&host, "test_fixture").total_failures(), 0);
        // The host is fine: the next call runs.
        host.run(call("200")).await;
        assert_eq!(
            split_good(host.template_ids()).0,
            GOOD_CALLS + 1,
            "{attack}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attack_in_a_callback_fails_alone_and_later_callbacks_run() {
    for (attack, kind, _) in FAILING_ATTACKS {
        if attack == "huge_outcome" {
            continue; // a callback returns no outcome
        }
        let host = builder(attack).start().await;
        let report = alongside_good_calls(&host, "101").await;
        let callbacks = report.callbacks();
        assert_eq!(callbacks.len(), 2, "{attack}: {callbacks:?}");
        assert_eq!(callbacks[0].0, "hostile");
        let error = callbacks[0]
            .1
            .unwrap_or_else(|| panic!("{attack}: no error"));
        assert!(error.ends_with(&format!("({kind})")), "{attack}: {error}");
        assert_eq!(callbacks[1], ("test_fixture", None), "{attack}");
        let (good, rest) = split_good(host.template_ids());
        assert_eq!(good, GOOD_CALLS, "{attack}");
        assert_eq!(rest, ["survivor"], "{attack}");
        let hostile = module_counters(&host, "hostile");
        assert_eq!((hostile.nodes, hostile.callbacks), (1, 1), "{attack}");
        assert_eq!(
            hostile.failures.get(&kind),
            Some(&1),
            "{attack}: {hostile:?}"
        );
    }
}

#[tokio::test]
async fn a_flood_of_log_lines_is_capped_and_counted_without_failing() {
    let host = builder("huge_log").start().await;
    let report = host.run(call("100")).await;
    assert_eq!(node_results(&report)[1], "continue");
    let logged: usize = report
        .trace
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Log {
                module, message, ..
            } if module == "hostile" => Some(message.len()),
            _ => None,
        })
        .sum();
    let limit = Limits::default().log_bytes;
    assert!(logged <= limit + 200, "{logged} bytes logged");
    let hostile = module_counters(&host, "hostile");
    assert_eq!(hostile.log_lines_dropped, 10_000 - (limit / 1024) as u64);
    assert_eq!(hostile.total_failures(), 0);
}

#[tokio::test]
async fn too_many_callbacks_are_refused_and_counted() {
    let host = builder("many_callbacks").start().await;
    let report = host.run(call("100")).await;
    let results = node_results(&report);
    assert!(
        // The host's typed `register-error.too-many(limit)`, as the SDK words it.
        results[1].contains("the call has 32 termination callbacks of this module already"),
        "{results:?}"
    );
    assert_eq!(module_counters(&host, "hostile").outputs_refused, 1);
    // The 32 accepted ones ran (and failed: their state is not an attack); the survivor's and
    // `after`'s ran too: one module cannot crowd out the others.
    let callbacks = report.callbacks();
    assert_eq!(callbacks.len(), 34);
    assert_eq!(callbacks[0], ("test_fixture", None));
    assert_eq!(callbacks[33], ("test_fixture", None));
    assert_eq!(host.template_ids(), ["survivor", "after"]);
}

#[tokio::test]
async fn the_directory_does_not_reach_another_accounts_users() {
    let host = Builder::new()
        .user("other", "their-user", json!({"email": "their@example.com"}))
        .user(ACCOUNT, "our-user", json!({"email": "our@example.com"}))
        .callflow(
            ACCOUNT,
            "probe",
            json!({"numbers": ["100"], "flow": {
            "module": "hostile",
            "data": {"attack": "other_account_user", "user_id": "their-user"},
            "children": {"sealed": marker("sealed", json!({})),
                         "leaked": marker("leaked", json!({}))}}}),
        )
        .callflow(
            ACCOUNT,
            "control",
            json!({"numbers": ["101"], "flow": {
            "module": "hostile",
            "data": {"attack": "other_account_user", "user_id": "our-user"},
            "children": {"sealed": marker("sealed", json!({})),
                         "leaked": marker("found", json!({}))}}}),
        )
        .start()
        .await;
    host.run(call("100")).await;
    // The control shows the probe works: the account's own user is found.
    host.run(call("101")).await;
    assert_eq!(host.template_ids(), ["sealed", "found"]);
}

#[tokio::test]
async fn fail_closed_hangs_up_with_the_configured_cause_and_callbacks_still_run() {
    let host = builder("panic")
        .policy(|policy| policy.set_module_failure_mode("hostile", FailureMode::FailClosed))
        .start()
        .await;
    let report = host.run(call("100")).await;
    assert_eq!(report.end, EndReason::FailedClosed);
    let results = node_results(&report);
    assert_eq!(results.len(), 2, "the `_` child did not run: {results:?}");
    assert!(
        results[1].ends_with("(trap); hanging up with NORMAL_TEMPORARY_FAILURE (fail-closed)"),
        "{}",
        results[1]
    );
    let hangup = report.hangup.expect("the host hung up with a cause");
    assert_eq!(hangup.cause, "NORMAL_TEMPORARY_FAILURE");
    assert_eq!(host.template_ids(), ["survivor"]);
    let notification = &host.notifications()[0];
    assert_eq!(
        notification.payload["Notify"]["Hangup-Cause"],
        "NORMAL_TEMPORARY_FAILURE"
    );
}

#[tokio::test]
async fn a_module_that_keeps_failing_is_quarantined_for_its_account_only() {
    let host = builder("panic")
        .policy(|policy| {
            policy.quarantine.after_failures = 3;
        })
        .callflow(
            "other",
            "in-handle",
            json!({"numbers": ["100"], "flow":
            hostile("panic", "handle", json!({}))}),
        )
        .start()
        .await;
    let mut results = Vec::new();
    for _ in 0..5 {
        let report = host.run(call("100")).await;
        results.push(node_results(&report)[1].clone());
    }
    assert!(
        results[..3]
            .iter()
            .all(|r| r.contains("(trap); continuing")),
        "{results:?}"
    );
    assert_eq!(
        results[3..],
        ["QUARANTINED; continuing", "QUARANTINED; continuing"]
    );
    // Every call still went on to `_` and ran its callbacks.
    assert_eq!(
        host.template_ids().iter().filter(|t| *t == "after").count(),
        5
    );
    let other = host
        .run(json!({"account_id": "other", "to": "100", "caller_id_number": "200"}))
        .await;
    assert!(
        node_results(&other)[0].contains("(trap)"),
        "another account still runs it"
    );
    let hostile = module_counters(&host, "hostile");
    assert_eq!(hostile.quarantines, 1);
    assert_eq!(hostile.skipped_in_quarantine, 2);
    assert_eq!(hostile.failures[&FailureKind::Trap], 4);
}

#[tokio::test]
async fn limits_are_set_per_account() {
    let host = builder("infinite_loop")
        .policy(|policy| {
            policy.set_account_limits(
                ACCOUNT,
                Limits {
                    handle_deadline: Duration::from_millis(50),
                    ..quick_limits()
                },
            );
        })
        .callflow(
            "other",
            "loop",
            json!({"numbers": ["100"], "flow":
            hostile("infinite_loop", "handle", json!({}))}),
        )
        .start()
        .await;
    let ours = host.run(call("100")).await;
    assert!(node_results(&ours)[1].contains("more than its 50ms deadline"));
    let theirs = host
        .run(json!({"account_id": "other", "to": "100", "caller_id_number": "200"}))
        .await;
    assert!(node_results(&theirs)[0].contains("more than its 300ms deadline"));
}

#[tokio::test]
async fn an_instruction_budget_stops_a_loop_as_a_fuel_failure() {
    let host = builder("infinite_loop")
        .policy(|policy| {
            policy.set_limits(Limits {
                fuel: Some(11_000_000),
                handle_deadline: Duration::from_secs(10),
                ..quick_limits()
            })
        })
        .start()
        .await;
    let report = host.run(call("100")).await;
    assert!(
        node_results(&report)[1].ends_with("(fuel); continuing"),
        "{:?}",
        node_results(&report)
    );
    // Ordinary modules run within the budget.
    assert_eq!(host.template_ids(), ["survivor", "after"]);
}

#[tokio::test]
async fn an_account_grant_narrows_what_a_module_may_do() {
    let host = builder("none")
        .policy(|policy| {
            policy.grants.grant_account(
                ACCOUNT,
                "hostile",
                vec![cfhost_core::policy::Capability::Log],
            );
        })
        .start()
        .await;
    let report = host.run(call("100")).await;
    assert!(
        node_results(&report)[1].starts_with(
            "FAILED: capability `callbacks` of module `hostile` is not granted to account `acme`"
        ),
        "{:?}",
        node_results(&report)
    );
    assert_eq!(
        module_counters(&host, "hostile").failures[&FailureKind::Capability],
        1
    );
    assert_eq!(
        module_counters(&host, "hostile").nodes,
        0,
        "not instantiated"
    );
}

/// A `user` node ringing for 400 ms on a host whose deadline is 100 ms, then a marker.
async fn ring_user(host_call_timeout: Duration) -> (TestHost, CallReport) {
    let host = Builder::new()
        .policy(|policy| {
            policy.set_limits(Limits {
                handle_deadline: Duration::from_millis(100),
                host_call_timeout,
                ..Limits::default()
            })
        })
        .user(ACCOUNT, "u1", json!({"email": "u1@example.com"}))
        .callflow(ACCOUNT, "ring", json!({"numbers": ["100"], "flow": {
            "module": "user", "data": {"id": "u1"}, "children": {"_": marker("after", json!({}))}}}))
        .start()
        .await;
    let ring = || -> futures::future::BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(Duration::from_millis(400)))
    };
    let switch = Arc::new(hooked_switch(SimulatorBehaviour::default(), Box::new(ring)));
    let report = host.run_on(call("100"), switch).await;
    (host, report)
}

#[tokio::test]
async fn waiting_in_a_host_call_does_not_count_against_the_deadline() {
    let (host, report) = ring_user(Duration::from_secs(5)).await;
    let results = node_results(&report);
    assert!(
        results[0].starts_with("continue to NO_ANSWER"),
        "{results:?}"
    );
    assert_eq!(module_counters(&host, "user").total_failures(), 0);
}

#[tokio::test]
async fn a_bridge_lasts_past_the_host_call_timeout_and_nothing_is_charged() {
    // The switch ends a bridge (ring timeout, hangup, media and session timers): a call
    // longer than the host-call timeout is not cut, and `user` is not blamed.
    let (host, report) = ring_user(Duration::from_millis(150)).await;
    let results = node_results(&report);
    assert!(
        results[0].starts_with("continue to NO_ANSWER"),
        "{results:?}"
    );
    assert_eq!(host.template_ids(), ["after"]);
    assert_eq!(module_counters(&host, "user").total_failures(), 0);
}

/// A simulated switch whose answer never comes.
struct NeverAnswers(cfhost_core::switch::SimulatedSwitch);

#[async_trait::async_trait]
impl Switch for NeverAnswers {
    async fn answer(&self, _: &Call) -> Result<(), SwitchError> {
        std::future::pending().await
    }
    async fn bridge(
        &self,
        call: &Call,
        request: &BridgeRequest,
    ) -> Result<BridgeOutcome, SwitchError> {
        self.0.bridge(call, request).await
    }
    async fn record_voicemail(
        &self,
        call: &Call,
        box_id: &str,
        max_secs: u32,
    ) -> Result<RecordOutcome, SwitchError> {
        self.0.record_voicemail(call, box_id, max_secs).await
    }
    async fn hangup(&self, call: &Call, cause: &HangupCause) -> Result<(), SwitchError> {
        self.0.hangup(call, cause).await
    }
    fn now(&self) -> std::time::SystemTime {
        self.0.now()
    }
}

#[tokio::test]
async fn an_answer_the_switch_never_gives_times_out_as_the_hosts_fault() {
    let host = Builder::new()
        .policy(|policy| {
            policy.quarantine.after_failures = 2;
            policy.set_limits(Limits {
                host_call_timeout: Duration::from_millis(150),
                ..Limits::default()
            })
        })
        .callflow(
            ACCOUNT,
            "vm",
            json!({"numbers": ["100"], "flow": {
            "module": "voicemail", "data": {"id": "box1"},
            "children": {"_": marker("after", json!({}))}}}),
        )
        .start()
        .await;
    for _ in 0..3 {
        let switch = NeverAnswers(cfhost_core::switch::SimulatedSwitch::new(
            SimulatorBehaviour::default(),
            std::time::UNIX_EPOCH,
        ));
        let report = host.run_on(call("100"), Arc::new(switch)).await;
        let results = node_results(&report);
        assert!(
            results[0].contains("host call `answer` of module `voicemail` waited more than 150ms"),
            "{results:?}"
        );
    }
    let voicemail = module_counters(&host, "voicemail");
    assert_eq!(voicemail.failures[&FailureKind::HostCallTimeout], 3);
    assert_eq!(
        voicemail.quarantines, 0,
        "the switch's slowness quarantined the module"
    );
}

#[tokio::test]
async fn files_environment_and_clock_are_closed_unless_the_clock_is_granted() {
    let host = Builder::new()
        .callflow(ACCOUNT, "probe", json!({"numbers": ["100"], "flow": {
            "module": "hostile", "data": {"attack": "probe_sandbox"},
            "children": {"sealed": marker("sealed", json!({})), "_": marker("leaked", json!({}))}}}))
        .callflow(ACCOUNT, "clock", json!({"numbers": ["101"], "flow": {
            "module": "test_fixture", "data": {"clock": true},
            "children": {"clock-running": marker("running", json!({})),
                         "clock-stopped": marker("stopped", json!({}))}}}))
        .start()
        .await;
    let report = host.run(call("100")).await;
    assert_eq!(node_results(&report)[0], "continue to sealed");
    // `test_fixture` declares `clock`, and as a shipped-like module it is granted it.
    host.run(call("101")).await;
    assert_eq!(host.template_ids(), ["sealed", "running"]);
}

/// A sink that refuses every notification, as a full disk or a full outbox would.
struct BrokenSink;

#[async_trait::async_trait]
impl cfhost_core::notify::Sink for BrokenSink {
    async fn publish(
        &self,
        _: &cfhost_core::notify::OutboundNotification,
    ) -> Result<(), cfhost_core::notify::SinkError> {
        Err(std::io::Error::other("No space left on device").into())
    }
}

#[tokio::test]
async fn a_failing_sink_is_the_hosts_fault_and_never_quarantines_the_module() {
    let host = cfhost_tests::with_seed_users(Builder::new(), "acme")
        .policy(|policy| policy.quarantine.after_failures = 3)
        .callflow("acme", "seed", cfhost_tests::seed_missed_call_alert())
        .start_with_sink(Arc::new(BrokenSink))
        .await;
    let seed_call = json!({"account_id": "acme", "to": "+15554441111",
        "caller_id_number": "+15550001234",
        "behaviour": {"bridge": "no_answer", "voicemail": "hangup"}});
    for _ in 0..6 {
        let report = host.run(seed_call.clone()).await;
        // The call's report says the alert was not accepted, and why.
        let refused = report.trace.iter().any(|event| {
            matches!(event, TraceEvent::Published { routing_key: None, error: Some(e), .. }
                if e.contains("No space left on device"))
        });
        assert!(refused, "{:?}", report.trace);
    }
    assert!(
        !host
            .runtime()
            .health()
            .is_quarantined("acme", "missed_call_alert"),
        "the host's failure quarantined the module"
    );
    let alert = module_counters(&host, "missed_call_alert");
    assert_eq!(
        alert.failures.get(&FailureKind::Host),
        Some(&6),
        "{alert:?}"
    );
    assert_eq!(alert.failures.get(&FailureKind::Error), None, "{alert:?}");
    assert_eq!(alert.quarantines, 0);
}
