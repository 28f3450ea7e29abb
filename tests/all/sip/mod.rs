//! Real calls over SIP, against SIPp as carriers and devices on loopback: a trunk on
//! 127.0.0.2, devices on 127.0.0.1 that register with digest authentication, strangers on
//! 127.0.0.3. Each test starts its own host and SIP service on free ports.

mod contract;
mod identity;
mod long_calls;
mod polyglot;
mod store;
mod transports;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cfhost_sip::{SipConfig, SipService, TrunkConfig};
use cfhost_tests::sipp::{Sipp, SippRun, free_udp_port, scenario};
use cfhost_tests::{Builder, TestHost};
use serde_json::{Value, json};

const REALM: &str = "acme.example.com";
const DIALED: &str = "+15554441111";
const CALLER: &str = "+15550001234";
const TRUNK_IP: &str = "127.0.0.2";
const DEVICE_IP: &str = "127.0.0.1";
const STRANGER_IP: &str = "127.0.0.3";
const WAIT: Duration = Duration::from_secs(60);

/// The seed's missed-call flow over SIP: the alert, then user u1 (3 s), then voicemail; a busy
/// user goes to its `USER_BUSY` child.
fn seed_flow() -> Value {
    json!({
        "numbers": [DIALED, "2000"],
        "flow": {
            "module": "missed_call_alert",
            "data": {"recipients": [{"type": "email", "id": "boss@example.com"}]},
            "children": {"_": {
                "module": "user",
                "data": {"id": "u1", "timeout": 3},
                "children": {
                    "_": {"module": "voicemail", "data": {"id": "box1", "max_message_length": 30}},
                    "USER_BUSY": {"module": "test_fixture",
                                  "data": {"register": [{"template_id": "took-busy"}]}}
                }
            }}
        }
    })
}

async fn start() -> (TestHost, SipService) {
    start_with(|builder| builder).await
}

/// [`start`], with more data from `extra`.
async fn start_with(extra: impl FnOnce(Builder) -> Builder) -> (TestHost, SipService) {
    start_full(extra, sip_config()).await
}

/// [`start`], with SIP configured as `config` says.
async fn start_configured(config: SipConfig) -> (TestHost, SipService) {
    start_full(|builder| builder, config).await
}

async fn start_full(
    extra: impl FnOnce(Builder) -> Builder,
    config: SipConfig,
) -> (TestHost, SipService) {
    let host = extra(Builder::new())
        .account_document("acme", "account.json", json!({"realm": REALM, "name": "Acme"}))
        .user("acme", "u1", json!({"email": "u1@example.com"}))
        .user("acme", "u2", json!({"email": "u2@example.com"}))
        .write_json(
            "accounts/acme/devices/d1.json",
            json!({"name": "desk", "owner_id": "u1", "sip": {"username": "1001", "password": "secret"}}),
        )
        .write_json(
            "accounts/acme/devices/d2.json",
            json!({"name": "lobby", "owner_id": "u2", "sip": {"username": "1002", "password": "other"}}),
        )
        .callflow("acme", "seed", seed_flow())
        .start()
        .await;
    assert!(host.report.data.errors.is_empty(), "{:?}", host.report.data);
    let sip = SipService::start(host.shared_runtime(), &config)
        .await
        .expect("SIP starts");
    (host, sip)
}

fn sip_config() -> SipConfig {
    let mut config = SipConfig {
        listen: "127.0.0.1:0".to_string(),
        rtp_ports: "44000-44999".to_string(),
        nonce_lifetime_secs: 1,
        ..SipConfig::default()
    };
    config.trunks.insert(
        "carrier".to_string(),
        TrunkConfig {
            addresses: vec![format!("{TRUNK_IP}/32")],
        },
    );
    config
}

/// Runs SIPp to its end on a blocking thread; fails the test unless it succeeded.
async fn succeeds(sipp: Sipp) {
    tokio::task::spawn_blocking(move || sipp.expect_success(WAIT))
        .await
        .unwrap();
}

/// Device `user` (with `password`) registers from `port`.
async fn register(sip: &SipService, user: &str, password: &str, port: u16) {
    let dir = tempfile::tempdir().unwrap();
    let mut run = SippRun::new(scenario("register", &[], dir.path()), DEVICE_IP, port);
    run.remote = Some(sip.local_addr());
    run.service = user;
    run.keys = vec![("realm", REALM.to_string()), ("expires", "60".to_string())];
    run.credentials = Some((user, password));
    run.auth_uri = Some(REALM.to_string());
    succeeds(Sipp::start(run)).await;
}

/// A device on `port` that behaves as `scenario` says for one call.
fn device(name: &str, port: u16) -> Sipp {
    let dir = tempfile::tempdir().unwrap();
    let mut run = SippRun::new(scenario(name, &[], dir.path()), DEVICE_IP, port);
    run.service = "1001";
    Sipp::start(run)
}

/// The carrier places one call with `scenario` to the dialed number.
fn carrier(sip: &SipService, name: &str, replace: &[(&str, &str)], dir: &Path) -> Sipp {
    carrier_from(TRUNK_IP, sip.local_addr(), name, replace, dir, DIALED)
}

fn carrier_from(
    ip: &'static str,
    to: SocketAddr,
    name: &str,
    replace: &[(&str, &str)],
    dir: &Path,
    dialed: &'static str,
) -> Sipp {
    let mut run = SippRun::new(scenario(name, replace, dir), ip, free_udp_port(ip));
    run.remote = Some(to);
    run.service = dialed;
    run.keys = vec![("caller", CALLER.to_string())];
    Sipp::start(run)
}

/// Waits until the host has run `count` calls to their end (their callbacks included).
async fn calls_done(sip: &SipService, count: u64) {
    let started = std::time::Instant::now();
    loop {
        let done: u64 = [
            "bridged",
            "message_left",
            "caller_hung_up",
            "flow_ended",
            "error",
        ]
        .iter()
        .map(|result| sip.metrics().calls(result))
        .sum();
        if done >= count && sip.calls_in_progress() == 0 {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "the calls did not end:\n{}",
            sip.render_metrics()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_answers_at_a_registered_device_and_the_caller_hangs_up_at_voicemail() {
    let (host, sip) = start().await;
    a_missed_call_sends_the_seed_alert(&host, &sip).await;
}

/// Device 1001 registers and rings, nobody answers, the carrier's caller hangs up at
/// voicemail: the seed flow's alert, and only it, is published.
async fn a_missed_call_sends_the_seed_alert(host: &TestHost, sip: &SipService) {
    let port = free_udp_port(DEVICE_IP);
    register(sip, "1001", "secret", port).await;
    let dir = tempfile::tempdir().unwrap();
    let ringing = device("device_ring", port);
    let call = carrier(sip, "carrier_call", &[], dir.path());
    succeeds(call).await;
    succeeds(ringing).await;
    calls_done(sip, 1).await;
    let notifications = host.notifications();
    assert_eq!(notifications.len(), 1, "{notifications:?}");
    let alert = &notifications[0].payload;
    assert_eq!(
        notifications[0].routing_key,
        "notifications.sip.missed_call"
    );
    assert_eq!(alert["Caller-ID-Number"], CALLER);
    assert_eq!(alert["Caller-ID-Name"], "Jane Caller");
    assert_eq!(alert["Call-Bridged"], false);
    assert_eq!(alert["Message-Left"], false);
    assert_eq!(alert["To"], json!(["boss@example.com"]));
    assert_eq!(
        alert["Notify"],
        json!({"Hangup-Cause": "NORMAL_CLEARING", "Hangup-Code": "sip:200"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_answers_the_caller_hangs_up_and_the_device_gets_the_bye() {
    let (host, sip) = start().await;
    let port = free_udp_port(DEVICE_IP);
    register(&sip, "1001", "secret", port).await;
    let dir = tempfile::tempdir().unwrap();
    let answering = device("device_answer", port);
    let call = carrier(&sip, "carrier_call", &[], dir.path());
    succeeds(call).await;
    // The device's scenario ends only once the BYE reached it.
    succeeds(answering).await;
    calls_done(&sip, 1).await;
    // The caller's BYE and its 200 are counted (the 200 is sent just after the call ends).
    let oks = || {
        sip.render_metrics()
            .lines()
            .find_map(|l| l.strip_prefix("cfhost_sip_responses_total{code=\"200\"} "))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let started = std::time::Instant::now();
    while oks() < 3 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = sip.render_metrics();
    assert!(
        metrics.contains("cfhost_sip_requests_total{method=\"BYE\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        oks(),
        3,
        "the 200s to the REGISTER, to the caller and to its BYE: {metrics}"
    );
    assert_eq!(sip.metrics().calls("bridged"), 1);
    assert!(
        host.notifications().is_empty(),
        "{:?}",
        host.notifications()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_leaves_a_message_and_a_wav_of_its_length_is_stored() {
    let (host, sip) = start().await;
    let dir = tempfile::tempdir().unwrap();
    // No device registered: nobody to ring, so voicemail answers at once.
    let call = carrier(&sip, "carrier_message", &[], dir.path());
    succeeds(call).await;
    calls_done(&sip, 1).await;
    assert!(
        host.notifications().is_empty(),
        "{:?}",
        host.notifications()
    );
    let boxdir = host.data_dir().join("accounts/acme/vmboxes/box1");
    let wavs: Vec<_> = std::fs::read_dir(&boxdir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    assert_eq!(wavs.len(), 1, "{wavs:?}");
    let reader = hound::WavReader::open(&wavs[0]).unwrap();
    assert_eq!(reader.spec().sample_rate, 8000);
    assert_eq!(reader.spec().channels, 1);
    assert_eq!(reader.spec().bits_per_sample, 16);
    // Debian's g711a.pcap is 236 packets of 30 ms: 7.08 s.
    let secs = f64::from(reader.len()) / 8000.0;
    assert!((6.5..=7.2).contains(&secs), "{secs} s recorded");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(wavs[0].with_extension("json")).unwrap()).unwrap();
    assert_eq!(meta["caller_id_number"], CALLER);
    assert_eq!(sip.metrics().calls("message_left"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_device_sends_the_flow_to_the_user_busy_child() {
    let (host, sip) = start().await;
    a_busy_device_takes_the_user_busy_child(&host, &sip).await;
}

/// Device 1001 registers and answers busy: the seed flow's USER_BUSY child (test_fixture)
/// registers a callback, which publishes `took-busy` when the call ends, and nothing else is
/// published.
async fn a_busy_device_takes_the_user_busy_child(host: &TestHost, sip: &SipService) {
    let port = free_udp_port(DEVICE_IP);
    register(sip, "1001", "secret", port).await;
    let dir = tempfile::tempdir().unwrap();
    let busy = device("device_busy", port);
    // The USER_BUSY child stops the flow: the host then ends the call (480 to the caller).
    let call = carrier(sip, "carrier_refused", &[("CODE", "480")], dir.path());
    succeeds(busy).await;
    succeeds(call).await;
    calls_done(sip, 1).await;
    assert_eq!(host.template_ids(), ["took-busy"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_cancels_while_it_rings_and_the_alert_says_originator_cancel() {
    let (host, sip) = start().await;
    let port = free_udp_port(DEVICE_IP);
    register(&sip, "1001", "secret", port).await;
    let dir = tempfile::tempdir().unwrap();
    let ringing = device("device_ring", port);
    let call = carrier(&sip, "carrier_cancel", &[], dir.path());
    // While it rings, it is listed among the calls in progress.
    let started = std::time::Instant::now();
    let active = loop {
        let active = sip.active_calls(None);
        if !active.is_empty() || started.elapsed() > Duration::from_secs(5) {
            break active;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].account_id, "acme");
    assert_eq!(active[0].caller, "trunk carrier");
    assert_eq!(active[0].from, CALLER);
    // Listed for its own account, not for another.
    assert_eq!(sip.active_calls(Some("acme")).len(), 1);
    assert!(sip.active_calls(Some("other")).is_empty());
    succeeds(call).await;
    // The device got the CANCEL relayed.
    succeeds(ringing).await;
    calls_done(&sip, 1).await;
    assert!(
        sip.active_calls(None).is_empty(),
        "{:?}",
        sip.active_calls(None)
    );
    assert_eq!(sip.recent_calls(Some("acme")).len(), 1);
    assert!(sip.recent_calls(Some("other")).is_empty());
    let metrics = sip.render_metrics();
    for line in [
        "cfhost_sip_requests_total{method=\"CANCEL\"} 1",
        "cfhost_sip_responses_total{code=\"487\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    let notifications = host.notifications();
    assert_eq!(notifications.len(), 1, "{notifications:?}");
    assert_eq!(
        notifications[0].payload["Notify"],
        json!({"Hangup-Cause": "ORIGINATOR_CANCEL", "Hangup-Code": "sip:487"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_call_from_an_authenticated_device_sends_no_alert() {
    let (host, sip) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut run = SippRun::new(
        scenario("device_call", &[], dir.path()),
        DEVICE_IP,
        free_udp_port(DEVICE_IP),
    );
    run.remote = Some(sip.local_addr());
    run.service = "2000";
    run.keys = vec![("realm", REALM.to_string()), ("user", "1002".to_string())];
    run.credentials = Some(("1002", "other"));
    run.auth_uri = Some(format!("{}@{REALM}", run.service));
    succeeds(Sipp::start(run)).await;
    calls_done(&sip, 1).await;
    assert!(
        host.notifications().is_empty(),
        "{:?}",
        host.notifications()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_and_unknown_numbers_are_refused_and_nothing_runs() {
    let (host, sip) = start().await;
    let dir = tempfile::tempdir().unwrap();
    // A stranger from a realm no account has is challenged as a device would be (the
    // answer tells it nothing); it has no credentials, so nothing more happens.
    let stranger = carrier_from(
        STRANGER_IP,
        sip.local_addr(),
        "carrier_refused",
        &[("CODE", "407")],
        dir.path(),
        DIALED,
    );
    succeeds(stranger).await;
    let unknown = carrier_from(
        TRUNK_IP,
        sip.local_addr(),
        "carrier_refused",
        &[("CODE", "404")],
        dir.path(),
        "+15559990000",
    );
    succeeds(unknown).await;
    assert_eq!(sip.metrics().rejections("stranger"), 1);
    assert_eq!(sip.metrics().rejections("unknown_number"), 1);
    assert!(host.notifications().is_empty());
    assert_eq!(sip.calls_in_progress(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_port_does_not_disturb_the_next_call() {
    let (host, sip) = start().await;
    let socket = std::net::UdpSocket::bind((TRUNK_IP, 0)).unwrap();
    let target = sip.local_addr();
    let mut junk: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02garbage".to_vec(),
        b"INVITE sip:x SIP/2.0\r\n\r\n".to_vec(),
        b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n".to_vec(),
        vec![b'A'; 60_000],
        b"REGISTER sip:acme.example.com SIP/2.0\r\nContent-Length: 99999\r\n\r\n".to_vec(),
    ];
    junk.extend((0..200).map(|n| format!("OPTIONS {n}\r\n").into_bytes()));
    for datagram in &junk {
        let _ = socket.send_to(datagram, target);
    }
    let mut tcp = std::net::TcpStream::connect(target).unwrap();
    use std::io::Write;
    let _ = tcp.write_all(b"\x16\x03\x01 not SIP at all\r\n\r\n");
    drop(tcp);
    let dir = tempfile::tempdir().unwrap();
    let call = carrier(&sip, "carrier_message", &[], dir.path());
    succeeds(call).await;
    calls_done(&sip, 1).await;
    assert_eq!(sip.metrics().calls("message_left"), 1);
    assert!(host.notifications().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_checks_the_password_honours_expiry_and_refuses_stale_nonces() {
    let (_host, sip) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let contacts = |sip: &SipService| {
        sip.render_metrics()
            .lines()
            .find_map(|l| l.strip_prefix("cfhost_sip_registered_contacts "))
            .unwrap()
            .to_string()
    };
    // Success.
    let port = free_udp_port(DEVICE_IP);
    register(&sip, "1001", "secret", port).await;
    assert_eq!(contacts(&sip), "1");
    // A wrong password: 403.
    let mut run = SippRun::new(
        scenario("register_refused", &[], dir.path()),
        DEVICE_IP,
        free_udp_port(DEVICE_IP),
    );
    run.remote = Some(sip.local_addr());
    run.service = "1002";
    run.keys = vec![("realm", REALM.to_string()), ("expires", "60".to_string())];
    run.credentials = Some(("1002", "guess"));
    run.auth_uri = Some(REALM.to_string());
    succeeds(Sipp::start(run)).await;
    assert_eq!(contacts(&sip), "1");
    // Unregister: Expires 0 takes the binding away.
    let mut run = SippRun::new(scenario("register", &[], dir.path()), DEVICE_IP, port);
    run.remote = Some(sip.local_addr());
    run.service = "1001";
    run.keys = vec![("realm", REALM.to_string()), ("expires", "0".to_string())];
    run.credentials = Some(("1001", "secret"));
    run.auth_uri = Some(REALM.to_string());
    succeeds(Sipp::start(run)).await;
    assert_eq!(contacts(&sip), "0");
    // Expiry: a 1 s registration is gone after 2 s.
    let mut run = SippRun::new(scenario("register", &[], dir.path()), DEVICE_IP, port);
    run.remote = Some(sip.local_addr());
    run.service = "1001";
    run.keys = vec![("realm", REALM.to_string()), ("expires", "1".to_string())];
    run.credentials = Some(("1001", "secret"));
    run.auth_uri = Some(REALM.to_string());
    succeeds(Sipp::start(run)).await;
    assert_eq!(contacts(&sip), "1");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(contacts(&sip), "0");
    // A response on a nonce past its 1 s lifetime is challenged again as stale.
    let mut run = SippRun::new(scenario("register_stale", &[], dir.path()), DEVICE_IP, port);
    run.remote = Some(sip.local_addr());
    run.service = "1001";
    run.keys = vec![("realm", REALM.to_string()), ("expires", "60".to_string())];
    run.credentials = Some(("1001", "secret"));
    run.auth_uri = Some(REALM.to_string());
    succeeds(Sipp::start(run)).await;
    assert_eq!(contacts(&sip), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_and_the_metrics_show_the_sip_side() {
    let (_host, sip) = start().await;
    let port = free_udp_port(DEVICE_IP);
    register(&sip, "1001", "secret", port).await;
    let dir = tempfile::tempdir().unwrap();
    let busy = device("device_busy", port);
    let call = carrier(&sip, "carrier_refused", &[("CODE", "480")], dir.path());
    succeeds(busy).await;
    succeeds(call).await;
    calls_done(&sip, 1).await;
    let calls = sip.recent_calls(None);
    let [trace] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    let text = trace.trace.join("\n");
    assert!(text.contains("switch: INVITE"), "{text}");
    assert!(
        text.contains(&format!("from {CALLER} (trunk carrier) to {DIALED}")),
        "{text}"
    );
    assert!(
        text.contains("switch: ringing sip:1001@127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("answered 486"), "{text}");
    assert!(text.contains("continue to USER_BUSY | sip:486"), "{text}");
    assert!(
        text.contains("cfhost ended the call (NORMAL_CLEARING): 480"),
        "{text}"
    );
    let metrics = sip.render_metrics();
    assert!(
        metrics.contains("cfhost_sip_requests_total{method=\"INVITE\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cfhost_sip_requests_total{method=\"REGISTER\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cfhost_sip_registrations_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cfhost_sip_responses_total{code=\"401\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_new_invites_get_503_and_the_call_in_progress_finishes() {
    let (host, sip) = start().await;
    let dir = tempfile::tempdir().unwrap();
    // A caller leaving a 7 s message is in progress...
    let leaving = carrier(&sip, "carrier_message", &[], dir.path());
    let started = std::time::Instant::now();
    while sip.calls_in_progress() == 0 {
        assert!(started.elapsed() < WAIT);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...when the host stops taking calls.
    sip.stop_accepting();
    let refused = carrier(&sip, "carrier_refused", &[("CODE", "503")], dir.path());
    succeeds(refused).await;
    succeeds(leaving).await;
    let left = sip.shutdown(WAIT).await;
    assert_eq!(left, 0, "the call in progress finished");
    let boxdir = host.data_dir().join("accounts/acme/vmboxes/box1");
    assert_eq!(
        std::fs::read_dir(boxdir).unwrap().count(),
        2,
        "its message was stored"
    );
}

/// An INVITE from `from` for `dialed`, as a carrier would send it, with its own Call-ID.
fn raw_invite(from: SocketAddr, to: SocketAddr, dialed: &str, n: u32) -> String {
    format!(
        "INVITE sip:{dialed}@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-cap-{n}\r\n\
         From: <sip:{CALLER}@{from}>;tag=cap{n}\r\n\
         To: <sip:{dialed}@{to}>\r\n\
         Call-ID: cap-{n}@test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:{CALLER}@{from}>\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The final status of each response read from `socket` until `count` final ones arrived.
fn final_codes(socket: &std::net::UdpSocket, count: usize) -> Vec<u16> {
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut codes = Vec::new();
    let mut buf = [0u8; 4096];
    while codes.len() < count {
        let (n, _) = socket.recv_from(&mut buf).expect("a response");
        let text = String::from_utf8_lossy(&buf[..n]);
        let code: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if code >= 200 {
            codes.push(code);
        }
    }
    codes.sort_unstable();
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_caps_get_503_before_anything_runs() {
    // A flow that ends at once: the host ends the unanswered call itself.
    let ends = json!({"numbers": ["+15558880000"], "flow": {"module": "test_fixture", "data": {}}});
    let host = Builder::new()
        .account_document("acme", "account.json", json!({"realm": REALM}))
        .callflow("acme", "seed", seed_flow())
        .callflow("acme", "ends", ends)
        .start()
        .await;
    let mut config = sip_config();
    config.max_cps = 1;
    let sip = SipService::start(host.shared_runtime(), &config)
        .await
        .unwrap();
    let socket = std::net::UdpSocket::bind((TRUNK_IP, 0)).unwrap();
    let from = socket.local_addr().unwrap();
    // A number nobody has is no call: it never counts. Then two calls in the same second: one
    // is admitted (and ended by its flow), the other is past max_cps (503).
    let invites = [
        ("+15559990000", 0),
        ("+15558880000", 1),
        ("+15558880000", 2),
    ];
    for (number, n) in invites {
        let invite = raw_invite(from, sip.local_addr(), number, n);
        socket.send_to(invite.as_bytes(), sip.local_addr()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let codes = tokio::task::spawn_blocking(move || final_codes(&socket, 3))
        .await
        .unwrap();
    assert_eq!(codes.iter().filter(|&&c| c == 404).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 503).count(), 1, "{codes:?}");
    assert_eq!(sip.metrics().rejections("max_cps"), 1);

    let mut config = sip_config();
    config.max_calls = 1;
    let sip = SipService::start(host.shared_runtime(), &config)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let leaving = carrier(&sip, "carrier_message", &[], dir.path());
    let started = std::time::Instant::now();
    while sip.calls_in_progress() == 0 {
        assert!(started.elapsed() < WAIT);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = carrier(&sip, "carrier_refused", &[("CODE", "503")], dir.path());
    succeeds(refused).await;
    succeeds(leaving).await;
    assert_eq!(sip.metrics().rejections("max_calls"), 1);
    assert!(host.notifications().is_empty());
}

/// An OPTIONS over TCP from `from` to `to`, its transaction named `name`.
fn tcp_options(from: SocketAddr, to: SocketAddr, name: &str) -> String {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {from};branch=z9hG4bK-tcp-{name}\r\n\
         From: <sip:probe@{from}>;tag={name}\r\n\
         To: <sip:{to}>\r\n\
         Call-ID: tcp-{name}@test\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// One request over a TCP connection from `from_ip`; the status of the first final response.
async fn tcp_final_code(
    from_ip: &str,
    to: SocketAddr,
    request: impl Fn(SocketAddr) -> String,
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((from_ip.parse::<std::net::IpAddr>().unwrap(), 0).into())
        .unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let from = stream.local_addr().unwrap();
    stream.write_all(request(from).as_bytes()).await.unwrap();
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the connection closed before a final response");
            read.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&read).to_string();
            let finals: Vec<u16> = text
                .split("SIP/2.0 ")
                .skip(1)
                .filter_map(|r| r.get(..3)?.parse().ok())
                .filter(|code| *code >= 200)
                .collect();
            if let Some(code) = finals.first() {
                return *code;
            }
        }
    };
    tokio::time::timeout(WAIT, read_all)
        .await
        .expect("a final response over TCP")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_tcp_are_answered_on_their_connection() {
    let (_host, sip) = start().await;
    let to = sip.local_addr();
    let options = |from: SocketAddr| tcp_options(from, to, "options");
    assert_eq!(tcp_final_code(DEVICE_IP, to, options).await, 200);
    // From the trunk, to a number no account has: the lookup ran, over TCP.
    let invite = |from: SocketAddr| {
        raw_invite(from, to, "+19999999999", 7).replace("SIP/2.0/UDP", "SIP/2.0/TCP")
    };
    assert_eq!(tcp_final_code(TRUNK_IP, to, invite).await, 404);
    // A stranger's INVITE over TCP is challenged as over UDP.
    let stranger =
        |from: SocketAddr| raw_invite(from, to, DIALED, 8).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    assert_eq!(tcp_final_code(STRANGER_IP, to, stranger).await, 407);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_rings_one_endpoint_after_another_and_relays_the_ringing() {
    let (ringing, answering) = (free_udp_port(DEVICE_IP), free_udp_port(DEVICE_IP));
    let number = "+15554443333";
    let (host, sip) = start_with(|builder| {
        builder
            .user(
                "acme",
                "u3",
                json!({"email": "u3@example.com", "endpoints": [
                    {"id": "hall", "address": format!("sip:hall@{DEVICE_IP}:{ringing}")},
                    {"id": "desk", "address": format!("sip:desk@{DEVICE_IP}:{answering}")}]}),
            )
            .callflow(
                "acme",
                "single",
                json!({"numbers": [number], "flow": {"module": "user",
                    "data": {"id": "u3", "timeout": 2, "strategy": "single"}}}),
            )
    })
    .await;
    let hall = device("device_ring", ringing);
    let desk = device("device_answer", answering);
    let dir = tempfile::tempdir().unwrap();
    // The carrier must see the first leg's 180.
    let relayed = [(
        r#"<recv response="180" optional="true"/>"#,
        r#"<recv response="180"/>"#,
    )];
    let mut run = SippRun::new(
        scenario("carrier_call", &relayed, dir.path()),
        TRUNK_IP,
        free_udp_port(TRUNK_IP),
    );
    run.remote = Some(sip.local_addr());
    run.service = number;
    run.keys = vec![("caller", CALLER.to_string())];
    let call = Sipp::start(run);
    succeeds(hall).await;
    succeeds(desk).await;
    succeeds(call).await;
    calls_done(&sip, 1).await;
    let calls = sip.recent_calls(None);
    let [summary] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    let lines = &summary.trace;
    let at = |needle: &str| {
        lines
            .iter()
            .position(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {lines:#?}"))
    };
    // One leg at a time: the hall rings alone, is cancelled at its timeout, then the desk rings.
    let hall_rang = at(&format!("ringing sip:hall@{DEVICE_IP}:{ringing}"));
    let hall_cancelled = at("no answer in 2s: legs cancelled");
    let desk_rang = at(&format!("ringing sip:desk@{DEVICE_IP}:{answering}"));
    assert!(
        hall_rang < hall_cancelled && hall_cancelled < desk_rang,
        "{lines:#?}"
    );
    assert!(!lines[hall_rang].contains("desk"), "{lines:#?}");
    assert!(host.notifications().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_media_from_the_device_reaches_the_caller_with_its_sdp() {
    let (_host, sip) = start().await;
    let port = free_udp_port(DEVICE_IP);
    register(&sip, "1001", "secret", port).await;
    let dir = tempfile::tempdir().unwrap();
    // The device answers 183 with SDP (early media) instead of 180, then 200.
    let early = "SIP/2.0 183 Session Progress\n      [last_Via:]\n      [last_From:]\n      \
        [last_To:];tag=[pid]SIPpTag01[call_number]\n      [last_Call-ID:]\n      [last_CSeq:]\n      \
        Contact: <sip:[service]@[local_ip]:[local_port]>\n      Content-Type: application/sdp\n      \
        Content-Length: [len]\n\n      v=0\n      o=device 1 1 IN IP[local_ip_type] [local_ip]\n      \
        s=-\n      c=IN IP[media_ip_type] [media_ip]\n      t=0 0\n      \
        m=audio [media_port] RTP/AVP 0\n      a=rtpmap:0 PCMU/8000\n";
    let ringing = "SIP/2.0 180 Ringing\n      [last_Via:]\n      [last_From:]\n      \
        [last_To:];tag=[pid]SIPpTag01[call_number]\n      [last_Call-ID:]\n      [last_CSeq:]\n      \
        Contact: <sip:[service]@[local_ip]:[local_port]>\n      Content-Length: 0\n";
    let device_scenario = scenario("device_answer", &[(ringing, early)], dir.path());
    assert!(
        std::fs::read_to_string(&device_scenario)
            .unwrap()
            .contains("183 Session Progress"),
        "the device scenario was rewritten"
    );
    let mut run = SippRun::new(device_scenario, DEVICE_IP, port);
    run.service = "1001";
    let answering = Sipp::start(run);
    // The carrier must get the 183, and an SDP in it.
    let relayed = [(
        r#"<recv response="183" optional="true"/>"#,
        r#"<recv response="183"><action><ereg regexp="m=audio [0-9]+ RTP/AVP" search_in="body" check_it="true" assign_to="early_sdp"/></action></recv><Reference variables="early_sdp"/>"#,
    )];
    let call = carrier(&sip, "carrier_call", &relayed, dir.path());
    succeeds(call).await;
    succeeds(answering).await;
    calls_done(&sip, 1).await;
    assert_eq!(sip.metrics().calls("bridged"), 1);
}

/// A device on a raw UDP socket: REGISTERs it builds and sends itself, so that a test can
/// capture its credentials and send them again as an attacker would.
struct RawDevice {
    socket: std::net::UdpSocket,
    server: SocketAddr,
    sent: u32,
    /// The realm of its From and To.
    realm: &'static str,
    /// The sent-by of its Via, if not its socket's address (a device behind NAT).
    via: Option<String>,
}

impl RawDevice {
    fn new(ip: &str, server: SocketAddr) -> RawDevice {
        let socket = std::net::UdpSocket::bind((ip, 0)).unwrap();
        RawDevice {
            socket,
            server,
            sent: 0,
            realm: REALM,
            via: None,
        }
    }

    /// Sends a REGISTER of 1001 to `request_uri` (a new transaction each time) with
    /// `contact` and `authorization`; returns the final response.
    fn register(
        &mut self,
        request_uri: &str,
        contact: &str,
        authorization: Option<&str>,
    ) -> String {
        self.register_as("1001", request_uri, contact, authorization, WAIT)
            .expect("a final response")
    }

    /// A REGISTER of `user`; its final response, if one comes within `wait`.
    fn register_as(
        &mut self,
        user: &str,
        request_uri: &str,
        contact: &str,
        authorization: Option<&str>,
        wait: Duration,
    ) -> Option<String> {
        self.sent += 1;
        let n = self.sent;
        let local = self.socket.local_addr().unwrap();
        let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        let expires = if contact == "*" { "0" } else { "60" };
        let realm = self.realm;
        let via = self.via.clone().unwrap_or_else(|| local.to_string());
        let message = format!(
            "REGISTER {request_uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {via};branch=z9hG4bK-raw-{n}-{}\r\n\
             From: <sip:{user}@{realm}>;tag=raw{n}\r\n\
             To: <sip:{user}@{realm}>\r\n\
             Call-ID: raw-{n}-{}@test\r\n\
             CSeq: {n} REGISTER\r\n\
             Contact: {contact}\r\n\
             {auth}Expires: {expires}\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            local.port(),
            local.port(),
        );
        self.socket
            .send_to(message.as_bytes(), self.server)
            .unwrap();
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 8192];
        loop {
            let (len, _) = self.socket.recv_from(&mut buf).ok()?;
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            if code(&text) >= 200 {
                return Some(text);
            }
        }
    }
}

/// The status code of a response.
fn code(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The nonce a 401 challenges with.
fn nonce_of(challenge: &str) -> String {
    let at = challenge.find("nonce=\"").expect("a nonce") + 7;
    challenge[at..].split('"').next().unwrap().to_string()
}

/// An Authorization of 1001 (password `secret`) on `nonce` for a REGISTER to `uri`, qop=auth.
fn authorization(nonce: &str, uri: &str, nc: u32) -> String {
    authorization_of("1001", "secret", nonce, uri, nc)
}

/// An Authorization of `user` with `password`, as [`authorization`].
fn authorization_of(user: &str, password: &str, nonce: &str, uri: &str, nc: u32) -> String {
    use md5::Digest;
    let hex = |text: String| {
        md5::Md5::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let ha1 = hex(format!("{user}:{REALM}:{password}"));
    let ha2 = hex(format!("REGISTER:{uri}"));
    let response = hex(format!("{ha1}:{nonce}:{nc:08x}:c0ffee:auth:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, qop=auth, cnonce=\"c0ffee\", nc={nc:08x}"
    )
}

fn registered_contacts(sip: &SipService) -> String {
    sip.render_metrics()
        .lines()
        .find_map(|l| l.strip_prefix("cfhost_sip_registered_contacts "))
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_authorization_cannot_be_replayed_from_anywhere_for_anything() {
    let (_host, sip) = start().await;
    let server = sip.local_addr();
    let uri = format!("sip:{REALM}");
    let replies = tokio::task::spawn_blocking(move || {
        let mut phone = RawDevice::new(DEVICE_IP, server);
        let contact = format!("<sip:1001@{}>", phone.socket.local_addr().unwrap());
        let challenge = phone.register(&uri, &contact, None);
        assert_eq!(code(&challenge), 401, "{challenge}");
        let nonce = nonce_of(&challenge);
        let captured = authorization(&nonce, &uri, 1);
        let first = phone.register(&uri, &contact, Some(&captured));
        // The same Authorization again, in a new request from the phone's own address.
        let again = phone.register(&uri, &contact, Some(&captured));
        // From another address, taking the phone's bindings away and adding its own.
        let mut attacker = RawDevice::new(STRANGER_IP, server);
        let unbind = attacker.register(&uri, "*", Some(&captured));
        let attacker_contact = attacker.register(
            &uri,
            &format!("<sip:1001@{}>", attacker.socket.local_addr().unwrap()),
            Some(&captured),
        );
        // Another Request-URI (the digest names the phone's).
        let elsewhere = phone.register("sip:127.0.0.1", &contact, Some(&captured));
        // The phone's next request counts on: still good.
        let next = phone.register(&uri, &contact, Some(&authorization(&nonce, &uri, 2)));
        (first, again, unbind, attacker_contact, elsewhere, next)
    })
    .await
    .unwrap();
    let (first, again, unbind, attacker_contact, elsewhere, next) = replies;
    assert_eq!(code(&first), 200, "{first}");
    assert_eq!(code(&again), 401, "a replay is challenged afresh: {again}");
    assert!(again.contains("stale=true"), "{again}");
    assert!(code(&unbind) == 401 || code(&unbind) == 403, "{unbind}");
    assert!(
        code(&attacker_contact) == 401 || code(&attacker_contact) == 403,
        "{attacker_contact}"
    );
    assert!(
        code(&elsewhere) == 401 || code(&elsewhere) == 403,
        "{elsewhere}"
    );
    assert_eq!(code(&next), 200, "{next}");
    // The phone's binding is the only one, never removed.
    assert_eq!(registered_contacts(&sip), "1");
    assert!(
        sip.render_metrics()
            .contains("cfhost_sip_rejected_total{reason=\"replayed_credentials\"} 1"),
        "{}",
        sip.render_metrics()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_flood_gets_no_answers_and_leaves_the_carriers_calls_alone() {
    let mut config = sip_config();
    config.max_cps = 10;
    config.stranger_requests_per_sec = 5;
    config.stranger_burst = 5;
    let (host, sip) = start_configured(config).await;
    let server = sip.local_addr();
    let (stranger_codes, carrier_codes) = tokio::task::spawn_blocking(move || {
        // 100 INVITEs at once from an address that is no trunk's.
        let stranger = std::net::UdpSocket::bind((STRANGER_IP, 0)).unwrap();
        let from = stranger.local_addr().unwrap();
        for n in 0..100 {
            let invite = raw_invite(from, server, DIALED, 1000 + n);
            stranger.send_to(invite.as_bytes(), server).unwrap();
        }
        // Then the carrier's six, for a number nobody has: each is admitted (404), none 503.
        let carrier = std::net::UdpSocket::bind((TRUNK_IP, 0)).unwrap();
        let from = carrier.local_addr().unwrap();
        for n in 0..6 {
            let invite = raw_invite(from, server, "+15559990000", n);
            carrier.send_to(invite.as_bytes(), server).unwrap();
        }
        let carrier_codes = final_codes(&carrier, 6);
        stranger
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let mut stranger_codes = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok((len, _)) = stranger.recv_from(&mut buf) {
            let c = code(&String::from_utf8_lossy(&buf[..len]));
            if c >= 200 {
                stranger_codes.push(c);
            }
        }
        (stranger_codes, carrier_codes)
    })
    .await
    .unwrap();
    assert_eq!(
        carrier_codes, [404; 6],
        "the stranger took the carrier's calls per second"
    );
    // Its burst was answered (407: challenged, as any device); the rest got nothing.
    assert!(
        !stranger_codes.is_empty() && stranger_codes.len() <= 10,
        "{stranger_codes:?}"
    );
    assert!(
        stranger_codes.iter().all(|&c| c == 407),
        "{stranger_codes:?}"
    );
    assert!(sip.metrics().rejections("rate_limited") >= 90);
    assert_eq!(sip.metrics().rejections("max_cps"), 0);
    assert!(host.notifications().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_silence_the_address_and_the_user_name_for_a_while() {
    let mut config = sip_config();
    config.max_auth_failures = 3;
    config.auth_block_secs = 60;
    let (_host, sip) = start_configured(config).await;
    let server = sip.local_addr();
    let uri = format!("sip:{REALM}");
    let quiet = Duration::from_millis(700);
    tokio::task::spawn_blocking(move || {
        let mut guesser = RawDevice::new(STRANGER_IP, server);
        let contact = format!("<sip:1001@{}>", guesser.socket.local_addr().unwrap());
        for guess in ["a", "b", "c"] {
            let challenge = guesser.register(&uri, &contact, None);
            assert_eq!(code(&challenge), 401, "{challenge}");
            let answer = authorization_of("1001", guess, &nonce_of(&challenge), &uri, 1);
            let refused = guesser.register(&uri, &contact, Some(&answer));
            assert_eq!(code(&refused), 403, "{refused}");
        }
        // The guesser's address now gets nothing, even without credentials.
        assert_eq!(
            guesser.register_as("1001", &uri, &contact, None, quiet),
            None
        );
        // Nor does the user name, from anywhere; another user from elsewhere is served.
        let mut phone = RawDevice::new(DEVICE_IP, server);
        let contact = format!("<sip:1001@{}>", phone.socket.local_addr().unwrap());
        let challenge = phone.register(&uri, &contact, None);
        let answer = authorization(&nonce_of(&challenge), &uri, 1);
        assert_eq!(
            phone.register_as("1001", &uri, &contact, Some(&answer), quiet),
            None
        );
        let contact = format!("<sip:1002@{}>", phone.socket.local_addr().unwrap());
        let challenge = phone
            .register_as("1002", &uri, &contact, None, WAIT)
            .unwrap();
        let answer = authorization_of("1002", "other", &nonce_of(&challenge), &uri, 1);
        let ok = phone
            .register_as("1002", &uri, &contact, Some(&answer), WAIT)
            .unwrap();
        assert_eq!(code(&ok), 200, "{ok}");
    })
    .await
    .unwrap();
    assert_eq!(sip.metrics().rejections("bad_credentials"), 3);
    // An unknown realm is challenged, then refused, as a wrong password is.
    tokio::task::spawn_blocking(move || {
        let mut prober = RawDevice::new("127.0.0.4", server);
        prober.realm = "nobody.example.com";
        let uri = "sip:nobody.example.com";
        let contact = format!("<sip:9999@{}>", prober.socket.local_addr().unwrap());
        let challenge = prober
            .register_as("9999", uri, &contact, None, WAIT)
            .unwrap();
        assert_eq!(code(&challenge), 401, "{challenge}");
        let answer = authorization_of("9999", "x", &nonce_of(&challenge), uri, 1)
            .replace(REALM, "nobody.example.com");
        let refused = prober
            .register_as("9999", uri, &contact, Some(&answer), WAIT)
            .unwrap();
        assert_eq!(code(&refused), 403, "{refused}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_has_at_most_max_contacts_and_star_comes_alone() {
    let mut config = sip_config();
    config.max_contacts = 3;
    config.nonce_lifetime_secs = 300;
    let (_host, sip) = start_configured(config).await;
    let server = sip.local_addr();
    let uri = format!("sip:{REALM}");
    let codes = tokio::task::spawn_blocking(move || {
        let mut phone = RawDevice::new(DEVICE_IP, server);
        let challenge = phone.register(&uri, "<sip:1001@127.0.0.1:1>", None);
        let nonce = nonce_of(&challenge);
        let mut nc = 0;
        let mut send = |phone: &mut RawDevice, contact: &str| {
            nc += 1;
            code(&phone.register(&uri, contact, Some(&authorization(&nonce, &uri, nc))))
        };
        let mut codes = Vec::new();
        // Three bindings fit; a fourth is refused; three at once past the cap too.
        for port in 1..=4 {
            codes.push(send(&mut phone, &format!("<sip:1001@127.0.0.1:{port}>")));
        }
        codes.push(send(
            &mut phone,
            "<sip:1001@127.0.0.1:5>, <sip:1001@127.0.0.1:6>",
        ));
        // `*` with another contact, or without Expires 0, is malformed.
        codes.push(send(&mut phone, "*, <sip:1001@127.0.0.1:7>"));
        codes
    })
    .await
    .unwrap();
    assert_eq!(codes, [200, 200, 200, 403, 403, 400], "{codes:?}");
    assert_eq!(registered_contacts(&sip), "3");
    assert_eq!(sip.metrics().rejections("max_contacts"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cseq_of_another_method_is_a_400_and_an_invite_with_no_hops_left_a_483() {
    let (host, sip) = start().await;
    let server = sip.local_addr();
    let codes = tokio::task::spawn_blocking(move || {
        let socket = std::net::UdpSocket::bind((TRUNK_IP, 0)).unwrap();
        let from = socket.local_addr().unwrap();
        let mismatch = raw_invite(from, server, DIALED, 1).replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
        let exhausted =
            raw_invite(from, server, DIALED, 2).replace("Max-Forwards: 70", "Max-Forwards: 0");
        let mut codes = Vec::new();
        for request in [mismatch, exhausted] {
            socket.send_to(request.as_bytes(), server).unwrap();
            codes.extend(final_codes(&socket, 1));
        }
        codes
    })
    .await
    .unwrap();
    assert_eq!(codes, [400, 483]);
    assert_eq!(sip.metrics().rejections("malformed"), 2);
    assert_eq!(sip.calls_in_progress(), 0);
    assert!(host.notifications().is_empty(), "nothing ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_short_of_its_content_length_is_dropped_and_a_g729_only_offer_gets_488() {
    let (host, sip) = start().await;
    let server = sip.local_addr();
    let (short, whole, g729) = tokio::task::spawn_blocking(move || {
        let socket = std::net::UdpSocket::bind((TRUNK_IP, 0)).unwrap();
        let from = socket.local_addr().unwrap();
        let options = |length: usize, body: &str| {
            format!(
                "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-len{length}\r\n\
                 From: <sip:probe@{from}>;tag=l{length}\r\nTo: <sip:{server}>\r\n\
                 Call-ID: len{length}@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\
                 Content-Length: {length}\r\n\r\n{body}"
            )
        };
        let answer = |message: String, wait: Duration| {
            socket.send_to(message.as_bytes(), server).unwrap();
            socket.set_read_timeout(Some(wait)).unwrap();
            let mut buf = [0u8; 8192];
            loop {
                let Ok((len, _)) = socket.recv_from(&mut buf) else {
                    return None;
                };
                let text = String::from_utf8_lossy(&buf[..len]).to_string();
                if code(&text) >= 200 {
                    return Some(code(&text));
                }
            }
        };
        // RFC 3261 §18.3: 50 bytes announced, 4 sent: discarded, no answer.
        let short = answer(options(50, "abcd"), Duration::from_secs(1));
        let whole = answer(options(4, "abcd"), WAIT);
        // Nobody to ring, so voicemail would answer; the caller speaks only G.729.
        let sdp = format!(
            "v=0\r\no=c 1 1 IN IP4 {TRUNK_IP}\r\ns=-\r\nc=IN IP4 {TRUNK_IP}\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
        );
        let invite = raw_invite(from, server, DIALED, 88).replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len()),
        );
        let g729 = answer(invite, WAIT);
        (short, whole, g729)
    })
    .await
    .unwrap();
    assert_eq!(short, None, "a truncated datagram was answered");
    assert_eq!(whole, Some(200));
    assert_eq!(g729, Some(488));
    assert_eq!(sip.metrics().rejections("truncated"), 1);
    calls_done(&sip, 1).await;
    assert!(
        !host.data_dir().join("accounts/acme/vmboxes/box1").exists(),
        "a message was stored"
    );
}
