//! Fairness between accounts (issue 17), in one run: the latency of one account's simple
//! calls (one after another, each its own task) on an idle host, then while another account
//! saturates the host with CPU-heavy calls (4 per thread, each about 0.4 s of CPU in 40
//! nodes of about 10 ms), with that account held to its share of threads (the
//! default, half the threads) and, for comparison, with a share as large as its calls.
//!
//! `cargo bench -p cfhost-tests --bench fairness` prints each round and the medians; the
//! target is a busy p99 within 2× the idle p99 with the share.

use std::sync::Arc;
use std::time::Duration;

use cfhost_core::policy::Limits;
use cfhost_core::policy::limits::default_cpu_share;
use cfhost_tests::fairness::{self, HEAVY, HeavyLoad, percentile};

const ROUNDS: usize = 5;
const LIGHT_CALLS: usize = 2_000;

/// p50 and p99 of `light`'s calls, idle then with `heavy_calls` heavy calls running; and the
/// heavy calls that ran per second.
async fn measure(share: usize, heavy_calls: usize) -> ([Duration; 4], f64) {
    let limits = Limits {
        cpu_share: share,
        ..Limits::default()
    };
    let host = fairness::builder(40, 6_000_000)
        .policy(|policy| policy.set_account_limits(HEAVY, limits))
        .start()
        .await;
    let host = Arc::new(host);
    fairness::light_latencies(&host, 200).await;
    let idle = fairness::light_latencies(&host, LIGHT_CALLS).await;
    let started = std::time::Instant::now();
    let load = HeavyLoad::start(&host, heavy_calls);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = fairness::light_latencies(&host, LIGHT_CALLS).await;
    let heavy_per_sec = load.stop().await as f64 / started.elapsed().as_secs_f64();
    let latencies = [
        percentile(&idle, 50.0),
        percentile(&idle, 99.0),
        percentile(&busy, 50.0),
        percentile(&busy, 99.0),
    ];
    (latencies, heavy_per_sec)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a runtime");
    let heavy_calls = 4 * threads;
    let share = default_cpu_share();
    println!(
        "{threads} threads; heavy account: {heavy_calls} calls at once; light: {LIGHT_CALLS} \
         calls one after another"
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (mut fair, mut unfair) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        for (name, share, ratios) in [
            ("share", share, &mut fair),
            ("no share", heavy_calls, &mut unfair),
        ] {
            let ([idle50, idle99, busy50, busy99], heavy_per_sec) =
                runtime.block_on(measure(share, heavy_calls));
            let ratio = busy99.as_secs_f64() / idle99.as_secs_f64();
            ratios.push(ratio);
            println!(
                "round {round} {name:<8} (cpu_share {share:>2}): idle p50 {:>8.0} µs p99 {:>8.0} \
                 µs | busy p50 {:>9.0} µs p99 {:>9.0} µs | p99 ratio {ratio:.2} | heavy \
                 {heavy_per_sec:.1} calls/s",
                us(idle50),
                us(idle99),
                us(busy50),
                us(busy99)
            );
        }
    }
    let (fair, unfair) = (median(fair), median(unfair));
    println!("median busy/idle p99 ratio with the share: {fair:.2} (target ≤ 2)");
    println!("median busy/idle p99 ratio without it:     {unfair:.2}");
}
