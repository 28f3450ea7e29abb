//! SIP devices: KAZOO-style documents `accounts/<id>/devices/<device_id>.json`,
//! `{"name", "owner_id": "<user_id>", "sip": {"username", "password"}, "caller_id":
//! {"internal": {"name", "number"}, "external": {...}}}`. A device registers and calls with its
//! SIP credentials, in its account's realm, as its configured caller id (or its owner's), as
//! in KAZOO, not as whatever its From says.

use serde::Deserialize;

/// A device document.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceDocument {
    pub name: Option<String>,
    /// The user whose device it is: a call to that user rings it.
    pub owner_id: Option<String>,
    pub sip: DeviceCredentials,
    /// Who it calls as.
    #[serde(default)]
    pub caller_id: CallerIds,
}

/// KAZOO's `caller_id` object of a device or a user.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallerIds {
    /// For calls inside the account.
    pub internal: Option<CallerId>,
    /// For calls that leave it.
    pub external: Option<CallerId>,
}

/// A caller id name and number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CallerId {
    pub name: Option<String>,
    pub number: Option<String>,
}

/// A device's SIP credentials.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceCredentials {
    pub username: String,
    pub password: String,
}

/// One device of an account.
#[derive(Debug, Clone)]
pub struct Device {
    /// The document's file name without `.json`: the `authorizing_id` of its calls.
    pub id: String,
    pub document: DeviceDocument,
}
