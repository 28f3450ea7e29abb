//! `[mailer]`: where notifications come from, where emails go, and how hard to try.
//!
//! ```toml
//! [mailer]
//! amqp = "amqp://guest:guest@127.0.0.1:5672/%2f"
//! smtp = "smtp://127.0.0.1:25"       # or smtps://host:465 (TLS from the start)
//! starttls = "never"                 # or "opportunistic", "required" (smtp:// only)
//! username = "mailer"                # with password: AUTH PLAIN or LOGIN
//! password = "secret"
//! from = "no_reply@example.com"      # teletype's default sender: no_reply@<hostname>
//! send_timeout_ms = 10000            # a whole SMTP send (teletype's send_timeout_ms)
//! max_attempts = 10                  # sends of one email before it is dead-lettered
//! retry_initial_ms = 1000            # the first retry's delay, doubled each time
//! retry_max_ms = 300000              # up to this
//! prefetch = 64                      # notifications in hand at once
//! allowed_senders = ["acme.example"] # domains or addresses accounts may send from (besides `from`)
//! max_recipients = 100               # To, Cc and Bcc of one email together
//! render_fuel = 200000               # the template engine's instructions per part
//! render_max_bytes = 1048576         # what one part may write
//! render_timeout_ms = 2000           # how long a rendering is waited for
//! ```
//!
//! Each key may also come from `CFHOST_MAILER__<KEY>` (the composition root lays them over).

use std::time::Duration;

use serde::Deserialize;

use crate::render::RenderLimits;

/// How an `smtp://` connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    /// Plain text (teletype's default, `tls = never`).
    #[default]
    Never,
    /// STARTTLS when the server offers it.
    Opportunistic,
    /// STARTTLS, or no send.
    Required,
}

/// `[mailer]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailerConfig {
    /// The broker: `amqp://user:pass@host:port/vhost`.
    pub amqp: Option<String>,
    /// The SMTP server: `smtp://host:port` or `smtps://host:port`.
    pub smtp: Option<String>,
    pub starttls: StartTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Accept any certificate (tests against a self-signed server); never in production.
    pub accept_invalid_certs: bool,
    /// The default template's sender; `no_reply@<hostname>` when unset.
    pub from: Option<String>,
    /// The name in `system.hostname` and in Message-IDs; the machine's when unset.
    pub hostname: Option<String>,
    /// The name in `system.node`; `cfhost_mailer@<hostname>` when unset.
    pub node: Option<String>,
    /// The durable queue it consumes (the host's AMQP sink declares the same).
    pub queue: String,
    pub send_timeout_ms: u64,
    pub max_attempts: u32,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    pub prefetch: u16,
    /// SMTP connections kept open at most.
    pub smtp_connections: u32,
    /// Addresses and domains an account's email may be from, besides `from` ([`crate::policy`]).
    pub allowed_senders: Vec<String>,
    /// Recipients of one email at most (To, Cc and Bcc, each counted once).
    pub max_recipients: usize,
    /// The template engine's instructions one part of a rendering may run.
    pub render_fuel: u64,
    /// The bytes one part of a rendering may write.
    pub render_max_bytes: usize,
    /// How long a rendering is waited for; a template that takes longer is refused.
    pub render_timeout_ms: u64,
}

impl Default for MailerConfig {
    fn default() -> Self {
        MailerConfig {
            amqp: None,
            smtp: None,
            starttls: StartTls::Never,
            username: None,
            password: None,
            accept_invalid_certs: false,
            from: None,
            hostname: None,
            node: None,
            queue: MAILER_QUEUE.to_string(),
            send_timeout_ms: 10_000,
            max_attempts: 10,
            retry_initial_ms: 1_000,
            retry_max_ms: 300_000,
            prefetch: 64,
            smtp_connections: 8,
            allowed_senders: Vec::new(),
            // A notification goes to a user, an account's admins, a few colleagues: 100 holds
            // any of those, keeps a template from making the relay a bulk sender, and stays
            // far under what receiving servers accept in one transaction (Postfix's
            // smtpd_recipient_limit is 1,000), so one email is never refused for its size.
            max_recipients: 100,
            render_fuel: RenderLimits::default().fuel,
            render_max_bytes: RenderLimits::default().max_bytes,
            render_timeout_ms: 2_000,
        }
    }
}

/// The queue mailers share, bound to both notification routing keys.
pub const MAILER_QUEUE: &str = "cfhost.mailer";

impl MailerConfig {
    /// The host name to use: configured, else the machine's, else `localhost`.
    pub fn hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(|| {
            hostname::get()
                .ok()
                .and_then(|name| name.into_string().ok())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "localhost".to_string())
        })
    }

    /// The node name to use.
    pub fn node(&self) -> String {
        self.node
            .clone()
            .unwrap_or_else(|| format!("cfhost_mailer@{}", self.hostname()))
    }

    /// The default template's sender.
    pub fn from(&self) -> String {
        self.from
            .clone()
            .unwrap_or_else(|| format!("no_reply@{}", self.hostname()))
    }

    /// The bounds of one rendering.
    pub fn render_limits(&self) -> RenderLimits {
        RenderLimits {
            fuel: self.render_fuel.max(1),
            max_bytes: self.render_max_bytes.max(1),
        }
    }

    /// How long a rendering is waited for.
    pub fn render_timeout(&self) -> Duration {
        Duration::from_millis(self.render_timeout_ms.max(1))
    }

    /// How long a claim on a notification may stay unsettled before another mailer takes it
    /// over: longer than one mailer can spend on it (rendering, then every attempt with its
    /// timeout and the longest delay between), with a minute to spare.
    pub fn claim_lease(&self) -> Duration {
        let attempt = self.send_timeout_ms.saturating_add(self.retry_max_ms);
        let sending = attempt.saturating_mul(u64::from(self.max_attempts.max(1)));
        self.render_timeout() + Duration::from_millis(sending) + Duration::from_secs(60)
    }

    /// The delay before attempt `attempt` (2 for the first retry).
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(30);
        let delay = self.retry_initial_ms.saturating_mul(1 << doublings);
        Duration::from_millis(delay.min(self.retry_max_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_refuses_unknown_keys() {
        let config: MailerConfig = toml::from_str("smtp = \"smtp://127.0.0.1:25\"").unwrap();
        assert_eq!(config.smtp.as_deref(), Some("smtp://127.0.0.1:25"));
        assert!(config.amqp.is_none());
        assert!(toml::from_str::<MailerConfig>("smtp_host = \"x\"").is_err());
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let config = MailerConfig {
            retry_initial_ms: 100,
            retry_max_ms: 500,
            ..MailerConfig::default()
        };
        let delays: Vec<u64> = (2..7)
            .map(|a| config.retry_delay(a).as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
    }
}
