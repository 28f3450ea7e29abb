//! `cfhost bench --polyglot DIR`: modules written in JavaScript (`check_cid`) and Python
//! (`blocklist`), as `modules/build-polyglot` builds them into DIR, beside the Rust floor, in
//! one run:
//!
//! | field | what |
//! |---|---|
//! | `floor_us` | new store + instantiate + `handle` of the Rust `minimal` (as `cfhost bench`) |
//! | `node_us` | one node of each module, host work included, a fresh instance each |
//! | `node_floor_ratio` | `node_us / floor_us` (targets: JavaScript ≤ 20, Python ≤ 40) |
//! | `node_pooled_us` | the same with the pooled lifecycle (a warm instance of the account) |
//! | `held_kib_per_call` | host memory per call with 1,000 calls held in a ringing bridge after a node of the module, each module in a child process of its own |
//! | `beyond_rust_kib_per_call` | that, less the Rust `minimal`'s (target: ≤ 100 KiB) |
//! | `held_pooled_kib_per_call`, `beyond_rust_pooled_kib_per_call` | the same with the modules pooled |
//! | `start_uncached_ms`, `start_cached_ms` | start-up with both loaded, with an empty compiled-component cache and with a filled one |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use super::measure::percentile;
use super::memory::status_kib;
use super::seed::{SeedHost, module_file, write_seed_data};
use super::{Target, floor, node_cost_us, startup};
use cfhost_core::call::Call;
use cfhost_core::engine::EngineSettings;
use cfhost_core::registry::ModuleSource;
use cfhost_core::switch::RingGate;

/// The modules measured: name, language, the node data of the measurement, and the target
/// ratio to the floor.
const MODULES: [(&str, &str, &str, f64); 2] = [
    (
        "check_cid",
        "javascript",
        r#"{"regex": "^\\+1555", "caller_id": {"external": {"name": "Screened"}}}"#,
        20.0,
    ),
    (
        "blocklist",
        "python",
        r#"{"numbers": ["+19005550000"], "prefixes": ["+44", "+1900"]}"#,
        40.0,
    ),
];

/// The Rust module the held calls are compared with.
const RUST: (&str, &str) = ("minimal", "{}");

/// Calls held at once in the memory measurement.
pub const HELD_CALLS: usize = 1000;

/// The most host memory a call through a Python or JavaScript node may take beyond a call
/// through the Rust one, in KiB.
const BEYOND_RUST_KIB: f64 = 100.0;

/// Every figure of one run.
#[derive(Debug, Clone, Serialize)]
pub struct PolyglotReport {
    pub floor_us: f64,
    pub node_us: BTreeMap<String, f64>,
    pub node_floor_ratio: BTreeMap<String, f64>,
    pub node_pooled_us: BTreeMap<String, f64>,
    pub held_calls: usize,
    pub held_kib_per_call: BTreeMap<String, f64>,
    pub beyond_rust_kib_per_call: BTreeMap<String, f64>,
    pub held_pooled_kib_per_call: BTreeMap<String, f64>,
    pub beyond_rust_pooled_kib_per_call: BTreeMap<String, f64>,
    pub start_uncached_ms: f64,
    pub start_cached_ms: f64,
    /// The language of each module.
    pub languages: BTreeMap<String, String>,
    pub targets: Vec<Target>,
}

/// The modules of DIR.
fn sources(dir: &Path) -> anyhow::Result<Vec<ModuleSource>> {
    MODULES
        .iter()
        .map(|(name, ..)| module_file(&dir.join(format!("{name}.wasm"))))
        .collect::<anyhow::Result<_>>()
        .map_err(|e| anyhow::anyhow!("{e} (modules/build-polyglot builds them)"))
}

/// For each module (and the Rust one): a callflow dialed as `held-<name>` that runs a node of
/// it, then rings the seed's user.
fn held_callflows() -> Vec<(String, String)> {
    let ring = json!({"module": "user",
                      "data": {"id": "3e3f1217bee3ba0aa7496ca61fb4ae8f", "timeout": 20}});
    MODULES
        .iter()
        .map(|(name, _, data, _)| (*name, *data))
        .chain([RUST])
        .map(|(name, data)| {
            let data: serde_json::Value = serde_json::from_str(data).expect("bench data is JSON");
            let flow = json!({"numbers": [format!("held-{name}")],
                              "flow": {"module": name, "data": data,
                                       "children": {"_": ring, "match": ring}}});
            (
                format!("accounts/acme-missed/callflows/held_{name}.json"),
                flow.to_string(),
            )
        })
        .collect()
}

/// Runs every measurement on the modules of `dir`.
pub fn run(dir: &Path, quick: bool, engine: EngineSettings) -> anyhow::Result<PolyglotReport> {
    let runs = if quick { 100 } else { 1000 };
    let one_core = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let names: Vec<&str> = MODULES.iter().map(|(name, ..)| *name).collect();
    let (floor_us, node_us, node_pooled_us) = one_core.block_on(async {
        let host = SeedHost::start_with(engine.clone(), sources(dir)?, &[], &[]).await?;
        let pooled = SeedHost::start_with(engine.clone(), sources(dir)?, &names, &[]).await?;
        let floor_us = floor::floor_us(&host, runs).await?;
        let mut node_us = BTreeMap::new();
        let mut node_pooled_us = BTreeMap::new();
        for (name, _, data, _) in MODULES {
            node_us.insert(
                name.to_string(),
                node_cost_us(&host, name, data, runs).await?,
            );
            let pooled_us = node_cost_us(&pooled, name, data, runs).await?;
            node_pooled_us.insert(name.to_string(), pooled_us);
        }
        anyhow::Ok((floor_us, node_us, node_pooled_us))
    })?;
    let (held_kib_per_call, beyond_rust_kib_per_call) = held(dir, &names, false)?;
    let (held_pooled_kib_per_call, beyond_rust_pooled_kib_per_call) = held(dir, &names, true)?;
    let (start_uncached_ms, start_cached_ms) = one_core.block_on(async {
        let sources = sources(dir)?;
        let uncached = start_ms(&engine, &sources, false, if quick { 1 } else { 3 }).await?;
        let cached = start_ms(&engine, &sources, true, if quick { 3 } else { 9 }).await?;
        anyhow::Ok((uncached, cached))
    })?;
    let node_floor_ratio = node_us
        .iter()
        .map(|(name, us)| (name.clone(), us / floor_us))
        .collect();
    let mut report = PolyglotReport {
        floor_us,
        node_us,
        node_floor_ratio,
        node_pooled_us,
        held_calls: HELD_CALLS,
        held_kib_per_call,
        beyond_rust_kib_per_call,
        held_pooled_kib_per_call,
        beyond_rust_pooled_kib_per_call,
        start_uncached_ms,
        start_cached_ms,
        languages: MODULES
            .iter()
            .map(|(name, language, ..)| (name.to_string(), language.to_string()))
            .collect(),
        targets: Vec::new(),
    };
    report.targets = targets(&report);
    Ok(report)
}

/// KiB per held call of each module and the Rust one (each in a child process), and of each
/// module beyond the Rust one; the modules pooled or not.
type Held = (BTreeMap<String, f64>, BTreeMap<String, f64>);

fn held(dir: &Path, names: &[&str], pooled: bool) -> anyhow::Result<Held> {
    let mut per_call = BTreeMap::new();
    for name in names.iter().copied().chain([RUST.0]) {
        per_call.insert(name.to_string(), held_in_child(dir, name, pooled)?);
    }
    let rust = per_call[RUST.0];
    let beyond = names
        .iter()
        .map(|name| (name.to_string(), per_call[*name] - rust))
        .collect();
    Ok((per_call, beyond))
}

fn targets(report: &PolyglotReport) -> Vec<Target> {
    let per_node = ("", &report.node_us, &report.beyond_rust_kib_per_call);
    let pooled = (
        "pooled: ",
        &report.node_pooled_us,
        &report.beyond_rust_pooled_kib_per_call,
    );
    let mut targets = Vec::new();
    for (lifecycle, node_us, beyond_rust) in [per_node, pooled] {
        for (name, language, _, ratio) in MODULES {
            targets.push(Target::at_most(
                format!("{lifecycle}node_us[{name}] ({language}) ≤ {ratio} × floor_us"),
                node_us[name],
                ratio * report.floor_us,
            ));
            targets.push(Target::at_most(
                format!("{lifecycle}KiB per held call[{name}] beyond Rust ≤ {BEYOND_RUST_KIB}"),
                beyond_rust[name],
                BEYOND_RUST_KIB,
            ));
        }
    }
    targets
}

/// Median start-up with the modules of `sources` and the seed accounts, in ms, with an empty
/// compiled-component cache or one filled by an earlier start.
async fn start_ms(
    engine: &EngineSettings,
    sources: &[ModuleSource],
    cached: bool,
    runs: usize,
) -> anyhow::Result<f64> {
    let data = tempfile::tempdir()?;
    write_seed_data(data.path())?;
    let filled = tempfile::tempdir()?;
    if cached {
        startup::start(engine, data.path(), sources, filled.path()).await?;
    }
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let empty = tempfile::tempdir()?;
        let cache = if cached { filled.path() } else { empty.path() };
        let started = Instant::now();
        startup::start(engine, data.path(), sources, cache).await?;
        samples.push(started.elapsed());
    }
    Ok(percentile(&mut samples, 50.0).as_secs_f64() * 1e3)
}

/// Runs [`held_kib_per_call`] for `module` in a child process of this binary.
fn held_in_child(dir: &Path, module: &str, pooled: bool) -> anyhow::Result<f64> {
    let mut child = std::process::Command::new(std::env::current_exe()?);
    child
        .args(["bench", "--polyglot"])
        .arg(dir)
        .args(["--held-child", module]);
    if pooled {
        child.arg("--pooled");
    }
    let output = child.stderr(std::process::Stdio::inherit()).output()?;
    anyhow::ensure!(
        output.status.success(),
        "the held calls of {module} failed ({})",
        output.status
    );
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("the held calls of {module} printed {text:?}"))
}

/// With every module loaded and one call of `module` run to warm up: the host memory each
/// of [`HELD_CALLS`] calls adds while all of them ring at once after a node of `module`
/// (the peak resident set over the resident set before them), in KiB; the Python and
/// JavaScript modules pooled when `pooled`.
pub async fn held_kib_per_call(
    dir: PathBuf,
    module: &str,
    pooled: bool,
    engine: EngineSettings,
) -> anyhow::Result<f64> {
    let names: Vec<&str> = MODULES.iter().map(|(name, ..)| *name).collect();
    let pooled = if pooled { names.as_slice() } else { &[] };
    let callflows = held_callflows();
    let host = Arc::new(SeedHost::start_with(engine, sources(&dir)?, pooled, &callflows).await?);
    let request = format!("held-{module}");
    hold(&host, &request, 0, 1).await?;
    let before = status_kib("VmRSS:")?;
    // Resets the peak (VmHWM) to the resident set now.
    std::fs::write("/proc/self/clear_refs", "5")?;
    hold(&host, &request, 1, HELD_CALLS).await?;
    let peak = status_kib("VmHWM:")?;
    Ok((peak - before) / HELD_CALLS as f64)
}

/// Runs `count` calls to `request` at once, held in the bridge until all of them ring.
async fn hold(host: &Arc<SeedHost>, request: &str, first: u64, count: usize) -> anyhow::Result<()> {
    let gate = Arc::new(RingGate::new(count));
    let calls: Vec<_> = (0..count as u64)
        .map(|n| {
            let host = Arc::clone(host);
            let gate = Arc::clone(&gate);
            let details = host.details_to(first + n, request);
            let switch = host.switch().before_bridge(Box::new(move || {
                let gate = Arc::clone(&gate);
                Box::pin(async move { gate.ring().await })
            }));
            tokio::spawn(async move {
                let call = Arc::new(Call::new(details));
                host.runtime.run_call(call, Arc::new(switch)).await
            })
        })
        .collect();
    for report in futures::future::try_join_all(calls).await? {
        report?;
    }
    anyhow::ensure!(
        gate.rung() == count,
        "only {} of {count} calls rang",
        gate.rung()
    );
    Ok(())
}
