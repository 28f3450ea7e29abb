//! Property-based fuzzing of the HTTP API's bodies and path values against a running `cfhost
//! serve`: calls, callflow documents, users, devices, voicemail boxes, email templates and
//! their previews (stored and unsaved), and module uploads, made of arbitrary JSON, mutated
//! good bodies and raw bytes, with the operator's token so that every body is read. Whatever
//! comes in, the answer is a client error or a success, every error is `{"error": "..."}`, no
//! answer names a file of the server, and the server neither panics nor stops answering.

use cfhost_tests::fuzz_runner;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::serve::{OPERATOR, Server, send, start_with};

/// Field names the API reads, so that arbitrary objects reach past the first check.
const KEYS: &[&str] = &[
    "to",
    "caller_id_number",
    "caller_id_name",
    "behaviour",
    "bridge",
    "voicemail",
    "start_time",
    "id",
    "numbers",
    "flow",
    "module",
    "data",
    "children",
    "_",
    "recipients",
    "outcome",
    "subject",
    "text",
    "html",
    "call",
    "enabled",
    "type",
    "email_addresses",
    "template",
    "email",
    "first_name",
    "owner_id",
    "sip",
    "username",
    "password",
    "name",
    "mailbox",
];

/// Strings with the shapes that break parsers: paths, escapes, long runs, odd code points.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_]{0,10}",
        1 => Just("../../etc/passwd".to_string()),
        1 => Just("answer".to_string()),
        1 => Just("no_answer".to_string()),
        1 => Just("test_fixture".to_string()),
        1 => "\\PC{0,20}",
        1 => "[0-9+]{0,300}",
    ]
}

/// Arbitrary JSON, its objects keyed mostly by the API's own field names.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        let key = prop_oneof![
            6 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_string),
            1 => text(),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A good body with one field replaced by arbitrary JSON, or cut at a random byte.
fn mutated(good: Value) -> impl Strategy<Value = Vec<u8>> {
    let fields: Vec<String> = good.as_object().unwrap().keys().cloned().collect();
    (
        prop::sample::select(fields),
        value(),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(move |(field, replacement, at, cut)| {
            let mut body = good.clone();
            body[&field] = replacement;
            let mut bytes = body.to_string().into_bytes();
            if cut {
                bytes.truncate(at.index(bytes.len() + 1));
            }
            bytes
        })
}

/// A body: arbitrary JSON, a mutated good body, or raw bytes.
fn body(good: Value) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => value().prop_map(|v| v.to_string().into_bytes()),
        3 => mutated(good),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// A path segment: plain names, names the API refuses, and path tricks (percent-encoded).
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,8}",
        1 => Just("acme-missed".to_string()),
        1 => Just("..".to_string()),
        1 => Just("%2e%2e%2fetc".to_string()),
        1 => Just("a%00b".to_string()),
        1 => Just("%ff%fe".to_string()),
        1 => "[a-z]{255,300}",
    ]
}

/// Checks one answer: a success or a client error, errors as `{"error": "..."}`, no path of
/// the server's in it.
fn check(server: &Server, what: &str, status: u16, answer: &Value) -> Result<(), TestCaseError> {
    prop_assert!(
        (200..500).contains(&status),
        "{what}: status {status}: {answer}"
    );
    if status >= 400 {
        prop_assert!(
            answer["error"].is_string(),
            "{what}: an error that is not {{\"error\"}}: {status} {answer}"
        );
    }
    let root = server.dir.path().to_string_lossy().to_string();
    prop_assert!(
        !answer.to_string().contains(&root),
        "{what}: the answer names a server path: {answer}"
    );
    Ok(())
}

/// Sends `body` with the operator's token and [`check`]s the answer.
fn send_checked(
    server: &Server,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(), TestCaseError> {
    let (status, answer) = send(
        server.port,
        method,
        path,
        Some(OPERATOR),
        content_type,
        body,
    );
    check(server, path, status, &answer)
}

#[test]
fn no_body_or_path_value_makes_the_api_fail_panic_or_leak_a_server_path() {
    let server = start_with("");
    let call = json!({"to": "+15554441111", "caller_id_number": "+15550001234",
        "behaviour": {"bridge": "no_answer", "voicemail": "hangup"}});
    fuzz_runner(400)
        .run(&(segment(), body(call)), |(account, body)| {
            for account in [account.as_str(), "acme-missed"] {
                let path = format!("/v1/accounts/{account}/calls");
                send_checked(&server, "POST", &path, "application/json", &body)?;
            }
            Ok(())
        })
        .unwrap();

    let callflow = json!({"id": "fuzzed", "numbers": ["4242"],
        "flow": {"module": "test_fixture", "data": {"outcome": "continue"}}});
    fuzz_runner(400)
        .run(&(segment(), body(callflow)), |(id, body)| {
            for id in [id.as_str(), "fuzzed"] {
                let path = format!("/v1/accounts/acme-missed/callflows/{id}");
                send_checked(&server, "PUT", &path, "application/json", &body)?;
            }
            Ok(())
        })
        .unwrap();

    let template = json!({"subject": "Hi {{caller_id.name}}", "from": "a@example.com",
        "to": {"type": "original"}, "text": "{% if a %}{{ b|date:\"H:i\" }}{% endif %}",
        "html": "<b>{{ c }}</b>"});
    fuzz_runner(300)
        .run(&(segment(), body(template)), |(id, body)| {
            for id in [id.as_str(), "fuzzed"] {
                let path = format!("/v1/accounts/acme-missed/notifications/{id}");
                send_checked(&server, "PUT", &path, "application/json", &body)?;
                let preview = format!("{path}/preview");
                send_checked(&server, "POST", &preview, "application/json", &body)?;
            }
            Ok(())
        })
        .unwrap();

    // Users, devices and voicemail boxes, and a template's unsaved preview.
    let documents = [
        (
            "users",
            json!({"first_name": "Ann", "email": "ann@example.com"}),
        ),
        (
            "devices",
            json!({"name": "desk", "owner_id": "3e3f1217bee3ba0aa7496ca61fb4ae8f",
            "sip": {"username": "3003", "password": "pw"}}),
        ),
        ("vmboxes", json!({"name": "Sales", "mailbox": "3001"})),
        (
            "notifications/fuzzed/preview",
            json!({"template": {"subject": "Hi {{ a }}",
            "text": "{% for x in y %}{{ x }}{% endfor %}"}, "call": {"caller_id_name": "A"}}),
        ),
    ];
    for (kind, good) in documents {
        fuzz_runner(150)
            .run(&(segment(), body(good)), |(id, body)| {
                if kind.contains('/') {
                    let path = format!("/v1/accounts/acme-missed/{kind}");
                    return send_checked(&server, "POST", &path, "application/json", &body);
                }
                for id in [id.as_str(), "fuzzed"] {
                    let path = format!("/v1/accounts/acme-missed/{kind}/{id}");
                    send_checked(&server, "PUT", &path, "application/json", &body)?;
                }
                Ok(())
            })
            .unwrap();
    }

    let module = std::fs::read(server.dir.path().join("modules/test_fixture.wasm")).unwrap();
    let uploads = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(move |(at, byte)| {
            let mut bytes = module.clone();
            let at = at.index(bytes.len());
            bytes[at] ^= byte | 1;
            bytes
        }),
    ];
    fuzz_runner(60)
        .run(&(segment(), uploads), |(name, bytes)| {
            let path = format!("/v1/accounts/acme-missed/modules/{name}");
            send_checked(&server, "PUT", &path, "application/wasm", &bytes)
        })
        .unwrap();

    let (status, _) = send(server.port, "GET", "/healthz", None, "text/plain", b"");
    assert_eq!(status, 200, "serve stopped answering");
    for (method, path) in [("GET", "/v1/nothing"), ("DELETE", "/healthz")] {
        let (status, answer) = send(server.port, method, path, Some(OPERATOR), "text/plain", b"");
        assert!(status == 404 || status == 405, "{method} {path}: {status}");
        assert!(answer["error"].is_string(), "{method} {path}: {answer}");
    }
    assert!(
        !server.log().contains("panicked"),
        "serve panicked:\n{}",
        server.log()
    );
}
