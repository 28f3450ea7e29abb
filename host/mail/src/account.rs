//! What the mailer reads of an account in the data directory `serve` uses:
//! `accounts/<id>/account.json` (name, realm, time zone, language) and the e-mail addresses of
//! its admins (`users/*.json` with `priv_level: "admin"`), for `admins` recipients.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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

    /// Reads account `id` from the data directory `data`.
    pub fn load(data: &Path, id: &str) -> Result<AccountInfo, AccountError> {
        let dir = data.join("accounts").join(id);
        let file = dir.join("account.json");
        let document = match std::fs::read_to_string(&file) {
            Ok(text) => {
                serde_json::from_str::<Value>(&text).map_err(|e| AccountError::Unreadable {
                    file: file.clone(),
                    message: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if dir.is_dir() {
                    json!({})
                } else {
                    return Err(AccountError::Unknown(id.to_string()));
                }
            }
            Err(e) => {
                return Err(AccountError::Unreadable {
                    file,
                    message: e.to_string(),
                });
            }
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
            admin_emails: admin_emails(&dir.join("users")),
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

/// The accounts as last read, read again when `account.json` or the `users/` directory
/// changes (a file written in place of another, as `serve` writes, changes the directory).
#[derive(Debug, Default)]
pub struct Accounts {
    cache: Mutex<HashMap<String, (Fingerprint, Arc<AccountInfo>)>>,
}

type Fingerprint = [Option<(u64, SystemTime)>; 2];

impl Accounts {
    /// Account `id` of the data directory `data`.
    pub fn get(&self, data: &Path, id: &str) -> Result<Arc<AccountInfo>, AccountError> {
        let dir = data.join("accounts").join(id);
        let fingerprint = [dir.join("account.json"), dir.join("users")].map(|path| stamp(&path));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, info)) = cache.get(id)
            && *known == fingerprint
        {
            return Ok(Arc::clone(info));
        }
        let info = Arc::new(AccountInfo::load(data, id)?);
        cache.insert(id.to_string(), (fingerprint, Arc::clone(&info)));
        Ok(info)
    }
}

/// A file's length and modification time, to tell when it changed; `None` when it is not there.
pub(crate) fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
}

/// The addresses of the users whose `priv_level` is `admin`, sorted.
fn admin_emails(users: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(users) else {
        return Vec::new();
    };
    let mut emails: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "json"))
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .filter_map(|text| serde_json::from_str::<Value>(&text).ok())
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

    #[test]
    fn an_account_reads_its_document_and_admins() {
        let dir = tempfile::tempdir().unwrap();
        let account = dir.path().join("accounts/acme");
        std::fs::create_dir_all(account.join("users")).unwrap();
        std::fs::write(
            account.join("account.json"),
            r#"{"name": "Acme & Sons", "realm": "acme.example", "timezone": "America/New_York"}"#,
        )
        .unwrap();
        std::fs::write(
            account.join("users/a.json"),
            r#"{"email": "boss@acme.example", "priv_level": "admin"}"#,
        )
        .unwrap();
        std::fs::write(
            account.join("users/b.json"),
            r#"{"email": "user@acme.example"}"#,
        )
        .unwrap();
        let info = AccountInfo::load(dir.path(), "acme").unwrap();
        assert_eq!(info.name.as_deref(), Some("Acme & Sons"));
        assert_eq!(info.timezone, "America/New_York");
        assert_eq!(info.admin_emails, ["boss@acme.example"]);
        assert!(matches!(
            AccountInfo::load(dir.path(), "nobody"),
            Err(AccountError::Unknown(_))
        ));
        let accounts = Accounts::default();
        assert_eq!(
            accounts.get(dir.path(), "acme").unwrap().timezone,
            "America/New_York"
        );
        std::fs::write(
            account.join("account.json"),
            r#"{"name": "Acme", "timezone": "Europe/Paris"}"#,
        )
        .unwrap();
        assert_eq!(
            accounts.get(dir.path(), "acme").unwrap().timezone,
            "Europe/Paris",
            "a change is read again"
        );
        std::fs::write(account.join("account.json"), "{").unwrap();
        let error = AccountInfo::load(dir.path(), "acme")
            .unwrap_err()
            .to_string();
        assert!(error.contains("account.json"), "{error}");
    }
}
