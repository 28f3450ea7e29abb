//! What the mailer did, per notification type: counted, logged every few seconds while it
//! changes and once at exit.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::notification::Kind;

/// One type's counts.
#[derive(Debug, Default)]
pub struct KindCounters {
    /// Emails the SMTP server accepted.
    pub sent: AtomicU64,
    /// Sends that failed for now and were tried again.
    pub retried: AtomicU64,
    /// Notifications given up on, put in the dead-letter queue.
    pub dead_lettered: AtomicU64,
    /// Notifications whose template is disabled.
    pub skipped: AtomicU64,
    /// Deliveries of a notification already emailed.
    pub duplicates: AtomicU64,
}

/// The counts of every type, and of messages that were no notification at all.
#[derive(Debug, Default)]
pub struct Counters {
    pub missed_call: KindCounters,
    pub cf_notification: KindCounters,
    /// Messages that are not a notification the mailer sends (dead-lettered).
    pub invalid: AtomicU64,
}

impl Counters {
    /// The counts of `kind`.
    pub fn of(&self, kind: Kind) -> &KindCounters {
        match kind {
            Kind::MissedCall => &self.missed_call,
            Kind::CfNotification => &self.cf_notification,
        }
    }

    /// One line: `missed_call sent=3 retried=0 ... cf_notification ... invalid=0`.
    pub fn summary(&self) -> String {
        let kind = |name: &str, c: &KindCounters| {
            format!(
                "{name} sent={} retried={} dead_lettered={} skipped={} duplicates={}",
                c.sent.load(Ordering::Relaxed),
                c.retried.load(Ordering::Relaxed),
                c.dead_lettered.load(Ordering::Relaxed),
                c.skipped.load(Ordering::Relaxed),
                c.duplicates.load(Ordering::Relaxed),
            )
        };
        format!(
            "{}; {}; invalid={}",
            kind("missed_call", &self.missed_call),
            kind("cf_notification", &self.cf_notification),
            self.invalid.load(Ordering::Relaxed)
        )
    }
}

/// Adds one to `counter`.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
