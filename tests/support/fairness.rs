//! The fairness experiment of issue 17, shared by its test and its benchmark: one account's
//! CPU-heavy calls saturate the host while another account's simple calls run one after
//! another, each as its own task (as `serve` runs each request), and their latency is taken.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinHandle;

use crate::{Builder, TestHost};

/// The account whose calls are heavy.
pub const HEAVY: &str = "heavy";
/// The account whose calls are simple.
pub const LIGHT: &str = "light";

/// A host with two accounts: `heavy`'s callflow (number `500`) runs `nodes` nodes of
/// `test_fixture` each working `rounds` rounds; `light`'s (number `200`) runs one node that
/// registers a callback, which publishes a notification when the call ends.
pub fn builder(nodes: usize, rounds: u64) -> Builder {
    let mut flow = json!({});
    for _ in 0..nodes {
        flow = json!({"module": "test_fixture", "data": {"outcome": "work", "work": rounds},
                      "children": {"_": flow}});
    }
    let light = json!({"module": "test_fixture",
                       "data": {"register": [{"template_id": "light"}]}, "children": {}});
    Builder::new()
        .callflow(HEAVY, "heavy", json!({"numbers": ["500"], "flow": flow}))
        .callflow(LIGHT, "light", json!({"numbers": ["200"], "flow": light}))
}

/// Runs `calls` of `light`'s simple calls one after another, each spawned as a task, and
/// returns how long each took.
pub async fn light_latencies(host: &Arc<TestHost>, calls: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let host = Arc::clone(host);
        let started = Instant::now();
        tokio::spawn(async move {
            host.run(json!({"account_id": LIGHT, "to": "200", "caller_id_number": "201"}))
                .await
        })
        .await
        .expect("a light call panicked");
        latencies.push(started.elapsed());
    }
    latencies
}

/// `heavy`'s calls, a number of them at once, each followed by another until stopped.
pub struct HeavyLoad {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<usize>>,
}

impl HeavyLoad {
    /// Starts `concurrency` heavy calls, each as its own task.
    pub fn start(host: &Arc<TestHost>, concurrency: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..concurrency)
            .map(|_| {
                let (host, stop) = (Arc::clone(host), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut calls = 0;
                    while !stop.load(Ordering::Relaxed) {
                        host.run(json!({"account_id": HEAVY, "to": "500"})).await;
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        HeavyLoad { stop, tasks }
    }

    /// Stops starting heavy calls, waits for those running, and says how many ran.
    pub async fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let mut calls = 0;
        for task in self.tasks {
            calls += task.await.expect("a heavy call panicked");
        }
        calls
    }
}

/// The `p`th percentile (0 to 100) of `samples`.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
