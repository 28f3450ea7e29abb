//! The `cfhost` binary.

mod cli;

fn main() -> anyhow::Result<std::process::ExitCode> {
    cli::run()
}
