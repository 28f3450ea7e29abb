//! The executor's rules (kazoo-semantics.md §3), driven by the scripted `test_fixture` module.

use std::sync::Arc;
use std::time::Duration;

use cfhost_core::call::{ChannelEvent, Hangup, HangupCause, HangupEvent};
use cfhost_core::executor::EndReason;
use cfhost_core::policy::Limits;
use cfhost_core::scenario::ScenarioCall;
use cfhost_core::switch::SimulatedSwitch;
use cfhost_core::trace::{NodeResult, TraceEvent};
use cfhost_tests::{Builder, TestHost};
use serde_json::{Value, json};

const ACCOUNT: &str = "acme";

/// A `test_fixture` node with this script and children.
fn fixture(script: Value, children: Value) -> Value {
    json!({"module": "test_fixture", "data": script, "children": children})
}

/// A node that registers a callback publishing `template` when the call ends.
fn marker(template: &str, children: Value) -> Value {
    fixture(json!({"register": [{"template_id": template}]}), children)
}

async fn host(flows: &[(&str, Value)]) -> TestHost {
    let mut builder = Builder::new();
    for (id, flow) in flows {
        builder = builder.callflow(ACCOUNT, id, flow.clone());
    }
    builder.start().await
}

async fn single(flow: Value) -> TestHost {
    host(&[("main", json!({"numbers": ["100"], "flow": flow}))]).await
}

fn call(behaviour: Value) -> Value {
    json!({"account_id": ACCOUNT, "to": "100", "caller_id_number": "200", "behaviour": behaviour})
}

/// The result of the first node that ran.
fn first_node_result(trace: &[TraceEvent]) -> String {
    trace
        .iter()
        .find_map(|e| match e {
            TraceEvent::NodeResult { result, .. } => Some(result.to_string()),
            _ => None,
        })
        .expect("a node ran")
}

fn skipped(trace: &[TraceEvent]) -> Vec<(String, String)> {
    trace
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Skipped { module, reason, .. } => Some((module.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn outcome_keys_pick_the_first_existing_child_else_the_default() {
    let children = json!({
        "b": marker("went-b", json!({})),
        "_": marker("went-default", json!({})),
        "empty": {},
    });
    for (keys, expected) in [
        (json!(["a", "b"]), "went-b"),
        (json!(["missing"]), "went-default"),
        (json!([]), "went-default"),
        // An empty child is skipped over like a missing one when choosing by key.
        (json!(["empty"]), "went-default"),
    ] {
        let host = single(fixture(json!({"keys": keys}), children.clone())).await;
        host.run(call(json!({}))).await;
        assert_eq!(host.template_ids(), [expected], "{keys}");
    }
}

#[tokio::test]
async fn no_default_child_or_an_empty_one_stops_and_the_host_hangs_up() {
    for children in [
        json!({"x": marker("never", json!({}))}),
        json!({"_": {}}),
        json!(null),
    ] {
        let host = single(marker("first", children.clone())).await;
        let report = host.run(call(json!({}))).await;
        assert_eq!(report.end, EndReason::FlowEnded, "{children}");
        assert_eq!(
            report.hangup.as_ref().map(|h| h.cause.to_string()),
            Some("NORMAL_CLEARING".to_string())
        );
        assert_eq!(host.template_ids(), ["first"]);
        // Callbacks get the host's own hangup: the email can say why the call ended.
        assert_eq!(
            host.notifications()[0].payload["Notify"]["Hangup-Cause"],
            "NORMAL_CLEARING"
        );
    }
}

#[tokio::test]
async fn skipped_and_unknown_modules_go_to_their_own_default_child() {
    let flow = fixture(
        json!({"skip_module": "true", "register": [{"template_id": "skipped"}]}),
        json!({"_": {"module": "no_such_module", "data": {}, "children": {
            "_": marker("reached", json!({}))
        }}}),
    );
    let host = single(flow).await;
    assert_eq!(
        host.report.data.warnings.len(),
        1,
        "{:?}",
        host.report.data.warnings
    );
    let report = host.run(call(json!({}))).await;
    assert_eq!(
        skipped(&report.trace),
        [
            ("test_fixture".to_string(), "skip_module is set".to_string()),
            ("no_such_module".to_string(), "unknown module".to_string()),
        ]
    );
    assert_eq!(host.template_ids(), ["reached"]);
}

#[tokio::test]
async fn a_failing_node_is_logged_and_the_flow_goes_to_its_default_child() {
    for outcome in ["error", "trap"] {
        let flow = fixture(
            json!({"outcome": outcome, "keys": ["x"]}),
            json!({"x": marker("keyed", json!({})), "_": marker("default", json!({}))}),
        );
        let host = single(flow).await;
        let report = host.run(call(json!({}))).await;
        let failed = report.trace.iter().any(|e| {
            matches!(
                e,
                TraceEvent::NodeResult {
                    result: NodeResult::Failed { .. },
                    ..
                }
            )
        });
        assert!(failed, "{outcome}: {:#?}", report.trace);
        assert_eq!(host.template_ids(), ["default"], "{outcome}");
    }
}

#[tokio::test]
async fn a_branch_returns_to_the_default_child_when_the_branch_stops() {
    let main = json!({"numbers": ["100"], "flow": fixture(
        json!({"outcome": "branch", "branch": "sub"}),
        json!({"_": marker("after-branch", json!({}))}),
    )});
    let sub = json!({"flow": fixture(
        json!({"outcome": "stop", "register": [{"template_id": "in-branch"}]}),
        json!({"_": marker("never", json!({}))}),
    )});
    let host = host(&[("main", main), ("sub", sub)]).await;
    let report = host.run(call(json!({}))).await;
    assert!(report.trace.contains(&TraceEvent::Branch {
        callflow_id: "sub".into()
    }));
    assert_eq!(host.template_ids(), ["in-branch", "after-branch"]);
}

#[tokio::test]
async fn branches_are_limited_to_fifty_and_callbacks_still_run() {
    let looping = json!({"numbers": ["100"], "flow": fixture(
        json!({"outcome": "branch", "branch": "main", "register": [{"template_id": "once"}]}),
        json!({}),
    )});
    let host = host(&[("main", looping)]).await;
    let report = host.run(call(json!({}))).await;
    assert_eq!(report.end, EndReason::BranchLimit);
    let branches = report
        .trace
        .iter()
        .filter(|e| matches!(e, TraceEvent::Branch { .. }))
        .count();
    assert_eq!(branches, 50);
    assert_eq!(report.nodes_run().len(), 51);
    // 51 identical registrations were kept once.
    assert_eq!(host.template_ids(), ["once"]);
}

#[tokio::test]
async fn callbacks_run_in_registration_order_and_a_failing_one_skips_none() {
    let flow = fixture(
        json!({"register": [
            {"template_id": "z-first"},
            {"template_id": "trapping", "fail": "trap"},
            {"template_id": "erring", "fail": "error"},
            {"template_id": "a-last"},
            {"template_id": "z-first"},
        ]}),
        json!({}),
    );
    let host = single(flow).await;
    let report = host.run(call(json!({}))).await;
    let callbacks = report.callbacks();
    assert_eq!(callbacks.len(), 4, "{callbacks:?}");
    assert!(callbacks[0].1.is_none());
    assert!(
        callbacks[1].1.unwrap().contains("trap"),
        "{:?}",
        callbacks[1]
    );
    assert!(
        callbacks[2].1.unwrap().contains("scripted error"),
        "{:?}",
        callbacks[2]
    );
    assert!(callbacks[3].1.is_none());
    assert_eq!(host.template_ids(), ["z-first", "a-last"]);
}

#[tokio::test]
async fn no_callbacks_run_after_a_transfer() {
    let flow = marker(
        "never",
        json!({"_": {"module": "user", "data": {"id": "u1"}}}),
    );
    let host = Builder::new()
        .user(ACCOUNT, "u1", json!({"email": "u1@example.com"}))
        .callflow(ACCOUNT, "main", json!({"numbers": ["100"], "flow": flow}))
        .start()
        .await;
    let report = host.run(call(json!({"bridge": "transfer"}))).await;
    assert_eq!(report.end, EndReason::Transferred);
    assert!(report.callbacks().is_empty());
    assert!(host.notifications().is_empty());
}

#[tokio::test]
async fn a_destroyed_channel_ends_the_flow_after_the_running_node() {
    // Voicemail records, the caller hangs up (CHANNEL_DESTROY), and the module still says
    // continue: the executor ends the flow instead of running the next node.
    let flow = marker(
        "cb",
        json!({"_": {"module": "voicemail", "data": {"id": "box1"}, "children": {
            "_": marker("never-reached", json!({}))
        }}}),
    );
    let host = single(flow).await;
    let report = host.run(call(json!({"voicemail": "leave_message"}))).await;
    assert_eq!(report.end, EndReason::ChannelDestroyed);
    assert_eq!(report.nodes_run(), ["test_fixture", "voicemail"]);
    assert!(report.flags.message_left);
    assert_eq!(report.hangup.as_ref().unwrap().cause, "NORMAL_CLEARING");
    assert_eq!(host.template_ids(), ["cb"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_destroys_the_call_while_a_module_runs_and_the_flow_ends_after_it() {
    // The first node registers a callback, then computes until its deadline; meanwhile the
    // backend that took the call (as SIP does on a BYE) destroys the channel from outside.
    let flow = fixture(
        json!({"outcome": "spin", "register": [{"template_id": "cb"}]}),
        json!({"_": marker("never-reached", json!({}))}),
    );
    let host = Builder::new()
        .callflow(ACCOUNT, "main", json!({"numbers": ["100"], "flow": flow}))
        .policy(|policy| {
            policy.set_limits(Limits {
                handle_deadline: Duration::from_millis(600),
                ..Limits::default()
            })
        })
        .start()
        .await;
    let scenario: ScenarioCall = serde_json::from_value(call(json!({}))).unwrap();
    let call = host.new_call(&scenario, 0);
    let hang_up = {
        let call = Arc::clone(&call);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let bye = Hangup::new(HangupCause::ORIGINATOR_CANCEL, 487);
            call.apply(&ChannelEvent::Destroy(HangupEvent::of(
                &call.details().call_id,
                &bye,
            )));
        })
    };
    let switch = Arc::new(SimulatedSwitch::new(
        scenario.behaviour,
        std::time::SystemTime::now(),
    ));
    let report = host.runtime().run_call(call, switch).await.unwrap();
    hang_up.await.unwrap();
    assert_eq!(report.end, EndReason::ChannelDestroyed);
    assert_eq!(report.nodes_run(), ["test_fixture"], "{:#?}", report.trace);
    let hangup = report.hangup.as_ref().expect("the backend's hangup");
    assert_eq!(hangup.cause, HangupCause::ORIGINATOR_CANCEL);
    assert_eq!(hangup.code, "sip:487");
    // The callback ran with that hangup.
    assert_eq!(host.template_ids(), ["cb"]);
    assert_eq!(
        host.notifications()[0].payload["Notify"],
        json!({"Hangup-Cause": "ORIGINATOR_CANCEL", "Hangup-Code": "sip:487"})
    );
}

#[tokio::test]
async fn bridge_failure_continues_by_cause_then_code_then_default() {
    let user = |children: Value| json!({"module": "user", "data": {"id": "u1", "timeout": 5}, "children": children});
    for (children, expected) in [
        (
            json!({"USER_BUSY": marker("by-cause", json!({})), "sip:486": marker("by-code", json!({})), "_": marker("default", json!({}))}),
            "by-cause",
        ),
        (
            json!({"sip:486": marker("by-code", json!({})), "_": marker("default", json!({}))}),
            "by-code",
        ),
        (json!({"_": marker("default", json!({}))}), "default"),
    ] {
        let host = Builder::new()
            .user(ACCOUNT, "u1", json!({"email": "u1@example.com"}))
            .callflow(
                ACCOUNT,
                "main",
                json!({"numbers": ["100"], "flow": user(children)}),
            )
            .start()
            .await;
        host.run(call(json!({"bridge": "busy"}))).await;
        assert_eq!(host.template_ids(), [expected]);
    }
}

#[tokio::test]
async fn a_module_past_its_deadline_or_memory_cap_traps_and_the_flow_goes_on() {
    for (outcome, expected) in [
        (
            "spin",
            "handle: module `test_fixture` ran WebAssembly for more than its 2s deadline \
             (deadline)",
        ),
        (
            "grow",
            // (how far past 32 MiB it asked depends on the module's memory layout)
            "bytes; the limit is 33554432 (memory)",
        ),
    ] {
        let flow = fixture(
            json!({"outcome": outcome}),
            json!({"_": marker("after", json!({}))}),
        );
        let host = single(flow).await;
        let started = std::time::Instant::now();
        let report = host.run(call(json!({}))).await;
        let result = first_node_result(&report.trace);
        assert!(result.starts_with("FAILED: "), "{outcome}: {result}");
        assert!(result.contains(expected), "{outcome}: {result}");
        assert_eq!(host.template_ids(), ["after"], "{outcome}");
        // A generous bound: the deadline is 2 s; this only shows the loop was stopped.
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }
}

#[tokio::test]
async fn an_import_the_module_did_not_ask_for_traps_naming_the_capability() {
    for (import, capability) in [
        ("directory", "directory"),
        ("notify", "notify"),
        ("callbacks", "callbacks"),
        ("bridge", "call-control"),
        ("caller_id", "call-control"),
    ] {
        let flow = json!({"module": "no_capabilities", "data": {"use": import},
                          "children": {"_": marker("after", json!({}))}});
        let host = single(flow).await;
        let report = host.run(call(json!({}))).await;
        let result = first_node_result(&report.trace);
        assert!(
            result.contains(&format!(
                "FAILED: handle: module `no_capabilities` used capability `{capability}` without \
                 asking for it (capability)"
            )),
            "{import}: {result}"
        );
        // Nothing was published by it; the flow went on.
        assert_eq!(host.template_ids(), ["after"], "{import}");
        assert_eq!(host.notifications().len(), 1);
    }
}

#[tokio::test]
async fn a_users_own_device_does_not_ring_the_user_unless_can_call_self() {
    // d1 is u1's device; it calls u1's number. KAZOO's cf_endpoint refuses the endpoints of
    // the caller's owner unless `can_call_self`: nothing to ring, the flow continues.
    for (can_call_self, bridged) in [(false, false), (true, true)] {
        let flow = json!({"module": "user", "data": {"id": "u1", "can_call_self": can_call_self},
                          "children": {"_": marker("after", json!({}))}});
        let host = Builder::new()
            .user(ACCOUNT, "u1", json!({"email": "u1@example.com"}))
            .write_json(
                &format!("accounts/{ACCOUNT}/devices/d1.json"),
                json!({"name": "desk", "owner_id": "u1", "sip": {"username": "1001", "password": "x"}}),
            )
            .callflow(ACCOUNT, "main", json!({"numbers": ["100"], "flow": flow}))
            .start()
            .await;
        let from_own_device = json!({"account_id": ACCOUNT, "to": "100",
            "authorizing_type": "device", "authorizing_id": "d1",
            "behaviour": {"bridge": "answer"}});
        let report = host.run(from_own_device).await;
        assert_eq!(
            report.flags.bridged, bridged,
            "can_call_self {can_call_self}"
        );
        // Another caller rings u1 either way.
        let from_elsewhere =
            json!({"account_id": ACCOUNT, "to": "100", "behaviour": {"bridge": "answer"}});
        assert!(host.run(from_elsewhere).await.flags.bridged);
    }
}
