//! Loading data: bad documents are reported with their place and left out; everything else
//! keeps working. Calls that match no callflow get a clear error.

use std::sync::Arc;

use cfhost_core::accounts::DocumentError;
use cfhost_core::callflow::CallflowError;
use cfhost_core::registry::ModuleSource;
use cfhost_core::runtime::CallError;
use cfhost_tests::{Builder, dropped_in_module, lines, seed_missed_call_alert, with_seed_users};
use serde_json::json;

#[tokio::test]
async fn bad_callflows_are_reported_and_the_rest_loads() {
    let host = with_seed_users(Builder::new(), "acme")
        .callflow("acme", "good", seed_missed_call_alert())
        .raw_callflow(
            "acme",
            "broken.json",
            "{\n  \"numbers\": [\"2\"],\n  \"flow\": {\n}",
        )
        .callflow(
            "acme",
            "bad-data",
            json!({"numbers": ["3"], "flow": {"module": "user", "data": {}, "children": {"_": {
                "module": "missed_call_alert",
                "data": {"recipients": [{"type": "fax", "id": "x"}]}
            }}}}),
        )
        .callflow(
            "acme",
            "unknown",
            json!({"numbers": ["4"], "flow": {"module": "no_such_module", "data": {}}}),
        )
        .start()
        .await;
    assert!(matches!(
        &host.report.data.errors[0],
        DocumentError::Callflow(CallflowError::Data { module, .. }) if module == "missed_call_alert"
    ));
    let errors = lines(&host.report.data.errors);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    // Files load in name order: bad-data.json, then broken.json.
    let (bad_data, broken) = (&errors[0], &errors[1]);
    assert!(
        bad_data.contains("bad-data.json: flow.children._:"),
        "{bad_data}"
    );
    assert!(
        bad_data.contains("module `missed_call_alert`"),
        "{bad_data}"
    );
    assert!(bad_data.contains("at data/recipients/0/type"), "{bad_data}");
    assert!(broken.contains("broken.json:4:"), "{broken}");
    assert!(broken.contains("malformed JSON"), "{broken}");
    let warnings = lines(&host.report.data.warnings);
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("unknown.json: flow: unknown module `no_such_module`"));

    // The rejected callflows are not served; the good ones are.
    let call = |to: &str| json!({"account_id": "acme", "to": to, "caller_id_number": "5"});
    assert_eq!(
        host.call(call("3")).await.unwrap_err(),
        CallError::NoCallflow {
            account_id: "acme".into(),
            number: "3".into()
        }
    );
    host.run(call("+15554441111")).await;
    assert_eq!(host.notifications().len(), 1);
}

#[tokio::test]
async fn calls_to_unknown_accounts_or_numbers_are_clear_errors() {
    let host = Builder::new()
        .callflow("acme", "cf", json!({"numbers": ["100"], "flow": {}}))
        .start()
        .await;
    let err = host
        .call(json!({"account_id": "nobody", "to": "100"}))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "account `nobody` does not exist");
    let err = host
        .call(json!({"account_id": "acme", "to": "*97"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no callflow for `*97`"), "{err}");
}

#[tokio::test]
async fn every_shipped_module_describes_itself() {
    let host = Builder::new().start().await;
    assert!(
        host.report.module_errors.is_empty(),
        "{:?}",
        host.report.module_errors
    );
    for name in [
        "missed_call_alert",
        "notification",
        "user",
        "voicemail",
        "test_fixture",
    ] {
        let module = host_module(&host, name);
        assert_eq!(module.0, name);
        assert_eq!(module.1, "0.1.0");
        let schema: serde_json::Value = serde_json::from_str(&module.2).unwrap();
        assert_eq!(schema["type"], "object", "{name}");
    }
}

fn host_module(host: &cfhost_tests::TestHost, name: &str) -> (String, String, String) {
    let set = host.runtime().modules();
    let module = set.system().get(name).expect("module loaded");
    let d = module.description();
    (d.name.clone(), d.version.clone(), d.data_schema.clone())
}

#[tokio::test]
async fn components_that_do_not_fit_are_refused_at_load_and_the_rest_works() {
    let source = |origin: &str, bytes: Vec<u8>| ModuleSource {
        origin: origin.to_string(),
        bytes: Arc::from(bytes),
        shipped: false,
    };
    let host = with_seed_users(Builder::new(), "acme")
        .callflow("acme", "good", seed_missed_call_alert())
        .module(dropped_in_module("wrong_world"))
        .module(dropped_in_module("future_major"))
        .module(source("huge.wasm", vec![0; 33 << 20]))
        .module(source("text.wasm", b"not wasm at all".to_vec()))
        .start()
        .await;
    let errors = lines(&host.report.module_errors);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors[0].contains(
            "wrong_world.wasm: exports the wrong world: `callflow-module` needs describe, \
             handle, on-termination, missing describe, handle, on-termination; it exports \
             [wasi:cli/run@"
        ),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].ends_with(
            "future_major.wasm: built against cfhost:callflow@1.0.0, which this host (speaking \
             @0.3.1, and @0.2.1 for older modules) cannot run: rebuild it against the WIT this \
             host ships"
        ),
        "{}",
        errors[1]
    );
    assert_eq!(
        errors[2],
        "huge.wasm: the file is 34603008 bytes; modules may be at most 33554432 bytes \
         ([loading] max_wasm_kib)"
    );
    assert!(
        errors[3].starts_with("text.wasm: not a WebAssembly component: "),
        "{}",
        errors[3]
    );
    host.run(json!({"account_id": "acme", "to": "+15554441111", "caller_id_number": "5"}))
        .await;
    assert_eq!(host.notifications().len(), 1);
}

#[tokio::test]
async fn no_module_schema_carries_the_executors_keys() {
    let host = Builder::new().start().await;
    let modules = host.runtime().modules();
    let names: Vec<&str> = modules.system().modules().map(|m| &**m.name()).collect();
    for shipped in ["missed_call_alert", "notification", "user", "voicemail"] {
        assert!(names.contains(&shipped), "{names:?}");
    }
    for module in modules.system().modules() {
        let schema = &module.description().data_schema;
        for key in cfhost_core::callflow::EXECUTOR_KEYS {
            assert!(!schema.contains(key), "{} mentions {key}", module.name());
        }
    }
}

#[tokio::test]
async fn a_global_number_of_two_accounts_stays_with_the_first_and_the_second_is_told() {
    let flow =
        |number: &str| json!({"numbers": [number, "100"], "flow": {"module": "test_fixture"}});
    let host = Builder::new()
        .callflow("alpha", "main", flow("+14158867900"))
        // The same global number, written nationally; an extension both may have.
        .callflow("beta", "main", flow("4158867900"))
        .start()
        .await;
    let errors = lines(&host.report.data.errors);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("accounts/beta/callflows/main.json")
            && errors[0].contains("number `4158867900` belongs to account `alpha`"),
        "{}",
        errors[0]
    );
    let accounts = host.runtime().accounts();
    assert_eq!(accounts.account_for_number("+14158867900"), Some("alpha"));
    assert_eq!(accounts.account_for_number("14158867900"), Some("alpha"));
    assert_eq!(
        accounts.account_for_number("100"),
        None,
        "extensions are not global"
    );
    // Within its own account, beta's callflow still serves its numbers.
    host.run(json!({"account_id": "beta", "to": "100"})).await;
}

#[tokio::test]
async fn a_data_directory_entry_that_cannot_be_read_is_a_problem_naming_its_path() {
    let host = Builder::new()
        .callflow("acme", "main", json!({"numbers": ["1"], "flow": {}}))
        .account_document("acme", "users", json!("not a directory"))
        .start()
        .await;
    let [error] = host.report.data.errors.as_slice() else {
        panic!("{:?}", host.report.data)
    };
    assert!(
        matches!(error, DocumentError::Unreadable { file, .. } if file.ends_with("acme/users"))
    );
    assert!(
        error.to_string().contains("acme/users: cannot read"),
        "{error}"
    );
}

#[tokio::test]
async fn an_account_time_zone_no_one_knows_is_a_warning_naming_the_file() {
    let flow = json!({"numbers": ["100"], "flow": {"module": "test_fixture"}});
    let host = Builder::new()
        .account_document(
            "mars",
            "account.json",
            json!({"timezone": "Mars/Olympus_Mons"}),
        )
        .callflow("mars", "main", flow.clone())
        .account_document("paris", "account.json", json!({"timezone": "Europe/Paris"}))
        .callflow("paris", "main", flow)
        .start()
        .await;
    let warnings = lines(&host.report.data.warnings);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("accounts/mars/account.json")
            && warnings[0].contains("timezone `Mars/Olympus_Mons` is no IANA time zone"),
        "{}",
        warnings[0]
    );
    // The account still loads and takes calls.
    host.run(json!({"account_id": "mars", "to": "100"})).await;
}

#[test]
fn the_examples_ring_only_addresses_that_cannot_leave_the_machine() {
    // `serve` on the examples must not ring the internet: every SIP address in them is on
    // loopback.
    let accounts = cfhost_tests::repo_root().join("examples/data/accounts");
    let mut addresses = Vec::new();
    for account in std::fs::read_dir(&accounts).unwrap().flatten() {
        let Ok(users) = std::fs::read_dir(account.path().join("users")) else {
            continue;
        };
        for user in users.flatten() {
            let document: serde_json::Value =
                serde_json::from_slice(&std::fs::read(user.path()).unwrap()).unwrap();
            for endpoint in document["endpoints"].as_array().into_iter().flatten() {
                if let Some(address) = endpoint["address"].as_str() {
                    addresses.push(address.to_string());
                }
            }
        }
    }
    assert!(!addresses.is_empty(), "the examples ring no address at all");
    for address in addresses {
        let host = address
            .split('@')
            .nth(1)
            .and_then(|rest| rest.split([':', ';', '>']).next())
            .unwrap_or_default();
        let loopback = host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
        assert!(loopback, "{address} can leave the machine");
    }
}

#[tokio::test]
async fn a_voicemail_box_that_breaks_its_shape_is_reported_naming_the_file_and_the_rest_loads() {
    let host = Builder::new()
        .write_json(
            "accounts/acme/vmboxes/sales.json",
            json!({"name": "Sales", "mailbox": "3001"}),
        )
        .write_json(
            "accounts/acme/vmboxes/letters.json",
            json!({"name": "Letters", "mailbox": "30a1"}),
        )
        .write_json(
            "accounts/acme/vmboxes/nameless.json",
            json!({"mailbox": "3002"}),
        )
        .start()
        .await;
    let errors = lines(&host.report.data.errors);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains("vmboxes/letters.json"), "{}", errors[0]);
    assert!(errors[0].contains("1 to 16 digits"), "{}", errors[0]);
    assert!(errors[1].contains("vmboxes/nameless.json"), "{}", errors[1]);
    assert!(errors[1].contains("missing field `name`"), "{}", errors[1]);
    let accounts = host.runtime().accounts();
    let boxes: Vec<&String> = accounts.get("acme").unwrap().vmboxes().keys().collect();
    assert_eq!(boxes, ["sales"]);
}
