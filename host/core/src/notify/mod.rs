//! Notifications: built into KAZOO's wire format ([`wire`]) from the live call and handed to
//! a [`Sink`] ([`sink`]): JSON lines, memory, or an AMQP broker ([`amqp`]) through a durable
//! [`outbox`].

pub mod amqp;
pub mod outbox;
pub mod sink;
pub mod target;
pub mod wire;

use std::sync::Arc;
use std::time::SystemTime;

pub use amqp::{AmqpSink, MAILER_ROUTING_KEYS};
pub use outbox::{Outbox, OutboxError};
#[cfg(feature = "testing")]
pub use sink::MemorySink;
pub use sink::{JsonLinesSink, Sink, SinkError};
pub use target::{MAILER_QUEUE, NotificationTarget, NotificationsConfig, OpenError, OpenSink};
pub use wire::{OutboundNotification, WireError};

use crate::bindings::cfhost::callflow::notify::Notification;
use crate::call::Call;

/// Why a notification was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Builds notifications for calls and publishes them to one sink.
pub struct Notifier {
    sink: Arc<dyn Sink>,
    node: String,
}

impl Notifier {
    /// A notifier publishing to `sink`, naming this host `node` in every envelope.
    pub fn new(sink: Arc<dyn Sink>, node: String) -> Self {
        Notifier { sink, node }
    }

    /// Builds the notification for `call` at `now` and publishes it; returns its routing key.
    pub async fn publish(
        &self,
        call: &Call,
        now: SystemTime,
        notification: &Notification,
    ) -> Result<String, PublishError> {
        let outbound = wire::build(call, now, &self.node, notification)?;
        let routing_key = outbound.routing_key.clone();
        self.sink.publish(&outbound).await?;
        Ok(routing_key)
    }
}

/// The `Node` of this host's envelopes: `cfhost@<hostname>`, as KAZOO names Erlang nodes.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("cfhost@{host}")
}
