//! Keeps a runtime current with the changes its store announces (PostgreSQL's LISTEN/NOTIFY,
//! whoever wrote): a changed account is read again, and [`Change::Everything`] (after a
//! reconnect, or more accounts at once than [`FULL_RELOAD_OVER`]) reads everything again.
//! Changes that arrive together are applied together, a moment after the first
//! ([`GATHER`]); a reload the store cannot answer is tried again every [`RETRY`] while what
//! was loaded keeps serving.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cfhost_store::Change;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::runtime::{LoadReport, Runtime};

/// How long changes are gathered after the first before they are applied.
pub const GATHER: Duration = Duration::from_millis(20);
/// How long after a failed reload it is tried again.
pub const RETRY: Duration = Duration::from_secs(1);
/// Past this many changed accounts at once, everything is read again in one go (a bulk import
/// reads faster whole than account by account).
pub const FULL_RELOAD_OVER: usize = 64;

/// Applies `changes` to `runtime` until the sender is gone; the task ends with it.
pub fn follow(
    runtime: Arc<Runtime>,
    mut changes: UnboundedReceiver<Change>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pending = BTreeSet::new();
        loop {
            if pending.is_empty() {
                match changes.recv().await {
                    Some(change) => {
                        pending.insert(change);
                    }
                    None => return,
                }
            }
            tokio::time::sleep(GATHER).await;
            while let Ok(change) = changes.try_recv() {
                pending.insert(change);
            }
            pending = apply(&runtime, pending).await;
            if !pending.is_empty() {
                tokio::time::sleep(RETRY).await;
            }
        }
    })
}

/// Applies `pending`; returns what could not be applied yet.
async fn apply(runtime: &Runtime, pending: BTreeSet<Change>) -> BTreeSet<Change> {
    if pending.contains(&Change::Everything) || pending.len() > FULL_RELOAD_OVER {
        return match runtime.reload_system_modules().await {
            Ok(report) => {
                log_report("everything", &report);
                BTreeSet::new()
            }
            Err(e) => {
                tracing::error!("reading everything again failed (retrying): {e}");
                BTreeSet::from([Change::Everything])
            }
        };
    }
    let mut failed = BTreeSet::new();
    for change in pending {
        let Change::Account(account) = &change else {
            continue;
        };
        match runtime.reload_account(account).await {
            Ok(report) => log_report(&format!("account `{account}`"), &report),
            Err(e) => {
                tracing::error!("reading account `{account}` again failed (retrying): {e}");
                failed.insert(change);
            }
        }
    }
    failed
}

/// Logs what a reload rejected.
pub fn log_report(what: &str, report: &LoadReport) {
    for rejection in &report.module_errors {
        tracing::error!("reloading {what}: {rejection}");
    }
    for error in report.data.error_lines() {
        tracing::error!("reloading {what}: {error}");
    }
    tracing::info!("reloaded {what}");
}
