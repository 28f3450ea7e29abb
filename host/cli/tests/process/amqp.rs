//! Notifications over AMQP to a real RabbitMQ, with none lost: the broker going away in the
//! middle of a run, and cfhost killed with notifications still in its outbox.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cfhost_core::notify::{AmqpSink, Outbox};
use cfhost_tests::broker::{Broker, Consumer, Received};
use cfhost_tests::{
    Builder, assert_seed_missed_call, kazoo, repo_root, seed_missed_call_alert, with_seed_users,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);

/// `cfhost simulate` on the examples' data with `scenario`, publishing to `broker` through the
/// outbox in `outbox`.
fn simulate(broker: &Broker, scenario: impl AsRef<std::ffi::OsStr>, outbox: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cfhost"));
    command
        .current_dir(repo_root())
        .args(["simulate", "--data", "examples/data", "--scenario"])
        .arg(scenario)
        .args(["--notifications", &broker.url()])
        .arg("--outbox")
        .arg(outbox);
    command
}

/// Every message satisfies KAZOO's definition of its event; returns the count per Msg-ID.
fn msg_ids(received: &[Received]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in received {
        kazoo::check(&message.routing_key, &message.payload)
            .unwrap_or_else(|e| panic!("{e}: {}", message.payload));
        assert_eq!(message.content_type.as_deref(), Some("application/json"));
        assert_eq!(message.delivery_mode, Some(2), "persistent delivery");
        let id = message.payload["Msg-ID"].as_str().unwrap().to_string();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn the_examples_publish_kazoo_payloads_to_a_real_broker() {
    let broker = Broker::start().await;
    let consumer = Consumer::start(broker.url()).await;
    let outbox = tempfile::tempdir().unwrap();
    let out = simulate(&broker, "examples/scenarios.json", outbox.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("every notification was confirmed by the broker"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let received = consumer.wait_for(2, WAIT).await;
    assert_eq!(msg_ids(&received).len(), 2);
    let missed = &received[0];
    assert_eq!(missed.routing_key, "notifications.sip.missed_call");
    assert_seed_missed_call(&missed.payload, "acme-missed", "call-1");
    let custom = &received[1];
    assert_eq!(custom.routing_key, "notifications.account.cf_notification");
    assert_eq!(custom.payload["Account-ID"], "acme-notify");
    assert_eq!(custom.payload["Template-ID"], "my_custom_template");
    assert_eq!(custom.payload["Notify"], json!([]));
    // Nothing else arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(consumer.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_notification_is_lost_when_the_broker_stops_in_the_middle_of_1000_calls() {
    let mut broker = Broker::start().await;
    let consumer = Consumer::start(broker.url()).await;
    let outbox_dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(outbox_dir.path(), 10_000).unwrap();
    let sink = Arc::new(AmqpSink::start(broker.url(), outbox, None));
    let host = with_seed_users(Builder::new(), "acme")
        .callflow("acme", "seed", seed_missed_call_alert())
        .start_with_sink(sink.clone())
        .await;
    let call = |n: usize| {
        json!({"account_id": "acme", "to": "+15554441111", "call_id": format!("c-{n}"),
               "behaviour": {"bridge": "no_answer", "voicemail": "hangup"}})
    };
    for n in 0..500 {
        host.run(call(n)).await;
    }
    broker.stop();
    // Calls go on while the broker is away; their notifications wait in the outbox.
    for n in 500..1000 {
        let report = host.run(call(n)).await;
        assert_eq!(report.callbacks(), [("missed_call_alert", None)]);
    }
    assert!(
        !sink.outbox().is_empty(),
        "the broker was down: some must wait"
    );
    broker.resume().await;
    assert_eq!(
        sink.flush(WAIT).await,
        0,
        "the outbox drains after the broker returns"
    );

    let received = consumer.wait_for(1000, WAIT).await;
    let ids = msg_ids(&received);
    let duplicates: usize = ids.values().map(|n| n - 1).sum();
    let call_ids: std::collections::HashSet<_> = received
        .iter()
        .map(|m| m.payload["Call-ID"].as_str().unwrap().to_string())
        .collect();
    eprintln!(
        "broker restart: {} distinct Msg-IDs, {} lost, {duplicates} duplicates, {} connection failures",
        ids.len(),
        1000 - call_ids.len(),
        sink.counters()
            .connection_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(ids.len(), 1000, "every notification arrives");
    assert_eq!(call_ids.len(), 1000, "one per call");
    // In order: the first arrival of each call's notification follows the order of the calls.
    let mut seen = std::collections::HashSet::new();
    let first_arrivals: Vec<usize> = received
        .iter()
        .map(|m| m.payload["Call-ID"].as_str().unwrap()[2..].parse().unwrap())
        .filter(|n| seen.insert(*n))
        .collect();
    assert!(
        first_arrivals.is_sorted(),
        "delivered in the order of the calls"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_in_the_outbox_of_a_killed_cfhost_are_delivered_after_a_restart() {
    let mut broker = Broker::start().await;
    let consumer = Consumer::start(broker.url()).await;
    broker.stop();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let mut cfhost = simulate(&broker, "examples/scenarios.json", &outbox)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until both notifications are in the outbox, the broker being down.
    let log = outbox.join("outbox.log");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 2 {
        assert!(started.elapsed() < WAIT, "cfhost did not fill its outbox");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        cfhost.try_wait().unwrap().is_none(),
        "still waiting for the broker"
    );
    cfhost.kill().unwrap(); // SIGKILL
    cfhost.wait().unwrap();
    let in_outbox: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            record["payload"]["Msg-ID"].as_str().unwrap().to_string()
        })
        .collect();

    broker.resume().await;
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "[]").unwrap();
    let out = simulate(&broker, &empty, &outbox).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("every notification was confirmed"),
        "{stderr}"
    );
    let received = consumer.wait_for(2, WAIT).await;
    let ids = msg_ids(&received);
    let mut delivered: Vec<String> = ids.keys().cloned().collect();
    delivered.sort();
    let mut expected = in_outbox.clone();
    expected.sort();
    assert_eq!(
        delivered, expected,
        "the same notifications, with the same Msg-IDs"
    );
}
