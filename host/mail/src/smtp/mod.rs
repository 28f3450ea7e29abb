//! Delivery to the SMTP server with lettre's SMTP client: a bounded pool of connections
//! (`pool`) opened as configured (`dial`: `smtp://`, plain or STARTTLS, or `smtps://`, and
//! credentials), a limit on each exchange; every failure is either worth retrying
//! ([`SendError::Transient`]: a 4xx, a refused or cut connection, a timeout) or not
//! ([`SendError::Permanent`]: a 5xx).

mod dial;
mod pool;

use std::sync::Arc;
use std::time::Duration;

use lettre::Message;

use crate::config::MailerConfig;
use dial::Dialer;
use pool::Pool;

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    #[error("[mailer] smtp is not set (smtp://host:port or smtps://host:port)")]
    Missing,
    #[error("[mailer] smtp `{0}`: expected smtp://host:port or smtps://host:port")]
    BadUrl(String),
    #[error("[mailer] smtp: TLS: {0}")]
    Tls(String),
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another try later: the server's 4xx, or no answer.
    #[error("{0}")]
    Transient(String),
    /// The server refused it for good (5xx), with its text.
    #[error("{0}")]
    Permanent(String),
}

impl From<lettre::transport::smtp::Error> for SendError {
    fn from(error: lettre::transport::smtp::Error) -> SendError {
        if error.is_permanent() {
            SendError::Permanent(error.to_string())
        } else {
            SendError::Transient(error.to_string())
        }
    }
}

/// The SMTP server, through a pool of connections.
#[derive(Clone)]
pub struct Smtp {
    pool: Arc<Pool>,
    send_timeout: Duration,
}

impl Smtp {
    /// The server `[mailer]` describes, with at most `smtp_connections` connections open.
    pub fn new(config: &MailerConfig) -> Result<Smtp, SmtpConfigError> {
        let dialer = Dialer::new(config)?;
        Ok(Smtp {
            pool: Arc::new(Pool::new(dialer, config.smtp_connections as usize)),
            send_timeout: Duration::from_millis(config.send_timeout_ms.max(1)),
        })
    }

    /// Sends `message`; on success, the server's answer (`250 ...`).
    pub async fn send(&self, message: &Message) -> Result<String, SendError> {
        let response = self
            .pool
            .send(message.envelope(), &message.formatted(), self.send_timeout)
            .await?;
        Ok(format!(
            "{} {}",
            response.code(),
            response.message().collect::<Vec<_>>().join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    fn config(smtp: &str) -> MailerConfig {
        MailerConfig {
            smtp: Some(smtp.to_string()),
            ..MailerConfig::default()
        }
    }

    #[tokio::test]
    async fn urls_are_smtp_or_smtps_with_a_host() {
        assert!(Smtp::new(&config("smtp://127.0.0.1:2525")).is_ok());
        assert!(Smtp::new(&config("smtps://mail.example.com")).is_ok());
        for bad in ["http://x", "smtp://:25", "smtp://host:port"] {
            assert!(
                matches!(Smtp::new(&config(bad)), Err(SmtpConfigError::BadUrl(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Smtp::new(&MailerConfig::default()),
            Err(SmtpConfigError::Missing)
        ));
    }

    /// What a scripted server saw: connections opened, most open at once, NOOPs.
    #[derive(Default)]
    struct Seen {
        opened: AtomicUsize,
        open: AtomicUsize,
        most_open: AtomicUsize,
        noops: AtomicUsize,
    }

    /// A minimal SMTP server on a free loopback port that accepts every email, slowly enough
    /// (5 ms after the final `.`) that concurrent sends overlap.
    async fn scripted_server() -> (u16, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let counts = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = Arc::clone(&counts);
                seen.opened.fetch_add(1, Ordering::SeqCst);
                let now = seen.open.fetch_add(1, Ordering::SeqCst) + 1;
                seen.most_open.fetch_max(now, Ordering::SeqCst);
                tokio::spawn(async move {
                    converse(stream, &seen).await;
                    seen.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (port, seen)
    }

    async fn converse(stream: TcpStream, seen: &Seen) {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 scripted\r\n").await;
        let mut in_data = false;
        while let Ok(Some(line)) = lines.next_line().await {
            let reply: &[u8] = if in_data {
                if line != "." {
                    continue;
                }
                in_data = false;
                tokio::time::sleep(Duration::from_millis(5)).await;
                b"250 queued\r\n"
            } else {
                match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                    Some("DATA") => {
                        in_data = true;
                        b"354 go on\r\n"
                    }
                    Some("NOOP") => {
                        seen.noops.fetch_add(1, Ordering::SeqCst);
                        b"250 ok\r\n"
                    }
                    Some("QUIT") => {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    }
                    _ => b"250 ok\r\n",
                }
            };
            if write.write_all(reply).await.is_err() {
                return;
            }
        }
    }

    #[tokio::test]
    async fn a_burst_shares_at_most_smtp_connections_kept_open_without_a_noop_each() {
        let (port, seen) = scripted_server().await;
        let smtp = Smtp::new(&MailerConfig {
            smtp_connections: 3,
            ..config(&format!("smtp://127.0.0.1:{port}"))
        })
        .unwrap();
        let message = Message::builder()
            .from("a@example.com".parse().unwrap())
            .to("b@example.com".parse().unwrap())
            .body("hello".to_string())
            .unwrap();
        let sends = (0..30).map(|_| smtp.send(&message));
        for sent in futures::future::join_all(sends).await {
            assert_eq!(sent.unwrap(), "250 queued");
        }
        assert_eq!(seen.most_open.load(Ordering::SeqCst), 3);
        assert_eq!(
            seen.opened.load(Ordering::SeqCst),
            3,
            "each connection is reused"
        );
        assert_eq!(seen.noops.load(Ordering::SeqCst), 0);
    }
}
