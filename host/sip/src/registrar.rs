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

/// Devices by account and device id, with their live bindings, at most `max_contacts` each
/// (Kamailio's `max_contacts`): a REGISTER that would leave more is refused whole.
pub struct Registrar {
    bindings: Mutex<HashMap<(String, String), Vec<Binding>>>,
    max_contacts: usize,
}

/// A REGISTER that would leave a device more bindings than the cap; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{wanted} contacts: past sip.max_contacts ({max})")]
pub struct TooManyContacts {
    pub wanted: usize,
    pub max: usize,
}

impl Registrar {
    /// A registrar that keeps at most `max_contacts` bindings per device.
    pub fn new(max_contacts: usize) -> Self {
        Registrar {
            bindings: Mutex::default(),
            max_contacts: max_contacts.max(1),
        }
    }

    /// Applies a REGISTER's contacts (URI and expiry each; zero removes it) for `device`, all
    /// or none: refused when the device would have more than `max_contacts` live bindings.
    /// Returns the device's bindings now.
    pub fn register_all(
        &self,
        account: &str,
        device: &str,
        contacts: &[(String, Duration)],
        source: SocketAddr,
        now: Instant,
    ) -> Result<Vec<Binding>, TooManyContacts> {
        let mut bindings = self.bindings();
        let key = (account.to_string(), device.to_string());
        let mut list: Vec<Binding> = bindings
            .get(&key)
            .map(|list| list.iter().filter(|b| b.expires > now).cloned().collect())
            .unwrap_or_default();
        for (contact, expires) in contacts {
            list.retain(|b| &b.contact != contact);
            if !expires.is_zero() {
                list.push(Binding {
                    contact: contact.clone(),
                    source,
                    expires: now + (*expires).min(MAX_EXPIRES),
                });
            }
        }
        if list.len() > self.max_contacts {
            return Err(TooManyContacts {
                wanted: list.len(),
                max: self.max_contacts,
            });
        }
        if list.is_empty() {
            bindings.remove(&key);
        } else {
            bindings.insert(key, list.clone());
        }
        Ok(list)
    }

    fn bindings(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Vec<Binding>>> {
        self.bindings.lock().unwrap_or_else(|e| e.into_inner())
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

    fn register(
        registrar: &Registrar,
        device: &str,
        contact: &str,
        secs: u64,
        now: Instant,
    ) -> Result<Vec<Binding>, TooManyContacts> {
        let source = "127.0.0.1:5090".parse().unwrap();
        let contacts = [(contact.to_string(), Duration::from_secs(secs))];
        registrar.register_all("a", device, &contacts, source, now)
    }

    #[test]
    fn bindings_expire_and_zero_removes_them() {
        let registrar = Registrar::new(10);
        let now = Instant::now();
        let secs = Duration::from_secs;
        register(&registrar, "d1", "sip:1001@127.0.0.1:5090", 60, now).unwrap();
        register(&registrar, "d1", "sip:1001@127.0.0.1:5091", 7200, now).unwrap();
        let live = registrar.lookup("a", "d1", now);
        assert_eq!(live.len(), 2);
        assert_eq!(live[1].expires_in(now), MAX_EXPIRES, "capped");
        assert!(registrar.lookup("b", "d1", now).is_empty(), "per account");
        assert_eq!(
            registrar.lookup("a", "d1", now + secs(61)).len(),
            1,
            "one expired"
        );
        register(&registrar, "d1", "sip:1001@127.0.0.1:5091", 0, now).unwrap();
        assert!(
            registrar.lookup("a", "d1", now).is_empty(),
            "zero removes it"
        );
        register(&registrar, "d1", "sip:1001@127.0.0.1:5092", 60, now).unwrap();
        register(&registrar, "d2", "sip:1002@127.0.0.1:5093", 60, now).unwrap();
        assert_eq!(registrar.len(now), 2);
        registrar.unregister_all("a", "d1");
        assert_eq!(registrar.len(now), 1);
    }

    #[test]
    fn a_register_past_max_contacts_is_refused_whole() {
        let registrar = Registrar::new(2);
        let now = Instant::now();
        register(&registrar, "d1", "sip:a@x", 60, now).unwrap();
        register(&registrar, "d1", "sip:b@x", 60, now).unwrap();
        // A refresh of one already there is fine; a third is not, and changes nothing.
        register(&registrar, "d1", "sip:b@x", 60, now).unwrap();
        assert_eq!(
            register(&registrar, "d1", "sip:c@x", 60, now),
            Err(TooManyContacts { wanted: 3, max: 2 })
        );
        let contacts: Vec<String> = registrar
            .lookup("a", "d1", now)
            .into_iter()
            .map(|b| b.contact)
            .collect();
        assert_eq!(contacts, ["sip:a@x", "sip:b@x"]);
        // Once one expires, another fits.
        let later = now + Duration::from_secs(61);
        assert!(register(&registrar, "d1", "sip:c@x", 60, later).is_ok());
    }
}
