//! The engine: the compiled-component cache across starts, both instance allocators running
//! the seed call, and a pool with no free slot.

use std::path::Path;
use std::sync::Arc;

use cfhost_core::engine::{Allocation, Provenance};
use cfhost_core::switch::SimulatorBehaviour;
use cfhost_core::trace::TraceEvent;
use cfhost_tests::{Builder, TestHost, hooked_switch, seed_missed_call_alert, with_seed_users};
use serde_json::json;

async fn host_with_cache(cache: &Path) -> TestHost {
    with_seed_users(Builder::new(), "acme")
        .callflow("acme", "seed", seed_missed_call_alert())
        .engine(|engine| engine.cache_dir = Some(cache.to_path_buf()))
        .start()
        .await
}

/// Whether every loaded module (there are some) came from `provenance`.
fn all_loaded_from(host: &TestHost, provenance: Provenance) -> bool {
    let set = host.runtime().modules();
    let mut modules = set.system().modules().peekable();
    modules.peek().is_some() && modules.all(|module| module.provenance() == provenance)
}

/// Runs the seed missed call; it must publish its alert.
async fn seed_call_alerts(host: &TestHost) {
    let before = host.notifications().len();
    host.run(
        json!({"account_id": "acme", "to": "+15554441111", "caller_id_number": "+15550001234",
        "behaviour": {"bridge": "no_answer", "voicemail": "hangup"}}),
    )
    .await;
    let after = host.notifications();
    assert_eq!(after.len(), before + 1);
    assert_eq!(
        after.last().unwrap().routing_key,
        "notifications.sip.missed_call"
    );
}

#[tokio::test]
async fn modules_are_compiled_once_then_mapped_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let first = host_with_cache(cache.path()).await;
    assert!(all_loaded_from(&first, Provenance::Compiled));
    seed_call_alerts(&first).await;

    let second = host_with_cache(cache.path()).await;
    assert!(all_loaded_from(&second, Provenance::Cached));
    seed_call_alerts(&second).await;
}

#[tokio::test]
async fn a_corrupt_cache_file_is_compiled_again() {
    let cache = tempfile::tempdir().unwrap();
    drop(host_with_cache(cache.path()).await);
    let engine_dir = std::fs::read_dir(cache.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let files: Vec<_> = std::fs::read_dir(&engine_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    for file in &files {
        std::fs::write(file, b"\x7fELF truncated").unwrap();
    }
    let host = host_with_cache(cache.path()).await;
    assert!(host.report.module_errors.is_empty());
    assert!(all_loaded_from(&host, Provenance::Compiled));
    seed_call_alerts(&host).await;
}

#[tokio::test]
async fn both_allocators_run_the_seed_call() {
    let pooled = with_seed_users(Builder::new(), "acme")
        .callflow("acme", "seed", seed_missed_call_alert())
        .start()
        .await;
    assert!(matches!(
        pooled.runtime().sandbox().allocation(),
        Allocation::Pooling { .. }
    ));
    seed_call_alerts(&pooled).await;

    let on_demand = with_seed_users(Builder::new(), "acme")
        .callflow("acme", "seed", seed_missed_call_alert())
        .engine(|engine| engine.pool_instances = 0)
        .start()
        .await;
    assert_eq!(
        on_demand.runtime().sandbox().allocation(),
        Allocation::OnDemand
    );
    seed_call_alerts(&on_demand).await;
}

#[tokio::test]
async fn a_full_pool_fails_the_node_clearly_and_the_calls_holding_it_finish() {
    const SLOTS: u32 = 3;
    let host = Arc::new(
        with_seed_users(Builder::new(), "acme")
            .callflow("acme", "seed", seed_missed_call_alert())
            .engine(|engine| engine.pool_instances = SLOTS)
            .start()
            .await,
    );
    assert_eq!(
        host.runtime().sandbox().allocation(),
        Allocation::Pooling { instances: SLOTS }
    );
    // Hold SLOTS calls in their ringing bridge: each keeps its `user` instance alive.
    let (ringing_tx, mut ringing_rx) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let held: Vec<_> = (0..SLOTS)
        .map(|_| {
            let (ringing_tx, release) = (ringing_tx.clone(), Arc::clone(&release));
            let switch = Arc::new(hooked_switch(
                SimulatorBehaviour::default(),
                Box::new(move || {
                    let (ringing_tx, release) = (ringing_tx.clone(), Arc::clone(&release));
                    Box::pin(async move {
                        let released = release.notified();
                        ringing_tx.send(()).unwrap();
                        released.await;
                    })
                }),
            ));
            let host = Arc::clone(&host);
            tokio::spawn(async move { host.run_on(seed_call(), switch).await })
        })
        .collect();
    for _ in 0..SLOTS {
        ringing_rx.recv().await.unwrap();
    }

    let report = host.run(seed_call()).await;
    let first = report
        .trace
        .iter()
        .find_map(|event| match event {
            TraceEvent::NodeResult { result, .. } => Some(result.to_string()),
            _ => None,
        })
        .unwrap();
    assert!(
        first.starts_with("FAILED: instantiate: ")
            && first.contains("maximum concurrent limit of 3")
            && first.ends_with("(capacity); continuing"),
        "{first}"
    );

    release.notify_waiters();
    for call in held {
        let report = call.await.unwrap();
        assert_eq!(
            report.nodes_run(),
            ["missed_call_alert", "user", "voicemail"]
        );
    }
    let counters = &host.runtime().health().counters()["missed_call_alert"];
    assert_eq!(counters.failures_summary(), "capacity 1");
    assert_eq!(counters.quarantines, 0);
    let alerts = host.notifications();
    assert_eq!(
        alerts.len(),
        SLOTS as usize,
        "the held calls alert; the failed one cannot"
    );
}

fn seed_call() -> serde_json::Value {
    json!({"account_id": "acme", "to": "+15554441111", "caller_id_number": "+15550001234",
        "behaviour": {"bridge": "no_answer", "voicemail": "hangup"}})
}
