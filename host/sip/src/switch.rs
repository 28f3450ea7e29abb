//! The call-control backend of one SIP call, behind `cfhost_core::switch::Switch`:
//! - `answer`: 200 with cfhost's SDP (the caller's first offered G.711 law), an RTP port;
//! - `bridge`: ring the endpoints ([`crate::bridge`]);
//! - `record-voicemail`: answer if needed, a short tone, then the caller's RTP into a WAV;
//! - `hangup`: BYE when answered, else the final response for the cause.
//!
//! Every change of the channel is applied to the [`Call`] as KAZOO's events would be.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cfhost_core::call::{
    BridgeOutcome, BridgeRequest, Call, ChannelEvent, Hangup, HangupCause, HangupEvent,
    RecordOutcome,
};
use cfhost_core::switch::{Switch, SwitchError};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, StatusCode};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::causes::sip_of_cause;
use crate::in_dialog::InDialog;
use crate::media::g711::Law;
use crate::media::rtp::RtpSource;
use crate::media::sdp::{self, AudioOffer, SdpError};
use crate::media::voicemail::{self, MIN_MESSAGE, RecordingEnd};
use crate::service::Shared;

/// The media of a call cfhost answered itself.
pub(crate) struct OwnMedia {
    pub socket: Arc<UdpSocket>,
    pub law: Law,
    /// Whose RTP is the caller's, from its offer and where it signalled from.
    pub source: RtpSource,
}

/// The caller's leg as the switch left it.
#[derive(Default)]
struct CallerLeg {
    /// A 200 went to the caller (cfhost answered, or a callee did through a bridge).
    answered: bool,
    media: Option<Arc<OwnMedia>>,
    /// The SDP of cfhost's own answer, given again to a re-INVITE.
    answer_sdp: Option<Vec<u8>>,
    /// Where the caller's in-dialog requests go while a bridge talks.
    relay: Option<mpsc::UnboundedSender<InDialog>>,
}

/// One SIP call's switch.
pub(crate) struct SipSwitch {
    pub(crate) shared: Arc<Shared>,
    pub(crate) caller: InviteDialog,
    /// The caller's SDP offer, passed through to the legs a bridge rings.
    pub(crate) offer: Vec<u8>,
    /// The IP the caller's INVITE came from: RTP is taken from it only.
    signalling: Option<IpAddr>,
    /// When the INVITE arrived: the call's setup time is counted from it.
    started: std::time::Instant,
    leg: Mutex<CallerLeg>,
}

/// A backend failure, as the core's error type.
pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> SwitchError {
    SwitchError::Backend(Box::new(e))
}

/// `application/sdp`, the content type of every body cfhost sends.
pub(crate) fn sdp_content_type() -> Header {
    Header::ContentType("application/sdp".into())
}

impl SipSwitch {
    /// The switch of the call whose caller is `caller`, who offered `offer` from `signalling`.
    pub fn new(
        shared: Arc<Shared>,
        caller: InviteDialog,
        offer: Vec<u8>,
        signalling: Option<IpAddr>,
        started: std::time::Instant,
    ) -> Self {
        SipSwitch {
            shared,
            caller,
            offer,
            signalling,
            started,
            leg: Mutex::new(CallerLeg::default()),
        }
    }

    fn leg(&self) -> std::sync::MutexGuard<'_, CallerLeg> {
        self.leg.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a 200 went to the caller.
    pub(crate) fn answered(&self) -> bool {
        self.leg().answered
    }

    /// Marks the caller answered through a bridge.
    pub(crate) fn mark_answered(&self) {
        self.leg().answered = true;
        self.shared.metrics.setup(self.started.elapsed());
    }

    /// Sends the caller's in-dialog requests to the receiver returned, until
    /// [`Self::stop_relaying_caller_requests`]: a bridge relays them to its other leg.
    pub(crate) fn relay_caller_requests(&self) -> mpsc::UnboundedReceiver<InDialog> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.leg().relay = Some(sender);
        receiver
    }

    /// cfhost answers the caller's in-dialog requests itself again.
    pub(crate) fn stop_relaying_caller_requests(&self) {
        self.leg().relay = None;
    }

    /// Takes a request the caller sent inside its dialog: to the bridge's other leg if one is
    /// talking, else answered by cfhost with its own media.
    pub(crate) async fn take_caller_request(&self, request: InDialog) {
        let (relay, sdp) = {
            let leg = self.leg();
            (leg.relay.clone(), leg.answer_sdp.clone())
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

    /// Applies a destroy of the caller's channel with `hangup`.
    pub(crate) fn destroy(call: &Call, hangup: &Hangup) {
        let call_id = call.details().call_id.clone();
        call.apply(&ChannelEvent::Destroy(HangupEvent::of(&call_id, hangup)));
    }

    /// Answers with cfhost's own media, if no one has answered yet; returns it (none when a
    /// callee answered through a bridge).
    async fn answer_with_media(&self, call: &Call) -> Result<Option<Arc<OwnMedia>>, SwitchError> {
        if call.is_destroyed() {
            return Err(SwitchError::Gone);
        }
        {
            let leg = self.leg();
            if leg.answered {
                return Ok(leg.media.clone());
            }
        }
        let offer = AudioOffer::parse(&self.offer);
        match &offer {
            // An offer cfhost cannot speak (G.729 only): 488, as RFC 3264 §6 says.
            Err(e @ SdpError::NoG711) => {
                call.trace()
                    .switch(format!("the caller's SDP: {e}: 488 Not Acceptable Here"));
                self.caller
                    .reject(Some(StatusCode::NotAcceptableHere), None)
                    .map_err(backend)?;
                self.shared.metrics.response(488);
                Self::destroy(
                    call,
                    &Hangup::new(HangupCause::from("INCOMPATIBLE_DESTINATION"), 488),
                );
                return Err(SwitchError::Gone);
            }
            Err(e) => call
                .trace()
                .switch(format!("the caller's SDP: {e}; answering with PCMU")),
            Ok(_) => {}
        }
        let law = offer.as_ref().map_or(Law::Mu, |o| o.law);
        let socket = self.shared.rtp.bind().await.map_err(backend)?;
        let local = socket.local_addr().map_err(backend)?;
        let body = sdp::answer(local, law, rand::random::<u32>().into());
        self.caller
            .accept(Some(vec![sdp_content_type()]), Some(body.clone()))
            .map_err(backend)?;
        self.shared.metrics.response(200);
        let media = Arc::new(OwnMedia {
            socket: Arc::new(socket),
            law,
            source: RtpSource::new(offer.ok().map(|o| o.address), self.signalling),
        });
        let mut leg = self.leg();
        leg.answered = true;
        leg.media = Some(Arc::clone(&media));
        leg.answer_sdp = Some(body);
        drop(leg);
        self.shared.metrics.setup(self.started.elapsed());
        call.trace().switch(format!(
            "answered by cfhost ({}, RTP on {local})",
            law.encoding_name()
        ));
        Ok(Some(media))
    }

    /// Ends the caller's leg if the flow left it up: BYE if answered, else 480.
    pub(crate) async fn finish(&self, call: &Call) {
        if !call.is_destroyed() {
            let _ = self.hangup(call, &HangupCause::NORMAL_CLEARING).await;
        }
        if self.answered() {
            let _ = self.caller.bye().await;
        } else {
            let _ = self
                .caller
                .reject(Some(StatusCode::TemporarilyUnavailable), None);
        }
    }
}

#[async_trait::async_trait]
impl Switch for SipSwitch {
    async fn answer(&self, call: &Call) -> Result<(), SwitchError> {
        self.answer_with_media(call).await.map(|_| ())
    }

    async fn bridge(
        &self,
        call: &Call,
        request: &BridgeRequest,
    ) -> Result<BridgeOutcome, SwitchError> {
        if call.is_destroyed() {
            return Ok(BridgeOutcome::CallerHungUp);
        }
        Ok(crate::bridge::bridge(self, call, request).await)
    }

    async fn record_voicemail(
        &self,
        call: &Call,
        box_id: &str,
        max_secs: u32,
    ) -> Result<RecordOutcome, SwitchError> {
        if call.is_destroyed() {
            return Ok(RecordOutcome::CallerHungUp);
        }
        let Some(media) = self.answer_with_media(call).await? else {
            return Ok(RecordOutcome::Failed(
                "the call was answered by a callee; cfhost has no media of it".to_string(),
            ));
        };
        let started = SystemTime::now();
        let mut source = media.source;
        if let Some(peer) = source.send_to() {
            let beep = self.shared.beep.encoded(media.law);
            let socket = Arc::clone(&media.socket);
            tokio::select! {
                () = self.shared.pacer.play(socket, peer, beep) => {}
                () = call.over() => return Ok(RecordOutcome::CallerHungUp),
            }
        }
        let max = Duration::from_secs(u64::from(max_secs.max(1)));
        let silence = self.shared.settings.silence_timeout;
        let recording =
            voicemail::record(&media.socket, &mut source, max, silence, call.over()).await;
        let length = recording.length();
        let why = match recording.end {
            RecordingEnd::CallEnded => "the caller hung up",
            RecordingEnd::MaxLength => "the longest message",
            RecordingEnd::NoMedia => "no audio",
        };
        call.trace()
            .switch(format!("recorded {} ms ({why})", length.as_millis()));
        if length < MIN_MESSAGE {
            call.trace().switch(format!(
                "shorter than {} ms: not a message",
                MIN_MESSAGE.as_millis()
            ));
            return Ok(if call.is_destroyed() {
                RecordOutcome::CallerHungUp
            } else {
                RecordOutcome::Failed("no message was recorded".to_string())
            });
        }
        let account_dir = self
            .shared
            .runtime
            .data_dir()
            .join("accounts")
            .join(&call.details().account_id);
        match voicemail::store(&account_dir, box_id, call.details(), started, &recording) {
            Ok(stored) => {
                call.trace()
                    .switch(format!("message stored as {}", stored.wav.display()));
                let secs = ((length.as_millis() + 500) / 1000).max(1);
                Ok(RecordOutcome::Recorded {
                    secs: u32::try_from(secs).unwrap_or(u32::MAX),
                })
            }
            Err(e) => {
                tracing::error!("voicemail: {e}");
                Ok(RecordOutcome::Failed(e.to_string()))
            }
        }
    }

    async fn hangup(&self, call: &Call, cause: &HangupCause) -> Result<(), SwitchError> {
        if call.is_destroyed() {
            return Ok(());
        }
        let hangup = if self.answered() {
            self.caller.bye().await.map_err(backend)?;
            call.trace()
                .switch(format!("cfhost hung up ({cause}): BYE"));
            Hangup::new(cause.clone(), 200)
        } else {
            let code = sip_of_cause(cause);
            self.caller
                .reject(Some(StatusCode::from(code)), None)
                .map_err(backend)?;
            self.shared.metrics.response(code);
            call.trace()
                .switch(format!("cfhost ended the call ({cause}): {code}"));
            Hangup::new(cause.clone(), code)
        };
        Self::destroy(call, &hangup);
        Ok(())
    }

    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
