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
}
