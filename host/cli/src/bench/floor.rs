//! The floors: what one fresh instance costs before any module or host work. `floor_wat_us`
//! is the bare wasmtime floor (a hand-written component with one function and a one-page
//! memory, no imports, in a store holding nothing); `floor_us` is the smallest module our SDK
//! builds, instantiated and called through the host's own store, linker and WASI context.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{Component, Linker, TypedFunc};

use super::measure::median_of;
use super::seed::SeedHost;
use cfhost_core::call::Call;
use cfhost_core::imports::InstanceState;

/// The hand-written component of `floor_wat_us`.
const FLOOR_WAT: &str = r#"
(component
  (core module $m
    (memory (export "memory") 1)
    (func (export "run") (result i32) i32.const 7))
  (core instance $i (instantiate $m))
  (func (export "run") (result u32) (canon lift (core func $i "run"))))
"#;

/// Median of new store + instantiate + call of the hand-written component, in µs.
pub async fn floor_wat_us(host: &SeedHost, runs: usize) -> anyhow::Result<f64> {
    let engine = host.runtime.sandbox().engine();
    let component = Component::new(engine, FLOOR_WAT).map_err(wasm)?;
    let run = component
        .get_export_index(None, "run")
        .ok_or_else(|| anyhow::anyhow!("the floor component exports `run`"))?;
    let pre = Linker::<()>::new(engine)
        .instantiate_pre(&component)
        .map_err(wasm)?;
    median_of(runs, async || {
        let mut store = Store::new(engine, ());
        // Ten seconds of epoch ticks: never reached, and no callback to pay for.
        store.set_epoch_deadline(1000);
        let instance = pre.instantiate_async(&mut store).await.map_err(wasm)?;
        let func: TypedFunc<(), (u32,)> = instance.get_typed_func(&mut store, run).map_err(wasm)?;
        let (seven,) = func.call_async(&mut store, ()).await.map_err(wasm)?;
        anyhow::ensure!(seven == 7, "the floor component returned {seven}");
        Ok(())
    })
    .await
}

/// Median of new store + instantiate + `handle` of the `minimal` module, in µs.
pub async fn floor_us(host: &SeedHost, runs: usize) -> anyhow::Result<f64> {
    let runtime = &host.runtime;
    let module = runtime
        .modules()
        .system()
        .get("minimal")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the minimal module is loaded"))?;
    let call = Call::new(host.details(0));
    let limits = Arc::clone(runtime.policy().limits(""));
    median_of(runs, async || {
        let state = InstanceState::new(
            None,
            Arc::clone(module.name()),
            Arc::clone(module.capabilities()),
            Arc::clone(&limits),
            Duration::from_secs(1),
        );
        let mut store = runtime.sandbox().store(&limits, state);
        let instance = module
            .pre()
            .instantiate_async(&mut store)
            .await
            .map_err(wasm)?;
        let outcome = instance
            .call_handle(&mut store, &call, "{}")
            .await
            .map_err(wasm)?;
        anyhow::ensure!(outcome.is_ok(), "minimal failed: {outcome:?}");
        Ok(())
    })
    .await
}

/// A wasmtime error with its causes, as an `anyhow` error.
fn wasm(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}
