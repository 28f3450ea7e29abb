//! A module linked for the release of the contract it speaks ([`World`]), and its instances:
//! the one place that knows how each release passes the call. A 0.3 module borrows the call
//! resource and reads what it needs; a 0.2 module gets the whole `call-info` record.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use crate::bindings::{CallflowModule, CallflowModulePre, Description, HangupInfo, Outcome};
use crate::bindings::{World, v0_2};
use crate::call::Call;
use crate::imports::{InstanceState, lent_call, v0_2 as adapter};

/// A component linked against the host's imports, ready to instantiate.
pub enum ModulePre {
    V0_2(v0_2::CallflowModulePre<InstanceState>),
    V0_3(CallflowModulePre<InstanceState>),
}

/// An instance of a module.
pub enum ModuleInstance {
    V0_2(v0_2::CallflowModule),
    V0_3(CallflowModule),
}

impl ModulePre {
    /// Types `pre`'s exports as `world`'s: an error names what the component lacks.
    pub(super) fn new(pre: InstancePre<InstanceState>, world: World) -> wasmtime::Result<Self> {
        Ok(match world {
            World::V0_2 => ModulePre::V0_2(v0_2::CallflowModulePre::new(pre)?),
            World::V0_3 => ModulePre::V0_3(CallflowModulePre::new(pre)?),
        })
    }

    /// A new instance in `store`.
    pub async fn instantiate_async(
        &self,
        store: &mut Store<InstanceState>,
    ) -> wasmtime::Result<ModuleInstance> {
        Ok(match self {
            ModulePre::V0_2(pre) => ModuleInstance::V0_2(pre.instantiate_async(store).await?),
            ModulePre::V0_3(pre) => ModuleInstance::V0_3(pre.instantiate_async(store).await?),
        })
    }
}

impl ModuleInstance {
    /// Calls `describe`.
    pub async fn call_describe(
        &self,
        store: &mut Store<InstanceState>,
    ) -> wasmtime::Result<Description> {
        Ok(match self {
            ModuleInstance::V0_2(module) => {
                adapter::description(module.call_describe(store).await?)
            }
            ModuleInstance::V0_3(module) => module.call_describe(store).await?,
        })
    }

    /// Calls `handle` for one node of `call` with the node's `data`.
    pub async fn call_handle(
        &self,
        store: &mut Store<InstanceState>,
        call: &Call,
        data: &str,
    ) -> wasmtime::Result<Result<Outcome, String>> {
        Ok(match self {
            ModuleInstance::V0_2(module) => module
                .call_handle(store, &adapter::call_info(call), data)
                .await?
                .map(adapter::outcome),
            ModuleInstance::V0_3(module) => module.call_handle(store, lent_call(), data).await?,
        })
    }

    /// Calls `on-termination` for a callback registered on `call`, with its hangup and state.
    pub async fn call_on_termination(
        &self,
        store: &mut Store<InstanceState>,
        call: &Call,
        hangup: Option<&HangupInfo>,
        state: &[u8],
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            ModuleInstance::V0_2(module) => {
                let hangup = hangup.cloned().map(adapter::hangup_info);
                module
                    .call_on_termination(store, &adapter::call_info(call), hangup.as_ref(), state)
                    .await
            }
            ModuleInstance::V0_3(module) => {
                module
                    .call_on_termination(store, lent_call(), hangup, state)
                    .await
            }
        }
    }
}
