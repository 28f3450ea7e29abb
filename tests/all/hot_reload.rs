//! Modules dropped into a running host: the operator's module directory and each account's
//! own (`accounts/<id>/modules/`). What a reload keeps, replaces and rejects, and that a call
//! in flight finishes with the versions it started on, callbacks included.

use std::sync::Arc;

use cfhost_core::policy::Capability;
use cfhost_core::policy::Lifecycle;
use cfhost_core::registry::Rejection;
use cfhost_core::runtime::InstallError;
use cfhost_core::switch::RingGate;
use cfhost_core::trace::TraceEvent;
use cfhost_tests::{Builder, TestHost, built_module, hooked_switch, with_seed_users};
use serde_json::{Value, json};

/// `versioned`, then (on `_` of its child) a `user` node that rings the seed user.
fn versioned_then_user() -> Value {
    json!({
        "numbers": ["+15550001000"],
        "flow": {
            "module": "versioned",
            "data": {},
            "children": {"_": {
                "module": "user",
                "data": {"id": "3e3f1217bee3ba0aa7496ca61fb4ae8f", "timeout": 20},
                "children": {}
            }}
        }
    })
}

/// A call to `versioned_then_user` in `account` whose bridge is not answered.
fn call_in(account: &str) -> Value {
    json!({"account_id": account, "to": "+15550001000", "caller_id_number": "+15550009999",
           "behaviour": {"bridge": "no_answer"}})
}

/// What `versioned` answered in a call: `continue to v1` or `continue to v2`.
fn versioned_results(trace: &[TraceEvent]) -> Vec<String> {
    trace
        .iter()
        .filter_map(|event| match event {
            TraceEvent::NodeResult { module, result } if module == "versioned" => {
                Some(result.to_string())
            }
            _ => None,
        })
        .collect()
}

fn skipped(trace: &[TraceEvent]) -> Vec<String> {
    trace
        .iter()
        .filter_map(|event| match event {
            TraceEvent::Skipped { module, reason, .. } => Some(format!("{module}: {reason}")),
            _ => None,
        })
        .collect()
}

/// A host with accounts `acme` and `other`, each with the versioned callflow, `acme` holding
/// `versioned` v1 in its own module directory; `versioned` may publish from callbacks.
async fn host_with_acme_module() -> TestHost {
    let mut builder = Builder::new().policy(|policy| {
        policy
            .grants
            .grant_module("versioned", vec![Capability::Callbacks, Capability::Notify])
    });
    for account in ["acme", "other"] {
        builder =
            with_seed_users(builder, account).callflow(account, "main", versioned_then_user());
    }
    builder
        .account_module_file("acme", "versioned.wasm", "versioned_v1")
        .start()
        .await
}

/// The one module file `errors` rejected, as it prints.
fn only_error(errors: &[Arc<Rejection>]) -> String {
    match errors {
        [error] => error.to_string(),
        _ => panic!("one error expected: {errors:?}"),
    }
}

fn acme_module_file(host: &TestHost) -> std::path::PathBuf {
    host.data_dir().join("accounts/acme/modules/versioned.wasm")
}

#[tokio::test]
async fn an_accounts_module_runs_only_for_that_account() {
    let host = host_with_acme_module().await;
    assert!(host.report.module_errors.is_empty(), "{:?}", host.report);
    let acme = host.run(call_in("acme")).await;
    assert_eq!(versioned_results(&acme.trace), ["continue to v1"]);
    assert_eq!(host.template_ids(), ["versioned-v1"]);

    let other = host.run(call_in("other")).await;
    assert!(versioned_results(&other.trace).is_empty());
    assert_eq!(skipped(&other.trace), ["versioned: unknown module"]);
    assert!(
        host.report
            .data
            .warnings
            .iter()
            .map(ToString::to_string)
            .any(|w| w.contains("other") && w.contains("unknown module `versioned`")),
        "{:?}",
        host.report.data.warnings
    );
    let modules = host.runtime().modules();
    let theirs = modules.view("acme").get("versioned").expect("acme sees it");
    assert_eq!(theirs.account(), Some("acme"));
    assert_eq!(theirs.lifecycle(), Lifecycle::PerNode);
    assert!(modules.system().get("versioned").is_none());
}

#[tokio::test]
async fn an_account_module_is_granted_nothing_unless_the_operator_grants_it() {
    let host = with_seed_users(Builder::new(), "acme")
        .account_module_file("acme", "versioned.wasm", "versioned_v1")
        .start()
        .await;
    let error = only_error(&host.report.module_errors);
    assert!(
        error.contains("versioned.wasm") && error.contains("capability `callbacks`"),
        "{error}"
    );
    assert!(
        host.runtime()
            .modules()
            .view("acme")
            .get("versioned")
            .is_none()
    );
}

#[tokio::test]
async fn an_account_module_cannot_take_a_system_modules_name() {
    let host = Builder::new()
        .account_module_file("acme", "mine.wasm", "test_fixture")
        .start()
        .await;
    let error = only_error(&host.report.module_errors);
    assert!(
        error.contains("mine.wasm")
            && error.contains(
                "`test_fixture` is a system module; an account's module cannot take its name"
            ),
        "{error}"
    );
}

#[tokio::test]
async fn a_replacement_serves_new_calls_while_a_call_in_flight_keeps_its_version() {
    let host = host_with_acme_module().await;
    // Call 1 runs `versioned` v1 and registers its callback, then rings until call 2 rings.
    let gate = Arc::new(RingGate::new(2));
    let switch = |gate: &Arc<RingGate>| {
        let gate = Arc::clone(gate);
        Arc::new(hooked_switch(
            serde_json::from_value(json!({"bridge": "no_answer"})).unwrap(),
            Box::new(move || {
                let gate = Arc::clone(&gate);
                Box::pin(async move { gate.ring().await })
            }),
        ))
    };
    let first = {
        let switch = switch(&gate);
        host.run_on(call_in("acme"), switch)
    };
    let replace_then_call = async {
        while gate.rung() < 1 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        std::fs::write(acme_module_file(&host), built_module("versioned_v2")).unwrap();
        let report = host.runtime().reload_account("acme").await.unwrap();
        assert!(report.module_errors.is_empty(), "{report:?}");
        host.run_on(call_in("acme"), switch(&gate)).await
    };
    let (first, second) = tokio::join!(first, replace_then_call);
    assert_eq!(versioned_results(&first.trace), ["continue to v1"]);
    assert_eq!(versioned_results(&second.trace), ["continue to v2"]);
    let mut templates = host.template_ids();
    templates.sort();
    assert_eq!(
        templates,
        ["versioned-v1", "versioned-v2"],
        "the first call's callback ran the version it registered with"
    );
}

#[tokio::test]
async fn a_broken_replacement_is_rejected_and_the_previous_version_keeps_serving() {
    let host = host_with_acme_module().await;
    std::fs::write(acme_module_file(&host), b"\0asm broken").unwrap();
    let report = host.runtime().reload_account("acme").await.unwrap();
    let error = only_error(&report.module_errors);
    assert!(
        error.contains("versioned.wasm")
            && error.contains("not a WebAssembly component")
            && error.ends_with("(the previous version keeps serving)"),
        "{error}"
    );
    let call = host.run(call_in("acme")).await;
    assert_eq!(versioned_results(&call.trace), ["continue to v1"]);

    // Fixed: the next reload takes the new version.
    std::fs::write(acme_module_file(&host), built_module("versioned_v2")).unwrap();
    let report = host.runtime().reload_account("acme").await.unwrap();
    assert!(report.module_errors.is_empty(), "{report:?}");
    let call = host.run(call_in("acme")).await;
    assert_eq!(versioned_results(&call.trace), ["continue to v2"]);
}

#[tokio::test]
async fn a_removed_module_is_gone_for_new_calls() {
    let host = host_with_acme_module().await;
    std::fs::remove_file(acme_module_file(&host)).unwrap();
    let report = host.runtime().reload_account("acme").await.unwrap();
    assert!(report.module_errors.is_empty(), "{report:?}");
    assert!(
        report
            .data
            .warnings
            .iter()
            .map(ToString::to_string)
            .any(|w| w.contains("unknown module `versioned`")),
        "the account's callflows are checked again: {report:?}"
    );
    let call = host.run(call_in("acme")).await;
    assert_eq!(skipped(&call.trace), ["versioned: unknown module"]);
}

#[tokio::test]
async fn a_pooled_system_module_is_never_reused_across_versions() {
    let host = with_seed_users(Builder::new(), "acme")
        .callflow("acme", "main", versioned_then_user())
        .system_module_file("versioned.wasm", "versioned_v1")
        .policy(|policy| {
            policy
                .grants
                .grant_module("versioned", vec![Capability::Callbacks, Capability::Notify]);
            policy.set_module_lifecycle("versioned", Lifecycle::Pooled { max_uses: 100 });
        })
        .start()
        .await;
    let call = host.run(call_in("acme")).await;
    assert_eq!(versioned_results(&call.trace), ["continue to v1"]);
    assert!(
        host.runtime().warm_instances().idle() >= 1,
        "v1 is kept warm"
    );

    std::fs::write(
        host.modules_dir().join("versioned.wasm"),
        built_module("versioned_v2"),
    )
    .unwrap();
    let report = host.runtime().reload_system_modules().await.unwrap();
    assert!(report.module_errors.is_empty(), "{report:?}");
    assert_eq!(
        host.runtime().warm_instances().idle(),
        0,
        "the replaced version's warm instances are dropped"
    );
    let call = host.run(call_in("acme")).await;
    assert_eq!(versioned_results(&call.trace), ["continue to v2"]);
}

#[tokio::test]
async fn an_unchanged_file_keeps_its_loaded_module() {
    let host = host_with_acme_module().await;
    let loaded_id = || {
        let modules = host.runtime().modules();
        modules.view("acme").get("versioned").unwrap().id()
    };
    let before = loaded_id();
    host.runtime().reload_system_modules().await.unwrap();
    host.runtime().reload_account("acme").await.unwrap();
    assert_eq!(before, loaded_id());
}

#[tokio::test]
async fn an_install_is_checked_before_anything_is_written() {
    let host = host_with_acme_module().await;
    let runtime = host.runtime();
    let error = runtime
        .install_account_module("acme", "other_name", built_module("versioned_v2"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, InstallError::NameMismatch { described, .. } if described == "versioned"),
        "{error}"
    );
    let error = runtime
        .install_account_module("acme", "versioned", b"not wasm".to_vec())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("not a WebAssembly component"),
        "{error}"
    );
    let error = runtime
        .install_account_module("nobody", "versioned", built_module("versioned_v2"))
        .await
        .unwrap_err();
    assert!(matches!(error, InstallError::UnknownAccount(_)), "{error}");
    assert_eq!(
        std::fs::read(acme_module_file(&host)).unwrap(),
        built_module("versioned_v1"),
        "nothing was written"
    );
    assert!(
        !host
            .data_dir()
            .join("accounts/acme/modules/other_name.wasm")
            .exists()
    );

    let (installed, _) = runtime
        .install_account_module("acme", "versioned", built_module("versioned_v2"))
        .await
        .unwrap();
    assert_eq!(installed.description().version, "2.0.0");
    let call = host.run(call_in("acme")).await;
    assert_eq!(versioned_results(&call.trace), ["continue to v2"]);
}
