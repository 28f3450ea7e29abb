//! Account-scoped reads, as modules reach them through the `directory` and `account` imports.

use crate::bindings::cfhost::callflow::account::AccountSettings;
use crate::bindings::cfhost::callflow::directory::User;

/// Users and settings by account. Every read names the account, which the host takes from the
/// call, never from the module.
pub trait Directory: Send + Sync {
    /// One entry per id, `None` where the account has no such user.
    fn lookup_users(&self, account_id: &str, ids: &[String]) -> Vec<Option<User>>;
    /// The account's settings (only its id when it has none).
    fn account_settings(&self, account_id: &str) -> AccountSettings;
}
