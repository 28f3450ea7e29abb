//! Delivery to the SMTP server with lettre: a pool of connections, `smtp://` (plain or
//! STARTTLS) or `smtps://`, credentials, a limit on each whole send; every failure is either
//! worth retrying ([`SendError::Transient`]: a 4xx, a refused or cut connection, a timeout)
//! or not ([`SendError::Permanent`]: a 5xx).

use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailerConfig, StartTls};

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

/// The SMTP server, through a pool of connections.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    send_timeout: Duration,
}

impl Smtp {
    /// The transport `[mailer]` describes. Must be called inside a tokio runtime (the pool
    /// runs a task).
    pub fn new(config: &MailerConfig) -> Result<Smtp, SmtpConfigError> {
        let url = config.smtp.as_deref().ok_or(SmtpConfigError::Missing)?;
        let (wrapped, rest) = if let Some(rest) = url.strip_prefix("smtps://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("smtp://") {
            (false, rest)
        } else {
            return Err(SmtpConfigError::BadUrl(url.to_string()));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| SmtpConfigError::BadUrl(url.to_string()))?,
            ),
            None => (rest, if wrapped { 465 } else { 25 }),
        };
        if host.is_empty() {
            return Err(SmtpConfigError::BadUrl(url.to_string()));
        }
        let parameters = || {
            TlsParameters::builder(host.to_string())
                .dangerous_accept_invalid_certs(config.accept_invalid_certs)
                .dangerous_accept_invalid_hostnames(config.accept_invalid_certs)
                .build()
                .map_err(|e| SmtpConfigError::Tls(e.to_string()))
        };
        let tls = match (wrapped, config.starttls) {
            (true, _) => Tls::Wrapper(parameters()?),
            (false, StartTls::Never) => Tls::None,
            (false, StartTls::Opportunistic) => Tls::Opportunistic(parameters()?),
            (false, StartTls::Required) => Tls::Required(parameters()?),
        };
        let timeout = Duration::from_millis(config.send_timeout_ms.max(1));
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(config.smtp_connections.max(1)));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Smtp {
            transport: builder.build(),
            send_timeout: timeout,
        })
    }

    /// Sends `message`; on success, the server's answer (`250 ...`).
    pub async fn send(&self, message: Message) -> Result<String, SendError> {
        match tokio::time::timeout(self.send_timeout, self.transport.send(message)).await {
            Err(_) => Err(SendError::Transient(format!(
                "timeout: no answer within {:?}",
                self.send_timeout
            ))),
            Ok(Ok(response)) => Ok(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Ok(Err(error)) if error.is_permanent() => Err(SendError::Permanent(error.to_string())),
            Ok(Err(error)) => Err(SendError::Transient(error.to_string())),
        }
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
