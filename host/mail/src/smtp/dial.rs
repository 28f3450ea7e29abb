//! Opening one SMTP connection as `[mailer]` describes: the TCP connection (with
//! `TCP_NODELAY`), implicit TLS or STARTTLS, EHLO, and the credentials.
//!
//! `TCP_NODELAY` matters: lettre writes a message and its final `.` in two writes, and
//! without it the second waits for the server's delayed ACK (40 ms on Linux) on every email.
//! lettre's own transport has no setting for it, so plain and STARTTLS connections start on
//! a socket of ours. Implicit TLS (`smtps://`) is lettre's own socket: it does the TLS before
//! the greeting and takes no socket of ours.

use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;

use super::{SendError, SmtpConfigError};
use crate::config::{MailerConfig, StartTls};

/// How the connection is encrypted.
enum Encryption {
    /// `smtp://` with `starttls = "never"`.
    None,
    /// `smtp://`: STARTTLS when the server offers it, or always (failing without it).
    StartTls {
        parameters: TlsParameters,
        required: bool,
    },
    /// `smtps://`: TLS from the first byte.
    Implicit(TlsParameters),
}

/// Opens connections to the configured server.
pub(super) struct Dialer {
    host: String,
    port: u16,
    encryption: Encryption,
    credentials: Option<Credentials>,
    hello: ClientId,
}

impl Dialer {
    /// The dialer `[mailer] smtp`, `starttls`, `username`/`password` describe.
    pub(super) fn new(config: &MailerConfig) -> Result<Dialer, SmtpConfigError> {
        let url = config.smtp.as_deref().ok_or(SmtpConfigError::Missing)?;
        let bad_url = || SmtpConfigError::BadUrl(url.to_string());
        let (implicit, rest) = if let Some(rest) = url.strip_prefix("smtps://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("smtp://") {
            (false, rest)
        } else {
            return Err(bad_url());
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad_url())?),
            None => (rest, if implicit { 465 } else { 25 }),
        };
        if host.is_empty() {
            return Err(bad_url());
        }
        let parameters = || {
            TlsParameters::builder(host.to_string())
                .dangerous_accept_invalid_certs(config.accept_invalid_certs)
                .dangerous_accept_invalid_hostnames(config.accept_invalid_certs)
                .build()
                .map_err(|e| SmtpConfigError::Tls(e.to_string()))
        };
        let encryption = match (implicit, config.starttls) {
            (true, _) => Encryption::Implicit(parameters()?),
            (false, StartTls::Never) => Encryption::None,
            (false, StartTls::Opportunistic) => Encryption::StartTls {
                parameters: parameters()?,
                required: false,
            },
            (false, StartTls::Required) => Encryption::StartTls {
                parameters: parameters()?,
                required: true,
            },
        };
        let credentials = match (&config.username, &config.password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password.clone())),
            _ => None,
        };
        Ok(Dialer {
            host: host.to_string(),
            port,
            encryption,
            credentials,
            hello: ClientId::default(),
        })
    }

    /// A new connection, greeted, encrypted as configured and logged in. `timeout` bounds
    /// lettre's TLS connection; the caller bounds the whole.
    pub(super) async fn dial(&self, timeout: Duration) -> Result<AsyncSmtpConnection, SendError> {
        let mut connection = match &self.encryption {
            Encryption::Implicit(parameters) => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(timeout),
                &self.hello,
                Some(parameters.clone()),
                None,
            )
            .await
            .map_err(SendError::from)?,
            Encryption::None | Encryption::StartTls { .. } => {
                let stream = TcpStream::connect((self.host.as_str(), self.port))
                    .await
                    .map_err(|e| self.unreachable(e))?;
                stream.set_nodelay(true).map_err(|e| self.unreachable(e))?;
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello).await?
            }
        };
        if let Encryption::StartTls {
            parameters,
            required,
        } = &self.encryption
            && (*required || connection.can_starttls())
        {
            connection.starttls(parameters.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            connection.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(connection)
    }

    /// A refused or failed TCP connection: worth another try later.
    fn unreachable(&self, error: std::io::Error) -> SendError {
        SendError::Transient(format!(
            "cannot connect to {}:{}: {error}",
            self.host, self.port
        ))
    }
}
