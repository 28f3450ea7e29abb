//! The module contract on real calls: the shipped modules as built for WIT 0.2.1 run a carrier's
//! call as their 0.3 builds do, and a 0.3 module reads the carrier's `X-` headers (and not the
//! others), sees who authorised the call, and sets the caller id the rung device is shown.

use super::transports::{registered_over_tcp, rung_as_then_busy};
use super::*;
use cfhost_tests::{SHIPPED_AT_0_2_1, wit_0_2_0_fixture, wit_0_2_1_module};

/// A host whose shipped modules are the 0.2.1 builds and whose test_fixture (the seed flow's
/// USER_BUSY child) is the 0.2.0 build.
async fn start_built_for_0_2() -> (TestHost, SipService) {
    let (host, sip) = start_with(|mut builder| {
        for name in SHIPPED_AT_0_2_1 {
            builder = builder.module(wit_0_2_1_module(name));
        }
        builder.module(wit_0_2_0_fixture())
    })
    .await;
    for name in SHIPPED_AT_0_2_1.iter().chain(&["test_fixture"]) {
        let modules = host.runtime().modules();
        let world = modules.system().get(name).unwrap().world();
        assert_eq!(world, cfhost_core::bindings::World::V0_2, "{name}");
    }
    (host, sip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_built_for_0_2_0_and_0_2_1_take_real_calls() {
    let (host, sip) = start_built_for_0_2().await;
    a_missed_call_sends_the_seed_alert(&host, &sip).await;
    // A busy device (on a host of its own, so it is the device's only binding): 0.2.1's
    // `user` takes its USER_BUSY child, 0.2.0's test_fixture registers a callback there, and
    // the callback publishes when the call ends.
    let (host, sip) = start_built_for_0_2().await;
    a_busy_device_takes_the_user_busy_child(&host, &sip).await;
}

const CONTRACT_NUMBER: &str = "+15554442222";

/// Reads the call's headers and authoriser, sets the caller id, then rings u1; a busy u1
/// takes the `USER_BUSY` child.
fn contract_flow() -> Value {
    json!({
        "numbers": [CONTRACT_NUMBER],
        "flow": {
            "module": "test_fixture",
            "data": {
                "set_caller_id": {"name": "Front Desk", "number": "+15559990000"},
                "read": ["sip_headers", "sip_header:x-tier", "sip_header:User-Agent",
                         "authorized_by", "caller_id_number", "callee_id_number"]
            },
            "children": {"_": {
                "module": "user",
                "data": {"id": "u1", "timeout": 3},
                "children": {"USER_BUSY": {"module": "test_fixture",
                    "data": {"register": [{"template_id": "took-busy"}]}}}
            }}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_reads_the_carriers_x_headers_and_the_device_is_shown_the_caller_id_it_set() {
    let (host, sip) =
        start_with(|builder| builder.callflow("acme", "contract", contract_flow())).await;
    // The device registers over TCP, so the INVITE it is rung with can be read whole.
    let mut device = registered_over_tcp(&sip).await;

    // The carrier's INVITE carries two X- headers, a User-Agent and a credential.
    let headers = "Max-Forwards: 70\n      X-Tier: gold\n      User-Agent: carrier-sbc\n      \
                   X-Route: eu\n      Proxy-Authorization: Digest username=\"x\"";
    let dir = tempfile::tempdir().unwrap();
    let call = carrier_from(
        TRUNK_IP,
        sip.local_addr(),
        "carrier_refused",
        &[("CODE", "480"), ("Max-Forwards: 70", headers)],
        dir.path(),
        CONTRACT_NUMBER,
    );
    rung_as_then_busy(&mut device, "Front Desk", "+15559990000").await;
    succeeds(call).await;
    calls_done(&sip, 1).await;
    assert!(host.template_ids().contains(&"took-busy".to_string()));

    let trace = sip.recent_calls(None).last().unwrap().trace.join("\n");
    for fact in [
        r#"sip_headers=[("X-Tier", "gold"), ("X-Route", "eu")]"#,
        r#"sip_header:x-tier=Some("gold")"#,
        r#"sip_header:User-Agent=None"#,
        r#"authorized_by=Some(AuthorizedBy::Trunk("carrier"))"#,
        r#"caller_id_number=Some("+15559990000")"#,
        r#"callee_id_number=Some("+15554442222")"#,
    ] {
        assert!(trace.contains(fact), "{fact} not in the trace:\n{trace}");
    }
    assert!(
        !trace.contains("Digest"),
        "a credential reached a module:\n{trace}"
    );
}
