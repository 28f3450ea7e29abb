//! Devices rung however they registered (over TCP on their connection, at their Contact unless
//! NAT says otherwise), and SIP over TCP held to its caps and its idle timeout.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// Reads from `stream` until `done` says the text read so far is complete; that text.
pub(super) async fn read_until(stream: &mut TcpStream, done: impl Fn(&str) -> bool) -> String {
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    let reading = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "the connection closed: {}",
                String::from_utf8_lossy(&read)
            );
            read.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&read).to_string();
            if done(&text) {
                return text;
            }
        }
    };
    tokio::time::timeout(WAIT, reading)
        .await
        .expect("SIP over TCP in time")
}

/// A final response among `text`'s messages.
fn has_final(text: &str) -> bool {
    text.split("SIP/2.0 ").skip(1).any(|r| {
        r.get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .is_some_and(|c| c >= 200)
    })
}

/// A TCP connection from `ip` to `to`.
async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((ip.parse::<std::net::IpAddr>().unwrap(), 0).into())
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// A REGISTER of 1001 over TCP, on `stream`, with `authorization`.
fn tcp_register(stream: &TcpStream, n: u32, authorization: Option<&str>) -> String {
    let local = stream.local_addr().unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    format!(
        "REGISTER sip:{REALM} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK-tcpreg-{n}\r\n\
         From: <sip:1001@{REALM}>;tag=tcpreg{n}\r\n\
         To: <sip:1001@{REALM}>\r\n\
         Call-ID: tcpreg@test\r\n\
         CSeq: {n} REGISTER\r\n\
         Contact: <sip:1001@{local};transport=tcp>\r\n\
         {auth}Expires: 60\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Device 1001's connection, registered over TCP with digest authentication (challenged
/// first): the INVITEs it is rung with come on it.
pub(super) async fn registered_over_tcp(sip: &SipService) -> TcpStream {
    let mut device = connect_from(DEVICE_IP, sip.local_addr()).await;
    device
        .write_all(tcp_register(&device, 1, None).as_bytes())
        .await
        .unwrap();
    let challenge = read_until(&mut device, has_final).await;
    assert_eq!(code(&challenge), 401, "{challenge}");
    let auth = authorization(&nonce_of(&challenge), &format!("sip:{REALM}"), 1);
    device
        .write_all(tcp_register(&device, 2, Some(&auth)).as_bytes())
        .await
        .unwrap();
    let registered = read_until(&mut device, has_final).await;
    assert_eq!(code(&registered), 200, "{registered}");
    device
}

/// The response to `request` that echoes its transaction's headers, with `status`.
pub(super) fn response_to(request: &str, status: &str) -> String {
    let echoed: String = request
        .lines()
        .filter(|l| {
            ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
        })
        .map(|l| {
            if l.starts_with("To:") && !l.contains(";tag=") {
                format!("{l};tag=dev\r\n")
            } else {
                format!("{l}\r\n")
            }
        })
        .collect();
    format!("SIP/2.0 {status}\r\n{echoed}Content-Length: 0\r\n\r\n")
}

/// Device `device` is rung with caller id `name` <`number`> in its From, and answers busy.
pub(super) async fn rung_as_then_busy(device: &mut TcpStream, name: &str, number: &str) {
    let invite = read_until(device, |t| {
        t.contains("\r\n\r\n") && t.starts_with("INVITE")
    })
    .await;
    let from = invite.lines().find(|l| l.starts_with("From:")).unwrap();
    assert!(
        from.contains(&format!("\"{name}\"")) && from.contains(&format!("sip:{number}@")),
        "the device is shown the caller id the module set: {from}"
    );
    device
        .write_all(response_to(&invite, "486 Busy Here").as_bytes())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_registered_over_tcp_is_rung_on_its_connection() {
    let (host, sip) = start().await;
    let mut device = registered_over_tcp(&sip).await;
    // A carrier calls u1: the INVITE comes on the device's connection (it listens nowhere
    // else); the device is busy, and the flow takes its USER_BUSY child.
    let dir = tempfile::tempdir().unwrap();
    let call = carrier(&sip, "carrier_refused", &[("CODE", "480")], dir.path());
    let invite = read_until(&mut device, |t| {
        t.contains("\r\n\r\n") && t.starts_with("INVITE")
    })
    .await;
    assert!(invite.contains("SIP/2.0/TCP"), "{invite}");
    // cfhost's own leg has a Call-ID of the node's (its listening IP here), not the SIP
    // library's default domain.
    let call_id = invite.lines().find(|l| l.starts_with("Call-ID:")).unwrap();
    assert!(call_id.ends_with("@127.0.0.1"), "{call_id}");
    device
        .write_all(response_to(&invite, "486 Busy Here").as_bytes())
        .await
        .unwrap();
    succeeds(call).await;
    calls_done(&sip, 1).await;
    assert!(host.template_ids().contains(&"took-busy".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_elsewhere_is_rung_there_unless_nat_says_the_source() {
    let (host, sip) = start().await;
    // The device registers from one port a Contact at another (a phone's registrar client
    // apart from its UA), and nothing says NAT: the Contact is rung.
    let ua_port = free_udp_port(DEVICE_IP);
    let mut registrar_client = RawDevice::new(DEVICE_IP, sip.local_addr());
    let contact = format!("<sip:1001@{DEVICE_IP}:{ua_port}>");
    let uri = format!("sip:{REALM}");
    let challenge = registrar_client.register(&uri, &contact, None);
    let auth = authorization(&nonce_of(&challenge), &uri, 1);
    assert_eq!(
        code(&registrar_client.register(&uri, &contact, Some(&auth))),
        200
    );
    let busy = device("device_busy", ua_port);
    let dir = tempfile::tempdir().unwrap();
    let call = carrier(&sip, "carrier_refused", &[("CODE", "480")], dir.path());
    succeeds(busy).await;
    succeeds(call).await;
    calls_done(&sip, 1).await;
    assert!(host.template_ids().contains(&"took-busy".to_string()));

    // Behind NAT (its Via names a private address, not where it came from), the same
    // Contact is rung at the REGISTER's source.
    let mut nated = RawDevice::new(DEVICE_IP, sip.local_addr());
    nated.via = Some("192.168.1.20:5060".to_string());
    let unreachable = format!("<sip:1001@{DEVICE_IP}:{}>", free_udp_port(DEVICE_IP));
    let star = nated.register(&uri, "*", None);
    let auth = authorization(&nonce_of(&star), &uri, 1);
    assert_eq!(code(&nated.register(&uri, "*", Some(&auth))), 200);
    let challenge = nated.register(&uri, &unreachable, None);
    let auth = authorization(&nonce_of(&challenge), &uri, 1);
    assert_eq!(code(&nated.register(&uri, &unreachable, Some(&auth))), 200);
    let call = carrier(&sip, "carrier_refused", &[("CODE", "480")], dir.path());
    let socket = nated.socket.try_clone().unwrap();
    let server = sip.local_addr();
    let invite = tokio::task::spawn_blocking(move || {
        socket.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 8192];
        loop {
            let (len, _) = socket.recv_from(&mut buf).unwrap();
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            if text.starts_with("INVITE") {
                let busy = response_to(&text, "486 Busy Here");
                socket.send_to(busy.as_bytes(), server).unwrap();
                return text;
            }
        }
    })
    .await
    .unwrap();
    assert!(
        invite.contains(&unreachable[1..unreachable.len() - 1]),
        "{invite}"
    );
    succeeds(call).await;
    calls_done(&sip, 2).await;
}

/// Whether the far end closed `stream` within `within` (it reads end of file).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_are_capped_per_address_and_in_all_and_idle_ones_closed() {
    let mut config = sip_config();
    config.max_tcp_connections = 5;
    config.max_tcp_connections_per_address = 3;
    config.tcp_idle_secs = 2;
    let (_host, sip) = start_configured(config).await;
    let to = sip.local_addr();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(STRANGER_IP, to).await);
    }
    // A fourth from the same address is closed at once; another address still gets in.
    let mut fourth = connect_from(STRANGER_IP, to).await;
    assert!(closed_within(&mut fourth, Duration::from_secs(1)).await);
    held.push(connect_from("127.0.0.4", to).await);
    held.push(connect_from("127.0.0.4", to).await);
    // Five open: a device's connection is refused too, and counted.
    let mut sixth = connect_from(DEVICE_IP, to).await;
    assert!(closed_within(&mut sixth, Duration::from_secs(1)).await);
    assert_eq!(sip.metrics().rejections("tcp_connections"), 2);
    // The silent ones are closed after the idle timeout; then a device is answered.
    for stream in &mut held {
        assert!(
            closed_within(stream, Duration::from_secs(6)).await,
            "an idle connection stayed open"
        );
    }
    let options = |from: SocketAddr| tcp_options(from, to, "after");
    assert_eq!(tcp_final_code(DEVICE_IP, to, options).await, 200);
}
