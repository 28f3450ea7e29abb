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

use futures::FutureExt;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    PublisherConfirm,
};
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
    /// `url`, declaring `mailer_queue` (if any) so that what is published while no mailer
    /// runs waits for one. Must be called inside a tokio runtime.
    pub fn start(url: String, outbox: Outbox, mailer_queue: Option<String>) -> Self {
        let outbox = Arc::new(outbox);
        let counters = Arc::new(AmqpCounters::default());
        let delivery = tokio::spawn(deliver(
            url,
            mailer_queue,
            Arc::clone(&outbox),
            Arc::clone(&counters),
        ));
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

/// Declares KAZOO's `notifications` topic exchange, durable, if it is missing.
pub async fn declare_exchange(channel: &Channel) -> Result<(), lapin::Error> {
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
        .await
}

/// The routing keys of the notifications a mailer sends.
pub const MAILER_ROUTING_KEYS: [&str; 2] = [
    "notifications.sip.missed_call",
    "notifications.account.cf_notification",
];

/// Declares the mailers' durable queue, bound to both notification routing keys (the mailer
/// declares it the same way; whichever comes first creates it).
pub async fn declare_mailer_queue(channel: &Channel, queue: &str) -> Result<(), lapin::Error> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    for key in MAILER_ROUTING_KEYS {
        channel
            .queue_bind(
                queue.into(),
                EXCHANGE.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Delivers the outbox forever, reconnecting with backoff.
async fn deliver(
    url: String,
    mailer_queue: Option<String>,
    outbox: Arc<Outbox>,
    counters: Arc<AmqpCounters>,
) {
    let mut retry = FIRST_RETRY;
    loop {
        outbox.wait_for_pending().await;
        let connected = deliver_connected(
            &url,
            mailer_queue.as_deref(),
            &outbox,
            &counters,
            &mut retry,
        );
        match connected.await {
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
    mailer_queue: Option<&str>,
    outbox: &Outbox,
    counters: &AmqpCounters,
    retry: &mut Duration,
) -> Result<(), DeliveryError> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    declare_exchange(&channel).await?;
    if let Some(queue) = mailer_queue {
        declare_mailer_queue(&channel, queue).await?;
    }
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    tracing::info!("notifications: connected to the broker");
    *retry = FIRST_RETRY;
    // Records are published as soon as they reach the disk, while earlier ones still wait for
    // their confirms, up to `WINDOW` in flight. Every confirm that has arrived is settled
    // before the next refill, so a backlog goes out in batches.
    let mut window = Window::default();
    let mut last_sent = 0;
    loop {
        let batch = outbox.after(last_sent, WINDOW - window.in_flight.len());
        if let Some(last) = batch.last() {
            last_sent = last.seq;
            for (pending, confirm) in batch.iter().zip(publish_all(&channel, &batch).await) {
                window.in_flight.push_back((pending.seq, confirm?));
            }
        }
        let room = window.in_flight.len() < WINDOW;
        let Some((_, oldest)) = window.in_flight.front_mut() else {
            outbox.wait_for_pending().await;
            continue;
        };
        let confirmation = tokio::select! {
            biased;
            confirmation = oldest => confirmation,
            () = outbox.wait_for_append(), if room => continue,
        };
        window.settle(confirmation, outbox, counters)?;
        while let Some(confirmation) = window.arrived() {
            window.settle(confirmation, outbox, counters)?;
        }
    }
}

/// Publishes waiting for their confirms, oldest first, and the acks not yet persisted.
#[derive(Default)]
struct Window {
    in_flight: VecDeque<(u64, PublisherConfirm)>,
    /// The newest acked record whose ack is not yet persisted as the delivered watermark.
    confirmed_through: Option<u64>,
    unmarked: u64,
}

impl Window {
    /// The oldest publish's confirmation if it has already arrived.
    fn arrived(&mut self) -> Option<lapin::Result<Confirmation>> {
        let (_, oldest) = self.in_flight.front_mut()?;
        oldest.now_or_never()
    }

    /// Takes the oldest publish's confirmation. Confirms of one channel come in order, so an
    /// ack moves the delivered watermark; it is persisted every `MARK_EVERY` acks, when the
    /// window empties, and before a nack or error ends the connection.
    fn settle(
        &mut self,
        confirmation: lapin::Result<Confirmation>,
        outbox: &Outbox,
        counters: &AmqpCounters,
    ) -> Result<(), DeliveryError> {
        let (seq, _) = self.in_flight.pop_front().expect("a publish in flight");
        let acked = matches!(&confirmation, Ok(c) if c.is_ack());
        if acked {
            self.confirmed_through = Some(seq);
            self.unmarked += 1;
        }
        let mark_now = !acked || self.unmarked >= MARK_EVERY || self.in_flight.is_empty();
        if mark_now && let Some(through) = self.confirmed_through.take() {
            outbox.mark_delivered(through)?;
            counters
                .confirmed
                .fetch_add(self.unmarked, Ordering::Relaxed);
            self.unmarked = 0;
        }
        match confirmation {
            Ok(_) if acked => Ok(()),
            Ok(_) => {
                counters.nacked.fetch_add(1, Ordering::Relaxed);
                Err(DeliveryError::Nacked { seq })
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Publishes `batch` with one hand-over to lapin's I/O loop instead of one per record. Each
/// publish queues its frames and takes its delivery tag when first polled, and `join_all`
/// first polls in order, so the broker receives the batch in order.
async fn publish_all(
    channel: &Channel,
    batch: &[Arc<Pending>],
) -> Vec<Result<PublisherConfirm, lapin::Error>> {
    futures::future::join_all(batch.iter().map(|pending| {
        channel.basic_publish(
            pending.exchange.as_str().into(),
            pending.routing_key.as_str().into(),
            BasicPublishOptions::default(),
            &pending.body,
            properties(pending),
        )
    }))
    .await
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
