//! The `cfhost` command line.

mod bench;
mod mailer;
mod module;
mod new_module;
mod serve;
mod simulate;
mod store;

use std::path::Path;
use std::process::ExitCode;

use cfhost_core::policy::Policy;
use clap::{Parser, Subcommand};

use crate::config::{Config, Flags};

/// A callflow host whose modules are WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "cfhost", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the calls of a scenario against a data directory on the simulated switch.
    ///
    /// Notifications go to --notifications (JSON lines on stdout by default); a readable
    /// trace of every call goes to stderr. Exits 1 if a document or module was rejected or a
    /// call could not run; every other call still runs. With an AMQP broker, waits for its
    /// confirms before exiting; what it did not confirm stays in the outbox for the next run.
    Simulate(simulate::Options),
    /// Run the host as a service with its HTTP API (runs calls, reports health and metrics).
    ///
    /// Settings come from --config (its [serve] section and the rest), then from these flags
    /// or their environment variables. SIGTERM stops new calls, lets calls in flight and their
    /// termination callbacks finish, flushes the notification outbox, and exits 0.
    Serve(serve::Options),
    /// Measure the cost of running modules on this machine, in one run, and check the targets
    /// of BENCHMARKS.md.
    ///
    /// Prints a table, or with --json one JSON object. Takes about half a minute (a few
    /// seconds with --quick).
    Bench(bench::Options),
    /// Deliver the notifications as emails, as KAZOO's teletype does: consume the durable
    /// queue, render the templates, send over SMTP, losing none.
    ///
    /// Settings come from --config's [mailer] section (or CFHOST_MAILER__* variables).
    /// SIGTERM stops it: sends under way finish, retries waiting go back to the queue.
    Mailer(mailer::Options),
    /// Work with module components.
    #[command(subcommand)]
    Module(module::Command),
    /// Create a module project, in Rust (the default), Python or JavaScript (`--lang`): it
    /// passes its own tests, builds the component to drop into a module directory with one
    /// command, and prints the steps.
    NewModule(new_module::Options),
    /// Move accounts between a data directory and the database of [store] url: `import DIR`
    /// into the database, `export DIR` out of it. Prints what it copied; exits 1 if anything
    /// was skipped (named on stderr).
    Store(store::Options),
}

/// Errors only, except for `serve`, which also says what it reloads (modules' own log lines
/// go to the call's trace, and to this log from warnings up).
fn default_log_filter(command: &Command) -> &'static str {
    match command {
        Command::Serve(_) => "error,cfhost=info,cfhost_core::imports::log=warn",
        Command::Mailer(_) => "error,cfhost=info,cfhost_mail=info",
        _ => "error",
    }
}

/// Runs the command line; the exit code says whether everything went through.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .fmt_fields(crate::redact::fields())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(default_log_filter(&cli.command))
            }),
        )
        .init();
    let command = match cli.command {
        Command::Bench(options) => return bench::run(options),
        Command::NewModule(options) => return new_module::run(options),
        command => command,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = match command {
        Command::Simulate(options) => runtime.block_on(simulate::run(options)),
        Command::Serve(options) => runtime.block_on(serve::run(options)),
        Command::Module(command) => runtime.block_on(module::run(command)),
        Command::Mailer(options) => runtime.block_on(mailer::run(options)),
        Command::Store(options) => runtime.block_on(store::run(options)),
        Command::Bench(_) | Command::NewModule(_) => {
            unreachable!("handled above: they need no async runtime or build their own")
        }
    };
    // The command is over. A template still rendering on a blocking thread (its caller gave
    // up at render_timeout_ms; its fuel ends it) must not hold the exit: dropping the runtime
    // would wait for it.
    runtime.shutdown_timeout(EXIT_WAIT);
    result
}

/// How long the exit waits for work left on the runtime's blocking threads.
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The configuration (the file at `path` or the defaults, the environment, then `flags`) and
/// the policy it makes; an error names the file.
fn load_config(path: Option<&Path>, flags: Flags) -> anyhow::Result<(Config, Policy)> {
    let config = Config::load(path, flags)?;
    let policy = config.policy().map_err(|e| {
        let file = path.map_or("configuration".to_string(), |p| p.display().to_string());
        anyhow::anyhow!("{file}: {e}")
    })?;
    Ok((config, policy))
}
