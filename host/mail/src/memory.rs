//! What a mailer remembers of what it sent, so that a notification delivered twice is emailed
//! once: with a data directory, the [`SentLog`] beside it; with PostgreSQL as the store, the
//! store's [`Claims`], shared by every mailer on every machine.
//!
//! Either way a notification is claimed before it is sent and settled after: a second copy
//! handled meanwhile (by this mailer, or by another one sharing the claims) waits for the
//! outcome instead of sending too.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cfhost_store::{Claim, Claims, StoreError};

use crate::sent::SentLog;

/// Where the mailer keeps what it sent.
pub enum SentMemory {
    /// The data directory's log, shared by the mailers of one machine; copies in flight are
    /// known to this mailer only.
    Log {
        log: SentLog,
        in_flight: Mutex<HashSet<String>>,
    },
    /// The store's claims, shared by every mailer.
    Shared {
        claims: Arc<dyn Claims>,
        lease: Duration,
        /// This mailer's name in a claim's owner: node, process and start time.
        mailer: String,
        claimed: AtomicU64,
    },
}

/// A claim this mailer holds, to be settled with [`SentMemory::settle`].
#[derive(Debug)]
pub struct Held {
    identity: String,
    owner: String,
}

impl SentMemory {
    /// The data directory's log.
    pub fn log(log: SentLog) -> Self {
        SentMemory::Log {
            log,
            in_flight: Mutex::default(),
        }
    }

    /// The store's claims; a claim unsettled for `lease` is taken over. `node` names this
    /// mailer in the claims it holds.
    pub fn shared(claims: Arc<dyn Claims>, lease: Duration, node: &str) -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        SentMemory::Shared {
            claims,
            lease,
            mailer: format!("{node}/{}/{started}", std::process::id()),
            claimed: AtomicU64::new(0),
        }
    }

    /// Claims the notification `identity`: held by the caller, already sent, or held by a
    /// delivery whose outcome is not known yet (ask again soon).
    pub async fn claim(&self, identity: &str) -> Result<Claimed, StoreError> {
        match self {
            SentMemory::Log { log, in_flight } => {
                if log.contains(identity) {
                    return Ok(Claimed::AlreadySent);
                }
                let mut in_flight = in_flight.lock().unwrap_or_else(|e| e.into_inner());
                if !in_flight.insert(identity.to_string()) {
                    return Ok(Claimed::Elsewhere("this mailer".to_string()));
                }
                Ok(Claimed::Ours(Held {
                    identity: identity.to_string(),
                    owner: String::new(),
                }))
            }
            SentMemory::Shared {
                claims,
                lease,
                mailer,
                claimed,
            } => {
                let owner = format!("{mailer}/{}", claimed.fetch_add(1, Ordering::Relaxed));
                Ok(match claims.claim(identity, &owner, *lease).await? {
                    Claim::Ours => Claimed::Ours(Held {
                        identity: identity.to_string(),
                        owner,
                    }),
                    Claim::AlreadySent => Claimed::AlreadySent,
                    Claim::HeldElsewhere { owner } => Claimed::Elsewhere(owner),
                })
            }
        }
    }

    /// Settles `held`: remembered as sent, or released when nothing was sent.
    pub async fn settle(&self, held: Held, sent: bool) -> Result<(), String> {
        match self {
            SentMemory::Log { log, in_flight } => {
                let recorded = if sent {
                    log.record(&held.identity).await.map_err(|e| e.to_string())
                } else {
                    Ok(())
                };
                let mut in_flight = in_flight.lock().unwrap_or_else(|e| e.into_inner());
                in_flight.remove(&held.identity);
                recorded
            }
            SentMemory::Shared { claims, .. } => claims
                .settle(&held.identity, &held.owner, sent)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Forgets what was sent longer ago than `retention` (the log does so when opened).
    pub async fn forget_older_than(&self, retention: Duration) {
        if let SentMemory::Shared { claims, .. } = self {
            match claims.forget_older_than(retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("mailer: forgot {n} notifications sent long ago"),
                Err(e) => tracing::warn!("mailer: cannot forget old claims: {e}"),
            }
        }
    }
}

/// What claiming came to.
#[derive(Debug)]
pub enum Claimed {
    /// Send it, then settle.
    Ours(Held),
    /// It was sent: a duplicate.
    AlreadySent,
    /// Another delivery holds it (named): wait for its outcome.
    Elsewhere(String),
}
