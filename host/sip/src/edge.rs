//! Behind a SIP edge (Kamailio, `[sip.edge]`): devices register at the edge, not here; the
//! edge authenticates them and tells the node who called in headers of its own, which the node
//! believes only from the edge's addresses; a device is rung through the edge by its address
//! of record, and the edge's "not registered" answer is KAZOO's `USER_NOT_REGISTERED`.
//!
//! | header (set by the edge) | says |
//! |---|---|
//! | `X-Cfhost-Auth-User`, `X-Cfhost-Auth-Realm` | the device the edge authenticated: its SIP user name and realm |
//! | `X-Cfhost-Trunk` | the carrier the edge let in by its address (`permissions`' tag) |
//!
//! The edge removes these headers from what any client sends, and a node ignores them from
//! anyone but the edge: a carrier, or a stranger, cannot call as a device by writing them.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use rsipstack::sip::Request;

/// The device the edge authenticated: its SIP user name.
pub const AUTH_USER: &str = "X-Cfhost-Auth-User";
/// The device the edge authenticated: the realm it authenticated in (its account's).
pub const AUTH_REALM: &str = "X-Cfhost-Auth-Realm";
/// The carrier the edge let in.
pub const TRUNK: &str = "X-Cfhost-Trunk";
/// The trunk name of an edge's carrier call that names none.
pub const EDGE_TRUNK: &str = "edge";

/// `[sip.edge]`, checked.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Where the edge's requests come from.
    pub networks: Vec<IpNet>,
    /// Where devices are rung: the edge's registrar.
    pub proxy: SocketAddr,
}

impl EdgeSettings {
    /// Whether `source` is the edge.
    pub fn is_edge(&self, source: IpAddr) -> bool {
        self.networks.iter().any(|net| net.contains(&source))
    }
}

/// Who an INVITE relayed by the edge is from, as the edge says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeCaller {
    /// A device the edge authenticated.
    Device { username: String, realm: String },
    /// A carrier the edge let in by its address.
    Carrier { trunk: String },
}

/// What the edge says of `request`'s caller. Both device headers, or neither: one without
/// the other is no identity, and the call is the edge's carrier's.
pub fn edge_caller(request: &Request) -> EdgeCaller {
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| h.value().trim().to_string())
            .filter(|value| !value.is_empty())
    };
    match (header(AUTH_USER), header(AUTH_REALM)) {
        (Some(username), Some(realm)) => EdgeCaller::Device {
            username,
            realm: realm.to_ascii_lowercase(),
        },
        _ => EdgeCaller::Carrier {
            trunk: header(TRUNK)
                .filter(|trunk| is_trunk_name(trunk))
                .unwrap_or_else(|| EDGE_TRUNK.to_string()),
        },
    }
}

/// A trunk name as the edge may give it: 1 to 64 letters, digits, `-`, `_` and `.`.
fn is_trunk_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The address of record a device is rung at through the edge: `sip:<user>@<realm>`.
pub fn device_aor(username: &str, realm: &str) -> String {
    format!("sip:{username}@{realm}")
}

/// Whether a final answer is the edge's "not registered": 480 with `Reason: Q.850;cause=20`
/// (the subscriber is absent), as KAZOO's edge answers for an address of record with no
/// registration.
pub fn is_unregistered(code: u16, reason: Option<&str>) -> bool {
    code == 480
        && reason.is_some_and(|reason| {
            let reason = reason.to_ascii_lowercase().replace(' ', "");
            reason.starts_with("q.850") && reason.split(';').any(|param| param == "cause=20")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(headers: &str) -> Request {
        let text = format!(
            "INVITE sip:200@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.20;branch=z9hG4bK1\r\n\
             From: <sip:1001@acme.example.com>;tag=a\r\nTo: <sip:200@127.0.0.1>\r\n\
             Call-ID: c1\r\nCSeq: 1 INVITE\r\n{headers}Content-Length: 0\r\n\r\n"
        );
        Request::try_from(text.as_str()).unwrap()
    }

    #[test]
    fn the_edge_names_a_device_with_both_headers_else_the_call_is_a_carriers() {
        let device =
            invite("X-Cfhost-Auth-User: 1001\r\nx-cfhost-auth-realm: ACME.example.com\r\n");
        assert_eq!(
            edge_caller(&device),
            EdgeCaller::Device {
                username: "1001".into(),
                realm: "acme.example.com".into()
            }
        );
        let half = invite("X-Cfhost-Auth-User: 1001\r\n");
        assert_eq!(
            edge_caller(&half),
            EdgeCaller::Carrier {
                trunk: EDGE_TRUNK.into()
            }
        );
        let carrier = invite("X-Cfhost-Trunk: carrier-a\r\n");
        assert_eq!(
            edge_caller(&carrier),
            EdgeCaller::Carrier {
                trunk: "carrier-a".into()
            }
        );
        let hostile = invite("X-Cfhost-Trunk: a b/../c\r\n");
        assert_eq!(
            edge_caller(&hostile),
            EdgeCaller::Carrier {
                trunk: EDGE_TRUNK.into()
            }
        );
    }

    #[test]
    fn only_480_with_q850_cause_20_is_not_registered() {
        assert!(is_unregistered(480, Some("Q.850;cause=20")));
        assert!(is_unregistered(
            480,
            Some("Q.850 ; cause=20 ;text=\"absent\"")
        ));
        assert!(!is_unregistered(480, None));
        assert!(!is_unregistered(480, Some("Q.850;cause=19")));
        assert!(!is_unregistered(404, Some("Q.850;cause=20")));
        assert!(!is_unregistered(480, Some("SIP;cause=20")));
    }
}
