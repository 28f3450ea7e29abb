//! `cfhost serve` against hostile HTTP clients (issue 17): a connection cap, header-read and
//! idle timeouts, a request-time limit, each set in `[serve.clients]`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use super::serve::{OPERATOR, Server, request, request_to, start_with};

/// Connects to `server` without sending anything.
fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads until the server closes `stream` (or 10 s pass); returns what it sent and when it
/// closed, from `since`.
fn until_closed(stream: &mut TcpStream, since: Instant) -> (String, Duration) {
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    (
        String::from_utf8_lossy(&received).into_owned(),
        since.elapsed(),
    )
}

#[test]
fn past_the_connection_cap_a_client_gets_503_and_is_closed_while_others_are_kept() {
    let server = start_with("[serve.clients]\nmax_connections = 4\n");
    // `start_with` waited for /healthz on connections of its own, now closed.
    std::thread::sleep(Duration::from_millis(200));
    let held: Vec<TcpStream> = (0..4).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = connect(&server);
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (answer, _) = until_closed(&mut extra, Instant::now());
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        answer.contains(r#"{"error":"too many connections"}"#),
        "{answer:?}"
    );
    // A held connection is still served.
    let mut first = held.into_iter().next().unwrap();
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (answer, _) = until_closed(&mut first, Instant::now());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    server.wait_until("the refusal is logged", || {
        server
            .log()
            .contains("HTTP connection limit of 4 reached: refused 1 connection(s)")
    });
    // Once the others are gone, new clients are served again.
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    server.wait_until("a new client is served", || {
        request(&server, "GET", "/healthz", None, None).0 == 200
    });
}

#[test]
fn a_client_that_trickles_its_headers_is_cut_off_at_the_header_read_timeout() {
    let server =
        start_with("[serve.clients]\nheader_read_timeout_ms = 500\nidle_timeout_ms = 30000\n");
    let mut stream = connect(&server);
    let started = Instant::now();
    stream.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    // A byte every 100 ms: never idle, never done.
    let mut cut_off = None;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        if stream.write_all(b"X").is_err() {
            cut_off = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        stream.set_nonblocking(true).unwrap();
        let read = stream.read(&mut probe);
        stream.set_nonblocking(false).unwrap();
        if read.is_ok() {
            cut_off = Some(started.elapsed());
            break;
        }
    }
    let cut_off = cut_off.expect("the trickling client was never cut off");
    assert!(
        cut_off >= Duration::from_millis(400) && cut_off < Duration::from_secs(3),
        "cut off after {cut_off:?}"
    );
}

#[test]
fn a_silent_connection_is_closed_at_the_idle_timeout_and_a_kept_alive_one_too() {
    let server =
        start_with("[serve.clients]\nheader_read_timeout_ms = 30000\nidle_timeout_ms = 500\n");
    let mut silent = connect(&server);
    let (_, closed) = until_closed(&mut silent, Instant::now());
    assert!(
        closed >= Duration::from_millis(400) && closed < Duration::from_secs(3),
        "a silent connection closed after {closed:?}"
    );
    // A kept-alive connection is answered, then closed once idle.
    let mut kept = connect(&server);
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let since = Instant::now();
    let (answer, closed) = until_closed(&mut kept, since);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        closed >= Duration::from_millis(400) && closed < Duration::from_secs(3),
        "a kept-alive connection closed after {closed:?}"
    );
    assert!(server.log().contains("closing an HTTP connection idle for"));
}

#[test]
fn a_request_past_the_request_timeout_gets_503_and_its_call_goes_on() {
    // `slow` spins for 1.5 s in its first node, then its callback publishes `after-shutdown`.
    let server = start_with("[serve.clients]\nrequest_timeout_ms = 300\n");
    let started = Instant::now();
    let (status, body) = request_to(
        server.port,
        "POST",
        "/v1/accounts/acme-missed/calls",
        Some(OPERATOR),
        Some(&json!({"to": "slow", "publish": true})),
    );
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not answered within 300ms")),
        "{body}"
    );
    assert!(
        took < Duration::from_millis(1400),
        "answered after {took:?}"
    );
    let notifications = server.dir.path().join("notifications.jsonl");
    server.wait_until("the call goes on and its callback publishes", || {
        std::fs::read_to_string(&notifications).is_ok_and(|f| f.contains("after-shutdown"))
    });
    assert!(
        server
            .log()
            .contains("an HTTP request took longer than 300ms")
    );
    // A request within the limit is answered as before.
    assert_eq!(request(&server, "GET", "/healthz", None, None).0, 200);
}
