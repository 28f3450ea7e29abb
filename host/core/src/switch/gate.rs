//! A gate that holds calls in a ringing bridge until many ring at once: how the load tests and
//! `cfhost bench` hold thousands of calls in flight (see [`SimulatedSwitch::before_bridge`]).
//!
//! [`SimulatedSwitch::before_bridge`]: super::SimulatedSwitch::before_bridge

use std::sync::atomic::{AtomicUsize, Ordering};

/// Holds every bridge that calls [`RingGate::ring`] until `expected` calls ring at once, then
/// lets them all go.
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
