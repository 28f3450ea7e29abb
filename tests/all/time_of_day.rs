//! `time_of_day`, cfhost's own drop-in module, in a host: dropped into the operator's module
//! directory with the grant it needs, reading the account's time zone through the `account`
//! import and the real clock through WASI, with its node data checked against the schema it
//! derives from its types.

use cfhost_core::policy::Capability;
use cfhost_core::trace::TraceEvent;
use cfhost_tests::{Builder, TestHost, lines};
use serde_json::{Value, json};

fn routed(hours: Value) -> Value {
    json!({
        "numbers": ["+15550003000"],
        "flow": {
            "module": "time_of_day",
            "data": {"hours": hours},
            "children": {
                "open": {"module": "test_fixture", "data": {"outcome": "stop"}},
                "closed": {"module": "test_fixture", "data": {"outcome": "stop"}}
            }
        }
    })
}

async fn host(grant: Vec<Capability>, hours: Value) -> TestHost {
    Builder::new()
        .system_module_file("time_of_day.wasm", "time_of_day")
        .policy(|policy| policy.grants.grant_module("time_of_day", grant))
        .account_document("acme", "account.json", json!({"timezone": "Europe/Paris"}))
        .callflow("acme", "main", routed(hours))
        .start()
        .await
}

/// The line `time_of_day` logged and the child it went to.
async fn route(host: &TestHost) -> (String, String) {
    let call = host
        .run(json!({"account_id": "acme", "to": "+15550003000", "behaviour": {"bridge": "answer"}}))
        .await;
    let log = call.trace.iter().find_map(|event| match event {
        TraceEvent::Log {
            module, message, ..
        } if module == "time_of_day" => Some(message.clone()),
        _ => None,
    });
    let child = call.trace.iter().find_map(|event| match event {
        TraceEvent::Node { path, module } if module == "test_fixture" => Some(path.clone()),
        _ => None,
    });
    (
        log.unwrap_or_else(|| panic!("no log line: {:#?}", call.trace)),
        child.unwrap_or_default(),
    )
}

const EVERY_DAY: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[tokio::test]
async fn routes_by_the_accounts_time_zone_and_the_real_clock() {
    let always = json!([{"days": EVERY_DAY, "open": "00:00", "close": "00:00"}]);
    let host = host(vec![Capability::Clock, Capability::Log], always).await;
    assert!(host.report.module_errors.is_empty(), "{:?}", host.report);
    let (log, child) = route(&host).await;
    assert!(log.ends_with(" in Europe/Paris: open"), "{log}");
    assert_eq!(child, "flow.children.open");

    let never = json!([]);
    let host = self::host(vec![Capability::Clock, Capability::Log], never).await;
    let (log, child) = route(&host).await;
    assert!(log.ends_with(" in Europe/Paris: closed"), "{log}");
    assert_eq!(child, "flow.children.closed");
}

#[tokio::test]
async fn without_the_clock_it_does_not_load_and_bad_hours_are_refused_at_load() {
    let host = host(vec![Capability::Log], json!([])).await;
    assert!(
        host.report.module_errors[0]
            .to_string()
            .contains("asks for capability `clock`"),
        "{:?}",
        host.report.module_errors
    );

    let bad = json!([{"days": ["mon"], "open": "9am", "close": "17:00"}]);
    let host = self::host(vec![Capability::Clock, Capability::Log], bad).await;
    let [error] = lines(&host.report.data.errors)
        .try_into()
        .unwrap_or_else(|errors| {
            panic!("{errors:?}");
        });
    assert!(
        error.contains("module `time_of_day`") && error.contains("/hours/0/open"),
        "{error}"
    );
}

#[tokio::test]
async fn skip_module_is_the_hosts_key_even_for_a_schema_that_refuses_unknown_keys() {
    let always = json!([{"days": EVERY_DAY, "open": "00:00", "close": "00:00"}]);
    let mut flow = routed(always);
    flow["flow"]["data"]["skip_module"] = json!(true);
    flow["flow"]["children"]["_"] = json!({"module": "test_fixture", "data": {"outcome": "stop"}});
    let host = Builder::new()
        .system_module_file("time_of_day.wasm", "time_of_day")
        .policy(|policy| {
            policy
                .grants
                .grant_module("time_of_day", vec![Capability::Clock, Capability::Log])
        })
        .callflow("acme", "main", flow)
        .start()
        .await;
    assert!(
        host.report.data.errors.is_empty(),
        "the callflow loads: {:?}",
        lines(&host.report.data.errors)
    );
    let schema = host
        .runtime()
        .modules()
        .system()
        .get("time_of_day")
        .unwrap()
        .to_json();
    assert_eq!(schema["data_schema"]["additionalProperties"], json!(false));
    assert!(!schema.to_string().contains("skip_module"));
    let call = host
        .run(json!({"account_id": "acme", "to": "+15550003000"}))
        .await;
    assert!(call.trace.iter().any(|event| matches!(
        event,
        TraceEvent::Skipped { module, reason, .. }
            if module == "time_of_day" && reason == "skip_module is set"
    )));
    let ran: Vec<String> = call
        .trace
        .iter()
        .filter_map(|event| match event {
            TraceEvent::Node { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ran, ["flow.children._"]);
}
