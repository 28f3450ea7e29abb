//! What keeps strangers from costing anything: every request from an address that is not a
//! trunk's is rate-limited per address before it is looked at (a token bucket, as Kamailio's
//! `pike` does), and failed authentications are counted per address and per user name: past
//! `max_auth_failures` within `auth_failure_window_secs`, the address (or every attempt on the
//! user name) gets no answer at all for `auth_block_secs`, as fail2ban would do.
//!
//! Both tables are bounded ([`MAX_TRACKED`] entries each); past it, entries that no longer
//! matter are dropped, then the table is cleared rather than grown (a flood from more addresses
//! than that is beyond what per-address limits can hold anyway).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses and user names tracked at most, each.
pub const MAX_TRACKED: usize = 100_000;

/// The guard's settings (`[sip]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardSettings {
    /// Requests per second an address that is not a trunk's may send, on average.
    pub requests_per_sec: f64,
    /// How many it may send at once.
    pub burst: f64,
    /// Failed authentications, per address or per user name, before it is blocked.
    pub max_auth_failures: u32,
    pub auth_failure_window: Duration,
    pub auth_block: Duration,
}

/// Rate limits and failure counts.
pub struct Guard {
    settings: GuardSettings,
    sources: Mutex<HashMap<IpAddr, Source>>,
    usernames: Mutex<HashMap<String, Failures>>,
}

/// One address: its bucket and its failures.
struct Source {
    tokens: f64,
    refilled: Instant,
    failures: Failures,
}

/// Failures in the current window, and the block they caused.
#[derive(Default)]
struct Failures {
    window_started: Option<Instant>,
    count: u32,
    blocked_until: Option<Instant>,
}

impl Failures {
    fn blocked(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|until| now < until)
    }

    /// Counts one; whether this one blocks.
    fn add(&mut self, now: Instant, settings: &GuardSettings) -> bool {
        let fresh = self
            .window_started
            .is_none_or(|started| now.duration_since(started) > settings.auth_failure_window);
        if fresh {
            self.window_started = Some(now);
            self.count = 0;
        }
        self.count += 1;
        if self.count >= settings.max_auth_failures.max(1) && !self.blocked(now) {
            self.blocked_until = Some(now + settings.auth_block);
            return true;
        }
        false
    }

    /// Whether it still matters at `now` (a block or a window not over).
    fn matters(&self, now: Instant, settings: &GuardSettings) -> bool {
        self.blocked(now)
            || self
                .window_started
                .is_some_and(|started| now.duration_since(started) <= settings.auth_failure_window)
    }
}

/// What became of a failed authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Counted.
    Counted,
    /// Counted, and it blocked the address or the user name.
    Blocked,
}

impl Guard {
    /// A guard with `settings`.
    pub fn new(settings: GuardSettings) -> Self {
        Guard {
            settings,
            sources: Mutex::new(HashMap::new()),
            usernames: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a request from `source` is looked at: not blocked, and within its rate.
    pub fn admits(&self, source: IpAddr, now: Instant) -> bool {
        let settings = self.settings;
        let mut sources = lock(&self.sources);
        make_room(&mut sources, |s| {
            s.failures.matters(now, &settings) || s.tokens < settings.burst
        });
        let entry = sources.entry(source).or_insert_with(|| Source {
            tokens: settings.burst,
            refilled: now,
            failures: Failures::default(),
        });
        if entry.failures.blocked(now) {
            return false;
        }
        let elapsed = now.duration_since(entry.refilled).as_secs_f64();
        entry.tokens = (entry.tokens + elapsed * settings.requests_per_sec).min(settings.burst);
        entry.refilled = now;
        if entry.tokens < 1.0 {
            return false;
        }
        entry.tokens -= 1.0;
        true
    }

    /// Whether attempts on `username` are blocked.
    pub fn username_blocked(&self, username: &str, now: Instant) -> bool {
        lock(&self.usernames)
            .get(username)
            .is_some_and(|failures| failures.blocked(now))
    }

    /// Counts a failed authentication from `source`, claiming `username` if it did.
    pub fn failed(&self, source: IpAddr, username: Option<&str>, now: Instant) -> Failed {
        let settings = self.settings;
        let mut blocked = {
            let mut sources = lock(&self.sources);
            make_room(&mut sources, |s| s.failures.matters(now, &settings));
            let entry = sources.entry(source).or_insert_with(|| Source {
                tokens: settings.burst,
                refilled: now,
                failures: Failures::default(),
            });
            entry.failures.add(now, &settings)
        };
        if let Some(username) = username {
            let mut usernames = lock(&self.usernames);
            make_room(&mut usernames, |f| f.matters(now, &settings));
            blocked |= usernames
                .entry(username.to_string())
                .or_default()
                .add(now, &settings);
        }
        if blocked {
            Failed::Blocked
        } else {
            Failed::Counted
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps `table` under [`MAX_TRACKED`]: drops what no longer `matters`, else everything.
fn make_room<K: Hash + Eq, V>(table: &mut HashMap<K, V>, matters: impl Fn(&V) -> bool) {
    if table.len() < MAX_TRACKED {
        return;
    }
    table.retain(|_, value| matters(value));
    if table.len() >= MAX_TRACKED {
        table.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard::new(GuardSettings {
            requests_per_sec: 10.0,
            burst: 20.0,
            max_auth_failures: 3,
            auth_failure_window: Duration::from_secs(60),
            auth_block: Duration::from_secs(300),
        })
    }

    #[test]
    fn an_address_gets_its_burst_then_its_rate() {
        let guard = guard();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let now = Instant::now();
        assert_eq!((0..30).filter(|_| guard.admits(a, now)).count(), 20);
        // Another address is not held by the first.
        assert!(guard.admits(b, now));
        // A second later, ten more.
        let later = now + Duration::from_secs(1);
        assert_eq!((0..30).filter(|_| guard.admits(a, later)).count(), 10);
    }

    #[test]
    fn failures_block_the_address_and_the_user_name_for_a_while() {
        let guard = guard();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let now = Instant::now();
        assert_eq!(guard.failed(a, Some("1001"), now), Failed::Counted);
        assert_eq!(guard.failed(a, Some("1001"), now), Failed::Counted);
        assert!(guard.admits(a, now));
        assert_eq!(guard.failed(a, Some("1001"), now), Failed::Blocked);
        assert!(!guard.admits(a, now));
        assert!(guard.username_blocked("1001", now));
        assert!(!guard.username_blocked("1002", now));
        assert!(guard.admits(b, now), "another address is not blocked");
        // Past the block, both are let in again.
        let later = now + Duration::from_secs(301);
        assert!(guard.admits(a, later));
        assert!(!guard.username_blocked("1001", later));
        // Failures spread wider than the window never add up.
        let mut at = later;
        for _ in 0..5 {
            assert_eq!(guard.failed(b, None, at), Failed::Counted);
            at += Duration::from_secs(31);
            assert_eq!(guard.failed(b, None, at), Failed::Counted);
            at += Duration::from_secs(61);
        }
    }

    #[test]
    fn the_tables_stay_bounded() {
        let guard = guard();
        let now = Instant::now();
        for n in 0..(MAX_TRACKED as u32 + 10) {
            let ip = IpAddr::from(n.to_be_bytes());
            guard.admits(ip, now);
        }
        assert!(lock(&guard.sources).len() <= MAX_TRACKED);
    }
}
