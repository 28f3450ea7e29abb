//! A sink that hands every notification on to the real sink and keeps a copy for the API call
//! that caused it (matched by `Call-ID`), so `POST .../calls` can answer with what was published.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cfhost_core::notify::{OutboundNotification, Sink, SinkError};

/// The sink every call publishes to.
pub struct CaptureSink {
    inner: Arc<dyn Sink>,
    watched: Mutex<HashMap<String, Vec<OutboundNotification>>>,
    published: AtomicU64,
}

impl CaptureSink {
    /// Publishes to `inner`.
    pub fn new(inner: Arc<dyn Sink>) -> Self {
        CaptureSink {
            inner,
            watched: Mutex::new(HashMap::new()),
            published: AtomicU64::new(0),
        }
    }

    /// Starts keeping copies of what call `call_id` publishes.
    pub fn watch(&self, call_id: &str) {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(call_id.to_string())
            .or_default();
    }

    /// Stops watching `call_id` and returns what it published.
    pub fn take(&self, call_id: &str) -> Vec<OutboundNotification> {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(call_id)
            .unwrap_or_default()
    }

    /// Notifications published since the start.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl Sink for CaptureSink {
    async fn publish(&self, notification: &OutboundNotification) -> Result<(), SinkError> {
        self.inner.publish(notification).await?;
        self.published.fetch_add(1, Ordering::Relaxed);
        if let Some(call_id) = notification.payload.get("Call-ID").and_then(|v| v.as_str()) {
            let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(copies) = watched.get_mut(call_id) {
                copies.push(notification.clone());
            }
        }
        Ok(())
    }
}
