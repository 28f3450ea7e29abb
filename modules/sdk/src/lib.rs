//! The SDK for cfhost callflow modules: a module is plain Rust.
//!
//! A module is a `cdylib` crate built for `wasm32-wasip2` (`cfhost new-module NAME` writes
//! one) against `cfhost:callflow@0.3`. It implements [`CallflowModule`], describes its node
//! data with a type ([`description_for`] derives the JSON Schema), reads the [`Call`] it runs
//! for through its methods, reaches the host through [`call_control`], [`directory`],
//! [`notify`], [`account`], [`node`], [`clock`], [`log`] and the termination callbacks
//! ([`register_termination`]), and is exported with [`export_module!`]. Under `cargo test` the
//! same code runs natively against a [`testing::ScriptedCall`].
//!
//! ```
//! use cfhost_sdk::{Call, CallflowModule, Capability, Description, Outcome};
//!
//! struct Hello;
//!
//! /// The node's data.
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Data {
//!     /// Who to greet.
//!     name: String,
//! }
//!
//! impl CallflowModule for Hello {
//!     fn describe() -> Description {
//!         let needs = vec![Capability::Log];
//!         cfhost_sdk::description_for::<Data>("hello", "0.1.0", "Says hello", needs)
//!     }
//!     fn handle(call: Call, data: &str) -> Result<Outcome, String> {
//!         let data: Data = cfhost_sdk::parse_data(data)?;
//!         let from = call.caller_id_number().unwrap_or_default();
//!         cfhost_sdk::log::info(&format!("hello, {}, from {from}", data.name));
//!         Ok(cfhost_sdk::next())
//!     }
//! }
//!
//! cfhost_sdk::export_module!(Hello);
//!
//! // In a test:
//! let call = cfhost_sdk::testing::ScriptedCall::new();
//! let outcome = call.handle::<Hello>(&serde_json::json!({"name": "world"}));
//! assert_eq!(outcome, Ok(cfhost_sdk::next()));
//! assert_eq!(call.logs()[0].1, "hello, world, from +15550009999");
//! ```

/// Bindings generated from `wit/callflow.wit`; modules use the wrappers below instead, which
/// also run under [`testing`].
// Generated: a method with two optional strings lowers to eleven core parameters.
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "callflow-module",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "cfhost_sdk::bindings",
        additional_derives: [PartialEq, Eq],
    });
}

mod call;
mod errors;
mod host;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use bindings::cfhost::callflow::call::{AuthorizedBy, ControlError};
pub use bindings::cfhost::callflow::callbacks::RegisterError;
pub use bindings::cfhost::callflow::notify::PublishError;
pub use bindings::cfhost::callflow::types::{
    CallFlags, Capability, Description, HangupInfo, Outcome,
};
pub use call::Call;
pub use host::register_termination_raw;
pub use host::{account, call_control, clock, directory, log, node, notify};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a module implements. `on_termination` is only needed by modules that register
/// termination callbacks.
pub trait CallflowModule {
    /// The module's self-description (see [`description`]).
    fn describe() -> Description;
    /// Runs one node of `call` with its `data` (JSON text, already validated against the
    /// schema).
    fn handle(call: Call, data: &str) -> Result<Outcome, String>;
    /// Runs a termination callback this module registered with [`register_termination`], with
    /// the call in its final state.
    fn on_termination(
        _call: Call,
        _hangup: Option<HangupInfo>,
        _state: Vec<u8>,
    ) -> Result<(), String> {
        Err("this module registers no termination callbacks".to_string())
    }
}

/// Exports a type implementing [`CallflowModule`] as the component's `callflow-module` world.
#[macro_export]
macro_rules! export_module {
    ($module:ty) => {
        const _: () = {
            struct Exports;
            impl $crate::bindings::Guest for Exports {
                fn describe() -> $crate::Description {
                    <$module as $crate::CallflowModule>::describe()
                }
                fn handle(
                    call: &$crate::bindings::cfhost::callflow::call::Call,
                    data: ::std::string::String,
                ) -> ::std::result::Result<$crate::Outcome, ::std::string::String> {
                    let call = $crate::Call::lent(call);
                    <$module as $crate::CallflowModule>::handle(call, &data)
                }
                fn on_termination(
                    call: &$crate::bindings::cfhost::callflow::call::Call,
                    hangup: ::std::option::Option<$crate::HangupInfo>,
                    state: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    let call = $crate::Call::lent(call);
                    <$module as $crate::CallflowModule>::on_termination(call, hangup, state)
                }
            }
            $crate::bindings::export_bindings!(Exports);
        };
    };
}

/// The JSON Schema (draft 2020-12) of `T`, as text: the `data_schema` of a module whose node
/// data deserializes into `T` (derive `schemars::JsonSchema` next to `serde::Deserialize`).
pub fn schema_for<T: schemars::JsonSchema>() -> String {
    schemars::schema_for!(T).as_value().to_string()
}

/// `T`'s JSON Schema as a schema file holds it: pretty-printed, with a final newline. A module
/// may commit this file and embed it with `include_str!`, checked in a test by
/// [`testing::check_schema_file`], so that the component does not carry the generator.
pub fn schema_file_text<T: schemars::JsonSchema>() -> String {
    let schema = schemars::schema_for!(T);
    let mut text = serde_json::to_string_pretty(schema.as_value()).expect("a schema serializes");
    text.push('\n');
    text
}

/// Builds a [`Description`] whose data schema is `T`'s ([`schema_for`]).
pub fn description_for<T: schemars::JsonSchema>(
    name: &str,
    version: &str,
    summary: &str,
    capabilities: Vec<Capability>,
) -> Description {
    description(name, version, summary, &schema_for::<T>(), capabilities)
}

/// Builds a [`Description`]; `data_schema` is the JSON Schema of the node's `data`, as text.
pub fn description(
    name: &str,
    version: &str,
    summary: &str,
    data_schema: &str,
    capabilities: Vec<Capability>,
) -> Description {
    Description {
        name: name.to_string(),
        version: version.to_string(),
        summary: summary.to_string(),
        data_schema: data_schema.to_string(),
        capabilities,
    }
}

/// Continue to the `_` child.
pub fn next() -> Outcome {
    Outcome::ContinueTo(Vec::new())
}

/// Continue to the first of `keys` that names a child, else to `_`.
pub fn continue_to<I, S>(keys: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Outcome::ContinueTo(keys.into_iter().map(Into::into).collect())
}

/// Parses the node's `data` into `T`, with a message that names the module's mistake.
pub fn parse_data<T: DeserializeOwned>(data: &str) -> Result<T, String> {
    serde_json::from_str(data).map_err(|e| format!("node data does not fit the module: {e}"))
}

/// Registers a termination callback whose state is `state`, serialized as JSON.
pub fn register_termination<S: Serialize>(state: &S) -> Result<(), String> {
    let bytes = serde_json::to_vec(state).map_err(|e| format!("cannot serialize state: {e}"))?;
    Ok(register_termination_raw(&bytes)?)
}

/// Reads back the state given to [`register_termination`].
pub fn termination_state<S: DeserializeOwned>(state: &[u8]) -> Result<S, String> {
    serde_json::from_slice(state).map_err(|e| format!("cannot read callback state: {e}"))
}

/// Reads users of the call's account and returns each one's email (`None` for a user that does
/// not exist or has no email), in the order of `ids`.
pub fn user_emails(ids: &[String]) -> Vec<Option<String>> {
    directory::lookup_users(ids)
        .into_iter()
        .map(|user| user.and_then(|u| u.email))
        .collect()
}
