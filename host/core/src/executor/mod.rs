//! Walks a callflow for one call with KAZOO's semantics (kazoo-semantics.md §3), then runs the
//! call's termination callbacks.
//!
//! - Each node runs in a fresh instance of its module. Its outcome picks the next node: the
//!   first named child that exists, else `_`; a missing `_` or an empty child `{}` stops.
//! - A node with `skip_module` (`true` or `"true"`), or naming no loaded module, is not run:
//!   the flow goes to its `_` child, with a warning in the trace.
//! - A module that fails (returns an error, traps, or breaks a limit) or is quarantined is
//!   logged and counted; by its failure mode the flow goes to `_` (fail-open, as KAZOO does
//!   when a module process crashes) or the host hangs up (fail-closed). See [`crate::policy`].
//! - `stop` returns to the flow that branched here, if any, else ends the call. A branch pushes
//!   the branching node's `_` child and is refused once the branch budget (50) is spent: the
//!   call then ends.
//! - A call has a budget ([`CallBudget`]): run time for all its instances, callbacks included,
//!   and a number of nodes across its branches. Once it is spent the flow ends, and callbacks
//!   not yet run are recorded as not run. An instance stopped by the budget is not the
//!   module's failure (never towards quarantine).
//! - An account's instances run WebAssembly in turns of the account's share of threads
//!   ([`crate::policy::share`], from their first epoch tick on): one account's heavy calls wait
//!   behind each other.
//! - Once the channel is destroyed, the flow ends after the running node; after a transfer it
//!   ends without callbacks.
//! - When the flow ends before the channel was destroyed, the host hangs up itself and the
//!   callbacks get that hangup's info (`NORMAL_CLEARING`). KAZOO's executor gives them none
//!   there, so its missed-call email cannot say why the call ended; cfhost's always can.
//!
//! Termination callbacks run in registration order (not KAZOO's sort by module name), each in
//! its own fresh instance; identical registrations (same module, same state) run once; a
//! callback that fails or traps is recorded and never skips the ones after it. Every instance
//! runs with the account's limits and the module's grant ([`instance`]).

mod budget;
mod instance;
mod warm;

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::bindings::Outcome;
use crate::call::{Call, CallFlags, Hangup, HangupCause};
use crate::callflow::{AccountCallflows, Callflow, Child, Node};
use crate::context::CallContext;
use crate::engine::Sandbox;
use crate::policy::{FailureKind, FailureMode, Health, Limits, Policy};
use crate::registry::{LoadedModule, ModuleView};
use crate::trace::{AfterFailure, Level, NodeResult, TraceEvent};
pub use budget::CallBudget;
use instance::Run;
pub use warm::{MAX_IDLE_INSTANCES, WarmInstances};

/// How many branches a call may take, as KAZOO's `callflow.max_branch_count`.
pub const DEFAULT_MAX_BRANCHES: u32 = 50;

/// Why one node run on its own ([`Executor::run_node`]) gave no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The module failed: the failure and its kind.
    #[error("{0}")]
    Failed(crate::policy::Failure),
    #[error("not run: the module is quarantined")]
    Quarantined,
}

/// Why a call's flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The flow ran out of nodes or stopped.
    FlowEnded,
    /// The channel was destroyed (the caller or the switch hung up).
    ChannelDestroyed,
    /// A branch was refused because the branch budget was spent.
    BranchLimit,
    /// The call was transferred away; no callbacks ran.
    Transferred,
    /// A fail-closed module failed (or was quarantined); the host hung up.
    FailedClosed,
    /// The call spent its CPU or node budget; the host hung up.
    CallBudget,
}

impl EndReason {
    /// What ended the flow, in words.
    pub fn describe(self) -> &'static str {
        match self {
            EndReason::FlowEnded => "the flow ended; the host hung up",
            EndReason::ChannelDestroyed => "the channel was destroyed",
            EndReason::BranchLimit => "the branch limit was reached",
            EndReason::Transferred => "the call was transferred; no callbacks run",
            EndReason::FailedClosed => "a fail-closed module failed; the host hung up",
            EndReason::CallBudget => "the call spent its budget; the host hung up",
        }
    }
}

/// What happened to one call.
#[derive(Debug, Clone)]
pub struct CallReport {
    pub call_id: String,
    pub callflow_id: String,
    pub end: EndReason,
    pub hangup: Option<Hangup>,
    pub flags: CallFlags,
    pub trace: Vec<TraceEvent>,
}

impl CallReport {
    /// The termination callbacks that ran, with their errors.
    pub fn callbacks(&self) -> Vec<(&str, Option<&str>)> {
        self.trace
            .iter()
            .filter_map(|event| match event {
                TraceEvent::CallbackResult { module, error } => {
                    Some((module.as_str(), error.as_deref()))
                }
                _ => None,
            })
            .collect()
    }

    /// The modules of the nodes that ran, in order.
    pub fn nodes_run(&self) -> Vec<&str> {
        self.trace
            .iter()
            .filter_map(|event| match event {
                TraceEvent::Node { module, .. } => Some(module.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Runs calls against one account's callflows with one set of modules.
pub struct Executor<'a> {
    pub sandbox: &'a Sandbox,
    /// The modules the call's account sees, as they were when the call started.
    pub modules: ModuleView<'a>,
    pub callflows: &'a AccountCallflows,
    pub max_branches: u32,
    pub policy: &'a Policy,
    pub health: &'a Health,
    /// Idle instances of pooled modules.
    pub warm: &'a WarmInstances,
    /// The account's limits.
    pub limits: Arc<Limits>,
    /// What this call has spent of its budget.
    pub budget: CallBudget,
    /// The account's share of threads.
    pub share: Arc<Semaphore>,
}

/// What the executor does after a node.
enum Step {
    Next(Vec<String>),
    Stop,
    Branch(String),
    /// A fail-closed module failed: hang up with this cause.
    HangUp(HangupCause),
    /// The call's budget ran out while the node ran.
    OutOfBudget,
}

impl Executor<'_> {
    /// Runs one node of `module` with `data` (already valid for its schema) outside of any
    /// flow: for benchmarks and for trying a module out.
    pub async fn run_node(
        &self,
        context: &Arc<CallContext>,
        module: &LoadedModule,
        data: &str,
    ) -> Result<Outcome, NodeError> {
        match self.run_handle(context, module, data).await {
            Run::Done(outcome) => Ok(outcome),
            Run::Failed(failure) => Err(NodeError::Failed(failure)),
            Run::Quarantined => Err(NodeError::Quarantined),
        }
    }

    /// Walks `callflow` for the call of `context`, then runs its termination callbacks.
    pub async fn run(&self, context: Arc<CallContext>, callflow: &Callflow) -> CallReport {
        let end = self.walk(&context, callflow).await;
        let call = context.call();
        // As the flow left it; the host's own hangup below fills it in for the callbacks.
        let mut hangup = call.hangup();
        let flags = call.flags();
        context.trace().push(TraceEvent::Ended {
            reason: end.describe().to_string(),
            hangup: hangup.clone(),
            bridged: flags.bridged,
            message_left: flags.message_left,
        });
        if end != EndReason::Transferred {
            if hangup.is_none() {
                let hung_up = context
                    .switch()
                    .hangup(call, &HangupCause::NORMAL_CLEARING)
                    .await;
                if let Err(error) = hung_up {
                    tracing::warn!(call_id = call.details().call_id, "hangup: {error}");
                }
                hangup = call.hangup();
            }
            self.run_callbacks(&context, hangup.clone()).await;
        }
        CallReport {
            call_id: call.details().call_id.clone(),
            callflow_id: callflow.id.clone(),
            end,
            hangup,
            flags: call.flags(),
            trace: context.trace().take(),
        }
    }

    async fn walk(&self, context: &Arc<CallContext>, callflow: &Callflow) -> EndReason {
        let mut pending: Vec<&Node> = Vec::new();
        let mut current = root(callflow);
        let mut branches_left = self.max_branches;
        loop {
            let Some(node) = current.or_else(|| pending.pop()) else {
                return EndReason::FlowEnded;
            };
            if let Some(end) = channel_end(context.call()) {
                return end;
            }
            if self.budget.cpu_left().is_zero() || !self.budget.take_node() {
                context.trace().push(TraceEvent::Log {
                    module: node.module.clone(),
                    level: Level::Warn,
                    message: format!("not run: {}", self.budget.describe_spent()),
                });
                tracing::warn!(
                    module = node.module,
                    path = node.path,
                    "call ended: {}",
                    self.budget.describe_spent()
                );
                return EndReason::CallBudget;
            }
            let step = self.step(context, node).await;
            if let Some(end) = channel_end(context.call()) {
                return end;
            }
            current = match step {
                Step::OutOfBudget => return EndReason::CallBudget,
                Step::Next(keys) => node.next(&keys),
                Step::Stop => None,
                Step::HangUp(cause) => {
                    if let Err(error) = context.switch().hangup(context.call(), &cause).await {
                        tracing::warn!(module = node.module, "fail-closed hangup: {error}");
                    }
                    return EndReason::FailedClosed;
                }
                Step::Branch(id) => {
                    let Some(target) = self.callflows.by_id(&id) else {
                        context.trace().push(TraceEvent::Log {
                            module: node.module.clone(),
                            level: Level::Error,
                            message: format!("no callflow `{id}` to branch into; continuing"),
                        });
                        current = node.default_child();
                        continue;
                    };
                    if branches_left == 0 {
                        return EndReason::BranchLimit;
                    }
                    branches_left -= 1;
                    context.trace().push(TraceEvent::Branch {
                        callflow_id: id.clone(),
                    });
                    pending.extend(node.default_child());
                    root(target)
                }
            };
        }
    }

    /// Runs one node (or skips it) and says where to go next.
    async fn step(&self, context: &Arc<CallContext>, node: &Node) -> Step {
        let skip = |reason: &str| {
            context.trace().push(TraceEvent::Skipped {
                path: node.path.clone(),
                module: node.module.clone(),
                reason: reason.to_string(),
            });
            tracing::warn!(
                module = node.module,
                path = node.path,
                "node skipped: {reason}"
            );
            Step::Next(Vec::new())
        };
        if node.skip {
            return skip("skip_module is set");
        }
        let Some(module) = self.modules.get(&node.module) else {
            return skip("unknown module");
        };
        context.trace().push(TraceEvent::Node {
            path: node.path.clone(),
            module: node.module.clone(),
        });
        context.set_node_children(Some(Arc::clone(&node.child_keys)));
        let run = self.run_handle(context, module, &node.data).await;
        context.set_node_children(None);
        let (step, result) = match run {
            Run::Done(Outcome::ContinueTo(keys)) => {
                (Step::Next(keys.clone()), NodeResult::Continue(keys))
            }
            Run::Done(Outcome::Stop) => (Step::Stop, NodeResult::Stop),
            Run::Done(Outcome::Branch(id)) => (Step::Branch(id.clone()), NodeResult::Branch(id)),
            Run::Failed(failure) if failure.kind == FailureKind::CallBudget => {
                // Not the module's failure: the flow ends here, whatever the module's
                // failure mode.
                let failure = failure.to_string();
                let then = AfterFailure::EndCall;
                (Step::OutOfBudget, NodeResult::Failed { failure, then })
            }
            Run::Failed(failure) => {
                tracing::error!(
                    module = node.module,
                    path = node.path,
                    "node failed: {failure}"
                );
                let (step, then) = self.after_failure(&node.module);
                let failure = failure.to_string();
                (step, NodeResult::Failed { failure, then })
            }
            Run::Quarantined => {
                tracing::warn!(module = node.module, path = node.path, "module quarantined");
                let (step, then) = self.after_failure(&node.module);
                (step, NodeResult::Quarantined { then })
            }
        };
        context.trace().push(TraceEvent::NodeResult {
            module: node.module.clone(),
            result,
        });
        step
    }

    /// What a failed or quarantined node does, by its module's failure mode.
    fn after_failure(&self, module: &str) -> (Step, AfterFailure) {
        match self.policy.failure_mode(module) {
            FailureMode::FailOpen => (Step::Next(Vec::new()), AfterFailure::Continue),
            FailureMode::FailClosed => {
                let cause = self.policy.hangup_cause.clone();
                (Step::HangUp(cause.clone()), AfterFailure::HangUp(cause))
            }
        }
    }

    /// Runs every registered callback, each in a fresh instance; failures do not stop the rest.
    async fn run_callbacks(&self, context: &Arc<CallContext>, hangup: Option<Hangup>) {
        for registration in context.take_callbacks() {
            context.trace().push(TraceEvent::Callback {
                module: registration.module.to_string(),
            });
            let result = match self.modules.get(&registration.module) {
                None => Err(format!("module `{}` is not loaded", registration.module)),
                Some(module) => {
                    match self
                        .run_callback(context, module, hangup.as_ref(), &registration.state)
                        .await
                    {
                        Run::Done(()) => Ok(()),
                        Run::Failed(failure) => Err(failure.to_string()),
                        Run::Quarantined => Err("not run: the module is quarantined".to_string()),
                    }
                }
            };
            if let Err(e) = &result {
                tracing::error!(
                    module = &*registration.module,
                    "termination callback failed: {e}"
                );
            }
            context.trace().push(TraceEvent::CallbackResult {
                module: registration.module.to_string(),
                error: result.err(),
            });
        }
    }
}

fn root(callflow: &Callflow) -> Option<&Node> {
    match &callflow.flow {
        Child::Node(node) => Some(node),
        Child::Empty => None,
    }
}

/// Whether the channel's state ends the flow now.
fn channel_end(call: &Call) -> Option<EndReason> {
    if call.is_transferred() {
        Some(EndReason::Transferred)
    } else if call.is_destroyed() {
        Some(EndReason::ChannelDestroyed)
    } else {
        None
    }
}
