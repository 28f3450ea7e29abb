//! The web console in a real browser: `cfhost serve` with two accounts, a device registered
//! over SIP (SIPp), a carrier's SIP call that ended, a voicemail box with a one-second message,
//! a module quarantined for an account after five traps, a module file that is no component
//! and one that is; then `tests/console/console.test.mjs` drives Debian's headless Chromium through
//! every view as a person would and checks each with axe-core (and `tree.test.mjs` checks the
//! tree's edits in Node). Chromium and the test's npm packages are installed by `tests/run`;
//! without them this test fails, saying so.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cfhost_tests::sipp::{Sipp, SippRun, free_udp_port, scenario};
use cfhost_tests::{built_module, repo_root};
use serde_json::json;

use crate::serve::{ACME, OPERATOR, request, sip_address, start_logging};

const CHROMIUM: &str = "/usr/bin/chromium";
const CARRIER_IP: &str = "127.0.0.23";
const DEVICE_IP: &str = "127.0.0.26";
const REALM: &str = "acme-missed.sip.example.com";
/// A number of acme-missed whose flow ends at once: the carrier's call is refused with 480.
const ENDS_AT_ONCE: &str = "+15559990000";
/// A number of acme-missed whose module traps: five calls quarantine it for the account.
const TRAPS: &str = "7777";

/// A WAV of `seconds` of a 440 Hz tone, 8 kHz 16-bit mono.
fn tone_wav(seconds: u32) -> Vec<u8> {
    let samples: Vec<i16> = (0..8000 * seconds)
        .map(|n| {
            let phase = f64::from(n) * 440.0 * std::f64::consts::TAU / 8000.0;
            (phase.sin() * 8000.0) as i16
        })
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // the format chunk's size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    wav
}

/// Writes what the console shows: a device, a box with one message, a flow that ends at once.
fn prepare(data: &Path) {
    let account = data.join("accounts/acme-missed");
    let write = |relative: &str, value: serde_json::Value| {
        let path = account.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    };
    write(
        "devices/desk.json",
        json!({"name": "Front desk phone", "owner_id": "3e3f1217bee3ba0aa7496ca61fb4ae8f",
               "sip": {"username": "1001", "password": "desk-pw"}}),
    );
    write(
        "vmboxes/sales.json",
        json!({"name": "Sales", "mailbox": "3001"}),
    );
    write(
        "vmboxes/sales/1765000000-0000abcd.json",
        json!({"message_id": "1765000000-0000abcd", "box_id": "sales", "call_id": "c1",
               "caller_id_name": "Jane Caller", "caller_id_number": "+15550001234",
               "timestamp": 1765000000, "length_ms": 1000, "media": "1765000000-0000abcd.wav"}),
    );
    std::fs::write(
        account.join("vmboxes/sales/1765000000-0000abcd.wav"),
        tone_wav(1),
    )
    .unwrap();
    write(
        "callflows/traps.json",
        json!({"numbers": [TRAPS], "flow": {"module": "test_fixture", "data": {"outcome": "trap"}}}),
    );
    write(
        "callflows/ends.json",
        json!({"numbers": [ENDS_AT_ONCE],
               "flow": {"module": "voicemail", "data": {"action": "check"}, "children": {}}}),
    );
}

/// Runs SIPp as `run` says, and waits for it to succeed.
fn sipp(run: SippRun<'_>) {
    Sipp::start(run).expect_success(Duration::from_secs(30));
}

#[test]
fn every_view_of_the_console_works_in_headless_chromium_and_passes_axe() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (tests/run does)"
    );
    let tests = repo_root().join("tests/console");
    assert!(
        tests.join("node_modules/playwright-core").is_dir(),
        "tests/console/node_modules is missing: `npm ci` there (tests/run does)"
    );
    let server = start_logging(
        &format!("[sip.trunks.carrier]\naddresses = [\"{CARRIER_IP}\"]\n"),
        prepare,
        None,
        &[],
    );
    let sip = sip_address(&server);
    // The device registers; the carrier's call ends at once (480).
    let dir = tempfile::tempdir().unwrap();
    let mut register = SippRun::new(
        scenario("register", &[], dir.path()),
        DEVICE_IP,
        free_udp_port(DEVICE_IP),
    );
    register.remote = Some(sip);
    register.service = "1001";
    register.keys = vec![("realm", REALM.to_string()), ("expires", "300".to_string())];
    register.credentials = Some(("1001", "desk-pw"));
    register.auth_uri = Some(REALM.to_string());
    sipp(register);
    let mut call = SippRun::new(
        scenario("carrier_refused", &[("CODE", "480")], dir.path()),
        CARRIER_IP,
        free_udp_port(CARRIER_IP),
    );
    call.remote = Some(sip);
    call.service = ENDS_AT_ONCE;
    call.keys = vec![("caller", "+15550001234".to_string())];
    sipp(call);
    for _ in 0..5 {
        let trap = json!({"to": TRAPS});
        let (status, body) = request(
            &server,
            "POST",
            "/v1/accounts/acme-missed/calls",
            Some(ACME),
            Some(&trap),
        );
        assert_eq!(status, 200, "{body}");
    }
    let bad_module = dir.path().join("broken.wasm");
    std::fs::write(&bad_module, b"\0asm\x01\0\0\0 this is no component").unwrap();
    let good_module = dir.path().join("versioned.wasm");
    std::fs::write(&good_module, built_module("versioned_v1")).unwrap();

    let output = Command::new("node")
        .args([
            "--test",
            "--test-reporter=spec",
            // Each step is bounded (and the browser's start, in the test file).
            "--test-timeout=60000",
            "tree.test.mjs",
            "console.test.mjs",
        ])
        .current_dir(&tests)
        .env("CFHOST_URL", format!("http://127.0.0.1:{}", server.port))
        .env("CFHOST_OPERATOR_TOKEN", OPERATOR)
        .env("CFHOST_ACCOUNT_TOKEN", ACME)
        .env("CFHOST_ACCOUNT", "acme-missed")
        .env("CFHOST_OTHER_ACCOUNT", "acme-notify")
        .env("CFHOST_BAD_MODULE", &bad_module)
        .env("CFHOST_GOOD_MODULE", &good_module)
        .env("CFHOST_BOX", "sales")
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("node runs");
    let report = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    println!("{report}");
    assert!(
        output.status.success(),
        "the console's browser test failed:\n{report}\n{errors}\nserver log:\n{}",
        server.log()
    );
    // Every step ran: none was skipped or left out.
    assert!(report.contains("pass 20"), "{report}");
    assert!(report.contains("fail 0"), "{report}");
}
