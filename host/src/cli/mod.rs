//! The `cfhost` command line.

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
    /// Notifications go to --notifications as JSON lines (stdout by default); a readable
    /// trace of every call goes to stderr. Exits 1 if a document or module was rejected or a
    /// call could not run; every other call still runs.
    Simulate {
        /// Data directory: accounts/<account_id>/{callflows,users}/*.json
        #[arg(long)]
        data: PathBuf,
        /// Scenario file: a JSON array of calls.
        #[arg(long)]
        scenario: PathBuf,
        /// Where notifications go, one JSON object per line (default: stdout).
        #[arg(long)]
        notifications: Option<PathBuf>,
        /// A directory of extra module components (*.wasm); a module named like a shipped one
        /// replaces it.
        #[arg(long)]
        modules: Option<PathBuf>,
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Simulate {
            data,
            scenario,
            notifications,
            modules,
        } => runtime.block_on(simulate::run(simulate::Options {
            data,
            scenario,
            notifications,
            modules,
        })),
    }
}
