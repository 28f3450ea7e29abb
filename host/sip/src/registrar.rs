//! Where devices are: the contacts each device registered, kept in memory with their expiry,
//! and how each is reached ([`Reach`]): at its Contact, or over what its REGISTER came on (a
//! device behind NAT, or on a TCP connection of its own).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest registration granted, and what a REGISTER without `Expires` gets.
pub const MAX_EXPIRES: Duration = Duration::from_secs(3600);

/// Where a REGISTER came from, as the transport saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The packet's source (or the TCP connection's far end).
    pub source: SocketAddr,
    /// Whether it came on a TCP connection.
    pub tcp: bool,
    /// The sent-by of its top Via, when that is an address.
    pub via: Option<SocketAddr>,
}

/// How a binding is reached when its device is rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// At the address its REGISTER came from, over the same transport (and, on TCP, the same
    /// connection while it is open): the device is behind NAT, or the Contact is its own.
    Source { tcp: bool },
    /// At the Contact URI itself: it names another address, and nothing says NAT.
    Contact,
}

impl Reach {
    /// How a contact at `contact` (its address, if it names one) registered from `origin` is
    /// reached. NAT is detected as Kamailio's `nat_uac_test` does: the top Via's sent-by is not
    /// where the request came from, or the Contact names a private address (RFC 1918, shared
    /// address space, link-local) that is not the source. A NATed contact is rung at the source
    /// (`fix_nated_register`); so is a contact at the source's own IP over TCP (a TCP client's
    /// port is its connection's, not the one it listens on).
    pub fn of(contact: Option<SocketAddr>, origin: &Origin) -> Reach {
        let at_source = Reach::Source { tcp: origin.tcp };
        let via_differs = origin.via.is_some_and(|via| via != origin.source);
        let private_contact =
            contact.is_some_and(|c| is_private(c.ip()) && c.ip() != origin.source.ip());
        if via_differs || private_contact {
            return at_source;
        }
        match contact {
            Some(c) if c == origin.source => at_source,
            Some(c) if origin.tcp && c.ip() == origin.source.ip() => at_source,
            _ => Reach::Contact,
        }
    }
}

/// Whether `ip` is an address no packet from the internet comes from.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || v4.is_link_local() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// A contact a REGISTER asks for: its URI, the address it names (if it names one) and how
/// long it should last (zero removes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub uri: String,
    pub address: Option<SocketAddr>,
    pub expires: Duration,
}

/// A live binding as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Registration {
    pub account_id: String,
    pub device_id: String,
    /// The Contact URI registered.
    pub contact: String,
    /// Where the REGISTER came from.
    pub source: SocketAddr,
    /// How a call rings it.
    pub reach: Reach,
    pub expires_in_secs: u64,
}

/// One registered contact of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI the device registered.
    pub contact: String,
    /// Where its REGISTER came from.
    pub source: SocketAddr,
    /// How it is rung.
    pub reach: Reach,
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
        contacts: &[Wanted],
        origin: &Origin,
        now: Instant,
    ) -> Result<Vec<Binding>, TooManyContacts> {
        let mut bindings = self.bindings();
        let key = (account.to_string(), device.to_string());
        let mut list: Vec<Binding> = bindings
            .get(&key)
            .map(|list| list.iter().filter(|b| b.expires > now).cloned().collect())
            .unwrap_or_default();
        for wanted in contacts {
            list.retain(|b| b.contact != wanted.uri);
            if !wanted.expires.is_zero() {
                list.push(Binding {
                    contact: wanted.uri.clone(),
                    source: origin.source,
                    reach: Reach::of(wanted.address, origin),
                    expires: now + wanted.expires.min(MAX_EXPIRES),
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

    /// Every live binding, by account and device (in that order), or `account`'s only.
    pub fn list(&self, account: Option<&str>, now: Instant) -> Vec<Registration> {
        let bindings = self.bindings();
        let mut list: Vec<Registration> = bindings
            .iter()
            .filter(|((a, _), _)| account.is_none_or(|wanted| a == wanted))
            .flat_map(|((account, device), list)| {
                list.iter()
                    .filter(|b| b.expires > now)
                    .map(|b| Registration {
                        account_id: account.clone(),
                        device_id: device.clone(),
                        contact: b.contact.clone(),
                        source: b.source,
                        reach: b.reach,
                        expires_in_secs: b.expires_in(now).as_secs(),
                    })
            })
            .collect();
        list.sort_by(|a, b| {
            (&a.account_id, &a.device_id, &a.contact).cmp(&(
                &b.account_id,
                &b.device_id,
                &b.contact,
            ))
        });
        list
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
        let origin = Origin {
            source: "127.0.0.1:5090".parse().unwrap(),
            tcp: false,
            via: None,
        };
        let contacts = [Wanted {
            uri: contact.to_string(),
            address: None,
            expires: Duration::from_secs(secs),
        }];
        registrar.register_all("a", device, &contacts, &origin, now)
    }

    #[test]
    fn a_contact_is_rung_where_it_registered_from_when_nat_says_so() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        let udp = |source: &str, via: &str| Origin {
            source: at(source),
            tcp: false,
            via: Some(at(via)),
        };
        let udp_source = Reach::Source { tcp: false };
        // Its own address: at the source.
        let plain = udp("198.51.100.7:5060", "198.51.100.7:5060");
        assert_eq!(Reach::of(Some(at("198.51.100.7:5060")), &plain), udp_source);
        // Another public address, and nothing says NAT: at the Contact.
        assert_eq!(
            Reach::of(Some(at("203.0.113.9:5060")), &plain),
            Reach::Contact
        );
        // A private Contact from a public source: NAT.
        assert_eq!(Reach::of(Some(at("192.168.1.20:5060")), &plain), udp_source);
        assert_eq!(Reach::of(Some(at("100.64.0.9:5060")), &plain), udp_source);
        assert_eq!(Reach::of(Some(at("[fd00::9]:5060")), &plain), udp_source);
        // The Via's sent-by is not the source: NAT.
        let nated = udp("198.51.100.7:40123", "198.51.100.7:5060");
        assert_eq!(Reach::of(Some(at("198.51.100.7:5060")), &nated), udp_source);
        // On a LAN, a private Contact at the source itself is not NAT.
        let lan = udp("192.168.1.20:5060", "192.168.1.20:5060");
        assert_eq!(Reach::of(Some(at("192.168.1.20:5060")), &lan), udp_source);
        assert_eq!(
            Reach::of(Some(at("192.168.1.21:5060")), &lan),
            udp_source,
            "private, not the source"
        );
        // Over TCP, the phone's own IP: over its connection, whatever port it names.
        let tcp = Origin {
            source: at("198.51.100.7:51000"),
            tcp: true,
            via: None,
        };
        assert_eq!(
            Reach::of(Some(at("198.51.100.7:5060")), &tcp),
            Reach::Source { tcp: true }
        );
        assert_eq!(Reach::of(None, &plain), Reach::Contact, "a domain name");
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
