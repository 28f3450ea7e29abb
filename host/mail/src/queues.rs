//! The mailer's queues on the broker: the durable queue bound to both notification routing
//! keys (the host's AMQP sink declares the same, so nothing published while no mailer runs is
//! lost), and beside it `<queue>.dead`, where notifications given up on wait with the reason
//! until an operator lists or requeues them.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::Serialize;

use crate::notification::Kind;

/// KAZOO's notifications exchange.
pub const NOTIFICATIONS_EXCHANGE: &str = "notifications";

/// The dead-letter queue of `queue`.
pub fn dead_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

/// Declares the exchange (durable topic, as the host does), `queue` bound to both routing
/// keys, and its dead-letter queue; all durable.
pub async fn declare(channel: &Channel, queue: &str) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            NOTIFICATIONS_EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    for name in [queue.to_string(), dead_queue(queue)] {
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
    }
    for kind in [Kind::MissedCall, Kind::CfNotification] {
        channel
            .queue_bind(
                queue.into(),
                NOTIFICATIONS_EXCHANGE.into(),
                kind.routing_key().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// A notification given up on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub reason: String,
    pub routing_key: String,
    pub attempts: u32,
    /// Unix seconds.
    pub failed_at: u64,
    /// The notification as it came (JSON when it is JSON).
    pub body: serde_json::Value,
}

fn header<'a>(properties: &'a BasicProperties, key: &str) -> Option<&'a AMQPValue> {
    properties.headers().as_ref()?.inner().get(key)
}

fn header_text(properties: &BasicProperties, key: &str) -> String {
    match header(properties, key) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        Some(AMQPValue::ShortString(s)) => s.to_string(),
        _ => String::new(),
    }
}

fn header_number(properties: &BasicProperties, key: &str) -> u64 {
    match header(properties, key) {
        Some(AMQPValue::LongLongInt(n)) => u64::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongUInt(n)) => u64::from(*n),
        Some(AMQPValue::LongInt(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

/// The properties of a dead letter: the original's, with the reason, where it was routed,
/// the attempts made and when.
pub fn dead_letter_properties(
    original: &BasicProperties,
    reason: &str,
    routing_key: &str,
    attempts: u32,
) -> BasicProperties {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut headers = FieldTable::default();
    headers.insert("x-reason".into(), AMQPValue::LongString(reason.into()));
    headers.insert(
        "x-routing-key".into(),
        AMQPValue::LongString(routing_key.into()),
    );
    headers.insert(
        "x-attempts".into(),
        AMQPValue::LongLongInt(i64::from(attempts)),
    );
    headers.insert(
        "x-failed-at".into(),
        AMQPValue::LongLongInt(i64::try_from(now).unwrap_or(0)),
    );
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    if let Some(id) = original.message_id() {
        properties = properties.with_message_id(id.clone());
    }
    properties
}

fn describe(data: &[u8], properties: &BasicProperties) -> DeadLetter {
    DeadLetter {
        reason: header_text(properties, "x-reason"),
        routing_key: header_text(properties, "x-routing-key"),
        attempts: u32::try_from(header_number(properties, "x-attempts")).unwrap_or(u32::MAX),
        failed_at: header_number(properties, "x-failed-at"),
        body: serde_json::from_slice(data)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(data).into())),
    }
}

/// Connects to `url` with a channel in confirm mode and the queues declared.
async fn channel(url: &str, queue: &str) -> Result<(Connection, Channel), lapin::Error> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    declare(&channel, queue).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((connection, channel))
}

/// The dead letters of `queue`, oldest first; they stay where they are.
pub async fn list_dead_letters(url: &str, queue: &str) -> Result<Vec<DeadLetter>, lapin::Error> {
    let (connection, channel) = channel(url, queue).await?;
    let dead = dead_queue(queue);
    let mut letters = Vec::new();
    // Held unacked until the channel closes, which puts every one back in its place.
    while let Some(message) = channel
        .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: false })
        .await?
    {
        letters.push(describe(
            &message.delivery.data,
            &message.delivery.properties,
        ));
    }
    channel.close(200, "listed".into()).await?;
    connection.close(200, "listed".into()).await?;
    Ok(letters)
}

/// Puts every dead letter of `queue` back in it, each confirmed by the broker before it
/// leaves the dead-letter queue; says how many.
pub async fn requeue_dead_letters(url: &str, queue: &str) -> Result<usize, lapin::Error> {
    let (connection, channel) = channel(url, queue).await?;
    let dead = dead_queue(queue);
    let mut moved = 0;
    while let Some(message) = channel
        .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: false })
        .await?
    {
        let delivery = &message.delivery;
        let mut properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        if let Some(id) = delivery.properties.message_id() {
            properties = properties.with_message_id(id.clone());
        }
        let confirm = channel
            .basic_publish(
                ShortString::from(""),
                queue.into(),
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        if !confirm.is_ack() {
            break;
        }
        delivery.ack(BasicAckOptions::default()).await?;
        moved += 1;
    }
    channel.close(200, "requeued".into()).await?;
    connection.close(200, "requeued".into()).await?;
    Ok(moved)
}
