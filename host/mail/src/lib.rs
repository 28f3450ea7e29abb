//! cfhost-mail: the mailer. It consumes cfhost's notifications from RabbitMQ, renders them as
//! KAZOO's teletype does and delivers them over SMTP, losing none. It knows cfhost only through
//! KAZOO's wire format on the `notifications` exchange and the store (`cfhost_store`), and
//! links no WebAssembly runtime.
//!
//! - [`notification`]: a message, checked and normalised as teletype does;
//! - [`account`], [`templates`]: what the store says of an account and its templates;
//! - [`macros`], [`render`]: teletype's macros, and its ErlyDTL templates on minijinja;
//! - [`email`]: the MIME message a notification becomes, within the operator's [`policy`];
//! - [`service`]: the consumer, with [`smtp`] delivery, its [`memory`] of what was sent (the
//!   [`sent`] log, or the store's claims), the dead-letter [`queues`], teletype's [`replies`]
//!   and the [`counters`];
//! - [`config`]: the `[mailer]` section.

pub mod account;
pub mod config;
pub mod counters;
pub mod email;
pub mod macros;
pub mod memory;
pub mod notification;
pub mod policy;
pub mod queues;
pub mod render;
pub mod replies;
pub mod sent;
pub mod service;
pub mod smtp;
pub mod templates;

pub use config::MailerConfig;
pub use email::{ComposeError, Composed, Composer, Email};
pub use notification::{Kind, Notification};
pub use policy::{PolicyError, SendPolicy};
pub use service::{Mailer, MailerError};
