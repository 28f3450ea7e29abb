//! Digest authentication (RFC 2617/3261, MD5, with or without `qop=auth`) of devices, with
//! nonces the server can verify without keeping them: a nonce is the time it was issued and an
//! HMAC of that time and the realm under a secret made at start. A nonce older than its
//! lifetime is stale: the request is challenged again (`stale=true`), so a captured response
//! cannot be replayed past it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rsipstack::dialog::authenticate::verify_digest;
use rsipstack::sip::Method;
use rsipstack::sip::typed::Authorization;
use sha2::Sha256;

/// How credentials in a request fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The response matches the password, under a fresh nonce of ours.
    Valid,
    /// A nonce of ours, but too old: challenge again with `stale=true`.
    Stale,
    /// A wrong password, a nonce that is not ours, or another realm.
    Wrong,
}

/// Issues and checks nonces.
pub struct Nonces {
    secret: [u8; 32],
    lifetime: Duration,
}

impl Nonces {
    /// Nonces valid for `lifetime`, under a fresh random secret.
    pub fn new(lifetime: Duration) -> Self {
        Nonces {
            secret: rand::random(),
            lifetime,
        }
    }

    fn mac(&self, issued: u64, realm: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(&issued.to_be_bytes());
        mac.update(realm.as_bytes());
        let bytes = mac.finalize().into_bytes();
        bytes[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A nonce for `realm`, issued at `now`.
    pub fn issue(&self, realm: &str, now: SystemTime) -> String {
        let issued = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        format!("{issued:x}.{}", self.mac(issued, realm))
    }

    /// Whether `nonce` is one of ours for `realm` and still fresh at `now`.
    fn check(&self, nonce: &str, realm: &str, now: SystemTime) -> Verdict {
        let Some((issued, mac)) = nonce.split_once('.') else {
            return Verdict::Wrong;
        };
        let Ok(issued) = u64::from_str_radix(issued, 16) else {
            return Verdict::Wrong;
        };
        if !constant_time_eq(mac.as_bytes(), self.mac(issued, realm).as_bytes()) {
            return Verdict::Wrong;
        }
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if now.saturating_sub(issued) > self.lifetime.as_secs() || issued > now + 5 {
            return Verdict::Stale;
        }
        Verdict::Valid
    }

    /// A `WWW-Authenticate` / `Proxy-Authenticate` value challenging for `realm`.
    pub fn challenge(&self, realm: &str, stale: bool, now: SystemTime) -> String {
        let stale = if stale { ", stale=true" } else { "" };
        format!(
            "Digest realm=\"{realm}\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"{stale}",
            self.issue(realm, now)
        )
    }

    /// Checks the credentials `header` (the raw `Authorization` or `Proxy-Authorization`
    /// value) of a `method` request in `realm` against `password`; returns the verdict and
    /// the user name they claim.
    pub fn verify(
        &self,
        header: &str,
        method: &Method,
        realm: &str,
        password: impl FnOnce(&str) -> Option<String>,
        now: SystemTime,
    ) -> (Verdict, Option<String>) {
        let Ok(credentials) = Authorization::parse(header) else {
            return (Verdict::Wrong, None);
        };
        let username = Some(credentials.username.clone());
        if !credentials.realm.eq_ignore_ascii_case(realm) {
            return (Verdict::Wrong, username);
        }
        let Some(password) = password(&credentials.username) else {
            return (Verdict::Wrong, username);
        };
        // The response is checked first: a stale nonce with a wrong password is wrong.
        if !verify_digest(&credentials, &password, method, header) {
            return (Verdict::Wrong, username);
        }
        (self.check(&credentials.nonce, realm, now), username)
    }
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
    use rsipstack::sip::headers::auth::{Algorithm, AuthQop};

    fn header(nonce: &str, password: &str, qop: bool) -> String {
        let uri = "sip:acme.example.com";
        let qop_value = qop.then(|| AuthQop::Auth {
            cnonce: "0a4f113b".into(),
            nc: 1,
        });
        let response = compute_digest(
            "1001",
            password,
            "acme.example.com",
            nonce,
            &Method::Register,
            uri,
            Algorithm::Md5,
            qop_value.as_ref(),
        );
        let qop = if qop {
            ", qop=auth, cnonce=\"0a4f113b\", nc=00000001"
        } else {
            ""
        };
        format!(
            "Digest username=\"1001\", realm=\"acme.example.com\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm=MD5{qop}"
        )
    }

    #[test]
    fn a_right_password_under_a_fresh_nonce_passes_and_nothing_else_does() {
        let nonces = Nonces::new(Duration::from_secs(300));
        let now = SystemTime::now();
        let realm = "acme.example.com";
        let secret = |user: &str| (user == "1001").then(|| "secret".to_string());
        let nonce = nonces.issue(realm, now);
        for qop in [false, true] {
            let good = header(&nonce, "secret", qop);
            let verdict = nonces.verify(&good, &Method::Register, realm, secret, now);
            assert_eq!(
                verdict,
                (Verdict::Valid, Some("1001".to_string())),
                "qop {qop}"
            );
        }
        let wrong = header(&nonce, "guess", true);
        assert_eq!(
            nonces
                .verify(&wrong, &Method::Register, realm, secret, now)
                .0,
            Verdict::Wrong
        );
        // The same response, replayed after the nonce's lifetime: stale, not valid.
        let later = now + Duration::from_secs(301);
        let good = header(&nonce, "secret", true);
        assert_eq!(
            nonces
                .verify(&good, &Method::Register, realm, secret, later)
                .0,
            Verdict::Stale
        );
        // A nonce we did not issue (or from another secret) is wrong even with the password.
        let forged = header("5f000000.00000000000000000000000000000000", "secret", false);
        assert_eq!(
            nonces
                .verify(&forged, &Method::Register, realm, secret, now)
                .0,
            Verdict::Wrong
        );
        let other = Nonces::new(Duration::from_secs(300));
        assert_eq!(
            other.verify(&good, &Method::Register, realm, secret, now).0,
            Verdict::Wrong
        );
        // Another realm, an unknown user, garbage.
        assert_eq!(
            nonces
                .verify(&good, &Method::Register, "other.example.com", secret, now)
                .0,
            Verdict::Wrong
        );
        assert_eq!(
            nonces
                .verify(&good, &Method::Register, realm, |_| None, now)
                .0,
            Verdict::Wrong
        );
        assert_eq!(
            nonces
                .verify("Basic abc", &Method::Register, realm, secret, now)
                .0,
            Verdict::Wrong
        );
        assert!(nonces.challenge(realm, true, now).ends_with("stale=true"));
    }
}
