//! Publishing to RabbitMQ in KAZOO's way: the topic exchange `notifications` (declared durable
//! if missing), KAZOO's routing keys, `content-type: application/json`, persistent delivery,
//! publisher confirms.
//!
//! [`AmqpSink::publish`] returns once the notification is on disk in the [`Outbox`]; a
//! background task delivers the outbox in order and marks each notification delivered only
//! when the broker confirmed it. While the broker is unreachable, drops the connection or
//! nacks, notifications stay in the outbox and are retried, in order, with backoff; calls go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use tokio::task::JoinHandle;

use super::OutboundNotification;
use super::outbox::{Outbox, OutboxError};
use super::sink::{Sink, SinkError};
use super::wire::EXCHANGE;

/// How many notifications are published before waiting for their confirms.
const BATCH: usize = 256;
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

/// Counters of the AMQP sink.
#[derive(Debug, Default)]
pub struct AmqpCounters {
    /// Notifications accepted into the outbox.
    pub accepted: AtomicU64,
    /// Notifications the broker confirmed.
    pub confirmed: AtomicU64,
    /// Notifications refused because the outbox was full.
    pub refused_outbox_full: AtomicU64,
    /// Notifications the broker nacked (they are retried).
    pub nacked: AtomicU64,
    /// Connection attempts or connections that failed.
    pub connection_failures: AtomicU64,
}

/// Publishes notifications to an AMQP broker through a durable outbox.
pub struct AmqpSink {
    outbox: Arc<Outbox>,
    counters: Arc<AmqpCounters>,
    delivery: JoinHandle<()>,
}

impl AmqpSink {
    /// Starts delivering `outbox` (including what an earlier run left in it) to the broker at
    /// `url`. Must be called inside a tokio runtime.
    pub fn start(url: String, outbox: Outbox) -> Self {
        let outbox = Arc::new(outbox);
        let counters = Arc::new(AmqpCounters::default());
        let delivery = tokio::spawn(deliver(url, Arc::clone(&outbox), Arc::clone(&counters)));
        AmqpSink {
            outbox,
            counters,
            delivery,
        }
    }

    /// The sink's counters.
    pub fn counters(&self) -> &AmqpCounters {
        &self.counters
    }

    /// The outbox behind the sink.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Waits until every notification is confirmed, or `timeout` passes; returns how many
    /// are still waiting in the outbox.
    pub async fn flush(&self, timeout: Duration) -> usize {
        let _ = tokio::time::timeout(timeout, self.outbox.wait_until_empty()).await;
        self.outbox.len()
    }
}

impl Drop for AmqpSink {
    fn drop(&mut self) {
        self.delivery.abort();
    }
}

#[async_trait::async_trait]
impl Sink for AmqpSink {
    async fn publish(&self, notification: &OutboundNotification) -> Result<(), SinkError> {
        let outbox = Arc::clone(&self.outbox);
        let notification = notification.clone();
        let appended = tokio::task::spawn_blocking(move || outbox.append(&notification))
            .await
            .map_err(|e| SinkError::Io(std::io::Error::other(e)))?;
        match appended {
            Ok(_) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e @ OutboxError::Full { .. }) => {
                self.counters
                    .refused_outbox_full
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!("notification refused: {e}");
                Err(SinkError::Outbox(e))
            }
            Err(e) => Err(SinkError::Outbox(e)),
        }
    }
}

/// Delivers the outbox forever, reconnecting with backoff.
async fn deliver(url: String, outbox: Arc<Outbox>, counters: Arc<AmqpCounters>) {
    let mut retry = FIRST_RETRY;
    loop {
        outbox.wait_for_pending().await;
        match deliver_connected(&url, &outbox, &counters, &mut retry).await {
            Ok(()) => {}
            Err(e) => {
                counters.connection_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "notifications: {e}; {} waiting in the outbox, retrying in {retry:?}",
                    outbox.len()
                );
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(LONGEST_RETRY);
            }
        }
    }
}

/// Why delivery over one connection stopped.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused notification {seq} (nack)")]
    Nacked { seq: u64 },
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

async fn deliver_connected(
    url: &str,
    outbox: &Outbox,
    counters: &AmqpCounters,
    retry: &mut Duration,
) -> Result<(), DeliveryError> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    tracing::info!("notifications: connected to the broker");
    *retry = FIRST_RETRY;
    loop {
        outbox.wait_for_pending().await;
        let batch = outbox.front(BATCH);
        let mut confirms = Vec::with_capacity(batch.len());
        for (seq, notification) in &batch {
            let body =
                serde_json::to_vec(&notification.payload).expect("a JSON object always serializes");
            let confirm = channel
                .basic_publish(
                    notification.exchange.as_str().into(),
                    notification.routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties(notification),
                )
                .await?;
            confirms.push((*seq, confirm));
        }
        let mut confirmed_through = None;
        let mut result = Ok(());
        for (seq, confirm) in confirms {
            if result.is_err() {
                break;
            }
            match confirm.await {
                Ok(confirmation) if confirmation.is_ack() => confirmed_through = Some(seq),
                Ok(_) => {
                    counters.nacked.fetch_add(1, Ordering::Relaxed);
                    result = Err(DeliveryError::Nacked { seq });
                }
                Err(e) => result = Err(e.into()),
            }
        }
        if let Some(seq) = confirmed_through {
            let before = outbox.len();
            outbox.mark_delivered(seq)?;
            let delivered = before - outbox.len();
            counters
                .confirmed
                .fetch_add(delivered as u64, Ordering::Relaxed);
        }
        result?;
    }
}

/// AMQP properties as KAZOO sets them, plus persistence and the Msg-ID as message id.
fn properties(notification: &OutboundNotification) -> BasicProperties {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_timestamp(now);
    if let Some(msg_id) = notification.payload.get("Msg-ID").and_then(|v| v.as_str()) {
        properties = properties.with_message_id(msg_id.into());
    }
    properties
}
