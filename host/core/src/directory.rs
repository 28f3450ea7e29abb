//! Account-scoped reads, as modules reach them through the `directory` and `account` imports,
//! in cfhost's own types (the imports convert them to the WIT bindings).

use crate::call::Endpoint;

/// A user of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Where to ring the user; one default endpoint when the user document names none.
    pub endpoints: Vec<Endpoint>,
}

/// An account's public settings (its `account.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountSettings {
    pub id: String,
    pub name: Option<String>,
    pub realm: Option<String>,
    /// An IANA time zone name, e.g. `Europe/Paris`.
    pub timezone: Option<String>,
}

/// Users and settings by account. Every read names the account, which the host takes from the
/// call, never from the module.
pub trait Directory: Send + Sync {
    /// One entry per id, `None` where the account has no such user.
    fn lookup_users(&self, account_id: &str, ids: &[String]) -> Vec<Option<User>>;
    /// The account's settings (only its id when it has none).
    fn account_settings(&self, account_id: &str) -> AccountSettings;
}
