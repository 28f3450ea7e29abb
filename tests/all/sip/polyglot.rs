//! Modules written in Python and JavaScript on real calls: a carrier's call from a listed
//! number is turned away by the Python `blocklist` (603, CALL_REJECTED); another goes through
//! it to the JavaScript `check_cid`, which sets the caller id the rung device is shown.

use super::transports::{registered_over_tcp, rung_as_then_busy};
use super::*;
use cfhost_tests::polyglot_module;

const TURNED_AWAY: &str = "+15554443331";
const SCREENED: &str = "+15554443332";

/// `TURNED_AWAY` lists the carrier's caller; `SCREENED` lists somebody else, then checks the
/// caller id and rings u1 with the caller id it sets.
fn flows(builder: Builder) -> Builder {
    let ring_u1 = json!({"module": "user", "data": {"id": "u1", "timeout": 3}});
    builder
        .module(polyglot_module("blocklist"))
        .module(polyglot_module("check_cid"))
        .callflow(
            "acme",
            "turned-away",
            json!({"numbers": [TURNED_AWAY],
                   "flow": {"module": "blocklist", "data": {"numbers": [CALLER]},
                            "children": {"_": ring_u1.clone()}}}),
        )
        .callflow(
            "acme",
            "screened",
            json!({"numbers": [SCREENED],
                   "flow": {"module": "blocklist", "data": {"prefixes": ["+1900"]},
                            "children": {"_": {
                                "module": "check_cid",
                                "data": {"regex": "^\\+1555",
                                         "caller_id": {"external": {"name": "Screened",
                                                                    "number": "+15559990000"}}},
                                "children": {"match": ring_u1}}}}}),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_modules_take_real_calls() {
    let (_host, sip) = start_with(flows).await;
    let mut device = registered_over_tcp(&sip).await;
    let dir = tempfile::tempdir().unwrap();

    // A listed caller: the Python blocklist hangs up CALL_REJECTED, the carrier gets 603 and
    // the device is never rung.
    let call = carrier_from(
        TRUNK_IP,
        sip.local_addr(),
        "carrier_refused",
        &[("CODE", "603")],
        dir.path(),
        TURNED_AWAY,
    );
    succeeds(call).await;
    calls_done(&sip, 1).await;

    // Another number: through the blocklist to check_cid, which matches and sets the caller
    // id; the device is rung with it, and is busy.
    let call = carrier_from(
        TRUNK_IP,
        sip.local_addr(),
        "carrier_refused",
        &[("CODE", "480")],
        dir.path(),
        SCREENED,
    );
    rung_as_then_busy(&mut device, "Screened", "+15559990000").await;
    succeeds(call).await;
    calls_done(&sip, 2).await;

    let calls = sip.recent_calls(None);
    let traces: Vec<String> = calls.iter().map(|c| c.trace.join("\n")).collect();
    assert_eq!(traces.len(), 2, "{traces:#?}");
    assert!(
        traces[0]
            .contains("blocklist [info] blocked (+15550001234 is listed): hung up CALL_REJECTED")
            && !traces[0].contains("node user"),
        "{}",
        traces[0]
    );
    assert!(
        traces[1].contains("node check_cid") && traces[1].contains("node user"),
        "{}",
        traces[1]
    );
}
