//! Notification templates: teletype's `missed_call` (subject, text and HTML verbatim, with its
//! document's defaults) and the account's own, kept in the store as KAZOO's notification
//! documents are, with their two bodies beside ([`TemplateParts`]; in a data directory
//! `accounts/<account_id>/notifications/<template_id>.json`, `.text` and `.html`).
//!
//! Which template a notification uses (teletype's rules): a missed call takes the account's
//! `missed_call` document where there is one (fields it does not set come from the default)
//! and the account's bodies where it has any, else teletype's; a `cf_notification` takes the
//! account's own template and nothing else, which must have a body.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cfhost_store::TemplateParts;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::notification::Kind;
use crate::render::{RenderLimits, Sources, Template, TemplateError};

/// teletype's `missed_call.text`, verbatim.
pub const MISSED_CALL_TEXT: &str = include_str!("../templates/missed_call.text");
/// teletype's `missed_call.html`, verbatim.
pub const MISSED_CALL_HTML: &str = include_str!("../templates/missed_call.html");
/// teletype's `missed_call` subject.
pub const MISSED_CALL_SUBJECT: &str = "Missed call from {{caller_id.name_number}}";

/// Who receives: KAZOO's `{"type": "original" | "specified" | "admins", "email_addresses": [...]}`,
/// or a plain address or list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Recipients {
    Typed {
        #[serde(rename = "type")]
        kind: RecipientType,
        #[serde(default)]
        email_addresses: Vec<String>,
    },
    Plain(OneOrMany),
}

impl Recipients {
    /// The addresses it lists (not those it takes from the notification or the admins).
    pub fn addresses(&self) -> Vec<&str> {
        match self {
            Recipients::Typed {
                email_addresses, ..
            } => email_addresses.iter().map(String::as_str).collect(),
            Recipients::Plain(OneOrMany::One(one)) => vec![one.as_str()],
            Recipients::Plain(OneOrMany::Many(many)) => many.iter().map(String::as_str).collect(),
        }
    }
}

/// One address or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one.clone()],
            OneOrMany::Many(many) => many.clone(),
        }
    }
}

/// How `find_addresses` reads a recipient field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientType {
    /// The notification's own addresses, else the document's.
    Original,
    /// The document's addresses, else the notification's.
    Specified,
    /// The account's admins, else the document's addresses.
    Admins,
}

/// A notification document's fields (KAZOO's names); every one is optional in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Document {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Recipients>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cc: Option<Recipients>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bcc: Option<Recipients>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// KAZOO keeps these; the mailer reads none of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_charset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Document {
    /// `self`, with what it does not set taken from `defaults`.
    fn over(self, defaults: &Document) -> Document {
        Document {
            subject: self.subject.or_else(|| defaults.subject.clone()),
            from: self.from.or_else(|| defaults.from.clone()),
            to: self.to.or_else(|| defaults.to.clone()),
            cc: self.cc.or_else(|| defaults.cc.clone()),
            bcc: self.bcc.or_else(|| defaults.bcc.clone()),
            reply_to: self.reply_to.or_else(|| defaults.reply_to.clone()),
            enabled: self.enabled.or(defaults.enabled),
            ..self
        }
    }
}

/// teletype's `missed_call` document: `to` the notification's addresses, nobody in copy.
pub fn missed_call_defaults(from: &str) -> Document {
    let nobody = || Recipients::Typed {
        kind: RecipientType::Specified,
        email_addresses: Vec::new(),
    };
    Document {
        subject: Some(MISSED_CALL_SUBJECT.to_string()),
        from: Some(from.to_string()),
        to: Some(Recipients::Typed {
            kind: RecipientType::Original,
            email_addresses: Vec::new(),
        }),
        cc: Some(nobody()),
        bcc: Some(nobody()),
        enabled: Some(true),
        ..Document::default()
    }
}

/// A template ready to render: its document (defaults applied) and its compiled parts.
#[derive(Debug)]
pub struct Resolved {
    pub document: Document,
    pub template: Arc<Template>,
    /// Whose bodies these are: the account's, or teletype's (`None`).
    pub owner: Option<String>,
}

/// Why a notification has no template to render: each is a permanent failure.
#[derive(Debug, thiserror::Error)]
pub enum TemplateLookupError {
    /// A `cf_notification` whose account has no such template (teletype: `validation_failed`).
    #[error("account `{account}` has no template `{template_id}`")]
    Missing {
        account: String,
        template_id: String,
    },
    /// A file that cannot be read or parsed.
    #[error("{file}: {message}")]
    Unreadable { file: PathBuf, message: String },
    /// Its sources do not compile.
    #[error("template `{template_id}` of account `{account}`: {error}")]
    Invalid {
        account: String,
        template_id: String,
        error: TemplateError,
    },
}

/// An account's template as stored: its document and bodies, any of which may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub document: Option<Document>,
    pub text: Option<String>,
    pub html: Option<String>,
}

impl Stored {
    /// What the store holds of `account`'s template `template_id`, its document parsed.
    pub fn parse(
        parts: &TemplateParts,
        account: &str,
        template_id: &str,
    ) -> Result<Stored, TemplateLookupError> {
        let document = parts
            .document
            .as_deref()
            .map(|text| {
                serde_json::from_str::<Document>(text).map_err(|e| {
                    TemplateLookupError::Unreadable {
                        file: PathBuf::from(format!(
                            "accounts/{account}/notifications/{template_id}.json"
                        )),
                        message: e.to_string(),
                    }
                })
            })
            .transpose()?;
        Ok(Stored {
            document,
            text: parts.text.clone(),
            html: parts.html.clone(),
        })
    }

    /// As the store keeps it.
    pub fn to_parts(&self) -> TemplateParts {
        TemplateParts {
            document: self.document.as_ref().map(|document| {
                serde_json::to_string_pretty(document).expect("a document serialises")
            }),
            text: self.text.clone(),
            html: self.html.clone(),
        }
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.document.is_none() && self.text.is_none() && self.html.is_none()
    }
}

/// The templates of every account, compiled once and compiled again when what the store
/// holds of one changes.
pub struct TemplateStore {
    limits: RenderLimits,
    /// teletype's `missed_call` document, with the configured sender.
    missed_call_defaults: Document,
    missed_call: Arc<Template>,
    cache: Mutex<HashMap<(String, String), Cached>>,
}

struct Cached {
    parts: TemplateParts,
    resolved: Arc<Resolved>,
}

impl TemplateStore {
    /// Templates rendering within `limits`; teletype's `missed_call` is sent `from` this
    /// address.
    pub fn new(from: &str, limits: RenderLimits) -> Self {
        let missed_call = Template::compile(
            &Sources {
                subject: MISSED_CALL_SUBJECT.to_string(),
                text: Some(MISSED_CALL_TEXT.to_string()),
                html: Some(MISSED_CALL_HTML.to_string()),
            },
            limits,
        )
        .expect("teletype's missed_call template compiles");
        TemplateStore {
            limits,
            missed_call_defaults: missed_call_defaults(from),
            missed_call: Arc::new(missed_call),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The bounds every template here renders within.
    pub fn limits(&self) -> RenderLimits {
        self.limits
    }

    /// The template `kind` of `account` renders with (`template_id` for a `cf_notification`),
    /// given what the store holds of it (`parts`).
    pub fn resolve(
        &self,
        kind: Kind,
        account: &str,
        template_id: &str,
        parts: TemplateParts,
    ) -> Result<Arc<Resolved>, TemplateLookupError> {
        let key = (account.to_string(), template_id.to_string());
        if let Some(cached) = self.lock().get(&key)
            && cached.parts == parts
        {
            return Ok(Arc::clone(&cached.resolved));
        }
        let stored = Stored::parse(&parts, account, template_id)?;
        let resolved = Arc::new(self.compile(kind, account, template_id, stored)?);
        self.lock().insert(
            key,
            Cached {
                parts,
                resolved: Arc::clone(&resolved),
            },
        );
        Ok(resolved)
    }

    /// Compiles what is stored, with teletype's rules for what is missing.
    pub fn compile(
        &self,
        kind: Kind,
        account: &str,
        template_id: &str,
        stored: Stored,
    ) -> Result<Resolved, TemplateLookupError> {
        let invalid = |error| TemplateLookupError::Invalid {
            account: account.to_string(),
            template_id: template_id.to_string(),
            error,
        };
        let has_bodies = stored.text.is_some() || stored.html.is_some();
        match kind {
            Kind::MissedCall => {
                let document = stored
                    .document
                    .unwrap_or_default()
                    .over(&self.missed_call_defaults);
                if !has_bodies && document.subject.as_deref() == Some(MISSED_CALL_SUBJECT) {
                    return Ok(Resolved {
                        document,
                        template: Arc::clone(&self.missed_call),
                        owner: None,
                    });
                }
                let (text, html, owner) = if has_bodies {
                    (stored.text, stored.html, Some(account.to_string()))
                } else {
                    (
                        Some(MISSED_CALL_TEXT.to_string()),
                        Some(MISSED_CALL_HTML.to_string()),
                        None,
                    )
                };
                let sources = Sources {
                    subject: document.subject.clone().unwrap_or_default(),
                    text,
                    html,
                };
                let template = Arc::new(Template::compile(&sources, self.limits).map_err(invalid)?);
                Ok(Resolved {
                    document,
                    template,
                    owner,
                })
            }
            Kind::CfNotification => {
                let (Some(document), true) = (stored.document, has_bodies) else {
                    return Err(TemplateLookupError::Missing {
                        account: account.to_string(),
                        template_id: template_id.to_string(),
                    });
                };
                let sources = Sources {
                    subject: document.subject.clone().unwrap_or_default(),
                    text: stored.text,
                    html: stored.html,
                };
                let template = Arc::new(Template::compile(&sources, self.limits).map_err(invalid)?);
                Ok(Resolved {
                    document,
                    template,
                    owner: Some(account.to_string()),
                })
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A recipient field resolved as teletype's `find_addresses` does it: valid addresses (text
/// with exactly one `@`), sorted, each once.
pub fn find_addresses(
    field: Option<&Recipients>,
    from_notification: Option<&Value>,
    admins: &[String],
) -> Vec<String> {
    let notification: Vec<String> = match from_notification {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let valid = |list: Vec<String>| -> Vec<String> {
        let mut list: Vec<String> = list
            .into_iter()
            .map(|a| a.trim().to_string())
            .filter(|a| a.split('@').count() == 2 && !a.starts_with('@') && !a.ends_with('@'))
            .collect();
        list.sort();
        list.dedup();
        list
    };
    let first_of = |a: Vec<String>, b: Vec<String>| {
        let a = valid(a);
        if a.is_empty() { valid(b) } else { a }
    };
    match field {
        Some(Recipients::Typed {
            kind: RecipientType::Original,
            email_addresses,
        }) => first_of(notification, email_addresses.clone()),
        Some(Recipients::Typed {
            kind: RecipientType::Specified,
            email_addresses,
        }) => first_of(email_addresses.clone(), notification),
        Some(Recipients::Typed {
            kind: RecipientType::Admins,
            email_addresses,
        }) => first_of(admins.to_vec(), email_addresses.clone()),
        Some(Recipients::Plain(plain)) => first_of(notification, plain.to_vec()),
        None => valid(notification),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recipients_resolve_as_find_addresses_does() {
        let payload = json!(["b@x.com", "a@x.com", "a@x.com", "not-an-address", "c@d@e"]);
        let typed = |kind, addresses: &[&str]| Recipients::Typed {
            kind,
            email_addresses: addresses.iter().map(|a| a.to_string()).collect(),
        };
        let original = typed(RecipientType::Original, &["doc@x.com"]);
        assert_eq!(
            find_addresses(Some(&original), Some(&payload), &[]),
            ["a@x.com", "b@x.com"]
        );
        assert_eq!(find_addresses(Some(&original), None, &[]), ["doc@x.com"]);
        let specified = typed(RecipientType::Specified, &["doc@x.com"]);
        assert_eq!(
            find_addresses(Some(&specified), Some(&payload), &[]),
            ["doc@x.com"]
        );
        let admins = typed(RecipientType::Admins, &["doc@x.com"]);
        let boss = ["boss@x.com".to_string()];
        assert_eq!(find_addresses(Some(&admins), None, &boss), ["boss@x.com"]);
        assert_eq!(find_addresses(Some(&admins), None, &[]), ["doc@x.com"]);
        let nobody = typed(RecipientType::Specified, &[]);
        assert!(find_addresses(Some(&nobody), None, &[]).is_empty());
    }

    #[test]
    fn documents_read_kazoos_fields_and_refuse_others() {
        let document: Document = serde_json::from_value(json!({
            "subject": "Hi", "from": "a@x.com", "to": {"type": "admins"},
            "cc": {"type": "specified", "email_addresses": ["c@x.com"]}, "bcc": "d@x.com",
            "enabled": false}))
        .unwrap();
        assert_eq!(document.enabled, Some(false));
        assert_eq!(
            document.bcc,
            Some(Recipients::Plain(OneOrMany::One("d@x.com".into())))
        );
        assert!(serde_json::from_value::<Document>(json!({"subjet": "typo"})).is_err());
    }

    #[test]
    fn a_cf_notification_needs_the_accounts_own_template_with_a_body() {
        let store = TemplateStore::new("no_reply@mx", RenderLimits::default());
        let resolve = |kind, template_id, parts: &TemplateParts| {
            store.resolve(kind, "acme", template_id, parts.clone())
        };
        let mut parts = TemplateParts::default();
        let missing = resolve(Kind::CfNotification, "welcome", &parts);
        assert!(matches!(missing, Err(TemplateLookupError::Missing { .. })));
        parts.document = Some(r#"{"subject": "Hello {{account.name}}"}"#.to_string());
        let no_body = resolve(Kind::CfNotification, "welcome", &parts);
        assert!(matches!(no_body, Err(TemplateLookupError::Missing { .. })));
        parts.text = Some("Hi {{call.comments}}\n".to_string());
        let resolved = resolve(Kind::CfNotification, "welcome", &parts).unwrap();
        assert_eq!(resolved.owner.as_deref(), Some("acme"));
        let again = resolve(Kind::CfNotification, "welcome", &parts).unwrap();
        assert!(Arc::ptr_eq(&resolved, &again), "compiled once");
        parts.text = Some("Bye\n".to_string());
        let changed = resolve(Kind::CfNotification, "welcome", &parts).unwrap();
        assert!(
            !Arc::ptr_eq(&resolved, &changed),
            "compiled again once changed"
        );
        parts.document = Some("{".to_string());
        let unreadable = resolve(Kind::CfNotification, "welcome", &parts)
            .unwrap_err()
            .to_string();
        assert!(
            unreadable.contains("accounts/acme/notifications/welcome.json"),
            "{unreadable}"
        );
        // A missed call takes teletype's template where the account has none.
        let default = resolve(Kind::MissedCall, "missed_call", &TemplateParts::default()).unwrap();
        assert_eq!(default.owner, None);
        assert_eq!(default.document.from.as_deref(), Some("no_reply@mx"));
    }
}
