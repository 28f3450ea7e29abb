//! Publishing to RabbitMQ in KAZOO's way: the topic exchange `notifications` (declared durable
//! if missing), KAZOO's routing keys, `content-type: application/json`, persistent delivery,
//! publisher confirms.
//!
//! [`AmqpSink::publish`] returns once the notification is on disk in the [`Outbox`]; a
//! background task delivers the outbox in order and marks each notification delivered only
//! when the broker confirmed it. While the broker is unreachable, drops the connection or
//! nacks, notifications stay in the outbox and are retried, in order, with backoff; calls go on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use tokio::task::JoinHandle;

use super::OutboundNotification;
use super::outbox::{Outbox, OutboxError, Pending};
use super::sink::{Sink, SinkError};
use super::wire::EXCHANGE;

/// How many publishes may wait for their confirms at once.
const WINDOW: usize = 256;
/// How many confirms move the persisted delivered watermark at once.
const MARK_EVERY: u64 = 256;
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
        match self.outbox.append(notification).await {
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
    // A sliding window of publishes waiting for their confirms, oldest first. Confirms of one
    // channel come in order; each ack moves the delivered watermark, persisted every
    // `MARK_EVERY` acks and whenever the window empties.
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    let mut last_sent = 0;
    let mut confirmed_through = None;
    let mut unmarked = 0;
    loop {
        if in_flight.len() <= WINDOW / 2 {
            for pending in outbox.after(last_sent, WINDOW - in_flight.len()) {
                let confirm = channel
                    .basic_publish(
                        pending.exchange.as_str().into(),
                        pending.routing_key.as_str().into(),
                        BasicPublishOptions::default(),
                        &pending.body,
                        properties(&pending),
                    )
                    .await?;
                last_sent = pending.seq;
                in_flight.push_back((pending.seq, confirm));
            }
        }
        let Some((seq, confirm)) = in_flight.pop_front() else {
            outbox.wait_for_pending().await;
            continue;
        };
        let confirmation = confirm.await;
        let acked = matches!(&confirmation, Ok(c) if c.is_ack());
        if acked {
            confirmed_through = Some(seq);
            unmarked += 1;
        }
        let mark_now = !acked || unmarked >= MARK_EVERY || in_flight.is_empty();
        if mark_now && let Some(through) = confirmed_through.take() {
            outbox.mark_delivered(through)?;
            counters.confirmed.fetch_add(unmarked, Ordering::Relaxed);
            unmarked = 0;
        }
        match confirmation {
            Ok(_) if acked => {}
            Ok(_) => {
                counters.nacked.fetch_add(1, Ordering::Relaxed);
                return Err(DeliveryError::Nacked { seq });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// AMQP properties as KAZOO sets them, plus persistence and the Msg-ID as message id.
fn properties(pending: &Pending) -> BasicProperties {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_timestamp(now);
    if let Some(msg_id) = &pending.msg_id {
        properties = properties.with_message_id(msg_id.as_str().into());
    }
    properties
}
