//! cfhost: a callflow host whose modules are WebAssembly components.
//!
//! A call arrives for an account and a dialed number; [`callflow::lookup`] picks the account's
//! callflow; the [`executor`] walks its tree, running each node in a fresh instance of its
//! module ([`registry`], [`engine`]), whose imports ([`imports`]) reach the call ([`call`]),
//! the [`switch`], the account's [`directory`] and the notification sink ([`notify`]). When the
//! call ends, the termination callbacks modules registered run, each in its own instance.
//! [`watch`] reloads modules and documents dropped into the directories of a running host.

pub mod accounts;
pub mod api;
pub mod bench;
pub mod bindings;
pub mod call;
pub mod callflow;
pub mod config;
pub mod directory;
pub mod engine;
pub mod executor;
pub mod files;
pub mod imports;
pub mod notify;
pub mod policy;
pub mod registry;
pub mod runtime;
pub mod scenario;
pub mod switch;
pub mod trace;
pub mod watch;
