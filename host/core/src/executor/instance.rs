//! Running one module instance for a call under the tenant-safety policy: the account's grant,
//! quarantine, limits and deadline, with every failure classified and counted. The instance is
//! fresh, or a warm one of the same account for a pooled module ([`Lifecycle`]).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;

use crate::bindings::{HangupInfo, Outcome};
use crate::call::Hangup;
use crate::context::CallContext;
use crate::engine::ModuleInstance;
use crate::imports::{InstanceState, OutputCounters};
use crate::policy::{Failure, FailureKind, Lifecycle, ModuleCounters, Refusal, Turn};
use crate::registry::LoadedModule;
use crate::trace::{Level, TraceEvent};

use super::Executor;
use super::warm::Warm;

/// How running a module went.
pub(super) enum Run<T> {
    Done(T),
    Failed(Failure),
    /// Not run: the module is quarantined for the call's account.
    Quarantined,
}

impl Executor<'_> {
    /// Runs `handle` of `module` for one node in a fresh instance.
    pub(super) async fn run_handle(
        &self,
        context: &Arc<CallContext>,
        module: &LoadedModule,
        data: &str,
    ) -> Run<Outcome> {
        let deadline = self.limits.handle_deadline;
        self.guarded(
            context,
            module,
            deadline,
            |health| health.nodes += 1,
            async |store, instance| {
                let outcome = instance
                    .call_handle(&mut *store, context.call(), data)
                    .await
                    .map_err(|trap| Failure::from_wasmtime(&trap, "handle"))?
                    .map_err(|e| {
                        Failure::new(FailureKind::Error, format!("handle: module error: {e}"))
                    })?;
                self.check_outcome(&outcome)?;
                Ok(outcome)
            },
        )
        .await
    }

    /// Runs `on-termination` of `module` for one registered callback in a fresh instance.
    pub(super) async fn run_callback(
        &self,
        context: &Arc<CallContext>,
        module: &LoadedModule,
        hangup: Option<&Hangup>,
        state: &[u8],
    ) -> Run<()> {
        let deadline = self.limits.callback_deadline;
        let hangup = hangup.map(HangupInfo::from);
        self.guarded(
            context,
            module,
            deadline,
            |health| health.callbacks += 1,
            async |store, instance| {
                instance
                    .call_on_termination(&mut *store, context.call(), hangup.as_ref(), state)
                    .await
                    .map_err(|trap| Failure::from_wasmtime(&trap, "on-termination"))?
                    .map_err(|e| {
                        Failure::new(
                            FailureKind::Error,
                            format!("on-termination: module error: {e}"),
                        )
                    })
            },
        )
        .await
    }

    /// Checks the account's grant and quarantine, instantiates `module` with the account's
    /// limits, runs `call`, then counts what happened and quarantines a module that keeps
    /// failing.
    async fn guarded<T>(
        &self,
        context: &Arc<CallContext>,
        module: &LoadedModule,
        deadline: Duration,
        count_run: impl FnOnce(&mut ModuleCounters),
        call: impl AsyncFnOnce(&mut Store<InstanceState>, &ModuleInstance) -> Result<T, Failure>,
    ) -> Run<T> {
        let account = context.account_id();
        let name = module.name();
        if let Some(missing) =
            self.policy
                .grants
                .missing_in_account_grant(account, name, module.capabilities())
        {
            let failure = Failure::new(
                FailureKind::Capability,
                format!(
                    "capability `{missing}` of module `{name}` is not granted to account \
                     `{account}`"
                ),
            );
            self.health.failed(account, name, failure.kind);
            return Run::Failed(failure);
        }
        if self.health.check_quarantine(account, name) {
            return Run::Quarantined;
        }
        let (result, refused, ran) = self.run_instance(context, module, deadline, call).await;
        self.health.count(name, |c| {
            count_run(c);
            c.run_micros += u64::try_from(ran.as_micros()).unwrap_or(u64::MAX);
            c.log_lines_dropped += refused.log_lines;
            c.outputs_refused += refused.outputs;
        });
        match result {
            Ok(value) => Run::Done(value),
            Err(failure) => {
                if self.health.failed(account, name, failure.kind) {
                    context.trace().push(TraceEvent::Log {
                        module: name.to_string(),
                        level: Level::Error,
                        message: format!(
                            "quarantined for account `{account}` after repeated failures"
                        ),
                    });
                }
                Run::Failed(failure)
            }
        }
    }

    /// Runs `call` in an instance of `module`: a fresh one, or for a pooled module a warm one
    /// of the account, given back after a success and dropped after any failure. Returns the
    /// result (a failure after a host service failed the instance is the host's), what the
    /// limits refused, and how long the instance ran.
    async fn run_instance<T>(
        &self,
        context: &Arc<CallContext>,
        module: &LoadedModule,
        deadline: Duration,
        call: impl AsyncFnOnce(&mut Store<InstanceState>, &ModuleInstance) -> Result<T, Failure>,
    ) -> (Result<T, Failure>, OutputCounters, Duration) {
        let account = context.account_id();
        let budget_left = self.budget.cpu_left();
        if budget_left.is_zero() {
            let spent = Refusal::CallBudget {
                module: module.name().to_string(),
                budget: self.limits.call_cpu,
            };
            let failure = Failure::new(FailureKind::CallBudget, format!("not run: {spent}"));
            return (Err(failure), OutputCounters::default(), Duration::ZERO);
        }
        let turn = Turn::new(Arc::clone(&self.share));
        let lifecycle = module.lifecycle();
        let warm = match lifecycle {
            Lifecycle::Pooled { .. } => self.warm.take(account, module.id()),
            Lifecycle::PerNode => None,
        };
        let (mut store, instance, uses) = match warm {
            Some(mut warm) => {
                warm.store
                    .data_mut()
                    .begin_use(Arc::clone(context), deadline);
                self.sandbox.rearm(&mut warm.store, &self.limits);
                (warm.store, Some(warm.instance), warm.uses)
            }
            None => {
                let state = InstanceState::new(
                    Some(Arc::clone(context)),
                    Arc::clone(module.name()),
                    Arc::clone(module.capabilities()),
                    Arc::clone(&self.limits),
                    deadline,
                );
                (self.sandbox.store(&self.limits, state), None, 0)
            }
        };
        store.data_mut().allow(budget_left, Arc::clone(&turn));
        let clock = Arc::clone(store.data().clock());
        let run = async {
            let instance = match instance {
                Some(instance) => instance,
                None => module
                    .pre()
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| Failure::from_wasmtime(&e, "instantiate"))?,
            };
            let value = call(&mut store, &instance).await?;
            Ok((value, instance))
        };
        let result: Result<(T, ModuleInstance), Failure> = clock.time(run).await;
        turn.give_back();
        let refused = store.data().refused;
        let ran = clock.elapsed();
        self.budget.charge(ran);
        let result = match (result, &store.data().host_fault) {
            (Err(failure), Some(fault)) => Err(Failure::new(
                FailureKind::Host,
                format!("{} (after the host failed it: {fault})", failure.message),
            )),
            (result, _) => result,
        };
        match (result, lifecycle) {
            (Ok((value, instance)), Lifecycle::Pooled { max_uses }) => {
                if uses + 1 < max_uses {
                    store.data_mut().end_use();
                    let warm = Warm {
                        store,
                        instance,
                        uses: uses + 1,
                    };
                    self.warm.give_back(account, module.id(), warm);
                }
                (Ok(value), refused, ran)
            }
            (result, _) => (result.map(|(value, _)| value), refused, ran),
        }
    }

    /// Refuses an outcome that carries more than the outcome limit.
    fn check_outcome(&self, outcome: &Outcome) -> Result<(), Failure> {
        let size = match outcome {
            Outcome::ContinueTo(keys) => keys.iter().map(String::len).sum(),
            Outcome::Stop => 0,
            Outcome::Branch(id) => id.len(),
        };
        if size > self.limits.outcome_bytes {
            return Err(Failure::new(
                FailureKind::Output,
                format!(
                    "handle: outcome of {size} bytes exceeds the limit of {} bytes",
                    self.limits.outcome_bytes
                ),
            ));
        }
        Ok(())
    }
}
