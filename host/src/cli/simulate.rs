//! `cfhost simulate`: runs a scenario's calls one after another on simulated switches.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;

use cfhost::notify::{JsonLinesSink, Sink};
use cfhost::registry::{embedded_modules, modules_in_dir};
use cfhost::runtime::{HostOptions, Runtime};
use cfhost::scenario::read_scenario;
use cfhost::switch::SimulatedSwitch;
use cfhost::trace::TraceEvent;

/// The command's arguments.
pub struct Options {
    pub data: PathBuf,
    pub scenario: PathBuf,
    pub notifications: Option<PathBuf>,
    pub modules: Option<PathBuf>,
}

pub async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let calls = read_scenario(&options.scenario)?;
    let out: Box<dyn Write + Send> = match &options.notifications {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let sink: Arc<dyn Sink> = Arc::new(JsonLinesSink::new(out));
    let mut host = HostOptions::new(&options.data, sink);
    if let Some(dir) = &options.modules {
        host.modules = embedded_modules();
        host.modules.extend(
            modules_in_dir(dir)
                .with_context(|| format!("cannot read modules from {}", dir.display()))?,
        );
    }
    let (runtime, report) = Runtime::start(host).await?;
    let mut stderr = std::io::stderr().lock();
    let mut problems = report.module_errors.len() + report.data.errors.len();
    for line in report.module_errors.iter().chain(&report.data.errors) {
        writeln!(stderr, "error: {line}")?;
    }
    for line in &report.data.warnings {
        writeln!(stderr, "warning: {line}")?;
    }

    let run_start = SystemTime::now();
    let mut published = 0;
    for (index, call) in calls.iter().enumerate() {
        let details = runtime.complete_details(call.details(index));
        let start = call.start_time.map_or(run_start, |secs| {
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
        });
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
        match runtime.run_call(details, switch.clone()).await {
            Ok(report) => {
                writeln!(stderr, "{heading} (callflow {})", report.callflow_id)?;
                for event in &report.trace {
                    if let TraceEvent::Published {
                        routing_key: Some(_),
                        ..
                    } = event
                    {
                        published += 1;
                    }
                    writeln!(stderr, "   {event}")?;
                }
                writeln!(stderr, "   (virtual time {}s)", switch.elapsed_secs())?;
            }
            Err(e) => {
                problems += 1;
                writeln!(stderr, "{heading}\n   error: {e}")?;
            }
        }
    }
    writeln!(
        stderr,
        "{} calls simulated, {published} notifications published, {problems} problems",
        calls.len()
    )?;
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
