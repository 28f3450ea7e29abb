//! Where notifications go. The embedded default writes JSON lines; tests keep them in memory
//! (`testing` feature).

use std::io::Write;
use std::sync::Mutex;

use super::OutboundNotification;

/// A notification could not be handed over.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write the notification: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Outbox(#[from] super::outbox::OutboxError),
}

/// Accepts notifications. A notification counts as published once `publish` returns `Ok`.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// Publishes one notification.
    async fn publish(&self, notification: &OutboundNotification) -> Result<(), SinkError>;
}

/// Writes one JSON object per line, `{"exchange", "routing_key", "payload"}`, flushed per line.
pub struct JsonLinesSink {
    out: Mutex<Box<dyn Write + Send>>,
}

impl JsonLinesSink {
    /// A sink writing to `out` (a file, stdout, ...).
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        JsonLinesSink {
            out: Mutex::new(out),
        }
    }
}

#[async_trait::async_trait]
impl Sink for JsonLinesSink {
    async fn publish(&self, notification: &OutboundNotification) -> Result<(), SinkError> {
        let mut line = serde_json::to_vec(notification).map_err(std::io::Error::from)?;
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(&line)?;
        out.flush()?;
        Ok(())
    }
}

/// Keeps notifications in memory, in publish order (for tests: the `testing` feature).
#[cfg(feature = "testing")]
#[derive(Default)]
pub struct MemorySink {
    published: Mutex<Vec<OutboundNotification>>,
}

#[cfg(feature = "testing")]
impl MemorySink {
    /// Everything published so far.
    pub fn published(&self) -> Vec<OutboundNotification> {
        self.published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(feature = "testing")]
#[async_trait::async_trait]
impl Sink for MemorySink {
    async fn publish(&self, notification: &OutboundNotification) -> Result<(), SinkError> {
        self.published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(notification.clone());
        Ok(())
    }
}
