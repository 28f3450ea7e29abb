//! The host side of every import of the `callflow-module` world, one file per WIT interface
//! of the current release, and [`v0_2`] serving 0.2 modules over them.
//!
//! Each instance's store holds an [`InstanceState`]: the call it runs for (if any), the module
//! it runs and what it declared, its limits, how long it has run, and the inert WASI context a
//! `wasm32-wasip2` guest links against. Every import checks that the module asked for the
//! capability it belongs to; a refused call traps with a [`Refusal`] naming the module and the
//! capability. Host calls that wait on the switch have their own timeout; the deadline counts
//! only the instance's running time ([`RunClock`]).

mod account;
mod call;
mod call_control;
mod callbacks;
mod clock;
mod directory;
mod limiter;
mod log;
mod node;
mod notify;
mod types;
pub mod v0_2;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::CallflowModule;
use crate::context::CallContext;
use crate::policy::{Capability, Limits, Refusal, Turn};
pub use call::lent_call;
pub use clock::RunClock;
use limiter::InstanceLimiter;

/// What a module instance can reach, kept in its wasmtime `Store`.
pub struct InstanceState {
    context: Option<Arc<CallContext>>,
    module_name: Arc<str>,
    capabilities: Arc<[Capability]>,
    limits: Arc<Limits>,
    limiter: InstanceLimiter,
    clock: Arc<RunClock>,
    deadline: Duration,
    /// What is left of the call's CPU budget for this run.
    budget_left: Duration,
    /// The instance's place in its account's share of threads, while it runs for a call.
    turn: Option<Arc<Turn>>,
    logged_bytes: usize,
    /// What the limits refused, for the host's counters.
    pub refused: OutputCounters,
    /// The last failure of a host service the instance called (a publish the sink refused):
    /// a failure of the instance after it is the host's, not the module's.
    pub host_fault: Option<String>,
    wasi: WasiCtx,
    table: ResourceTable,
}

/// Output an instance tried to hand back past its limits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutputCounters {
    /// Log lines dropped past the log volume limit.
    pub log_lines: u64,
    /// Notifications and callback registrations refused for their size or number.
    pub outputs: u64,
}

impl InstanceState {
    /// State for an instance of `module_name` (which declared `capabilities`) running under
    /// `limits` for at most `deadline` of run time; `context` is `None` only while a module is
    /// being described at load time, when every call-related import traps.
    pub fn new(
        context: Option<Arc<CallContext>>,
        module_name: Arc<str>,
        capabilities: Arc<[Capability]>,
        limits: Arc<Limits>,
        deadline: Duration,
    ) -> Self {
        let mut wasi = WasiCtx::builder();
        // No preopened files, environment, arguments, sockets or name lookups; output is
        // discarded. The clocks are real only with the `clock` capability.
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if !capabilities.contains(&Capability::Clock) {
            wasi.wall_clock(StoppedClock).monotonic_clock(StoppedClock);
        }
        InstanceState {
            context,
            limiter: InstanceLimiter {
                module: Arc::clone(&module_name),
                memory_bytes: limits.memory_bytes,
                table_elements: limits.table_elements,
            },
            module_name,
            capabilities,
            limits,
            clock: Arc::new(RunClock::default()),
            deadline,
            budget_left: Duration::MAX,
            turn: None,
            logged_bytes: 0,
            refused: OutputCounters::default(),
            host_fault: None,
            wasi: wasi.build(),
            table: ResourceTable::new(),
        }
    }

    /// The resource limiter for this store.
    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limiter
    }

    /// The module this instance runs.
    pub fn module_name(&self) -> &str {
        &self.module_name
    }

    /// The clock of this instance's running time: drive every call into the instance with
    /// [`RunClock::time`], or the deadline never passes.
    pub fn clock(&self) -> &Arc<RunClock> {
        &self.clock
    }

    /// How long this instance may run.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// What is left of the call's CPU budget for this run ([`Duration::MAX`]: no budget).
    pub fn budget_left(&self) -> Duration {
        self.budget_left
    }

    /// The call's whole CPU budget.
    pub fn call_budget(&self) -> Duration {
        self.limits.call_cpu
    }

    /// The instance's place in its account's share, while it runs for a call.
    pub fn turn(&self) -> Option<&Arc<Turn>> {
        self.turn.as_ref()
    }

    /// Sets what this run may spend of its call's budget, and its place in the account's share.
    pub fn allow(&mut self, budget_left: Duration, turn: Arc<Turn>) {
        self.budget_left = budget_left;
        self.turn = Some(turn);
    }

    /// Readies a warm instance for its next use, for `context` with `deadline`: a new run
    /// clock, and nothing counted against the log or output limits yet.
    pub fn begin_use(&mut self, context: Arc<CallContext>, deadline: Duration) {
        self.context = Some(context);
        self.deadline = deadline;
        self.clock = Arc::new(RunClock::default());
        self.logged_bytes = 0;
        self.refused = OutputCounters::default();
        self.host_fault = None;
    }

    /// Lets go of the call (and its turn) after a use, so an idle warm instance keeps no call
    /// alive.
    pub fn end_use(&mut self) {
        self.context = None;
        if let Some(turn) = self.turn.take() {
            turn.give_back();
        }
    }

    /// The call this instance runs for, or a trap when it runs for none (during `describe`).
    fn context(&self) -> wasmtime::Result<&Arc<CallContext>> {
        self.context.as_ref().ok_or_else(|| {
            wasmtime::format_err!(
                "module `{}` called a call import outside of a call",
                self.module_name
            )
        })
    }

    /// The call, if the module asked for `capability`; a trap naming both otherwise.
    fn granted(&self, capability: Capability) -> wasmtime::Result<Arc<CallContext>> {
        if !self.capabilities.contains(&capability) {
            return Err(wasmtime::Error::new(Refusal::Undeclared {
                module: self.module_name.to_string(),
                capability,
            }));
        }
        self.context().cloned()
    }

    /// Waits for a short host call (answer, hang up) at most the host-call timeout: a switch
    /// that does not answer is the host's fault ([`Refusal::HostCallTimeout`], never counted
    /// towards quarantine).
    async fn wait_for<T>(
        &mut self,
        call: &'static str,
        host_call: impl Future<Output = T>,
    ) -> wasmtime::Result<T> {
        let timeout = self.limits.host_call_timeout;
        let bounded = tokio::time::timeout(timeout, host_call);
        self.wait_on_switch(bounded).await?.map_err(|_| {
            wasmtime::Error::new(Refusal::HostCallTimeout {
                module: self.module_name.to_string(),
                call,
                timeout,
            })
        })
    }

    /// Waits for a host call that lasts as long as the call does (a bridge, a recording): the
    /// switch ends it (a hangup, the ring timeout, a media or session timer, the longest
    /// message), so no host timer cuts it. The wait itself is not run time. A host call that
    /// has to wait gives the account's turn to another instance meanwhile; the instance runs
    /// on after it for one epoch tick before it waits for a turn again ([`Turn::at_tick`]).
    async fn wait_on_switch<T>(
        &mut self,
        host_call: impl Future<Output = T>,
    ) -> wasmtime::Result<T> {
        let mut waiting = std::pin::pin!(host_call);
        Ok(match futures::poll!(waiting.as_mut()) {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => {
                if let Some(turn) = &self.turn {
                    turn.give_back_to_wait();
                }
                waiting.await
            }
        })
    }
}

/// The clock of an instance without the `clock` capability: the wall clock reads the Unix
/// epoch and the monotonic clock stands still.
struct StoppedClock;

impl HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Adds every import a module may use (ours, of every release the host runs, and WASI's) to
/// `linker`. The releases' import names carry their versions, so both live in one linker.
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    CallflowModule::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    crate::bindings::v0_2::CallflowModule::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
}
