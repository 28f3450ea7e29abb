//! What the mailer reads of an account in the store `serve` uses: its `account.json` (name,
//! realm, time zone, language) and the e-mail addresses of its admins (users with
//! `priv_level: "admin"`), for `admins` recipients.

use std::path::PathBuf;

use cfhost_store::AccountProfile;
use serde_json::{Value, json};

/// KAZOO's `accounts.default_timezone`, for an account that names none (or `inherit`).
pub const DEFAULT_TIMEZONE: &str = "America/Los_Angeles";

/// An account's `account.*` macros and its admins' addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub id: String,
    pub name: Option<String>,
    pub realm: Option<String>,
    pub timezone: String,
    pub language: Option<String>,
    pub admin_emails: Vec<String>,
}

/// An account that cannot be read, naming its file.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("account `{0}` does not exist")]
    Unknown(String),
    #[error("{file}: {message}")]
    Unreadable { file: PathBuf, message: String },
}

impl AccountInfo {
    /// An account known only by its id (no name, realm or admins; KAZOO's default zone).
    pub fn unnamed(id: &str) -> Self {
        AccountInfo {
            id: id.to_string(),
            name: None,
            realm: None,
            timezone: DEFAULT_TIMEZONE.to_string(),
            language: None,
            admin_emails: Vec::new(),
        }
    }

    /// Account `id` as the store gave it (`profile`).
    pub fn from_profile(id: &str, profile: &AccountProfile) -> Result<AccountInfo, AccountError> {
        let document = match &profile.settings {
            Some(settings) => serde_json::from_str::<Value>(&settings.text).map_err(|e| {
                AccountError::Unreadable {
                    file: settings.place.clone(),
                    message: e.to_string(),
                }
            })?,
            None => json!({}),
        };
        let text = |key: &str| {
            document
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let timezone = text("timezone")
            .filter(|zone| zone != "inherit")
            .unwrap_or_else(|| DEFAULT_TIMEZONE.to_string());
        Ok(AccountInfo {
            id: id.to_string(),
            name: text("name"),
            realm: text("realm"),
            timezone,
            language: text("language"),
            admin_emails: admin_emails(profile),
        })
    }

    /// `account.*`: the values it has.
    pub fn to_json(&self) -> Value {
        let mut account = json!({"id": self.id, "timezone": self.timezone});
        for (key, value) in [
            ("name", &self.name),
            ("realm", &self.realm),
            ("language", &self.language),
        ] {
            if let Some(value) = value {
                account[key] = json!(value);
            }
        }
        account
    }
}

/// The addresses of the users whose `priv_level` is `admin`, sorted.
fn admin_emails(profile: &AccountProfile) -> Vec<String> {
    let mut emails: Vec<String> = profile
        .users
        .iter()
        .filter_map(|user| serde_json::from_str::<Value>(&user.text).ok())
        .filter(|user| user.get("priv_level").and_then(Value::as_str) == Some("admin"))
        .filter_map(|user| {
            user.get("email")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    emails.sort();
    emails.dedup();
    emails
}

#[cfg(test)]
mod tests {
    use super::*;
    use cfhost_store::Document;

    fn document(id: &str, text: &str) -> Document {
        Document {
            id: id.to_string(),
            place: PathBuf::from(format!("accounts/acme/{id}.json")),
            text: text.to_string(),
        }
    }

    #[test]
    fn an_account_reads_its_document_and_admins() {
        let profile = AccountProfile {
            settings: Some(document(
                "account",
                r#"{"name": "Acme & Sons", "realm": "acme.example", "timezone": "America/New_York"}"#,
            )),
            users: vec![
                document(
                    "a",
                    r#"{"email": "boss@acme.example", "priv_level": "admin"}"#,
                ),
                document("b", r#"{"email": "user@acme.example"}"#),
                document("c", "not json"),
            ],
        };
        let info = AccountInfo::from_profile("acme", &profile).unwrap();
        assert_eq!(info.name.as_deref(), Some("Acme & Sons"));
        assert_eq!(info.timezone, "America/New_York");
        assert_eq!(info.admin_emails, ["boss@acme.example"]);
        let bare = AccountInfo::from_profile("acme", &AccountProfile::default()).unwrap();
        assert_eq!(bare.timezone, DEFAULT_TIMEZONE);
        let broken = AccountProfile {
            settings: Some(document("account", "{")),
            users: Vec::new(),
        };
        let error = AccountInfo::from_profile("acme", &broken)
            .unwrap_err()
            .to_string();
        assert!(error.contains("accounts/acme/account.json"), "{error}");
    }
}
