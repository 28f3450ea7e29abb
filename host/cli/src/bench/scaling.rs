//! `cfhost bench --scaling`: do two threads run twice the calls of one? The seed calls on one
//! thread and on two, in one run, each after a warm-up: the first quarter second of a run
//! hid issue 30 (two threads made 65,000 calls/s in it, then 18,000), so it is not measured.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use cfhost_core::engine::EngineSettings;

use super::seed::SeedHost;
use super::throughput::calls_per_sec;

/// Not measured: the start of each run.
const WARM_UP: Duration = Duration::from_millis(500);
/// Measured after it.
const MEASURED: Duration = Duration::from_millis(3000);

/// Calls per second on one thread and on two, and their ratio.
#[derive(Debug, Serialize)]
pub struct ScalingReport {
    pub calls_per_sec_1thread: f64,
    pub calls_per_sec_2threads: f64,
    pub ratio: f64,
}

/// Measures it, the same host for both (seed calls; the shipped modules' instances pooled
/// with `pooled`, else per node).
pub fn run(engine: EngineSettings, pooled: bool) -> anyhow::Result<ScalingReport> {
    let one = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let two = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let host = Arc::new(one.block_on(SeedHost::start(engine, pooled))?);
    let measure = |runtime: &tokio::runtime::Runtime, threads: usize| {
        runtime.block_on(async {
            calls_per_sec(&host, threads, WARM_UP).await?;
            calls_per_sec(&host, threads, MEASURED).await
        })
    };
    let calls_per_sec_1thread = measure(&one, 1)?;
    let calls_per_sec_2threads = measure(&two, 2)?;
    Ok(ScalingReport {
        calls_per_sec_1thread,
        calls_per_sec_2threads,
        ratio: calls_per_sec_2threads / calls_per_sec_1thread,
    })
}
