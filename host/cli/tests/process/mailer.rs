//! `cfhost mailer` as a process, against a real RabbitMQ and a real SMTP server (aiosmtpd):
//! the seed's calls become teletype's emails, failures are dead-lettered or retried as they
//! should be, and no email is lost or sent twice when the SMTP server goes away, the mailer
//! is killed, or two mailers share the queue; STARTTLS, SMTPS and AUTH work against servers
//! that require them.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cfhost_tests::broker::{Binding, Broker, Consumer, publish};
use cfhost_tests::postgres::Database;
use cfhost_tests::repo_root;
use cfhost_tests::smtp::{Mail, ServerTls, SmtpServer};
use serde_json::{Value, json};

use crate::serve::collect_stderr;
use cfhost_tests::copy_dir;

const WAIT: Duration = Duration::from_secs(60);
const MISSED_CALL: &str = "notifications.sip.missed_call";
const CF_NOTIFICATION: &str = "notifications.account.cf_notification";

/// A data directory (the examples') and a configuration for the broker and SMTP server.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(broker: &Broker, smtp: &SmtpServer, extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo_root().join("examples/data"), &dir.path().join("data"));
        std::fs::write(
            dir.path().join("cfhost.toml"),
            format!(
                "[mailer]\namqp = \"{}\"\nsmtp = \"{}\"\nhostname = \"mx.test\"\n\
                 retry_initial_ms = 200\nretry_max_ms = 1000\nsend_timeout_ms = 3000\n{}\n{extra}",
                broker.url(),
                smtp.url(),
                // Retries enough to ride out the SMTP server's 20 s away, unless the test says.
                if extra.contains("max_attempts") {
                    ""
                } else {
                    "max_attempts = 60"
                },
            ),
        )
        .unwrap();
        Setup { dir }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("cfhost.toml")
    }

    /// `cfhost mailer` with `args` after the configuration and data.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cfhost"));
        command
            .arg("mailer")
            .arg("--config")
            .arg(self.config())
            .arg("--data")
            .arg(self.data())
            .args(args)
            .env("RUST_LOG", "error,cfhost_mail=info");
        command
    }

    /// The dead letters once there are `count` (up to [`WAIT`]).
    fn wait_for_dead_letters(&self, count: usize) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let letters = self.dead_letters();
            if letters.len() >= count || started.elapsed() > WAIT {
                return letters;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The dead letters, as `cfhost mailer dead-letters list` prints them.
    fn dead_letters(&self) -> Vec<Value> {
        let out = self.command(&["dead-letters", "list"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

/// A running mailer, killed when dropped.
struct MailerProcess {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl MailerProcess {
    fn start(setup: &Setup) -> MailerProcess {
        let mut child = setup
            .command(&[])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cfhost mailer starts");
        let log = collect_stderr(&mut child);
        let process = MailerProcess { child, log };
        process.wait_for_log("mailer: consuming");
        process
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_for_log(&self, text: &str) {
        let started = Instant::now();
        while !self.log().contains(text) {
            assert!(
                started.elapsed() < WAIT,
                "never logged `{text}`:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the summary it logs at exit.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "the mailer exited {status}:\n{}",
            self.log()
        );
        std::thread::sleep(Duration::from_millis(100));
        self.log()
    }
}

impl Drop for MailerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A missed call of `account` for `to`, with its own Msg-ID and Call-ID.
fn missed_call(account: &str, n: usize, to: &[&str]) -> Value {
    json!({"App-Name": "callflow", "App-Version": "4.0.0", "Event-Category": "notification",
        "Event-Name": "missed_call", "Msg-ID": format!("msg-{n}"), "Node": "cfhost@test",
        "Account-ID": account, "Call-ID": format!("call-{n}"), "Call-Bridged": false,
        "Message-Left": false, "Caller-ID-Name": "Jane Caller",
        "Caller-ID-Number": "+15550001234", "To-User": "+15554441111",
        "Timestamp": 63879009900_i64, "Notify": {"Hangup-Cause": "NO_ANSWER"}, "To": to})
}

/// `count` missed calls of `acme-missed`, the `n`th to `to(n)`.
fn missed_calls(count: usize, to: impl Fn(usize) -> String) -> Vec<(&'static str, Value)> {
    (0..count)
        .map(|n| (MISSED_CALL, missed_call("acme-missed", n, &[&to(n)])))
        .collect()
}

/// Counts the emails received per Message-ID.
fn by_message_id(mails: &[Mail]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for mail in mails {
        let id = mail.header("Message-ID").expect("a Message-ID");
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// `cfhost simulate` of the examples, publishing to `broker` as the host does.
fn simulate(setup: &Setup, broker: &Broker) {
    let out = Command::new(env!("CARGO_BIN_EXE_cfhost"))
        .args(["simulate", "--scenario"])
        .arg(repo_root().join("examples/scenarios.json"))
        .arg("--data")
        .arg(setup.data())
        .args(["--notifications", &broker.url()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("every notification was confirmed"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_calls_become_teletypes_emails_and_kazoo_gets_its_replies() {
    let broker = Broker::start().await;
    let smtp = SmtpServer::start();
    let setup = Setup::new(&broker, &smtp, "");
    // Published before any mailer runs: the host's sink declared the queue, so they wait.
    simulate(&setup, &broker);
    // A KAZOO publisher's reply queue on `targeted`, there before the mailer connects.
    let replies = Consumer::start_bound(broker.url(), Binding::targeted("kazoo-worker-1")).await;
    let mailer = MailerProcess::start(&setup);
    let mails = smtp.wait_for(2, WAIT);
    assert_eq!(mails.len(), 2, "{}", mailer.log());
    let missed = mails
        .iter()
        .find(|m| m.subject.starts_with("Missed call"))
        .expect("the missed call's email");
    assert_eq!(
        missed.subject,
        "Missed call from Jane Caller((555) 000 - 1234)"
    );
    let mut to = missed.rcpt_tos.clone();
    to.sort();
    assert_eq!(
        to,
        [
            "john@doe.com",
            "office.manager@example.com",
            "support@test.com"
        ],
        "one email for the recipient set"
    );
    assert_eq!(missed.mail_from, "no_reply@mx.test");
    let text = missed.part("text/plain").unwrap().replace("\r\n", "\n");
    assert!(
        text.contains("A call was received on phone number (555) 444 - 1111\n"),
        "{text}"
    );
    assert!(
        text.contains("    Caller: Jane Caller((555) 000 - 1234)\n"),
        "{text}"
    );
    assert!(text.contains("    Account Name: acme-missed\n"), "{text}");
    let html = missed.part("text/html").unwrap();
    assert!(html.contains("The caller was <b>Jane Caller((555) 000 - 1234)</b>."));
    assert_eq!(missed.header("X-Call-ID").as_deref(), Some("call-1"));
    let custom = mails
        .iter()
        .find(|m| m.subject.starts_with("Call from"))
        .expect("the custom notification's email, from the account's template");
    assert_eq!(custom.mail_from, "no_reply@mx.test");
    assert_eq!(custom.header("From").as_deref(), Some("no_reply@mx.test"));
    assert!(
        custom
            .part("text/plain")
            .unwrap()
            .contains("Account: acme-notify")
    );

    // As teletype does for a KAZOO publisher waiting on `targeted`.
    let mut asked = missed_call("acme-missed", 7, &["a@example.com"]);
    asked["Server-ID"] = json!("kazoo-worker-1");
    publish(&broker.url(), &[(MISSED_CALL, asked)])
        .await
        .unwrap();
    let got = replies.wait_for(2, WAIT).await;
    let statuses: Vec<&str> = got
        .iter()
        .map(|r| r.payload["Status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["pending", "completed"], "{got:?}");
    assert!(got.iter().all(|r| r.payload["Msg-ID"] == "msg-7"));
    assert_eq!(got[1].payload["Event-Name"], "notify_update");
    assert_eq!(smtp.wait_for(3, WAIT).len(), 3);
    let summary = mailer.stop();
    assert!(summary.contains("missed_call sent=2"), "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_template_is_dead_lettered_a_disabled_one_sends_nothing_and_requeue_works() {
    let broker = Broker::start().await;
    let smtp = SmtpServer::start();
    let setup = Setup::new(&broker, &smtp, "");
    let notifications = setup.data().join("accounts/acme-missed/notifications");
    std::fs::create_dir_all(&notifications).unwrap();
    std::fs::write(
        notifications.join("missed_call.json"),
        r#"{"enabled": false}"#,
    )
    .unwrap();
    let mailer = MailerProcess::start(&setup);
    let cf = json!({"App-Name": "callflow", "App-Version": "4.0.0",
        "Event-Category": "notification", "Event-Name": "cf_notification", "Msg-ID": "cf-1",
        "Account-ID": "acme-notify", "Template-ID": "not_there", "Call-ID": "c-1",
        "To": ["x@example.com"]});
    publish(
        &broker.url(),
        &[
            (CF_NOTIFICATION, cf),
            (
                MISSED_CALL,
                missed_call("acme-missed", 1, &["a@example.com"]),
            ),
            (
                MISSED_CALL,
                missed_call("acme-notify", 2, &["b@example.com"]),
            ),
        ],
    )
    .await
    .unwrap();
    let mails = smtp.wait_for(1, WAIT);
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].rcpt_tos,
        ["b@example.com"],
        "the disabled account sent nothing"
    );
    let letters = setup.wait_for_dead_letters(1);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("has no template `not_there`"),
        "{letters:?}"
    );
    assert_eq!(letters[0]["routing_key"], CF_NOTIFICATION);
    // Listing leaves them there.
    assert_eq!(setup.dead_letters().len(), 1);
    // Once the template exists, a requeue delivers it.
    let custom = setup.data().join("accounts/acme-notify/notifications");
    std::fs::copy(
        custom.join("my_custom_template.json"),
        custom.join("not_there.json"),
    )
    .unwrap();
    std::fs::copy(
        custom.join("my_custom_template.text"),
        custom.join("not_there.text"),
    )
    .unwrap();
    let out = setup
        .command(&["dead-letters", "requeue"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mails = smtp.wait_for(2, WAIT);
    assert_eq!(mails.len(), 2, "{}", mailer.log());
    assert_eq!(mails[1].rcpt_tos, ["x@example.com"]);
    assert!(setup.dead_letters().is_empty());
    let summary = mailer.stop();
    assert!(summary.contains("skipped=1"), "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_451_is_retried_and_delivered_once_and_a_550_is_dead_lettered_with_the_servers_text() {
    let broker = Broker::start().await;
    let smtp = SmtpServer::start();
    let setup = Setup::new(&broker, &smtp, "");
    let mailer = MailerProcess::start(&setup);
    smtp.reply_next(&["451 4.3.0 try again later"]);
    publish(
        &broker.url(),
        &[(
            MISSED_CALL,
            missed_call("acme-missed", 1, &["a@example.com"]),
        )],
    )
    .await
    .unwrap();
    let mails = smtp.wait_for(1, WAIT);
    assert_eq!(mails.len(), 1);
    publish(
        &broker.url(),
        &[(
            MISSED_CALL,
            missed_call("acme-missed", 2, &["reject@example.com"]),
        )],
    )
    .await
    .unwrap();
    let letters = setup.wait_for_dead_letters(1);
    assert_eq!(letters.len(), 1);
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("550") && reason.contains("Recipient address rejected"),
        "{reason}"
    );
    assert_eq!(letters[0]["attempts"], 1, "a 550 is not retried");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.received().len(), 1, "delivered once");
    let summary = mailer.stop();
    assert!(
        summary.contains("missed_call sent=1 retried=1 dead_lettered=1"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_that_lasts_past_max_attempts_is_dead_lettered_with_the_reason() {
    let broker = Broker::start().await;
    let smtp = SmtpServer::start();
    let setup = Setup::new(&broker, &smtp, "max_attempts = 3\n");
    let mailer = MailerProcess::start(&setup);
    smtp.reply_next(&[
        "451 4.3.0 busy",
        "451 4.3.0 busy",
        "451 4.3.0 still busy",
        "",
    ]);
    publish(
        &broker.url(),
        &missed_calls(1, |_| "a@example.com".to_string()),
    )
    .await
    .unwrap();
    let letters = setup.wait_for_dead_letters(1);
    assert_eq!(letters.len(), 1, "{}", mailer.log());
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("still busy") && reason.contains("after 3 attempts"),
        "{reason}"
    );
    assert_eq!(letters[0]["attempts"], 3);
    assert!(smtp.received().is_empty());
    let summary = mailer.stop();
    assert!(
        summary.contains("missed_call sent=0 retried=2 dead_lettered=1"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_and_smtps_carry_the_email_and_certificates_are_checked_unless_told_not_to() {
    let broker = Broker::start().await;
    let one = |n| {
        [(
            MISSED_CALL,
            missed_call("acme-missed", n, &["a@example.com"]),
        )]
    };
    // Each mailer in turn consumes the one queue: what it leaves is the next one's.
    let starttls = SmtpServer::start_tls(ServerTls::StartTls);
    let setup = Setup::new(
        &broker,
        &starttls,
        "starttls = \"required\"\naccept_invalid_certs = true\n",
    );
    let mailer = MailerProcess::start(&setup);
    publish(&broker.url(), &one(1)).await.unwrap();
    assert_eq!(starttls.wait_for(1, WAIT).len(), 1, "{}", mailer.log());
    mailer.stop();

    // The server requires STARTTLS: a mailer told never to use it gets its 530, for good.
    let plain = Setup::new(&broker, &starttls, "starttls = \"never\"\n");
    let mailer = MailerProcess::start(&plain);
    publish(&broker.url(), &one(2)).await.unwrap();
    let letters = plain.wait_for_dead_letters(1);
    assert_eq!(letters.len(), 1, "{}", mailer.log());
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(reason.contains("530"), "{reason}");
    mailer.stop();

    let smtps = SmtpServer::start_tls(ServerTls::Implicit);
    assert!(smtps.url().starts_with("smtps://"));
    let setup = Setup::new(&broker, &smtps, "accept_invalid_certs = true\n");
    let mailer = MailerProcess::start(&setup);
    publish(&broker.url(), &one(3)).await.unwrap();
    let mails = smtps.wait_for(1, WAIT);
    assert_eq!(mails.len(), 1, "{}", mailer.log());
    assert_eq!(mails[0].header("X-Call-ID").as_deref(), Some("call-3"));
    mailer.stop();

    // Without accept_invalid_certs the self-signed certificate is refused: no email.
    let strict = Setup::new(&broker, &smtps, "max_attempts = 2\n");
    let mailer = MailerProcess::start(&strict);
    publish(&broker.url(), &one(4)).await.unwrap();
    let letters = strict.wait_for_dead_letters(2);
    assert_eq!(letters.len(), 2, "{}", mailer.log());
    let reason = letters[1]["reason"].as_str().unwrap();
    assert!(
        reason.contains("certificate") && reason.contains("after 2 attempts"),
        "{reason}"
    );
    assert_eq!(smtps.received().len(), 1);
    assert_eq!(starttls.received().len(), 1);
    mailer.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_log_in_and_a_wrong_password_or_none_is_dead_lettered_for_good() {
    let broker = Broker::start().await;
    let smtp = SmtpServer::start_auth("mailer", "s3cret");
    let one = |n| {
        [(
            MISSED_CALL,
            missed_call("acme-missed", n, &["a@example.com"]),
        )]
    };
    let cases = [
        ("username = \"mailer\"\npassword = \"s3cret\"\n", None),
        ("username = \"mailer\"\npassword = \"wrong\"\n", Some("535")),
        ("", Some("530")),
    ];
    for (n, (credentials, refused)) in cases.into_iter().enumerate() {
        let setup = Setup::new(&broker, &smtp, credentials);
        let mailer = MailerProcess::start(&setup);
        publish(&broker.url(), &one(n)).await.unwrap();
        match refused {
            None => assert_eq!(smtp.wait_for(1, WAIT).len(), 1, "{}", mailer.log()),
            Some(code) => {
                let letters = setup.wait_for_dead_letters(n);
                assert_eq!(letters.len(), n, "{}", mailer.log());
                let reason = letters[n - 1]["reason"].as_str().unwrap();
                assert!(reason.contains(code), "{reason}");
                assert_eq!(letters[n - 1]["attempts"], 1, "not retried: {reason}");
            }
        }
        mailer.stop();
    }
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_smtp_server_down_for_20s_1000_notifications_are_all_delivered_once() {
    let broker = Broker::start().await;
    let mut smtp = SmtpServer::start();
    let setup = Setup::new(&broker, &smtp, "");
    let mailer = MailerProcess::start(&setup);
    smtp.stop();
    let messages = missed_calls(1000, |n| format!("u{n}@example.com"));
    publish(&broker.url(), &messages).await.unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(smtp.received().is_empty());
    smtp.resume();
    let mails = smtp.wait_for(1000, Duration::from_secs(120));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mails = if mails.len() >= 1000 {
        smtp.received()
    } else {
        mails
    };
    let ids = by_message_id(&mails);
    assert_eq!(
        ids.len(),
        1000,
        "every notification delivered:\n{}",
        mailer.log()
    );
    assert_eq!(mails.len(), 1000, "none twice");
    let recipients: HashSet<String> = mails.iter().flat_map(|m| m.rcpt_tos.clone()).collect();
    assert_eq!(recipients.len(), 1000);
    let summary = mailer.stop();
    assert!(summary.contains("missed_call sent=1000"), "{summary}");
    assert!(!summary.contains("dead_lettered=1"), "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mailer_killed_mid_batch_and_restarted_delivers_every_email() {
    let broker = Broker::start().await;
    let smtp = SmtpServer::start();
    let setup = Setup::new(&broker, &smtp, "");
    let messages = missed_calls(1000, |_| "a@example.com".to_string());
    publish(&broker.url(), &messages).await.unwrap();
    let mut first = MailerProcess::start(&setup);
    let started = Instant::now();
    while smtp.received().len() < 50 {
        assert!(
            started.elapsed() < WAIT,
            "nothing delivered:\n{}",
            first.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let at_kill = smtp.received().len();
    assert!(at_kill < 1000, "the batch was over before the kill");
    let second = MailerProcess::start(&setup);
    let mails = smtp.wait_for(1000, WAIT);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ids = by_message_id(&smtp.received());
    assert_eq!(ids.len(), 1000, "every email delivered:\n{}", second.log());
    // A repeat can only be one in flight at the kill, with the same Message-ID.
    let repeats: usize = ids.values().map(|n| n - 1).sum();
    assert!(repeats <= 64, "{repeats} repeats");
    assert!(mails.len() >= 1000);
    let summary = second.stop();
    assert!(summary.contains("dead_lettered=0"), "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_mailers_on_one_queue_send_each_email_once() {
    let broker = Broker::start().await;
    let smtp = SmtpServer::start();
    let setup = Setup::new(&broker, &smtp, "prefetch = 8\n");
    let a = MailerProcess::start(&setup);
    let b = MailerProcess::start(&setup);
    let messages = missed_calls(300, |_| "a@example.com".to_string());
    publish(&broker.url(), &messages).await.unwrap();
    smtp.wait_for(300, WAIT);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mails = smtp.received();
    assert_eq!(by_message_id(&mails).len(), 300);
    assert_eq!(mails.len(), 300, "each email once");
    let sent = |summary: &str| -> u64 {
        let at = summary.rfind("missed_call sent=").expect("a summary") + "missed_call sent=".len();
        summary[at..].split(' ').next().unwrap().parse().unwrap()
    };
    let (a, b) = (sent(&a.stop()), sent(&b.stop()));
    assert_eq!(a + b, 300);
    assert!(a > 0 && b > 0, "both mailers took a share: {a} and {b}");
}

/// A count of `kind` in a mailer's summary: `missed_call sent=3 ... duplicates=1`.
fn counted(summary: &str, kind: &str) -> u64 {
    let key = format!("{kind}=");
    let line = &summary[summary.rfind("missed_call sent=").expect("a summary")..];
    let at = line.find(&key).expect("the count") + key.len();
    line[at..]
        .split([' ', ';'])
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_mailers_on_two_data_directories_and_one_database_send_each_email_once() {
    let database = Database::start().await;
    let broker = Broker::start().await;
    let smtp = SmtpServer::start();
    // The accounts, and a missed_call template of acme-missed's own, in the database only.
    let seed = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/data"), seed.path());
    let templates = seed.path().join("accounts/acme-missed/notifications");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(
        templates.join("missed_call.json"),
        r#"{"subject": "Shared: missed call from {{caller_id.name_number}}"}"#,
    )
    .unwrap();
    let import =
        crate::store::store_command(&database.url(), &["import", seed.path().to_str().unwrap()]);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let extra = format!("prefetch = 8\n[store]\nurl = \"{}\"\n", database.url());
    let (a, b) = (
        Setup::new(&broker, &smtp, &extra),
        Setup::new(&broker, &smtp, &extra),
    );
    for setup in [&a, &b] {
        std::fs::remove_dir_all(setup.data().join("accounts")).unwrap();
    }
    let (one, two) = (MailerProcess::start(&a), MailerProcess::start(&b));
    // Each notification twice, the copies one after the other: both mailers take copies of
    // the same notification at the same time.
    let messages: Vec<(&str, Value)> = (0..100)
        .flat_map(|n| {
            let call = missed_call("acme-missed", n, &["a@example.com"]);
            [(MISSED_CALL, call.clone()), (MISSED_CALL, call)]
        })
        .collect();
    publish(&broker.url(), &messages).await.unwrap();
    smtp.wait_for(100, WAIT);
    // A copy waiting on the other mailer's claim asks again within a second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = smtp.received();
    assert_eq!(by_message_id(&mails).len(), 100);
    assert_eq!(mails.len(), 100, "each email once");
    assert!(
        mails.iter().all(|m| m
            .subject
            .starts_with("Shared: missed call from Jane Caller")),
        "the account's template, read from the database: {:?}",
        mails[0].subject
    );
    let (one, two) = (one.stop(), two.stop());
    let sent = [counted(&one, "sent"), counted(&two, "sent")];
    let duplicates = [counted(&one, "duplicates"), counted(&two, "duplicates")];
    assert_eq!(sent[0] + sent[1], 100, "{one}\n{two}");
    assert_eq!(duplicates[0] + duplicates[1], 100, "{one}\n{two}");
    assert!(sent[0] > 0 && sent[1] > 0, "both took a share: {sent:?}");
    for setup in [&a, &b] {
        assert!(
            !setup.data().join("mailer/sent").exists(),
            "no sent log of its own beside the database's claims"
        );
    }
    let client = database.connect().await.unwrap();
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE sent), count(*) FROM cfhost_mailer_sent",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (100, 100));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_database_stopped_notifications_wait_and_are_sent_once_it_returns() {
    let mut database = Database::start().await;
    let broker = Broker::start().await;
    let smtp = SmtpServer::start();
    let seed = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/data"), seed.path());
    let import =
        crate::store::store_command(&database.url(), &["import", seed.path().to_str().unwrap()]);
    assert!(import.status.success());
    let extra = format!("[store]\nurl = \"{}\"\ntimeout_secs = 1\n", database.url());
    let setup = Setup::new(&broker, &smtp, &extra);
    let mailer = MailerProcess::start(&setup);
    database.stop();
    publish(
        &broker.url(),
        &missed_calls(20, |n| format!("r{n}@example.com")),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        smtp.received().is_empty(),
        "nothing is sent without its claim"
    );
    assert!(mailer.log().contains("is unreachable"), "{}", mailer.log());
    database.resume().await;
    let mails = smtp.wait_for(20, WAIT);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(by_message_id(&smtp.received()).len(), 20);
    assert_eq!(mails.len(), 20, "each once");
    let summary = mailer.stop();
    assert_eq!(counted(&summary, "sent"), 20, "{summary}");
    assert_eq!(counted(&summary, "dead_lettered"), 0, "{summary}");
}

/// A template body whose loops run `10^depth` times, printing nothing: past any fuel.
fn runaway_loops(depth: usize) -> String {
    let open = "{% for x in \"0123456789\" %}".repeat(depth);
    let close = "{% endfor %}".repeat(depth);
    format!("{open}{close}\n")
}

/// Writes `account`'s `missed_call` template files, as another tool might (the API's checks
/// are not on this path).
fn write_template(setup: &Setup, account: &str, document: &Value, text: &str) {
    let dir = setup
        .data()
        .join("accounts")
        .join(account)
        .join("notifications");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("missed_call.json"), document.to_string()).unwrap();
    std::fs::write(dir.join("missed_call.text"), text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runaway_template_is_dead_lettered_at_once_while_other_tenants_emails_go_out() {
    let broker = Broker::start().await;
    let smtp = SmtpServer::start();
    let setup = Setup::new(&broker, &smtp, "");
    write_template(
        &setup,
        "acme-missed",
        &json!({"subject": "Missed"}),
        &runaway_loops(8),
    );
    let mailer = MailerProcess::start(&setup);
    let mut messages: Vec<(&str, Value)> = (0..2)
        .map(|n| {
            (
                MISSED_CALL,
                missed_call("acme-missed", n, &["a@example.com"]),
            )
        })
        .collect();
    messages.extend((10..13).map(|n| {
        (
            MISSED_CALL,
            missed_call("acme-notify", n, &["b@example.com"]),
        )
    }));
    publish(&broker.url(), &messages).await.unwrap();
    let mails = smtp.wait_for(3, WAIT);
    assert_eq!(mails.len(), 3, "{}", mailer.log());
    assert!(mails.iter().all(|m| m.rcpt_tos == ["b@example.com"]));
    let letters = setup.wait_for_dead_letters(2);
    assert_eq!(letters.len(), 2, "{}", mailer.log());
    for letter in &letters {
        let reason = letter["reason"].as_str().unwrap();
        assert!(reason.contains("render_fuel"), "{reason}");
        assert_eq!(letter["attempts"], 0, "never retried: {reason}");
    }
    let stopping = Instant::now();
    let log = mailer.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "SIGTERM took long"
    );
    // A normal start against a broker without KAZOO's exchanges logs no error.
    assert!(!log.contains("ERROR"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rendering_past_its_time_is_dead_lettered_and_sigterm_is_answered() {
    let broker = Broker::start().await;
    let smtp = SmtpServer::start();
    // Fuel enough for minutes: the time bound is the one that holds.
    let setup = Setup::new(
        &broker,
        &smtp,
        "render_fuel = 100000000000\nrender_timeout_ms = 400\n",
    );
    write_template(
        &setup,
        "acme-missed",
        &json!({"subject": "Missed"}),
        &runaway_loops(12),
    );
    let mailer = MailerProcess::start(&setup);
    publish(
        &broker.url(),
        &[
            (
                MISSED_CALL,
                missed_call("acme-missed", 1, &["a@example.com"]),
            ),
            (
                MISSED_CALL,
                missed_call("acme-notify", 2, &["b@example.com"]),
            ),
        ],
    )
    .await
    .unwrap();
    let letters = setup.wait_for_dead_letters(1);
    assert_eq!(letters.len(), 1, "{}", mailer.log());
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(reason.contains("render_timeout_ms (400 ms)"), "{reason}");
    let mails = smtp.wait_for(1, WAIT);
    assert_eq!(mails.len(), 1, "{}", mailer.log());
    assert_eq!(mails[0].rcpt_tos, ["b@example.com"]);
    // The rendering still spins on a blocking thread; the stop does not wait for it.
    let stopping = Instant::now();
    mailer.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?}",
        stopping.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accounts_email_goes_from_an_allowed_sender_to_a_bounded_set_of_usable_addresses() {
    let broker = Broker::start().await;
    let smtp = SmtpServer::start();
    let setup = Setup::new(
        &broker,
        &smtp,
        "from = \"Alerts <alerts@operator.test>\"\nallowed_senders = [\"acme-notify.example\"]\n\
         max_recipients = 5\n",
    );
    // A bank's address as the sender, and more Bcc than the operator allows.
    let many: Vec<String> = (0..6).map(|n| format!("bulk{n}@example.com")).collect();
    write_template(
        &setup,
        "acme-missed",
        &json!({"from": "Security <security@bank.example>",
                "bcc": {"type": "specified", "email_addresses": many}}),
        "Hello\n",
    );
    write_template(
        &setup,
        "acme-notify",
        &json!({"from": "desk@acme-notify.example"}),
        "Hello\n",
    );
    let mailer = MailerProcess::start(&setup);
    let phishing = missed_call("acme-missed", 1, &["a@example.com"]);
    let mut forged = missed_call("acme-missed", 2, &["a@example.com"]);
    forged["From"] = json!("ceo@bank.example");
    let allowed = missed_call(
        "acme-notify",
        3,
        &["x@[127.0.0.1]", "c@example.com", "d@example.com"],
    );
    publish(
        &broker.url(),
        &[(MISSED_CALL, phishing), (MISSED_CALL, allowed)],
    )
    .await
    .unwrap();
    // Seven recipients in all: past max_recipients, so not sent.
    let letters = setup.wait_for_dead_letters(1);
    assert_eq!(letters.len(), 1, "{}", mailer.log());
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("past [mailer] max_recipients (5)"),
        "{reason}"
    );
    // The allowed sender is kept; the address lettre cannot use is left out, not the email.
    let mails = smtp.wait_for(1, WAIT);
    assert_eq!(mails.len(), 1, "{}", mailer.log());
    let mut to = mails[0].rcpt_tos.clone();
    to.sort();
    assert_eq!(to, ["c@example.com", "d@example.com"]);
    assert_eq!(mails[0].mail_from, "alerts@operator.test");
    assert_eq!(
        mails[0].header("From").as_deref(),
        Some("desk@acme-notify.example")
    );
    assert!(mailer.log().contains("left out recipient `x@[127.0.0.1]`"));

    // Fewer Bcc: the email goes, from the operator's sender, not the bank's.
    write_template(
        &setup,
        "acme-missed",
        &json!({"from": "Security <security@bank.example>"}),
        "Hello\n",
    );
    publish(&broker.url(), &[(MISSED_CALL, forged)])
        .await
        .unwrap();
    let mails = smtp.wait_for(2, WAIT);
    assert_eq!(mails.len(), 2, "{}", mailer.log());
    assert_eq!(mails[1].rcpt_tos, ["a@example.com"]);
    assert_eq!(mails[1].mail_from, "alerts@operator.test");
    assert_eq!(
        mails[1].header("From").as_deref(),
        Some("Alerts <alerts@operator.test>")
    );
    assert!(
        mailer
            .log()
            .contains("`ceo@bank.example` is not an allowed sender"),
        "{}",
        mailer.log()
    );
    mailer.stop();
}
