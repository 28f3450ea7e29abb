//! The web console's speed (issue 29), in one run on loopback: a `cfhost serve` of the
//! examples with a 200-node callflow added, and Debian's headless Chromium driven by
//! `tests/console/bench.mjs` (its npm packages installed by `tests/run`):
//!
//! - the callflow view's first paint: from navigation to the tree painted (Element Timing), a
//!   fresh tab each time, for the seed callflow and for the 200-node one;
//! - the 200-node tree's draw time (its DOM built and laid out), first and on each redraw;
//! - what the console adds to a call's path: after a warm-up batch, calls through the API one
//!   after another, in turns with no browser and with the operator and calls views open (each
//!   polling every 2 s); the medians and their ratio.
//!
//! `cargo bench -p cfhost --bench console` prints each figure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cfhost_tests::{copy_dir, free_port, repo_root};
use serde_json::{Value, json};

const OPERATOR: &str = "bench-operator";
const ACCOUNT_TOKEN: &str = "bench-account";
const ACCOUNT: &str = "acme-missed";
const BIG: &str = "big";
const BIG_NODES: usize = 200;
const CALLS: usize = 500;
/// Turns of calls without the console, then with it open.
const ROUNDS: usize = 3;

/// A callflow of `count` `user` nodes, each with a `_` and a `NO_ANSWER` child, breadth first.
fn big_callflow(count: usize) -> Value {
    fn node(index: usize, count: usize) -> Value {
        let mut children = serde_json::Map::new();
        for (label, child) in [("_", 2 * index + 1), ("NO_ANSWER", 2 * index + 2)] {
            if child < count {
                children.insert(label.to_string(), node(child, count));
            }
        }
        json!({"module": "user", "data": {"id": format!("u{index}"), "timeout": 20},
               "children": children})
    }
    json!({"numbers": ["9200"], "flow": node(0, count)})
}

/// `cfhost serve` of the examples, killed when dropped.
struct Serve {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&repo_root().join("examples/data"), &data);
    std::fs::write(
        data.join(format!("accounts/{ACCOUNT}/callflows/{BIG}.json")),
        big_callflow(BIG_NODES).to_string(),
    )
    .unwrap();
    let config = dir.path().join("cfhost.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\noperator_token = \"{OPERATOR}\"\n\
             account_tokens = {{ {ACCOUNT} = \"{ACCOUNT_TOKEN}\" }}\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_cfhost"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--notifications")
        .arg(dir.path().join("notifications.jsonl"))
        .arg("--sip-listen")
        .arg("off")
        .env("CFHOST_CACHE_DIR", dir.path().join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cfhost serve starts");
    let serve = Serve {
        child,
        port,
        _dir: dir,
    };
    let started = Instant::now();
    while post(port, "/healthz", None).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serve
}

/// One request (a POST with `body`, else a GET); the status, `None` when nothing answered.
fn post(port: u16, path: &str, body: Option<&str>) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let head = match body {
        Some(body) => format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Authorization: Bearer {ACCOUNT_TOKEN}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        None => format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    };
    stream.write_all(head.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

/// `CALLS` calls through the API one after another: each one's time, in microseconds.
fn call_times(port: u16) -> Vec<f64> {
    let path = format!("/v1/accounts/{ACCOUNT}/calls");
    let body = json!({"to": "+15554441111", "caller_id_number": "+15550001234",
                      "behaviour": {"bridge": "answer"}})
    .to_string();
    (0..CALLS)
        .map(|_| {
            let started = Instant::now();
            assert_eq!(post(port, &path, Some(&body)), Some(200));
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn node(serve: &Serve, mode: &str) -> Command {
    let mut command = Command::new("node");
    command
        .arg("bench.mjs")
        .arg(mode)
        .current_dir(repo_root().join("tests/console"))
        .env("CFHOST_URL", format!("http://127.0.0.1:{}", serve.port))
        .env("CFHOST_OPERATOR_TOKEN", OPERATOR)
        .env("CFHOST_ACCOUNT_TOKEN", ACCOUNT_TOKEN)
        .env("CFHOST_ACCOUNT", ACCOUNT)
        .env("CFHOST_SMALL", "seed_missed_call_alert")
        .env("CFHOST_BIG", BIG)
        .env("CHROMIUM", "/usr/bin/chromium");
    command
}

fn main() {
    assert!(
        repo_root()
            .join("tests/console/node_modules/playwright-core")
            .is_dir(),
        "tests/console/node_modules is missing: `npm ci` there (tests/run does)"
    );
    let serve = serve();

    let paint = node(&serve, "paint").output().expect("node runs");
    assert!(
        paint.status.success(),
        "bench.mjs paint failed: {}",
        String::from_utf8_lossy(&paint.stderr)
    );
    let figures: Value = serde_json::from_slice(&paint.stdout).expect("one JSON line");
    for (name, value) in figures.as_object().unwrap() {
        println!("{name}: {value}");
    }

    // The call path, without the console and with it open, in turns (after a batch that
    // warms the instance pools and caches up).
    call_times(serve.port);
    let (mut without, mut open) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        without.extend(call_times(serve.port));
        let mut watcher = node(&serve, "watch")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs");
        let mut ready = String::new();
        BufReader::new(watcher.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "watching");
        open.extend(call_times(serve.port));
        drop(watcher.stdin.take());
        watcher.wait().unwrap();
    }
    let (without, open) = (median(&mut without), median(&mut open));
    println!(
        "API call p50 ({ROUNDS} turns of {CALLS} calls each): without the console {without:.0} us, \
         with its operator and calls views open {open:.0} us; open / without = {:.3}",
        open / without
    );
}
