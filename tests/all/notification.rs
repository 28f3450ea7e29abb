//! `notification` end to end: the seed callflow and every rule of kazoo-semantics.md §2.

use cfhost_core::trace::TraceEvent;
use cfhost_tests::{Builder, TestHost, seed_notification, with_seed_users};
use serde_json::{Value, json};

const ACCOUNT: &str = "acme";
const NUMBER: &str = "+15554442222";

async fn host_with_data(data: Value) -> TestHost {
    let flow = json!({
        "numbers": [NUMBER],
        "flow": {"module": "notification", "data": data, "children": {"_": {
            "module": "user", "data": {"id": "3e3f1217bee3ba0aa7496ca61fb4ae8f"}
        }}}
    });
    with_seed_users(Builder::new(), ACCOUNT)
        .callflow(ACCOUNT, "cf", flow)
        .start()
        .await
}

fn call(bridge: &str) -> Value {
    json!({
        "account_id": ACCOUNT,
        "to": NUMBER,
        "caller_id_name": "Jane",
        "caller_id_number": "+15550001234",
        "authorizing_type": "device",
        "behaviour": {"bridge": bridge},
    })
}

/// Index of the first event matching `pred` in the trace.
fn position(trace: &[TraceEvent], pred: impl Fn(&TraceEvent) -> bool) -> usize {
    trace.iter().position(pred).expect("event in trace")
}

#[tokio::test]
async fn seed_callflow_publishes_at_once_with_an_empty_notify() {
    let host = with_seed_users(Builder::new(), ACCOUNT)
        .callflow(ACCOUNT, "seed", seed_notification())
        .start()
        .await;
    assert!(
        host.report.data.errors.is_empty(),
        "{:?}",
        host.report.data.errors
    );
    let report = host.run(call("answer")).await;
    let published = position(&report.trace, |e| matches!(e, TraceEvent::Published { .. }));
    let ended = position(&report.trace, |e| matches!(e, TraceEvent::Ended { .. }));
    let user_node = position(
        &report.trace,
        |e| matches!(e, TraceEvent::Node { module, .. } if module == "user"),
    );
    assert!(
        published < user_node && user_node < ended,
        "{:#?}",
        report.trace
    );
    assert!(report.callbacks().is_empty());

    let notifications = host.notifications();
    assert_eq!(notifications.len(), 1);
    let n = &notifications[0];
    assert_eq!(n.routing_key, "notifications.account.cf_notification");
    assert_eq!(n.payload["Event-Name"], "cf_notification");
    assert_eq!(n.payload["Template-ID"], "my_custom_template");
    assert_eq!(n.payload["Notify"], json!([]));
    // Sent before the bridge: the flags are still false.
    assert_eq!(n.payload["Call-Bridged"], false);
    // No inbound filter: an internal call publishes too. Groups come out in reverse order.
    assert_eq!(
        n.payload["To"],
        json!([
            "support@test.com",
            "john@doe.com",
            "office.manager@example.com"
        ])
    );
}

#[tokio::test]
async fn channel_destroy_is_the_default_and_reports_the_final_flags() {
    for send_at in [None, Some(""), Some("channel_destroy")] {
        let mut data =
            json!({"template_id": "t1", "comments": "VIP", "notification_media": ["email"]});
        if let Some(send_at) = send_at {
            data["send_at"] = json!(send_at);
        }
        let host = host_with_data(data).await;
        let report = host.run(call("answer")).await;
        assert_eq!(report.callbacks(), [("notification", None)], "{send_at:?}");
        let n = &host.notifications()[0];
        // Unlike missed_call_alert, it sends although the call was bridged, and says so.
        assert_eq!(n.payload["Call-Bridged"], true);
        assert_eq!(
            n.payload["Notify"],
            json!({"Hangup-Cause": "NORMAL_CLEARING", "Hangup-Code": "sip:200"})
        );
        assert_eq!(n.payload["Comments"], "VIP");
        assert_eq!(n.payload["Notification-Media"], json!(["email"]));
        assert!(!n.payload.contains_key("To"));
    }
}

#[tokio::test]
async fn unknown_send_at_publishes_nothing_and_the_flow_continues() {
    let host = host_with_data(json!({"template_id": "t1", "send_at": "tomorrow"})).await;
    let report = host.run(call("no_answer")).await;
    assert_eq!(report.nodes_run(), ["notification", "user"]);
    assert!(report.callbacks().is_empty());
    assert!(host.notifications().is_empty());
}

#[tokio::test]
async fn missing_template_id_publishes_nothing() {
    for send_at in ["callflow_exec", "channel_destroy"] {
        let host = host_with_data(json!({"send_at": send_at, "template_id": ""})).await;
        let report = host.run(call("no_answer")).await;
        assert_eq!(report.nodes_run(), ["notification", "user"], "{send_at}");
        assert!(host.notifications().is_empty(), "{send_at}");
    }
}

#[tokio::test]
async fn a_lone_empty_email_is_kept_as_kazoo_does() {
    let host = host_with_data(json!({
        "send_at": "callflow_exec",
        "template_id": "t1",
        "recipients": [{"type": "email", "id": ""}, {"type": "email", "id": ["a@x", ""]}]
    }))
    .await;
    host.run(call("no_answer")).await;
    assert_eq!(host.notifications()[0].payload["To"], json!(["a@x", ""]));
}
