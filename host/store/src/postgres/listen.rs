//! The announcements of changes (`LISTEN cfhost_changes`), on a connection of their own that
//! is checked every few seconds and opened again whenever it is lost; after each reopening
//! [`Change::Everything`] says that what was announced meanwhile is unknown.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::StoreError;
use crate::files::is_plain_name;

/// The channel the triggers announce on.
const CHANNEL: &str = "cfhost_changes";
/// How often the listening connection is checked (a network that drops packets gives no
/// error of its own).
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// The longest wait between two attempts to connect again.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What changed in the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// One account: its settings, documents or modules (or the account itself).
    Account(String),
    /// Anything: read everything again.
    Everything,
}

/// Starts listening; returns once the first `LISTEN` has been acknowledged.
pub(super) async fn start(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    timeout: Duration,
    describe: String,
) -> Result<mpsc::UnboundedReceiver<Change>, StoreError> {
    let (changes, received) = mpsc::unbounded_channel();
    let unavailable = |reason: String| StoreError::Unavailable {
        store: describe.clone(),
        reason,
    };
    let first = tokio::time::timeout(timeout, open(&config, &tls, changes.clone()))
        .await
        .map_err(|_| unavailable(format!("no answer within {timeout:?}")))?
        .map_err(|e| unavailable(super::with_causes(&e)))?;
    let connect = Connect { config, tls };
    tokio::spawn(keep_listening(connect, timeout, describe, changes, first));
    Ok(received)
}

/// A listening connection: the client (kept to check the connection) and the task that
/// forwards its announcements, which ends when the connection does.
type Listening = (tokio_postgres::Client, JoinHandle<()>);

/// How to connect again.
struct Connect {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
}

async fn open(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    changes: mpsc::UnboundedSender<Change>,
) -> Result<Listening, tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls.clone()).await?;
    let forward = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(notification) = message {
                let _ = changes.send(change_of(notification.payload()));
            }
        }
    });
    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        forward.abort();
        return Err(e);
    }
    Ok((client, forward))
}

/// What an announcement's payload says changed: an account id, or anything else (`*`, or
/// whatever another tool sent) meaning everything.
fn change_of(payload: &str) -> Change {
    if is_plain_name(payload) {
        Change::Account(payload.to_string())
    } else {
        Change::Everything
    }
}

async fn keep_listening(
    connect: Connect,
    timeout: Duration,
    describe: String,
    changes: mpsc::UnboundedSender<Change>,
    first: Listening,
) {
    let mut listening = Some(first);
    let mut backoff = Duration::from_millis(50);
    loop {
        if let Some((client, mut forward)) = listening.take() {
            backoff = Duration::from_millis(50);
            loop {
                tokio::select! {
                    _ = &mut forward => break,
                    () = tokio::time::sleep(CHECK_EVERY) => {
                        let check = tokio::time::timeout(timeout, client.simple_query("SELECT 1"));
                        if !matches!(check.await, Ok(Ok(_))) {
                            forward.abort();
                            break;
                        }
                    }
                    () = changes.closed() => {
                        forward.abort();
                        return;
                    }
                }
            }
            tracing::warn!(
                "{describe}: lost the connection that listens for changes; reconnecting"
            );
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if changes.is_closed() {
            return;
        }
        let reopening = open(&connect.config, &connect.tls, changes.clone());
        match tokio::time::timeout(timeout, reopening).await {
            Ok(Ok(reopened)) => {
                tracing::info!("{describe}: listening for changes again; reloading everything");
                listening = Some(reopened);
                let _ = changes.send(Change::Everything);
            }
            Ok(Err(e)) => {
                let e = super::with_causes(&e);
                tracing::debug!("{describe}: cannot listen yet: {e}");
            }
            Err(_) => tracing::debug!("{describe}: cannot listen yet: no answer"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_an_account_or_means_everything() {
        assert_eq!(change_of("acme"), Change::Account("acme".into()));
        assert_eq!(change_of("*"), Change::Everything);
        assert_eq!(change_of("../etc"), Change::Everything);
        assert_eq!(change_of(""), Change::Everything);
    }
}
