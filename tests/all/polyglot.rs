//! Modules written in Python and JavaScript (`modules/python`, `modules/javascript`, built by
//! `modules/build-polyglot`) run next to the Rust modules: the JavaScript `check_cid` and the
//! Python `blocklist` take each of their branches in callflows with Rust modules, and the
//! Python and JavaScript hostile fixtures are stopped and counted while the calls beside them
//! go on. Over SIP: `sip::polyglot`; uploaded through the API: the `serve` process tests.

use std::time::Duration;

use cfhost_core::call::HangupCause;
use cfhost_core::executor::{CallReport, EndReason};
use cfhost_core::policy::{Capability, FailureKind, Limits};
use cfhost_core::trace::TraceEvent;
use cfhost_tests::{Builder, TestHost, module_counters, node_results, polyglot_module};
use serde_json::{Value, json};

const ACCOUNT: &str = "acme";

/// A test_fixture node (a Rust module) that logs the caller id it sees, then stops.
fn reads_caller_id(label: &str) -> Value {
    json!({"module": "test_fixture",
           "data": {"read": ["caller_id_name", "caller_id_number"], "outcome": "stop",
                    "keys": [label]}})
}

/// What test_fixture logged, and where the flow went (the paths of the nodes run).
fn nodes_and_facts(report: &CallReport) -> (Vec<String>, Vec<String>) {
    let mut paths = Vec::new();
    let mut facts = Vec::new();
    for event in &report.trace {
        match event {
            TraceEvent::Node { path, .. } => paths.push(path.clone()),
            TraceEvent::Log {
                module, message, ..
            } if module == "test_fixture" => facts.push(message.clone()),
            _ => {}
        }
    }
    (paths, facts)
}

fn call_from(to: &str, caller: &str) -> Value {
    json!({"account_id": ACCOUNT, "to": to, "caller_id_name": "Jane",
           "caller_id_number": caller})
}

async fn check_cid_host() -> TestHost {
    let regex_mode = json!({
        "numbers": ["100"],
        "flow": {"module": "check_cid",
                 "data": {"regex": "^\\+1555",
                          "caller_id": {"external": {"name": "Screened", "number": "+15559990000"}}},
                 "children": {"match": reads_caller_id("match"),
                              "nomatch": reads_caller_id("nomatch")}}
    });
    let absolute_mode = json!({
        "numbers": ["101"],
        "flow": {"module": "check_cid",
                 "data": {"use_absolute_mode": true,
                          "caller_id": {"external": {"name": "Boss"}}},
                 "children": {"+15550001111": reads_caller_id("boss"),
                              "nomatch": reads_caller_id("nomatch")}}
    });
    with_callflows(
        "check_cid",
        [("regex", regex_mode), ("absolute", absolute_mode)],
    )
    .await
}

/// A host with `module` dropped into its module directory and granted what it asks for
/// (`call-control`, `log`), and two callflows, which loaded cleanly.
async fn with_callflows(module: &str, callflows: [(&str, Value); 2]) -> TestHost {
    let grant = vec![Capability::CallControl, Capability::Log];
    let mut builder = Builder::new()
        .policy(|policy| policy.grants.grant_module(module, grant))
        .dropped_in(polyglot_module(module));
    for (id, callflow) in callflows {
        builder = builder.callflow(ACCOUNT, id, callflow);
    }
    let host = builder.start().await;
    assert!(host.report.module_errors.is_empty(), "{:?}", host.report);
    assert!(host.report.data.errors.is_empty(), "{:?}", host.report);
    let modules = host.runtime().modules();
    let loaded = modules
        .system()
        .get(module)
        .expect("loaded from the module directory");
    assert!(
        loaded
            .origin()
            .starts_with(&host.modules_dir().display().to_string())
    );
    host
}

#[tokio::test]
async fn check_cid_in_javascript_takes_each_branch_and_the_rust_module_after_it_sees_the_caller_id()
{
    let host = check_cid_host().await;
    let modules = host.runtime().modules();
    let check_cid = modules.system().get("check_cid").unwrap();
    assert_eq!(check_cid.wit_version(), Some("0.3.1"));

    let cases = [
        // Regex mode, a match: the caller id is set for the Rust module that follows.
        ("100", "+15550001234", "match", ("Screened", "+15559990000")),
        // Regex mode, no match: the caller id stays.
        ("100", "+4930123456", "nomatch", ("Jane", "+4930123456")),
        // Absolute mode: the child keyed by the number (only the name is set), else nomatch.
        (
            "101",
            "+15550001111",
            "+15550001111",
            ("Boss", "+15550001111"),
        ),
        ("101", "+15550002222", "nomatch", ("Jane", "+15550002222")),
    ];
    for (to, caller, child, (name, number)) in cases {
        let report = host.run(call_from(to, caller)).await;
        let (paths, facts) = nodes_and_facts(&report);
        let child = format!("flow.children.{child}");
        assert_eq!(
            paths,
            ["flow", child.as_str()],
            "{to} {caller}: {:#?}",
            report.trace
        );
        assert_eq!(
            facts,
            [
                format!(r#"caller_id_name=Some("{name}")"#),
                format!(r#"caller_id_number=Some("{number}")"#)
            ],
            "{to} {caller}"
        );
    }
    assert_eq!(module_counters(&host, "check_cid").total_failures(), 0);
}

#[tokio::test]
async fn check_cid_refuses_node_data_that_breaks_kazoos_schema_naming_the_place() {
    let bad = json!({"numbers": ["102"],
                     "flow": {"module": "check_cid", "data": {"use_absolute_mode": "yes"}}});
    let host = Builder::new()
        .module(polyglot_module("check_cid"))
        .callflow(ACCOUNT, "bad", bad)
        .start()
        .await;
    let errors: Vec<String> = host
        .report
        .data
        .errors
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("bad.json") && errors[0].contains("/use_absolute_mode"),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn a_bad_regex_is_the_nodes_error_and_the_flow_goes_on() {
    let flow = json!({"numbers": ["103"],
                      "flow": {"module": "check_cid", "data": {"regex": "(["},
                               "children": {"_": reads_caller_id("after")}}});
    let host = Builder::new()
        .module(polyglot_module("check_cid"))
        .callflow(ACCOUNT, "regex", flow)
        .start()
        .await;
    let report = host.run(call_from("103", "+15550001234")).await;
    assert_eq!(nodes_and_facts(&report).0, ["flow", "flow.children._"]);
    let failed = node_results(&report);
    assert!(
        failed[0].contains(r#"module error: regex "([" does not compile"#)
            && failed[0].ends_with("(error); continuing"),
        "{failed:?}"
    );
}

async fn blocklist_host() -> TestHost {
    let data = json!({"numbers": ["+15550001234"], "prefixes": ["+1900", "+44"]});
    let with_blocked_child = json!({
        "numbers": ["200"],
        "flow": {"module": "blocklist", "data": data,
                 "children": {"blocked": reads_caller_id("blocked"),
                              "_": reads_caller_id("allowed")}}
    });
    let without = json!({
        "numbers": ["201"],
        "flow": {"module": "blocklist", "data": data,
                 "children": {"_": reads_caller_id("allowed")}}
    });
    with_callflows(
        "blocklist",
        [("with-blocked", with_blocked_child), ("without", without)],
    )
    .await
}

#[tokio::test]
async fn blocklist_in_python_sends_blocked_callers_to_blocked_or_hangs_up_call_rejected() {
    let host = blocklist_host().await;
    // A listed number, with a `blocked` child: there.
    let report = host.run(call_from("200", "+15550001234")).await;
    assert_eq!(
        nodes_and_facts(&report).0,
        ["flow", "flow.children.blocked"]
    );
    // A listed prefix, without a `blocked` child: hung up with CALL_REJECTED.
    let report = host.run(call_from("201", "+19005550000")).await;
    assert_eq!(nodes_and_facts(&report).0, ["flow"]);
    assert_eq!(
        report.hangup.as_ref().map(|h| h.cause.clone()),
        Some(HangupCause::CALL_REJECTED),
        "{:#?}",
        report.trace
    );
    assert_eq!(report.end, EndReason::ChannelDestroyed);
    // Anyone else: on to `_`, on both flows.
    for to in ["200", "201"] {
        let report = host.run(call_from(to, "+15550009999")).await;
        assert_eq!(nodes_and_facts(&report).0, ["flow", "flow.children._"]);
        assert!(
            report
                .hangup
                .as_ref()
                .is_none_or(|h| h.cause != HangupCause::CALL_REJECTED)
        );
    }
    let counters = module_counters(&host, "blocklist");
    assert_eq!((counters.nodes, counters.total_failures()), (4, 0));
}

/// Good calls run beside each attack.
const GOOD_CALLS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_or_javascript_module_that_loops_allocates_or_oversteps_is_stopped_and_counted() {
    let attacks = [
        (
            "py_hostile",
            "spin",
            FailureKind::Deadline,
            "ran WebAssembly for more than its 300ms deadline",
        ),
        (
            "py_hostile",
            "grow",
            FailureKind::Memory,
            "tried to grow its memory to",
        ),
        (
            "js_hostile",
            "spin",
            FailureKind::Deadline,
            "ran WebAssembly for more than its 300ms deadline",
        ),
        (
            "js_hostile",
            "grow",
            FailureKind::Memory,
            "tried to grow its memory to",
        ),
        (
            "py_hostile",
            "hangup",
            FailureKind::Capability,
            "module `py_hostile` used capability `call-control` without asking for it",
        ),
    ];
    for (module, attack, kind, message) in attacks {
        let hostile = json!({"numbers": ["300"],
                             "flow": {"module": module, "data": {"attack": attack},
                                      "children": {"_": reads_caller_id("after")}}});
        let good = json!({"numbers": ["301"],
                          "flow": {"module": "blocklist", "data": {"numbers": ["+1"]},
                                   "children": {"_": reads_caller_id("good")}}});
        let host = Builder::new()
            .policy(|policy| {
                policy.set_limits(Limits {
                    handle_deadline: Duration::from_millis(300),
                    ..Limits::default()
                })
            })
            .module(polyglot_module(module))
            .module(polyglot_module("blocklist"))
            .callflow(ACCOUNT, "hostile", hostile)
            .callflow(ACCOUNT, "good", good)
            .callflow(
                ACCOUNT,
                "harmless",
                json!({"numbers": ["302"], "flow": {"module": module, "data": {}}}),
            )
            .start()
            .await;
        assert!(host.report.module_errors.is_empty(), "{:?}", host.report);
        let goods = (0..GOOD_CALLS).map(|_| host.run(call_from("301", "+15550009999")));
        let (report, goods) = tokio::join!(
            host.run(call_from("300", "+15550009999")),
            futures::future::join_all(goods)
        );
        let results = node_results(&report);
        assert!(
            results[0].contains(message) && results[0].ends_with(&format!("({kind}); continuing")),
            "{module} {attack}: {results:?}"
        );
        // Fail-open: on to `_`, which ran.
        assert_eq!(
            nodes_and_facts(&report).0,
            ["flow", "flow.children._"],
            "{module} {attack}"
        );
        for good in goods {
            assert_eq!(
                node_results(&good),
                ["continue", "stop"],
                "{module} {attack}"
            );
        }
        let counted = module_counters(&host, module);
        assert_eq!(
            counted.failures.get(&kind),
            Some(&1),
            "{module} {attack}: {counted:?}"
        );
        assert_eq!(
            counted.total_failures(),
            1,
            "{module} {attack}: {counted:?}"
        );
        assert_eq!(module_counters(&host, "blocklist").total_failures(), 0);
        // The host is fine, and so is the module with other data: it runs again.
        let report = host.run(call_from("302", "+15550009999")).await;
        assert_eq!(node_results(&report), ["continue"], "{module} {attack}");
    }
}

#[tokio::test]
async fn a_module_whose_memory_at_start_is_past_the_limit_is_refused_naming_the_setting() {
    let host = Builder::new()
        .policy(|policy| {
            policy.set_limits(Limits {
                memory_bytes: 8 << 20,
                ..Limits::default()
            })
        })
        .module(polyglot_module("blocklist"))
        .start()
        .await;
    let errors: Vec<String> = host
        .report
        .module_errors
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .contains("blocklist.wasm: its memory at start is larger than an instance may have")
            && errors[0].contains("raise [limits] memory_mib"),
        "{}",
        errors[0]
    );
    // The Rust modules loaded, and run.
    assert!(
        host.runtime()
            .modules()
            .system()
            .get("test_fixture")
            .is_some()
    );
}
