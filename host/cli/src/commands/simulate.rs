//! `cfhost simulate`: runs a scenario's calls one after another on simulated switches.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use cfhost_core::call::Call;
use cfhost_core::notify::{OpenSink, Sink};
use cfhost_core::runtime::{HostOptions, Runtime};
use cfhost_core::scenario::read_scenario;
use cfhost_core::switch::SimulatedSwitch;
use cfhost_core::trace::TraceEvent;

use crate::config::Flags;
use crate::eml::EmlSink;

/// The command's arguments.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Data directory: accounts/<account_id>/{callflows,users}/*.json
    #[arg(long)]
    pub data: PathBuf,
    /// Scenario file: a JSON array of calls.
    #[arg(long)]
    pub scenario: PathBuf,
    /// Where notifications go: `amqp://user:pass@host:port/vhost` (through a durable
    /// outbox, with publisher confirms), a file for JSON lines, or `-` for stdout (default).
    #[arg(long)]
    pub notifications: Option<String>,
    /// Directory of the AMQP outbox (default: <data>/outbox).
    #[arg(long)]
    pub outbox: Option<PathBuf>,
    /// Configuration file (TOML); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A directory of extra module components (*.wasm); a module named like a shipped one
    /// replaces it.
    #[arg(long)]
    pub modules: Option<PathBuf>,
    /// Also write the email `cfhost mailer` would send for each notification, as
    /// `<call id>-<template id>.eml` files in this directory (created).
    #[arg(long)]
    pub emails: Option<PathBuf>,
}

pub async fn run(options: Options) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &options.modules
        && !dir.is_dir()
    {
        anyhow::bail!("--modules {}: not a directory", dir.display());
    }
    let flags = Flags {
        data_dir: Some(options.data.clone()),
        modules_dir: options.modules.clone(),
        notifications: options.notifications.clone(),
        outbox_dir: options.outbox.clone(),
        ..Flags::default()
    };
    let (config, policy) = super::load_config(options.config.as_deref(), flags)?;
    let calls = read_scenario(&options.scenario)?;
    let notifications = config.notifications;
    let OpenSink { sink, amqp } = notifications.open(&options.data)?;
    let emails = match &options.emails {
        Some(dir) => Some(Arc::new(
            EmlSink::new(sink.clone(), &options.data, &config.mailer, dir)
                .with_context(|| format!("--emails {}", dir.display()))?,
        )),
        None => None,
    };
    let sink = emails
        .clone()
        .map_or(sink, |emails| emails as Arc<dyn Sink>);
    let mut host = HostOptions::new(&options.data, sink);
    host.policy = policy;
    host.engine = config.engine;
    host.modules_dir = config.serve.modules_dir;
    let (runtime, report) = Runtime::start(host).await?;
    let mut problems = report.module_errors.len() + report.data.errors.len();
    for rejection in &report.module_errors {
        eprintln!("error: {rejection}");
    }
    for error in &report.data.errors {
        eprintln!("error: {error}");
    }
    for line in &report.data.warnings {
        eprintln!("warning: {line}");
    }

    let run_start = SystemTime::now();
    let mut published = 0;
    for (index, call) in calls.iter().enumerate() {
        let details = runtime.complete_details(call.details(index));
        let start = call.starts_at(run_start);
        let switch = Arc::new(SimulatedSwitch::new(call.behaviour, start));
        let label = call
            .name
            .as_deref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let heading = format!(
            "== {}{label}: {} -> {} in account {}",
            details.call_id,
            details.caller_id_number.as_deref().unwrap_or("anonymous"),
            details.request,
            details.account_id
        );
        let call = Arc::new(Call::new(details));
        match runtime.run_call(call, switch.clone()).await {
            Ok(report) => {
                eprintln!("{heading} (callflow {})", report.callflow_id);
                for event in &report.trace {
                    if let TraceEvent::Published {
                        routing_key: Some(_),
                        ..
                    } = event
                    {
                        published += 1;
                    }
                    eprintln!("   {event}");
                }
                eprintln!("   (virtual time {}s)", switch.elapsed_secs());
            }
            Err(e) => {
                problems += 1;
                eprintln!("{heading}\n   error: {e}");
            }
        }
    }
    eprintln!(
        "{} calls simulated, {published} notifications published, {problems} problems",
        calls.len()
    );
    report_module_trouble(&runtime);
    for line in emails.iter().flat_map(|emails| emails.report()) {
        eprintln!("{line}");
    }
    if let Some(sink) = amqp {
        let timeout = std::time::Duration::from_secs(notifications.flush_timeout_secs);
        let waiting = sink.flush(timeout).await;
        if waiting == 0 {
            eprintln!("every notification was confirmed by the broker");
        } else {
            eprintln!(
                "{waiting} notifications are not confirmed yet; they stay in the outbox at {} \
                 and are delivered on the next start",
                sink.outbox().dir().display()
            );
        }
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints the counters of every module that failed, was quarantined or was refused output.
fn report_module_trouble(runtime: &Runtime) {
    for (module, counters) in runtime.health().counters() {
        let trouble = counters.total_failures()
            + counters.quarantines
            + counters.skipped_in_quarantine
            + counters.log_lines_dropped
            + counters.outputs_refused;
        if trouble == 0 {
            continue;
        }
        eprintln!(
            "module {module}: {} nodes, {} callbacks; failures: {}; quarantined {} times, {} runs \
             skipped in quarantine; {} log lines dropped, {} outputs refused",
            counters.nodes,
            counters.callbacks,
            counters.failures_summary(),
            counters.quarantines,
            counters.skipped_in_quarantine,
            counters.log_lines_dropped,
            counters.outputs_refused
        );
    }
}
