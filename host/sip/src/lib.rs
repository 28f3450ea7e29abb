//! cfhost-sip: SIP for cfhost. It will hold the trigger that takes calls from carriers and
//! devices and the call-control backend behind `cfhost_core::switch::Switch`; rsipstack's types
//! never leave this crate. For now it owns its configuration section, `[sip]`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[sip]`: where SIP is taken and from whom.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// The UDP and TCP address to listen on.
    pub listen: String,
    /// Carrier trunks by name: INVITEs from their addresses are offnet calls.
    pub trunks: BTreeMap<String, TrunkConfig>,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: "127.0.0.1:5060".to_string(),
            trunks: BTreeMap::new(),
        }
    }
}

/// `[sip.trunks.<name>]`: a carrier.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// The addresses or networks (`203.0.113.0/24`) the carrier sends from.
    pub addresses: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_has_defaults_and_refuses_unknown_keys() {
        let config: SipConfig =
            toml::from_str("[trunks.carrier]\naddresses = [\"203.0.113.0/24\"]").unwrap();
        assert_eq!(config.listen, "127.0.0.1:5060");
        assert_eq!(config.trunks["carrier"].addresses, ["203.0.113.0/24"]);
        assert!(toml::from_str::<SipConfig>("listen_on = \"x\"").is_err());
    }
}
