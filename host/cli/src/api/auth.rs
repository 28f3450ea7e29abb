//! Who may do what: the operator's token opens everything; an account's token opens only that
//! account. Tokens come from the configuration, are compared in constant time and are never
//! logged.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    operator: Option<String>,
    accounts: BTreeMap<String, String>,
}

/// What a request's token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Everything (the operator's token, or no tokens configured at all).
    Operator,
    /// Only this account.
    Account(String),
    /// Nothing: no token, or an unknown one.
    None,
}

impl Tokens {
    /// Tokens for the operator and per account.
    pub fn new(operator: Option<String>, accounts: BTreeMap<String, String>) -> Self {
        Tokens { operator, accounts }
    }

    /// Whether any token is configured (else the API is open).
    pub fn required(&self) -> bool {
        self.operator.is_some() || !self.accounts.is_empty()
    }

    /// What the `Authorization: Bearer <token>` header of a request grants (the scheme in any
    /// case, as RFC 9110 says auth schemes are).
    pub fn access(&self, headers: &HeaderMap) -> Access {
        if !self.required() {
            return Access::Operator;
        }
        let Some(token) = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token)
        else {
            return Access::None;
        };
        if self
            .operator
            .as_deref()
            .is_some_and(|operator| same(operator, token))
        {
            return Access::Operator;
        }
        self.accounts
            .iter()
            .find(|(_, account_token)| same(account_token, token))
            .map_or(Access::None, |(account, _)| {
                Access::Account(account.clone())
            })
    }
}

impl Access {
    /// Whether this access covers `account`.
    pub fn allows(&self, account: &str) -> bool {
        match self {
            Access::Operator => true,
            Access::Account(own) => own == account,
            Access::None => false,
        }
    }
}

/// Compares two tokens in time that depends only on their lengths.
fn same(expected: &str, given: &str) -> bool {
    let (expected, given) = (expected.as_bytes(), given.as_bytes());
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// The token of an `Authorization` value of the `Bearer` scheme, in any case, with any spaces
/// after it.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn operator_and_account_tokens() {
        let accounts = BTreeMap::from([("acme".to_string(), "acme-secret".to_string())]);
        let tokens = Tokens::new(Some("op-secret".into()), accounts);
        assert_eq!(tokens.access(&bearer("op-secret")), Access::Operator);
        let acme = tokens.access(&bearer("acme-secret"));
        assert!(acme.allows("acme") && !acme.allows("other"));
        assert_eq!(tokens.access(&bearer("op-secreT")), Access::None);
        assert_eq!(tokens.access(&HeaderMap::new()), Access::None);
        assert!(!Access::None.allows("acme"));
        // The scheme is case-insensitive; the token is not.
        for value in ["bearer op-secret", "BEARER op-secret", "Bearer  op-secret"] {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            assert_eq!(tokens.access(&headers), Access::Operator, "{value}");
        }
        let mut basic = HeaderMap::new();
        basic.insert(AUTHORIZATION, "Basic op-secret".parse().unwrap());
        assert_eq!(tokens.access(&basic), Access::None);
    }

    #[test]
    fn without_tokens_everything_is_open() {
        let tokens = Tokens::default();
        assert!(!tokens.required());
        assert_eq!(tokens.access(&HeaderMap::new()), Access::Operator);
    }
}
