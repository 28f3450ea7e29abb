//! cfhost-mail: the mailer. It will consume cfhost's notifications from RabbitMQ, render them
//! as KAZOO's teletype does and deliver them over SMTP. It knows cfhost only through KAZOO's
//! wire format on the `notifications` exchange, and links no WebAssembly runtime. For now it
//! owns its configuration section, `[mailer]`.

use serde::Deserialize;

/// `[mailer]`: where notifications come from and where emails go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailerConfig {
    /// The broker: `amqp://user:pass@host:port/vhost`.
    pub amqp: Option<String>,
    /// The SMTP server: `smtp://host:port` or `smtps://host:port`.
    pub smtp: Option<String>,
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
}
