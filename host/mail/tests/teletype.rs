//! The emails as teletype renders them: the golden rendering of `missed_call` (KAZOO's text
//! part, character for character), the HTML part and subject with the mailer's escaping, a
//! `cf_notification` with an account template, and the MIME message.

use cfhost_mail::macros::{self, SystemParams};
use cfhost_mail::templates::{MISSED_CALL_HTML, MISSED_CALL_TEXT};
use cfhost_mail::{Composed, Composer, Email, MailerConfig, Notification};
use serde_json::{Value, json};
use std::sync::Arc;

const ACCOUNT: &str = "3fa85f6457174562b3fc2c963f66afa6";
/// The golden rendering's last line names KAZOO's node, which the notes do not give.
const GOLDEN_NODE_LINE: &str = "Sent from x3kSm1lq9yMRvbnQ1d2ZPw";

fn system() -> SystemParams {
    SystemParams {
        hostname: "mx.example.net".to_string(),
        node: "cfhost_mailer@mx.example.net".to_string(),
    }
}

/// The notes' golden input: caller `O'Brien <Pat>` at +14158867900, dialled (212) 555-0100,
/// 2024-03-30 09:25:00 UTC, hangup NO_ANSWER, account `Acme & Sons` in New York.
fn golden_payload() -> Value {
    json!({"App-Name": "callflow", "App-Version": "4.0.0", "Event-Category": "notification",
        "Event-Name": "missed_call", "Msg-ID": "6f1c", "Node": "cfhost@host",
        "Account-ID": ACCOUNT, "Call-ID": "golden-call", "Call-Bridged": false,
        "Message-Left": false, "Caller-ID-Name": "O'Brien <Pat>",
        "Caller-ID-Number": "+14158867900", "To-User": "2125550100",
        "To-Realm": "acme.sip.example.net", "Timestamp": 63879009900_i64,
        "Notify": {"Hangup-Cause": "NO_ANSWER"}, "To": ["b@example.com", "a@example.com"]})
}

fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let account = dir.path().join("accounts").join(ACCOUNT);
    std::fs::create_dir_all(&account).unwrap();
    std::fs::write(
        account.join("account.json"),
        json!({"name": "Acme & Sons", "realm": "acme.sip.example.net",
               "timezone": "America/New_York"})
        .to_string(),
    )
    .unwrap();
    dir
}

/// The account's template directory, created.
fn notifications_dir(data: &std::path::Path) -> std::path::PathBuf {
    let dir = data.join("accounts").join(ACCOUNT).join("notifications");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn compose(dir: &std::path::Path, payload: &Value) -> Email {
    let config = MailerConfig {
        from: Some("no_reply@mx.example.net".to_string()),
        hostname: Some(system().hostname),
        node: Some(system().node),
        allowed_senders: vec!["acme.example".to_string()],
        ..MailerConfig::default()
    };
    let store = Arc::new(cfhost_store::FilesStore::new(dir));
    let composer = Arc::new(Composer::for_config(store, &config));
    let notification = Notification::parse(payload.to_string().as_bytes()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match runtime.block_on(composer.compose(notification, 0)).unwrap() {
        Composed::Email(email) => *email,
        Composed::Disabled => panic!("disabled"),
    }
}

#[test]
fn the_templates_are_teletypes_verbatim() {
    assert_eq!(MISSED_CALL_TEXT.len(), 584);
    assert_eq!(MISSED_CALL_HTML.len(), 9008);
    assert!(MISSED_CALL_TEXT.ends_with("{{system.encoded_node}}\n"));
}

#[test]
fn a_missed_calls_text_part_matches_teletypes_golden_rendering() {
    let dir = data_dir();
    let email = compose(dir.path(), &golden_payload());
    let golden = include_str!("../testdata/missed_call.golden.text").replace(
        GOLDEN_NODE_LINE,
        &format!("Sent from {}", macros::encode(&system().node)),
    );
    assert_eq!(email.rendered.text.as_deref(), Some(golden.as_str()));
    // Not entity-escaped, unlike teletype's.
    assert_eq!(
        email.rendered.subject,
        "Missed call from O'Brien <Pat>((415) 886 - 7900)"
    );
    let html = email.rendered.html.unwrap();
    assert!(
        html.contains("phone number <b>(212) 555 - 0100</b>"),
        "{html}"
    );
    // Escaped, unlike teletype's: a caller ID name is not markup.
    assert!(
        html.contains("The caller was <b>O&#039;Brien &lt;Pat&gt;((415) 886 - 7900)</b>."),
        "{html}"
    );
    assert!(html.contains(">Saturday,March 30,2024 at 05:25</td>"));
    assert!(html.contains("You have a missed call from (415) 886 - 7900 -"));
    assert!(html.contains("Acme &amp; Sons"));
    assert_eq!(email.to, ["a@example.com", "b@example.com"]);
    assert_eq!(email.from, "no_reply@mx.example.net");
}

#[test]
fn the_message_is_multipart_with_one_to_line_cc_and_no_bcc_header() {
    let dir = data_dir();
    let notifications = notifications_dir(dir.path());
    std::fs::write(
        notifications.join("missed_call.json"),
        json!({"cc": {"type": "specified", "email_addresses": ["c@example.com"]},
               "bcc": {"type": "specified", "email_addresses": ["d@example.com"]}})
        .to_string(),
    )
    .unwrap();
    let email = compose(dir.path(), &golden_payload());
    assert_eq!(email.cc, ["c@example.com"]);
    assert_eq!(email.bcc, ["d@example.com"]);
    let message = email.to_message().unwrap();
    let envelope: Vec<String> = message
        .envelope()
        .to()
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(
        envelope,
        [
            "a@example.com",
            "b@example.com",
            "c@example.com",
            "d@example.com"
        ]
    );
    let eml = String::from_utf8(message.formatted()).unwrap();
    let head = eml.split("\r\n\r\n").next().unwrap();
    assert_eq!(head.matches("\r\nTo: ").count(), 1, "{head}");
    assert!(head.contains("To: a@example.com, b@example.com"), "{head}");
    assert!(head.contains("Cc: c@example.com"), "{head}");
    assert!(!head.contains("Bcc"), "{head}");
    assert!(head.contains("\r\nDate: "), "{head}");
    assert!(head.contains("X-Call-ID: golden-call"), "{head}");
    assert!(
        head.contains(&format!("Message-ID: {}", email.message_id)),
        "{head}"
    );
    assert!(eml.contains("multipart/alternative"), "{eml}");
    // Every line ends in CRLF.
    assert!(!eml.replace("\r\n", "").contains('\n'), "a bare LF");
}

#[test]
fn a_repeat_of_a_notification_has_the_same_message_id() {
    let dir = data_dir();
    let first = compose(dir.path(), &golden_payload());
    let again = compose(dir.path(), &golden_payload());
    assert_eq!(first.message_id, again.message_id);
    let mut other = golden_payload();
    other["Msg-ID"] = json!("another");
    assert_ne!(compose(dir.path(), &other).message_id, first.message_id);
    assert!(first.message_id.ends_with("@mx.example.net>"));
}

#[test]
fn a_cf_notification_renders_the_accounts_template_once() {
    let dir = data_dir();
    let notifications = notifications_dir(dir.path());
    std::fs::write(
        notifications.join("welcome.json"),
        json!({"subject": "Call {{call.call_id}} for {{account.name}}", "from": "desk@acme.example",
               "to": {"type": "original"}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        notifications.join("welcome.text"),
        "{% if \"sms\" in call.notification_media %}sms too{% endif %}\n\
         Comments: {{call.comments}}\nAt {{date_called.local|date:\"H:i\"}}\n",
    )
    .unwrap();
    let payload = json!({"App-Name": "callflow", "App-Version": "4.0.0",
        "Event-Category": "notification", "Event-Name": "cf_notification", "Msg-ID": "n1",
        "Account-ID": ACCOUNT, "Template-ID": "welcome", "Call-ID": "c9",
        "Comments": "{{ system.node }}", "Notification-Media": ["email", "sms"],
        "Timestamp": 63879009900_i64, "To": ["x@example.com"]});
    let email = compose(dir.path(), &payload);
    assert_eq!(email.rendered.subject, "Call c9 for Acme & Sons");
    // Template syntax in a value stays text (teletype renders twice).
    assert_eq!(
        email.rendered.text.as_deref(),
        Some("sms too\nComments: {{ system.node }}\nAt 05:25\n")
    );
    assert_eq!(email.rendered.html, None);
    assert_eq!(email.from, "desk@acme.example");
}

#[test]
fn a_notifications_own_subject_is_text_not_a_template() {
    let dir = data_dir();
    let mut payload = golden_payload();
    payload["Subject"] =
        json!("Urgent: {{ system.node }} {% for x in \"0123456789\" %}x{% endfor %}\nnow");
    let email = compose(dir.path(), &payload);
    assert_eq!(
        email.rendered.subject,
        "Urgent: {{ system.node }} {% for x in \"0123456789\" %}x{% endfor %} now"
    );
}
