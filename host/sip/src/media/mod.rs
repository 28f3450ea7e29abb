//! Media for the calls cfhost answers itself (voicemail): G.711 ([`g711`]), SDP offers and
//! answers ([`sdp`]), RTP sockets and decoding ([`rtp`]), prompts played on one clock for every call
//! ([`pacer`]), and recording messages into
//! voicemail boxes ([`voicemail`]). A bridge passes media through: its SDP goes from one leg to
//! the other untouched, so RTP flows endpoint to endpoint.

pub mod g711;
pub mod pacer;
pub mod rtp;
pub mod sdp;
pub mod voicemail;
