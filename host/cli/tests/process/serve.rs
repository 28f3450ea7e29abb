//! `cfhost serve` as a process: its HTTP API, the auth rules and the shutdown guarantee.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cfhost_tests::{built_module, copy_dir, free_port, polyglot_module, repo_root};
use serde_json::{Value, json};

pub(crate) const OPERATOR: &str = "operator-secret";
pub(crate) const ACME: &str = "acme-secret";

/// A running `cfhost serve` on a free port, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
    /// What it wrote to stderr so far.
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Takes over a started `cfhost serve`, collecting its stderr.
    fn attach(mut child: Child, port: u16, dir: tempfile::TempDir) -> Server {
        let log = collect_stderr(&mut child);
        Server {
            child,
            port,
            dir,
            log,
        }
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn modules_dir(&self) -> PathBuf {
        self.dir.path().join("modules")
    }

    /// Sends it SIGTERM.
    pub(crate) fn terminate(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
    }

    /// Everything written to stderr so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to 30 s) until `done` holds.
    pub(crate) fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "never: {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What `child` writes to its (piped) stderr, collected as it comes.
pub(crate) fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr is piped");
    let collected = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let mut log = collected.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    log
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The seed accounts, a callflow whose first node spins for a while after registering a
/// termination callback (`slow`), and the test fixture module, granted what it declares.
pub(crate) fn start() -> Server {
    start_with("")
}

/// [`start`], with `extra` appended to the configuration file.
pub(crate) fn start_with(extra: &str) -> Server {
    start_prepared(extra, |_| {})
}

/// [`start_with`], after `prepare` changed the data directory.
fn start_prepared(extra: &str, prepare: impl FnOnce(&Path)) -> Server {
    start_logging(extra, prepare, None, &[])
}

/// [`start_prepared`], logging as `rust_log` says (else as the environment does), with settings
/// `env` (`CFHOST_<SECTION>__<KEY>`) in its environment.
pub(crate) fn start_logging(
    extra: &str,
    prepare: impl FnOnce(&Path),
    rust_log: Option<&str>,
    env: &[(&str, &str)],
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&repo_root().join("examples/data"), &data);
    let slow = json!({"numbers": ["slow"], "flow": {"module": "test_fixture",
        "data": {"outcome": "spin", "register": [{"template_id": "after-shutdown"}]}}});
    std::fs::write(
        data.join("accounts/acme-missed/callflows/slow.json"),
        slow.to_string(),
    )
    .unwrap();
    prepare(&data);
    let modules = dir.path().join("modules");
    std::fs::create_dir_all(&modules).unwrap();
    let built = Path::new(cfhost_core::registry::BUILT_MODULES_DIR);
    std::fs::copy(
        built.join("test_fixture.wasm"),
        modules.join("test_fixture.wasm"),
    )
    .unwrap();
    let config = dir.path().join("cfhost.toml");
    std::fs::write(
        &config,
        r#"
        [limits]
        handle_deadline_ms = 1500
        [modules.test_fixture]
        capabilities = ["call-control", "callbacks", "directory", "notify", "log", "clock"]
        [accounts.acme-notify.modules.test_fixture]
        capabilities = ["log"]
        [modules.versioned]
        capabilities = ["callbacks", "notify"]
        [loading]
        max_wasm_kib = 1024
        [serve]
        operator_token = "operator-secret"
        account_tokens = { acme-missed = "acme-secret" }
        "#
        .to_string()
            + extra,
    )
    .unwrap();
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_cfhost"));
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    command.envs(env.iter().copied());
    if !env.iter().any(|(key, _)| *key == "CFHOST_SIP__LISTEN") {
        command.env("CFHOST_SIP__LISTEN", "127.0.0.1:0");
    }
    let child = command
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .arg("--modules")
        .arg(&modules)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--notifications")
        .arg(dir.path().join("notifications.jsonl"))
        .env("CFHOST_CACHE_DIR", dir.path().join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cfhost serve starts");
    let server = Server::attach(child, port, dir);
    wait_until_up(&server);
    server
}

/// Waits until `server` answers `/healthz`.
fn wait_until_up(server: &Server) {
    let started = Instant::now();
    while request(server, "GET", "/healthz", None, None).0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request; returns the status and the body (JSON when it parses, else a string).
/// Status 0 means the connection failed.
pub(crate) fn request(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    request_to(server.port, method, path, token, body)
}

/// [`request`] to a port.
pub(crate) fn request_to(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let body = body.map(Value::to_string).unwrap_or_default();
    send(
        port,
        method,
        path,
        token,
        "application/json",
        body.as_bytes(),
    )
}

/// One HTTP/1.1 request with a body of `content_type`.
pub(crate) fn send(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> (u16, Value) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, Value::Null);
    };
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).is_err() || stream.write_all(body).is_err() {
        return (0, Value::Null);
    }
    let mut response = String::new();
    if stream.read_to_string(&mut response).is_err() {
        return (0, Value::Null);
    }
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()));
    (status, body)
}

fn missed_call() -> Value {
    json!({"to": "+15554441111", "caller_id_number": "+15550001234",
        "behaviour": {"bridge": "no_answer", "voicemail": "hangup"}})
}

#[test]
fn a_call_through_the_api_answers_with_its_trace_notifications_and_callbacks() {
    let server = start();
    let calls = "/v1/accounts/acme-missed/calls";
    let (status, body) = request(&server, "POST", calls, Some(OPERATOR), Some(&missed_call()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["callflow_id"], "seed_missed_call_alert");
    let call_id = body["call_id"].as_str().unwrap();
    assert!(call_id.starts_with("api-"), "{call_id}");
    let notifications = body["notifications"].as_array().unwrap();
    assert_eq!(notifications.len(), 1, "{body}");
    assert_eq!(
        notifications[0]["routing_key"],
        "notifications.sip.missed_call"
    );
    assert_eq!(notifications[0]["payload"]["Call-ID"], call_id);
    assert_eq!(
        body["callbacks"],
        json!([{"module": "missed_call_alert", "error": null}])
    );
    assert!(body["trace"].as_array().unwrap().len() > 5);

    // A trial: nothing went to the configured sink.
    let file =
        std::fs::read_to_string(server.dir.path().join("notifications.jsonl")).unwrap_or_default();
    assert!(!file.contains(call_id), "{file}");

    // An answered call alerts nobody.
    let mut answered = missed_call();
    answered["behaviour"] = json!({"bridge": "answer"});
    let (status, body) = request(&server, "POST", calls, Some(ACME), Some(&answered));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["notifications"], json!([]));
}

#[test]
fn bad_calls_are_client_errors_that_say_why() {
    let server = start();
    let post =
        |path: &str, body: &Value| request(&server, "POST", path, Some(OPERATOR), Some(body));
    let (status, body) = post("/v1/accounts/nobody/calls", &missed_call());
    assert_eq!(status, 404);
    assert_eq!(body["error"], "account `nobody` does not exist");
    let (status, body) = post("/v1/accounts/acme-missed/calls", &json!({"to": "999"}));
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no callflow for `999`")
    );
    let (status, body) = post(
        "/v1/accounts/acme-missed/calls",
        &json!({"to": "1", "colour": 2}),
    );
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{body}"
    );
    let (status, body) = post(
        "/v1/accounts/acme-missed/calls",
        &json!({"to": "1", "account_id": "acme-notify"}),
    );
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().starts_with("account_id:"),
        "{body}"
    );
    // The token is checked before the body is read; a body that is no JSON is a JSON 400 that
    // says where, and another content type a 415.
    let calls = "/v1/accounts/acme-missed/calls";
    let junk = b"{not json";
    let (status, _) = send(server.port, "POST", calls, None, "application/json", junk);
    assert_eq!(status, 401);
    let (status, body) = send(
        server.port,
        "POST",
        calls,
        Some(OPERATOR),
        "application/json",
        junk,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("line 1 column 2"),
        "{body}"
    );
    let (status, body) = send(
        server.port,
        "POST",
        calls,
        Some(OPERATOR),
        "text/plain",
        b"{}",
    );
    assert_eq!(status, 415, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("text/plain"),
        "{body}"
    );
}

#[test]
fn tokens_open_only_what_they_cover() {
    let server = start();
    let post = |account: &str, token: Option<&str>| {
        let mut call = missed_call();
        if account == "acme-notify" {
            // Each account has its own number: a global number belongs to one account.
            call["to"] = json!("+15554442222");
        }
        let path = format!("/v1/accounts/{account}/calls");
        request(&server, "POST", &path, token, Some(&call)).0
    };
    assert_eq!(
        post("acme-missed", Some(ACME)),
        200,
        "an account's own token"
    );
    assert_eq!(post("acme-notify", Some(ACME)), 403, "another account");
    assert_eq!(post("acme-notify", Some(OPERATOR)), 200, "the operator");
    assert_eq!(post("acme-missed", None), 401, "no token");
    assert_eq!(post("acme-missed", Some("guess")), 401, "a wrong token");

    assert_eq!(request(&server, "GET", "/healthz", None, None).0, 200);
    assert_eq!(request(&server, "GET", "/readyz", None, None).0, 200);
    assert_eq!(request(&server, "GET", "/metrics", None, None).0, 401);
    assert_eq!(request(&server, "GET", "/metrics", Some(ACME), None).0, 403);
    let (status, metrics) = request(&server, "GET", "/metrics", Some(OPERATOR), None);
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("cfhost_calls_total{result=\"ok\"} 2"),
        "{metrics}"
    );
    // acme-missed's seed call registered one callback; acme-notify's sent its notification
    // while the flow ran. Both are simulated calls: they publish nothing.
    assert!(metrics.contains("cfhost_module_callbacks_total{module=\"missed_call_alert\"} 1"));
    assert!(
        metrics.contains("cfhost_notifications_published_total 0"),
        "{metrics}"
    );
}

#[test]
fn a_simulated_call_publishes_only_when_asked_and_allowed() {
    let server = start();
    let calls = "/v1/accounts/acme-missed/calls";
    let published = || {
        std::fs::read_to_string(server.dir.path().join("notifications.jsonl"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    // By default the notifications are answered, not published.
    for token in [ACME, OPERATOR] {
        let (status, body) = request(&server, "POST", calls, Some(token), Some(&missed_call()));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["notifications"].as_array().unwrap().len(), 1, "{body}");
        assert_eq!(body["published"], false, "{body}");
    }
    assert_eq!(published(), 0, "a simulated call published");
    // An account's token may not ask for more (the setting is off by default).
    let mut publish = missed_call();
    publish["publish"] = json!(true);
    let (status, body) = request(&server, "POST", calls, Some(ACME), Some(&publish));
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("account_calls_may_publish"),
        "{body}"
    );
    let (status, body) = request(
        &server,
        "POST",
        calls,
        Some(OPERATOR),
        Some(&json!({"to": "+15554441111", "publish": "yes"})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(published(), 0);
    // The operator's may.
    let (status, body) = request(&server, "POST", calls, Some(OPERATOR), Some(&publish));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["published"], true, "{body}");
    server.wait_until("the notification is published", || published() == 1);
}

#[test]
fn sigterm_lets_calls_in_flight_and_their_callbacks_finish_then_exits_0() {
    let mut server = start();
    let port = server.port;
    let in_flight = std::thread::spawn(move || {
        let slow = json!({"to": "slow", "publish": true});
        request_to(
            port,
            "POST",
            "/v1/accounts/acme-missed/calls",
            Some(OPERATOR),
            Some(&slow),
        )
    });
    // The slow call spins in its first node for 1.5 s; stop the host while it does.
    std::thread::sleep(Duration::from_millis(500));
    server.terminate();
    // While the call drains, the server still answers: not ready, and no new calls.
    std::thread::sleep(Duration::from_millis(200));
    let (status, _) = request(&server, "GET", "/readyz", None, None);
    assert_eq!(status, 503, "/readyz while shutting down");
    let (status, body) = request(
        &server,
        "POST",
        "/v1/accounts/acme-missed/calls",
        Some(OPERATOR),
        Some(&missed_call()),
    );
    assert_eq!(status, 503, "a new call while shutting down: {body}");
    let (status, body) = in_flight.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let notifications = body["notifications"].as_array().unwrap();
    assert_eq!(notifications.len(), 1, "{body}");
    assert_eq!(notifications[0]["payload"]["Template-ID"], "after-shutdown");

    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit}");
    let file = std::fs::read_to_string(server.dir.path().join("notifications.jsonl")).unwrap();
    assert!(
        file.contains("after-shutdown"),
        "the callback's notification was written"
    );
    server.wait_until("the log says it stopped", || {
        server.log().contains("cfhost serve: stopped")
    });
    let stderr = server.log();
    assert!(
        !stderr.contains(OPERATOR) && !stderr.contains(ACME),
        "tokens are never logged"
    );
    // New connections are refused once it stopped.
    assert_eq!(request(&server, "GET", "/healthz", None, None).0, 0);
}

#[test]
fn temporary_files_left_by_a_cut_short_write_are_removed_at_start() {
    let callflows = "accounts/acme-missed/callflows";
    let server = start_prepared("", |data| {
        std::fs::write(data.join(callflows).join(".tmpK1LL3D"), "{\"numb").unwrap();
    });
    let leftover = server.data().join(callflows).join(".tmpK1LL3D");
    assert!(!leftover.exists(), "the leftover is still there");
    assert!(
        server
            .data()
            .join(callflows)
            .join("seed_missed_call_alert.json")
            .exists()
    );
    server.wait_until("the removal is logged", || {
        server
            .log()
            .contains(&format!("removed {}", leftover.display()))
    });
}

#[test]
fn a_callflow_the_disk_will_not_remove_is_a_503_with_the_cause_not_a_404() {
    // Root may write anywhere, so the disk's refusal is made with a directory where the
    // document goes (EISDIR).
    let server = start_prepared("", |data| {
        std::fs::create_dir(data.join("accounts/acme-missed/callflows/stuck.json")).unwrap();
    });
    let path = "/v1/accounts/acme-missed/callflows/stuck";
    let (status, body) = request(&server, "DELETE", path, Some(ACME), None);
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("could not be removed"), "{error}");
    assert!(
        !error.contains(&server.data().display().to_string()),
        "a server path: {error}"
    );
    let (status, _) = request(
        &server,
        "DELETE",
        "/v1/accounts/acme-missed/callflows/gone",
        Some(ACME),
        None,
    );
    assert_eq!(status, 404);
}

#[test]
fn email_templates_are_compiled_on_write_stored_previewed_and_removed() {
    let server = start();
    let path = "/v1/accounts/acme-missed/notifications/missed_call";
    let notifications = server.data().join("accounts/acme-missed/notifications");

    // Nothing stored: teletype's own.
    let (status, body) = request(&server, "GET", path, Some(ACME), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["default"], true);
    assert!(body["text"].as_str().unwrap().contains("Missed Call"));

    // A template that does not compile is refused, naming the part and the line.
    let broken = json!({"subject": "Missed {{caller_id.name}}",
        "text": "line 1\n{% if caller_id.name %}\n{{ caller_id.name|truncatewords:2 }}\n{% endif %}"});
    let (status, body) = request(&server, "PUT", path, Some(ACME), Some(&broken));
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (body["part"].as_str(), body["line"].as_u64()),
        (Some("text"), Some(3)),
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("truncatewords"),
        "{body}"
    );
    assert!(!notifications.exists(), "a refused template stores nothing");
    // A document field KAZOO does not have is refused too.
    let (status, _) = request(
        &server,
        "PUT",
        path,
        Some(ACME),
        Some(&json!({"subjet": "x"})),
    );
    assert_eq!(status, 400);
    // Another account's token cannot touch it.
    let other = "/v1/accounts/acme-notify/notifications/missed_call";
    assert_eq!(
        request(&server, "PUT", other, Some(ACME), Some(&broken)).0,
        403
    );

    let template = json!({"subject": "Missed: {{caller_id.name_number}}",
        "cc": {"type": "specified", "email_addresses": ["boss@example.com"]},
        "text": "{{caller_id.name}} called {{to.user}} at {{date_called.local|date:\"H:i\"}}.\n",
        "html": "<p>{{caller_id.name}}</p>"});
    let (status, body) = request(&server, "PUT", path, Some(ACME), Some(&template));
    assert_eq!(status, 200, "{body}");
    assert!(notifications.join("missed_call.json").exists());
    assert_eq!(
        std::fs::read_to_string(notifications.join("missed_call.text")).unwrap(),
        template["text"].as_str().unwrap()
    );
    let (_, body) = request(&server, "GET", path, Some(ACME), None);
    assert_eq!(body["subject"], template["subject"]);
    assert!(body.get("default").is_none());

    // A preview renders it against the call given, over a sample, and sends nothing.
    let preview = json!({"call": {"Caller-ID-Name": "O'Brien <Pat>", "To": ["a@example.com"],
        "Timestamp": 63879009900_i64}});
    let (status, body) = request(
        &server,
        "POST",
        &format!("{path}/preview"),
        Some(ACME),
        Some(&preview),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subject"], "Missed: O'Brien <Pat>((555) 000 - 1234)");
    assert_eq!(
        body["text"],
        "O'Brien <Pat> called (555) 444 - 1111 at 02:25.\n"
    );
    assert_eq!(body["html"], "<p>O&#039;Brien &lt;Pat&gt;</p>");
    assert_eq!(body["to"], json!(["a@example.com"]));
    assert_eq!(body["cc"], json!(["boss@example.com"]));

    // A custom template needs a subject and a body; previewing one not there is a 404.
    let custom = "/v1/accounts/acme-missed/notifications/welcome";
    let (status, _) = request(
        &server,
        "PUT",
        custom,
        Some(ACME),
        Some(&json!({"text": "x"})),
    );
    assert_eq!(status, 400);
    let (status, _) = request(
        &server,
        "POST",
        &format!("{custom}/preview"),
        Some(ACME),
        None,
    );
    assert_eq!(status, 404);

    assert_eq!(request(&server, "DELETE", path, Some(ACME), None).0, 204);
    assert_eq!(request(&server, "DELETE", path, Some(ACME), None).0, 404);
    let (_, body) = request(&server, "GET", path, Some(ACME), None);
    assert_eq!(body["default"], true);
}

/// A template body whose loops run `10^depth` times, printing `each` every time.
fn loops(depth: usize, each: &str) -> String {
    let open = "{% for x in \"0123456789\" %}".repeat(depth);
    let close = "{% endfor %}".repeat(depth);
    format!("{open}{each}{close}")
}

#[test]
fn a_hostile_template_is_refused_naming_what_it_broke_and_stores_nothing() {
    let server = start();
    let path = "/v1/accounts/acme-missed/notifications/missed_call";
    let notifications = server.data().join("accounts/acme-missed/notifications");
    let refused = |template: Value, says: &str| {
        let (status, body) = request(&server, "PUT", path, Some(ACME), Some(&template));
        assert_eq!(status, 400, "{template}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(says), "{template}: {error}");
        assert!(!notifications.exists(), "{template} was stored");
    };
    // Jinja that ErlyDTL has not.
    refused(
        json!({"text": "{% for i in range(100000) %}x{% endfor %}"}),
        "function calls are not supported",
    );
    refused(json!({"text": "{{ debug() }}"}), "function calls");
    refused(
        json!({"text": "{% if caller_id.name|length > 1 %}{{ dict(a=1) }}{% endif %}"}),
        "function calls",
    );
    refused(
        json!({"text": "{% for x in caller_id recursive %}{{ loop(x) }}{% endfor %}"}),
        "`recursive` is not supported",
    );
    refused(json!({"text": "{{ [1, 2] }}"}), "`[` is not supported");
    refused(json!({"text": "{{ 'a' ~ 'b' }}"}), "`~` is not supported");
    refused(json!({"subject": "{{ 9 * 9 }}"}), "`*` is not supported");
    // Work, output and value size are bounded, each named.
    refused(json!({"text": loops(7, "")}), "render_fuel");
    refused(
        json!({"text": loops(3, &"x".repeat(2000))}),
        "render_max_bytes",
    );
    // A value that doubles 25 times in a few instructions.
    let doubling = format!(
        "{{% with a=caller_id.name %}}{}{{{{ a|length }}}}{}",
        "{% with a=a|add:a %}".repeat(25),
        "{% endwith %}".repeat(26)
    );
    refused(json!({"text": doubling}), "render_max_bytes");
    // Only the operator's senders, and a bounded number of recipients.
    refused(
        json!({"from": "Security <security@bank.example>", "text": "x"}),
        "allowed_senders",
    );
    let many: Vec<String> = (0..101).map(|n| format!("u{n}@example.com")).collect();
    refused(
        json!({"bcc": {"type": "specified", "email_addresses": many}, "text": "x"}),
        "max_recipients (100)",
    );
    // The server answered everything, and still does.
    assert_eq!(request(&server, "GET", "/healthz", None, None).0, 200);
}

#[test]
fn a_preview_past_its_time_is_refused_and_the_server_answers_throughout() {
    // Fuel enough for minutes: the time bound is what holds.
    let server = start_prepared(
        "[mailer]\nrender_fuel = 100000000000\nrender_timeout_ms = 500\n",
        |data| {
            // As another tool would write it: the API's checks are not on this path.
            let dir = data.join("accounts/acme-missed/notifications");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("missed_call.json"), r#"{"subject": "x"}"#).unwrap();
            std::fs::write(dir.join("missed_call.text"), loops(12, "")).unwrap();
        },
    );
    let port = server.port;
    let previewing = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = request_to(
            port,
            "POST",
            "/v1/accounts/acme-missed/notifications/missed_call/preview",
            Some(ACME),
            None,
        );
        (answer, started.elapsed())
    });
    // While it renders, the server and other tenants are answered at once.
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(request(&server, "GET", "/healthz", None, None).0, 200);
        let other = "/v1/accounts/acme-notify/notifications/my_custom_template";
        assert_eq!(request(&server, "GET", other, Some(OPERATOR), None).0, 200);
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ((status, body), took) = previewing.join().unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("render_timeout_ms (500 ms)"),
        "{body}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    // SIGTERM is answered though the rendering still spins.
    let mut server = server;
    let stopping = Instant::now();
    server.terminate();
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
}

#[test]
fn callflows_are_validated_on_write_stored_and_live_for_the_next_call() {
    let server = start();
    let path = "/v1/accounts/acme-missed/callflows/reception";
    let seed: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo_root()
                .join("examples/data/accounts/acme-missed/callflows/seed_missed_call_alert.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut reception = seed.clone();
    reception["numbers"] = json!(["+15557770000"]);
    let call = json!({"to": "+15557770000", "caller_id_number": "+15550001234",
        "behaviour": {"bridge": "no_answer", "voicemail": "hangup"}});
    let calls = "/v1/accounts/acme-missed/calls";

    // Not there yet.
    assert_eq!(request(&server, "GET", path, Some(ACME), None).0, 404);
    assert_eq!(
        request(&server, "POST", calls, Some(ACME), Some(&call)).0,
        404
    );

    // A document whose node data breaks the module's schema is refused, naming the place.
    let mut broken = reception.clone();
    broken["flow"]["data"]["recipients"] = json!(7);
    let (status, body) = request(&server, "PUT", path, Some(ACME), Some(&broken));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["path"], "flow");
    assert_eq!(body["module"], "missed_call_alert");
    assert!(
        body["error"].as_str().unwrap().contains("data/recipients"),
        "{body}"
    );
    let file = server
        .dir
        .path()
        .join("data/accounts/acme-missed/callflows/reception.json");
    assert!(!file.exists(), "a refused document is not stored");

    // A good one is stored and serves the next call.
    let (status, body) = request(&server, "PUT", path, Some(ACME), Some(&reception));
    assert_eq!(status, 200, "{body}");
    assert!(file.exists());
    let (status, stored) = request(&server, "GET", path, Some(ACME), None);
    assert_eq!(status, 200);
    assert_eq!(stored, reception);
    let (status, body) = request(&server, "POST", calls, Some(ACME), Some(&call));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["callflow_id"], "reception");
    assert_eq!(body["notifications"].as_array().unwrap().len(), 1);

    // Another account's token cannot read or write it; odd ids are refused.
    let elsewhere = "/v1/accounts/acme-notify/callflows/reception";
    assert_eq!(
        request(&server, "PUT", elsewhere, Some(ACME), Some(&reception)).0,
        403
    );
    assert_eq!(request(&server, "GET", elsewhere, Some(ACME), None).0, 403);
    let odd = "/v1/accounts/acme-missed/callflows/..%2Fescape";
    assert_eq!(
        request(&server, "PUT", odd, Some(OPERATOR), Some(&reception)).0,
        400
    );
    let long = format!("/v1/accounts/acme-missed/callflows/{}", "a".repeat(300));
    let (status, body) = request(&server, "PUT", &long, Some(ACME), Some(&reception));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("1 to 128"),
        "{body}"
    );
    let unknown = "/v1/accounts/nobody/callflows/reception";
    assert_eq!(
        request(&server, "PUT", unknown, Some(OPERATOR), Some(&reception)).0,
        404
    );

    // A second callflow may not take its number, even written another way, and a body id
    // must be the path's; both refusals name the other callflow and store nothing.
    let second = "/v1/accounts/acme-missed/callflows/second";
    let mut taker = reception.clone();
    taker["numbers"] = json!(["5557770000"]);
    let (status, body) = request(&server, "PUT", second, Some(ACME), Some(&taker));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["callflow"], "reception", "{body}");
    assert_eq!(body["number"], "5557770000", "{body}");
    let mut renamed = reception.clone();
    renamed["numbers"] = json!(["+15557770001"]);
    renamed["id"] = json!("reception");
    let (status, body) = request(&server, "PUT", second, Some(ACME), Some(&renamed));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("`reception`"),
        "{body}"
    );
    assert_eq!(body["path_id"], "second", "{body}");
    let second_file = file.with_file_name("second.json");
    assert!(!second_file.exists(), "a refused document is not stored");
    // Rewriting a callflow with its own numbers is no collision.
    assert_eq!(
        request(&server, "PUT", path, Some(ACME), Some(&reception)).0,
        200
    );

    // Deleted: gone from disk and from the next call.
    assert_eq!(request(&server, "DELETE", path, Some(ACME), None).0, 204);
    assert!(!file.exists());
    assert_eq!(
        request(&server, "POST", calls, Some(ACME), Some(&call)).0,
        404
    );
    assert_eq!(request(&server, "DELETE", path, Some(ACME), None).0, 404);
}

#[test]
fn modules_are_listed_with_what_each_account_may_use() {
    let server = start();
    assert_eq!(request(&server, "GET", "/v1/modules", None, None).0, 401);
    let (status, modules) = request(&server, "GET", "/v1/modules", Some(ACME), None);
    assert_eq!(status, 200);
    let names: Vec<&str> = modules
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "missed_call_alert",
            "notification",
            "test_fixture",
            "user",
            "voicemail"
        ]
    );
    let alert = &modules[0];
    assert_eq!(
        alert["capabilities"],
        json!(["callbacks", "directory", "notify", "log"])
    );
    assert_eq!(alert["lifecycle"], json!({"kind": "per-node"}));
    assert_eq!(alert["data_schema"]["type"], "object");

    let fixture = |account: &str, token: &str| {
        let path = format!("/v1/accounts/{account}/modules");
        let (status, modules) = request(&server, "GET", &path, Some(token), None);
        assert_eq!(status, 200, "{modules}");
        modules
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "test_fixture")
            .cloned()
            .unwrap()
    };
    let mine = fixture("acme-missed", ACME);
    assert_eq!(
        (mine["usable"].clone(), mine["quarantined"].clone()),
        (json!(true), json!(false))
    );
    let theirs = fixture("acme-notify", OPERATOR);
    assert_eq!(theirs["usable"], false);
    assert_eq!(theirs["missing_capability"], "call-control");
    let path = "/v1/accounts/acme-notify/modules";
    assert_eq!(request(&server, "GET", path, Some(ACME), None).0, 403);
    let (status, body) = request(
        &server,
        "GET",
        "/v1/accounts/nobody/modules",
        Some(OPERATOR),
        None,
    );
    assert_eq!(
        status, 404,
        "an account that does not exist has no modules: {body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("`nobody`"),
        "{body}"
    );
}

#[test]
fn an_open_api_stays_on_loopback_and_tokens_come_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |env: &[(&str, &str)], port: u16| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cfhost"));
        command
            .args(["serve", "--listen", &format!("0.0.0.0:{port}"), "--data"])
            .arg(dir.path().join("data"))
            .env("CFHOST_CACHE_DIR", dir.path().join("cache"))
            .env("CFHOST_SIP__LISTEN", "127.0.0.1:0")
            .env_remove("CFHOST_OPERATOR_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command.spawn().unwrap()
    };
    let refused = serve(&[], free_port()).wait_with_output().unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refusing to serve an open API"), "{stderr}");

    // The token from the flag's variable, or from the `[serve]` key's.
    for variable in ["CFHOST_OPERATOR_TOKEN", "CFHOST_SERVE__OPERATOR_TOKEN"] {
        let port = free_port();
        let child = serve(&[(variable, "from-the-environment")], port);
        let server = Server::attach(child, port, tempfile::tempdir().unwrap());
        wait_until_up(&server);
        let metrics = |token| request(&server, "GET", "/metrics", Some(token), None).0;
        assert_eq!(metrics("from-the-environment"), 200, "{variable}");
        assert_eq!(metrics("something-else"), 401, "{variable}");
    }
}

/// Callflow `versioned` of an account: the module `versioned` alone, on number `versioned`.
fn put_versioned_callflow(server: &Server, account: &str) {
    let document = json!({"numbers": ["versioned"], "flow": {"module": "versioned", "data": {}}});
    let path = format!("/v1/accounts/{account}/callflows/versioned");
    let (status, body) = request(server, "PUT", &path, Some(OPERATOR), Some(&document));
    assert_eq!(status, 200, "{body}");
}

/// Runs a call to `versioned`: what the module answered (`continue to v1`, ...) or why the
/// node was skipped, and the template ids it published.
fn call_versioned(server: &Server, account: &str) -> (String, Vec<String>) {
    run_call(server, account, &json!({"to": "versioned"}))
}

/// Runs `call`: what its first node answered or why it was skipped, and the template ids
/// published.
fn run_call(server: &Server, account: &str, call: &Value) -> (String, Vec<String>) {
    let path = format!("/v1/accounts/{account}/calls");
    let (status, body) = request(server, "POST", &path, Some(OPERATOR), Some(call));
    assert_eq!(status, 200, "{body}");
    let node = body["trace"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find_map(|line| {
            line.strip_prefix("  => ").map(str::to_string).or_else(|| {
                line.split_once(" skipped: ")
                    .map(|(_, why)| format!("skipped: {why}"))
            })
        })
        .unwrap_or_else(|| panic!("no node in {body}"));
    let templates = body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["payload"]["Template-ID"].as_str().map(str::to_string))
        .collect();
    (node, templates)
}

fn module_names(modules: &Value) -> Vec<&str> {
    modules
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect()
}

/// `PUT /v1/accounts/{account}/modules/{name}` with `bytes`, as `token`.
fn upload_module(
    server: &Server,
    account: &str,
    name: &str,
    token: &str,
    bytes: &[u8],
) -> (u16, Value) {
    let path = format!("/v1/accounts/{account}/modules/{name}");
    send(
        server.port,
        "PUT",
        &path,
        Some(token),
        "application/wasm",
        bytes,
    )
}

#[test]
fn an_account_uploads_its_own_module_checked_stored_and_live_for_it_alone() {
    let server = start();
    let upload = |account: &str, name: &str, token: &str, bytes: &[u8]| {
        upload_module(&server, account, name, token, bytes)
    };
    let stored = server
        .data()
        .join("accounts/acme-missed/modules/versioned.wasm");

    // Refused, and nothing stored, not even a compiled file in the cache: another account's
    // token, not a component, the wrong name, too large, a system module's name.
    let cached = || {
        let cache = server.dir.path().join("cache");
        std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .map(|engine| std::fs::read_dir(engine.path()).unwrap().count())
            .sum::<usize>()
    };
    let cached_at_start = cached();
    assert!(cached_at_start > 0, "the loaded modules are cached");
    let v1 = built_module("versioned_v1");
    assert_eq!(upload("acme-notify", "versioned", ACME, &v1).0, 403);
    let (status, body) = upload("acme-missed", "versioned", ACME, b"\0asm\x0d\0\x01\0junk");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly component"),
        "{body}"
    );
    let (status, body) = upload("acme-missed", "router", ACME, &v1);
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"],
        "the component describes itself as `versioned`, not `router`"
    );
    let (status, body) = upload("acme-missed", "versioned", ACME, &vec![0; 1100 << 10]);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "a module may be at most 1048576 bytes");
    let (status, body) = upload(
        "acme-missed",
        "test_fixture",
        ACME,
        &built_module("test_fixture"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("is a system module"),
        "{body}"
    );
    assert_eq!(
        cached(),
        cached_at_start,
        "a refused upload left a compiled file"
    );
    assert_eq!(
        upload("acme-missed", "../evil", ACME, &v1).0,
        404,
        "not a route"
    );
    assert!(!stored.parent().unwrap().exists(), "nothing was stored");

    // Accepted: stored, listed for the account only, and runs in its calls.
    let (status, body) = upload("acme-missed", "versioned", ACME, &v1);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], "1.0.0");
    assert_eq!(body["owner"], json!({"account": "acme-missed"}));
    assert_eq!(std::fs::read(&stored).unwrap(), v1);
    let listed = |account: &str| {
        let (_, modules) = request(
            &server,
            "GET",
            &format!("/v1/accounts/{account}/modules"),
            Some(OPERATOR),
            None,
        );
        module_names(&modules).contains(&"versioned")
    };
    assert!(listed("acme-missed"));
    assert!(!listed("acme-notify"));
    let (_, system) = request(&server, "GET", "/v1/modules", Some(OPERATOR), None);
    assert!(!module_names(&system).contains(&"versioned"));
    put_versioned_callflow(&server, "acme-missed");
    assert_eq!(
        call_versioned(&server, "acme-missed"),
        ("continue to v1".into(), vec!["versioned-v1".into()])
    );
    put_versioned_callflow(&server, "acme-notify");
    assert_eq!(
        call_versioned(&server, "acme-notify").0,
        "skipped: unknown module"
    );

    // Replaced live, then removed.
    assert_eq!(
        upload(
            "acme-missed",
            "versioned",
            ACME,
            &built_module("versioned_v2")
        )
        .0,
        201
    );
    assert_eq!(call_versioned(&server, "acme-missed").0, "continue to v2");
    let path = "/v1/accounts/acme-missed/modules/versioned";
    assert_eq!(
        send(server.port, "DELETE", path, Some(ACME), "", b"").0,
        204
    );
    assert_eq!(
        send(server.port, "DELETE", path, Some(ACME), "", b"").0,
        404
    );
    assert!(!stored.exists());
    assert_eq!(
        call_versioned(&server, "acme-missed").0,
        "skipped: unknown module"
    );
}

#[test]
fn an_account_uploads_a_python_module_for_itself_and_only_its_calls_run_it() {
    // The operator grants it to the account and pools its instances there; Python modules are
    // about 18 MiB: past this server's 1 MiB cap, within the default's.
    let grant = "[accounts.acme-missed.modules.blocklist]\n\
                 capabilities = [\"call-control\", \"log\"]\nlifecycle = \"pooled\"\n";
    let env = [("CFHOST_LOADING__MAX_WASM_KIB", "32768")];
    let server = start_logging(grant, |_| {}, None, &env);
    let blocklist = polyglot_module("blocklist").bytes;
    let upload = |account: &str, token: &str, bytes: &[u8]| {
        upload_module(&server, account, "blocklist", token, bytes)
    };
    // Refused before the body is read (a short one, so that the answer is not lost to a
    // connection closed while 18 MiB are still being sent).
    assert_eq!(
        upload("acme-notify", ACME, b"\0asm").0,
        403,
        "another account's"
    );
    let (status, body) = upload("acme-missed", ACME, &blocklist);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["owner"], json!({"account": "acme-missed"}));
    assert_eq!(body["capabilities"], json!(["call-control", "log"]));
    assert_eq!(
        body["lifecycle"],
        json!({"kind": "pooled", "max_uses": 1000})
    );

    let screen = json!({"numbers": ["screen"], "flow": {"module": "blocklist",
        "data": {"numbers": ["+15550001234"]}}});
    let caller = json!({"to": "screen", "caller_id_number": "+15550001234"});
    for account in ["acme-missed", "acme-notify"] {
        let path = format!("/v1/accounts/{account}/callflows/screen");
        let (status, body) = request(&server, "PUT", &path, Some(OPERATOR), Some(&screen));
        assert_eq!(status, 200, "{body}");
    }
    // The uploading account's call runs it: the listed caller is hung up.
    let path = "/v1/accounts/acme-missed/calls";
    let (status, body) = request(&server, "POST", path, Some(OPERATOR), Some(&caller));
    assert_eq!(status, 200, "{body}");
    let trace = body["trace"].to_string();
    assert!(
        trace.contains("blocked (+15550001234 is listed): hung up CALL_REJECTED"),
        "{body}"
    );
    // Another account's calls do not see it, nor does the system's list.
    assert_eq!(
        run_call(&server, "acme-notify", &caller).0,
        "skipped: unknown module"
    );
    let (_, system) = request(&server, "GET", "/v1/modules", Some(OPERATOR), None);
    assert!(!module_names(&system).contains(&"blocklist"));
}

#[test]
fn modules_dropped_into_the_module_directory_are_picked_up_replaced_and_removed_live() {
    let server = start();
    let file = server.modules_dir().join("versioned.wasm");
    let version = || {
        let (_, modules) = request(&server, "GET", "/v1/modules", Some(OPERATOR), None);
        modules
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "versioned")
            .map(|m| m["version"].as_str().unwrap().to_string())
    };
    assert_eq!(version(), None);

    // Dropped in (written in place, as `cp` does).
    std::fs::write(&file, built_module("versioned_v1")).unwrap();
    server.wait_until("v1 is loaded", || version().as_deref() == Some("1.0.0"));
    // A reload reads the directories it watches: that must not start another one.
    let reloads = || server.log().matches("reloaded").count();
    std::thread::sleep(Duration::from_secs(1));
    let settled = reloads();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(reloads(), settled, "reloads keep coming:\n{}", server.log());
    put_versioned_callflow(&server, "acme-notify");
    assert_eq!(call_versioned(&server, "acme-notify").0, "continue to v1");

    // A broken replacement is rejected, and v1 keeps serving.
    std::fs::write(&file, b"\0asm\x0d\0\x01\0broken").unwrap();
    server.wait_until("the broken file is rejected", || {
        server
            .log()
            .contains("(the previous version keeps serving)")
    });
    assert!(
        server
            .log()
            .contains("versioned.wasm: not a WebAssembly component"),
        "{}",
        server.log()
    );
    assert_eq!(version().as_deref(), Some("1.0.0"));
    assert_eq!(call_versioned(&server, "acme-notify").0, "continue to v1");
    // The operator sees why, over the API and in the metrics.
    let rejected = || request(&server, "GET", "/v1/modules/rejected", Some(OPERATOR), None).1;
    let listed = rejected();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["scope"], "system");
    let error = listed[0]["error"].as_str().unwrap();
    assert!(
        error.contains("versioned.wasm: not a WebAssembly component"),
        "{error}"
    );
    let path = "/v1/modules/rejected";
    assert_eq!(request(&server, "GET", path, Some(ACME), None).0, 403);
    let gauge = || {
        let (_, metrics) = request(&server, "GET", "/metrics", Some(OPERATOR), None);
        let text = metrics.as_str().unwrap().to_string();
        text.lines()
            .find_map(|line| {
                line.strip_prefix("cfhost_modules_rejected ")
                    .map(str::to_string)
            })
            .unwrap()
    };
    assert_eq!(gauge(), "1");

    // Replaced.
    std::fs::write(&file, built_module("versioned_v2")).unwrap();
    server.wait_until("v2 is loaded", || version().as_deref() == Some("2.0.0"));
    assert_eq!(call_versioned(&server, "acme-notify").0, "continue to v2");
    assert_eq!(rejected(), json!([]));
    assert_eq!(gauge(), "0");

    // Removed.
    std::fs::remove_file(&file).unwrap();
    server.wait_until("it is gone", || version().is_none());
    assert_eq!(
        call_versioned(&server, "acme-notify").0,
        "skipped: unknown module"
    );
}

/// `cargo` in a scaffolded module's directory, building into `target` (kept between runs).
#[test]
fn python_and_javascript_modules_are_scaffolded_tested_built_checked_dropped_in_and_called() {
    // The pinned tools modules/build-polyglot installed (tests/run runs it first).
    let python = repo_root().join("target/polyglot/python/bin");
    let node_tools = repo_root().join("modules/javascript/node_modules/.bin");
    assert!(
        python.join("componentize-py").exists() && node_tools.join("componentize-js").exists(),
        "the Python and JavaScript tools are missing: run modules/build-polyglot"
    );
    let path = std::env::join_paths(
        [python.clone(), node_tools]
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = start_logging(
        "",
        |_| {},
        None,
        &[("CFHOST_LOADING__MAX_WASM_KIB", "32768")],
    );
    for (lang, name, steps) in [
        (
            "python",
            "py_router",
            vec![
                vec!["pytest", "-q", "-p", "no:cacheprovider"],
                vec![
                    "componentize-py",
                    "-d",
                    "wit",
                    "-w",
                    "callflow-module",
                    "componentize",
                    "py_router",
                    "-o",
                    "py_router.wasm",
                ],
            ],
        ),
        (
            "javascript",
            "js_router",
            vec![vec!["npm", "test"], vec!["npm", "run", "build"]],
        ),
    ] {
        let made = Command::new(env!("CARGO_BIN_EXE_cfhost"))
            .args(["new-module", name, "--lang", lang, "--dir"])
            .arg(work.path())
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&made.stdout);
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        assert!(
            printed.contains(&format!("cfhost module check {name}.wasm")),
            "{printed}"
        );
        let project = work.path().join(name);
        // As the printed steps say, with the tools already installed.
        for step in steps {
            let out = Command::new(step[0])
                .args(&step[1..])
                .current_dir(&project)
                .env("PATH", &path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{lang}: {step:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let wasm = project.join(format!("{name}.wasm"));
        passes_module_check_as_a_prefix_router(&wasm, name);

        std::fs::copy(&wasm, server.modules_dir().join(format!("{name}.wasm"))).unwrap();
        let document = json!({"numbers": [name], "flow": {"module": name,
            "data": {"prefix": "+1555"}}});
        let callflow = format!("/v1/accounts/acme-notify/callflows/{name}");
        // Compiling a module of this size takes seconds: wait for it to be listed.
        let started = Instant::now();
        loop {
            let (_, modules) = request(&server, "GET", "/v1/modules", Some(OPERATOR), None);
            if module_names(&modules).contains(&name) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{name} never loaded:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            request(&server, "PUT", &callflow, Some(OPERATOR), Some(&document)).0,
            200
        );
        let call = json!({"to": name, "caller_id_number": "+15550001234"});
        assert_eq!(
            run_call(&server, "acme-notify", &call).0,
            "continue to match",
            "{lang}"
        );
    }
}

/// `cfhost module check` passes the scaffold's module built as `wasm`, named `name`, whose data
/// schema requires a `prefix`.
fn passes_module_check_as_a_prefix_router(wasm: &Path, name: &str) {
    let check = Command::new(env!("CARGO_BIN_EXE_cfhost"))
        .args(["module", "check", "--json"])
        .arg(wasm)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let description: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(description["name"], name);
    assert_eq!(description["data_schema"]["required"], json!(["prefix"]));
}

fn cargo(dir: &Path, target: &Path, args: &[&str]) {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
    ] {
        command.env_remove(var);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README's newcomer flow: scaffold a module, test and build it, check it, drop it into a
/// running host, call it through the API, then change it and replace it live.
#[test]
fn a_new_module_is_scaffolded_built_checked_dropped_in_called_and_replaced_live() {
    let work = tempfile::tempdir().unwrap();
    let cfhost = env!("CARGO_BIN_EXE_cfhost");
    let made = Command::new(cfhost)
        .args(["new-module", "prefix_router", "--dir"])
        .arg(work.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let again = Command::new(cfhost)
        .args(["new-module", "prefix_router", "--dir"])
        .arg(work.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let crate_dir = work.path().join("prefix_router");
    // Kept beside the guests' target directory, so that later runs only rebuild the module.
    let target = Path::new(cfhost_core::registry::BUILT_MODULES_DIR)
        .ancestors()
        .nth(3)
        .unwrap()
        .join("scaffolded-module");
    cargo(&crate_dir, &target, &["test", "--quiet"]);
    let build = ["build", "--release", "--target", "wasm32-wasip2", "--quiet"];
    cargo(&crate_dir, &target, &build);
    let wasm = target.join("wasm32-wasip2/release/prefix_router.wasm");
    passes_module_check_as_a_prefix_router(&wasm, "prefix_router");

    let server = start();
    let dropped = server.modules_dir().join("prefix_router.wasm");
    std::fs::copy(&wasm, &dropped).unwrap();
    let listed = || {
        let (_, modules) = request(&server, "GET", "/v1/modules", Some(OPERATOR), None);
        module_names(&modules).contains(&"prefix_router")
    };
    server.wait_until("the module is loaded", listed);
    let document = json!({"numbers": ["prefix"], "flow": {"module": "prefix_router",
        "data": {"prefix": "+1555"}}});
    let path = "/v1/accounts/acme-notify/callflows/prefix";
    assert_eq!(
        request(&server, "PUT", path, Some(OPERATOR), Some(&document)).0,
        200
    );
    let bad = json!({"numbers": ["prefix"], "flow": {"module": "prefix_router", "data": {}}});
    let (status, body) = request(&server, "PUT", path, Some(OPERATOR), Some(&bad));
    assert_eq!(
        (status, body["module"].clone()),
        (400, json!("prefix_router")),
        "{body}"
    );
    let call = json!({"to": "prefix", "caller_id_number": "+15550001234"});
    assert_eq!(
        run_call(&server, "acme-notify", &call).0,
        "continue to match"
    );

    // Changed, rebuilt and copied over the running one.
    let source = crate_dir.join("src/lib.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    let changed = text.replace(r#"continue_to(["match"])"#, r#"continue_to(["matched"])"#);
    assert_ne!(text, changed);
    std::fs::write(&source, changed).unwrap();
    cargo(&crate_dir, &target, &build);
    std::fs::copy(&wasm, &dropped).unwrap();
    server.wait_until("the new version answers", || {
        run_call(&server, "acme-notify", &call).0 == "continue to matched"
    });
}

#[test]
fn no_credential_reaches_the_log_even_at_trace() {
    let server = start_logging("", |_| {}, Some("trace"), &[]);
    let sip = sip_address(&server);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = socket.local_addr().unwrap();
    let register = format!(
        "REGISTER sip:acme-missed.sip.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-creds\r\n\
         From: <sip:1001@acme-missed.sip.example.com>;tag=c1\r\n\
         To: <sip:1001@acme-missed.sip.example.com>\r\nCall-ID: creds@test\r\n\
         CSeq: 1 REGISTER\r\nContact: <sip:1001@{me}>\r\n\
         Authorization: Digest username=\"1001\", realm=\"acme-missed.sip.example.com\", \
         nonce=\"1.2.3\", uri=\"sip:acme-missed.sip.example.com\", response=\"5ec2e7c0ffee\"\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(register.as_bytes(), sip).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 2048];
    socket
        .recv_from(&mut buf)
        .expect("the REGISTER is answered");
    // The message was logged (rsipstack logs what it receives), its credentials were not.
    server.wait_until("the REGISTER is logged", || {
        server.log().contains("creds@test")
    });
    let log = server.log();
    assert!(log.contains("Authorization: [redacted]"), "{log}");
    assert!(!log.contains("5ec2e7c0ffee"), "{log}");
    assert!(!log.contains("username=\\\"1001\\\""), "{log}");
}

/// Sends `message` from `socket` to `sip`; the first response.
fn sip_exchange(socket: &std::net::UdpSocket, sip: std::net::SocketAddr, message: &str) -> String {
    socket.send_to(message.as_bytes(), sip).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).expect("an answer");
    String::from_utf8_lossy(&buf[..n]).to_string()
}

#[test]
fn registrations_are_shown_to_the_operator_and_to_their_account_only() {
    const REALM: &str = "acme-missed.sip.example.com";
    let server = start_logging(
        "",
        |data| {
            let devices = data.join("accounts/acme-missed/devices");
            std::fs::create_dir_all(&devices).unwrap();
            let device = json!({"name": "desk", "sip": {"username": "1001", "password": "pw"}});
            std::fs::write(devices.join("d1.json"), device.to_string()).unwrap();
        },
        None,
        &[],
    );
    let sip = sip_address(&server);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = socket.local_addr().unwrap();
    let register = |n: u32, auth: &str| {
        format!(
            "REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-reg{n}\r\n\
             From: <sip:1001@{REALM}>;tag=r{n}\r\nTo: <sip:1001@{REALM}>\r\nCall-ID: reg@test\r\n\
             CSeq: {n} REGISTER\r\nContact: <sip:1001@{me}>\r\n{auth}Expires: 60\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let challenge = sip_exchange(&socket, sip, &register(1, ""));
    let at = challenge.find("nonce=\"").expect("a challenge") + 7;
    let nonce = challenge[at..].split('"').next().unwrap();
    let hex = |text: String| {
        use md5::Digest;
        md5::Md5::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let uri = format!("sip:{REALM}");
    let response = hex(format!(
        "{}:{nonce}:{}",
        hex(format!("1001:{REALM}:pw")),
        hex(format!("REGISTER:{uri}"))
    ));
    let auth = format!(
        "Authorization: Digest username=\"1001\", realm=\"{REALM}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\"\r\n"
    );
    let ok = sip_exchange(&socket, sip, &register(2, &auth));
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");

    let (status, all) = request(
        &server,
        "GET",
        "/v1/sip/registrations",
        Some(OPERATOR),
        None,
    );
    assert_eq!(status, 200, "{all}");
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    let binding = &all[0];
    assert_eq!(binding["account_id"], "acme-missed");
    assert_eq!(binding["device_id"], "d1");
    assert_eq!(binding["contact"], format!("sip:1001@{me}"));
    assert_eq!(binding["source"], me.to_string());
    assert!(binding["expires_in_secs"].as_u64().unwrap() <= 60);
    let own = "/v1/accounts/acme-missed/sip/registrations";
    assert_eq!(
        request(&server, "GET", own, Some(ACME), None),
        (200, all.clone())
    );
    // Another account's, with the account's token: its own list only, and not another's.
    let (status, other) = request(
        &server,
        "GET",
        "/v1/accounts/acme-notify/sip/registrations",
        Some(OPERATOR),
        None,
    );
    assert_eq!((status, other), (200, json!([])));
    assert_eq!(
        request(
            &server,
            "GET",
            "/v1/accounts/acme-notify/sip/registrations",
            Some(ACME),
            None
        )
        .0,
        403
    );
    assert_eq!(
        request(&server, "GET", "/v1/sip/registrations", Some(ACME), None).0,
        403
    );
    assert_eq!(
        request(&server, "GET", "/v1/sip/registrations", None, None).0,
        401
    );
    assert_eq!(
        request(
            &server,
            "GET",
            "/v1/accounts/nobody/sip/registrations",
            Some(OPERATOR),
            None
        )
        .0,
        404
    );
    let (status, body) = request(
        &server,
        "GET",
        "/v1/accounts/..%2F..%2Fetc/sip/registrations",
        Some(OPERATOR),
        None,
    );
    assert!(status == 400 || status == 404, "{status} {body}");
    assert!(body["error"].is_string(), "{body}");

    // At the default level the log says what SIP did: the registration change, a refusal
    // with its reason, and each call in one line.
    let stranger = format!(
        "INVITE sip:+15554441111@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-str\r\n\
         From: <sip:x@{me}>;tag=s1\r\nTo: <sip:+15554441111@{sip}>\r\nCall-ID: stranger@test\r\n\
         CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let challenged = sip_exchange(&socket, sip, &stranger);
    assert!(challenged.starts_with("SIP/2.0 407"), "{challenged}");
    let invite = |n: u32, auth: &str| {
        format!(
            "INVITE sip:slow@{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-inv{n}\r\n\
             From: <sip:1001@{REALM}>;tag=i1\r\nTo: <sip:slow@{REALM}>\r\nCall-ID: slow@test\r\n\
             CSeq: {n} INVITE\r\nContact: <sip:1001@{me}>\r\n{auth}Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let challenge = sip_exchange(&socket, sip, &invite(1, ""));
    let at = challenge.find("nonce=\"").expect("a challenge") + 7;
    let nonce = challenge[at..].split('"').next().unwrap();
    let uri = format!("sip:slow@{REALM}");
    let response = hex(format!(
        "{}:{nonce}:{}",
        hex(format!("1001:{REALM}:pw")),
        hex(format!("INVITE:{uri}"))
    ));
    let auth = format!(
        "Proxy-Authorization: Digest username=\"1001\", realm=\"{REALM}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\"\r\n"
    );
    socket.send_to(invite(2, &auth).as_bytes(), sip).unwrap();
    server.wait_until("the call is logged", || {
        server.log().contains("SIP: call slow@test")
    });
    let log = server.log();
    let changed =
        format!("SIP: device d1 of account acme-missed (1001, from {me}) now at sip:1001@{me}");
    assert!(log.contains(&changed), "{log}");
    let refusal = format!("SIP: refused INVITE sip:+15554441111@{sip} from {me}: stranger");
    assert!(log.contains(&refusal), "{log}");
    let call = log
        .lines()
        .find(|l| l.contains("SIP: call slow@test"))
        .unwrap();
    assert!(
        call.contains("in acme-missed: 1001 (device d1) to slow: "),
        "{call}"
    );
}

/// The SIP address `server` logged.
pub(crate) fn sip_address(server: &Server) -> std::net::SocketAddr {
    let mut sip = None;
    server.wait_until("the SIP address is logged", || {
        sip = server.log().lines().find_map(|line| {
            let rest = line.strip_prefix("cfhost serve: SIP on ")?;
            rest.split_whitespace()
                .next()?
                .parse::<std::net::SocketAddr>()
                .ok()
        });
        sip.is_some()
    });
    sip.unwrap()
}

#[test]
fn serve_takes_sip_beside_the_http_api_and_reports_it() {
    let server = start();
    // Its log says where SIP is (a free port here, from CFHOST_SIP__LISTEN=127.0.0.1:0).
    let sip = sip_address(&server);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = socket.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-ping\r\n\
         From: <sip:probe@{me}>;tag=p1\r\nTo: <sip:{sip}>\r\nCall-ID: ping@test\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(options.as_bytes(), sip).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = socket.recv_from(&mut buf).expect("OPTIONS is answered");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let (status, metrics) = request(&server, "GET", "/metrics", Some(OPERATOR), None);
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("cfhost_sip_requests_total{method=\"OPTIONS\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cfhost_sip_calls_in_progress 0"),
        "{metrics}"
    );
    let (status, calls) = request(&server, "GET", "/v1/sip/calls", Some(OPERATOR), None);
    assert_eq!((status, calls), (200, json!([])));
    assert_eq!(
        request(&server, "GET", "/v1/sip/calls", Some(ACME), None).0,
        403
    );
}
