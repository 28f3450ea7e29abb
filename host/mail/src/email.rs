//! From a notification to the email it becomes: the template (`templates`), the macros
//! (`macros`), the recipients (`find_addresses`), then a MIME message: multipart/alternative
//! text and HTML, `Date`, a `Message-ID` derived from the notification (a repeat carries the
//! same one), `X-Call-ID`, and Cc delivered but Bcc never shown.

use std::path::Path;
use std::sync::Arc;

use lettre::Message;
use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use serde::Serialize;

use crate::account::{AccountError, AccountInfo, Accounts};
use crate::macros::{self, SystemParams};
use crate::notification::{Kind, Notification};
use crate::render::{Rendered, Sources, Template, TemplateError};
use crate::templates::{Resolved, TemplateLookupError, TemplateStore, find_addresses};

/// Why a notification becomes no email; all are for good (retrying changes nothing), and
/// each has teletype's failure reason.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Template(#[from] TemplateLookupError),
    #[error("template error: {0}")]
    Render(TemplateError),
    #[error("no address to send to")]
    NoRecipients,
    #[error("no sender address")]
    MissingFrom,
    #[error("cannot encode the email: {0}")]
    Encoding(String),
}

impl ComposeError {
    /// teletype's `Failure-Message` for it.
    pub fn teletype_reason(&self) -> String {
        match self {
            ComposeError::Account(_)
            | ComposeError::Template(TemplateLookupError::Missing { .. }) => {
                "validation_failed".to_string()
            }
            ComposeError::Template(e) => format!("template_error: {e}"),
            ComposeError::Render(e) => format!("template_error: {e}"),
            ComposeError::NoRecipients => "no_to_addresses".to_string(),
            ComposeError::MissingFrom => "missing_from".to_string(),
            ComposeError::Encoding(_) => "email_encoding_failed".to_string(),
        }
    }
}

/// What a notification comes to.
#[derive(Debug)]
pub enum Composed {
    Email(Box<Email>),
    /// The template says `enabled: false`: nothing is sent (teletype's `disabled`).
    Disabled,
}

/// An email, rendered and addressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Email {
    pub account_id: String,
    pub template_id: String,
    pub call_id: Option<String>,
    /// `<identity@hostname>`, the same for every delivery of one notification.
    pub message_id: String,
    pub from: String,
    pub reply_to: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    #[serde(flatten)]
    pub rendered: Rendered,
}

/// `X-Call-ID`: the call the email is about (teletype 4.3 has `X-Teletype-Log-ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct XCallId(String);

impl Header for XCallId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Call-ID")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(XCallId(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

impl Email {
    /// The MIME message.
    pub fn to_message(&self) -> Result<Message, ComposeError> {
        let mailbox = |address: &str| -> Result<Mailbox, ComposeError> {
            address
                .parse()
                .map_err(|e| ComposeError::Encoding(format!("`{address}`: {e}")))
        };
        let mut builder = Message::builder()
            .from(mailbox(&self.from)?)
            .subject(self.rendered.subject.clone())
            .message_id(Some(self.message_id.clone()));
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(mailbox(reply_to)?);
        }
        for address in &self.to {
            builder = builder.to(mailbox(address)?);
        }
        for address in &self.cc {
            builder = builder.cc(mailbox(address)?);
        }
        for address in &self.bcc {
            builder = builder.bcc(mailbox(address)?);
        }
        if let Some(call_id) = &self.call_id {
            builder = builder.header(XCallId(call_id.clone()));
        }
        let built = match (&self.rendered.text, &self.rendered.html) {
            (Some(text), Some(html)) => builder.multipart(
                MultiPart::alternative()
                    .singlepart(text_part(ContentType::TEXT_PLAIN, text))
                    .singlepart(text_part(ContentType::TEXT_HTML, html)),
            ),
            (Some(text), None) => builder.singlepart(text_part(ContentType::TEXT_PLAIN, text)),
            (None, Some(html)) => builder.singlepart(text_part(ContentType::TEXT_HTML, html)),
            (None, None) => builder.singlepart(text_part(ContentType::TEXT_PLAIN, "")),
        };
        built.map_err(|e| ComposeError::Encoding(e.to_string()))
    }

    /// The message as an `.eml` file holds it (Bcc not shown).
    pub fn to_eml(&self) -> Result<Vec<u8>, ComposeError> {
        Ok(self.to_message()?.formatted())
    }
}

/// Turns notifications into emails, as teletype would.
pub struct Composer {
    templates: TemplateStore,
    accounts: Accounts,
    system: SystemParams,
    /// The sender of teletype's default template.
    from: String,
}

impl Composer {
    /// Emails for the accounts and templates under `data`, sent by `system` from `from`.
    pub fn new(data: &Path, system: SystemParams, from: String) -> Self {
        Composer {
            templates: TemplateStore::new(data, &from),
            accounts: Accounts::default(),
            system,
            from,
        }
    }

    /// Emails for the data directory `data` as a mailer with `config`'s settings sends them.
    pub fn for_config(data: &Path, config: &crate::MailerConfig) -> Self {
        let system = SystemParams {
            hostname: config.hostname(),
            node: config.node(),
        };
        Composer::new(data, system, config.from())
    }

    /// The templates it renders.
    pub fn templates(&self) -> &TemplateStore {
        &self.templates
    }

    /// Who sends.
    pub fn system(&self) -> &SystemParams {
        &self.system
    }

    /// The email `notification` becomes; `now` (Unix seconds) dates one without a timestamp.
    pub fn compose(&self, notification: &Notification, now: i64) -> Result<Composed, ComposeError> {
        let (account, resolved) = self.lookup(notification)?;
        if resolved.document.enabled == Some(false) {
            return Ok(Composed::Disabled);
        }
        let macros = macros::build(notification, &account, &self.system, now);
        let rendered = self.render(notification, &resolved, &macros)?;
        Ok(Composed::Email(Box::new(self.address(
            notification,
            &resolved,
            &account,
            rendered,
        )?)))
    }

    /// What `notification` would look like, sending nothing: the template's rendering even if
    /// it is disabled or has no recipients (KAZOO's preview sends a real email).
    pub fn preview(&self, notification: &Notification, now: i64) -> Result<Email, ComposeError> {
        let (account, resolved) = self.lookup(notification)?;
        let macros = macros::build(notification, &account, &self.system, now);
        let rendered = self.render(notification, &resolved, &macros)?;
        match self.address(notification, &resolved, &account, rendered.clone()) {
            Err(ComposeError::NoRecipients) => Ok(Email {
                account_id: notification.account_id.clone(),
                template_id: notification.template_id.clone(),
                call_id: notification.call_id.clone(),
                message_id: self.message_id(notification),
                from: resolved
                    .document
                    .from
                    .clone()
                    .unwrap_or_else(|| self.from.clone()),
                reply_to: resolved.document.reply_to.clone(),
                to: Vec::new(),
                cc: Vec::new(),
                bcc: Vec::new(),
                rendered,
            }),
            other => other,
        }
    }

    /// The notification's account and the template it renders with.
    fn lookup(
        &self,
        notification: &Notification,
    ) -> Result<(Arc<AccountInfo>, Arc<Resolved>), ComposeError> {
        let account = self
            .accounts
            .get(self.templates.data_dir(), &notification.account_id)?;
        let resolved = self.templates.resolve(
            notification.kind,
            &notification.account_id,
            &notification.template_id,
        )?;
        Ok((account, resolved))
    }

    /// `<identity@hostname>`.
    fn message_id(&self, notification: &Notification) -> String {
        format!("<{}@{}>", notification.identity(), self.system.hostname)
    }

    /// Renders the template; a `Subject` in the notification is the subject's template.
    fn render(
        &self,
        notification: &Notification,
        resolved: &Resolved,
        macros: &serde_json::Value,
    ) -> Result<Rendered, ComposeError> {
        let mut rendered = resolved
            .template
            .render(macros)
            .map_err(ComposeError::Render)?;
        if let Some(subject) = notification.text("subject") {
            let template = Template::compile(&Sources {
                subject,
                ..Sources::default()
            })
            .map_err(ComposeError::Render)?;
            rendered.subject = template
                .render(macros)
                .map_err(ComposeError::Render)?
                .subject;
        }
        if notification.kind == Kind::CfNotification && rendered.subject.is_empty() {
            return Err(ComposeError::Render(TemplateError {
                part: crate::render::Part::Subject,
                line: None,
                message: "the template has no subject".to_string(),
            }));
        }
        Ok(rendered)
    }

    /// Recipients, sender and reply address, as `find_addresses` finds them.
    fn address(
        &self,
        notification: &Notification,
        resolved: &Resolved,
        account: &AccountInfo,
        rendered: Rendered,
    ) -> Result<Email, ComposeError> {
        let document = &resolved.document;
        let field = |key: &str| notification.fields.get(key);
        let admins = &account.admin_emails;
        let to = find_addresses(document.to.as_ref(), field("to"), admins);
        if to.is_empty() {
            return Err(ComposeError::NoRecipients);
        }
        let cc = find_addresses(document.cc.as_ref(), field("cc"), admins);
        let bcc = find_addresses(document.bcc.as_ref(), field("bcc"), admins);
        let from = notification
            .text("from")
            .or_else(|| document.from.clone())
            .unwrap_or_else(|| self.from.clone());
        if from.is_empty() {
            return Err(ComposeError::MissingFrom);
        }
        let reply_to = notification
            .text("reply_to")
            .or_else(|| document.reply_to.clone());
        Ok(Email {
            account_id: notification.account_id.clone(),
            template_id: notification.template_id.clone(),
            call_id: notification.call_id.clone(),
            message_id: self.message_id(notification),
            from,
            reply_to,
            to,
            cc,
            bcc,
            rendered,
        })
    }
}

/// A part of `content_type` with `text` as its body, its lines ended by CRLF. Sent as it is
/// (`7bit`) when it is ASCII with lines of at most 998 characters, as rendered templates
/// mostly are: nothing to encode, and the least for the receiving side to decode. Otherwise
/// lettre's choice of quoted-printable or base64 (lettre sends as it is only lines under 76).
fn text_part(content_type: ContentType, text: &str) -> SinglePart {
    let (text, seven_bit) = crlf_lines(text);
    let part = SinglePart::builder().header(content_type);
    if seven_bit {
        part.body(Body::dangerous_pre_encoded(
            text.into_bytes(),
            ContentTransferEncoding::SevenBit,
        ))
    } else {
        part.body(text)
    }
}

/// `text` with every line ended by CRLF (a CR, an LF or a CRLF ends a line), and whether the
/// result is valid `7bit` content (RFC 2045, RFC 5322): ASCII, no NUL, no line longer than
/// 998 characters. One pass over the text.
fn crlf_lines(text: &str) -> (String, bool) {
    const LONGEST: usize = 998;
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 16);
    let mut seven_bit = text.is_ascii() && !bytes.contains(&0);
    let (mut start, mut at) = (0, 0);
    while at < bytes.len() {
        match bytes[at] {
            end @ (b'\r' | b'\n') => {
                seven_bit &= at - start <= LONGEST;
                out.push_str(&text[start..at]);
                out.push_str("\r\n");
                at += if end == b'\r' && bytes.get(at + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = at;
            }
            _ => at += 1,
        }
    }
    seven_bit &= bytes.len() - start <= LONGEST;
    out.push_str(&text[start..]);
    (out, seven_bit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formatted(text: &str) -> String {
        let message = Message::builder()
            .from("a@example.com".parse().unwrap())
            .to("b@example.com".parse().unwrap())
            .singlepart(text_part(ContentType::TEXT_PLAIN, text))
            .unwrap();
        String::from_utf8(message.formatted()).unwrap()
    }

    #[test]
    fn ascii_with_lines_up_to_998_goes_as_it_is_with_crlf() {
        let long = "x".repeat(998);
        let eml = formatted(&format!("Hello =3D caller\n{long}\nbye"));
        assert!(eml.contains("Content-Transfer-Encoding: 7bit\r\n"), "{eml}");
        assert!(
            eml.contains(&format!("\r\n\r\nHello =3D caller\r\n{long}\r\nbye")),
            "{eml}"
        );
    }

    #[test]
    fn lines_end_in_crlf_and_only_ascii_lines_up_to_998_without_nul_are_7bit() {
        assert_eq!(
            crlf_lines("a\rb\nc\r\nd\n\n"),
            ("a\r\nb\r\nc\r\nd\r\n\r\n".to_string(), true)
        );
        assert!(crlf_lines(&"x".repeat(998)).1);
        assert!(crlf_lines(&format!("{}\r\n", "x".repeat(998))).1);
        for text in [
            "Zoë",
            &"x".repeat(999),
            &format!("a\n{}", "x".repeat(999)),
            "a \0",
        ] {
            assert!(!crlf_lines(text).1, "{text:?}");
        }
        assert_eq!(crlf_lines("Zoë\n").0, "Zoë\r\n");
    }

    #[test]
    fn non_ascii_and_long_lines_are_encoded() {
        for text in ["Zoë called".to_string(), "x".repeat(999)] {
            let eml = formatted(&text);
            assert!(
                eml.contains("Content-Transfer-Encoding: quoted-printable")
                    || eml.contains("Content-Transfer-Encoding: base64"),
                "{text:?}: {eml}"
            );
        }
    }
}
