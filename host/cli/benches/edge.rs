//! Many nodes behind the SIP edge (issue 28), in one run on loopback: a private PostgreSQL, a
//! private Kamailio of `deploy/kamailio/kamailio.cfg` in front of two `cfhost serve` nodes, and
//! a third node alone taking the carrier itself, for comparison. SIPp is the carrier: each call
//! straight to voicemail, hung up 1 s after it is answered.
//!
//! - each rate for 10 s through the edge, then to the node alone: failed calls, CPU per call of
//!   the edge and the nodes;
//! - setup time (INVITE to 200, as the carrier sees it, in microseconds: SIPp counts whole
//!   milliseconds) p50/p99 over 200 calls placed one after another, through the edge and to the
//!   node alone;
//! - failover: 200 calls at 20/s, one node SIGKILLed 4 s in: calls failed, and seconds until
//!   the edge took the node out, with the per-call retry and without (`WITHOUT_NODE_RETRY`).
//!
//! `cargo bench -p cfhost --bench edge` prints each step.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cfhost_tests::kamailio::{Carrier, Edge};
use cfhost_tests::postgres::Database;
use cfhost_tests::sipp::{Sipp, SippRun, free_udp_port, scenario};
use cfhost_tests::{copy_dir, free_port, repo_root};

const EDGE_IP: &str = "127.0.0.20";
const NODE_IPS: [&str; 2] = ["127.0.0.21", "127.0.0.22"];
const ALONE_IP: &str = "127.0.0.24";
const CARRIER_IP: &str = "127.0.0.23";
const DIALED: &str = "+15557770001";
const RATES: [u32; 5] = [100, 200, 300, 400, 500];
/// Calls placed one after another for the setup times.
const TIMED_CALLS: usize = 200;
const STEP_SECS: u32 = 10;

/// A `cfhost serve` process, killed when dropped.
struct Node {
    child: Child,
    sip: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Node {
    /// A node on the database at `url`, taking SIP on `ip`: behind `edge`, or alone with the
    /// carrier as its trunk.
    fn start(url: &str, ip: &str, edge: Option<SocketAddr>) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let sip = format!("{ip}:{}", free_udp_port(ip));
        let mut command = Command::new(env!("CARGO_BIN_EXE_cfhost"));
        command
            .arg("serve")
            .arg("--data")
            .arg(dir.path().join("data"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--notifications")
            .arg(dir.path().join("notifications.jsonl"))
            .env("CFHOST_CACHE_DIR", dir.path().join("cache"))
            .env("CFHOST_STORE__URL", url)
            .env("CFHOST_SIP__LISTEN", &sip)
            .env("CFHOST_SIP__MAX_CPS", "2000")
            .env("RUST_LOG", "error");
        match edge {
            Some(edge) => command
                .env(
                    "CFHOST_SIP__EDGE__ADDRESSES",
                    format!("[\"{}\"]", edge.ip()),
                )
                .env("CFHOST_SIP__EDGE__PROXY", edge.to_string()),
            None => command.env(
                "CFHOST_SIP__TRUNKS__CARRIER__ADDRESSES",
                format!("[\"{CARRIER_IP}\"]"),
            ),
        };
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cfhost serve starts");
        let stderr = child.stderr.take().unwrap();
        let (up, started) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with("cfhost serve: SIP on ") {
                    let _ = up.send(());
                }
            }
        });
        started
            .recv_timeout(Duration::from_secs(120))
            .expect("the node takes SIP");
        Node {
            child,
            sip: sip.parse().unwrap(),
            _dir: dir,
        }
    }

    /// The CPU time the process has used so far.
    fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |at: usize| {
            fields
                .get(at)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Duration::from_millis((ticks(11) + ticks(12)) * 10)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What SIPp saw of one run: calls that succeeded and failed.
struct Run {
    succeeded: u64,
    failed: u64,
}

/// SIPp as the carrier: `calls` calls at `rate` to `to`, each hung up 1 s after its 200; runs
/// `during` (given the time the calls started) while they go, then returns SIPp's counts.
fn carrier(to: SocketAddr, rate: u32, calls: u32, during: impl FnOnce(Instant)) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut run = SippRun::new(
        scenario("carrier_via_edge", &[], dir.path()),
        CARRIER_IP,
        free_udp_port(CARRIER_IP),
    );
    run.remote = Some(to);
    run.service = DIALED;
    run.keys = vec![("caller", "+15550001234".to_string())];
    run.calls = calls;
    run.pause_ms = 1000;
    let stats = dir.path().join("stats.csv");
    run.extra = [
        "-r",
        &rate.to_string(),
        "-l",
        &(rate * 4).to_string(),
        "-trace_stat",
        "-fd",
        "1",
        "-stf",
        &stats.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let sipp = Sipp::start(run);
    during(Instant::now());
    let _ = sipp.wait(Duration::from_secs(u64::from(calls / rate.max(1)) + 180));
    let (succeeded, failed) = counts(&stats);
    Run { succeeded, failed }
}

/// SIPp's final counts: calls that succeeded, failed.
fn counts(stats: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(stats).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let (Some(header), Some(last)) = (lines.first(), lines.last()) else {
        return (0, 0);
    };
    let header: Vec<&str> = header.split(';').collect();
    let last: Vec<&str> = last.split(';').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|at| last.get(at)?.trim().parse().ok())
            .unwrap_or(0)
    };
    (column("SuccessfulCall(C)"), column("FailedCall(C)"))
}

/// The seed: the examples' accounts and a callflow straight to voicemail.
fn seed(database: &Database) {
    let seed = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/data"), seed.path());
    let callflow = serde_json::json!({"numbers": [DIALED],
        "flow": {"module": "voicemail", "data": {"id": "box1"}}});
    std::fs::write(
        seed.path()
            .join("accounts/acme-missed/callflows/edge_vm.json"),
        callflow.to_string(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cfhost"))
        .args(["store", "import"])
        .arg(seed.path())
        .env("CFHOST_STORE__URL", database.url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// The headers `name` of a SIP message, in order (their values).
fn headers<'a>(message: &'a str, name: &str) -> Vec<&'a str> {
    message
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
        .collect()
}

/// `count` calls to `to`, one after another, each hung up at once: each one's INVITE-to-200
/// time, in ms (from a socket of its own, so microseconds count).
fn setup_times_one_by_one(to: SocketAddr, count: usize) -> Vec<f64> {
    let socket = UdpSocket::bind(format!("{CARRIER_IP}:0")).unwrap();
    let media = UdpSocket::bind(format!("{CARRIER_IP}:0")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let me = socket.local_addr().unwrap();
    let rtp = media.local_addr().unwrap().port();
    let mut times = Vec::with_capacity(count);
    let mut buf = vec![0u8; 65536];
    for n in 0..count {
        let call_id = format!("timed-{n}-{}@{CARRIER_IP}", std::process::id());
        let sdp = format!(
            "v=0\r\no=carrier 1 1 IN IP4 {CARRIER_IP}\r\ns=-\r\nc=IN IP4 {CARRIER_IP}\r\nt=0 0\r\n\
             m=audio {rtp} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        );
        let from = format!("<sip:+15550001234@{CARRIER_IP}>;tag=t{n}");
        let invite = format!(
            "INVITE sip:{DIALED}@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-i{n};rport\r\n\
             From: {from}\r\nTo: <sip:{DIALED}@{to}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:+15550001234@{me}>\r\nMax-Forwards: 70\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        let sent = Instant::now();
        socket.send_to(invite.as_bytes(), to).unwrap();
        let answer = loop {
            let Ok(length) = socket.recv(&mut buf) else {
                panic!("call {n} to {to}: no 200");
            };
            let text = String::from_utf8_lossy(&buf[..length]).into_owned();
            if text.starts_with("SIP/2.0 200") && text.contains(&call_id) {
                break text;
            }
            assert!(
                text.starts_with("SIP/2.0 1") || !text.contains(&call_id),
                "call {n} to {to}: {}",
                text.lines().next().unwrap_or_default()
            );
        };
        times.push(sent.elapsed().as_secs_f64() * 1e3);
        // ACK and BYE along the route the 200 set (through the edge, when it is there).
        let to_header = headers(&answer, "To")[0].to_string();
        let contact = headers(&answer, "Contact")[0]
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_string();
        let routes: String = headers(&answer, "Record-Route")
            .iter()
            .rev()
            .flat_map(|value| value.split(','))
            .map(|route| format!("Route: {}\r\n", route.trim()))
            .collect();
        for (cseq, method) in [(1, "ACK"), (2, "BYE")] {
            let request = format!(
                "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{method}{n};rport\r\n\
                 {routes}From: {from}\r\nTo: {to_header}\r\nCall-ID: {call_id}\r\n\
                 CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            socket.send_to(request.as_bytes(), to).unwrap();
        }
        // The BYE's 200 (anything else of the call before it is let go).
        while let Ok(length) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..length]);
            if text.starts_with("SIP/2.0 200") && text.contains("BYE") && text.contains(&call_id) {
                break;
            }
        }
    }
    times
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p / 100.0).round() as usize]
}

/// Two nodes behind an edge started with `defines`.
async fn cluster(database: &Database, defines: &[&str]) -> (Vec<Node>, Edge) {
    let edge_addr: SocketAddr = format!("{EDGE_IP}:{}", free_udp_port(EDGE_IP))
        .parse()
        .unwrap();
    let nodes: Vec<Node> = NODE_IPS
        .iter()
        .map(|ip| Node::start(&database.url(), ip, Some(edge_addr)))
        .collect();
    let addresses: Vec<SocketAddr> = nodes.iter().map(|n| n.sip).collect();
    let carriers = [Carrier {
        ip: CARRIER_IP,
        name: "carrier",
    }];
    let edge = Edge::start_defining(database, edge_addr, &addresses, &carriers, defines).await;
    (nodes, edge)
}

/// 200 calls at 20/s, the first node SIGKILLed 4 s in: calls failed, and seconds until the
/// edge took the node out (it logs the first INVITE the node did not take, or its probe).
fn failover(nodes: &mut [Node], edge: &Edge) -> (u64, u64, f64) {
    let mut out_after = f64::NAN;
    let run = carrier(edge.addr, 20, 200, |started| {
        std::thread::sleep(Duration::from_secs(4).saturating_sub(started.elapsed()));
        nodes[0].child.kill().unwrap();
        let killed = Instant::now();
        let down = format!("node sip:{}", nodes[0].sip.ip());
        while killed.elapsed() < Duration::from_secs(30) {
            let log = edge.log();
            let marked = |l: &str| l.contains("is down") || l.contains("marking it down");
            if log.lines().any(|l| l.contains(&down) && marked(l)) {
                out_after = killed.elapsed().as_secs_f64();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    (run.succeeded, run.failed, out_after)
}

#[tokio::main]
async fn main() {
    let database = Database::start().await;
    seed(&database);
    let (nodes, edge) = cluster(&database, &[]).await;
    let alone = Node::start(&database.url(), ALONE_IP, None);
    // Warm-up: the nodes' module caches, the database's buffers.
    carrier(edge.addr, 20, 40, |_| {});
    carrier(alone.sip, 20, 40, |_| {});
    let through = setup_times_one_by_one(edge.addr, TIMED_CALLS);
    let direct = setup_times_one_by_one(alone.sip, TIMED_CALLS);
    println!(
        "setup, {TIMED_CALLS} calls one by one: through the edge p50 {:.2} ms p99 {:.2} ms; \
         to the node alone p50 {:.2} ms p99 {:.2} ms",
        percentile(&through, 50.0),
        percentile(&through, 99.0),
        percentile(&direct, 50.0),
        percentile(&direct, 99.0)
    );
    println!(
        "rate | edge, two nodes: failed, edge CPU ms/call, nodes CPU ms/call \
         | node alone: failed, CPU ms/call"
    );
    for rate in RATES {
        let calls = rate * STEP_SECS;
        let (edge_cpu, nodes_cpu) = (
            edge.cpu_time(),
            nodes.iter().map(Node::cpu_time).sum::<Duration>(),
        );
        let through = carrier(edge.addr, rate, calls, |_| {});
        let edge_ms = (edge.cpu_time() - edge_cpu).as_secs_f64() * 1e3 / f64::from(calls);
        let nodes_ms =
            (nodes.iter().map(Node::cpu_time).sum::<Duration>() - nodes_cpu).as_secs_f64() * 1e3
                / f64::from(calls);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let alone_cpu = alone.cpu_time();
        let direct = carrier(alone.sip, rate, calls, |_| {});
        let alone_ms = (alone.cpu_time() - alone_cpu).as_secs_f64() * 1e3 / f64::from(calls);
        println!(
            "{rate} | {} of {calls}, {edge_ms:.3}, {nodes_ms:.3} | {} of {calls}, {alone_ms:.3}",
            through.failed, direct.failed,
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    drop((nodes, edge, alone));

    for (label, defines) in [
        ("with the per-call retry", &[][..]),
        (
            "probes only (WITHOUT_NODE_RETRY)",
            &["WITHOUT_NODE_RETRY"][..],
        ),
    ] {
        let (mut nodes, edge) = cluster(&database, defines).await;
        carrier(edge.addr, 20, 40, |_| {});
        let (succeeded, failed, out_after) = failover(&mut nodes, &edge);
        println!(
            "failover, {label}: {failed} of {} calls failed; the dead node out after {out_after:.2} s",
            succeeded + failed
        );
    }
}
