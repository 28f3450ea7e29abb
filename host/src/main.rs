//! The `cfhost` binary.

mod cli;

/// mimalloc instead of the system allocator: every instance's store, strings lowered into and
/// lifted out of modules, and notification payloads are small, short-lived allocations, which
/// it serves with less work and no lock shared between threads (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<std::process::ExitCode> {
    cli::run()
}
