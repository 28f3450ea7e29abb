//! WIT evolution: a module built against an older minor release of `cfhost:callflow` keeps
//! loading and running after additive changes. The fixture is a binary built and committed
//! when the host spoke 0.2.0 (`fixtures/wit-0.2.0/README.md`); the host now speaks a later 0.2.x.

use std::path::Path;
use std::sync::Arc;

use cfhost_core::bindings::WIT_VERSION;
use cfhost_core::registry::ModuleSource;
use cfhost_tests::Builder;
use serde_json::json;

const FROZEN: &str = "fixtures/wit-0.2.0/test_fixture.wasm";

fn frozen_fixture() -> ModuleSource {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FROZEN);
    ModuleSource {
        origin: path.display().to_string(),
        bytes: Arc::from(std::fs::read(&path).expect("the committed fixture")),
        shipped: true,
    }
}

#[tokio::test]
async fn a_module_built_against_wit_0_2_0_loads_and_runs_on_this_host() {
    assert_ne!(WIT_VERSION, "0.2.0", "the host has moved on from 0.2.0");
    let flow = json!({
        "numbers": ["+15550002000"],
        "flow": {
            "module": "test_fixture",
            "data": {"outcome": "continue", "keys": ["old"], "clock": false,
                     "register": [{"template_id": "from-0.2.0"}]},
            "children": {"old": {
                "module": "test_fixture",
                "data": {"clock": true},
                "children": {"clock-running": {
                    "module": "test_fixture", "data": {"outcome": "stop"}
                }}
            }}
        }
    });
    // Loaded after the current build of `test_fixture`, so it replaces it.
    let host = Builder::new()
        .module(frozen_fixture())
        .callflow("acme", "main", flow)
        .start()
        .await;
    assert!(host.report.module_errors.is_empty(), "{:?}", host.report);
    let modules = host.runtime().modules();
    let module = modules.system().get("test_fixture").unwrap();
    assert!(module.origin().ends_with(FROZEN), "{}", module.origin());
    assert_eq!(module.wit_version(), Some("0.2.0"));

    let call = host
        .run(json!({"account_id": "acme", "to": "+15550002000", "behaviour": {"bridge": "answer"}}))
        .await;
    assert_eq!(
        call.nodes_run(),
        ["test_fixture", "test_fixture", "test_fixture"],
        "{:#?}",
        call.trace
    );
    assert_eq!(call.callbacks(), [("test_fixture", None)]);
    assert_eq!(host.template_ids(), ["from-0.2.0"]);
}
