//! Requests inside an established call: a re-INVITE or UPDATE (hold, resume, a new codec, an
//! RFC 4028 session refresh), an INFO (DTMF), an OPTIONS (a keepalive). In a bridge each is
//! relayed to the other leg and its answer relayed back, so the two ends negotiate with each
//! other as if cfhost were not there; on a call cfhost answered itself, cfhost answers them.

use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::{DialogState, TransactionHandle};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, HeadersExt, Method, Request, StatusCode, StatusCodeKind};

/// The headers a relayed request or answer keeps as they are: its body's type and the session
/// timer's. Of `Supported` and `Require`, only `timer` is kept: another extension (`100rel`)
/// would promise what cfhost's leg does not do.
const RELAYED_HEADERS: [&str; 3] = ["Content-Type", "Session-Expires", "Min-SE"];

/// A request one leg sent inside its dialog, waiting for cfhost's answer.
pub(crate) struct InDialog {
    request: Request,
    handle: TransactionHandle,
}

/// What a relayed request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relayed {
    /// A re-INVITE or UPDATE the other leg accepted: the session was refreshed.
    Refreshed,
    /// Anything else (an INFO, a refused re-INVITE).
    Other,
    /// The other leg is gone (481, 408, no answer).
    PeerGone,
}

impl InDialog {
    /// The in-dialog request `state` carries and the dialog it came in, or the state back if
    /// it carries none.
    pub(crate) fn of(state: DialogState) -> Result<(DialogId, InDialog), Box<DialogState>> {
        match state {
            DialogState::Updated(id, request, handle)
            | DialogState::Info(id, request, handle)
            | DialogState::Options(id, request, handle) => Ok((id, InDialog { request, handle })),
            other => Err(Box::new(other)),
        }
    }

    /// Whether it refreshes the session (a re-INVITE or an UPDATE).
    fn refreshes(&self) -> bool {
        matches!(self.request.method, Method::Invite | Method::Update)
    }

    /// Sends it on in `to`'s dialog and answers it with `to`'s answer. An OPTIONS is a
    /// keepalive of the hop it came over: cfhost answers it.
    pub(crate) async fn relay(self, to: &InviteDialog) -> Relayed {
        if self.request.method == Method::Options {
            self.answer(StatusCode::OK, None).await;
            return Relayed::Other;
        }
        if !to.state().is_confirmed() {
            // The other leg is in the middle of a request of its own (both sides re-INVITEd
            // at once): 491, as RFC 3261 §14.2 says, and the sender tries again. Sent on, the
            // request would come back unanswered and read as the leg being gone.
            self.answer(StatusCode::RequestPending, None).await;
            return Relayed::Other;
        }
        let headers = relayed_headers(self.request.headers.iter());
        let body = (!self.request.body.is_empty()).then(|| self.request.body.clone());
        let answer = to.request(self.request.method, Some(headers), body).await;
        let refreshes = self.refreshes();
        match answer {
            Ok(Some(response)) => {
                let code = response.status_code.code();
                let headers = relayed_headers(response.headers.iter());
                let body = (!response.body.is_empty()).then(|| response.body.clone());
                let _ = self
                    .handle
                    .respond(response.status_code.clone(), Some(headers), body)
                    .await;
                if code == 481 || code == 408 {
                    Relayed::PeerGone
                } else if refreshes && response.status_code.kind() == StatusCodeKind::Successful {
                    Relayed::Refreshed
                } else {
                    Relayed::Other
                }
            }
            Ok(None) | Err(_) => {
                self.answer(StatusCode::CallTransactionDoesNotExist, None)
                    .await;
                Relayed::PeerGone
            }
        }
    }

    /// Answers it on a call cfhost answered itself, whose SDP is `own_sdp`: a re-INVITE or
    /// UPDATE with an offer gets cfhost's media again (the call goes on as it was), anything
    /// else a 200.
    pub(crate) async fn answer_locally(self, own_sdp: Option<Vec<u8>>) {
        let sdp = own_sdp.filter(|_| self.refreshes() && !self.request.body.is_empty());
        self.answer(StatusCode::OK, sdp).await;
    }

    async fn answer(self, status: StatusCode, sdp: Option<Vec<u8>>) {
        let headers = sdp
            .as_ref()
            .map(|_| vec![crate::media::sdp::content_type()]);
        let _ = self.handle.respond(status, headers, sdp).await;
    }
}

/// The headers of `headers` a relay keeps.
pub(crate) fn relayed_headers<'a>(headers: impl Iterator<Item = &'a Header>) -> Vec<Header> {
    let mut kept = Vec::new();
    for header in headers {
        if RELAYED_HEADERS
            .iter()
            .any(|n| header.name().eq_ignore_ascii_case(n))
        {
            kept.push(header.clone());
            continue;
        }
        let lists_timer = || {
            header
                .value()
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("timer"))
        };
        match header {
            Header::Supported(_) if lists_timer() => kept.push(Header::Supported("timer".into())),
            Header::Require(_) if lists_timer() => kept.push(Header::Require("timer".into())),
            _ => {}
        }
    }
    kept
}

/// The session interval a 2xx (or an INVITE) asks for with `Session-Expires` (RFC 4028), in
/// seconds: the longest a session may go without a refresh.
pub(crate) fn session_interval(message: &impl HeadersExt) -> Option<std::time::Duration> {
    let value = message.header_value("Session-Expires")?;
    let secs: u64 = value.split(';').next()?.trim().parse().ok()?;
    (secs > 0).then(|| std::time::Duration::from_secs(secs))
}

/// Whether `dialog`'s far end is still there: an OPTIONS in its dialog, as Kamailio's dialog
/// keepalive sends. A 481 or a 408, or no answer at all, says it is gone; any other answer (a
/// 200, a 405 from a phone that does not do OPTIONS) says it is there. A dialog that is busy
/// with another request (a re-INVITE being relayed) is not asked this time.
pub(crate) async fn keepalive(dialog: &InviteDialog) -> Relayed {
    if !dialog.state().is_confirmed() {
        return Relayed::Other;
    }
    match dialog.request(Method::Options, None, None).await {
        Ok(Some(response)) if matches!(response.status_code.code(), 408 | 481) => Relayed::PeerGone,
        Ok(Some(_)) => Relayed::Other,
        Ok(None) | Err(_) => Relayed::PeerGone,
    }
}
