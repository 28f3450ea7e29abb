//! Many nodes behind the SIP edge, as processes on loopback: a private PostgreSQL, two
//! `cfhost serve` nodes with `[sip.edge]` on it, and a private Kamailio running
//! `deploy/kamailio/kamailio.cfg` in front ([`Edge`]); SIPp as the carrier (127.0.0.23, let in
//! by address) and as devices (127.0.0.26), which register at the edge.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use cfhost_tests::kamailio::{Carrier, Edge};
use cfhost_tests::postgres::Database;
use cfhost_tests::sipp::{Sipp, SippRun, free_udp_port, scenario};
use serde_json::{Value, json};

use crate::serve::{OPERATOR, Server, request, sip_address, start_logging};
use crate::store::store_command;
use cfhost_tests::copy_dir;

const EDGE_IP: &str = "127.0.0.20";
const NODE_IPS: [&str; 2] = ["127.0.0.21", "127.0.0.22"];
const CARRIER_IP: &str = "127.0.0.23";
const DEVICE_IP: &str = "127.0.0.26";
const REALM: &str = "acme-missed.sip.example.com";
const CALLER: &str = "+15550001234";
/// Straight to voicemail.
const VOICEMAIL_NUMBER: &str = "+15557770001";
/// The user who owns the device, then voicemail; not registered: its own branch.
const USER_NUMBER: &str = "+15557770002";
const WAIT: Duration = Duration::from_secs(60);

/// The database, two nodes and the edge in front of them.
struct Cluster {
    nodes: Vec<Server>,
    edge: Edge,
    database: Database,
    runtime: tokio::runtime::Runtime,
}

impl Cluster {
    fn start() -> Cluster {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let database = runtime.block_on(Database::start());
        let seed = tempfile::tempdir().unwrap();
        write_seed(seed.path());
        let import = store_command(&database.url(), &["import", seed.path().to_str().unwrap()]);
        assert!(import.status.success(), "{import:?}");
        let edge_addr: SocketAddr = format!("{EDGE_IP}:{}", free_udp_port(EDGE_IP))
            .parse()
            .unwrap();
        let nodes: Vec<Server> = NODE_IPS
            .iter()
            .map(|ip| node(&database.url(), ip, edge_addr))
            .collect();
        let addresses: Vec<SocketAddr> = nodes.iter().map(sip_address).collect();
        let carriers = [Carrier {
            ip: CARRIER_IP,
            name: "carrier-a",
        }];
        let edge = runtime.block_on(Edge::start(&database, edge_addr, &addresses, &carriers));
        Cluster {
            nodes,
            edge,
            database,
            runtime,
        }
    }

    /// The calls each node ran to their end, by result, once they add up to `count`.
    fn calls_ended(&self, count: usize) -> Vec<Vec<Value>> {
        let started = Instant::now();
        loop {
            let per_node: Vec<Vec<Value>> = self
                .nodes
                .iter()
                .map(|node| {
                    let (status, body) =
                        request(node, "GET", "/v1/sip/calls", Some(OPERATOR), None);
                    assert_eq!(status, 200, "{body}");
                    body.as_array().cloned().unwrap_or_default()
                })
                .collect();
            let total: usize = per_node.iter().map(Vec::len).sum();
            if total >= count {
                return per_node;
            }
            assert!(
                started.elapsed() < WAIT,
                "{total} of {count} calls ended; the edge's log:\n{}",
                self.edge.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How many registrations the edge keeps in the database for `username`.
    fn registrations(&self, username: &str) -> i64 {
        self.runtime.block_on(async {
            let client = self.database.connect().await.unwrap();
            client
                .query_one(
                    "SELECT count(*) FROM location WHERE username = $1 AND domain = $2",
                    &[&username, &REALM],
                )
                .await
                .unwrap()
                .get(0)
        })
    }
}

/// The examples' accounts, with a user owning a device (2001) and the two numbers.
fn write_seed(root: &Path) {
    copy_dir(&cfhost_tests::repo_root().join("examples/data"), root);
    let account = root.join("accounts/acme-missed");
    let write = |file: &str, value: Value| {
        let path = account.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, value.to_string()).unwrap();
    };
    write("users/edgeuser.json", json!({"email": "edge@example.com"}));
    write(
        "devices/edgephone.json",
        json!({"name": "edge phone", "owner_id": "edgeuser",
               "sip": {"username": "2001", "password": "s3cret"}}),
    );
    write(
        "callflows/edge_vm.json",
        json!({"numbers": [VOICEMAIL_NUMBER],
               "flow": {"module": "voicemail", "data": {"id": "box1"}}}),
    );
    write(
        "callflows/edge_user.json",
        json!({"numbers": [USER_NUMBER],
               "flow": {"module": "user", "data": {"id": "edgeuser", "timeout": 10},
                        "children": {
                            "_": {"module": "voicemail", "data": {"id": "box1"}},
                            "USER_NOT_REGISTERED": {"module": "voicemail",
                                                    "data": {"id": "unregistered"}}}}}),
    );
}

/// A `cfhost serve` node on the database at `url`, taking SIP on `ip` behind the edge.
fn node(url: &str, ip: &str, edge: SocketAddr) -> Server {
    let listen = format!("{ip}:{}", free_udp_port(ip));
    let proxy = edge.to_string();
    let addresses = format!("[\"{}\"]", edge.ip());
    start_logging(
        "",
        |_| {},
        None,
        &[
            ("CFHOST_STORE__URL", url),
            ("CFHOST_SIP__LISTEN", &listen),
            ("CFHOST_SIP__EDGE__ADDRESSES", &addresses),
            ("CFHOST_SIP__EDGE__PROXY", &proxy),
        ],
    )
}

/// SIPp as the carrier: `calls` calls to `dialed` through the edge, each hung up `pause_ms`
/// after it is answered, `rate` a second.
fn carrier(edge: &Edge, dialed: &str, calls: u32, rate: u32, pause_ms: u64) -> Sipp {
    carrier_with(edge, dialed, calls, rate, pause_ms, Vec::new())
}

/// [`carrier`], with SIPp's counts written to a file of its own, read by [`sipp_counts`].
fn counted_carrier(
    edge: &Edge,
    dialed: &str,
    calls: u32,
    rate: u32,
    pause_ms: u64,
) -> (Sipp, tempfile::TempDir) {
    let stats = tempfile::tempdir().unwrap();
    let file = stats.path().join("stats.csv").display().to_string();
    let extra = ["-trace_stat", "-fd", "1", "-stf", &file]
        .map(String::from)
        .to_vec();
    let sipp = carrier_with(edge, dialed, calls, rate, pause_ms, extra);
    (sipp, stats)
}

/// [`carrier`] with `extra` arguments for SIPp.
fn carrier_with(
    edge: &Edge,
    dialed: &str,
    calls: u32,
    rate: u32,
    pause_ms: u64,
    extra: Vec<String>,
) -> Sipp {
    let dir = tempfile::tempdir().unwrap();
    let mut run = SippRun::new(
        scenario("carrier_via_edge", &[], dir.path()),
        CARRIER_IP,
        free_udp_port(CARRIER_IP),
    );
    run.remote = Some(edge.addr);
    run.service = dialed;
    run.keys = vec![("caller", CALLER.to_string())];
    run.calls = calls;
    run.pause_ms = pause_ms;
    run.extra = ["-r", &rate.to_string(), "-l", &calls.to_string()]
        .map(String::from)
        .to_vec();
    run.extra.extend(extra);
    Sipp::start(run)
}

/// SIPp's final counts in `stats` (from [`counted_carrier`]): calls that succeeded, failed.
fn sipp_counts(stats: &tempfile::TempDir) -> (u64, u64) {
    let text = std::fs::read_to_string(stats.path().join("stats.csv")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let header: Vec<&str> = lines.first().expect("a header").split(';').collect();
    let last: Vec<&str> = lines.last().expect("a line of counts").split(';').collect();
    let column = |name: &str| -> u64 {
        let at = header.iter().position(|h| *h == name).expect(name);
        last[at].trim().parse().unwrap()
    };
    (column("SuccessfulCall(C)"), column("FailedCall(C)"))
}

/// SIPp as device 2001 registering at the edge from `port` with `password`.
fn register(edge: &Edge, port: u16, password: &str, scenario_name: &str) -> Sipp {
    let dir = tempfile::tempdir().unwrap();
    let mut run = SippRun::new(scenario(scenario_name, &[], dir.path()), DEVICE_IP, port);
    run.remote = Some(edge.addr);
    run.service = "2001";
    run.keys = vec![("realm", REALM.to_string()), ("expires", "120".to_string())];
    run.credentials = Some(("2001", password));
    run.auth_uri = Some(REALM.to_string());
    Sipp::start(run)
}

/// The calls `node` has in progress (`/metrics`).
fn in_progress(node: &Server) -> u64 {
    let (status, body) = request(node, "GET", "/metrics", Some(OPERATOR), None);
    assert_eq!(status, 200);
    let text = body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|line| line.strip_prefix("cfhost_sip_calls_in_progress "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the gauge")
}

/// The results of `calls`' entries.
fn results(calls: &[Value]) -> Vec<String> {
    calls
        .iter()
        .map(|call| call["result"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn carrier_calls_through_the_edge_are_spread_over_both_nodes() {
    let cluster = Cluster::start();
    carrier(&cluster.edge, VOICEMAIL_NUMBER, 40, 10, 500).expect_success(WAIT);
    let per_node = cluster.calls_ended(40);
    let counts: Vec<usize> = per_node.iter().map(Vec::len).collect();
    assert_eq!(counts.iter().sum::<usize>(), 40, "{counts:?}");
    assert!(
        counts.iter().all(|&n| n >= 15),
        "each node takes its share: {counts:?}"
    );
    for call in per_node.iter().flatten() {
        assert_eq!(call["account_id"], "acme-missed", "{call}");
        let trace = call["trace"].to_string();
        assert!(
            trace.contains("carrier-a"),
            "the edge named the carrier: {trace}"
        );
    }
}

#[test]
fn a_device_registers_at_the_edge_and_is_rung_by_whichever_node_takes_the_call() {
    let cluster = Cluster::start();
    let port = free_udp_port(DEVICE_IP);
    register(&cluster.edge, port, "wrong", "register_refused").expect_success(WAIT);
    assert_eq!(
        cluster.registrations("2001"),
        0,
        "a wrong password is a 403"
    );

    // Not registered: the user's USER_NOT_REGISTERED branch, as on one node.
    carrier(&cluster.edge, USER_NUMBER, 1, 1, 500).expect_success(WAIT);
    let ended = cluster.calls_ended(1);
    let call = ended.iter().flatten().next().unwrap();
    let trace = call["trace"].to_string();
    assert!(
        trace.contains("answered 480") && trace.contains("failed: USER_NOT_REGISTERED"),
        "{trace}"
    );
    assert!(
        trace.contains("node voicemail at flow.children.USER_NOT_REGISTERED"),
        "the branch ran: {trace}"
    );

    register(&cluster.edge, port, "s3cret", "register").expect_success(WAIT);
    assert_eq!(cluster.registrations("2001"), 1);
    // Two calls at a time, one to each node (round robin): each rings the device through the
    // edge. First a device as RFC 3261 has it (its 180 and 200 carry the edge's
    // Record-Route), then one that leaves it out and answers where the INVITE came from (the
    // spike's: the node's BYE then goes to it directly and its 200 goes to the edge, which
    // drops it). Either way the node ends the call as soon as the carrier's BYE comes.
    for device_scenario in ["device_answer_via_edge", "device_answer"] {
        let dir = tempfile::tempdir().unwrap();
        let mut device = SippRun::new(scenario(device_scenario, &[], dir.path()), DEVICE_IP, port);
        device.service = "2001";
        device.calls = 2;
        let device = Sipp::start(device);
        carrier(&cluster.edge, USER_NUMBER, 2, 1, 1000).expect_success(WAIT);
        device.expect_success(WAIT);
        let hung_up = Instant::now();
        for node in &cluster.nodes {
            while in_progress(node) > 0 {
                assert!(
                    hung_up.elapsed() < Duration::from_secs(2),
                    "{device_scenario}: a bridged call lingers on a node after its BYE:\n{}",
                    node.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    // A password changed in the store counts at the edge's next authentication.
    cluster.runtime.block_on(cluster.database.execute(
        "UPDATE cfhost_documents SET document = jsonb_set(document, '{sip,password}', '\"n3w\"') \
         WHERE kind = 'devices' AND id = 'edgephone'",
    ));
    register(&cluster.edge, port, "s3cret", "register_refused").expect_success(WAIT);
    register(&cluster.edge, port, "n3w", "register").expect_success(WAIT);
    let per_node = cluster.calls_ended(5);
    let bridged: Vec<usize> = per_node
        .iter()
        .map(|calls| results(calls).iter().filter(|r| *r == "bridged").count())
        .collect();
    assert_eq!(bridged.iter().sum::<usize>(), 4, "{per_node:?}");
    assert!(
        bridged.iter().all(|&n| n >= 1),
        "whichever node takes the call rings the device: {bridged:?}"
    );
}

#[test]
fn a_devices_call_through_the_edge_runs_as_the_device_and_forged_identities_are_ignored() {
    let cluster = Cluster::start();
    // The device calls through the edge (its credentials checked there): a device call.
    let dir = tempfile::tempdir().unwrap();
    let mut run = SippRun::new(
        scenario("device_call_via_edge", &[], dir.path()),
        DEVICE_IP,
        free_udp_port(DEVICE_IP),
    );
    run.remote = Some(cluster.edge.addr);
    run.service = VOICEMAIL_NUMBER;
    run.keys = vec![("realm", REALM.to_string()), ("user", "2001".to_string())];
    run.credentials = Some(("2001", "s3cret"));
    run.auth_uri = Some(format!("{VOICEMAIL_NUMBER}@{REALM}"));
    run.pause_ms = 500;
    Sipp::start(run).expect_success(WAIT);

    // A carrier that writes the edge's headers itself: the edge removes them.
    let forged = "      Max-Forwards: 70\n      X-Cfhost-Auth-User: 2001\n      \
                  X-Cfhost-Auth-Realm: acme-missed.sip.example.com\n      \
                  X-Cfhost-Trunk: someone-else\n      Content-Type: application/sdp";
    let dir = tempfile::tempdir().unwrap();
    let mut run = SippRun::new(
        scenario(
            "carrier_via_edge",
            &[(
                "      Max-Forwards: 70\n      Content-Type: application/sdp",
                forged,
            )],
            dir.path(),
        ),
        CARRIER_IP,
        free_udp_port(CARRIER_IP),
    );
    run.remote = Some(cluster.edge.addr);
    run.service = VOICEMAIL_NUMBER;
    run.keys = vec![("caller", CALLER.to_string())];
    run.pause_ms = 500;
    Sipp::start(run).expect_success(WAIT);

    let ended: Vec<Value> = cluster.calls_ended(2).into_iter().flatten().collect();
    let traces: Vec<String> = ended.iter().map(|call| call["trace"].to_string()).collect();
    assert!(
        traces
            .iter()
            .any(|t| t.contains("from 2001") && t.contains("(device edgephone)")),
        "the device's call runs as the device: {traces:#?}"
    );
    let carrier_call = traces
        .iter()
        .find(|t| t.contains(&format!("from {CALLER}")))
        .expect("the carrier's call");
    assert!(
        carrier_call.contains("(trunk carrier-a)"),
        "the forged headers changed nothing: {carrier_call}"
    );

    // Sent straight to a node by anyone but the edge, the headers are not believed either:
    // it is a stranger, challenged for credentials.
    let node = sip_address(&cluster.nodes[0]);
    let socket = std::net::UdpSocket::bind(format!("{CARRIER_IP}:0")).unwrap();
    let me = socket.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:{VOICEMAIL_NUMBER}@{node} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKforged\r\n\
         From: <sip:2001@{REALM}>;tag=f\r\nTo: <sip:{VOICEMAIL_NUMBER}@{node}>\r\n\
         Call-ID: forged@test\r\nCSeq: 1 INVITE\r\nContact: <sip:2001@{me}>\r\n\
         X-Cfhost-Auth-User: 2001\r\nX-Cfhost-Auth-Realm: {REALM}\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    );
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket.send_to(invite.as_bytes(), node).unwrap();
    let mut answers = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        answers.push(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        );
    }
    assert!(
        answers.iter().any(|a| a.starts_with("SIP/2.0 407")),
        "{answers:?}"
    );
    assert!(
        !answers.iter().any(|a| a.starts_with("SIP/2.0 200")),
        "{answers:?}"
    );
}

#[test]
fn a_node_killed_under_load_costs_only_the_calls_it_carried() {
    let mut cluster = Cluster::start();
    // 100 calls at 10/s, each held 1 s once answered: both nodes busy when one dies.
    let (calls, stats) = counted_carrier(&cluster.edge, VOICEMAIL_NUMBER, 100, 10, 1000);
    std::thread::sleep(Duration::from_secs(3));
    let carried = in_progress(&cluster.nodes[0]);
    cluster.nodes[0].child.kill().unwrap();
    cluster.nodes[0].child.wait().unwrap();
    let (_, log) = calls.wait(Duration::from_secs(180));
    let (succeeded, failed) = sipp_counts(&stats);
    eprintln!("killed a node carrying {carried} calls: {succeeded} succeeded, {failed} failed");
    assert_eq!(succeeded + failed, 100, "{log}");
    // A call whose INVITE reached the node just before it died is one it carried too.
    assert!(
        failed <= carried + 2,
        "{failed} calls failed; the node carried {carried} when it died:\n{log}\n{}",
        cluster.edge.log()
    );
    assert!(
        cluster.edge.log().contains("is down"),
        "the edge took the node out:\n{}",
        cluster.edge.log()
    );
}

#[test]
fn a_node_stopped_with_sigterm_under_load_fails_no_call() {
    let mut cluster = Cluster::start();
    let (calls, stats) = counted_carrier(&cluster.edge, VOICEMAIL_NUMBER, 100, 10, 1000);
    std::thread::sleep(Duration::from_secs(3));
    cluster.nodes[0].terminate();
    let (code, log) = calls.wait(Duration::from_secs(180));
    let (succeeded, failed) = sipp_counts(&stats);
    assert_eq!(
        (succeeded, failed, code),
        (100, 0, 0),
        "{log}\n{}",
        cluster.edge.log()
    );
    let status = cluster.nodes[0].child.wait().unwrap();
    assert!(status.success(), "the drained node exits 0: {status}");
}
