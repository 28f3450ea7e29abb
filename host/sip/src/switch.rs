//! The call-control backend of one SIP call, behind `cfhost_core::switch::Switch`:
//! - `answer`: 200 with cfhost's SDP (the caller's first offered G.711 law), an RTP port;
//! - `bridge`: ring the endpoints ([`crate::bridge`]);
//! - `record-voicemail`: answer if needed, a short tone, then the caller's RTP into a WAV;
//! - `hangup`: BYE when answered, else the final response for the cause.
//!
//! Every change of the channel is applied to the [`Call`] as KAZOO's events would be.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cfhost_core::call::{BridgeOutcome, BridgeRequest, Call, Hangup, HangupCause, RecordOutcome};
use cfhost_core::switch::{Switch, SwitchError};
use rsipstack::sip::StatusCode;

use crate::causes::sip_of_cause;
use crate::leg::{CallerLeg, OwnMedia, destroy};
use crate::media::g711::Law;
use crate::media::rtp::RtpSource;
use crate::media::sdp::{self, AudioOffer, SdpError};
use crate::media::voicemail::{self, MIN_MESSAGE, RecordingEnd};
use cfhost_store::Kept;

/// One SIP call's switch.
pub(crate) struct SipSwitch {
    pub(crate) leg: CallerLeg,
}

/// A backend failure, as the core's error type.
pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> SwitchError {
    SwitchError::Backend(Box::new(e))
}

impl SipSwitch {
    /// The switch of the call whose caller's leg is `leg`.
    pub(crate) fn new(leg: CallerLeg) -> Self {
        SipSwitch { leg }
    }

    /// Answers with cfhost's own media, if no one has answered yet; returns it (none when a
    /// callee answered through a bridge).
    async fn answer_with_media(&self, call: &Call) -> Result<Option<Arc<OwnMedia>>, SwitchError> {
        if call.is_destroyed() {
            return Err(SwitchError::Gone);
        }
        let so_far = self.leg.answer_so_far();
        if so_far.already {
            return Ok(so_far.media);
        }
        let leg = &self.leg;
        let offer = AudioOffer::parse(&leg.offer);
        match &offer {
            // An offer cfhost cannot speak (G.729 only): 488, as RFC 3264 §6 says.
            Err(e @ SdpError::NoG711) => {
                call.trace()
                    .switch(format!("the caller's SDP: {e}: 488 Not Acceptable Here"));
                self.leg
                    .caller
                    .reject(Some(StatusCode::NotAcceptableHere), None)
                    .map_err(backend)?;
                self.leg.shared.metrics.response(488);
                destroy(
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
        let socket = self.leg.shared.rtp.bind().await.map_err(backend)?;
        let local = socket.local_addr().map_err(backend)?;
        let body = sdp::answer(local, law, rand::random::<u32>().into());
        self.leg
            .caller
            .accept(Some(vec![sdp::content_type()]), Some(body.clone()))
            .map_err(backend)?;
        self.leg.shared.metrics.response(200);
        let media = Arc::new(OwnMedia {
            socket: Arc::new(socket),
            law,
            source: RtpSource::new(offer.ok().map(|o| o.address), leg.signalling),
        });
        leg.mark_answered_by_cfhost(Arc::clone(&media), body);
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
        if self.leg.answered() {
            let _ = self.leg.caller.bye().await;
        } else {
            let _ = self
                .leg
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
        Ok(crate::bridge::bridge(&self.leg, call, request).await)
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
            let beep = self.leg.shared.beep.encoded(media.law);
            let socket = Arc::clone(&media.socket);
            tokio::select! {
                () = self.leg.shared.pacer.play(socket, peer, beep) => {}
                () = call.over() => return Ok(RecordOutcome::CallerHungUp),
            }
        }
        let max = Duration::from_secs(u64::from(max_secs.max(1)));
        let silence = self.leg.shared.settings.silence_timeout;
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
        let stored = match voicemail::message(box_id, call.details(), started, &recording) {
            Ok(message) => self.leg.shared.runtime.voicemail().put(&message).await,
            Err(e) => {
                tracing::error!("voicemail: {e}");
                return Ok(RecordOutcome::Failed(e.to_string()));
            }
        };
        match stored {
            Ok(kept) => {
                call.trace().switch(match kept {
                    Kept::Stored => "message stored".to_string(),
                    Kept::Spooled(_) => {
                        "message kept on this node until the store returns".to_string()
                    }
                });
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
        let hangup = if self.leg.answered() {
            self.leg.caller.bye().await.map_err(backend)?;
            call.trace()
                .switch(format!("cfhost hung up ({cause}): BYE"));
            Hangup::new(cause.clone(), 200)
        } else {
            let code = sip_of_cause(cause);
            self.leg
                .caller
                .reject(Some(StatusCode::from(code)), None)
                .map_err(backend)?;
            self.leg.shared.metrics.response(code);
            call.trace()
                .switch(format!("cfhost ended the call ({cause}): {code}"));
            Hangup::new(cause.clone(), code)
        };
        destroy(call, &hangup);
        Ok(())
    }

    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
