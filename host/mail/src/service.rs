//! The mailer as a service: it consumes the durable queue (prefetch bounded), turns each
//! notification into an email and sends it, and acks only once the SMTP server accepted it or
//! it failed for good:
//!
//! | what happened | then |
//! |---|---|
//! | not a notification it sends, no template, a template error, no recipient | dead-lettered at once with the reason |
//! | the template is disabled | acked, counted as skipped |
//! | already sent (remembered as sent) | acked, counted as a duplicate |
//! | another copy is being handled (claimed) | waits for its outcome |
//! | the store cannot be read | tried again every second, unacked |
//! | the server said 250 | remembered as sent, then acked |
//! | the server said 5xx | dead-lettered with the server's text |
//! | a 4xx, a refused or cut connection, a timeout | tried again after a growing delay, at most `max_attempts` sends, then dead-lettered |
//!
//! A notification being retried stays unacked, so a mailer that stops (or dies) leaves it in
//! the queue. Losing the broker reconnects with backoff; what was unacked is delivered again
//! and the sent memory ([`SentMemory`]: the data directory's log, or the store's claims when
//! it is PostgreSQL, shared by every mailer) keeps it from being emailed twice. With `Server-ID`, teletype's
//! `notify_update` replies go to the `targeted` exchange.
//!
//! Rendering runs off the async runtime, bounded in work, output and time
//! ([`Composer::compose_bounded`]): a template past a bound is dead-lettered at once with the
//! bound's name, and the other notifications, and a stop, are handled meanwhile.

use std::path::Path;
use std::sync::Arc;

use cfhost_store::{Claims, Store};
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::MailerConfig;
use crate::counters::{Counters, bump};
use crate::email::{Composed, Composer};
use crate::macros::unix_now;
use crate::memory::{Claimed, SentMemory};
use crate::notification::{Kind, Notification};
use crate::queues::{self, dead_letter_properties};
use crate::replies::{self, Status};
use crate::sent::SentLog;
use crate::smtp::{SendError, Smtp, SmtpConfigError};

/// How long a sent log is kept after its last record: longer than any redelivery takes.
const SENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The first and the longest wait before reconnecting to the broker.
const FIRST_RECONNECT: Duration = Duration::from_millis(200);
const LONGEST_RECONNECT: Duration = Duration::from_secs(10);
/// How often a claim held by another delivery, or a store that cannot be read, is asked again.
const ASK_AGAIN: Duration = Duration::from_secs(1);
/// How often claims older than [`SENT_RETENTION`] are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(3600);
/// How often the counters are logged while they change.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A mailer that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("[mailer] amqp is not set (amqp://user:pass@host:port/vhost)")]
    NoBroker,
    #[error(transparent)]
    Smtp(#[from] SmtpConfigError),
    #[error("{dir}: cannot keep the sent log: {source}")]
    SentLog {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Why consumption over one connection ended.
#[derive(Debug, thiserror::Error)]
enum ConsumeError {
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    #[error("the broker ended the consumer")]
    Ended,
}

/// The channels of one connection: deliveries and dead letters on one, `notify_update`
/// replies on another, opened when the first notification with a `Server-ID` comes (and
/// `None` when the broker has no KAZOO `targeted` exchange).
#[derive(Clone)]
struct Link {
    channel: Channel,
    connection: Arc<Connection>,
    replies: Arc<tokio::sync::OnceCell<Option<Channel>>>,
}

/// What to do with a delivery once handled.
enum Settle {
    Ack,
    DeadLetter {
        reason: String,
        attempts: u32,
    },
    /// Stopping in the middle of retries: back to the queue.
    Requeue,
}

/// The mailer.
pub struct Mailer {
    config: MailerConfig,
    url: String,
    composer: Arc<Composer>,
    smtp: Smtp,
    sent: SentMemory,
    counters: Counters,
}

impl Mailer {
    /// A mailer reading accounts and templates from `store`. It remembers what it sent in
    /// `claims` when given (the store's, shared by every mailer), else in the log of the data
    /// directory `data` (`<data>/mailer/sent`).
    pub fn new(
        config: MailerConfig,
        data: &Path,
        store: Arc<dyn Store>,
        claims: Option<Arc<dyn Claims>>,
    ) -> Result<Mailer, MailerError> {
        let url = config.amqp.clone().ok_or(MailerError::NoBroker)?;
        let smtp = Smtp::new(&config)?;
        let sent = match claims {
            Some(claims) => SentMemory::shared(claims, config.claim_lease(), &config.node()),
            None => {
                let dir = data.join("mailer").join("sent");
                let log = SentLog::open(&dir, SENT_RETENTION)
                    .map_err(|source| MailerError::SentLog { dir, source })?;
                SentMemory::log(log)
            }
        };
        let composer = Arc::new(Composer::for_config(store, &config));
        Ok(Mailer {
            config,
            url,
            composer,
            smtp,
            sent,
            counters: Counters::default(),
        })
    }

    /// What it counted so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Consumes until `stop` turns true, reconnecting whenever the broker goes.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let logger = tokio::spawn(log_counters(Arc::clone(&self), stop.clone()));
        let forgetting = tokio::spawn(forget_old_claims(Arc::clone(&self)));
        let mut wait = FIRST_RECONNECT;
        while !*stop.borrow() {
            match Arc::clone(&self).consume(stop.clone(), &mut wait).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!("mailer: broker: {e}; reconnecting in {wait:?}");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = stop.wait_for(|stop| *stop) => break,
                    }
                    wait = (wait * 2).min(LONGEST_RECONNECT);
                }
            }
        }
        logger.abort();
        forgetting.abort();
        tracing::info!("mailer: stopped; {}", self.counters.summary());
    }

    /// One connection's consumption; `Ok` once stopped.
    async fn consume(
        self: Arc<Self>,
        mut stop: watch::Receiver<bool>,
        wait: &mut Duration,
    ) -> Result<(), ConsumeError> {
        let connection =
            Arc::new(Connection::connect(&self.url, ConnectionProperties::default()).await?);
        let channel = connection.create_channel().await?;
        queues::declare(&channel, &self.config.queue).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .basic_qos(self.config.prefetch.max(1), BasicQosOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                self.config.queue.as_str().into(),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let link = Link {
            channel: channel.clone(),
            connection: Arc::clone(&connection),
            replies: Arc::default(),
        };
        tracing::info!("mailer: consuming {}", self.config.queue);
        *wait = FIRST_RECONNECT;
        let mut tasks = JoinSet::new();
        // The tasks' own signal: the mailer stopping, or this connection gone (their
        // deliveries come again on the next one, so retries waiting end there).
        let (release, task_stop) = watch::channel(false);
        let result = loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break Ok(()),
                delivery = consumer.next() => match delivery {
                    Some(Ok(delivery)) => {
                        let mailer = Arc::clone(&self);
                        let (link, stop) = (link.clone(), task_stop.clone());
                        tasks.spawn(async move { mailer.handle(&link, delivery, stop).await });
                    }
                    Some(Err(e)) => break Err(e.into()),
                    None => break Err(ConsumeError::Ended),
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        };
        // Sends under way finish (each within its timeout); retries waiting stop at once.
        let _ = release.send(true);
        while tasks.join_next().await.is_some() {}
        let _ = channel.close(200, "mailer stopping".into()).await;
        let _ = connection.close(200, "mailer stopping".into()).await;
        result
    }

    /// Handles one delivery and settles it with the broker.
    async fn handle(&self, link: &Link, delivery: Delivery, stop: watch::Receiver<bool>) {
        let settle = self.process(link, &delivery.data, stop).await;
        let settled = match settle {
            Settle::Ack => delivery.ack(BasicAckOptions::default()).await.map(drop),
            Settle::Requeue => requeue(&delivery).await,
            Settle::DeadLetter { reason, attempts } => {
                self.dead_letter(&link.channel, &delivery, &reason, attempts)
                    .await
            }
        };
        if let Err(e) = settled {
            // The broker gets it back when the channel goes, and the sent log knows.
            tracing::warn!("mailer: cannot settle a delivery: {e}");
        }
    }

    /// Moves `delivery` to the dead-letter queue: published there (confirmed) before the ack;
    /// if the broker does not take it, back to the queue instead.
    async fn dead_letter(
        &self,
        channel: &Channel,
        delivery: &Delivery,
        reason: &str,
        attempts: u32,
    ) -> Result<(), lapin::Error> {
        tracing::warn!("mailer: dead-lettered: {reason}");
        let properties = dead_letter_properties(
            &delivery.properties,
            reason,
            delivery.routing_key.as_str(),
            attempts,
        );
        let dead = queues::dead_queue(&self.config.queue);
        let confirmed = channel
            .basic_publish(
                ShortString::from(""),
                dead.as_str().into(),
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        if confirmed.is_ack() {
            delivery.ack(BasicAckOptions::default()).await.map(drop)
        } else {
            requeue(delivery).await
        }
    }

    /// Claims, renders and sends one notification; says how to settle it.
    async fn process(&self, link: &Link, body: &[u8], mut stop: watch::Receiver<bool>) -> Settle {
        let notification = match Notification::parse(body) {
            Ok(notification) => notification,
            Err(e) => {
                bump(&self.counters.invalid);
                return Settle::DeadLetter {
                    reason: format!("validation_failed: {e}"),
                    attempts: 0,
                };
            }
        };
        let identity = notification.identity();
        let held = loop {
            let wait = match self.sent.claim(&identity).await {
                Ok(Claimed::Ours(held)) => break held,
                Ok(Claimed::AlreadySent) => {
                    bump(&self.counters.of(notification.kind).duplicates);
                    self.reply(link, &notification, Status::Completed).await;
                    return Settle::Ack;
                }
                Ok(Claimed::Elsewhere(owner)) => {
                    tracing::debug!("mailer: {identity} is being sent by {owner}; waiting");
                    ASK_AGAIN
                }
                Err(e) => {
                    tracing::warn!("mailer: cannot claim {identity}: {e}; again in {ASK_AGAIN:?}");
                    ASK_AGAIN
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|stop| *stop) => return Settle::Requeue,
            }
        };
        let (settle, sent) = self.deliver(link, &notification, stop).await;
        if let Err(e) = self.sent.settle(held, sent).await {
            if sent {
                tracing::error!(
                    "mailer: sent {identity} but cannot remember it: {e}; a repeat would send it again"
                );
            } else {
                tracing::warn!("mailer: cannot release the claim on {identity}: {e}");
            }
        }
        settle
    }

    /// Renders and sends a claimed notification: how to settle it, and whether it was sent.
    async fn deliver(
        &self,
        link: &Link,
        notification: &Notification,
        mut stop: watch::Receiver<bool>,
    ) -> (Settle, bool) {
        let counters = self.counters.of(notification.kind);
        if notification.kind == Kind::MissedCall {
            self.reply(link, notification, Status::Pending).await;
        }
        let prepared = loop {
            let composed = self
                .composer
                .compose(notification.clone(), unix_now())
                .await
                .and_then(|composed| match composed {
                    Composed::Email(email) => {
                        email.to_message().map(|message| Some((email, message)))
                    }
                    Composed::Disabled => Ok(None),
                });
            match composed {
                Err(e) if e.is_transient() => {
                    tracing::warn!(
                        "mailer: {e}; {} again in {ASK_AGAIN:?}",
                        notification.msg_id
                    );
                    tokio::select! {
                        () = tokio::time::sleep(ASK_AGAIN) => {}
                        _ = stop.wait_for(|stop| *stop) => return (Settle::Requeue, false),
                    }
                }
                other => break other,
            }
        };
        let (email, message) = match prepared {
            Ok(Some(prepared)) => prepared,
            Ok(None) => {
                bump(&counters.skipped);
                self.reply(link, notification, Status::Disabled).await;
                return (Settle::Ack, false);
            }
            Err(e) => {
                let reason = e.to_string();
                let settle = self
                    .give_up(link, notification, &reason, e.teletype_reason(), 0)
                    .await;
                return (settle, false);
            }
        };
        let max_attempts = self.config.max_attempts.max(1);
        for attempt in 1..=max_attempts {
            match self.smtp.send(&message).await {
                Ok(receipt) => {
                    bump(&counters.sent);
                    tracing::debug!("mailer: sent {} ({receipt})", email.message_id);
                    self.reply(link, notification, Status::Completed).await;
                    return (Settle::Ack, true);
                }
                Err(SendError::Permanent(text)) => {
                    let settle = self
                        .give_up(link, notification, &text, text.clone(), attempt)
                        .await;
                    return (settle, false);
                }
                Err(SendError::Transient(text)) if attempt == max_attempts => {
                    let reason = format!("{text} (after {attempt} attempts)");
                    let settle = self
                        .give_up(link, notification, &reason, text, attempt)
                        .await;
                    return (settle, false);
                }
                Err(SendError::Transient(text)) => {
                    bump(&counters.retried);
                    let delay = self.config.retry_delay(attempt + 1);
                    tracing::info!(
                        "mailer: {} attempt {attempt}: {text}; again in {delay:?}",
                        email.message_id
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = stop.wait_for(|stop| *stop) => return (Settle::Requeue, false),
                    }
                }
            }
        }
        unreachable!("the last attempt settles")
    }

    /// Dead-letters `notification` with `reason`, replying teletype's `failed`.
    async fn give_up(
        &self,
        channel: &Link,
        notification: &Notification,
        reason: &str,
        teletype_reason: String,
        attempts: u32,
    ) -> Settle {
        bump(&self.counters.of(notification.kind).dead_lettered);
        self.reply(channel, notification, Status::Failed(teletype_reason))
            .await;
        Settle::DeadLetter {
            reason: reason.to_string(),
            attempts,
        }
    }

    /// Sends a `notify_update` when the notification says where (`Server-ID`).
    async fn reply(&self, link: &Link, notification: &Notification, status: Status) {
        let Some(server_id) = &notification.server_id else {
            return;
        };
        let replies = link
            .replies
            .get_or_init(|| replies_channel(&link.connection))
            .await;
        let Some(channel) = replies else {
            return;
        };
        let body = replies::notify_update(
            &status,
            &notification.msg_id,
            &notification.template_id,
            &self.composer.system().node,
        );
        let published = channel
            .basic_publish(
                replies::TARGETED_EXCHANGE.into(),
                server_id.as_str().into(),
                BasicPublishOptions::default(),
                body.to_string().as_bytes(),
                BasicProperties::default().with_content_type("application/json".into()),
            )
            .await;
        if let Err(e) = published {
            tracing::warn!("mailer: cannot reply to {server_id}: {e}");
        }
    }
}

/// Gives `delivery` back to the queue.
async fn requeue(delivery: &Delivery) -> Result<(), lapin::Error> {
    let options = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    delivery.nack(options).await.map(drop)
}

/// A channel for replies, if the broker has KAZOO's `targeted` exchange (declared passively:
/// the mailer does not create KAZOO's exchanges, and publishing to a missing one would close
/// the channel). Asked only once a notification wants a reply: a broker without KAZOO closes
/// the channel of a passive declare, which the AMQP client logs as an error.
async fn replies_channel(connection: &Connection) -> Option<Channel> {
    let channel = connection.create_channel().await.ok()?;
    let options = lapin::options::ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match channel
        .exchange_declare(
            replies::TARGETED_EXCHANGE.into(),
            lapin::ExchangeKind::Direct,
            options,
            FieldTable::default(),
        )
        .await
    {
        Ok(()) => Some(channel),
        Err(_) => {
            tracing::warn!(
                "mailer: a notification has a Server-ID, but the broker has no `targeted` exchange: notify_update replies are not sent"
            );
            None
        }
    }
}

/// Forgets what was sent longer ago than [`SENT_RETENTION`]: at start, then every hour, so a
/// mailer that runs for months keeps the store's claims to a week's worth.
async fn forget_old_claims(mailer: Arc<Mailer>) {
    loop {
        mailer.sent.forget_older_than(SENT_RETENTION).await;
        tokio::time::sleep(FORGET_EVERY).await;
    }
}

/// Logs the counters every [`LOG_EVERY`] while they change.
async fn log_counters(mailer: Arc<Mailer>, mut stop: watch::Receiver<bool>) {
    let mut last = mailer.counters.summary();
    loop {
        tokio::select! {
            () = tokio::time::sleep(LOG_EVERY) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let now = mailer.counters.summary();
        if now != last {
            tracing::info!("mailer: {now}");
            last = now;
        }
    }
}
