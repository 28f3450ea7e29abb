//! A bounded pool of SMTP connections: at most `size` open, each carrying one email at a
//! time, kept open between emails.
//!
//! Unlike lettre's pool, which opens a new connection whenever none is idle (and closes it
//! afterwards when more than its size are idle) and sends a `NOOP` before every reuse, this
//! one never holds more than `size` connections, so a burst waits for a free one instead of
//! opening and closing dozens; and it checks a connection with `NOOP` only after it sat idle
//! for a while (a server may have closed it), not before every email.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::response::Response;
use tokio::sync::Semaphore;

use super::SendError;
use super::dial::Dialer;

/// A connection idle longer than this is checked with `NOOP` before it is used again.
const CHECK_AFTER: Duration = Duration::from_secs(5);
/// A connection idle longer than this is closed (servers drop idle clients after a while).
const CLOSE_AFTER: Duration = Duration::from_secs(60);

/// An open connection waiting for the next email.
struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
}

/// The connections to one server.
pub(super) struct Pool {
    dialer: Dialer,
    /// One permit per connection that may be open.
    slots: Semaphore,
    idle: Mutex<Vec<Idle>>,
}

impl Pool {
    /// A pool of at most `size` connections opened by `dialer`.
    pub(super) fn new(dialer: Dialer, size: usize) -> Pool {
        Pool {
            dialer,
            slots: Semaphore::new(size.max(1)),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `email` to `envelope`'s recipients on a connection of the pool, waiting for one
    /// to be free; `timeout` bounds the exchange once it has one (opening it included).
    pub(super) async fn send(
        &self,
        envelope: &Envelope,
        email: &[u8],
        timeout: Duration,
    ) -> Result<Response, SendError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        let exchange = async {
            let mut connection = self.checkout(timeout).await?;
            let sent = connection.send(envelope, email).await;
            // lettre closes a connection on any failure and marks it broken; a timeout drops
            // it with this future.
            if !connection.has_broken() {
                self.park(connection);
            }
            sent.map_err(SendError::from)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(sent) => sent,
            Err(_) => Err(SendError::Transient(format!(
                "timeout: no answer within {timeout:?}"
            ))),
        }
    }

    /// An idle connection still open, or a new one.
    async fn checkout(&self, timeout: Duration) -> Result<AsyncSmtpConnection, SendError> {
        loop {
            let idle = self.idle.lock().expect("the idle list").pop();
            let Some(Idle {
                mut connection,
                since,
            }) = idle
            else {
                return self.dialer.dial(timeout).await;
            };
            let idle_for = since.elapsed();
            if idle_for > CLOSE_AFTER {
                connection.abort().await;
            } else if idle_for <= CHECK_AFTER || connection.test_connected().await {
                return Ok(connection);
            }
        }
    }

    fn park(&self, connection: AsyncSmtpConnection) {
        self.idle.lock().expect("the idle list").push(Idle {
            connection,
            since: Instant::now(),
        });
    }
}
