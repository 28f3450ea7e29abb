//! Digest authentication (RFC 2617/3261, MD5, with or without `qop=auth`) of devices, with
//! nonces that answer one challenge each:
//!
//! - A nonce is the time it was issued, a random part and an HMAC of both, the realm and the
//!   address it was sent to, under a secret made at start: one we did not issue, or that comes
//!   back from another address, is wrong.
//! - A nonce older than its lifetime is stale: the request is challenged again
//!   (`stale=true`).
//! - The nonces issued within their lifetime are remembered (at most [`MAX_NONCES`], the
//!   oldest forgotten first) with the highest `nc` used: with `qop=auth` every request must
//!   count higher than the last, and without `qop` a nonce is good for one request. So a
//!   captured Authorization is good for nothing: the same again is a replay
//!   ([`Verdict::Replayed`], challenged afresh).
//! - The digest's `uri` must be the Request-URI, `algorithm` MD5 (what the challenge offers,
//!   also when absent) and `qop` absent or `auth`: anything else is refused, never checked as
//!   something it is not.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rsipstack::dialog::authenticate::verify_digest;
use rsipstack::sip::Method;
use rsipstack::sip::headers::auth::{Algorithm, AuthQop};
use rsipstack::sip::typed::Authorization;
use sha2::Sha256;

/// Nonces remembered at most; past it the oldest is forgotten (a request on it is then
/// challenged again as stale).
pub const MAX_NONCES: usize = 100_000;

/// How credentials in a request fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The response matches the password, under a fresh nonce of ours, counted higher than
    /// any request before on it.
    Valid,
    /// A nonce of ours, but too old or forgotten: challenge again with `stale=true`.
    Stale,
    /// Credentials already used (the same `nc` again, or a one-time nonce used twice): a
    /// replay; challenge afresh.
    Replayed,
    /// A wrong password, a nonce that is not ours or not for this address, another realm or
    /// Request-URI, or an algorithm or `qop` not offered.
    Wrong,
}

/// What a request's credentials are checked against.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The raw `Authorization` or `Proxy-Authorization` value.
    pub header: &'a str,
    pub method: &'a Method,
    /// The request's Request-URI, as rsipstack prints it.
    pub request_uri: &'a str,
    /// Where the request came from (its packet's source).
    pub source: IpAddr,
    pub realm: &'a str,
}

/// Issues and checks nonces.
pub struct Nonces {
    secret: [u8; 32],
    lifetime: Duration,
    book: Mutex<Book>,
}

/// The nonces issued and not yet forgotten, with the highest `nc` used on each.
#[derive(Default)]
struct Book {
    counts: HashMap<String, Count>,
    /// Issue order, for forgetting the oldest.
    order: VecDeque<(u64, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    /// Not used yet.
    Fresh,
    /// Used with `qop=auth`, the highest `nc` so far.
    Counted(u32),
    /// Used without `qop`: spent.
    Spent,
}

impl Book {
    fn remember(&mut self, nonce: String, issued: u64, lifetime: u64) {
        while self.order.len() >= MAX_NONCES
            || self
                .order
                .front()
                .is_some_and(|(at, _)| issued.saturating_sub(*at) > lifetime)
        {
            let Some((_, old)) = self.order.pop_front() else {
                break;
            };
            self.counts.remove(&old);
        }
        self.counts.insert(nonce.clone(), Count::Fresh);
        self.order.push_back((issued, nonce));
    }

    /// Uses `nonce` with `nc` (`None` without `qop`): whether that is the first such use.
    fn spend(&mut self, nonce: &str, nc: Option<u32>) -> Option<bool> {
        let count = self.counts.get_mut(nonce)?;
        Some(match (nc, *count) {
            // Without qop a nonce answers one request.
            (None, Count::Fresh) => {
                *count = Count::Spent;
                true
            }
            (Some(nc), Count::Fresh) if nc >= 1 => {
                *count = Count::Counted(nc);
                true
            }
            (Some(nc), Count::Counted(last)) if nc > last => {
                *count = Count::Counted(nc);
                true
            }
            _ => false,
        })
    }
}

impl Nonces {
    /// Nonces valid for `lifetime`, under a fresh random secret.
    pub fn new(lifetime: Duration) -> Self {
        Nonces {
            secret: rand::random(),
            lifetime,
            book: Mutex::new(Book::default()),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mac(&self, issued: u64, salt: u64, realm: &str, to: IpAddr) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(&issued.to_be_bytes());
        mac.update(&salt.to_be_bytes());
        mac.update(to.to_string().as_bytes());
        mac.update(b"@");
        mac.update(realm.as_bytes());
        let bytes = mac.finalize().into_bytes();
        bytes[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A nonce for `realm`, sent to `to` at `now`, remembered.
    pub fn issue(&self, realm: &str, to: IpAddr, now: SystemTime) -> String {
        let issued = unix_secs(now);
        let salt: u64 = rand::random();
        let nonce = format!("{issued:x}.{salt:x}.{}", self.mac(issued, salt, realm, to));
        self.book()
            .remember(nonce.clone(), issued, self.lifetime.as_secs());
        nonce
    }

    /// Whether `nonce` is one of ours for `realm` and `from`, and still fresh at `now`.
    fn check(&self, nonce: &str, realm: &str, from: IpAddr, now: SystemTime) -> Verdict {
        let mut parts = nonce.split('.');
        let (Some(issued), Some(salt), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Verdict::Wrong;
        };
        let (Ok(issued), Ok(salt)) = (
            u64::from_str_radix(issued, 16),
            u64::from_str_radix(salt, 16),
        ) else {
            return Verdict::Wrong;
        };
        let expected = self.mac(issued, salt, realm, from);
        if !constant_time_eq(mac.as_bytes(), expected.as_bytes()) {
            return Verdict::Wrong;
        }
        let now = unix_secs(now);
        if now.saturating_sub(issued) > self.lifetime.as_secs() || issued > now + 5 {
            return Verdict::Stale;
        }
        Verdict::Valid
    }

    /// A `WWW-Authenticate` / `Proxy-Authenticate` value challenging `to` in `realm`.
    pub fn challenge(&self, realm: &str, to: IpAddr, stale: bool, now: SystemTime) -> String {
        let stale = if stale { ", stale=true" } else { "" };
        format!(
            "Digest realm=\"{realm}\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"{stale}",
            self.issue(realm, to, now)
        )
    }

    /// Checks the credentials of `attempt` against `password`; returns the verdict and the
    /// user name they claim. A valid answer spends its `nc` (or its one-time nonce).
    pub fn verify(
        &self,
        attempt: &Attempt<'_>,
        password: impl FnOnce(&str) -> Option<String>,
        now: SystemTime,
    ) -> (Verdict, Option<String>) {
        let Ok(credentials) = Authorization::parse(attempt.header) else {
            return (Verdict::Wrong, None);
        };
        let username = Some(credentials.username.clone());
        let offered = matches!(credentials.algorithm, None | Some(Algorithm::Md5))
            && matches!(credentials.qop, None | Some(AuthQop::Auth { .. }));
        if !offered
            || !credentials.realm.eq_ignore_ascii_case(attempt.realm)
            || credentials.uri.to_string() != attempt.request_uri
        {
            return (Verdict::Wrong, username);
        }
        let Some(password) = password(&credentials.username) else {
            return (Verdict::Wrong, username);
        };
        // The response is checked first: a stale nonce with a wrong password is wrong.
        if !verify_digest(&credentials, &password, attempt.method, attempt.header) {
            return (Verdict::Wrong, username);
        }
        let verdict = self.check(&credentials.nonce, attempt.realm, attempt.source, now);
        if verdict != Verdict::Valid {
            return (verdict, username);
        }
        let nc = match &credentials.qop {
            Some(AuthQop::Auth { nc, .. }) => Some(u32::from(*nc)),
            _ => None,
        };
        let verdict = match self.book().spend(&credentials.nonce, nc) {
            Some(true) => Verdict::Valid,
            Some(false) => Verdict::Replayed,
            // Ours and fresh, but forgotten (many challenges since): ask again.
            None => Verdict::Stale,
        };
        (verdict, username)
    }
}

fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The user name `header` claims, without checking anything.
pub fn claimed_username(header: &str) -> Option<String> {
    Authorization::parse(header).ok().map(|a| a.username)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::dialog::authenticate::compute_digest;

    const REALM: &str = "acme.example.com";
    const URI: &str = "sip:acme.example.com";

    fn phone() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    /// An Authorization of 1001 with `password` on `nonce`, for a REGISTER to `uri`; `nc`
    /// with `qop=auth`, none without.
    fn header(nonce: &str, password: &str, uri: &str, nc: Option<u8>) -> String {
        let qop = nc.map(|nc| AuthQop::Auth {
            cnonce: "0a4f113b".into(),
            nc,
        });
        let response = compute_digest(
            "1001",
            password,
            REALM,
            nonce,
            &Method::Register,
            uri,
            Algorithm::Md5,
            qop.as_ref(),
        );
        let qop = nc.map_or(String::new(), |nc| {
            format!(", qop=auth, cnonce=\"0a4f113b\", nc={nc:08x}")
        });
        format!(
            "Digest username=\"1001\", realm=\"{REALM}\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm=MD5{qop}"
        )
    }

    fn attempt(header: &str) -> Attempt<'_> {
        Attempt {
            header,
            method: &Method::Register,
            request_uri: URI,
            source: phone(),
            realm: REALM,
        }
    }

    fn secret(user: &str) -> Option<String> {
        (user == "1001").then(|| "secret".to_string())
    }

    fn verdict(nonces: &Nonces, attempt: &Attempt<'_>, now: SystemTime) -> Verdict {
        nonces.verify(attempt, secret, now).0
    }

    #[test]
    fn a_right_password_under_a_fresh_nonce_passes_and_nothing_else_does() {
        let nonces = Nonces::new(Duration::from_secs(300));
        let now = SystemTime::now();
        for nc in [None, Some(1)] {
            let nonce = nonces.issue(REALM, phone(), now);
            let good = header(&nonce, "secret", URI, nc);
            assert_eq!(
                nonces.verify(&attempt(&good), secret, now),
                (Verdict::Valid, Some("1001".to_string())),
                "nc {nc:?}"
            );
        }
        let nonce = nonces.issue(REALM, phone(), now);
        let wrong = header(&nonce, "guess", URI, Some(1));
        assert_eq!(verdict(&nonces, &attempt(&wrong), now), Verdict::Wrong);
        // The same response after the nonce's lifetime: stale, not valid.
        let good = header(&nonce, "secret", URI, Some(1));
        let later = now + Duration::from_secs(301);
        assert_eq!(verdict(&nonces, &attempt(&good), later), Verdict::Stale);
        // A nonce we did not issue (or from another secret) is wrong even with the password.
        let forged = header(
            "5f000000.1.00000000000000000000000000000000",
            "secret",
            URI,
            None,
        );
        assert_eq!(verdict(&nonces, &attempt(&forged), now), Verdict::Wrong);
        let other = Nonces::new(Duration::from_secs(300));
        assert_eq!(verdict(&other, &attempt(&good), now), Verdict::Wrong);
        // Another realm, an unknown user, garbage.
        let elsewhere = Attempt {
            realm: "other.example.com",
            ..attempt(&good)
        };
        assert_eq!(verdict(&nonces, &elsewhere, now), Verdict::Wrong);
        assert_eq!(
            nonces.verify(&attempt(&good), |_| None, now).0,
            Verdict::Wrong
        );
        assert_eq!(verdict(&nonces, &attempt("Basic abc"), now), Verdict::Wrong);
        assert!(
            nonces
                .challenge(REALM, phone(), true, now)
                .ends_with("stale=true")
        );
    }

    #[test]
    fn an_authorization_answers_one_challenge_and_cannot_be_replayed() {
        let nonces = Nonces::new(Duration::from_secs(300));
        let now = SystemTime::now();
        // qop=auth: each request counts higher; the same nc again, or a lower one, is a replay.
        let nonce = nonces.issue(REALM, phone(), now);
        let first = header(&nonce, "secret", URI, Some(1));
        assert_eq!(verdict(&nonces, &attempt(&first), now), Verdict::Valid);
        assert_eq!(verdict(&nonces, &attempt(&first), now), Verdict::Replayed);
        let third = header(&nonce, "secret", URI, Some(3));
        assert_eq!(verdict(&nonces, &attempt(&third), now), Verdict::Valid);
        let second = header(&nonce, "secret", URI, Some(2));
        assert_eq!(verdict(&nonces, &attempt(&second), now), Verdict::Replayed);
        // Without qop a nonce is good for one request.
        let nonce = nonces.issue(REALM, phone(), now);
        let once = header(&nonce, "secret", URI, None);
        assert_eq!(verdict(&nonces, &attempt(&once), now), Verdict::Valid);
        assert_eq!(verdict(&nonces, &attempt(&once), now), Verdict::Replayed);
        // From another address, for another Request-URI or method: wrong.
        let nonce = nonces.issue(REALM, phone(), now);
        let fresh = header(&nonce, "secret", URI, Some(1));
        let stranger = Attempt {
            source: "127.0.0.2".parse().unwrap(),
            ..attempt(&fresh)
        };
        assert_eq!(verdict(&nonces, &stranger, now), Verdict::Wrong);
        let elsewhere = Attempt {
            request_uri: "sip:attacker.example.net",
            ..attempt(&fresh)
        };
        assert_eq!(verdict(&nonces, &elsewhere, now), Verdict::Wrong);
        let invite = Attempt {
            method: &Method::Invite,
            ..attempt(&fresh)
        };
        assert_eq!(verdict(&nonces, &invite, now), Verdict::Wrong);
        // None of those spent it: the phone's own request still passes.
        assert_eq!(verdict(&nonces, &attempt(&fresh), now), Verdict::Valid);
    }

    #[test]
    fn only_the_offered_algorithm_and_qop_are_accepted() {
        let nonces = Nonces::new(Duration::from_secs(300));
        let now = SystemTime::now();
        let nonce = nonces.issue(REALM, phone(), now);
        let sha = compute_digest(
            "1001",
            "secret",
            REALM,
            &nonce,
            &Method::Register,
            URI,
            Algorithm::Sha256,
            None,
        );
        let header = format!(
            "Digest username=\"1001\", realm=\"{REALM}\", nonce=\"{nonce}\", \
             uri=\"{URI}\", response=\"{sha}\", algorithm=SHA-256"
        );
        assert_eq!(verdict(&nonces, &attempt(&header), now), Verdict::Wrong);
        let int = header.replace(
            ", algorithm=SHA-256",
            ", qop=auth-int, cnonce=\"x\", nc=00000001",
        );
        assert_eq!(verdict(&nonces, &attempt(&int), now), Verdict::Wrong);
    }

    #[test]
    fn the_oldest_nonces_are_forgotten_past_the_bound_and_then_stale() {
        let nonces = Nonces::new(Duration::from_secs(300));
        let now = SystemTime::now();
        let first = nonces.issue(REALM, phone(), now);
        for _ in 0..MAX_NONCES {
            nonces.issue(REALM, phone(), now);
        }
        assert_eq!(nonces.book().counts.len(), MAX_NONCES);
        let good = header(&first, "secret", URI, Some(1));
        assert_eq!(verdict(&nonces, &attempt(&good), now), Verdict::Stale);
    }
}
