//! Fair shares of the host's threads between accounts. Each account may run WebAssembly in at
//! most [`Limits::cpu_share`](super::Limits::cpu_share) instances at once; its other instances
//! wait for a turn, behind their own account's, never in front of another account's. An
//! instance runs until its first epoch tick (10 ms) without a turn, and takes one at that tick
//! if it has run 1 ms itself by then (a tick that passes while it only waited behind other
//! tasks does not count), else at the next (so
//! that a burst of calls does not hold instance slots in the queue: taking it before
//! instantiation ran the pool out with 10,000 held calls let go at once); it holds the turn
//! only while it runs WebAssembly: it lets go while a host call waits on the switch (and runs
//! on after the wait for one more tick), and at every tick it passes its turn to the next of
//! its account's waiting instances (first come, first served). So an account whose instances
//! each finish within a tick is not held to its share; the call budget still bounds each call.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The share of every account that has run a call, created on first use.
#[derive(Debug, Default)]
pub struct CpuShares {
    shares: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl CpuShares {
    /// `account`'s share: `turns` instances may run at once. The first call of an account
    /// fixes its size (limits are read once, at start).
    pub fn of(&self, account: &str, turns: usize) -> Arc<Semaphore> {
        let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
        let share = shares
            .entry(account.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(turns.max(1))));
        Arc::clone(share)
    }
}

/// One instance's place in its account's share: whether it holds a turn now.
#[derive(Debug)]
pub struct Turn {
    share: Arc<Semaphore>,
    held: Mutex<Option<OwnedSemaphorePermit>>,
    /// Gave its turn back for a wait on the switch, and has not had a tick since.
    waited: AtomicBool,
}

impl Turn {
    /// A place in `share`, not yet holding a turn.
    pub fn new(share: Arc<Semaphore>) -> Arc<Self> {
        Arc::new(Turn {
            share,
            held: Mutex::new(None),
            waited: AtomicBool::new(false),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a turn (at once when this instance holds one already).
    pub async fn take(&self) {
        if self.held().is_some() {
            return;
        }
        // The semaphore is never closed: an error cannot happen, and would only mean running
        // without a turn.
        // Unconstrained: a turn that is free is taken at once, never deferred by tokio's
        // cooperative budget (a yield there reorders calls, and held calls let go at once
        // then overlap more instances than the pool has).
        let acquire = Arc::clone(&self.share).acquire_owned();
        let permit = tokio::task::coop::unconstrained(acquire).await.ok();
        *self.held() = permit;
    }

    /// Gives the turn back, for a wait or at the end of a run.
    pub fn give_back(&self) {
        self.held().take();
    }

    /// Gives the turn back for a wait on the switch: after it, the instance runs on without
    /// a turn until its next tick.
    pub fn give_back_to_wait(&self) {
        self.give_back();
        self.waited.store(true, Ordering::Relaxed);
    }

    /// What the instance does at an epoch tick: `None` to run on, else the wait for its next
    /// turn, given back now so that the account's instances that were waiting go first. An
    /// instance without a turn runs on while it has hardly run itself (`has_run` false: the
    /// tick is the wall clock's, and an instance that waited behind other tasks while it
    /// passed has not run long; making it wait for a turn then held a share of one to one
    /// thread at a time, issue 30), and at the first tick after a wait on
    /// the switch (so that an instance back from it finishes rather than wait in the queue
    /// holding its instance slot).
    pub fn at_tick(
        self: &Arc<Self>,
        has_run: bool,
    ) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        let waited = self.waited.swap(false, Ordering::Relaxed);
        if !self.is_held() && (waited || !has_run) {
            return None;
        }
        self.give_back();
        let turn = Arc::clone(self);
        // wasmtime runs on at once when the future is ready: yield first, as every tick does.
        Some(Box::pin(async move {
            tokio::task::yield_now().await;
            turn.take().await
        }))
    }

    /// Whether this instance holds a turn now.
    pub fn is_held(&self) -> bool {
        self.held().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn an_account_runs_no_more_instances_than_its_share_and_others_are_not_held() {
        let shares = CpuShares::default();
        let heavy = shares.of("heavy", 1);
        let (first, second) = (Turn::new(Arc::clone(&heavy)), Turn::new(heavy));
        first.take().await;
        assert!(first.is_held());
        let waiting = tokio::time::timeout(Duration::from_millis(50), second.take()).await;
        assert!(
            waiting.is_err(),
            "a second turn of a share of one was given"
        );
        let other = Turn::new(shares.of("other", 1));
        tokio::time::timeout(Duration::from_millis(50), other.take())
            .await
            .expect("another account waited behind the heavy one");
        // At a tick the turn goes to the waiting instance first.
        let next = first.at_tick(true).expect("a held turn is passed on");
        second.take().await;
        assert!(second.is_held() && !first.is_held());
        let again = tokio::time::timeout(Duration::from_millis(50), next).await;
        assert!(
            again.is_err(),
            "the passed turn came back before the waiter gave it up"
        );
        // Back from a wait, an instance runs on for one tick, then waits for a turn.
        second.give_back_to_wait();
        assert!(second.at_tick(true).is_none());
        let queued = second
            .at_tick(true)
            .expect("the second tick waits for a turn");
        queued.await;
        assert!(second.is_held());
    }
}
