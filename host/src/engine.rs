//! The wasmtime engine and everything set up once per process: configuration, the linker
//! with every host import, the epoch ticker behind wall-clock deadlines, and per-store limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store, StoreLimitsBuilder};

use crate::bindings::CallflowModulePre;
use crate::imports::{self, InstanceState};

/// How often the epoch advances: the granularity of deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits applied to every module instance.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest linear memory an instance may grow to.
    pub memory_bytes: usize,
    /// Wall-clock time a `handle` or `on-termination` call may spend running wasm.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 16 << 20,
            deadline: Duration::from_secs(2),
        }
    }
}

/// The engine, linker and limits shared by all modules and calls.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<InstanceState>,
    limits: Limits,
    _ticker: EpochTicker,
}

impl Sandbox {
    /// Sets up the engine with `limits`.
    pub fn new(limits: Limits) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Component-model async is not used; without it every call is cheaper.
        config.concurrency_support(false);
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        imports::add_to_linker(&mut linker)?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(Sandbox {
            engine,
            linker,
            limits,
            _ticker: ticker,
        })
    }

    /// Compiles a component and links it against the host's imports, ready to instantiate.
    pub fn prepare(&self, bytes: &[u8]) -> wasmtime::Result<CallflowModulePre<InstanceState>> {
        let component = Component::new(&self.engine, bytes)?;
        let pre = self.linker.instantiate_pre(&component)?;
        CallflowModulePre::new(pre)
    }

    /// A fresh store for one instance, with memory limits and a deadline set.
    pub fn store(
        &self,
        make_state: impl FnOnce(wasmtime::StoreLimits) -> InstanceState,
    ) -> Store<InstanceState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .instances(4)
            .build();
        let mut store = Store::new(&self.engine, make_state(limits));
        store.limiter(|state| state.limiter());
        let ticks = self.limits.deadline.as_millis() / EPOCH_TICK.as_millis();
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX).max(1));
        store.epoch_deadline_trap();
        store
    }
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("cfhost-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
