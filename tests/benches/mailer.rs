//! Emails per second through the mailer (consume from RabbitMQ, render teletype's
//! `missed_call`, send, record in the sent log, ack) versus a bare lettre send loop of the
//! same rendered emails, into the same local SMTP server (aiosmtpd, keeping only arrival
//! times), in one run; then the time from publish to the server's 250 at half the mailer's
//! rate, p50 and p99.
//!
//! `cargo bench -p cfhost-tests --bench mailer` prints each round and the median ratio; the
//! target is a ratio of at least 0.8. Both sides send through lettre with the same pool (8
//! connections) and 64 emails in flight (the mailer's prefetch). Each mailer round starts
//! with its notifications already queued and ends when the server has them all.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cfhost_mail::macros::SystemParams;
use cfhost_mail::{Composed, Composer, Mailer, MailerConfig, Notification};
use cfhost_tests::broker::{Broker, Publisher, publish};
use cfhost_tests::smtp::SmtpServer;
use futures::StreamExt;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::{Value, json};

const EMAILS: usize = 2_000;
const ROUNDS: usize = 9;
const IN_FLIGHT: usize = 64;
const CONNECTIONS: u32 = 8;
const LATENCY_SECS: f64 = 5.0;
const ACCOUNT: &str = "acme";

fn payload(tag: &str, n: usize) -> Value {
    json!({"App-Name": "callflow", "App-Version": "4.0.0", "Event-Category": "notification",
        "Event-Name": "missed_call", "Msg-ID": format!("{tag}-{n}"), "Node": "cfhost@bench",
        "Account-ID": ACCOUNT, "Call-ID": format!("{tag}-{n}"), "Call-Bridged": false,
        "Message-Left": false, "Caller-ID-Name": "Jane Caller",
        "Caller-ID-Number": "+15550001234", "To-User": "+15554441111",
        "Timestamp": 63_900_000_000u64 + n as u64, "Notify": {"Hangup-Cause": "NO_ANSWER"},
        "To": ["office.manager@example.com", "support@test.com", "john@doe.com"]})
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Waits until the server has `count` arrivals whose call id starts with `tag`.
async fn arrived(smtp: &SmtpServer, tag: &str, count: usize) -> Vec<(f64, String)> {
    let started = Instant::now();
    let mut reader = smtp.arrivals();
    let mut arrivals = Vec::new();
    let prefix = format!("{tag}-");
    loop {
        arrivals.extend(
            reader
                .read_new()
                .into_iter()
                .filter(|(_, call)| call.starts_with(&prefix)),
        );
        if arrivals.len() >= count {
            return arrivals;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {} of {count} emails arrived",
            arrivals.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The bare loop: the same emails, rendered beforehand, sent by lettre, 64 at a time.
async fn bare_lettre(smtp: &SmtpServer, composer: &Composer, tag: &str) -> Duration {
    let messages: Vec<lettre::Message> = (0..EMAILS)
        .map(|n| {
            let notification = Notification::parse(payload(tag, n).to_string().as_bytes()).unwrap();
            match composer.compose(&notification, 0).unwrap() {
                Composed::Email(email) => email.to_message().unwrap(),
                Composed::Disabled => unreachable!(),
            }
        })
        .collect();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(smtp.url().rsplit(':').next().unwrap().parse().unwrap())
        .pool_config(PoolConfig::new().max_size(CONNECTIONS))
        .build();
    let started = Instant::now();
    futures::stream::iter(messages)
        .map(|message| {
            let transport = transport.clone();
            async move { transport.send(message).await.unwrap() }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    arrived(smtp, tag, EMAILS).await;
    started.elapsed()
}

/// One bare lettre send after another: how long the SMTP exchange itself takes, in ms.
async fn bare_send_times(smtp: &SmtpServer, composer: &Composer) -> Vec<f64> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(smtp.url().rsplit(':').next().unwrap().parse().unwrap())
        .build();
    let mut times = Vec::new();
    for n in 0..100 {
        let notification = Notification::parse(payload("one", n).to_string().as_bytes()).unwrap();
        let Composed::Email(email) = composer.compose(&notification, 0).unwrap() else {
            unreachable!()
        };
        let message = email.to_message().unwrap();
        let started = Instant::now();
        transport.send(message).await.unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times
}

fn mailer_config(broker: &Broker, smtp: &SmtpServer) -> MailerConfig {
    MailerConfig {
        amqp: Some(broker.url()),
        smtp: Some(smtp.url()),
        hostname: Some("mx.bench".into()),
        prefetch: IN_FLIGHT as u16,
        smtp_connections: CONNECTIONS,
        ..MailerConfig::default()
    }
}

/// The mailer, from its notifications queued to the last one at the server.
async fn through_mailer(
    broker: &Broker,
    smtp: &SmtpServer,
    data: &std::path::Path,
    tag: &str,
) -> Duration {
    let messages: Vec<(&str, Value)> = (0..EMAILS)
        .map(|n| ("notifications.sip.missed_call", payload(tag, n)))
        .collect();
    publish(&broker.url(), &messages).await.unwrap();
    let mailer = Arc::new(Mailer::new(mailer_config(broker, smtp), data).unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let running = tokio::spawn(Arc::clone(&mailer).run(stopped));
    arrived(smtp, tag, EMAILS).await;
    let took = started.elapsed();
    stop.send(true).unwrap();
    running.await.unwrap();
    took
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

#[tokio::main]
async fn main() {
    let broker = Broker::start().await;
    let smtp = SmtpServer::start_timing();
    let data = tempfile::tempdir().unwrap();
    let account = data.path().join("accounts").join(ACCOUNT);
    std::fs::create_dir_all(&account).unwrap();
    std::fs::write(
        account.join("account.json"),
        r#"{"name": "Acme", "realm": "acme.sip.example.com"}"#,
    )
    .unwrap();
    let system = SystemParams {
        hostname: "mx.bench".into(),
        node: "cfhost_mailer@mx.bench".into(),
    };
    let composer = Composer::new(data.path(), system, "no_reply@mx.bench".into());
    // Warm-up: the broker's queue, the server, the pools.
    through_mailer(&broker, &smtp, data.path(), "warm").await;
    let mut ratios = Vec::new();
    let mut best_rate: f64 = 0.0;
    for round in 0..ROUNDS {
        let bare = bare_lettre(&smtp, &composer, &format!("bare{round}")).await;
        let mailer = through_mailer(&broker, &smtp, data.path(), &format!("mail{round}")).await;
        let (bare_rate, mailer_rate) = (
            EMAILS as f64 / bare.as_secs_f64(),
            EMAILS as f64 / mailer.as_secs_f64(),
        );
        best_rate = best_rate.max(mailer_rate);
        let ratio = mailer_rate / bare_rate;
        println!(
            "round {round}: bare lettre {bare_rate:.0} emails/s, mailer {mailer_rate:.0} emails/s, ratio {ratio:.2}"
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!("median ratio mailer / bare lettre: {median:.2} (target >= 0.8)");

    let sends = bare_send_times(&smtp, &composer).await;
    println!(
        "one bare lettre send after another: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&sends, 50.0),
        percentile(&sends, 99.0)
    );

    // Latency at half the best rate: published one by one, each with its time.
    let rate = best_rate / 2.0;
    let mailer = Arc::new(Mailer::new(mailer_config(&broker, &smtp), data.path()).unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Arc::clone(&mailer).run(stopped));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let count = (rate * LATENCY_SECS) as usize;
    let publisher = Publisher::connect(&broker.url()).await.unwrap();
    let mut published = Vec::with_capacity(count);
    let started = Instant::now();
    for n in 0..count {
        let due = Duration::from_secs_f64(n as f64 / rate);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        published.push(now());
        publisher
            .publish(&[("notifications.sip.missed_call", payload("lat", n))])
            .await
            .unwrap();
    }
    let arrivals = arrived(&smtp, "lat", count).await;
    stop.send(true).unwrap();
    running.await.unwrap();
    let mut latencies: Vec<f64> = arrivals
        .iter()
        .map(|(at, call)| {
            let n: usize = call.trim_start_matches("lat-").parse().unwrap();
            (at - published[n]) * 1000.0
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    println!(
        "publish -> 250 at {rate:.0} emails/s ({count} emails): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0)
    );
    assert!(
        median >= 0.8,
        "the mailer reached {median:.2} of bare lettre's rate"
    );
}
