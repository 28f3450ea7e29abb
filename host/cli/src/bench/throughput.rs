//! The seed missed call under load: its single-call cost, calls per second on one core and on
//! all of them, and its tail latency at half the measured maximum rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::measure::{median_of, micros, percentile};
use super::seed::SeedHost;

/// Calls kept in flight per worker thread while measuring throughput.
const IN_FLIGHT_PER_WORKER: usize = 32;

/// Median cost of one seed call, run alone, in µs.
pub async fn call_us(host: &SeedHost, runs: usize) -> anyhow::Result<f64> {
    let mut n = 0;
    median_of(runs, async || {
        n += 1;
        host.run_call(n).await
    })
    .await
}

/// Seed calls per second on the current runtime with `worker_threads` threads: each thread
/// gets [`IN_FLIGHT_PER_WORKER`] tasks running calls back to back for `duration`.
pub async fn calls_per_sec(
    host: &Arc<SeedHost>,
    worker_threads: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..worker_threads * IN_FLIGHT_PER_WORKER)
        .map(|_| {
            let host = Arc::clone(host);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                while started.elapsed() < duration {
                    host.run_call(next.fetch_add(1, Ordering::Relaxed)).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(next.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// How often the call generator wakes to start the calls that have come due.
const GENERATOR_TICK: Duration = Duration::from_micros(250);

/// The p99 latency (µs) of seed calls started at `rate` per second for `duration`, each timed
/// from when it was due (so a host that falls behind is not hidden by starting calls late).
/// A thread of its own starts them every [`GENERATOR_TICK`]: the runtime's timer ticks only
/// every millisecond, and waking per call would cost a context switch each.
pub async fn p99_call_us(
    host: &Arc<SeedHost>,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<f64> {
    let runtime = tokio::runtime::Handle::current();
    let host = Arc::clone(host);
    let generator = std::thread::spawn(move || {
        let started = Instant::now();
        let calls = (duration.as_secs_f64() * rate) as u64;
        let mut tasks = Vec::with_capacity(calls as usize);
        while (tasks.len() as u64) < calls {
            let due_now = ((started.elapsed().as_secs_f64() * rate) as u64).min(calls);
            for n in tasks.len() as u64..due_now {
                let due = started + Duration::from_secs_f64(n as f64 / rate);
                let host = Arc::clone(&host);
                tasks.push(runtime.spawn(async move {
                    host.run_call(n).await?;
                    anyhow::Ok(due.elapsed())
                }));
            }
            std::thread::sleep(GENERATOR_TICK);
        }
        tasks
    });
    let tasks = tokio::task::spawn_blocking(move || generator.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the call generator panicked"))?;
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        latencies.push(task.await??);
    }
    Ok(micros(percentile(&mut latencies, 99.0)))
}
