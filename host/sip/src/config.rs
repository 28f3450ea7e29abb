//! `[sip]`: where SIP is taken and from whom, and the limits that keep a flood from the rest.
//!
//! ```toml
//! [sip]
//! listen = "127.0.0.1:5060"        # UDP and TCP; port 0 takes a free one
//! max_calls = 5000                 # calls at once; past it, INVITEs get 503
//! max_cps = 500                    # new calls per second; past it, 503
//! rtp_ports = "20000-29999"        # for the calls cfhost answers itself (voicemail)
//! nonce_lifetime_secs = 300        # digest nonces older than this are stale
//! max_contacts = 10                # bindings per device; a REGISTER past it gets 403
//! stranger_requests_per_sec = 20   # from an address that is not a trunk's, on average
//! stranger_burst = 40              # and at once; past it, no answer
//! max_auth_failures = 10           # failed authentications per address or user name
//! auth_failure_window_secs = 60    # within this long
//! auth_block_secs = 300            # block it (no answer) for this long
//! silence_timeout_secs = 10        # a recording with no RTP for this long ends
//! keepalive_secs = 30              # an OPTIONS to each leg of a bridged call; 0: none
//! max_tcp_connections = 1024       # SIP over TCP, in all; past it, a connection is closed
//! max_tcp_connections_per_address = 128  # and from one IP
//! tcp_idle_secs = 120              # a connection that sends nothing for this long is closed
//! domain = "pbx1.example.net"     # the node's name in its own legs' Call-IDs (default: the listening IP)
//! device_from_sets_caller_id = false  # true: a device without a configured caller id calls as its From says
//! module_headers = ["X-*"]         # the INVITE headers modules may read: names, or prefixes with `*`
//! [sip.trunks.carrier]
//! addresses = ["203.0.113.0/24", "198.51.100.7"]
//! [sip.edge]                       # behind Kamailio (`crate::edge`); absent: none
//! addresses = ["10.0.0.5"]         # where the edge's requests come from
//! proxy = "10.0.0.5:5060"          # where devices are rung (the edge's registrar)
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::edge::EdgeSettings;
use crate::guard::GuardSettings;
use crate::headers::{HeaderFilter, HeaderFilterError};
use crate::tcp::TcpLimits;

/// `[sip]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Whether `cfhost serve` takes SIP at all.
    pub enabled: bool,
    /// The UDP and TCP address to listen on.
    pub listen: String,
    /// Calls in progress at most; an INVITE past it gets 503.
    pub max_calls: usize,
    /// New calls per second at most; an INVITE past it gets 503.
    pub max_cps: u32,
    /// RTP ports for the calls cfhost answers itself, `first-last`.
    pub rtp_ports: String,
    /// Seconds a digest nonce stays fresh.
    pub nonce_lifetime_secs: u64,
    /// Bindings one device may have; a REGISTER that would leave more is refused.
    pub max_contacts: usize,
    /// Requests per second, on average, an address that is not a trunk's may send.
    pub stranger_requests_per_sec: u32,
    /// Requests such an address may send at once.
    pub stranger_burst: u32,
    /// Failed authentications, per address or per user name, that block it.
    pub max_auth_failures: u32,
    pub auth_failure_window_secs: u64,
    /// How long a blocked address or user name gets no answer.
    pub auth_block_secs: u64,
    /// Seconds without RTP after which a voicemail recording ends.
    pub silence_timeout_secs: u64,
    /// How often each leg of a bridged call gets an OPTIONS in its dialog; a leg that answers
    /// 408 or 481, or not at all, is gone and the call ends (both legs get a BYE). 0: never.
    pub keepalive_secs: u64,
    /// SIP TCP connections open at most; a connection past it is closed at once.
    pub max_tcp_connections: usize,
    /// SIP TCP connections open at most from one IP address.
    pub max_tcp_connections_per_address: usize,
    /// Seconds a SIP TCP connection may send nothing before it is closed.
    pub tcp_idle_secs: u64,
    /// The node's name in the Call-IDs of the legs cfhost places; its listening IP if unset.
    pub domain: Option<String>,
    /// Whether a device that has no caller id configured (nor its owner) calls as its From
    /// says; otherwise it calls as its name and SIP user name.
    pub device_from_sets_caller_id: bool,
    /// The headers of an INVITE that modules may read, by name or by prefix (`X-*`), without
    /// case; credentials never.
    pub module_headers: Vec<String>,
    /// Carrier trunks by name: INVITEs from their addresses are offnet calls.
    pub trunks: BTreeMap<String, TrunkConfig>,
    /// The SIP edge in front, if any ([`crate::edge`]).
    pub edge: Option<EdgeConfig>,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            enabled: true,
            listen: "127.0.0.1:5060".to_string(),
            max_calls: 5000,
            max_cps: 500,
            rtp_ports: "20000-29999".to_string(),
            nonce_lifetime_secs: 300,
            // A phone sends a few requests a minute, an office of 200 behind one NAT about
            // 10 a second; an attacker's scan sends thousands.
            // A desk phone, a softphone and a mobile app per user, with room to spare.
            max_contacts: 10,
            stranger_requests_per_sec: 20,
            stranger_burst: 40,
            max_auth_failures: 10,
            auth_failure_window_secs: 60,
            auth_block_secs: 300,
            silence_timeout_secs: 10,
            // A phone that lost power or its network leaves its leg up until this finds it
            // (Kamailio's dialog keepalive and FreeSWITCH's RTP timeout do the same job).
            keepalive_secs: 30,
            // Well under a process's usual descriptor limit; an office of phones behind one
            // NAT fits in the per-address cap; Kamailio's tcp_connection_lifetime is 120 s
            // (phones on TCP send CRLF keepalives or re-register well within it).
            max_tcp_connections: 1024,
            max_tcp_connections_per_address: 128,
            tcp_idle_secs: 120,
            domain: None,
            device_from_sets_caller_id: false,
            // Carriers and PBXs put what they pass on in X- headers; the standard ones
            // (Contact, Via, User-Agent) tell a module nothing it should route on.
            module_headers: vec!["X-*".to_string()],
            trunks: BTreeMap::new(),
            edge: None,
        }
    }
}

/// `[sip.edge]`: the SIP edge (Kamailio) in front of the nodes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// The addresses or networks the edge sends from: only their identity headers count.
    pub addresses: Vec<String>,
    /// The edge's SIP address (`ip:port`), where devices are rung.
    pub proxy: String,
}

/// `[sip.trunks.<name>]`: a carrier.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// The addresses or networks (`203.0.113.0/24`) the carrier sends from.
    pub addresses: Vec<String>,
}

/// A `[sip]` setting that cannot be used; each names its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipConfigError {
    #[error("sip.listen: `{0}` is not an address and port")]
    Listen(String),
    #[error("sip.rtp_ports: `{0}` is not a range of ports like `20000-29999`")]
    RtpPorts(String),
    #[error("sip.trunks.{trunk}.addresses: `{address}` is not an address or a network")]
    TrunkAddress { trunk: String, address: String },
    #[error("sip.max_calls and sip.max_cps must be at least 1")]
    Limits,
    #[error("sip.domain: `{0}` is not a host name (letters, digits, `-` and `.`)")]
    Domain(String),
    #[error("sip.edge.addresses: `{0}` is not an address or a network")]
    EdgeAddress(String),
    #[error("sip.edge.addresses: the edge needs at least one address")]
    EdgeWithoutAddresses,
    #[error("sip.edge.proxy: `{0}` is not an address and port")]
    EdgeProxy(String),
    #[error(transparent)]
    ModuleHeaders(#[from] HeaderFilterError),
}

/// The settings, checked.
#[derive(Debug, Clone)]
pub struct SipSettings {
    pub listen: SocketAddr,
    pub max_calls: usize,
    pub max_cps: u32,
    pub rtp_ports: (u16, u16),
    pub nonce_lifetime: Duration,
    pub max_contacts: usize,
    pub guard: GuardSettings,
    pub silence_timeout: Duration,
    /// How often a bridged call's legs are asked whether they are there; `None`: never.
    pub keepalive: Option<Duration>,
    pub tcp: TcpLimits,
    pub device_from_sets_caller_id: bool,
    /// The INVITE headers modules may read.
    pub module_headers: HeaderFilter,
    /// What follows the `@` of the Call-IDs of cfhost's own legs.
    pub domain: String,
    pub trunks: Vec<(String, Vec<IpNet>)>,
    /// The edge in front, if any.
    pub edge: Option<EdgeSettings>,
}

impl SipConfig {
    /// The settings, or the first that is wrong.
    pub fn settings(&self) -> Result<SipSettings, SipConfigError> {
        let listen: SocketAddr = self
            .listen
            .parse()
            .map_err(|_| SipConfigError::Listen(self.listen.clone()))?;
        let rtp_ports = parse_range(&self.rtp_ports)
            .ok_or_else(|| SipConfigError::RtpPorts(self.rtp_ports.clone()))?;
        if self.max_calls == 0 || self.max_cps == 0 {
            return Err(SipConfigError::Limits);
        }
        let mut trunks = Vec::new();
        for (name, trunk) in &self.trunks {
            let networks = trunk
                .addresses
                .iter()
                .map(|address| {
                    parse_network(address).ok_or_else(|| SipConfigError::TrunkAddress {
                        trunk: name.clone(),
                        address: address.clone(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            trunks.push((name.clone(), networks));
        }
        let edge = self.edge.as_ref().map(EdgeConfig::settings).transpose()?;
        Ok(SipSettings {
            listen,
            max_calls: self.max_calls,
            max_cps: self.max_cps,
            rtp_ports,
            nonce_lifetime: Duration::from_secs(self.nonce_lifetime_secs),
            max_contacts: self.max_contacts.max(1),
            guard: GuardSettings {
                requests_per_sec: f64::from(self.stranger_requests_per_sec.max(1)),
                burst: f64::from(self.stranger_burst.max(1)),
                max_auth_failures: self.max_auth_failures.max(1),
                auth_failure_window: Duration::from_secs(self.auth_failure_window_secs),
                auth_block: Duration::from_secs(self.auth_block_secs),
            },
            silence_timeout: Duration::from_secs(self.silence_timeout_secs.max(1)),
            keepalive: (self.keepalive_secs > 0).then(|| Duration::from_secs(self.keepalive_secs)),
            tcp: TcpLimits {
                max_connections: self.max_tcp_connections.max(1),
                max_per_address: self.max_tcp_connections_per_address.max(1),
                idle_timeout: Duration::from_secs(self.tcp_idle_secs.max(1)),
            },
            device_from_sets_caller_id: self.device_from_sets_caller_id,
            module_headers: HeaderFilter::new(&self.module_headers)?,
            domain: match &self.domain {
                Some(domain) if is_host_name(domain) => domain.clone(),
                Some(domain) => return Err(SipConfigError::Domain(domain.clone())),
                None => listen.ip().to_string(),
            },
            trunks,
            edge,
        })
    }
}

impl EdgeConfig {
    fn settings(&self) -> Result<EdgeSettings, SipConfigError> {
        if self.addresses.is_empty() {
            return Err(SipConfigError::EdgeWithoutAddresses);
        }
        let networks = self
            .addresses
            .iter()
            .map(|a| parse_network(a).ok_or_else(|| SipConfigError::EdgeAddress(a.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let proxy = self
            .proxy
            .parse()
            .map_err(|_| SipConfigError::EdgeProxy(self.proxy.clone()))?;
        Ok(EdgeSettings { networks, proxy })
    }
}

impl SipSettings {
    /// Whether `source` is a carrier's or the edge's: held to no stranger's rate.
    pub fn is_known_peer(&self, source: IpAddr) -> bool {
        self.trunk_of(source).is_some() || self.edge.as_ref().is_some_and(|e| e.is_edge(source))
    }

    /// The trunk `source` belongs to, if any.
    pub fn trunk_of(&self, source: IpAddr) -> Option<&str> {
        self.trunks
            .iter()
            .find(|(_, networks)| networks.iter().any(|net| net.contains(&source)))
            .map(|(name, _)| name.as_str())
    }
}

/// Whether `text` can stand after the `@` of a Call-ID: a host name (or an IPv4 address).
fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn parse_range(text: &str) -> Option<(u16, u16)> {
    let (first, last) = text.split_once('-')?;
    let (first, last): (u16, u16) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    (first >= 1024 && first < last).then_some((first, last))
}

fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_name_the_bad_key() {
        let config: SipConfig = toml::from_str(
            "listen = \"127.0.0.1:0\"\n[trunks.carrier]\naddresses = [\"127.0.0.2\", \"10.0.0.0/8\"]",
        )
        .unwrap();
        let settings = config.settings().unwrap();
        assert_eq!(
            settings.trunk_of("127.0.0.2".parse().unwrap()),
            Some("carrier")
        );
        assert_eq!(
            settings.trunk_of("10.1.2.3".parse().unwrap()),
            Some("carrier")
        );
        assert_eq!(settings.trunk_of("127.0.0.1".parse().unwrap()), None);
        assert_eq!(settings.rtp_ports, (20000, 29999));

        let mut bad = config.clone();
        bad.trunks
            .get_mut("carrier")
            .unwrap()
            .addresses
            .push("example.com".into());
        assert_eq!(
            bad.settings().unwrap_err().to_string(),
            "sip.trunks.carrier.addresses: `example.com` is not an address or a network"
        );
        let bad = SipConfig {
            rtp_ports: "30000-20000".into(),
            ..SipConfig::default()
        };
        assert!(matches!(bad.settings(), Err(SipConfigError::RtpPorts(_))));
        let bad = SipConfig {
            listen: "localhost".into(),
            ..SipConfig::default()
        };
        assert!(matches!(bad.settings(), Err(SipConfigError::Listen(_))));
        assert!(toml::from_str::<SipConfig>("listen_on = \"x\"").is_err());
        assert_eq!(
            config.settings().unwrap().domain,
            "127.0.0.1",
            "the listening IP"
        );
        let named = SipConfig {
            domain: Some("pbx1.example.net".into()),
            ..SipConfig::default()
        };
        assert_eq!(named.settings().unwrap().domain, "pbx1.example.net");
        let injected = SipConfig {
            domain: Some("x\r\nVia: evil".into()),
            ..SipConfig::default()
        };
        assert_eq!(
            injected.settings().unwrap_err().to_string(),
            "sip.domain: `x\r\nVia: evil` is not a host name (letters, digits, `-` and `.`)"
        );
        assert!(config.settings().unwrap().edge.is_none());
        let edge: SipConfig =
            toml::from_str("[edge]\naddresses = [\"127.0.0.20\"]\nproxy = \"127.0.0.20:5060\"")
                .unwrap();
        let settings = edge.settings().unwrap().edge.unwrap();
        assert!(settings.is_edge("127.0.0.20".parse().unwrap()));
        assert!(!settings.is_edge("127.0.0.21".parse().unwrap()));
        for (bad, error) in [
            (
                "[edge]\naddresses = []\nproxy = \"127.0.0.20:5060\"",
                "sip.edge.addresses: the edge needs at least one address",
            ),
            (
                "[edge]\naddresses = [\"edge.example\"]\nproxy = \"127.0.0.20:5060\"",
                "sip.edge.addresses: `edge.example` is not an address or a network",
            ),
            (
                "[edge]\naddresses = [\"127.0.0.20\"]\nproxy = \"127.0.0.20\"",
                "sip.edge.proxy: `127.0.0.20` is not an address and port",
            ),
        ] {
            let config: SipConfig = toml::from_str(bad).unwrap();
            assert_eq!(config.settings().unwrap_err().to_string(), error);
        }
    }
}
