//! Start-up with 10 modules: engine and pool set-up, loading every module (compiled, or
//! mapped from the compiled-component cache), describing it, compiling its schema, and
//! loading the seed accounts.
//!
//! The 10 module files are the five the binary carries (the shipped four and `minimal`) and a
//! copy of each made distinct by a custom section, so that all ten are compiled (or cached)
//! on their own.

use std::sync::Arc;
use std::time::Instant;

use super::measure::percentile;
use super::seed::{CountingSink, modules, write_seed_data};
use cfhost_core::engine::EngineSettings;
use cfhost_core::registry::ModuleSource;
use cfhost_core::runtime::{HostOptions, Runtime};

/// Modules loaded at start.
pub const MODULES_AT_START: usize = 10;

/// Median start-up time in ms over `runs` starts, each with an empty cache (`cached` false) or
/// with one filled by an earlier start.
pub async fn cold_start_ms(
    engine: &EngineSettings,
    cached: bool,
    runs: usize,
) -> anyhow::Result<f64> {
    let data = tempfile::tempdir()?;
    write_seed_data(data.path())?;
    let sources = ten_modules()?;
    let mut samples = Vec::with_capacity(runs);
    let filled = tempfile::tempdir()?;
    if cached {
        start(engine, data.path(), &sources, filled.path()).await?;
    }
    for _ in 0..runs {
        let empty = tempfile::tempdir()?;
        let cache = if cached { filled.path() } else { empty.path() };
        let started = Instant::now();
        start(engine, data.path(), &sources, cache).await?;
        samples.push(started.elapsed());
    }
    Ok(percentile(&mut samples, 50.0).as_secs_f64() * 1e3)
}

/// Starts a host on the seed accounts of `data` with `sources`, its compiled-component cache
/// in `cache`.
pub(super) async fn start(
    engine: &EngineSettings,
    data: &std::path::Path,
    sources: &[ModuleSource],
    cache: &std::path::Path,
) -> anyhow::Result<()> {
    let mut options = HostOptions::new(data, Arc::new(CountingSink::default()));
    options.engine = EngineSettings {
        cache_dir: Some(cache.to_path_buf()),
        ..engine.clone()
    };
    options.modules = sources.to_vec();
    let (_runtime, report) = Runtime::start(options).await?;
    anyhow::ensure!(
        report.module_errors.is_empty(),
        "modules did not load: {:?}",
        report.module_errors
    );
    Ok(())
}

/// The shipped modules, `minimal`, and a distinct copy of each.
fn ten_modules() -> anyhow::Result<Vec<ModuleSource>> {
    let originals = modules()?;
    let copies: Vec<ModuleSource> = originals
        .iter()
        .map(|module| {
            let mut bytes = module.bytes.to_vec();
            append_custom_section(&mut bytes, "cfhost-bench-copy", module.origin.as_bytes());
            ModuleSource {
                origin: format!("{} (copy)", module.origin),
                bytes: Arc::from(bytes),
                shipped: true,
            }
        })
        .collect();
    let all: Vec<ModuleSource> = originals.into_iter().chain(copies).collect();
    assert_eq!(all.len(), MODULES_AT_START);
    Ok(all)
}

/// Appends a custom section (id 0) named `name` holding `payload` to a component binary.
fn append_custom_section(component: &mut Vec<u8>, name: &str, payload: &[u8]) {
    let mut section = Vec::new();
    leb128(&mut section, name.len());
    section.extend_from_slice(name.as_bytes());
    section.extend_from_slice(payload);
    component.push(0);
    leb128(component, section.len());
    component.extend_from_slice(&section);
}

fn leb128(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
