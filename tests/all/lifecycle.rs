//! Instance lifecycles: per-node instances are always fresh; pooled instances are reused
//! within an account only, and dropped after a failure or after `max_uses` uses.

use cfhost_core::bindings::Outcome;
use cfhost_core::policy::{Capability, Lifecycle};
use cfhost_core::runtime::CallError;
use cfhost_tests::{Builder, TestHost};
use serde_json::json;

async fn host(lifecycle: Lifecycle) -> TestHost {
    Builder::new()
        .policy(|policy| policy.set_module_lifecycle("test_fixture", lifecycle))
        .start()
        .await
}

/// The `use-<n>` key the fixture continues to: how many `handle` calls its instance has run.
async fn uses(host: &TestHost, account: &str) -> u32 {
    let outcome = host
        .run_node(account, "test_fixture", json!({"outcome": "count"}))
        .await
        .expect("the node runs");
    match outcome {
        Outcome::ContinueTo(keys) => keys[0]
            .strip_prefix("use-")
            .and_then(|n| n.parse().ok())
            .expect("use-<n>"),
        other => panic!("unexpected outcome {other:?}"),
    }
}

#[tokio::test]
async fn per_node_instances_are_always_fresh() {
    let host = host(Lifecycle::PerNode).await;
    for _ in 0..3 {
        assert_eq!(uses(&host, "acme").await, 1);
    }
    assert_eq!(host.runtime().warm_instances().idle(), 0);
}

#[tokio::test]
async fn pooled_instances_are_reused_within_an_account_never_across() {
    let host = host(Lifecycle::Pooled { max_uses: 100 }).await;
    assert_eq!(uses(&host, "acme").await, 1);
    assert_eq!(uses(&host, "acme").await, 2);
    assert_eq!(uses(&host, "other").await, 1, "another account's instance");
    assert_eq!(uses(&host, "acme").await, 3);
    assert_eq!(uses(&host, "other").await, 2);
    assert_eq!(host.runtime().warm_instances().idle(), 2);
}

#[tokio::test]
async fn a_pooled_instance_is_dropped_after_a_trap_or_an_error() {
    let host = host(Lifecycle::Pooled { max_uses: 100 }).await;
    assert_eq!(uses(&host, "acme").await, 1);
    assert_eq!(uses(&host, "acme").await, 2);
    for failing in ["trap", "error"] {
        let err = host
            .run_node("acme", "test_fixture", json!({"outcome": failing}))
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Node { .. }), "{err}");
        assert_eq!(host.runtime().warm_instances().idle(), 0);
        assert_eq!(
            uses(&host, "acme").await,
            1,
            "a fresh instance after {failing}"
        );
    }
}

#[tokio::test]
async fn a_pooled_instance_is_dropped_after_max_uses() {
    let host = host(Lifecycle::Pooled { max_uses: 2 }).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(uses(&host, "acme").await);
    }
    assert_eq!(seen, [1, 2, 1, 2, 1]);
}

#[tokio::test]
async fn running_a_node_checks_the_module_and_its_data() {
    let host = host(Lifecycle::PerNode).await;
    let err = host.run_node("acme", "nope", json!({})).await.unwrap_err();
    assert_eq!(err.to_string(), "no module `nope` is loaded");
    let err = host
        .run_node("acme", "missed_call_alert", json!({"recipients": 7}))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("module `missed_call_alert`: at data/recipients"),
        "{message}"
    );
}

#[tokio::test]
async fn an_accounts_own_module_is_pooled_for_it_only_when_the_operator_says_so() {
    // The account's own copy of the fixture (no system one of that name), pooled for `acme`.
    let own = |builder: Builder, account: &str| {
        builder.account_module_file(account, "test_fixture.wasm", "test_fixture")
    };
    let host = own(
        own(Builder::new().without_fixture("test_fixture"), "acme"),
        "other",
    )
    .policy(|policy| {
        for account in ["acme", "other"] {
            policy
                .grants
                .grant_account(account, "test_fixture", Capability::ALL.to_vec());
        }
        policy.set_account_module_lifecycle(
            "acme",
            "test_fixture",
            Lifecycle::Pooled { max_uses: 100 },
        );
    })
    .start()
    .await;
    assert!(host.report.module_errors.is_empty(), "{:?}", host.report);
    assert_eq!(uses(&host, "acme").await, 1);
    assert_eq!(uses(&host, "acme").await, 2, "pooled for acme");
    assert_eq!(uses(&host, "other").await, 1);
    assert_eq!(
        uses(&host, "other").await,
        1,
        "per node for the other account"
    );
}
