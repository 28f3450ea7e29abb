//! The wasmtime engine and everything set up once per process: configuration, the linker
//! with every host import, the epoch ticker behind wall-clock deadlines; and the store of each
//! instance, with its limits, fuel and deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store, UpdateDeadline};

use crate::bindings::CallflowModulePre;
use crate::imports::{self, InstanceState};
use crate::policy::{Limits, Refusal};

/// How often the epoch advances: the granularity of deadlines, and how often a long-running
/// module yields its thread to other calls.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine and linker shared by all modules and calls.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<InstanceState>,
    uses_fuel: bool,
    _ticker: EpochTicker,
}

impl Sandbox {
    /// Sets up the engine; `uses_fuel` makes it count instructions (needed when any limit sets
    /// an instruction budget; it costs a little on every call).
    pub fn new(uses_fuel: bool) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Component-model async is not used; without it every call is cheaper.
        config.concurrency_support(false);
        config.epoch_interruption(true);
        config.consume_fuel(uses_fuel);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        imports::add_to_linker(&mut linker)?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(Sandbox {
            engine,
            linker,
            uses_fuel,
            _ticker: ticker,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Links a compiled component against the host's imports, ready to instantiate.
    pub fn link(
        &self,
        component: &Component,
    ) -> wasmtime::Result<CallflowModulePre<InstanceState>> {
        let pre = self.linker.instantiate_pre(component)?;
        CallflowModulePre::new(pre)
    }

    /// A fresh store for one instance running under `limits` for at most `deadline` of run
    /// time (its [`RunClock`](crate::imports::RunClock): waits are not counted). Every epoch
    /// tick the instance yields to other tasks; once its run time passes the deadline, it
    /// traps with [`Refusal::Deadline`].
    pub fn store(
        &self,
        limits: &Limits,
        deadline: Duration,
        state: InstanceState,
    ) -> Store<InstanceState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state.limiter());
        if self.uses_fuel {
            store
                .set_fuel(limits.fuel.unwrap_or(u64::MAX))
                .expect("fuel is enabled on this engine");
        }
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |context| {
            let state = context.data();
            if state.clock().elapsed() >= deadline {
                return Err(wasmtime::Error::new(Refusal::Deadline {
                    module: state.module_name().to_string(),
                    deadline,
                }));
            }
            Ok(UpdateDeadline::Yield(1))
        });
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
