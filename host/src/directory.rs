//! Account-scoped user lookup, as modules reach it through the `directory` import.

use crate::bindings::cfhost::callflow::directory::User;

/// Users by account. Every lookup names the account, which the host takes from the call, never
/// from the module.
pub trait Directory: Send + Sync {
    /// One entry per id, `None` where the account has no such user.
    fn lookup_users(&self, account_id: &str, ids: &[String]) -> Vec<Option<User>>;
}
