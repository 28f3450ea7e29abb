//! Which headers of an INVITE modules may read (`call.sip-header` in the WIT): those whose
//! names match `[sip] module_headers` (by default `X-*`), never a credential nor what the edge
//! says of the caller (`X-Cfhost-*`: the call's details carry it, once checked), within bounds.

use rsipstack::sip::Header;

/// Headers no setting exposes: they carry credentials.
const NEVER: [&str; 2] = ["authorization", "proxy-authorization"];
/// The prefix of the edge's own headers ([`crate::edge`]), which no setting exposes.
const EDGE_PREFIX: &str = "x-cfhost-";
/// The most headers a call passes to modules; the rest are left out.
pub const MAX_MODULE_HEADERS: usize = 32;
/// The longest value passed to modules, in bytes; a longer header is left out.
pub const MAX_MODULE_HEADER_BYTES: usize = 1024;

/// The names modules may read: exact names and prefixes (`X-*`), compared without case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderFilter {
    patterns: Vec<String>,
}

/// A `module_headers` entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderFilterError {
    #[error(
        "sip.module_headers: `{0}` is not a header name or a prefix ending in `*` (letters, \
         digits, `-`, `_` and `.`)"
    )]
    Pattern(String),
    #[error("sip.module_headers: `{0}` carries credentials; modules never see it")]
    Credentials(String),
}

impl HeaderFilter {
    /// The filter of `patterns`, checked.
    pub fn new(patterns: &[String]) -> Result<Self, HeaderFilterError> {
        let mut checked = Vec::new();
        for pattern in patterns {
            let name = pattern.strip_suffix('*').unwrap_or(pattern);
            let token = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
            if name.contains('*') || !name.chars().all(token) {
                return Err(HeaderFilterError::Pattern(pattern.clone()));
            }
            let lower = name.to_ascii_lowercase();
            let exposes_credentials = NEVER.iter().any(|never| {
                if pattern.ends_with('*') {
                    never.starts_with(&lower)
                } else {
                    *never == lower
                }
            });
            if exposes_credentials {
                return Err(HeaderFilterError::Credentials(pattern.clone()));
            }
            checked.push(pattern.to_ascii_lowercase());
        }
        Ok(HeaderFilter { patterns: checked })
    }

    fn allows(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        !NEVER.contains(&name.as_str())
            && !name.starts_with(EDGE_PREFIX)
            && self
                .patterns
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => *pattern == name,
                })
    }

    /// The headers of `headers` modules may read, as (name, value), in order.
    pub fn visible<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a Header>,
    ) -> Vec<(String, String)> {
        headers
            .into_iter()
            .filter(|header| self.allows(header.name()))
            .filter(|header| header.value().len() <= MAX_MODULE_HEADER_BYTES)
            .take(MAX_MODULE_HEADERS)
            .map(|header| (header.name().to_string(), header.value().to_string()))
            .collect()
    }
}

impl Default for HeaderFilter {
    fn default() -> Self {
        HeaderFilter {
            patterns: vec!["x-*".to_string()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<Header> {
        pairs
            .iter()
            .map(|(name, value)| Header::Other(name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn only_matching_headers_within_bounds_are_visible() {
        let invite = headers(&[
            ("X-Account-Tier", "gold"),
            ("User-Agent", "softphone"),
            ("x-lower", "yes"),
            ("X-Huge", &"a".repeat(MAX_MODULE_HEADER_BYTES + 1)),
            ("Proxy-Authorization", "Digest secret"),
        ]);
        let visible = HeaderFilter::default().visible(&invite);
        assert_eq!(
            visible,
            [
                ("X-Account-Tier".to_string(), "gold".to_string()),
                ("x-lower".to_string(), "yes".to_string())
            ]
        );
        let many: Vec<Header> = (0..100)
            .map(|n| Header::Other(format!("X-{n}"), "v".into()))
            .collect();
        assert_eq!(
            HeaderFilter::default().visible(&many).len(),
            MAX_MODULE_HEADERS
        );

        let agents = HeaderFilter::new(&["User-Agent".into()]).unwrap();
        assert_eq!(
            agents.visible(&invite),
            [("User-Agent".to_string(), "softphone".to_string())]
        );
        assert!(HeaderFilter::new(&[]).unwrap().visible(&invite).is_empty());
    }

    #[test]
    fn credentials_and_malformed_patterns_are_refused_naming_the_key() {
        for pattern in ["Authorization", "proxy-*", "*", "P*"] {
            assert_eq!(
                HeaderFilter::new(&[pattern.into()]),
                Err(HeaderFilterError::Credentials(pattern.into())),
                "{pattern}"
            );
        }
        for pattern in ["X-*-*", "X Y", "X:", "X-\r\nVia"] {
            let error = HeaderFilter::new(&[pattern.into()]).unwrap_err();
            assert_eq!(error, HeaderFilterError::Pattern(pattern.into()));
            assert!(error.to_string().starts_with("sip.module_headers: "));
        }
    }
}
