//! The host side of every import of the `callflow-module` world, one file per WIT interface.
//!
//! Each instance's store holds an [`InstanceState`]: the call it runs for (if any), the module
//! it runs, and the inert WASI context a `wasm32-wasip2` guest links against. Every import
//! checks that the module asked for the capability it belongs to; a refused call traps, and
//! the trap names the module and the capability.

mod call;
mod call_control;
mod callbacks;
mod directory;
mod log;
mod notify;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{CallflowModule, Capability};
use crate::executor::CallEnv;

/// What a module instance can reach, kept in its wasmtime `Store`.
pub struct InstanceState {
    env: Option<Arc<CallEnv>>,
    module_name: Arc<str>,
    capabilities: Arc<[Capability]>,
    limits: StoreLimits,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl InstanceState {
    /// State for an instance that runs for a call; `env` is `None` only while a module is
    /// being described at load time, when every call-related import traps.
    pub fn new(
        env: Option<Arc<CallEnv>>,
        module_name: Arc<str>,
        capabilities: Arc<[Capability]>,
        limits: StoreLimits,
    ) -> Self {
        InstanceState {
            env,
            module_name,
            capabilities,
            limits,
            // No preopened files, environment, arguments or sockets; output is discarded.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        }
    }

    /// The resource limiter for this store.
    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }

    /// The call this instance runs for, or a trap when it runs for none (during `describe`).
    fn env(&self) -> wasmtime::Result<&Arc<CallEnv>> {
        self.env.as_ref().ok_or_else(|| {
            wasmtime::format_err!(
                "module `{}` called a call import outside of a call",
                self.module_name
            )
        })
    }

    /// The call, if the module was granted `capability`; a trap naming both otherwise.
    fn granted(&self, capability: Capability) -> wasmtime::Result<&Arc<CallEnv>> {
        if !self.capabilities.contains(&capability) {
            return Err(wasmtime::format_err!(
                "module `{}` used capability `{}` without asking for it in its description",
                self.module_name,
                capability_name(capability)
            ));
        }
        self.env()
    }
}

/// The WIT name of a capability.
pub fn capability_name(capability: Capability) -> &'static str {
    match capability {
        Capability::CallControl => "call-control",
        Capability::Directory => "directory",
        Capability::Notify => "notify",
        Capability::Callbacks => "callbacks",
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

/// Adds every import a module may use (ours and WASI's) to `linker`.
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    CallflowModule::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
}

impl crate::bindings::cfhost::callflow::types::Host for InstanceState {}
