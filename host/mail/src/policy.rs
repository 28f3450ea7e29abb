//! What the operator lets an account's email be: who it may say it is from, and how many
//! people it may reach. An account's template or a notification's own fields choose the
//! sender and recipients; the operator's relay sends them, so the operator bounds them:
//!
//! - `From` is the configured `from`, or an address `allowed_senders` lists, or one at a
//!   domain it lists. Any other is replaced by `from` (and logged): the email still goes.
//! - The envelope sender (`MAIL FROM`) is always the configured `from`, so bounces and SPF
//!   are the operator's.
//! - At most `max_recipients` addresses (To, Cc and Bcc together, each counted once) per
//!   email; past that the email is not sent.

use lettre::Address;
use lettre::message::Mailbox;

use crate::config::MailerConfig;

/// The operator's bounds on an account's email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendPolicy {
    /// The operator's sender: the default `From` and always the envelope sender.
    pub from: String,
    /// Addresses (`alerts@acme.example`) and domains (`acme.example`) accounts may send from.
    pub allowed_senders: Vec<String>,
    /// Addresses one email may go to.
    pub max_recipients: usize,
}

/// A sender or a recipient list the operator does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "`{0}` is not an allowed sender: [mailer] allowed_senders lists the addresses and domains accounts may send from"
    )]
    Sender(String),
    #[error("{count} recipients: past [mailer] max_recipients ({max})")]
    TooManyRecipients { count: usize, max: usize },
}

impl SendPolicy {
    /// The policy `[mailer]` describes.
    pub fn for_config(config: &MailerConfig) -> Self {
        SendPolicy {
            from: config.from(),
            allowed_senders: config.allowed_senders.clone(),
            max_recipients: config.max_recipients,
        }
    }

    /// The envelope sender: the address of the configured `from`.
    pub fn envelope_sender(&self) -> Option<Address> {
        address_of(&self.from)
    }

    /// Whether an account may send as `from` (an address, or `Name <address>`).
    pub fn check_sender(&self, from: &str) -> Result<(), PolicyError> {
        let refused = || PolicyError::Sender(from.to_string());
        let address = address_of(from).ok_or_else(refused)?;
        if self
            .envelope_sender()
            .is_some_and(|operator| same_address(&operator, &address))
        {
            return Ok(());
        }
        let allowed = self.allowed_senders.iter().any(|entry| {
            let entry = entry.trim();
            if entry.contains('@') {
                address_of(entry).is_some_and(|allowed| same_address(&allowed, &address))
            } else {
                entry
                    .trim_start_matches('.')
                    .eq_ignore_ascii_case(address.domain())
            }
        });
        if allowed { Ok(()) } else { Err(refused()) }
    }

    /// Whether `count` recipients may receive one email.
    pub fn check_recipients(&self, count: usize) -> Result<(), PolicyError> {
        if count > self.max_recipients {
            Err(PolicyError::TooManyRecipients {
                count,
                max: self.max_recipients,
            })
        } else {
            Ok(())
        }
    }
}

/// The address in `text`: `a@b.example` or `Name <a@b.example>`.
pub fn address_of(text: &str) -> Option<Address> {
    text.trim()
        .parse::<Mailbox>()
        .ok()
        .map(|mailbox| mailbox.email)
}

/// Two addresses are the same when their local parts match exactly and their domains match
/// in any case (RFC 5321 leaves the local part's case to the receiving host).
fn same_address(a: &Address, b: &Address) -> bool {
    a.user() == b.user() && a.domain().eq_ignore_ascii_case(b.domain())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> SendPolicy {
        SendPolicy {
            from: "Alerts <no_reply@operator.example>".to_string(),
            allowed_senders: allowed.iter().map(|a| a.to_string()).collect(),
            max_recipients: 3,
        }
    }

    #[test]
    fn only_the_operators_sender_and_what_it_lists_are_allowed() {
        let none = policy(&[]);
        assert!(none.check_sender("no_reply@operator.example").is_ok());
        assert!(none.check_sender("Ops <no_reply@OPERATOR.example>").is_ok());
        for refused in [
            "security@bank.example",
            "Bank <security@bank.example>",
            "no_reply@operator.example.evil",
            "not an address",
            "",
        ] {
            assert_eq!(
                none.check_sender(refused),
                Err(PolicyError::Sender(refused.to_string())),
                "{refused}"
            );
        }
        let listed = policy(&["acme.example", "billing@widgets.example"]);
        assert!(listed.check_sender("anyone@acme.example").is_ok());
        assert!(listed.check_sender("Acme <support@ACME.example>").is_ok());
        assert!(listed.check_sender("billing@widgets.example").is_ok());
        assert!(listed.check_sender("sales@widgets.example").is_err());
        assert!(listed.check_sender("x@sub.acme.example").is_err());
        assert!(listed.check_sender("x@acme.example.bank.example").is_err());
        assert_eq!(
            listed.envelope_sender().unwrap().to_string(),
            "no_reply@operator.example"
        );
    }

    #[test]
    fn recipients_are_capped() {
        assert!(policy(&[]).check_recipients(3).is_ok());
        assert_eq!(
            policy(&[]).check_recipients(4),
            Err(PolicyError::TooManyRecipients { count: 4, max: 3 })
        );
    }
}
