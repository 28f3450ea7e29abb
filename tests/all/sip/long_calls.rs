//! Calls of any length: a bridge and a recording last as long as the call does, whatever the
//! host-call timeout; what the legs send inside their dialogs is relayed; a leg that is gone
//! (a keepalive, the session timer) ends the call with a BYE to both; voicemail takes audio
//! from the caller only, and only audio keeps it open.

use std::time::Duration;

use cfhost_core::policy::{FailureKind, Limits};
use cfhost_tests::sipp::{Sipp, SippRun, free_udp_port, scenario};
use cfhost_tests::{Builder, TestHost};

use super::*;

/// A host whose answers, bridges and recordings may wait on the switch for 1 s only.
fn short_host_calls(builder: Builder) -> Builder {
    builder.policy(|policy| {
        policy.set_limits(Limits {
            host_call_timeout: Duration::from_secs(1),
            ..Limits::default()
        })
    })
}

/// The device 1001 behaving as `name` says, with `replace` applied to the scenario.
fn device_with(name: &str, port: u16, replace: &[(&str, &str)], dir: &std::path::Path) -> Sipp {
    let mut run = SippRun::new(scenario(name, replace, dir), DEVICE_IP, port);
    run.service = "1001";
    Sipp::start(run)
}

/// The carrier's call with `name`, `replace` applied, pausing `pause_ms` at each `<pause/>`.
fn carrier_pausing(
    sip: &SipService,
    name: &str,
    replace: &[(&str, &str)],
    pause_ms: u64,
    dir: &std::path::Path,
) -> Sipp {
    let mut run = SippRun::new(
        scenario(name, replace, dir),
        TRUNK_IP,
        free_udp_port(TRUNK_IP),
    );
    run.remote = Some(sip.local_addr());
    run.service = DIALED;
    run.keys = vec![("caller", CALLER.to_string())];
    run.pause_ms = pause_ms;
    Sipp::start(run)
}

/// A host whose bridges send keepalives every `keepalive_secs` (0: none), with device 1001
/// registered from the port returned.
async fn with_device_registered(keepalive_secs: u64) -> (TestHost, SipService, u16) {
    let mut config = sip_config();
    config.keepalive_secs = keepalive_secs;
    let (host, sip) = start_configured(config).await;
    let port = free_udp_port(DEVICE_IP);
    register(&sip, "1001", "secret", port).await;
    (host, sip, port)
}

/// The length in seconds of the one message stored in box1.
fn stored_message_secs(host: &TestHost) -> f64 {
    let boxdir = host.data_dir().join("accounts/acme/vmboxes/box1");
    let wav = std::fs::read_dir(&boxdir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "wav"))
        .expect("the message is stored");
    f64::from(hound::WavReader::open(&wav).unwrap().len()) / 8000.0
}

fn user_failures(host: &TestHost) -> u64 {
    host.runtime()
        .health()
        .counters()
        .get("user")
        .map_or(0, |c| c.total_failures())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_outlasts_the_host_call_timeout_and_relays_hold_and_update() {
    let (host, sip) = start_full(short_host_calls, sip_config()).await;
    let port = free_udp_port(DEVICE_IP);
    register(&sip, "1001", "secret", port).await;
    let dir = tempfile::tempdir().unwrap();
    let device = device_with("device_reinvite", port, &[], dir.path());
    // 1.5 s talking, the hold and the device's UPDATE, 1.5 s more: three times the 1 s the
    // host calls may wait.
    let call = carrier_pausing(&sip, "carrier_reinvite", &[], 1500, dir.path());
    succeeds(call).await;
    succeeds(device).await;
    calls_done(&sip, 1).await;
    assert_eq!(
        sip.metrics().calls("bridged"),
        1,
        "{}",
        sip.render_metrics()
    );
    assert_eq!(user_failures(&host), 0, "the bridge was charged to `user`");
    let trace = sip.recent_calls(None)[0].trace.join("\n");
    assert!(trace.contains("the caller hung up (BYE)"), "{trace}");
    assert!(!trace.contains("host_call_timeout"), "{trace}");
}

/// The carrier's handling of cfhost's keepalive, which may come before the BYE or not at all
/// (the BYE the device's 481 causes can overtake it).
const MAY_ANSWER_OPTIONS: &str = r#"<recv request="OPTIONS" optional="true" next="9"/>
  <recv request="BYE" next="8"/>
  <label id="9"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <recv request="BYE"/>
  <label id="8"/>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_that_is_gone_ends_the_call_and_both_legs_get_a_bye() {
    let (host, sip, port) = with_device_registered(1).await;
    let dir = tempfile::tempdir().unwrap();
    // The device lost its call (it rebooted): it answers the keepalive 481.
    let gone = r#"<recv request="OPTIONS"/>
  <send><![CDATA[
      SIP/2.0 481 Call/Transaction Does Not Exist
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>"#;
    let device = device_with(
        "device_answer_then",
        port,
        &[
            ("ANSWER_HEADERS", "Allow: INVITE, ACK, BYE"),
            ("<!--AFTER_ACK-->", gone),
        ],
        dir.path(),
    );
    let call = carrier_pausing(
        &sip,
        "carrier_until_bye",
        &[
            ("ANSWER_HEADER", "200 OK"),
            (r#"<recv request="BYE"/>"#, MAY_ANSWER_OPTIONS),
        ],
        0,
        dir.path(),
    );
    // Both scenarios end only once cfhost's BYE reached them.
    succeeds(call).await;
    succeeds(device).await;
    calls_done(&sip, 1).await;
    let trace = sip.recent_calls(None)[0].trace.join("\n");
    assert!(trace.contains("is gone (no answer, 408 or 481)"), "{trace}");
    assert_eq!(user_failures(&host), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_is_not_refreshed_ends_with_a_bye_to_both_legs() {
    let (_host, sip, port) = with_device_registered(0).await;
    let dir = tempfile::tempdir().unwrap();
    // The device asks for a 2 s session the caller must refresh; the caller never does.
    let device = device_with(
        "device_answer_then",
        port,
        &[
            (
                "ANSWER_HEADERS",
                "Session-Expires: 2;refresher=uac\r\n      Require: timer",
            ),
            ("<!--AFTER_ACK-->", ""),
        ],
        dir.path(),
    );
    let started = std::time::Instant::now();
    // The caller is told the interval: the device's Session-Expires reaches its 200.
    let call = carrier_pausing(
        &sip,
        "carrier_until_bye",
        &[("ANSWER_HEADER", "Session-Expires: *2;refresher=uac")],
        0,
        dir.path(),
    );
    succeeds(call).await;
    succeeds(device).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "ended after {took:?}");
    calls_done(&sip, 1).await;
    let trace = sip.recent_calls(None)[0].trace.join("\n");
    assert!(trace.contains("no session refresh in 2s"), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_longer_than_the_host_call_timeout_is_kept() {
    let (host, sip) = start_full(short_host_calls, sip_config()).await;
    let dir = tempfile::tempdir().unwrap();
    // 7 s of audio into a box that allows 30 s, on a host whose host calls wait 1 s.
    succeeds(carrier(&sip, "carrier_message", &[], dir.path())).await;
    calls_done(&sip, 1).await;
    assert_eq!(
        sip.metrics().calls("message_left"),
        1,
        "{}",
        sip.render_metrics()
    );
    let secs = stored_message_secs(&host);
    assert!((6.5..=7.2).contains(&secs), "{secs} s recorded");
    assert_eq!(
        host.runtime().health().counters()["voicemail"]
            .failures
            .get(&FailureKind::HostCallTimeout),
        None
    );
}

/// An RTP packet: 20 ms of payload type `pt` (PCMA silence-level samples for audio).
fn rtp_packet(pt: u8, seq: u16) -> Vec<u8> {
    let mut packet = vec![
        0x80,
        pt,
        (seq >> 8) as u8,
        seq as u8,
        0,
        0,
        0,
        0,
        0x12,
        0x34,
        0x56,
        0x78,
    ];
    packet.extend(std::iter::repeat_n(0x55u8, 160));
    packet
}

/// Sends `count` packets of `pt` from `socket` to `to`, one per 20 ms.
fn send_rtp(socket: &std::net::UdpSocket, to: SocketAddr, pt: u8, count: u16) {
    for seq in 0..count {
        socket.send_to(&rtp_packet(pt, seq), to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The RTP address of cfhost's SDP answer in `response`.
fn answered_rtp(response: &str, ip: &str) -> SocketAddr {
    let port = response
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse::<u16>().ok())
        .expect("an SDP answer with m=audio");
    SocketAddr::new(ip.parse().unwrap(), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voicemail_records_the_callers_audio_only_and_events_do_not_keep_it_open() {
    let mut config = sip_config();
    config.silence_timeout_secs = 1;
    let (host, sip) = start_configured(config).await;
    let server = sip.local_addr();
    tokio::task::spawn_blocking(move || {
        let signalling = std::net::UdpSocket::bind((TRUNK_IP, 0)).unwrap();
        let media = std::net::UdpSocket::bind((TRUNK_IP, 0)).unwrap();
        let stranger = std::net::UdpSocket::bind((STRANGER_IP, 0)).unwrap();
        let from = signalling.local_addr().unwrap();
        let sdp = format!(
            "v=0\r\no=carrier 1 1 IN IP4 {TRUNK_IP}\r\ns=-\r\nc=IN IP4 {TRUNK_IP}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
            media.local_addr().unwrap().port()
        );
        // The INVITE (CSeq 1, no To tag) and the re-INVITE (in the dialog cfhost's tag made).
        let invite = |cseq: u32, to_tag: &str| {
            let tag = if to_tag.is_empty() { String::new() } else { format!(";tag={to_tag}") };
            format!(
                "INVITE sip:{DIALED}@{server} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {from};branch=z9hG4bK-vm-{cseq}\r\n\
                 From: <sip:{CALLER}@{from}>;tag=vm1\r\n\
                 To: <sip:{DIALED}@{server}>{tag}\r\n\
                 Call-ID: vm-1@test\r\n\
                 CSeq: {cseq} INVITE\r\n\
                 Contact: <sip:{CALLER}@{from}>\r\n\
                 Max-Forwards: 70\r\n\
                 Content-Type: application/sdp\r\n\
                 Content-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            )
        };
        let invite_1 = invite(1, "");
        signalling.send_to(invite_1.as_bytes(), server).unwrap();
        signalling.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 8192];
        let answer = loop {
            let (len, _) = signalling.recv_from(&mut buf).unwrap();
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            if code(&text) == 200 {
                break text;
            }
        };
        let to_tag = answer
            .lines()
            .find(|l| l.starts_with("To:"))
            .and_then(|l| l.split(";tag=").nth(1))
            .unwrap()
            .trim()
            .to_string();
        let ack = format!(
            "ACK sip:{DIALED}@{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {from};branch=z9hG4bK-vm-ack\r\n\
             From: <sip:{CALLER}@{from}>;tag=vm1\r\n\
             To: <sip:{DIALED}@{server}>;tag={to_tag}\r\n\
             Call-ID: vm-1@test\r\n\
             CSeq: 1 ACK\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        );
        signalling.send_to(ack.as_bytes(), server).unwrap();
        let rtp = answered_rtp(&answer, "127.0.0.1");
        // The beep (500 ms) comes first; recording starts after it.
        media.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut beeped = false;
        while media.recv_from(&mut buf).is_ok() {
            beeped = true;
        }
        assert!(beeped, "no beep reached the caller's SDP address");
        // A session refresh (a re-INVITE with the same offer) during voicemail is answered by
        // cfhost with its own media again, not 501.
        let reinvite = invite(2, &to_tag);
        signalling.send_to(reinvite.as_bytes(), server).unwrap();
        let refreshed = loop {
            let (len, _) = signalling.recv_from(&mut buf).unwrap();
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            if code(&text) >= 200 && text.contains("CSeq: 2 INVITE") {
                break text;
            }
        };
        assert_eq!(code(&refreshed), 200, "{refreshed}");
        assert_eq!(answered_rtp(&refreshed, "127.0.0.1"), rtp, "{refreshed}");
        signalling
            .send_to(ack.replace("CSeq: 1 ACK", "CSeq: 2 ACK").replace("vm-ack", "vm-ack2").as_bytes(), server)
            .unwrap();
        // A stranger who found the port sends audio throughout; the caller sends 1 s of audio,
        // then 3 s of telephone events (101) and comfort noise (13).
        std::thread::scope(|scope| {
            scope.spawn(|| send_rtp(&stranger, rtp, 8, 200));
            send_rtp(&media, rtp, 8, 50);
            for _ in 0..75 {
                send_rtp(&media, rtp, 101, 1);
                send_rtp(&media, rtp, 13, 1);
            }
        });
        // The flow ends after the message: cfhost's BYE, answered.
        let bye = loop {
            let (len, _) = signalling.recv_from(&mut buf).unwrap();
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            if text.starts_with("BYE ") {
                break text;
            }
        };
        let echoed: String = bye
            .lines()
            .filter(|l| ["Via:", "From:", "To:", "Call-ID:", "CSeq:"].iter().any(|h| l.starts_with(h)))
            .map(|l| format!("{l}\r\n"))
            .collect();
        let ok = format!("SIP/2.0 200 OK\r\n{echoed}Content-Length: 0\r\n\r\n");
        signalling.send_to(ok.as_bytes(), server).unwrap();
    })
    .await
    .unwrap();
    calls_done(&sip, 1).await;
    let secs = stored_message_secs(&host);
    assert!(
        (0.9..=1.1).contains(&secs),
        "{secs} s recorded: the caller sent 1 s of audio"
    );
    let trace = sip.recent_calls(None)[0].trace.join("\n");
    assert!(trace.contains("(no audio)"), "{trace}");
}
