//! Unit tests for modules, without the host: a [`ScriptedCall`] says what the call looks like
//! (caller, account, flags, directory users, what bridges and recordings return, the time),
//! runs the module's `handle` and its termination callbacks natively under `cargo test`, and
//! records what the module did (outcome, notifications, registered callbacks, log lines,
//! answers, bridges, recordings, hangups).
//!
//! ```
//! use cfhost_sdk::testing::ScriptedCall;
//! use cfhost_sdk::{Call, CallflowModule, Capability, Description, HangupInfo, Outcome};
//!
//! /// Registers a callback that logs whether the call was bridged.
//! struct Watch;
//!
//! impl CallflowModule for Watch {
//!     fn describe() -> Description {
//!         cfhost_sdk::description("watch", "0.1.0", "", "{}", vec![Capability::Callbacks])
//!     }
//!     fn handle(_call: Call, _data: &str) -> Result<Outcome, String> {
//!         cfhost_sdk::register_termination(&"watching")?;
//!         Ok(cfhost_sdk::next())
//!     }
//!     fn on_termination(call: Call, _: Option<HangupInfo>, _: Vec<u8>) -> Result<(), String> {
//!         cfhost_sdk::log::info(&format!("bridged: {}", call.flags().bridged));
//!         Ok(())
//!     }
//! }
//!
//! let call = ScriptedCall::new();
//! assert_eq!(call.handle::<Watch>(&serde_json::json!({})), Ok(cfhost_sdk::next()));
//! assert_eq!(call.callbacks().len(), 1);
//! assert_eq!(call.end::<Watch>(None), [Ok(())]);
//! assert_eq!(call.logs()[0].1, "bridged: false");
//! ```
//!
//! Like the host, it runs callbacks in registration order, each identical state once. Unlike
//! the host, it does not check capabilities, limits or the schema: those are the host's (see
//! `cfhost module check`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::account::AccountSettings;
use crate::call_control::{BridgeRequest, BridgeResult, RecordResult};
use crate::directory::User;
use crate::log::Level;
use crate::notify::Notification;
use crate::{AuthorizedBy, Call, CallFlags, CallflowModule, ControlError, HangupInfo, Outcome};

/// The facts of a scripted call, which a module reads through [`Call`]'s methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub call_id: String,
    pub account_id: String,
    pub request: String,
    pub caller_id_name: Option<String>,
    pub caller_id_number: Option<String>,
    pub callee_id_name: Option<String>,
    pub callee_id_number: Option<String>,
    pub from_user: Option<String>,
    pub from_realm: Option<String>,
    pub to_user: Option<String>,
    pub to_realm: Option<String>,
    pub authorizing_type: Option<String>,
    pub authorizing_id: Option<String>,
    /// The INVITE's headers the module may see, as (name, value).
    pub sip_headers: Vec<(String, String)>,
}

impl CallInfo {
    /// Who authorised the call, typed as the host types it.
    pub(crate) fn authorized_by(&self) -> Option<AuthorizedBy> {
        let kind = self.authorizing_type.clone()?;
        let id = self.authorizing_id.clone();
        Some(match (kind.as_str(), id) {
            ("resource", Some(id)) => AuthorizedBy::Trunk(id),
            ("device", Some(id)) => AuthorizedBy::Device(id),
            (_, id) => AuthorizedBy::Other((kind, id)),
        })
    }
}

/// What the call looks like and what the module did to it.
pub(crate) struct CallState {
    pub(crate) info: CallInfo,
    pub(crate) flags: CallFlags,
    pub(crate) account: AccountSettings,
    pub(crate) users: Vec<User>,
    pub(crate) children: Vec<String>,
    pub(crate) now: SystemTime,
    bridge_results: Vec<BridgeResult>,
    record_results: Vec<RecordResult>,
    pub(crate) answered: bool,
    pub(crate) bridges: Vec<BridgeRequest>,
    pub(crate) recordings: Vec<(String, u32)>,
    pub(crate) hangups: Vec<Option<String>>,
    pub(crate) notifications: Vec<Notification>,
    pub(crate) callbacks: Vec<Vec<u8>>,
    pub(crate) logs: Vec<(Level, String)>,
}

impl CallState {
    /// Sets the caller id as the host does: each part given replaces the call's, within the
    /// host's limit.
    pub(crate) fn set_caller_id(
        &mut self,
        name: Option<&str>,
        number: Option<&str>,
    ) -> Result<(), ControlError> {
        for part in [name, number].into_iter().flatten() {
            if part.len() > 128 || part.chars().any(char::is_control) {
                return Err(ControlError::Invalid(format!(
                    "a caller id part must be at most 128 bytes without control characters: \
                     {part:?}"
                )));
            }
        }
        if let Some(name) = name {
            self.info.caller_id_name = Some(name.to_string());
        }
        if let Some(number) = number {
            self.info.caller_id_number = Some(number.to_string());
        }
        Ok(())
    }

    /// The next scripted bridge result (nobody answers when none is left).
    pub(crate) fn bridge(&mut self, request: &BridgeRequest) -> BridgeResult {
        self.bridges.push(request.clone());
        let result = if self.bridge_results.is_empty() {
            BridgeResult::Failed(HangupInfo {
                disposition: None,
                hangup_cause: "NO_ANSWER".to_string(),
                hangup_code: "sip:480".to_string(),
            })
        } else {
            self.bridge_results.remove(0)
        };
        if result == BridgeResult::Answered {
            self.flags.bridged = true;
        }
        result
    }

    /// The next scripted recording result (the caller hangs up when none is left).
    pub(crate) fn record(&mut self, box_id: &str, max_secs: u32) -> RecordResult {
        self.recordings.push((box_id.to_string(), max_secs));
        if self.record_results.is_empty() {
            RecordResult::CallerHungUp
        } else {
            self.record_results.remove(0)
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<CallState>>>> = const { RefCell::new(None) };
}

/// Runs `act` on the call the module runs in now.
pub(crate) fn with_current<T>(act: impl FnOnce(&mut CallState) -> T) -> T {
    let state = CURRENT.with(|current| current.borrow().clone()).expect(
        "cfhost_sdk's host functions run inside a module: in a test, call the module through \
         cfhost_sdk::testing::ScriptedCall",
    );
    let mut state = state.borrow_mut();
    act(&mut state)
}

/// A call a module runs in, in a test. Builder methods script it; [`handle`](Self::handle)
/// and [`end`](Self::end) run the module; the other methods tell what the module did.
pub struct ScriptedCall {
    state: Rc<RefCell<CallState>>,
}

impl Default for ScriptedCall {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptedCall {
    /// An inbound call from `+15550009999` to `+15550001000` in account `account-1`, nothing
    /// set, at 2023-11-14T22:13:20Z; bridges are not answered and callers hang up before
    /// recording unless scripted otherwise.
    pub fn new() -> Self {
        let info = CallInfo {
            call_id: "call-1".to_string(),
            account_id: "account-1".to_string(),
            request: "+15550001000".to_string(),
            caller_id_name: None,
            caller_id_number: Some("+15550009999".to_string()),
            callee_id_name: None,
            callee_id_number: None,
            from_user: Some("+15550009999".to_string()),
            from_realm: None,
            to_user: Some("+15550001000".to_string()),
            to_realm: None,
            authorizing_type: None,
            authorizing_id: None,
            sip_headers: Vec::new(),
        };
        let state = CallState {
            account: AccountSettings {
                id: info.account_id.clone(),
                name: None,
                realm: None,
                timezone: None,
            },
            flags: CallFlags {
                bridged: false,
                message_left: false,
            },
            info,
            users: Vec::new(),
            children: vec!["_".to_string()],
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            bridge_results: Vec::new(),
            record_results: Vec::new(),
            answered: false,
            bridges: Vec::new(),
            recordings: Vec::new(),
            hangups: Vec::new(),
            notifications: Vec::new(),
            callbacks: Vec::new(),
            logs: Vec::new(),
        };
        ScriptedCall {
            state: Rc::new(RefCell::new(state)),
        }
    }

    fn with(self, change: impl FnOnce(&mut CallState)) -> Self {
        change(&mut self.state.borrow_mut());
        self
    }

    /// The caller id number (and From user).
    pub fn caller(self, number: &str) -> Self {
        self.with(|s| {
            s.info.caller_id_number = Some(number.to_string());
            s.info.from_user = Some(number.to_string());
        })
    }

    /// The dialed number (and To user).
    pub fn request(self, number: &str) -> Self {
        self.with(|s| {
            s.info.request = number.to_string();
            s.info.to_user = Some(number.to_string());
        })
    }

    /// Where the call was authorized (`device`, `user`, `resource`, ...).
    pub fn authorizing_type(self, authorizing_type: &str) -> Self {
        self.with(|s| s.info.authorizing_type = Some(authorizing_type.to_string()))
    }

    /// Who authorised the call: KAZOO's authorizing type and id (`device` and the device's
    /// id, `resource` and the trunk's name, ...).
    pub fn authorized(self, authorizing_type: &str, id: &str) -> Self {
        self.with(|s| {
            s.info.authorizing_type = Some(authorizing_type.to_string());
            s.info.authorizing_id = Some(id.to_string());
        })
    }

    /// Adds a header of the INVITE that the module may see.
    pub fn sip_header(self, name: &str, value: &str) -> Self {
        self.with(|s| {
            s.info
                .sip_headers
                .push((name.to_string(), value.to_string()))
        })
    }

    /// Changes anything else of the call info.
    pub fn info(self, change: impl FnOnce(&mut CallInfo)) -> Self {
        self.with(|s| change(&mut s.info))
    }

    /// The call's flags as they are when the module runs.
    pub fn flags(self, flags: CallFlags) -> Self {
        self.with(|s| s.flags = flags)
    }

    /// The account's time zone (its `account.json` `timezone`).
    pub fn timezone(self, timezone: &str) -> Self {
        self.with(|s| s.account.timezone = Some(timezone.to_string()))
    }

    /// The keys of the node's children (by default `_` alone), as `node::child_keys` gives.
    pub fn children(self, keys: &[&str]) -> Self {
        self.with(|s| s.children = keys.iter().map(|k| k.to_string()).collect())
    }

    /// Adds a user to the account's directory.
    pub fn user(self, user: User) -> Self {
        self.with(|s| s.users.push(user))
    }

    /// Adds a user with only an id and an email to the account's directory.
    pub fn user_with_email(self, id: &str, email: &str) -> Self {
        self.user(User {
            id: id.to_string(),
            email: Some(email.to_string()),
            first_name: None,
            last_name: None,
            endpoints: Vec::new(),
        })
    }

    /// What the next bridge returns (in order; nobody answers once they are used up).
    pub fn bridge_result(self, result: BridgeResult) -> Self {
        self.with(|s| s.bridge_results.push(result))
    }

    /// What the next recording returns (in order; the caller hangs up once they are used up).
    pub fn record_result(self, result: RecordResult) -> Self {
        self.with(|s| s.record_results.push(result))
    }

    /// The wall clock's reading while the module runs.
    pub fn now(self, now: SystemTime) -> Self {
        self.with(|s| s.now = now)
    }

    /// Runs `M`'s `handle` for one node with `data`, as the host would.
    pub fn handle<M: CallflowModule>(&self, data: &serde_json::Value) -> Result<Outcome, String> {
        self.running(|| M::handle(Call::scripted(), &data.to_string()))
    }

    /// Ends the call: runs each registered callback of `M` once, in registration order, with
    /// the call's final flags and `hangup`; returns what each returned.
    pub fn end<M: CallflowModule>(&self, hangup: Option<HangupInfo>) -> Vec<Result<(), String>> {
        let callbacks = std::mem::take(&mut self.state.borrow_mut().callbacks);
        callbacks
            .into_iter()
            .map(|state| {
                let hangup = hangup.clone();
                self.running(|| M::on_termination(Call::scripted(), hangup, state))
            })
            .collect()
    }

    /// The call's facts now (a module may have set the caller id).
    pub fn call_info(&self) -> CallInfo {
        self.state.borrow().info.clone()
    }

    /// The notifications published so far.
    pub fn notifications(&self) -> Vec<Notification> {
        self.state.borrow().notifications.clone()
    }

    /// The states of the callbacks registered and not yet run.
    pub fn callbacks(&self) -> Vec<Vec<u8>> {
        self.state.borrow().callbacks.clone()
    }

    /// The lines logged so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state.borrow().logs.clone()
    }

    /// The flags now.
    pub fn current_flags(&self) -> CallFlags {
        self.state.borrow().flags
    }

    /// Whether the module answered the call.
    pub fn answered(&self) -> bool {
        self.state.borrow().answered
    }

    /// The bridges the module asked for.
    pub fn bridges(&self) -> Vec<BridgeRequest> {
        self.state.borrow().bridges.clone()
    }

    /// The recordings the module asked for: box and maximum seconds.
    pub fn recordings(&self) -> Vec<(String, u32)> {
        self.state.borrow().recordings.clone()
    }

    /// The hangups the module asked for, with their causes.
    pub fn hangups(&self) -> Vec<Option<String>> {
        self.state.borrow().hangups.clone()
    }

    fn running<T>(&self, run: impl FnOnce() -> T) -> T {
        CURRENT.with(|current| *current.borrow_mut() = Some(Rc::clone(&self.state)));
        let result = run();
        CURRENT.with(|current| *current.borrow_mut() = None);
        result
    }
}

/// Checks that the schema file `file` (relative to the crate) is exactly `T`'s JSON Schema, as
/// [`schema_file_text`](crate::schema_file_text) writes it; with `CFHOST_WRITE_SCHEMAS=1` in
/// the environment it writes the file instead. A module that embeds its schema with
/// `include_str!` (so the component carries no schema generator) keeps it derived from its
/// data type this way: a test calls this, and a changed type fails it until the file is
/// written again.
pub fn check_schema_file<T: schemars::JsonSchema>(crate_dir: &str, file: &str) {
    let path = std::path::Path::new(crate_dir).join(file);
    let derived = crate::schema_file_text::<T>();
    if std::env::var_os("CFHOST_WRITE_SCHEMAS").is_some() {
        std::fs::write(&path, &derived).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == derived,
        "{} is not the schema of its data type; write it again with \
         `CFHOST_WRITE_SCHEMAS=1 cargo test`",
        path.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call_control::{self, RingStrategy};
    use crate::{AuthorizedBy, Capability, Description};

    /// Bridges, registers its data as a callback twice, and publishes from the callback.
    struct Probe;

    impl CallflowModule for Probe {
        fn describe() -> Description {
            crate::description("probe", "0", "", "{}", vec![Capability::CallControl])
        }

        fn handle(_call: Call, data: &str) -> Result<Outcome, String> {
            crate::register_termination_raw(data.as_bytes())?;
            crate::register_termination_raw(data.as_bytes())?;
            let request = BridgeRequest {
                endpoints: Vec::new(),
                timeout_secs: 20,
                delay_secs: 0,
                strategy: RingStrategy::Simultaneous,
            };
            Ok(match call_control::bridge(&request) {
                BridgeResult::Answered => crate::continue_to(["answered"]),
                BridgeResult::Failed(info) => crate::continue_to([info.hangup_cause]),
                BridgeResult::CallerHungUp => Outcome::Stop,
            })
        }

        fn on_termination(
            call: Call,
            _hangup: Option<HangupInfo>,
            state: Vec<u8>,
        ) -> Result<(), String> {
            crate::log::info(&format!(
                "bridged={} state={}",
                call.flags().bridged,
                String::from_utf8_lossy(&state)
            ));
            Ok(())
        }
    }

    #[test]
    fn a_scripted_bridge_sets_the_flag_and_callbacks_run_once_with_the_final_flags() {
        let call = ScriptedCall::new().bridge_result(BridgeResult::Answered);
        let data = serde_json::json!({"n": 1});
        assert_eq!(
            call.handle::<Probe>(&data),
            Ok(crate::continue_to(["answered"]))
        );
        assert!(call.current_flags().bridged);
        assert_eq!(call.bridges().len(), 1);
        assert_eq!(
            call.callbacks(),
            [br#"{"n":1}"#.to_vec()],
            "registered once"
        );
        assert_eq!(call.end::<Probe>(None), [Ok(())]);
        assert_eq!(
            call.logs(),
            [(Level::Info, r#"bridged=true state={"n":1}"#.to_string())]
        );
        assert!(call.callbacks().is_empty(), "each callback runs once");
    }

    /// Reads the call's new facts and sets its caller id.
    struct Reader;

    impl CallflowModule for Reader {
        fn describe() -> Description {
            crate::description("reader", "0", "", "{}", vec![Capability::CallControl])
        }

        fn handle(call: Call, data: &str) -> Result<Outcome, String> {
            call.set_caller_id(Some(data), None)?;
            let by = match call.authorized_by() {
                Some(AuthorizedBy::Device(id)) => format!("device {id}"),
                other => format!("{other:?}"),
            };
            let tier = call.sip_header("x-tier").unwrap_or_default();
            let name = call.caller_id_name().unwrap_or_default();
            Ok(crate::continue_to([format!("{by}/{tier}/{name}")]))
        }
    }

    #[test]
    fn a_scripted_call_gives_the_authoriser_the_headers_and_takes_a_caller_id() {
        let call = ScriptedCall::new()
            .authorized("device", "d1")
            .sip_header("X-Tier", "gold");
        let outcome = call.handle::<Reader>(&serde_json::json!("Desk"));
        assert_eq!(
            outcome,
            Ok(crate::continue_to([r#"device d1/gold/"Desk""#]))
        );
        assert_eq!(
            call.call_info().caller_id_name.as_deref(),
            Some(r#""Desk""#)
        );
        let refused = call.handle::<Reader>(&serde_json::json!("x".repeat(200)));
        assert!(
            refused
                .unwrap_err()
                .starts_with("refused: a caller id part")
        );
    }

    #[test]
    fn unscripted_bridges_are_not_answered() {
        let call = ScriptedCall::new();
        let outcome = call.handle::<Probe>(&serde_json::json!({}));
        assert_eq!(outcome, Ok(crate::continue_to(["NO_ANSWER"])));
        assert!(!call.current_flags().bridged);
    }

    #[test]
    #[should_panic(expected = "call the module through cfhost_sdk::testing::ScriptedCall")]
    fn host_functions_outside_a_scripted_call_say_how_to_test() {
        crate::log::info("nobody is listening");
    }
}
