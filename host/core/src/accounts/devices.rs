//! SIP devices: KAZOO-style documents `accounts/<id>/devices/<device_id>.json`,
//! `{"name", "owner_id": "<user_id>", "sip": {"username", "password"}}`. A device registers and
//! calls with its SIP credentials, in its account's realm.

use serde::Deserialize;

/// A device document.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceDocument {
    pub name: Option<String>,
    /// The user whose device it is: a call to that user rings it.
    pub owner_id: Option<String>,
    pub sip: DeviceCredentials,
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
