//! cfhost-core: the callflow runtime, whose modules are WebAssembly components.
//!
//! A backend (the simulator, SIP) takes a [`Call`](call::Call) and hands it to
//! [`Runtime::run_call`](runtime::Runtime::run_call); [`callflow::lookup`] picks the account's
//! callflow; the [`executor`] walks its tree, running each node in a fresh instance of its
//! module ([`registry`], [`engine`]) under the tenant [`policy`]. The instances' imports
//! ([`imports`]) reach the call's [`context`]: its [`switch`], the account's
//! [`directory`] and the notification sink ([`notify`]). When the call ends, the termination
//! callbacks modules registered run, each in its own instance.
//!
//! Dependencies run one way, bottom to top (a test in `tests/all/layers.rs` keeps them so):
//!
//! ```text
//! bindings, hangup
//! policy, trace
//! call
//! switch   directory   notify
//! context
//! imports
//! engine
//! registry
//! callflow, accounts
//! executor
//! runtime, scenario
//! follow
//! ```
//!
//! What the accounts hold comes from a store (`cfhost-store`: a data directory or PostgreSQL),
//! which the runtime reads and validates; its file helpers are re-exported as [`files`].
//!
//! The configuration file is not known here: each part owns its section type
//! ([`engine::EngineSettings`], [`notify::NotificationsConfig`], [`policy::PolicyConfig`]) and
//! the binary assembles them.

pub mod accounts;
pub mod bindings;
pub mod call;
pub mod callflow;
pub mod context;
pub mod directory;
pub mod engine;
pub mod executor;
pub mod follow;
pub use cfhost_store::files;
pub mod hangup;
pub mod imports;
pub mod notify;
pub mod policy;
pub mod registry;
pub mod runtime;
pub mod scenario;
pub mod switch;
pub mod trace;
