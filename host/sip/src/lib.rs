//! cfhost-sip: real calls over SIP. A back-to-back user agent on rsipstack (whose types never
//! leave this crate), behind `cfhost_core::switch::Switch`, so that modules, the WIT and every
//! behaviour of the simulator stay as they are:
//!
//! - [`service`]: UDP and TCP on `[sip] listen` ([`config`]), caps at accept, shutdown;
//!   [`tcp`]: TCP connections, capped, idle ones closed;
//! - [`dispatch`]: who may call (carrier trunks by address, devices by digest, [`auth`], or as
//!   the [`edge`] in front says), the registrar ([`registrar`]), `OPTIONS`; [`guard`]:
//!   strangers' rates and failed logins;
//! - [`call`]: one admitted call run to its end; [`leg`]: its caller's leg; [`switch`]: its call
//!   control; [`bridge`]: ringing devices and SIP URIs; [`in_dialog`]: re-INVITEs and the like,
//!   relayed between the legs; [`media`]: answering and recording voicemail;
//! - [`shared`]: the state every task shares, and the counted answer to a transaction; it is
//!   below all the others, so modules depend one way (service, dispatch, call, switch, bridge,
//!   leg, shared);
//! - [`causes`]: SIP codes and the Q.850 cause names KAZOO reports; [`metrics`]; [`throttle`]:
//!   log lines a flood cannot multiply;
//! - [`baseline`]: a bare B2BUA, what the SIP benchmark compares cfhost with.

pub mod auth;
pub mod baseline;
mod bridge;
mod call;
pub mod causes;
pub mod config;
mod dispatch;
pub mod edge;
pub mod guard;
pub mod headers;
mod in_dialog;
mod leg;
pub mod media;
pub mod metrics;
pub mod registrar;
pub mod service;
mod shared;
mod switch;
pub mod tcp;
mod throttle;

pub use config::{EdgeConfig, SipConfig, SipConfigError, TrunkConfig};
pub use metrics::SetupSnapshot;
pub use service::{ActiveCall, CallSummary, SipError, SipService};
