//! Load with hostility: 10,000 calls held at the same time inside a ringing bridge, of which
//! 10% run hostile modules (spread over 50 tenant accounts, eight attacks). Every call must
//! produce exactly its one missed-call alert, nothing else may be published, and the host's
//! peak memory and counters are printed for the record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cfhost_core::engine::EngineSettings;
use cfhost_core::policy::Limits;
use cfhost_core::scenario::ScenarioCall;
use cfhost_core::switch::RingGate;
use cfhost_tests::{Builder, TestHost, hooked_switch, seed_missed_call_alert, with_seed_users};
use serde_json::{Value, json};

const CALLS: usize = 10_000;
/// One call in ten is hostile.
const HOSTILE_EVERY: usize = 10;
const EVIL_ACCOUNTS: usize = 50;
const ATTACKS: [&str; 8] = [
    "infinite_loop",
    "memory_bomb",
    "stack_overflow",
    "panic",
    "huge_outcome",
    "huge_notification",
    "denied_import",
    "huge_log",
];
const SEED_NUMBER: &str = "+15554441111";

/// The seed missed-call flow with a hostile node between `missed_call_alert` and `user`.
fn hostile_seed(attack: &str) -> Value {
    let mut flow = seed_missed_call_alert();
    let user = flow["flow"]["children"]["_"].take();
    flow["flow"]["children"]["_"] =
        json!({"module": "hostile", "data": {"attack": attack}, "children": {"_": user}});
    flow["numbers"] = json!([attack]);
    flow
}

fn evil_account(n: usize) -> String {
    format!("evil-{n:02}")
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib / 1024
}

async fn start_host() -> TestHost {
    let mut builder = with_seed_users(Builder::new(), "acme")
        .callflow("acme", "seed", seed_missed_call_alert())
        // The default pool: as many instances at once as the kernel allows.
        .engine(|engine| engine.pool_instances = EngineSettings::default().pool_instances)
        .policy(|policy| {
            for n in 0..EVIL_ACCOUNTS {
                policy.set_account_limits(
                    &evil_account(n),
                    Limits {
                        handle_deadline: Duration::from_millis(20),
                        ..Limits::default()
                    },
                );
            }
        });
    for n in 0..EVIL_ACCOUNTS {
        builder = with_seed_users(builder, &evil_account(n));
        for attack in ATTACKS {
            builder = builder.callflow(&evil_account(n), attack, hostile_seed(attack));
        }
    }
    builder.start().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_calls_with_ten_percent_hostile() {
    let host = Arc::new(start_host().await);
    assert!(
        host.report.data.errors.is_empty(),
        "{:?}",
        host.report.data.errors
    );
    let gate = Arc::new(RingGate::new(CALLS));
    let started = Instant::now();
    let calls: Vec<_> = (0..CALLS)
        .map(|n| {
            let (account, to) = if n % HOSTILE_EVERY == 0 {
                let hostile = n / HOSTILE_EVERY;
                (
                    evil_account(hostile % EVIL_ACCOUNTS),
                    ATTACKS[hostile % ATTACKS.len()].to_string(),
                )
            } else {
                ("acme".to_string(), SEED_NUMBER.to_string())
            };
            let call: ScenarioCall = serde_json::from_value(json!({
                "account_id": account, "to": to, "call_id": format!("load-{n}"),
                "caller_id_number": "+15550001234",
                "behaviour": {"bridge": "no_answer", "voicemail": "hangup"}}))
            .unwrap();
            let host = Arc::clone(&host);
            let gate = Arc::clone(&gate);
            let switch = Arc::new(hooked_switch(
                call.behaviour,
                Box::new(move || {
                    let gate = Arc::clone(&gate);
                    Box::pin(async move { gate.ring().await })
                }),
            ));
            tokio::spawn(async move {
                let call = host.new_call(&call, n);
                host.runtime().run_call(call, switch).await.unwrap()
            })
        })
        .collect();
    for call in calls {
        tokio::time::timeout(Duration::from_secs(300), call)
            .await
            .expect("every call reaches the bridge and ends")
            .unwrap();
    }
    let elapsed = started.elapsed();

    // Every call, good or hostile, published exactly its one missed-call alert, and nothing
    // else was published (the hostile module's huge notification was refused).
    let notifications = host.notifications();
    let mut per_call: HashMap<String, usize> = HashMap::new();
    for notification in &notifications {
        assert_eq!(notification.routing_key, "notifications.sip.missed_call");
        let call_id = notification.payload["Call-ID"]
            .as_str()
            .unwrap()
            .to_string();
        *per_call.entry(call_id).or_default() += 1;
    }
    assert_eq!(gate.rung(), CALLS, "all rang at once");
    assert_eq!(per_call.len(), CALLS, "every call alerted");
    assert!(per_call.values().all(|n| *n == 1), "exactly once each");
    assert_eq!(notifications.len(), CALLS);

    let counters = host.runtime().health().counters();
    let hostile = &counters["hostile"];
    for module in ["missed_call_alert", "user", "voicemail"] {
        assert_eq!(counters[module].total_failures(), 0, "{module}");
    }
    eprintln!(
        "{CALLS} concurrent calls ({} hostile) in {:.1} s; peak RSS {} MiB; hostile: {} nodes \
         run, failures [{}], {} quarantines, {} nodes skipped in quarantine, {} log lines \
         dropped, {} outputs refused",
        CALLS / HOSTILE_EVERY,
        elapsed.as_secs_f64(),
        peak_rss_mib(),
        hostile.nodes,
        hostile.failures_summary(),
        hostile.quarantines,
        hostile.skipped_in_quarantine,
        hostile.log_lines_dropped,
        hostile.outputs_refused
    );
    assert_eq!(
        hostile.nodes + hostile.skipped_in_quarantine,
        (CALLS / HOSTILE_EVERY) as u64
    );
}
