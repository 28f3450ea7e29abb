//! The simulator with a hook before every bridge: real ringing time, or a gate that holds
//! calls until many ring at once (load tests and `cfhost bench`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use super::{SimulatedSwitch, Switch};
use crate::bindings::cfhost::callflow::call_control::{BridgeRequest, BridgeResult, RecordResult};
use crate::call::Call;

/// A hook a [`HookedSwitch`] awaits before every bridge.
pub type BridgeHook = Box<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// The simulator, except that every bridge first awaits a hook.
pub struct HookedSwitch {
    simulator: SimulatedSwitch,
    before_bridge: BridgeHook,
}

impl HookedSwitch {
    /// `simulator`, whose bridges await `before_bridge` first.
    pub fn new(simulator: SimulatedSwitch, before_bridge: BridgeHook) -> Self {
        HookedSwitch {
            simulator,
            before_bridge,
        }
    }
}

#[async_trait::async_trait]
impl Switch for HookedSwitch {
    async fn answer(&self, call: &Call) -> Result<(), String> {
        self.simulator.answer(call).await
    }
    async fn bridge(&self, call: &Call, request: &BridgeRequest) -> BridgeResult {
        (self.before_bridge)().await;
        self.simulator.bridge(call, request).await
    }
    async fn record_voicemail(&self, call: &Call, box_id: &str, max_secs: u32) -> RecordResult {
        self.simulator
            .record_voicemail(call, box_id, max_secs)
            .await
    }
    async fn hangup(&self, call: &Call, cause: &str) {
        self.simulator.hangup(call, cause).await
    }
    fn now(&self) -> SystemTime {
        self.simulator.now()
    }
}

/// Holds every bridge that calls [`RingGate::ring`] until `expected` calls ring at once, then
/// lets them all go: how load tests hold many calls inside a ringing bridge.
pub struct RingGate {
    expected: usize,
    ringing: AtomicUsize,
    open: tokio::sync::watch::Sender<bool>,
}

impl RingGate {
    /// A gate that opens once `expected` calls ring.
    pub fn new(expected: usize) -> Self {
        RingGate {
            expected,
            ringing: AtomicUsize::new(0),
            open: tokio::sync::watch::channel(false).0,
        }
    }

    /// Rings, and waits until the gate opens.
    pub async fn ring(&self) {
        let mut opened = self.open.subscribe();
        if self.ringing.fetch_add(1, Ordering::SeqCst) + 1 == self.expected {
            self.open.send_replace(true);
        }
        let _ = opened.wait_for(|open| *open).await;
    }

    /// How many calls have rung.
    pub fn rung(&self) -> usize {
        self.ringing.load(Ordering::SeqCst)
    }
}
