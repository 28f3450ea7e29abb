//! Emails per second through the mailer (consume from RabbitMQ, render teletype's
//! `missed_call`, send, record in the sent log, ack) versus a bare lettre send loop of the
//! same rendered emails, into the same local SMTP server (aiosmtpd, keeping only arrival
//! times), in one run; then the time from publish to the server's 250 at half the mailer's
//! rate, p50 and p99.
//!
//! `cargo bench -p cfhost-tests --bench mailer` prints each round and the median ratio; the
//! target is a ratio of at least 0.8 against lettre's own transport (`AsyncSmtpTransport`,
//! pool size 8). Each round also runs the same bare loop through the mailer's transport
//! ([`Smtp`]: lettre's SMTP client on a pool of its own, 8 connections), which separates what
//! the mailer's own work costs from what its transport saves. Every loop keeps 64 emails in
//! flight (the mailer's prefetch). Each mailer round starts with its notifications already
//! queued and ends when the server has them all.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cfhost_mail::smtp::Smtp;
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

/// `count` emails for a bare loop, rendered beforehand.
async fn rendered(composer: &Arc<Composer>, tag: &str, count: usize) -> Vec<lettre::Message> {
    let mut messages = Vec::with_capacity(count);
    for n in 0..count {
        let notification = Notification::parse(payload(tag, n).to_string().as_bytes()).unwrap();
        match composer.compose(notification, 0).await.unwrap() {
            Composed::Email(email) => messages.push(email.to_message().unwrap()),
            Composed::Disabled => unreachable!(),
        }
    }
    messages
}

/// The mailer on the data directory `data`, as `cfhost mailer` runs without a database.
fn mailer_on(config: MailerConfig, data: &std::path::Path) -> Arc<Mailer> {
    let store = Arc::new(cfhost_store::FilesStore::new(data));
    Arc::new(Mailer::new(config, data, store, None).unwrap())
}

/// What a bare loop sends through.
#[derive(Clone)]
enum Sender {
    /// lettre's own transport and pool.
    Lettre(AsyncSmtpTransport<Tokio1Executor>),
    /// The mailer's transport.
    Mailer(Smtp),
}

impl Sender {
    fn lettre(smtp: &SmtpServer) -> Sender {
        Sender::Lettre(
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(smtp.url().rsplit(':').next().unwrap().parse().unwrap())
                .pool_config(PoolConfig::new().max_size(CONNECTIONS))
                .build(),
        )
    }

    async fn send(&self, message: lettre::Message) {
        match self {
            Sender::Lettre(transport) => drop(transport.send(message).await.unwrap()),
            Sender::Mailer(transport) => drop(transport.send(&message).await.unwrap()),
        }
    }
}

/// A bare loop: the same emails, rendered beforehand, sent 64 at a time, until the server
/// has them all.
async fn bare_loop(
    smtp: &SmtpServer,
    sender: Sender,
    composer: &Arc<Composer>,
    tag: &str,
) -> Duration {
    let messages = rendered(composer, tag, EMAILS).await;
    let started = Instant::now();
    futures::stream::iter(messages)
        .map(|message| {
            let sender = sender.clone();
            async move { sender.send(message).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    arrived(smtp, tag, EMAILS).await;
    started.elapsed()
}

/// One bare send after another: how long the SMTP exchange itself takes, in ms.
async fn bare_send_times(sender: Sender, composer: &Arc<Composer>, tag: &str) -> Vec<f64> {
    let mut times = Vec::new();
    for message in rendered(composer, tag, 100).await {
        let started = Instant::now();
        sender.send(message).await;
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
    let mailer = mailer_on(mailer_config(broker, smtp), data);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let running = tokio::spawn(Arc::clone(&mailer).run(stopped));
    arrived(smtp, tag, EMAILS).await;
    let took = started.elapsed();
    stop.send(true).unwrap();
    running.await.unwrap();
    took
}

/// CPU seconds (user and system) the processes `pids` used so far.
fn cpu_seconds(pids: &[u32]) -> f64 {
    // /proc/<pid>/stat counts in clock ticks, 100 a second on Linux.
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|stat| {
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .collect();
            (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
        })
        .sum()
}

/// The CPU used so far by this process (the loops and the mailer), by the SMTP server, and
/// by the broker's processes.
#[derive(Clone, Copy)]
struct Cpu {
    bench: f64,
    smtp: f64,
    broker: f64,
}

impl Cpu {
    fn now(smtp: &SmtpServer, broker: &Broker) -> Cpu {
        Cpu {
            bench: cpu_seconds(&[std::process::id()]),
            smtp: cpu_seconds(smtp.pid().as_slice()),
            broker: cpu_seconds(&broker.processes()),
        }
    }

    /// Milliseconds of CPU per email since `before`.
    fn per_email_since(self, before: Cpu) -> String {
        let ms = |after: f64, before: f64| (after - before) * 1000.0 / EMAILS as f64;
        format!(
            "CPU ms/email: bench {:.2}, SMTP server {:.2}, broker {:.2}",
            ms(self.bench, before.bench),
            ms(self.smtp, before.smtp),
            ms(self.broker, before.broker)
        )
    }
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
    let composer = Arc::new(Composer::for_config(
        Arc::new(cfhost_store::FilesStore::new(data.path())),
        &MailerConfig {
            from: Some("no_reply@mx.bench".into()),
            hostname: Some("mx.bench".into()),
            node: Some("cfhost_mailer@mx.bench".into()),
            ..MailerConfig::default()
        },
    ));
    // Warm-up: the broker's queue, the server, the pools.
    through_mailer(&broker, &smtp, data.path(), "warm").await;
    let config = mailer_config(&broker, &smtp);
    let (mut ratios, mut overheads) = (Vec::new(), Vec::new());
    let mut best_rate: f64 = 0.0;
    let rate = |took: Duration| EMAILS as f64 / took.as_secs_f64();
    for round in 0..ROUNDS {
        let (lettre_tag, bare_tag, mail_tag) = (
            format!("lettre{round}"),
            format!("bare{round}"),
            format!("mail{round}"),
        );
        let before = Cpu::now(&smtp, &broker);
        let lettre = rate(bare_loop(&smtp, Sender::lettre(&smtp), &composer, &lettre_tag).await);
        let after_lettre = Cpu::now(&smtp, &broker);
        let transport = Sender::Mailer(Smtp::new(&config).unwrap());
        let transport = rate(bare_loop(&smtp, transport, &composer, &bare_tag).await);
        let after_transport = Cpu::now(&smtp, &broker);
        let mailer = rate(through_mailer(&broker, &smtp, data.path(), &mail_tag).await);
        let after_mailer = Cpu::now(&smtp, &broker);
        println!(
            "  bare lettre {}\n  bare transport {}\n  mailer {}",
            after_lettre.per_email_since(before),
            after_transport.per_email_since(after_lettre),
            after_mailer.per_email_since(after_transport)
        );
        best_rate = best_rate.max(mailer);
        let (ratio, overhead) = (mailer / lettre, mailer / transport);
        println!(
            "round {round}: bare lettre {lettre:.0} emails/s, bare mailer transport {transport:.0} emails/s, \
             mailer {mailer:.0} emails/s; mailer / lettre {ratio:.2}, mailer / its transport {overhead:.2}"
        );
        ratios.push(ratio);
        overheads.push(overhead);
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (median_ratio, median_overhead) = (median(&mut ratios), median(&mut overheads));
    println!("median ratio mailer / bare lettre: {median_ratio:.2} (target >= 0.8)");
    println!("median ratio mailer / a bare loop on its own transport: {median_overhead:.2}");

    for (name, sender) in [
        ("lettre's transport", Sender::lettre(&smtp)),
        (
            "the mailer's transport",
            Sender::Mailer(Smtp::new(&config).unwrap()),
        ),
    ] {
        let sends = bare_send_times(sender, &composer, "one").await;
        println!(
            "one bare send after another, {name}: p50 {:.1} ms, p99 {:.1} ms",
            percentile(&sends, 50.0),
            percentile(&sends, 99.0)
        );
    }

    // Latency at half the best rate: published one by one, each with its time.
    let rate = best_rate / 2.0;
    let mailer = mailer_on(mailer_config(&broker, &smtp), data.path());
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
        median_ratio >= 0.8,
        "the mailer reached {median_ratio:.2} of bare lettre's rate"
    );
}
