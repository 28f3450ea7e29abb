//! The wasmtime engine and everything set up once per process: configuration and instance
//! allocation ([`settings`]), the compiled-component cache ([`cache`]), the linker with every
//! host import, the epoch ticker behind wall-clock deadlines; and the store of each instance,
//! with its limits, fuel and deadline.

pub mod cache;
pub mod settings;
pub mod world;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

use crate::bindings::World;
use crate::imports::{self, InstanceState};
use crate::policy::{Limits, Policy, Refusal};
pub use cache::{ComponentCache, Provenance};
pub use settings::EngineSettings;
pub use world::{ModuleInstance, ModulePre};

/// How often the epoch advances: the granularity of deadlines, and how often a long-running
/// module yields its thread to other calls.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The running time after which an instance needs its account's turn at a tick. Below it the
/// instance has only waited behind other tasks while the tick passed: the seed's instances run
/// about 60 µs each, a CPU-heavy node runs for ticks. At 10 ms (a whole tick) a heavy node of
/// 10 ms never took a turn and one account's heavy calls took every thread (the fairness
/// benchmark's light p99 went from 0.5-1.2x to 130x idle); at 0 a share of one held an
/// account's short calls to one thread (issue 30).
const RUN_BEFORE_A_TURN: Duration = Duration::from_millis(1);

/// How instances get their memory, tables and stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// The pooling allocator, with this many instance slots.
    Pooling { instances: u32 },
    /// Allocated on demand (the pool was turned off, or could not be reserved).
    OnDemand,
}

/// The engine and linker shared by all modules and calls.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<InstanceState>,
    uses_fuel: bool,
    allocation: Allocation,
    cache: Option<ComponentCache>,
    _ticker: EpochTicker,
}

impl Sandbox {
    /// Sets up the engine for `policy` (fuel when a limit needs it; pool slots as large as the
    /// largest limits). When the pool cannot be reserved (address space limits), logs why
    /// and allocates on demand.
    pub fn new(settings: &EngineSettings, policy: &Policy) -> wasmtime::Result<Self> {
        let on_demand = || Engine::new(&settings.wasmtime_config(policy, None));
        let slots = match settings.pool_instances {
            0 => 0,
            _ => settings.pool_slots(),
        };
        let (engine, allocation) = if slots == 0 {
            (on_demand()?, Allocation::OnDemand)
        } else {
            match Engine::new(&settings.wasmtime_config(policy, Some(slots))) {
                Ok(engine) => (engine, Allocation::Pooling { instances: slots }),
                Err(e) => {
                    tracing::warn!(
                        "cannot reserve a pool of {slots} instances, allocating on demand: {e:#}"
                    );
                    (on_demand()?, Allocation::OnDemand)
                }
            }
        };
        let mut linker = Linker::new(&engine);
        imports::add_to_linker(&mut linker)?;
        let ticker = EpochTicker::start(engine.clone());
        let cache = settings
            .cache_root()
            .map(|root| ComponentCache::new(&root, &engine, settings.cache_max_files));
        Ok(Sandbox {
            engine,
            linker,
            uses_fuel: policy.uses_fuel(),
            allocation,
            cache,
            _ticker: ticker,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// How instances are allocated.
    pub fn allocation(&self) -> Allocation {
        self.allocation
    }

    /// Compiles a component, or maps it from the cache when the cache holds it.
    pub fn compile(&self, bytes: &[u8]) -> wasmtime::Result<(Component, Provenance)> {
        match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, bytes),
            None => Ok((Component::new(&self.engine, bytes)?, Provenance::Compiled)),
        }
    }

    /// Whether the cache holds a compilation of `bytes`.
    pub fn is_cached(&self, bytes: &[u8]) -> bool {
        self.cache.as_ref().is_some_and(|cache| cache.holds(bytes))
    }

    /// Removes the cached compilation of `bytes` (a module that was refused): a refused
    /// upload leaves nothing behind.
    pub fn forget(&self, bytes: &[u8]) {
        if let Some(cache) = &self.cache {
            cache.forget(bytes);
        }
    }

    /// Links a compiled component that speaks `world` against the host's imports, ready to
    /// instantiate.
    pub fn link(&self, component: &Component, world: World) -> wasmtime::Result<ModulePre> {
        let pre = self.linker.instantiate_pre(component)?;
        ModulePre::new(pre, world)
    }

    /// A fresh store for one instance running under `limits`. Every epoch tick the instance
    /// yields to other tasks, and passes its account's turn to the account's next waiting
    /// instance ([`crate::policy::share`]); once its run time
    /// ([`RunClock`](crate::imports::RunClock): waits are not counted) passes the state's
    /// deadline, it traps with [`Refusal::Deadline`], and once it passes what is left of the
    /// call's budget, with [`Refusal::CallBudget`].
    pub fn store(&self, limits: &Limits, state: InstanceState) -> Store<InstanceState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state.limiter());
        store.epoch_deadline_callback(|context| {
            let state = context.data();
            let ran = state.clock().elapsed();
            let module = || state.module_name().to_string();
            if ran >= state.deadline() {
                return Err(wasmtime::Error::new(Refusal::Deadline {
                    module: module(),
                    deadline: state.deadline(),
                }));
            }
            if ran >= state.budget_left() {
                return Err(wasmtime::Error::new(Refusal::CallBudget {
                    module: module(),
                    budget: state.call_budget(),
                }));
            }
            let has_run = ran >= RUN_BEFORE_A_TURN;
            Ok(match state.turn().and_then(|turn| turn.at_tick(has_run)) {
                Some(next_turn) => UpdateDeadline::YieldCustom(1, next_turn),
                None => UpdateDeadline::Yield(1),
            })
        });
        self.rearm(&mut store, limits);
        store
    }

    /// Refills a store's fuel and re-arms its epoch deadline before a call into it.
    pub fn rearm(&self, store: &mut Store<InstanceState>, limits: &Limits) {
        if self.uses_fuel {
            store
                .set_fuel(limits.fuel.unwrap_or(u64::MAX))
                .expect("fuel is enabled on this engine");
        }
        store.set_epoch_deadline(1);
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
