//! The `cfhost` binary: the composition root. It reads the configuration file ([`config`]),
//! builds the runtime of `cfhost-core` from its sections, and runs a command ([`commands`]):
//! the simulator, the service with its HTTP API ([`api`]) and hot reload ([`watch`]), the
//! benchmarks ([`bench`]), the module tools and the scaffold ([`scaffold`]), the mailer, and
//! the emails `simulate` writes ([`eml`]); its log never carries credentials ([`redact`]).

mod api;
mod bench;
mod commands;
mod config;
mod console;
mod eml;
mod redact;
mod watch;

/// mimalloc instead of the system allocator: every instance's store, strings lowered into and
/// lifted out of modules, and notification payloads are small, short-lived allocations, which
/// it serves with less work and no lock shared between threads (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<std::process::ExitCode> {
    commands::run()
}
