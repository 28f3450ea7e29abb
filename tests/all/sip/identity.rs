//! Who a device calls as: its configured caller id, or its owner's, as in KAZOO; its From
//! only where the operator allows it.

use super::*;

/// Device `user` (password `password`) calls 2000 with a From claiming to be the CEO; the
/// caller id number the call ran with, from its trace.
async fn caller_id_of_a_call_from(
    sip: &SipService,
    user: &'static str,
    password: &'static str,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let spoofed = [(r#""Desk" <sip:[user]@"#, r#""The CEO" <sip:+15550000001@"#)];
    let mut run = SippRun::new(
        scenario("device_call", &spoofed, dir.path()),
        DEVICE_IP,
        free_udp_port(DEVICE_IP),
    );
    run.remote = Some(sip.local_addr());
    run.service = "2000";
    run.keys = vec![("realm", REALM.to_string()), ("user", user.to_string())];
    run.credentials = Some((user, password));
    run.auth_uri = Some(format!("2000@{REALM}"));
    let before = sip.recent_calls(None).len();
    succeeds(Sipp::start(run)).await;
    calls_done(sip, before as u64 + 1).await;
    let trace = sip.recent_calls(None).last().unwrap().trace.join("\n");
    let line = trace
        .lines()
        .find(|l| l.contains("INVITE"))
        .unwrap()
        .to_string();
    let from = line.split(" from ").nth(1).unwrap();
    from.split_whitespace().next().unwrap().to_string()
}

/// Two more devices: d3 with a caller id of its own, d4 whose owner u3 has one.
fn devices_with_caller_ids(builder: Builder) -> Builder {
    builder
        .user("acme", "u3", json!({"email": "u3@example.com",
            "caller_id": {"internal": {"name": "Sales", "number": "+15557770004"}}}))
        .write_json(
            "accounts/acme/devices/d3.json",
            json!({"name": "front", "owner_id": "u2", "sip": {"username": "1003", "password": "third"},
                   "caller_id": {"internal": {"name": "Front desk", "number": "+15557770003"}}}),
        )
        .write_json(
            "accounts/acme/devices/d4.json",
            json!({"name": "sales", "owner_id": "u3", "sip": {"username": "1004", "password": "fourth"}}),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_calls_as_its_configured_caller_id_not_as_its_from() {
    let (_host, sip) = start_full(devices_with_caller_ids, sip_config()).await;
    assert_eq!(
        caller_id_of_a_call_from(&sip, "1003", "third").await,
        "+15557770003"
    );
    assert_eq!(
        caller_id_of_a_call_from(&sip, "1004", "fourth").await,
        "+15557770004",
        "its owner's"
    );
    assert_eq!(
        caller_id_of_a_call_from(&sip, "1002", "other").await,
        "1002",
        "nothing configured"
    );

    let mut trusting = sip_config();
    trusting.device_from_sets_caller_id = true;
    let (_host, sip) = start_full(devices_with_caller_ids, trusting).await;
    assert_eq!(
        caller_id_of_a_call_from(&sip, "1002", "other").await,
        "+15550000001",
        "the From, allowed"
    );
    assert_eq!(
        caller_id_of_a_call_from(&sip, "1003", "third").await,
        "+15557770003",
        "configured wins"
    );
}

#[tokio::test]
async fn a_device_whose_owner_is_no_user_is_reported_at_load() {
    let host = Builder::new()
        .user("acme", "u1", json!({"email": "u1@example.com"}))
        .write_json(
            "accounts/acme/devices/d9.json",
            json!({"name": "orphan", "owner_id": "ghost", "sip": {"username": "1009", "password": "x"}}),
        )
        .start()
        .await;
    let warnings: Vec<String> = host
        .report
        .data
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("d9.json: owner_id `ghost` names no user")),
        "{warnings:?}"
    );
}

/// A Proxy-Authorization for an INVITE of `user` with `password` in `realm`.
fn invite_authorization(user: &str, password: &str, realm: &str, nonce: &str, uri: &str) -> String {
    use md5::Digest;
    let hex = |text: String| {
        md5::Md5::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let ha1 = hex(format!("{user}:{realm}:{password}"));
    let ha2 = hex(format!("INVITE:{uri}"));
    let response = hex(format!("{ha1}:{nonce}:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5"
    )
}

/// The final responses to an INVITE from `realm`: without credentials, then with `password`.
fn invite_twice(
    socket: &std::net::UdpSocket,
    server: SocketAddr,
    realm: &str,
    password: &str,
    n: u32,
) -> (String, String) {
    let from = socket.local_addr().unwrap();
    let uri = format!("sip:2000@{server}");
    let invite = |cseq: u32, auth: &str| {
        format!(
            "INVITE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {from};branch=z9hG4bK-realm-{n}-{cseq}\r\n\
             From: <sip:1001@{realm}>;tag=realm{n}\r\n\
             To: <sip:2000@{realm}>\r\n\
             Call-ID: realm-{n}@test\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <sip:1001@{from}>\r\n\
             {auth}Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let final_response = || {
        let mut buf = [0u8; 8192];
        loop {
            let (len, _) = socket.recv_from(&mut buf).unwrap();
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            if code(&text) >= 200 {
                return text;
            }
        }
    };
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket.send_to(invite(1, "").as_bytes(), server).unwrap();
    let challenge = final_response();
    let nonce = nonce_of(&challenge);
    let auth = invite_authorization("1001", password, realm, &nonce, &uri);
    let header = format!("Proxy-Authorization: {auth}\r\n");
    socket
        .send_to(invite(2, &header).as_bytes(), server)
        .unwrap();
    (challenge, final_response())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_from_an_unknown_realm_is_answered_as_a_wrong_password() {
    let (_host, sip) = start().await;
    let server = sip.local_addr();
    let (known, unknown) = tokio::task::spawn_blocking(move || {
        let socket = std::net::UdpSocket::bind((DEVICE_IP, 0)).unwrap();
        let known = invite_twice(&socket, server, REALM, "wrong", 1);
        let unknown = invite_twice(&socket, server, "nobody.example.org", "secret", 2);
        (known, unknown)
    })
    .await
    .unwrap();
    assert_eq!((code(&known.0), code(&known.1)), (407, 403), "{known:?}");
    assert_eq!(
        (code(&unknown.0), code(&unknown.1)),
        (407, 403),
        "{unknown:?}"
    );
    assert!(
        unknown.0.contains("realm=\"nobody.example.org\""),
        "{}",
        unknown.0
    );
}
