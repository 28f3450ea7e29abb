//! `cfhost:callflow/types`: the records shared by every interface, converted between cfhost's
//! own types and the WIT bindings here, at the edge, as wasmtime-wasi's p2 host impls do.

use super::InstanceState;
use crate::bindings::cfhost::callflow::types::{self as wit, Host};
use crate::call::{CallFlags, Hangup, HangupCause};
use crate::policy::Capability;

impl Host for InstanceState {}

impl From<CallFlags> for wit::CallFlags {
    fn from(flags: CallFlags) -> Self {
        wit::CallFlags {
            bridged: flags.bridged,
            message_left: flags.message_left,
        }
    }
}

impl From<&Hangup> for wit::HangupInfo {
    fn from(hangup: &Hangup) -> Self {
        wit::HangupInfo {
            disposition: hangup.disposition.clone(),
            hangup_cause: hangup.cause.to_string(),
            hangup_code: hangup.code.clone(),
        }
    }
}

impl From<wit::HangupInfo> for Hangup {
    fn from(info: wit::HangupInfo) -> Self {
        Hangup {
            disposition: info.disposition,
            cause: HangupCause::from(info.hangup_cause),
            code: info.hangup_code,
        }
    }
}

impl From<wit::Capability> for Capability {
    fn from(capability: wit::Capability) -> Self {
        match capability {
            wit::Capability::CallControl => Capability::CallControl,
            wit::Capability::Directory => Capability::Directory,
            wit::Capability::Notify => Capability::Notify,
            wit::Capability::Callbacks => Capability::Callbacks,
            wit::Capability::Log => Capability::Log,
            wit::Capability::Clock => Capability::Clock,
        }
    }
}

impl From<Capability> for wit::Capability {
    fn from(capability: Capability) -> Self {
        match capability {
            Capability::CallControl => wit::Capability::CallControl,
            Capability::Directory => wit::Capability::Directory,
            Capability::Notify => wit::Capability::Notify,
            Capability::Callbacks => wit::Capability::Callbacks,
            Capability::Log => wit::Capability::Log,
            Capability::Clock => wit::Capability::Clock,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_capability_converts_both_ways() {
        for capability in Capability::ALL {
            assert_eq!(
                Capability::from(wit::Capability::from(capability)),
                capability
            );
        }
        let hangup = Hangup::new(HangupCause::USER_BUSY, 486);
        assert_eq!(Hangup::from(wit::HangupInfo::from(&hangup)), hangup);
    }
}
