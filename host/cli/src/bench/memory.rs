//! Peak memory with many calls at once: 10,000 seed calls held inside a ringing bridge until
//! all of them ring, then let go. Runs in a child process (`cfhost bench --rss-child`) so the
//! peak is this workload's alone.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::seed::SeedHost;
use cfhost_core::call::Call;
use cfhost_core::engine::EngineSettings;
use cfhost_core::switch::RingGate;

/// Calls held at once.
pub const CONCURRENT_CALLS: usize = 10_000;

/// Runs the workload in this process and returns its peak RSS in MiB. Fails if the calls did
/// not all ring at once or did not all publish their alert.
pub async fn held_calls_peak_rss_mib(engine: EngineSettings) -> anyhow::Result<u64> {
    let host = Arc::new(SeedHost::start(engine, false).await?);
    let gate = Arc::new(RingGate::new(CONCURRENT_CALLS));
    let calls: Vec<_> = (0..CONCURRENT_CALLS as u64)
        .map(|n| {
            let host = Arc::clone(&host);
            let gate = Arc::clone(&gate);
            let switch = host.switch().before_bridge(Box::new(move || {
                let gate = Arc::clone(&gate);
                Box::pin(async move { gate.ring().await })
            }));
            tokio::spawn(async move {
                let call = Arc::new(Call::new(host.details(n)));
                host.runtime.run_call(call, Arc::new(switch)).await
            })
        })
        .collect();
    let all = futures::future::try_join_all(calls);
    let reports = tokio::time::timeout(Duration::from_secs(300), all).await??;
    let ringing = gate.rung();
    anyhow::ensure!(ringing == CONCURRENT_CALLS, "only {ringing} calls rang");
    for report in reports {
        report?;
    }
    let alerts = host.sink.published();
    anyhow::ensure!(
        alerts == CONCURRENT_CALLS as u64,
        "{alerts} alerts for {CONCURRENT_CALLS} calls"
    );
    peak_rss_mib()
}

/// This process's peak resident set (`VmHWM`), in MiB.
pub fn peak_rss_mib() -> anyhow::Result<u64> {
    Ok(status_kib("VmHWM:")? as u64 / 1024)
}

/// A memory field of `/proc/self/status` (`VmRSS:`, `VmHWM:`), in KiB.
pub fn status_kib(field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/self/status"))
}

/// Runs the workload in a child process of this binary (with the configuration file
/// `config`, if any) and returns the child's peak RSS.
pub fn peak_rss_in_child_mib(config: Option<&Path>) -> anyhow::Result<u64> {
    let mut child = std::process::Command::new(std::env::current_exe()?);
    child.args(["bench", "--rss-child"]);
    if let Some(config) = config {
        child.arg("--config").arg(config);
    }
    let output = child.stderr(std::process::Stdio::inherit()).output()?;
    anyhow::ensure!(
        output.status.success(),
        "the memory workload failed ({})",
        output.status
    );
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("the memory workload printed {text:?}, not a number"))
}
