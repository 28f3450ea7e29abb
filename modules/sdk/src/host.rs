//! What a module can ask of the host, one module per WIT interface. Built for `wasm32`, each
//! function calls the component's import; built for the machine running `cargo test`, it acts
//! on the [`ScriptedCall`](crate::testing::ScriptedCall) running the module.

/// The import's call in a component, the scripted call's answer in a test.
macro_rules! dispatch {
    ($import:expr, |$call:ident| $scripted:expr) => {{
        #[cfg(target_arch = "wasm32")]
        {
            $import
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            crate::testing::with_current(|$call| $scripted)
        }
    }};
}

use crate::RegisterError;

/// Registers a termination callback whose state is `state` as it is (see
/// [`register_termination`](crate::register_termination) for a serializable state).
/// Requires the `callbacks` capability.
pub fn register_termination_raw(state: &[u8]) -> Result<(), RegisterError> {
    dispatch!(
        crate::bindings::cfhost::callflow::callbacks::register_termination(state),
        |call| {
            if !call.callbacks.iter().any(|s| s == state) {
                call.callbacks.push(state.to_vec());
            }
            Ok(())
        }
    )
}

/// The call's account's settings (name, realm, time zone). Always available.
pub mod account {
    pub use crate::bindings::cfhost::callflow::account::AccountSettings;

    /// The call's account's settings.
    pub fn settings() -> AccountSettings {
        dispatch!(
            crate::bindings::cfhost::callflow::account::settings(),
            |call| call.account.clone()
        )
    }
}

/// The node being run. Always available.
pub mod node {
    /// The keys of the node's children that lead somewhere, sorted (`_` included); empty in
    /// `on_termination`. A module acts on a child's absence with it.
    pub fn child_keys() -> Vec<String> {
        dispatch!(
            crate::bindings::cfhost::callflow::node::child_keys(),
            |call| { call.children.clone() }
        )
    }
}

/// Answer, bridge, record, hang up. Requires the `call-control` capability.
pub mod call_control {
    use crate::bindings::cfhost::callflow::call_control as wit;
    pub use wit::{BridgeRequest, BridgeResult, Endpoint, RecordResult, RingStrategy};

    /// Answers the call.
    pub fn answer() -> Result<(), crate::ControlError> {
        dispatch!(wit::answer(), |call| {
            call.answered = true;
            Ok(())
        })
    }

    /// Rings the endpoints and bridges the call to the first that answers.
    pub fn bridge(request: &BridgeRequest) -> BridgeResult {
        dispatch!(wit::bridge(request), |call| call.bridge(request))
    }

    /// Records a voicemail message into the box, up to `max_secs` seconds.
    pub fn record_voicemail(box_id: &str, max_secs: u32) -> RecordResult {
        dispatch!(wit::record_voicemail(box_id, max_secs), |call| call
            .record(box_id, max_secs))
    }

    /// Hangs up the call with a cause (default `NORMAL_CLEARING`).
    pub fn hangup(cause: Option<&str>) {
        dispatch!(wit::hangup(cause), |call| call
            .hangups
            .push(cause.map(str::to_string)))
    }
}

/// Users of the call's account. Requires the `directory` capability.
pub mod directory {
    use crate::bindings::cfhost::callflow::directory as wit;
    pub use wit::User;

    /// Reads users of the call's account: one entry per id, `None` where none exists.
    pub fn lookup_users(ids: &[String]) -> Vec<Option<User>> {
        dispatch!(wit::lookup_users(ids), |call| ids
            .iter()
            .map(|id| call.users.iter().find(|u| &u.id == id).cloned())
            .collect())
    }
}

/// Notifications in KAZOO's wire format. Requires the `notify` capability.
pub mod notify {
    use crate::bindings::cfhost::callflow::notify as wit;
    pub use wit::{CfNotification, MissedCall, Notification, NotifyField};

    /// KAZOO's `Notify` of a notification sent by a termination callback: the call's hangup
    /// info, omitted when there is none (a callback run without a hangup).
    pub fn at_hangup(hangup: Option<crate::HangupInfo>) -> NotifyField {
        hangup.map_or(NotifyField::Omitted, NotifyField::Hangup)
    }

    /// Publishes a notification; it is accepted by the sink when this returns `Ok`.
    pub fn publish(notification: &Notification) -> Result<(), crate::PublishError> {
        dispatch!(wit::publish(notification), |call| {
            call.notifications.push(notification.clone());
            Ok(())
        })
    }
}

/// Logging into the call's trace. Requires the `log` capability.
pub mod log {
    use crate::bindings::cfhost::callflow::log as wit;
    pub use wit::Level;

    fn log(level: Level, message: &str) {
        dispatch!(wit::log(level, message), |call| call
            .logs
            .push((level, message.to_string())))
    }

    /// Logs at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        log(Level::Info, message)
    }
    /// Logs at warning level.
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// The wall clock. Requires the `clock` capability: without it, the host's clock reads
/// 1970-01-01T00:00:00Z.
pub mod clock {
    use std::time::SystemTime;

    /// The time now.
    pub fn now() -> SystemTime {
        dispatch!(SystemTime::now(), |call| call.now)
    }
}
