//! The `cfhost` command line.

mod bench;
mod serve;
mod simulate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    Simulate {
        /// Data directory: accounts/<account_id>/{callflows,users}/*.json
        #[arg(long)]
        data: PathBuf,
        /// Scenario file: a JSON array of calls.
        #[arg(long)]
        scenario: PathBuf,
        /// Where notifications go: `amqp://user:pass@host:port/vhost` (through a durable
        /// outbox, with publisher confirms), a file for JSON lines, or `-` for stdout (default).
        #[arg(long)]
        notifications: Option<String>,
        /// Directory of the AMQP outbox (default: <data>/outbox).
        #[arg(long)]
        outbox: Option<PathBuf>,
        /// Configuration file (TOML); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A directory of extra module components (*.wasm); a module named like a shipped one
        /// replaces it.
        #[arg(long)]
        modules: Option<PathBuf>,
    },
    /// Run the host as a service with its HTTP API (runs calls, reports health and metrics).
    ///
    /// Settings come from --config (its [serve] section and the rest), then from these flags
    /// or their environment variables. SIGTERM stops new calls, lets calls in flight and their
    /// termination callbacks finish, flushes the notification outbox, and exits 0.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, env = "CFHOST_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, env = "CFHOST_LISTEN")]
        listen: Option<String>,
        /// Data directory (default ./data, created if missing).
        #[arg(long, env = "CFHOST_DATA_DIR")]
        data: Option<PathBuf>,
        /// A directory of extra module components (*.wasm).
        #[arg(long, env = "CFHOST_MODULES_DIR")]
        modules: Option<PathBuf>,
        /// Where notifications go: an amqp:// URL, a file for JSON lines, or - for stdout.
        #[arg(long, env = "CFHOST_NOTIFICATIONS")]
        notifications: Option<String>,
        /// The operator's token (every account, metrics).
        #[arg(long, env = "CFHOST_OPERATOR_TOKEN", hide_env_values = true)]
        operator_token: Option<String>,
        /// Per-account tokens: account=token,account=token.
        #[arg(long, env = "CFHOST_ACCOUNT_TOKENS", hide_env_values = true)]
        account_tokens: Option<String>,
    },
    /// Measure the cost of running modules on this machine, in one run, and check the targets
    /// of BENCHMARKS.md.
    ///
    /// Prints a table, or with --json one JSON object. Takes about half a minute (a few
    /// seconds with --quick).
    Bench {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// A short run with fewer samples, to check that everything works.
        #[arg(long)]
        quick: bool,
        /// Configuration file (TOML): its [engine] section sets up the engine measured.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Internal: run the 10,000-call memory workload and print its peak RSS in MiB.
        #[arg(long, hide = true)]
        rss_child: bool,
        /// Only run this many seed calls one after another on one thread, with nothing timed
        /// (a fixed workload for profilers and instruction counts), and print how many alerts
        /// they published.
        #[arg(long, value_name = "CALLS")]
        workload: Option<u64>,
        /// With --workload: the shipped modules' instances are pooled.
        #[arg(long, requires = "workload")]
        pooled: bool,
    },
}

/// Runs the command line; the exit code says whether everything went through.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    if let Command::Bench {
        json,
        quick,
        config,
        rss_child,
        workload,
        pooled,
    } = cli.command
    {
        return bench::run(bench::Options {
            json,
            quick,
            config,
            rss_child,
            workload,
            pooled,
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Simulate {
            data,
            scenario,
            notifications,
            outbox,
            config,
            modules,
        } => runtime.block_on(simulate::run(simulate::Options {
            data,
            scenario,
            notifications,
            outbox,
            config,
            modules,
        })),
        Command::Serve {
            config,
            listen,
            data,
            modules,
            notifications,
            operator_token,
            account_tokens,
        } => runtime.block_on(serve::run(serve::Options {
            config,
            listen,
            data,
            modules,
            notifications,
            operator_token,
            account_tokens,
        })),
        Command::Bench { .. } => unreachable!("handled above: it builds its own runtimes"),
    }
}
