//! `cfhost bench --sip`: real calls through cfhost's SIP service, driven by SIPp on loopback
//! (SIPp shares the cores). The load is the seed missed-call flow: a carrier (SIPp on
//! 127.0.0.2) calls the seed number, `user` rings a device that refuses at once (a second SIPp,
//! 486), `voicemail` answers, and the caller hangs up 1 s into it; the alert's callback
//! publishes into a counting sink. A bare rsipstack B2BUA (`cfhost_sip::baseline`) takes the
//! same load in the same run, so the comparison is a ratio.
//!
//! | field | what |
//! |---|---|
//! | `steps` | each rate tried for `step_secs`: calls, failures (SIPp's exit code), host CPU per call, setup time (INVITE to 200) p50/p99 |
//! | `max_rate_held` | the highest rate that passed with no failed call (cfhost, then the bare B2BUA) |
//! | `cpu_ms_per_call` | host CPU per call at the highest rate both held, and its ratio to the bare B2BUA |
//! | `rss_mb_with_5000_calls` | the process's RSS with 5,000 calls in voicemail at once |
//! | `rss_mb_before_soak`, `rss_mb_after_soak` | RSS after a warm-up of 5,000 calls at the soak's load, and after `soak_calls` more, each once the calls' transactions are gone |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use cfhost_core::engine::EngineSettings;
use cfhost_core::runtime::{HostOptions, Runtime};
use cfhost_sip::baseline::BareB2bua;
use cfhost_sip::{SipConfig, SipService, TrunkConfig};

use super::seed::{CountingSink, modules, write_seed_data};

const SIPP: &str = "/usr/bin/sipp";
const CARRIER_IP: &str = "127.0.0.2";
const HOST_IP: &str = "127.0.0.1";
const DIALED: &str = "+15554441111";
/// The user the seed's `user` node rings.
const SEED_USER: &str = "3e3f1217bee3ba0aa7496ca61fb4ae8f";
const CARRIER: &str = include_str!("../../../../tests/sip/carrier_call.xml");
const DEVICE: &str = include_str!("../../../../tests/sip/device_busy.xml");

/// How long finished transactions take to go, with a margin.
const TRANSACTIONS_LINGER: Duration = Duration::from_secs(40);

/// How long to measure.
#[derive(Debug, Clone, Copy)]
pub struct SipBenchOptions {
    /// A short run: two rates for 5 s, 1,000 calls held, a 5,000-call soak.
    pub quick: bool,
}

impl SipBenchOptions {
    fn rates(self) -> Vec<u32> {
        if self.quick {
            vec![50, 200]
        } else {
            vec![100, 200, 300, 400, 500, 600, 700, 800]
        }
    }
    fn step_secs(self) -> u32 {
        if self.quick { 5 } else { 30 }
    }
    fn held(self) -> u32 {
        if self.quick { 1000 } else { 5000 }
    }
    fn soak_calls(self) -> u32 {
        if self.quick { 5000 } else { 50_000 }
    }
}

/// One rate tried.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub target: &'static str,
    pub rate: u32,
    pub calls: u32,
    pub passed: bool,
    pub cpu_ms_per_call: f64,
    pub setup_ms_p50: f64,
    pub setup_ms_p99: f64,
}

/// Every figure of one SIP run.
#[derive(Debug, Clone, Serialize)]
pub struct SipBenchReport {
    pub step_secs: u32,
    pub steps: Vec<Step>,
    pub max_rate_held: u32,
    pub max_rate_held_bare: u32,
    /// The rate the CPU comparison is taken at.
    pub compared_at_rate: u32,
    pub cpu_ms_per_call: f64,
    pub cpu_ms_per_call_bare: f64,
    /// `cpu_ms_per_call / cpu_ms_per_call_bare`.
    pub cpu_ratio: f64,
    pub calls_held: u32,
    pub rss_mb_with_calls_held: u64,
    pub rss_mb_before_soak: u64,
    pub soak_calls: u32,
    pub rss_mb_after_soak: u64,
    pub alerts_published: u64,
}

/// Runs the SIP benchmark.
pub fn run(options: SipBenchOptions, engine: EngineSettings) -> anyhow::Result<SipBenchReport> {
    anyhow::ensure!(
        Path::new(SIPP).exists(),
        "{SIPP} is missing: install Debian's sip-tester (tests/run does)"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(measure(options, engine))
}

async fn measure(
    options: SipBenchOptions,
    engine: EngineSettings,
) -> anyhow::Result<SipBenchReport> {
    let work = tempfile::tempdir()?;
    let scenarios = work.path().join("scenarios");
    std::fs::create_dir_all(&scenarios)?;
    let carrier = scenarios.join("carrier_call.xml");
    let device = scenarios.join("device_busy.xml");
    std::fs::write(&carrier, CARRIER)?;
    std::fs::write(&device, DEVICE)?;
    let device_port = free_udp_port(HOST_IP)?;
    let data = work.path().join("data");
    write_seed_data(&data)?;
    let user = serde_json::json!({"email": "front.desk@example.com",
        "endpoints": [{"id": "desk", "address": format!("sip:desk@{HOST_IP}:{device_port}")}]});
    std::fs::write(
        data.join(format!("accounts/acme-missed/users/{SEED_USER}.json")),
        user.to_string(),
    )?;

    let sink = Arc::new(CountingSink::default());
    let mut host = HostOptions::new(&data, sink.clone());
    host.engine = engine;
    host.modules = modules()?;
    let (runtime, report) = Runtime::start(host).await?;
    anyhow::ensure!(
        report.module_errors.is_empty() && report.data.errors.is_empty(),
        "the benchmark's host did not load cleanly"
    );
    let runtime = Arc::new(runtime);
    let mut config = SipConfig {
        listen: format!("{HOST_IP}:0"),
        max_calls: 50_000,
        max_cps: 10_000,
        rtp_ports: "20000-40000".to_string(),
        // The calls held wait 20 s in voicemail with no RTP: not a silence to end on.
        silence_timeout_secs: 120,
        ..SipConfig::default()
    };
    config.trunks.insert(
        "carrier".to_string(),
        TrunkConfig {
            addresses: vec![format!("{CARRIER_IP}/32")],
        },
    );
    let sip = SipService::start(Arc::clone(&runtime), &config).await?;
    let bare = BareB2bua::start(
        format!("{HOST_IP}:0").parse()?,
        &format!("sip:desk@{HOST_IP}:{device_port}"),
    )
    .await?;
    let _device = Sipp::device(&device, device_port, work.path())?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let secs = options.step_secs();
    let mut steps = Vec::new();
    for (target, address) in [("cfhost", sip.local_addr()), ("bare", bare.local_addr())] {
        for rate in options.rates() {
            let step = step(target, address, rate, secs, &carrier, work.path(), &sip).await?;
            let passed = step.passed;
            eprintln!(
                "{target} at {rate} calls/s: {} ({:.3} ms CPU per call, setup p50 {:.1} ms p99 {:.1} ms)",
                if passed { "held" } else { "FAILED" },
                step.cpu_ms_per_call,
                step.setup_ms_p50,
                step.setup_ms_p99
            );
            steps.push(step);
            if !passed {
                break;
            }
        }
    }
    let held = |target: &str| {
        steps
            .iter()
            .filter(|s| s.target == target && s.passed)
            .map(|s| s.rate)
            .max()
            .unwrap_or(0)
    };
    let (max_rate_held, max_rate_held_bare) = (held("cfhost"), held("bare"));
    let compared_at_rate = max_rate_held.min(max_rate_held_bare);
    let cpu_at = |target: &str| {
        steps
            .iter()
            .find(|s| s.target == target && s.rate == compared_at_rate)
            .map_or(f64::NAN, |s| s.cpu_ms_per_call)
    };
    let (cpu_ms_per_call, cpu_ms_per_call_bare) = (cpu_at("cfhost"), cpu_at("bare"));

    // Many calls at once: each waits 20 s in voicemail.
    let calls_held = options.held();
    let holding = Sipp::carrier(
        &carrier,
        sip.local_addr(),
        500,
        calls_held,
        20_000,
        work.path(),
    )?;
    let mut rss_mb_with_calls_held = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        rss_mb_with_calls_held = rss_mb_with_calls_held.max(rss_mib()?);
        if sip.calls_in_progress() >= calls_held as usize {
            tokio::time::sleep(Duration::from_millis(500)).await;
            rss_mb_with_calls_held = rss_mb_with_calls_held.max(rss_mib()?);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held_at_once = sip.calls_in_progress();
    anyhow::ensure!(
        held_at_once >= calls_held as usize,
        "only {held_at_once} of {calls_held} calls were in progress at once"
    );
    holding.wait(Duration::from_secs(120))?;
    drained(&sip).await?;

    // The soak: RSS after a warm-up at the soak's own load (so the heap has grown to what
    // that load needs, and not to what the many calls held at once needed), then after many
    // more calls; each read once finished transactions are gone (rsipstack keeps them 32 s:
    // timers K, D, L, M).
    soak(&carrier, &sip, SOAK_WARM_UP_CALLS, work.path()).await?;
    let rss_mb_before_soak = rss_mib()?;
    let soak_calls = options.soak_calls();
    soak(&carrier, &sip, soak_calls, work.path()).await?;
    let rss_mb_after_soak = rss_mib()?;

    Ok(SipBenchReport {
        step_secs: secs,
        steps,
        max_rate_held,
        max_rate_held_bare,
        compared_at_rate,
        cpu_ms_per_call,
        cpu_ms_per_call_bare,
        cpu_ratio: cpu_ms_per_call / cpu_ms_per_call_bare,
        calls_held,
        rss_mb_with_calls_held,
        rss_mb_before_soak,
        soak_calls,
        rss_mb_after_soak,
        alerts_published: sink.published(),
    })
}

/// One rate for `secs` against `target`.
async fn step(
    target: &'static str,
    address: SocketAddr,
    rate: u32,
    secs: u32,
    carrier: &Path,
    dir: &Path,
    sip: &SipService,
) -> anyhow::Result<Step> {
    let calls = rate * secs;
    let cpu_before = cpu_time()?;
    let setups_before = sip.metrics().setup_snapshot();
    let sipp = Sipp::carrier(carrier, address, rate, calls, 1000, dir)?;
    let outcome = sipp.wait(Duration::from_secs(u64::from(secs) + 120));
    if target == "cfhost" {
        drained(sip).await?;
    } else {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cpu = cpu_time()? - cpu_before;
    let passed = match outcome {
        Ok(()) => true,
        Err(e) => {
            eprintln!("{target} at {rate} calls/s: {e:#}");
            false
        }
    };
    // Setup times as cfhost measures them (SIPp's are whole milliseconds); none for the bare
    // B2BUA, which measures nothing.
    let setups = sip.metrics().setup_snapshot();
    let setup_ms = |p| {
        setups
            .percentile_since(&setups_before, p)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    Ok(Step {
        target,
        rate,
        calls,
        passed,
        cpu_ms_per_call: cpu.as_secs_f64() * 1e3 / f64::from(calls),
        setup_ms_p50: setup_ms(50.0),
        setup_ms_p99: setup_ms(99.0),
    })
}

/// Calls of the soak's warm-up.
const SOAK_WARM_UP_CALLS: u32 = 5000;

/// `calls` calls at 500 calls/s, each hung up 1 s into voicemail; returns once they and their
/// transactions are gone.
async fn soak(carrier: &Path, sip: &SipService, calls: u32, dir: &Path) -> anyhow::Result<()> {
    let sipp = Sipp::carrier(carrier, sip.local_addr(), 500, calls, 1000, dir)?;
    sipp.wait(Duration::from_secs(u64::from(calls / 100 + 120)))?;
    drained(sip).await?;
    tokio::time::sleep(TRANSACTIONS_LINGER).await;
    Ok(())
}

/// Waits until cfhost has no call in progress.
async fn drained(sip: &SipService) -> anyhow::Result<()> {
    let started = Instant::now();
    while sip.calls_in_progress() > 0 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "{} calls never ended",
            sip.calls_in_progress()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// This process's CPU time (user and system), from `/proc/self/stat` (in clock ticks of
/// 10 ms).
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("short /proc/self/stat")?.parse()?)
    };
    // After the command: state is field 3, utime 14 and stime 15 (1-based), so 11 and 12 here.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// This process's resident set now, in MiB.
fn rss_mib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kib / 1024)
}

fn free_udp_port(ip: &str) -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind((ip, 0))?.local_addr()?.port())
}

/// A SIPp process of the benchmark (it runs in a directory of its own, where it writes its
/// logs).
struct Sipp {
    child: Child,
    _dir: PathBuf,
}

impl Sipp {
    /// The device: refuses every call with 486, until killed.
    fn device(scenario: &Path, port: u16, dir: &Path) -> anyhow::Result<Sipp> {
        let dir = tempfile::tempdir_in(dir)?.keep();
        let child = Command::new(SIPP)
            .arg("-sf")
            .arg(scenario)
            .args(["-i", HOST_IP, "-p", &port.to_string(), "-nostdin"])
            .args(["-mp", &free_udp_port(HOST_IP)?.to_string()])
            .args(["-max_recv_loops", "10000", "-max_sched_loops", "10000"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("sipp starts")?;
        Ok(Sipp { child, _dir: dir })
    }

    /// The carrier: `calls` calls at `rate` per second, each hung up `pause_ms` after it is
    /// answered.
    fn carrier(
        scenario: &Path,
        to: SocketAddr,
        rate: u32,
        calls: u32,
        pause_ms: u32,
        dir: &Path,
    ) -> anyhow::Result<Sipp> {
        let dir = tempfile::tempdir_in(dir)?.keep();
        let limit = (rate * (pause_ms / 1000 + 3)).max(100).max(calls.min(6000));
        let child = Command::new(SIPP)
            .arg(to.to_string())
            .arg("-sf")
            .arg(scenario)
            .args([
                "-i",
                CARRIER_IP,
                "-p",
                &free_udp_port(CARRIER_IP)?.to_string(),
            ])
            .args(["-mp", &free_udp_port(CARRIER_IP)?.to_string()])
            .args(["-s", DIALED, "-key", "caller", "+15550001234"])
            .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
            .args(["-l", &limit.to_string(), "-d", &pause_ms.to_string()])
            .arg("-nostdin")
            .args(["-max_recv_loops", "10000", "-max_sched_loops", "10000"])
            .args(["-timeout", "300s", "-timeout_error"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("sipp starts")?;
        Ok(Sipp { child, _dir: dir })
    }

    /// Waits for the carrier to end: Ok when every call went as the scenario says.
    fn wait(mut self, within: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            anyhow::ensure!(started.elapsed() < within, "sipp did not end in {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            use std::io::Read;
            let _ = stderr.read_to_string(&mut log);
        }
        anyhow::ensure!(status.success(), "sipp exited {status}: {log}");
        Ok(())
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
