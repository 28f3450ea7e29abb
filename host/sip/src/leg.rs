//! The caller's leg of a SIP call: its server dialog, its SDP offer and where it signalled
//! from, and what has happened to it (answered by cfhost with its own media, or through a
//! bridge; where its in-dialog requests go). The switch ([`crate::switch`]) and the bridge
//! ([`crate::bridge`]) both act on it; neither knows the other's insides.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use cfhost_core::call::{Call, ChannelEvent, Hangup, HangupEvent};
use rsipstack::dialog::invite_dialog::InviteDialog;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::in_dialog::InDialog;
use crate::media::g711::Law;
use crate::media::rtp::RtpSource;
use crate::shared::Shared;

/// The media of a call cfhost answered itself.
pub(crate) struct OwnMedia {
    pub socket: Arc<UdpSocket>,
    pub law: Law,
    /// Whose RTP is the caller's, from its offer and where it signalled from.
    pub source: RtpSource,
}

/// What has happened to the leg.
#[derive(Default)]
struct State {
    /// A 200 went to the caller (cfhost answered, or a callee did through a bridge).
    answered: bool,
    media: Option<Arc<OwnMedia>>,
    /// The SDP of cfhost's own answer, given again to a re-INVITE.
    answer_sdp: Option<Vec<u8>>,
    /// Where the caller's in-dialog requests go while a bridge talks.
    relay: Option<mpsc::UnboundedSender<InDialog>>,
}

/// The caller's leg.
pub(crate) struct CallerLeg {
    pub(crate) shared: Arc<Shared>,
    pub(crate) caller: InviteDialog,
    /// The caller's SDP offer, passed through to the legs a bridge rings.
    pub(crate) offer: Vec<u8>,
    /// The IP the caller's INVITE came from: RTP is taken from it only.
    pub(crate) signalling: Option<IpAddr>,
    /// When the INVITE arrived: the call's setup time is counted from it.
    started: std::time::Instant,
    state: Mutex<State>,
}

/// How cfhost's own answer left the leg: whether someone answered before, and the media if
/// cfhost did.
pub(crate) struct Answered {
    pub already: bool,
    pub media: Option<Arc<OwnMedia>>,
}

impl CallerLeg {
    /// The leg of `caller`, who offered `offer` from `signalling`, its INVITE in at `started`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        caller: InviteDialog,
        offer: Vec<u8>,
        signalling: Option<IpAddr>,
        started: std::time::Instant,
    ) -> Self {
        CallerLeg {
            shared,
            caller,
            offer,
            signalling,
            started,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a 200 went to the caller.
    pub(crate) fn answered(&self) -> bool {
        self.state().answered
    }

    /// Whether it was answered already, and cfhost's media if cfhost answered it.
    pub(crate) fn answer_so_far(&self) -> Answered {
        let state = self.state();
        Answered {
            already: state.answered,
            media: state.media.clone(),
        }
    }

    /// Marks the caller answered through a bridge.
    pub(crate) fn mark_answered(&self) {
        self.state().answered = true;
        self.shared.metrics.setup(self.started.elapsed());
    }

    /// Marks the caller answered by cfhost with `media`, whose SDP was `sdp`.
    pub(crate) fn mark_answered_by_cfhost(&self, media: Arc<OwnMedia>, sdp: Vec<u8>) {
        let mut state = self.state();
        state.answered = true;
        state.media = Some(media);
        state.answer_sdp = Some(sdp);
        drop(state);
        self.shared.metrics.setup(self.started.elapsed());
    }

    /// Sends the caller's in-dialog requests to the receiver returned, until
    /// [`Self::stop_relaying_caller_requests`]: a bridge relays them to its other leg.
    pub(crate) fn relay_caller_requests(&self) -> mpsc::UnboundedReceiver<InDialog> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.state().relay = Some(sender);
        receiver
    }

    /// cfhost answers the caller's in-dialog requests itself again.
    pub(crate) fn stop_relaying_caller_requests(&self) {
        self.state().relay = None;
    }

    /// Takes a request the caller sent inside its dialog: to the bridge's other leg if one is
    /// talking, else answered by cfhost with its own media.
    pub(crate) async fn take_caller_request(&self, request: InDialog) {
        let (relay, sdp) = {
            let state = self.state();
            (state.relay.clone(), state.answer_sdp.clone())
        };
        let request = match relay {
            Some(relay) => match relay.send(request) {
                Ok(()) => return,
                Err(mpsc::error::SendError(request)) => request,
            },
            None => request,
        };
        request.answer_locally(sdp).await;
    }
}

/// Applies a destroy of the caller's channel with `hangup`.
pub(crate) fn destroy(call: &Call, hangup: &Hangup) {
    let call_id = call.details().call_id.clone();
    call.apply(&ChannelEvent::Destroy(HangupEvent::of(&call_id, hangup)));
}
