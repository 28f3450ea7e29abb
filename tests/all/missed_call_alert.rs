//! `missed_call_alert` end to end: the seed callflow and every rule of kazoo-semantics.md §1.

use cfhost_core::executor::EndReason;
use cfhost_tests::{
    Builder, TestHost, assert_seed_missed_call, seed_missed_call_alert, with_seed_users,
};
use serde_json::{Value, json};

const ACCOUNT: &str = "acme";
const NUMBER: &str = "+15554441111";

async fn seed_host() -> TestHost {
    with_seed_users(Builder::new(), ACCOUNT)
        .callflow(ACCOUNT, "seed", seed_missed_call_alert())
        .start()
        .await
}

fn call(authorizing_type: Option<&str>, behaviour: Value) -> Value {
    let mut call = json!({
        "account_id": ACCOUNT,
        "to": NUMBER,
        "call_id": "c-1",
        "caller_id_name": "Jane",
        "caller_id_number": "+15550001234",
        "behaviour": behaviour,
    });
    if let Some(t) = authorizing_type {
        call["authorizing_type"] = json!(t);
    }
    call
}

fn missed() -> Value {
    json!({"bridge": "no_answer", "voicemail": "hangup"})
}

#[tokio::test]
async fn seed_callflow_validates_and_an_unanswered_inbound_call_sends_one_alert() {
    let host = seed_host().await;
    assert!(
        host.report.data.errors.is_empty(),
        "{:?}",
        host.report.data.errors
    );
    assert!(
        host.report.data.warnings.is_empty(),
        "{:?}",
        host.report.data.warnings
    );
    let report = host.run(call(Some("resource"), missed())).await;
    assert_eq!(
        report.nodes_run(),
        ["missed_call_alert", "user", "voicemail"]
    );
    assert_eq!(report.end, EndReason::ChannelDestroyed);
    assert_eq!(report.callbacks(), [("missed_call_alert", None)]);

    let notifications = host.notifications();
    assert_eq!(notifications.len(), 1);
    let n = &notifications[0];
    assert_eq!(n.exchange, "notifications");
    assert_eq!(n.routing_key, "notifications.sip.missed_call");
    let p = &n.payload;
    assert_seed_missed_call(&Value::Object(p.clone()), ACCOUNT, "c-1");
    assert_eq!(p["Caller-ID-Name"], "Jane");
    assert_eq!(p["Caller-ID-Number"], "+15550001234");
    // 20 s of ringing + 3 s at the prompt after a start at Unix 1,700,000,000, in Gregorian seconds.
    assert_eq!(p["Timestamp"], json!(1_700_000_023u64 + 62_167_219_200));
    assert_eq!(p["To-User"], NUMBER);
    assert_eq!(p["From-User"], "+15550001234");
}

#[tokio::test]
async fn answered_call_sends_no_alert() {
    let host = seed_host().await;
    let report = host.run(call(None, json!({"bridge": "answer"}))).await;
    assert!(report.flags.bridged);
    assert_eq!(report.nodes_run(), ["missed_call_alert", "user"]);
    assert_eq!(report.callbacks(), [("missed_call_alert", None)]);
    assert!(host.notifications().is_empty());
}

#[tokio::test]
async fn voicemail_left_sends_no_alert() {
    let host = seed_host().await;
    let report = host
        .run(call(
            None,
            json!({"bridge": "no_answer", "voicemail": "leave_message"}),
        ))
        .await;
    assert!(report.flags.message_left);
    assert!(!report.flags.bridged);
    assert_eq!(report.callbacks(), [("missed_call_alert", None)]);
    assert!(host.notifications().is_empty());
}

#[tokio::test]
async fn only_calls_from_outside_the_account_register_the_alert() {
    for (authorizing_type, alerts) in [
        (None, 1),
        (Some("resource"), 1),
        (Some("sys_info"), 1),
        (Some("device"), 0),
        (Some("user"), 0),
        (Some("account"), 0),
        (Some("mobile"), 0),
        (Some("callforward"), 0),
    ] {
        let host = seed_host().await;
        let report = host.run(call(authorizing_type, missed())).await;
        assert_eq!(
            host.notifications().len(),
            alerts,
            "authorizing type {authorizing_type:?}"
        );
        assert_eq!(report.callbacks().len(), alerts, "{authorizing_type:?}");
        // Registered or not, the flow goes on to the user and voicemail nodes.
        assert_eq!(
            report.nodes_run(),
            ["missed_call_alert", "user", "voicemail"]
        );
    }
}

#[tokio::test]
async fn skip_module_sends_no_alert_and_the_flow_continues() {
    for skip in [json!(true), json!("true")] {
        let mut flow = seed_missed_call_alert();
        flow["flow"]["data"]["skip_module"] = skip.clone();
        let host = with_seed_users(Builder::new(), ACCOUNT)
            .callflow(ACCOUNT, "seed", flow)
            .start()
            .await;
        let report = host.run(call(Some("resource"), missed())).await;
        assert_eq!(report.nodes_run(), ["user", "voicemail"], "{skip}");
        assert!(report.callbacks().is_empty());
        assert!(host.notifications().is_empty());
    }
}

#[tokio::test]
async fn user_recipients_resolve_to_email_and_missing_users_are_skipped() {
    let flow = json!({
        "numbers": [NUMBER],
        "flow": {"module": "missed_call_alert", "data": {"recipients": [
            {"type": "user", "id": ["ghost", "bdc3a4b7e3a5405a9aa8a0f9c6b76997", "no-email"]},
            {"type": "email", "id": "ops@example.com"}
        ]}}
    });
    let host = with_seed_users(Builder::new(), ACCOUNT)
        .user(ACCOUNT, "no-email", json!({"first_name": "Nomail"}))
        .user(
            "other-account",
            "ghost",
            json!({"email": "leak@other.example"}),
        )
        .callflow(ACCOUNT, "cf", flow)
        .start()
        .await;
    let report = host.run(call(None, missed())).await;
    // The flow ran out before any destroy: the host hung up, and Notify says so.
    assert_eq!(report.end, EndReason::FlowEnded);
    let n = &host.notifications()[0];
    assert_eq!(
        n.payload["To"],
        json!(["office.manager@example.com", "ops@example.com"])
    );
    assert_eq!(n.payload["Notify"]["Hangup-Cause"], "NORMAL_CLEARING");
}

#[tokio::test]
async fn no_recipients_omits_to() {
    let flow = json!({"numbers": [NUMBER], "flow": {"module": "missed_call_alert", "data": {}}});
    let host = Builder::new().callflow(ACCOUNT, "cf", flow).start().await;
    host.run(call(None, missed())).await;
    assert!(!host.notifications()[0].payload.contains_key("To"));
}

#[tokio::test]
async fn identical_nodes_register_once_and_different_ones_twice() {
    let node = |recipient: &str, child: Value| {
        json!({"module": "missed_call_alert",
               "data": {"recipients": [{"type": "email", "id": recipient}]},
               "children": {"_": child}})
    };
    let same = json!({"numbers": ["1"], "flow": node("a@x", node("a@x", json!({})))});
    let different = json!({"numbers": ["2"], "flow": node("a@x", node("b@x", json!({})))});
    let host = Builder::new()
        .callflow(ACCOUNT, "same", same)
        .callflow(ACCOUNT, "different", different)
        .start()
        .await;
    let mut one = call(None, missed());
    one["to"] = json!("1");
    let report = host.run(one).await;
    assert_eq!(report.callbacks().len(), 1);
    assert_eq!(host.notifications().len(), 1);
    let mut two = call(None, missed());
    two["to"] = json!("2");
    host.run(two).await;
    let to: Vec<Value> = host
        .notifications()
        .iter()
        .map(|n| n.payload["To"].clone())
        .collect();
    assert_eq!(to, [json!(["a@x"]), json!(["a@x"]), json!(["b@x"])]);
}
