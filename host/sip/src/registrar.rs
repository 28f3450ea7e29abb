//! Where devices are: the contacts each device registered, kept in memory with their expiry,
//! and the address each REGISTER came from (what a device behind NAT is reached at).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest registration granted, and what a REGISTER without `Expires` gets.
pub const MAX_EXPIRES: Duration = Duration::from_secs(3600);

/// One registered contact of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI the device registered.
    pub contact: String,
    /// Where its REGISTER came from.
    pub source: SocketAddr,
    expires: Instant,
}

impl Binding {
    /// Seconds left before it expires.
    pub fn expires_in(&self, now: Instant) -> Duration {
        self.expires.saturating_duration_since(now)
    }
}

/// Devices by account and device id, with their live bindings.
#[derive(Default)]
pub struct Registrar {
    bindings: Mutex<HashMap<(String, String), Vec<Binding>>>,
}

impl Registrar {
    fn bindings(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Vec<Binding>>> {
        self.bindings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `contact` for `device` of `account` from `source` for `expires` (capped at
    /// [`MAX_EXPIRES`]); zero removes it. Returns the device's bindings now.
    pub fn register(
        &self,
        account: &str,
        device: &str,
        contact: &str,
        source: SocketAddr,
        expires: Duration,
        now: Instant,
    ) -> Vec<Binding> {
        let mut bindings = self.bindings();
        let key = (account.to_string(), device.to_string());
        let list = bindings.entry(key.clone()).or_default();
        list.retain(|b| b.contact != contact && b.expires > now);
        if !expires.is_zero() {
            list.push(Binding {
                contact: contact.to_string(),
                source,
                expires: now + expires.min(MAX_EXPIRES),
            });
        }
        let current = list.clone();
        if list.is_empty() {
            bindings.remove(&key);
        }
        current
    }

    /// Removes every binding of `device` (a `Contact: *` with `Expires: 0`).
    pub fn unregister_all(&self, account: &str, device: &str) {
        self.bindings()
            .remove(&(account.to_string(), device.to_string()));
    }

    /// The live bindings of `device` of `account`.
    pub fn lookup(&self, account: &str, device: &str, now: Instant) -> Vec<Binding> {
        let mut bindings = self.bindings();
        let key = (account.to_string(), device.to_string());
        let Some(list) = bindings.get_mut(&key) else {
            return Vec::new();
        };
        list.retain(|b| b.expires > now);
        let live = list.clone();
        if live.is_empty() {
            bindings.remove(&key);
        }
        live
    }

    /// How many bindings are live, over all devices.
    pub fn len(&self, now: Instant) -> usize {
        let mut bindings = self.bindings();
        bindings.retain(|_, list| {
            list.retain(|b| b.expires > now);
            !list.is_empty()
        });
        bindings.values().map(Vec::len).sum()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self, now: Instant) -> bool {
        self.len(now) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_expire_and_zero_removes_them() {
        let registrar = Registrar::default();
        let now = Instant::now();
        let source = "127.0.0.1:5090".parse().unwrap();
        let secs = Duration::from_secs;
        registrar.register("a", "d1", "sip:1001@127.0.0.1:5090", source, secs(60), now);
        registrar.register(
            "a",
            "d1",
            "sip:1001@127.0.0.1:5091",
            source,
            secs(7200),
            now,
        );
        let live = registrar.lookup("a", "d1", now);
        assert_eq!(live.len(), 2);
        assert_eq!(live[1].expires_in(now), MAX_EXPIRES, "capped");
        assert!(registrar.lookup("b", "d1", now).is_empty(), "per account");
        assert_eq!(
            registrar.lookup("a", "d1", now + secs(61)).len(),
            1,
            "one expired"
        );
        registrar.register("a", "d1", "sip:1001@127.0.0.1:5091", source, secs(0), now);
        assert!(
            registrar.lookup("a", "d1", now).is_empty(),
            "zero removes it"
        );
        registrar.register("a", "d1", "sip:1001@127.0.0.1:5092", source, secs(60), now);
        registrar.register("a", "d2", "sip:1002@127.0.0.1:5093", source, secs(60), now);
        assert_eq!(registrar.len(now), 2);
        registrar.unregister_all("a", "d1");
        assert_eq!(registrar.len(now), 1);
    }
}
