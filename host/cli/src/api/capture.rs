//! A sink that hands every notification on to the real sink and keeps a copy for the API call
//! that caused it (matched by `Call-ID`), so `POST .../calls` can answer with what was
//! published. A simulated call that is not to publish has its notifications kept, not passed on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cfhost_core::notify::{OutboundNotification, Sink, SinkError};

/// The sink every call publishes to.
pub struct CaptureSink {
    inner: Arc<dyn Sink>,
    watched: Mutex<HashMap<String, Watched>>,
    published: AtomicU64,
}

/// Where one notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// No API call watches it: to the real sink only.
    Unwatched,
    /// A simulated call that is not to publish: kept, not passed on.
    Held,
    /// To the real sink, and a copy kept for the API call.
    PublishedAndKept,
}

/// What a watched call published, and whether it goes on to the real sink.
#[derive(Default)]
struct Watched {
    copies: Vec<OutboundNotification>,
    publish: bool,
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

    /// Starts keeping copies of what call `call_id` publishes; only with `publish` do they go
    /// on to the real sink.
    pub fn watch(&self, call_id: &str, publish: bool) {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                call_id.to_string(),
                Watched {
                    copies: Vec::new(),
                    publish,
                },
            );
    }

    /// Stops watching `call_id` and returns what it published.
    pub fn take(&self, call_id: &str) -> Vec<OutboundNotification> {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(call_id)
            .unwrap_or_default()
            .copies
    }

    /// Where a notification of `call_id` goes; a held one's copy is kept here.
    fn route(&self, call_id: Option<&str>, notification: &OutboundNotification) -> Route {
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        match call_id.and_then(|id| watched.get_mut(id)) {
            None => Route::Unwatched,
            Some(watched) if watched.publish => Route::PublishedAndKept,
            Some(watched) => {
                watched.copies.push(notification.clone());
                Route::Held
            }
        }
    }

    /// Notifications published since the start.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl Sink for CaptureSink {
    async fn publish(&self, notification: &OutboundNotification) -> Result<(), SinkError> {
        let call_id = notification.payload.get("Call-ID").and_then(|v| v.as_str());
        let route = self.route(call_id, notification);
        if route == Route::Held {
            return Ok(());
        }
        self.inner.publish(notification).await?;
        self.published.fetch_add(1, Ordering::Relaxed);
        // A copy once the sink took it (a call nobody watches, a SIP call's, takes no lock).
        if let (Route::PublishedAndKept, Some(call_id)) = (route, call_id) {
            let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(watched) = watched.get_mut(call_id) {
                watched.copies.push(notification.clone());
            }
        }
        Ok(())
    }
}
