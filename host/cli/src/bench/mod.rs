//! `cfhost bench`: the cost of running modules, measured in one run on this machine.
//!
//! Every figure comes from the same process and the same moment, so ratios between them hold
//! even on a noisy machine. The workload is the seed missed call of `examples/`
//! ([`seed`]): `missed_call_alert` → `user` (nobody answers) → `voicemail` (the caller hangs
//! up) → the alert's termination callback → a notification into an in-memory sink.
//!
//! | field | what |
//! |---|---|
//! | `floor_wat_us` | new store + instantiate + call of a hand-written component ([`floor`]) |
//! | `floor_us` | the same for `minimal`, built with our SDK, through the host's store |
//! | `node_us` | one node of each shipped module, host work included, fresh instance |
//! | `call_us`, `call_pooled_us` | one seed call on one core, per-node and pooled |
//! | `calls_per_sec_1core`, `calls_per_sec`, `calls_per_sec_pooled` | seed calls per second |
//! | `p99_call_us_at_half_load` | p99 latency at half of `calls_per_sec` |
//! | `rss_10k_mb` | peak RSS with 10,000 calls held in a ringing bridge ([`memory`]) |
//! | `cold_start_cached_ms`, `cold_start_uncached_ms` | start-up with 10 modules ([`startup`]) |
//! | `wit_0_2` | `floor_us`, `node_us`, `call_us`, `call_pooled_us`, `calls_per_sec_pooled` of the same modules as built for WIT 0.2.1 |
//!
//! [`scaling`] (`--scaling`) measures only the one-thread and two-thread rates, as CI's guard;
//! [`polyglot`] (`--polyglot DIR`) the Python and JavaScript modules beside the Rust floor.

mod floor;
mod measure;
mod memory;
pub mod polyglot;
pub mod scaling;
mod seed;
pub mod sip;
mod startup;
mod throughput;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use cfhost_core::bindings::World;
use cfhost_core::engine::{Allocation, EngineSettings};
pub use memory::held_calls_peak_rss_mib;
use seed::{INSTANCES_PER_CALL, SeedHost};

/// How long to measure, and on what configuration.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A short run (a tenth of the samples and time), to check that it works.
    pub quick: bool,
    /// The configuration file the engine settings came from (for the memory workload's child
    /// process).
    pub config: Option<PathBuf>,
}

impl BenchOptions {
    fn runs(&self) -> usize {
        if self.quick { 300 } else { 3000 }
    }

    fn duration(&self) -> Duration {
        Duration::from_millis(if self.quick { 300 } else { 3000 })
    }

    fn starts(&self) -> usize {
        if self.quick { 3 } else { 9 }
    }
}

/// Every figure of one run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub floor_wat_us: f64,
    pub floor_us: f64,
    /// `floor_us / floor_wat_us`.
    pub floor_ratio: f64,
    pub node_us: BTreeMap<String, f64>,
    /// Instances one seed call runs (nodes and callbacks).
    pub instances_per_call: u32,
    pub call_us: f64,
    pub call_pooled_us: f64,
    pub calls_per_sec_1core: f64,
    pub calls_per_sec: f64,
    pub calls_per_sec_pooled: f64,
    pub p99_call_us_at_half_load: f64,
    pub rss_10k_mb: u64,
    pub cold_start_cached_ms: f64,
    pub cold_start_uncached_ms: f64,
    /// The same figures for `minimal` and the shipped modules as built for WIT 0.2.1
    /// (`tests/fixtures/wit-0.2.1/`), in the same run: what the 0.3 contract changed.
    pub wit_0_2: WorldFigures,
    /// Worker threads of the all-core measurements.
    pub cores: usize,
    /// How instances were allocated.
    pub allocation: String,
    /// Each target of `BENCHMARKS.md`, checked against this run.
    pub targets: Vec<Target>,
}

/// The per-module figures of one build of the modules.
#[derive(Debug, Clone, Serialize)]
pub struct WorldFigures {
    pub floor_us: f64,
    pub node_us: BTreeMap<String, f64>,
    pub call_us: f64,
    pub call_pooled_us: f64,
    pub calls_per_sec_pooled: f64,
}

/// One target and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub value: f64,
    /// `value` must be at most this (or at least, for `at_least` targets).
    pub limit: f64,
    pub at_least: bool,
    pub met: bool,
}

impl Target {
    fn at_most(name: impl Into<String>, value: f64, limit: f64) -> Target {
        Target {
            name: name.into(),
            value,
            limit,
            at_least: false,
            met: value <= limit,
        }
    }

    fn at_least(name: impl Into<String>, value: f64, limit: f64) -> Target {
        Target {
            name: name.into(),
            value,
            limit,
            at_least: true,
            met: value >= limit,
        }
    }
}

/// Runs every measurement; `engine` sets up the hosts measured.
pub fn run(options: BenchOptions, engine: EngineSettings) -> anyhow::Result<BenchReport> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let one_core = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let all_cores = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()?;
    let runs = options.runs();
    let per_node = Arc::new(one_core.block_on(SeedHost::start(engine.clone(), false))?);
    let pooled = Arc::new(one_core.block_on(SeedHost::start(engine.clone(), true))?);
    let start_0_2 = |pooled| SeedHost::start_for(engine.clone(), pooled, World::V0_2);
    let per_node_0_2 = Arc::new(one_core.block_on(start_0_2(false))?);
    let pooled_0_2 = Arc::new(one_core.block_on(start_0_2(true))?);
    let allocation = match per_node.runtime.sandbox().allocation() {
        Allocation::Pooling { instances } => format!("pooling ({instances} slots)"),
        Allocation::OnDemand => "on demand".to_string(),
    };

    let (floor_wat_us, floor_us, node_us, call_us, call_pooled_us, calls_per_sec_1core) = one_core
        .block_on(async {
            let floor_wat_us = floor::floor_wat_us(&per_node, runs).await?;
            let floor_us = floor::floor_us(&per_node, runs).await?;
            let node_us = node_costs_us(&per_node, runs).await?;
            let call_us = throughput::call_us(&per_node, runs).await?;
            let call_pooled_us = throughput::call_us(&pooled, runs).await?;
            let one_core_rate = throughput::calls_per_sec(&per_node, 1, options.duration()).await?;
            anyhow::Ok((
                floor_wat_us,
                floor_us,
                node_us,
                call_us,
                call_pooled_us,
                one_core_rate,
            ))
        })?;
    let mut wit_0_2 = one_core.block_on(async {
        anyhow::Ok(WorldFigures {
            floor_us: floor::floor_us(&per_node_0_2, runs).await?,
            node_us: node_costs_us(&per_node_0_2, runs).await?,
            call_us: throughput::call_us(&per_node_0_2, runs).await?,
            call_pooled_us: throughput::call_us(&pooled_0_2, runs).await?,
            calls_per_sec_pooled: 0.0,
        })
    })?;
    let (calls_per_sec, calls_per_sec_pooled, p99_call_us_at_half_load) =
        all_cores.block_on(async {
            let rate = throughput::calls_per_sec(&per_node, cores, options.duration()).await?;
            let pooled_rate = throughput::calls_per_sec(&pooled, cores, options.duration()).await?;
            wit_0_2.calls_per_sec_pooled =
                throughput::calls_per_sec(&pooled_0_2, cores, options.duration()).await?;
            let p99 = throughput::p99_call_us(&per_node, rate / 2.0, options.duration()).await?;
            anyhow::Ok((rate, pooled_rate, p99))
        })?;
    drop((per_node, pooled, per_node_0_2, pooled_0_2));
    let rss_10k_mb = memory::peak_rss_in_child_mib(options.config.as_deref())?;
    let (cold_start_cached_ms, cold_start_uncached_ms) = one_core.block_on(async {
        let cached = startup::cold_start_ms(&engine, true, options.starts()).await?;
        let uncached = startup::cold_start_ms(&engine, false, options.starts()).await?;
        anyhow::Ok((cached, uncached))
    })?;

    let mut report = BenchReport {
        floor_wat_us,
        floor_us,
        floor_ratio: floor_us / floor_wat_us,
        node_us,
        instances_per_call: INSTANCES_PER_CALL,
        call_us,
        call_pooled_us,
        calls_per_sec_1core,
        calls_per_sec,
        calls_per_sec_pooled,
        p99_call_us_at_half_load,
        rss_10k_mb,
        cold_start_cached_ms,
        cold_start_uncached_ms,
        wit_0_2,
        cores,
        allocation,
        targets: Vec::new(),
    };
    report.targets = targets(&report);
    Ok(report)
}

/// Runs `calls` seed calls one after another on one thread (the shipped modules pooled or
/// not) and returns how many alerts they published: a fixed workload for profilers and
/// instruction counts. Start-up is part of it; run it twice with different counts and
/// subtract to see the calls alone.
pub fn workload(engine: EngineSettings, calls: u64, pooled: bool) -> anyhow::Result<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let host = SeedHost::start(engine, pooled).await?;
        for n in 0..calls {
            host.run_call(n).await?;
        }
        Ok(host.sink.published())
    })
}

/// The targets of issue 5, as recorded in `BENCHMARKS.md`.
fn targets(report: &BenchReport) -> Vec<Target> {
    let mut targets: Vec<Target> = report
        .node_us
        .iter()
        .map(|(module, us)| {
            Target::at_most(
                format!("node_us[{module}] ≤ 1.5 × floor_us"),
                *us,
                1.5 * report.floor_us,
            )
        })
        .collect();
    let call_floor = f64::from(report.instances_per_call) * report.floor_us;
    targets.extend([
        Target::at_most(
            "call_us ≤ 1.3 × instances × floor_us",
            report.call_us,
            1.3 * call_floor,
        ),
        Target::at_least(
            "calls_per_sec ≥ 1.6 × calls_per_sec_1core",
            report.calls_per_sec,
            1.6 * report.calls_per_sec_1core,
        ),
        Target::at_least(
            "calls_per_sec_pooled ≥ 100,000",
            report.calls_per_sec_pooled,
            100_000.0,
        ),
        Target::at_most("rss_10k_mb ≤ 1024", report.rss_10k_mb as f64, 1024.0),
        Target::at_most(
            "cold_start_cached_ms ≤ 100",
            report.cold_start_cached_ms,
            100.0,
        ),
    ]);
    targets
}

/// Median cost of one node of each shipped module with its seed data, in µs, by module.
async fn node_costs_us(host: &SeedHost, runs: usize) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut node_us = BTreeMap::new();
    for (module, data) in seed::node_data() {
        let cost = node_cost_us(host, &module, &data, runs).await?;
        node_us.insert(module, cost);
    }
    Ok(node_us)
}

/// Median cost of one node of `module` with `data`, host work included, in µs.
pub(super) async fn node_cost_us(
    host: &SeedHost,
    module: &str,
    data: &str,
    runs: usize,
) -> anyhow::Result<f64> {
    let mut n = 0;
    measure::median_of(runs, async || {
        n += 1;
        let switch = Arc::new(host.switch());
        host.runtime
            .run_node(host.details(n), switch, module, data)
            .await?;
        Ok(())
    })
    .await
}
