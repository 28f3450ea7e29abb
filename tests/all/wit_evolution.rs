//! WIT evolution: a module built against an older release of `cfhost:callflow` keeps loading
//! and running. The fixtures are binaries built and committed when the host spoke 0.2.0
//! (`fixtures/wit-0.2.0/README.md`), 0.2.1 and 0.3.0 (`fixtures/wit-0.2.1/README.md`,
//! `fixtures/wit-0.3.0/README.md`, the shipped modules); the host now speaks 0.3.1 and runs 0.2
//! modules beside 0.3 ones. Also here: what the
//! 0.3 call resource gives a module (every fact, the SIP headers, setting the caller id).

use cfhost_core::bindings::{WIT_VERSION, World};
use cfhost_core::executor::CallReport;
use cfhost_core::registry::ModuleSource;
use cfhost_core::trace::TraceEvent;
use cfhost_tests::{
    Builder, SHIPPED_AT_0_2_1, TestHost, WIT_0_2_0_FIXTURE, seed_missed_call_alert,
    seed_notification, wit_0_2_0_fixture, wit_0_2_1_module, wit_0_3_0_module, with_seed_users,
};
use serde_json::{Value, json};

#[tokio::test]
async fn a_module_built_against_wit_0_2_0_loads_and_runs_on_this_host() {
    assert_eq!(WIT_VERSION, "0.3.1", "the host has moved on from 0.2");
    let flow = json!({
        "numbers": ["+15550002000"],
        "flow": {
            "module": "test_fixture",
            "data": {"outcome": "continue", "keys": ["old"], "clock": false,
                     "register": [{"template_id": "from-0.2.0"}]},
            "children": {"old": {
                "module": "test_fixture",
                "data": {"clock": true},
                "children": {"clock-running": {
                    "module": "test_fixture", "data": {"outcome": "stop"}
                }}
            }}
        }
    });
    // Loaded after the current build of `test_fixture`, so it replaces it.
    let host = Builder::new()
        .module(wit_0_2_0_fixture())
        .callflow("acme", "main", flow)
        .start()
        .await;
    assert!(host.report.module_errors.is_empty(), "{:?}", host.report);
    let modules = host.runtime().modules();
    let module = modules.system().get("test_fixture").unwrap();
    assert!(
        module.origin().ends_with(WIT_0_2_0_FIXTURE),
        "{}",
        module.origin()
    );
    assert_eq!(module.wit_version(), Some("0.2.0"));
    assert_eq!(module.world(), World::V0_2);

    let call = host
        .run(json!({"account_id": "acme", "to": "+15550002000", "behaviour": {"bridge": "answer"}}))
        .await;
    assert_eq!(
        call.nodes_run(),
        ["test_fixture", "test_fixture", "test_fixture"],
        "{:#?}",
        call.trace
    );
    assert_eq!(call.callbacks(), [("test_fixture", None)]);
    assert_eq!(host.template_ids(), ["from-0.2.0"]);
}

/// A build of the shipped modules: this one, or one committed for an older release.
#[derive(Clone, Copy)]
struct Build {
    world: World,
    committed: Option<fn(&str) -> ModuleSource>,
}

/// The builds compared: 0.2.1's, 0.3.0's and this one (0.3.1).
const BUILDS: [Build; 3] = [
    Build {
        world: World::V0_2,
        committed: Some(wit_0_2_1_module),
    },
    Build {
        world: World::V0_3,
        committed: Some(wit_0_3_0_module),
    },
    Build {
        world: World::V0_3,
        committed: None,
    },
];

/// A host with the seed callflows and users, and the shipped modules of `build` loaded over
/// this build's.
async fn seed_host(build: Build) -> TestHost {
    let mut builder = with_seed_users(Builder::new(), "acme-missed")
        .callflow("acme-missed", "seed", seed_missed_call_alert())
        .callflow("acme-notify", "seed", seed_notification())
        .user(
            "acme-notify",
            "bdc3a4b7e3a5405a9aa8a0f9c6b76997",
            json!({"email": "office.manager@example.com"}),
        );
    if let Some(committed) = build.committed {
        for name in SHIPPED_AT_0_2_1 {
            builder = builder.module(committed(name));
        }
    }
    let host = builder.start().await;
    assert!(host.report.module_errors.is_empty(), "{:?}", host.report);
    assert!(host.report.data.errors.is_empty(), "{:?}", host.report);
    for name in SHIPPED_AT_0_2_1 {
        let modules = host.runtime().modules();
        let module = modules.system().get(name).unwrap();
        assert_eq!(module.world(), build.world, "{name}");
        if build.committed.is_some() {
            assert!(module.origin().contains("tests/fixtures/wit-"), "{name}");
        }
    }
    host
}

/// What a call did that a module's build could change: the nodes, the callbacks, the flags,
/// the modules' log lines and the notifications (without the ids and times of the run).
fn observed(host: &TestHost, report: &CallReport) -> Value {
    let logs: Vec<String> = report
        .trace
        .iter()
        .filter_map(|event| match event {
            TraceEvent::Log {
                module, message, ..
            } => Some(format!("{module}: {message}")),
            _ => None,
        })
        .collect();
    let notifications: Vec<Value> = host
        .notifications()
        .into_iter()
        .map(|n| {
            let mut payload = n.payload;
            for varying in ["Msg-ID", "Timestamp"] {
                payload.remove(varying);
            }
            json!({"routing_key": n.routing_key, "payload": payload})
        })
        .collect();
    json!({
        "nodes": report.nodes_run(),
        "callbacks": format!("{:?}", report.callbacks()),
        "flags": format!("{:?}", report.flags),
        "end": format!("{:?}", report.end),
        "logs": logs,
        "notifications": notifications,
    })
}

/// The seed calls: a missed call, a message left, an answered call, the notification seed.
fn seed_calls() -> [Value; 4] {
    let missed = |behaviour: Value| {
        json!({"account_id": "acme-missed", "to": "+15554441111", "call_id": "c-1",
               "caller_id_name": "Jane", "caller_id_number": "+15550001234",
               "authorizing_type": "resource", "authorizing_id": "carrier",
               "start_time": 1700000000, "behaviour": behaviour})
    };
    [
        missed(json!({"bridge": "no_answer", "voicemail": "hangup"})),
        missed(json!({"bridge": "no_answer", "voicemail": "leave_message"})),
        missed(json!({"bridge": "answer"})),
        json!({"account_id": "acme-notify", "to": "+15554442222", "call_id": "c-2",
               "caller_id_number": "+15550001234", "start_time": 1700000000,
               "behaviour": {"bridge": "answer"}}),
    ]
}

#[tokio::test]
async fn the_shipped_modules_built_for_0_2_1_and_0_3_0_run_the_seed_calls_as_this_build_does() {
    let mut seen = Vec::new();
    for build in BUILDS {
        let mut calls = Vec::new();
        for call in seed_calls() {
            // A host per call, so that each call's notifications are its own.
            let host = seed_host(build).await;
            let report = host.run(call).await;
            calls.push(observed(&host, &report));
        }
        seen.push(calls);
    }
    let (old, previous, new) = (&seen[0], &seen[1], &seen[2]);
    assert_eq!(old, new, "0.2.1 builds and this build differ");
    assert_eq!(previous, new, "0.3.0 builds and this build differ");
    // And the calls did what the seeds do: one alert for the missed call only, and the
    // notification seed's cf_notification.
    let keys = |call: &Value| -> Vec<String> {
        call["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["routing_key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(&new[0]), ["notifications.sip.missed_call"]);
    assert!(keys(&new[1]).is_empty() && keys(&new[2]).is_empty());
    assert_eq!(keys(&new[3]), ["notifications.account.cf_notification"]);
    assert_eq!(
        new[0]["notifications"][0]["payload"]["Caller-ID-Number"],
        "+15550001234"
    );
}

#[tokio::test]
async fn a_0_3_1_module_knows_which_children_its_node_has() {
    let stop = json!({"module": "test_fixture", "data": {"outcome": "stop"}});
    let flow = json!({"numbers": ["+15550002000"],
                      "flow": {"module": "test_fixture", "data": {"read": ["child_keys"]},
                               "children": {"blocked": stop.clone(), "_": {
                                   "module": "test_fixture", "data": {"read": ["child_keys"]},
                                   "children": {"nothing": {}}}}}});
    let host = Builder::new().callflow("acme", "main", flow).start().await;
    let report = host
        .run(json!({"account_id": "acme", "to": "+15550002000"}))
        .await;
    assert_eq!(
        facts(&report),
        [r#"child_keys=["_", "blocked"]"#, r#"child_keys=[]"#],
        "a `{{}}` child leads nowhere: {:#?}",
        report.trace
    );
}

/// The facts `test_fixture` logged (`read`), as `fact=value` lines.
fn facts(report: &CallReport) -> Vec<String> {
    report
        .trace
        .iter()
        .filter_map(|event| match event {
            TraceEvent::Log {
                module, message, ..
            } if module == "test_fixture" => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_0_3_module_reads_every_fact_of_the_call_on_demand() {
    let every = [
        "id",
        "account_id",
        "request",
        "caller_id_name",
        "caller_id_number",
        "callee_id_name",
        "callee_id_number",
        "from_user",
        "from_realm",
        "to_user",
        "to_realm",
        "authorizing_type",
        "authorizing_id",
        "authorized_by",
        "sip_headers",
        "sip_header:x-tier",
        "sip_header:X-Missing",
        "flags",
    ];
    let flow = json!({"numbers": ["+15550002000"],
                      "flow": {"module": "test_fixture", "data": {"read": every}}});
    let host = Builder::new().callflow("acme", "main", flow).start().await;
    let report = host
        .run(
            json!({"account_id": "acme", "to": "+15550002000", "call_id": "c-9",
                    "caller_id_name": "Jane", "caller_id_number": "+15550001234",
                    "callee_id_name": "Desk", "callee_id_number": "1001",
                    "from_realm": "carrier.example", "to_user": "5550002000",
                    "authorizing_type": "resource", "authorizing_id": "carrier",
                    "sip_headers": {"X-Tier": "gold", "X-Route": "eu"}}),
        )
        .await;
    assert_eq!(
        facts(&report),
        [
            r#"id="c-9""#,
            r#"account_id="acme""#,
            r#"request="+15550002000""#,
            r#"caller_id_name=Some("Jane")"#,
            r#"caller_id_number=Some("+15550001234")"#,
            r#"callee_id_name=Some("Desk")"#,
            r#"callee_id_number=Some("1001")"#,
            r#"from_user=Some("+15550001234")"#,
            r#"from_realm=Some("carrier.example")"#,
            r#"to_user=Some("5550002000")"#,
            r#"to_realm=None"#,
            r#"authorizing_type=Some("resource")"#,
            r#"authorizing_id=Some("carrier")"#,
            r#"authorized_by=Some(AuthorizedBy::Trunk("carrier"))"#,
            r#"sip_headers=[("X-Route", "eu"), ("X-Tier", "gold")]"#,
            r#"sip_header:x-tier=Some("gold")"#,
            r#"sip_header:X-Missing=None"#,
            r#"flags=CallFlags { bridged: false, message-left: false }"#,
        ]
    );
}

#[tokio::test]
async fn a_caller_id_set_by_a_module_is_what_later_modules_legs_and_notifications_see() {
    // test_fixture (0.3) sets the caller id, then the 0.2.1 build of missed_call_alert
    // registers its callback, test_fixture reads the caller id back, and the seed's user and
    // voicemail nodes follow: the alert carries the caller id that was set.
    let mut seed = seed_missed_call_alert();
    let alert = seed["flow"].clone();
    seed["flow"] = json!({
        "module": "test_fixture",
        "data": {"set_caller_id": {"name": "Front Desk", "number": "+15559990000"}},
        "children": {"_": {
            "module": "test_fixture",
            "data": {"read": ["caller_id_name", "caller_id_number"]},
            "children": {"_": alert}
        }}
    });
    let host = with_seed_users(Builder::new(), "acme")
        .module(wit_0_2_1_module("missed_call_alert"))
        .callflow("acme", "seed", seed)
        .start()
        .await;
    assert!(host.report.data.errors.is_empty(), "{:?}", host.report);
    let report = host
        .run(json!({"account_id": "acme", "to": "+15554441111",
                    "caller_id_name": "Jane", "caller_id_number": "+15550001234",
                    "authorizing_type": "resource",
                    "behaviour": {"bridge": "no_answer", "voicemail": "hangup"}}))
        .await;
    assert_eq!(
        report.nodes_run(),
        [
            "test_fixture",
            "test_fixture",
            "missed_call_alert",
            "user",
            "voicemail"
        ]
    );
    assert_eq!(
        facts(&report),
        [
            r#"caller_id_name=Some("Front Desk")"#,
            r#"caller_id_number=Some("+15559990000")"#
        ]
    );
    let alerts = host.notifications();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].payload["Caller-ID-Name"], "Front Desk");
    assert_eq!(alerts[0].payload["Caller-ID-Number"], "+15559990000");
}

#[tokio::test]
async fn a_caller_id_past_its_limit_or_with_control_characters_is_refused_and_nothing_changes() {
    let set = |caller_id: Value| {
        json!({"numbers": ["+15550002000"],
               "flow": {"module": "test_fixture", "data": {"set_caller_id": caller_id},
                        "children": {"caller-id-refused": {
                            "module": "test_fixture",
                            "data": {"read": ["caller_id_name", "caller_id_number"]}}}}})
    };
    for hostile in [
        json!({"number": "1".repeat(129)}),
        json!({"name": "x".repeat(10_000)}),
        json!({"name": "Evil\r\nVia: SIP/2.0/UDP 10.0.0.1"}),
        json!({"name": "ok", "number": "+1555\u{0}"}),
    ] {
        let host = Builder::new()
            .callflow("acme", "main", set(hostile.clone()))
            .start()
            .await;
        let report = host
            .run(json!({"account_id": "acme", "to": "+15550002000",
                        "caller_id_name": "Jane", "caller_id_number": "+15550001234"}))
            .await;
        assert_eq!(
            report.nodes_run(),
            ["test_fixture", "test_fixture"],
            "{hostile}: the refusal branch runs"
        );
        let facts = facts(&report);
        assert!(
            facts[0].starts_with("refused: a caller id "),
            "{hostile}: {facts:?}"
        );
        assert_eq!(
            facts[1..],
            [
                r#"caller_id_name=Some("Jane")"#.to_string(),
                r#"caller_id_number=Some("+15550001234")"#.to_string()
            ],
            "{hostile}"
        );
    }
}
