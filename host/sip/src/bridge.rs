//! Ringing a bridge's endpoints and bridging the caller to the first that answers.
//!
//! An endpoint with an address (a SIP URI) is rung there; one without is a device of the
//! call's account, rung at every contact it registered. `simultaneous` forks to all of them
//! (the first 2xx wins, the others are cancelled); `single` rings one after another, each for
//! the timeout. 180 and 183 (with SDP: early media) are relayed to the caller, and SDP passes
//! through both ways, so media flows endpoint to endpoint. Once answered, the call lasts until
//! either side sends BYE (relayed to the other), or until a keepalive (`[sip] keepalive_secs`)
//! or the session timer (RFC 4028 `Session-Expires`, refreshed by the re-INVITEs and UPDATEs
//! relayed between the legs, [`crate::in_dialog`]) says one side is gone: then both get a BYE.

use std::pin::pin;
use std::time::{Duration, Instant};

use cfhost_core::call::{
    BridgeOutcome, BridgeRequest, Call, ChannelEvent, Endpoint, Hangup, HangupCause, RingStrategy,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{StatusCodeKind, Transport, Uri};
use rsipstack::transport::SipAddr;

use crate::causes::hangup_of_sip;
use crate::edge;
use crate::in_dialog::{
    InDialog, Relayed, keepalive as keepalive_of, relayed_headers, session_interval,
};
use crate::leg::{CallerLeg, destroy};
use crate::media::sdp;
use crate::registrar::Reach;

/// Somewhere to ring.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    uri: String,
    /// Where to send the INVITE when it is not the URI's host: the address a device's
    /// REGISTER came from, and whether over TCP (its connection).
    via: Option<(std::net::SocketAddr, bool)>,
}

/// How one round of ringing ended.
enum Round {
    Answered(Answer),
    Failed(Hangup),
    TimedOut,
    CallerGone,
}

/// The leg that answered, and the events of its dialog from now on.
struct Answer {
    dialog: InviteDialog,
    id: DialogId,
    /// Its 200: the SDP and the session timer's headers go on to the caller.
    response: rsipstack::sip::Response,
    target: String,
    states: DialogStateReceiver,
}

/// Rings `request`'s endpoints for `call` and reports how it ended.
pub(crate) async fn bridge(leg: &CallerLeg, call: &Call, request: &BridgeRequest) -> BridgeOutcome {
    let targets = targets(leg, call, &request.endpoints);
    if targets.is_empty() {
        call.trace()
            .switch("no endpoint to ring: none has an address or a registration");
        return BridgeOutcome::Failed(Hangup::new(HangupCause::from("USER_NOT_REGISTERED"), 404));
    }
    if request.delay_secs > 0 {
        let delay = tokio::time::sleep(Duration::from_secs(u64::from(request.delay_secs)));
        tokio::select! {
            () = delay => {}
            () = call.over() => return BridgeOutcome::CallerHungUp,
        }
    }
    let timeout = Duration::from_secs(u64::from(request.timeout_secs.max(1)));
    let rounds: Vec<Vec<Target>> = match request.strategy {
        RingStrategy::Simultaneous => vec![targets],
        RingStrategy::Single => targets.into_iter().map(|t| vec![t]).collect(),
    };
    let mut last = Hangup::new(HangupCause::NO_ANSWER, 480);
    for round in rounds {
        match ring(leg, call, &round, timeout).await {
            Round::Answered(answer) => return talk(leg, call, answer).await,
            Round::CallerGone => return BridgeOutcome::CallerHungUp,
            Round::TimedOut => last = Hangup::new(HangupCause::NO_ANSWER, 480),
            Round::Failed(hangup) => last = hangup,
        }
    }
    BridgeOutcome::Failed(last)
}

/// Where the endpoints are: their addresses, and the registered contacts of the devices.
fn targets(leg: &CallerLeg, call: &Call, endpoints: &[Endpoint]) -> Vec<Target> {
    let accounts = leg.shared.runtime.accounts();
    let account_id = &call.details().account_id;
    let account = accounts.get(account_id);
    let now = Instant::now();
    let mut targets = Vec::new();
    for endpoint in endpoints {
        if let Some(address) = &endpoint.address {
            targets.push(Target {
                uri: address.clone(),
                via: None,
            });
            continue;
        }
        let Some((account, device)) = account.and_then(|a| {
            let device = a.devices().iter().find(|d| d.id == endpoint.id)?;
            Some((a, device))
        }) else {
            continue;
        };
        if let Some(edge) = &leg.shared.settings.edge {
            // Behind an edge, the edge's registrar knows where the device is: rung there by
            // its address of record.
            match &account.realm {
                Some(realm) => targets.push(Target {
                    uri: edge::device_aor(&device.document.sip.username, realm),
                    via: Some((edge.proxy, false)),
                }),
                None => call.trace().switch(format!(
                    "cannot ring device {} through the edge: its account has no realm",
                    device.id
                )),
            }
            continue;
        }
        for binding in leg.shared.registrar.lookup(account_id, &endpoint.id, now) {
            let via = match binding.reach {
                Reach::Source { tcp } => Some((binding.source, tcp)),
                Reach::Contact => None,
            };
            targets.push(Target {
                uri: binding.contact,
                via,
            });
        }
    }
    targets.dedup();
    targets
}

/// Rings `targets` at once until one answers, all fail, `timeout` passes or the caller goes.
async fn ring(leg: &CallerLeg, call: &Call, targets: &[Target], timeout: Duration) -> Round {
    let shared = &leg.shared;
    let (state_tx, mut states) = shared.dialogs.new_dialog_state_channel();
    let mut legs: Vec<(InviteDialog, String)> = Vec::new();
    let mut finals = FuturesUnordered::new();
    let mut last = Hangup::new(HangupCause::NO_ANSWER, 480);
    for target in targets {
        let option = match invite_option(leg, call, target) {
            Ok(option) => option,
            Err(reason) => {
                call.trace()
                    .switch(format!("cannot ring {}: {reason}", target.uri));
                continue;
            }
        };
        match shared.dialogs.do_invite_async(option, state_tx.clone()) {
            Ok((dialog, handle)) => {
                let index = legs.len();
                legs.push((dialog, target.uri.clone()));
                finals.push(async move { (index, handle.await) });
            }
            Err(e) => call
                .trace()
                .switch(format!("cannot ring {}: {e}", target.uri)),
        }
    }
    if legs.is_empty() {
        return Round::Failed(Hangup::new(HangupCause::NORMAL_TEMPORARY_FAILURE, 503));
    }
    let names: Vec<&str> = legs.iter().map(|(_, uri)| uri.as_str()).collect();
    call.trace().switch(format!("ringing {}", names.join(", ")));
    let mut over = pin!(call.over());
    let mut deadline = pin!(tokio::time::sleep(timeout));
    let mut ringing_relayed = false;
    let mut answered: Option<(usize, DialogId, rsipstack::sip::Response)> = None;
    loop {
        tokio::select! {
            biased;
            () = &mut over => {
                cancel_all(&legs, None);
                call.trace().switch("the caller hung up while it rang: legs cancelled");
                return Round::CallerGone;
            }
            Some(state) = states.recv() => {
                if let DialogState::Early(_, response) = state {
                    relay_progress(leg, &response, &mut ringing_relayed);
                }
            }
            () = &mut deadline => {
                cancel_all(&legs, None);
                call.trace().switch(format!("no answer in {}s: legs cancelled", timeout.as_secs()));
                return Round::TimedOut;
            }
            Some((index, joined)) = finals.next() => {
                let uri = &legs[index].1;
                match joined {
                    Ok(Ok((id, Some(response))))
                        if response.status_code.kind() == StatusCodeKind::Successful =>
                    {
                        answered = Some((index, id, response));
                    }
                    Ok(Ok((_, Some(response)))) => {
                        let code = response.status_code.code();
                        call.trace().switch(format!("{uri} answered {code}"));
                        last = hangup_of_answer(shared, code, &response);
                    }
                    Ok(Ok((_, None))) => {
                        call.trace().switch(format!("{uri} gave no final response"));
                        last = hangup_of_sip(408);
                    }
                    Ok(Err(e)) => {
                        call.trace().switch(format!("{uri} failed: {e}"));
                        last = hangup_of_sip(503);
                    }
                    Err(e) => {
                        call.trace().switch(format!("{uri}: {e}"));
                        last = hangup_of_sip(500);
                    }
                }
                if answered.is_some() || finals.is_empty() {
                    break;
                }
            }
        }
    }
    let Some((index, id, response)) = answered else {
        return Round::Failed(last);
    };
    cancel_all(&legs, Some(index));
    let (dialog, target) = legs.swap_remove(index);
    Round::Answered(Answer {
        dialog,
        id,
        response,
        target,
        states,
    })
}

/// The hangup a leg's final answer `code` means; behind an edge, its "not registered" is
/// KAZOO's `USER_NOT_REGISTERED`.
fn hangup_of_answer(
    shared: &crate::shared::Shared,
    code: u16,
    response: &rsipstack::sip::Response,
) -> Hangup {
    let reason = response
        .headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case("Reason"))
        .map(|h| h.value().to_string());
    if shared.settings.edge.is_some() && edge::is_unregistered(code, reason.as_deref()) {
        return Hangup::new(HangupCause::from("USER_NOT_REGISTERED"), 404);
    }
    hangup_of_sip(code)
}

/// The INVITE of a leg: from the caller's number at cfhost, the caller's SDP passed through.
fn invite_option(leg: &CallerLeg, call: &Call, target: &Target) -> Result<InviteOption, String> {
    let callee = Uri::try_from(target.uri.as_str()).map_err(|e| e.to_string())?;
    let caller_id = call.caller_id();
    let user = caller_id
        .number
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "anonymous".to_string());
    let caller =
        Uri::try_from(format!("sip:{user}@{}", leg.shared.local)).map_err(|e| e.to_string())?;
    Ok(InviteOption {
        caller_display_name: caller_id.name,
        caller,
        callee,
        destination: target.via.map(|(addr, tcp)| SipAddr {
            r#type: Some(if tcp { Transport::Tcp } else { Transport::Udp }),
            addr: addr.into(),
        }),
        content_type: (!leg.offer.is_empty()).then(|| "application/sdp".to_string()),
        offer: (!leg.offer.is_empty()).then(|| leg.offer.clone()),
        contact: leg.shared.contact.clone(),
        call_id: Some(format!(
            "{:032x}@{}",
            rand::random::<u128>(),
            leg.shared.settings.domain
        )),
        ..InviteOption::default()
    })
}

/// Relays a leg's 180 (once) or 183 with SDP (early media) to the caller.
fn relay_progress(leg: &CallerLeg, response: &rsipstack::sip::Response, relayed: &mut bool) {
    let code = response.status_code.code();
    if code == 183 && !response.body.is_empty() {
        let _ = leg
            .caller
            .ringing(Some(vec![sdp::content_type()]), Some(response.body.clone()));
        leg.shared.metrics.response(183);
    } else if !*relayed {
        let _ = leg.caller.ringing(None, None);
        leg.shared.metrics.response(180);
    }
    *relayed = true;
}

/// Cancels every leg but `keep`, in the background.
fn cancel_all(legs: &[(InviteDialog, String)], keep: Option<usize>) {
    for (index, (dialog, _)) in legs.iter().enumerate() {
        if Some(index) == keep {
            continue;
        }
        let dialog = dialog.clone();
        tokio::spawn(async move {
            let _ = dialog.cancel().await;
        });
    }
}

/// The caller and the answering leg talk until either hangs up (the BYE is relayed), or a
/// keepalive or the session timer says one is gone (both get a BYE). What either sends inside
/// its dialog (re-INVITE, UPDATE, INFO) is relayed to the other.
async fn talk(leg: &CallerLeg, call: &Call, answer: Answer) -> BridgeOutcome {
    let Answer {
        dialog,
        id,
        response,
        target,
        mut states,
    } = answer;
    let mut callee = Callee::new(dialog.clone(), id.clone(), leg.shared.clone());
    if !leg.answered() {
        let sdp = response.body.clone();
        let body = (!sdp.is_empty()).then_some(sdp);
        let headers = relayed_headers(response.headers.iter());
        if let Err(e) = leg.caller.accept(Some(headers), body) {
            call.trace()
                .switch(format!("cannot answer the caller: {e}"));
            return BridgeOutcome::Failed(Hangup::new(HangupCause::NORMAL_TEMPORARY_FAILURE, 500));
        }
        leg.shared.metrics.response(200);
        leg.mark_answered();
    }
    call.apply(&ChannelEvent::Bridge {
        call_id: id.call_id.clone(),
    });
    call.trace()
        .switch(format!("answered by {target}: bridged"));
    let mut from_caller = leg.relay_caller_requests();
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel::<(Side, Relayed)>();
    let session = session_interval(&response);
    let mut refreshed = Instant::now();
    let keepalive = leg.shared.settings.keepalive;
    // Without keepalives the interval is never polled; a year keeps `Instant` arithmetic sane.
    let period = keepalive.unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let mut keepalive_tick = tokio::time::interval_at((Instant::now() + period).into(), period);
    let mut over = pin!(call.over());
    let ended = loop {
        let expiry = session.map(|interval| refreshed + interval);
        tokio::select! {
            biased;
            () = &mut over => {
                callee.hang_up();
                call.trace().switch(format!("BYE relayed to {target}"));
                break None;
            }
            state = states.recv() => match state {
                Some(DialogState::Terminated(ended, reason)) if ended.call_id == id.call_id => {
                    if matches!(reason, TerminatedReason::UasBye) {
                        // The dialog answers the callee's BYE 200 itself.
                        leg.shared.metrics.response(200);
                        call.trace().switch(format!("{target} hung up (BYE): relayed to the caller"));
                    }
                    callee.gone();
                    break Some(Hangup::new(HangupCause::NORMAL_CLEARING, 200));
                }
                Some(state) => {
                    if let Ok((from, request)) = InDialog::of(state)
                        && from.call_id == id.call_id
                    {
                        let to = leg.caller.clone();
                        let done = done_tx.clone();
                        tokio::spawn(async move {
                            let _ = done.send((Side::Caller, request.relay(&to).await));
                        });
                    }
                }
                None => {
                    callee.gone();
                    break Some(Hangup::new(HangupCause::NORMAL_CLEARING, 200));
                }
            },
            Some(request) = from_caller.recv() => {
                let to = dialog.clone();
                let done = done_tx.clone();
                tokio::spawn(async move {
                    let _ = done.send((Side::Callee, request.relay(&to).await));
                });
            }
            Some((side, relayed)) = done.recv() => match relayed {
                Relayed::Refreshed => refreshed = Instant::now(),
                Relayed::Other => {}
                Relayed::PeerGone => {
                    call.trace().switch(format!("{} is gone (no answer, 408 or 481): both legs get a BYE", side.name(&target)));
                    break Some(Hangup::new(HangupCause::from("RECOVERY_ON_TIMER_EXPIRE"), 408));
                }
            },
            _ = keepalive_tick.tick(), if keepalive.is_some() => {
                for (side, to) in [(Side::Caller, leg.caller.clone()), (Side::Callee, dialog.clone())] {
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        let _ = done.send((side, keepalive_of(&to).await));
                    });
                }
            }
            () = sleep_until(expiry), if expiry.is_some() => {
                call.trace().switch(format!(
                    "no session refresh in {}s (Session-Expires): both legs get a BYE",
                    session.unwrap_or_default().as_secs()
                ));
                break Some(Hangup::new(HangupCause::from("RECOVERY_ON_TIMER_EXPIRE"), 408));
            }
        }
    };
    leg.stop_relaying_caller_requests();
    if let Some(hangup) = ended {
        callee.hang_up();
        let _ = leg.caller.bye().await;
        destroy(call, &hangup);
    }
    BridgeOutcome::Answered
}

/// The two ends of a bridge, as traces name them.
#[derive(Debug, Clone, Copy)]
enum Side {
    Caller,
    Callee,
}

impl Side {
    fn name(self, target: &str) -> String {
        match self {
            Side::Caller => "the caller".to_string(),
            Side::Callee => target.to_string(),
        }
    }
}

/// Sleeps until `at`, or forever without it.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The answering leg of a bridge: it gets a BYE when the bridge ends in any way (a hangup, a
/// timer, the bridge being dropped) unless it hung up itself, and its dialog is released.
struct Callee {
    dialog: Option<InviteDialog>,
    id: DialogId,
    shared: std::sync::Arc<crate::shared::Shared>,
}

impl Callee {
    fn new(
        dialog: InviteDialog,
        id: DialogId,
        shared: std::sync::Arc<crate::shared::Shared>,
    ) -> Self {
        Callee {
            dialog: Some(dialog),
            id,
            shared,
        }
    }

    /// Sends the BYE now. Its answer is waited for apart from the call: a callee that never
    /// answers it (or whose answer is lost, as with a device that leaves the edge's
    /// Record-Route out of its 200 and answers where the INVITE came from) would otherwise
    /// hold the call for the BYE's 32 s.
    fn hang_up(&mut self) {
        if let Some(dialog) = self.dialog.take() {
            tokio::spawn(async move {
                let _ = dialog.hangup().await;
            });
        }
    }

    /// It hung up itself: no BYE is owed.
    fn gone(&mut self) {
        self.dialog = None;
    }
}

impl Drop for Callee {
    fn drop(&mut self) {
        if let Some(dialog) = self.dialog.take() {
            tokio::spawn(async move {
                let _ = dialog.hangup().await;
            });
        }
        self.shared.dialogs.remove_dialog(&self.id);
    }
}
