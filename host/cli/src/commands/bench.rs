//! `cfhost bench`: runs [`crate::bench`] and prints its figures as a table or as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::bench::{BenchOptions, BenchReport, held_calls_peak_rss_mib, polyglot};
use crate::config::Flags;

/// The command's arguments.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// A short run with fewer samples, to check that everything works.
    #[arg(long)]
    pub quick: bool,
    /// Configuration file (TOML): its [engine] section sets up the engine measured.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Internal: run the 10,000-call memory workload and print its peak RSS in MiB.
    #[arg(long, hide = true)]
    pub rss_child: bool,
    /// Only run this many seed calls one after another on one thread, with nothing timed
    /// (a fixed workload for profilers and instruction counts), and print how many alerts
    /// they published.
    #[arg(long, value_name = "CALLS")]
    pub workload: Option<u64>,
    /// With --workload or --scaling: the shipped modules' instances are pooled (with
    /// --held-child: the Python and JavaScript modules').
    #[arg(long)]
    pub pooled: bool,
    /// Measure real calls over SIP instead, driven by SIPp (Debian's sip-tester) on loopback:
    /// rising rates, CPU per call, setup time, memory with many calls held and after a soak,
    /// against a bare rsipstack B2BUA. Takes about 15 minutes (3 with --quick).
    #[arg(long, conflicts_with_all = ["workload", "rss_child"])]
    pub sip: bool,
    /// Only measure seed calls per second on one thread and on two (after a warm-up, in one
    /// run) and print them with their ratio as JSON: CI's scaling guard (.ci/scaling-guard).
    #[arg(long, conflicts_with_all = ["workload", "rss_child", "sip"])]
    pub scaling: bool,
    /// Measure the Python and JavaScript modules built into DIR (`blocklist.wasm`,
    /// `check_cid.wasm`; modules/build-polyglot writes them to target/polyglot) beside the
    /// Rust floor: node cost, memory per held call, start-up with them loaded.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["workload", "rss_child", "sip", "scaling"])]
    pub polyglot: Option<PathBuf>,
    /// Internal, with --polyglot: hold 1,000 calls after a node of this module and print the
    /// host memory per call in KiB.
    #[arg(long, hide = true, requires = "polyglot", value_name = "MODULE")]
    pub held_child: Option<String>,
}

pub fn run(options: Options) -> anyhow::Result<ExitCode> {
    let (config, _) = super::load_config(options.config.as_deref(), Flags::default())?;
    let engine = config.engine;
    if options.rss_child {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        println!("{}", runtime.block_on(held_calls_peak_rss_mib(engine))?);
        return Ok(ExitCode::SUCCESS);
    }
    if options.sip {
        let report = crate::bench::sip::run(
            crate::bench::sip::SipBenchOptions {
                quick: options.quick,
            },
            engine,
        )?;
        if options.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_sip_table(&report);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dir) = options.polyglot {
        if let Some(module) = options.held_child {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let held = polyglot::held_kib_per_call(dir, &module, options.pooled, engine);
            let kib = runtime.block_on(held)?;
            println!("{kib}");
            return Ok(ExitCode::SUCCESS);
        }
        let report = polyglot::run(&dir, options.quick, engine)?;
        if options.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_polyglot_table(&report);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if options.scaling {
        let report = crate::bench::scaling::run(engine, options.pooled)?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    if options.pooled && options.workload.is_none() {
        anyhow::bail!("--pooled goes with --workload, --scaling or --held-child");
    }
    if let Some(calls) = options.workload {
        println!("{}", crate::bench::workload(engine, calls, options.pooled)?);
        return Ok(ExitCode::SUCCESS);
    }
    let report = crate::bench::run(
        BenchOptions {
            quick: options.quick,
            config: options.config,
        },
        engine,
    )?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(report: &BenchReport) {
    println!(
        "cfhost bench: {} worker threads, instances {}",
        report.cores, report.allocation
    );
    println!();
    let rows: Vec<(String, String)> = [
        ("floor_wat_us", format!("{:.2}", report.floor_wat_us)),
        ("floor_us", format!("{:.2}", report.floor_us)),
        (
            "floor_us / floor_wat_us",
            format!("{:.2}", report.floor_ratio),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .chain(
        report
            .node_us
            .iter()
            .map(|(module, us)| (format!("node_us[{module}]"), format!("{us:.2}"))),
    )
    .chain(
        [
            ("instances_per_call", report.instances_per_call.to_string()),
            ("call_us", format!("{:.1}", report.call_us)),
            ("call_pooled_us", format!("{:.1}", report.call_pooled_us)),
            (
                "calls_per_sec_1core",
                format!("{:.0}", report.calls_per_sec_1core),
            ),
            ("calls_per_sec", format!("{:.0}", report.calls_per_sec)),
            (
                "calls_per_sec_pooled",
                format!("{:.0}", report.calls_per_sec_pooled),
            ),
            (
                "p99_call_us_at_half_load",
                format!("{:.0}", report.p99_call_us_at_half_load),
            ),
            ("rss_10k_mb", report.rss_10k_mb.to_string()),
            (
                "cold_start_cached_ms",
                format!("{:.1}", report.cold_start_cached_ms),
            ),
            (
                "cold_start_uncached_ms",
                format!("{:.1}", report.cold_start_uncached_ms),
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value)),
    )
    .collect();
    for (name, value) in rows {
        println!("{name:<28} {value:>12}");
    }
    println!();
    let old = &report.wit_0_2;
    println!("{:<28} {:>12} {:>12}", "built for", "WIT 0.3", "WIT 0.2.1");
    let side_by_side = [
        ("floor_us", report.floor_us, old.floor_us),
        ("call_us", report.call_us, old.call_us),
        ("call_pooled_us", report.call_pooled_us, old.call_pooled_us),
        (
            "calls_per_sec_pooled",
            report.calls_per_sec_pooled,
            old.calls_per_sec_pooled,
        ),
    ];
    let nodes = report.node_us.iter().filter_map(|(module, us)| {
        let old = old.node_us.get(module)?;
        Some((format!("node_us[{module}]"), *us, *old))
    });
    for (name, now, before) in side_by_side
        .into_iter()
        .map(|(name, now, before)| (name.to_string(), now, before))
        .chain(nodes)
    {
        println!("{name:<28} {now:>12.2} {before:>12.2}");
    }
    println!();
    for target in &report.targets {
        let relation = if target.at_least { "≥" } else { "≤" };
        println!(
            "{} {:<44} {:>12.1} {relation} {:.1}",
            if target.met { "met " } else { "MISS" },
            target.name,
            target.value,
            target.limit
        );
    }
}

fn print_sip_table(report: &crate::bench::sip::SipBenchReport) {
    println!("cfhost bench --sip: each rate for {} s", report.step_secs);
    println!();
    println!(
        "{:<8} {:>6} {:>8} {:>7} {:>10} {:>10} {:>10}",
        "target", "rate", "calls", "held", "cpu ms", "setup p50", "setup p99"
    );
    for step in &report.steps {
        println!(
            "{:<8} {:>6} {:>8} {:>7} {:>10.3} {:>10.1} {:>10.1}",
            step.target,
            step.rate,
            step.calls,
            if step.passed { "yes" } else { "NO" },
            step.cpu_ms_per_call,
            step.setup_ms_p50,
            step.setup_ms_p99
        );
    }
    println!();
    println!("max_rate_held                {:>10}", report.max_rate_held);
    println!(
        "max_rate_held_bare           {:>10}",
        report.max_rate_held_bare
    );
    println!(
        "cpu_ms_per_call at {:>4}/s    {:>10.3} (bare {:.3}, ratio {:.2})",
        report.compared_at_rate,
        report.cpu_ms_per_call,
        report.cpu_ms_per_call_bare,
        report.cpu_ratio
    );
    println!(
        "rss_mb_with_{}_calls       {:>10}",
        report.calls_held, report.rss_mb_with_calls_held
    );
    println!(
        "rss_mb before / after a {}-call soak {} / {}",
        report.soak_calls, report.rss_mb_before_soak, report.rss_mb_after_soak
    );
    println!(
        "alerts_published             {:>10}",
        report.alerts_published
    );
}

fn print_polyglot_table(report: &polyglot::PolyglotReport) {
    println!("floor_us (Rust minimal)      {:>10.1}", report.floor_us);
    for (name, us) in &report.node_us {
        println!(
            "node_us[{name}] ({})  {us:>10.1}  ({:.1} x floor; pooled {:.1} us)",
            report.languages[name], report.node_floor_ratio[name], report.node_pooled_us[name]
        );
    }
    for (name, kib) in &report.held_kib_per_call {
        println!(
            "KiB per held call [{name}]   {kib:>10.1}  (pooled {:.1}; {} calls)",
            report.held_pooled_kib_per_call[name], report.held_calls
        );
    }
    println!(
        "start_uncached_ms            {:>10.0}",
        report.start_uncached_ms
    );
    println!(
        "start_cached_ms              {:>10.1}",
        report.start_cached_ms
    );
    println!("targets:");
    for target in &report.targets {
        let verdict = if target.met { "met" } else { "MISSED" };
        println!("  {verdict:6} {} ({:.1})", target.name, target.value);
    }
}
