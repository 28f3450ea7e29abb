//! The mailers' shared memory of what was sent: before a mailer sends a notification it claims
//! the notification's identity (a unique key: one `INSERT ... ON CONFLICT`), so that two
//! mailers on two machines, each handed a copy, never both send it.
//!
//! A claim is held by one owner (one delivery being handled) until it is settled: `sent`, and
//! it stays, so every later copy is a duplicate; or released (nothing was sent: the template is
//! disabled, the notification was dead-lettered or put back), and the next copy may claim it.
//! A claim whose owner died is taken over once its lease has run out.

use std::time::Duration;

use crate::StoreError;

/// What claiming a notification came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds it: send, then settle.
    Ours,
    /// It was sent: the copy is a duplicate.
    AlreadySent,
    /// Another owner holds it and its lease has not run out: its outcome is not known yet.
    HeldElsewhere { owner: String },
}

/// Where claims are kept ([`crate::PgStore`]).
#[async_trait::async_trait]
pub trait Claims: Send + Sync {
    /// Claims `identity` for `owner` (unique to one delivery being handled), taking it over
    /// from an owner that has held it unsettled for longer than `lease`.
    async fn claim(
        &self,
        identity: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Claim, StoreError>;

    /// Settles `owner`'s claim of `identity`: kept as sent, or released when nothing was sent.
    async fn settle(&self, identity: &str, owner: &str, sent: bool) -> Result<(), StoreError>;

    /// Forgets what was sent longer ago than `age` (a copy cannot come that late); returns
    /// how many were forgotten.
    async fn forget_older_than(&self, age: Duration) -> Result<u64, StoreError>;
}
