//! Notifications per second through cfhost's AMQP sink (durable outbox, publisher confirms)
//! versus a bare lapin confirm-publish loop, against the same private RabbitMQ, in one run.
//!
//! `cargo bench -p cfhost-tests --bench amqp_sink` prints each round and the median ratio; the
//! target is a ratio of at least 0.8. Both sides publish the same KAZOO `missed_call` payload
//! with at most 256 publishes waiting for confirms, both start timing on an open connection.
//! The bare loop publishes 256 and then waits for their confirms; the sink is driven by 64
//! concurrent publishers, as concurrent calls would drive it, and counts until the broker
//! confirmed all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cfhost_core::notify::amqp::declare_exchange;
use cfhost_core::notify::{AmqpSink, OutboundNotification, Outbox, Sink};
use cfhost_tests::broker::Broker;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;

const MESSAGES: usize = 20_000;
const ROUNDS: usize = 9;
const PUBLISHERS: usize = 64;
const PIPELINE: usize = 256;

fn notification(n: usize) -> OutboundNotification {
    let payload = json!({
        "Account-ID": "acme", "Call-ID": format!("bench-{n}"), "Caller-ID-Name": "Jane Caller",
        "Caller-ID-Number": "+15550001234", "From-User": "+15550001234",
        "From-Realm": "acme.sip.example.com", "To-User": "+15554441111",
        "To-Realm": "acme.sip.example.com", "Timestamp": 63_900_000_000u64 + n as u64,
        "Call-Bridged": false, "Message-Left": false,
        "Notify": {"Hangup-Cause": "NORMAL_CLEARING", "Hangup-Code": "sip:200"},
        "To": ["office.manager@example.com", "support@test.com", "john@doe.com"],
        "Event-Category": "notification", "Event-Name": "missed_call", "App-Name": "callflow",
        "App-Version": "4.0.0", "Node": "cfhost@bench", "Msg-ID": format!("{n:032x}"),
    });
    OutboundNotification {
        exchange: "notifications".into(),
        routing_key: "notifications.sip.missed_call".into(),
        payload: payload.as_object().unwrap().clone(),
    }
}

/// The bare loop: one channel with confirms, publish 256, wait for their confirms, repeat.
async fn bare_lapin(url: &str, messages: &[OutboundNotification]) -> Duration {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    declare_exchange(&channel).await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let started = Instant::now();
    for chunk in messages.chunks(PIPELINE) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for message in chunk {
            let body = serde_json::to_vec(&message.payload).unwrap();
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2);
            confirms.push(
                channel
                    .basic_publish(
                        message.exchange.as_str().into(),
                        message.routing_key.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        properties,
                    )
                    .await
                    .unwrap(),
            );
        }
        for confirm in confirms {
            assert!(confirm.await.unwrap().is_ack());
        }
    }
    started.elapsed()
}

/// cfhost's sink: 64 concurrent publishers into the outbox; done when all are confirmed.
/// Returns the time taken and how many disk flushes the outbox made.
async fn cfhost_sink(url: &str, messages: &[OutboundNotification]) -> (Duration, u64) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), MESSAGES * 2).unwrap();
    let sink = Arc::new(AmqpSink::start(url.to_string(), outbox, None));
    // Connect first, as the bare loop does before its clock starts: a running host is connected.
    sink.publish(&notification(usize::MAX)).await.unwrap();
    assert_eq!(sink.flush(Duration::from_secs(30)).await, 0);
    let messages = Arc::new(messages.to_vec());
    let started = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|publisher| {
            let sink = Arc::clone(&sink);
            let messages = Arc::clone(&messages);
            tokio::spawn(async move {
                for message in messages.iter().skip(publisher).step_by(PUBLISHERS) {
                    sink.publish(message).await.unwrap();
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    assert_eq!(sink.flush(Duration::from_secs(300)).await, 0);
    let elapsed = started.elapsed();
    (elapsed, sink.outbox().syncs())
}

fn per_sec(duration: Duration) -> f64 {
    MESSAGES as f64 / duration.as_secs_f64()
}

/// The value below which `fraction` of `values` lie (nearest rank).
fn quantile(values: &[f64], fraction: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

#[tokio::main]
async fn main() {
    let broker = Broker::start().await;
    let url = broker.url();
    let messages: Vec<_> = (0..MESSAGES).map(notification).collect();
    // Warm up both paths once.
    bare_lapin(&url, &messages).await;
    cfhost_sink(&url, &messages).await;
    let (mut bare, mut ours, mut ratios, mut syncs) = (vec![], vec![], vec![], 0);
    for round in 1..=ROUNDS {
        // Short rounds, side by side, alternating which side goes first: the two sides of a
        // round meet the same machine, and the median of the rounds' ratios is robust to the
        // shared machine's bursts.
        let mut sink = |(elapsed, flushes): (Duration, u64)| {
            syncs += flushes;
            per_sec(elapsed)
        };
        let (b, o) = if round % 2 == 1 {
            let b = per_sec(bare_lapin(&url, &messages).await);
            (b, sink(cfhost_sink(&url, &messages).await))
        } else {
            let o = sink(cfhost_sink(&url, &messages).await);
            (per_sec(bare_lapin(&url, &messages).await), o)
        };
        println!(
            "round {round:>2}: bare lapin {b:>6.0}/s  cfhost sink {o:>6.0}/s  ratio {:.2}",
            o / b
        );
        bare.push(b);
        ours.push(o);
        ratios.push(o / b);
    }
    println!(
        "{ROUNDS} rounds of {MESSAGES} notifications: median bare lapin {:.0}/s, median cfhost \
         sink {:.0}/s ({:.1} notifications per outbox flush)\nratio of the rounds: median \
         {:.2}, quartiles {:.2}..{:.2} (target: median >= 0.80)",
        median(&bare),
        median(&ours),
        (ROUNDS * MESSAGES) as f64 / syncs as f64,
        median(&ratios),
        quantile(&ratios, 0.25),
        quantile(&ratios, 0.75),
    );
}
