//! A bare B2BUA on rsipstack: the baseline the SIP benchmark measures cfhost against, on the
//! same load. Every INVITE is forwarded to one target with the caller's SDP; a 2xx bridges the
//! caller to it, and a refusal is answered by the B2BUA itself (a 200 with a fixed SDP, as
//! voicemail would answer); the call ends at either side's BYE. No callflow, no modules, no
//! media: what rsipstack alone costs per call.

use std::net::SocketAddr;
use std::sync::Arc;

use rsipstack::EndpointBuilder;
use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::{Header, Method, StatusCode, StatusCodeKind, Uri};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::TransportLayer;
use rsipstack::transport::udp::UdpConnection;

use crate::service::SipError;

/// A running bare B2BUA.
pub struct BareB2bua {
    local: SocketAddr,
    cancel: CancellationToken,
}

struct Bare {
    dialogs: Arc<DialogLayer>,
    contact: Uri,
    target: Uri,
    local: SocketAddr,
}

impl BareB2bua {
    /// Listens on UDP `listen` and forwards every call to `target` (a SIP URI).
    pub async fn start(listen: SocketAddr, target: &str) -> Result<BareB2bua, SipError> {
        let fail = |reason: String| SipError::Listen {
            address: listen,
            reason,
        };
        let cancel = CancellationToken::new();
        let udp = UdpConnection::create_connection(listen, None, Some(cancel.child_token()))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let local = udp
            .get_addr()
            .get_socketaddr()
            .map_err(|e| fail(e.to_string()))?;
        let transports = TransportLayer::new(cancel.clone());
        transports.add_transport(udp.into());
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transports)
            .with_user_agent("bare-b2bua")
            .build();
        let mut incoming = endpoint
            .incoming_transactions()
            .expect("taken once, right after the endpoint is built");
        let bare = Arc::new(Bare {
            dialogs: Arc::new(DialogLayer::new(endpoint.inner.clone())),
            contact: Uri::try_from(format!("sip:bare@{local}")).map_err(|e| fail(e.to_string()))?,
            target: Uri::try_from(target).map_err(|e| fail(e.to_string()))?,
            local,
        });
        tokio::spawn(async move { endpoint.serve().await });
        tokio::spawn(async move {
            while let Some(tx) = incoming.recv().await {
                tokio::spawn(Arc::clone(&bare).handle(tx));
            }
        });
        Ok(BareB2bua { local, cancel })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for BareB2bua {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The fixed answer of a refused call.
const ANSWER: &str = "v=0\r\no=bare 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
    m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

impl Bare {
    async fn handle(self: Arc<Self>, mut tx: Transaction) {
        if crate::shared::is_in_dialog(&tx) {
            if let Some(mut dialog) = self.dialogs.match_dialog(&tx) {
                let _ = dialog.handle(&mut tx).await;
            }
            return;
        }
        match tx.original.method {
            Method::Invite => self.call(tx).await,
            Method::Ack => {}
            _ => {
                let _ = tx.reply(StatusCode::OK).await;
            }
        }
    }

    async fn call(&self, mut tx: Transaction) {
        let (state_tx, mut states) = self.dialogs.new_dialog_state_channel();
        let Ok(caller) = self.dialogs.get_or_create_server_invite(
            &tx,
            state_tx,
            None,
            Some(self.contact.clone()),
        ) else {
            let _ = tx.reply(StatusCode::ServerInternalError).await;
            return;
        };
        let offer = tx.original.body.clone();
        let mut driver = caller.clone();
        tokio::spawn(async move {
            let _ = driver.handle(&mut tx).await;
        });
        let (leg_tx, mut leg_states) = self.dialogs.new_dialog_state_channel();
        let option = InviteOption {
            caller: Uri::try_from(format!("sip:caller@{}", self.local)).expect("a SIP URI"),
            callee: self.target.clone(),
            contact: self.contact.clone(),
            content_type: Some("application/sdp".to_string()),
            offer: Some(offer),
            ..InviteOption::default()
        };
        let sdp = || vec![Header::ContentType("application/sdp".into())];
        let mut leg = None;
        match self.dialogs.do_invite_async(option, leg_tx) {
            Ok((dialog, handle)) => match handle.await {
                Ok(Ok((id, Some(response))))
                    if response.status_code.kind() == StatusCodeKind::Successful =>
                {
                    let _ = caller.accept(Some(sdp()), Some(response.body.clone()));
                    leg = Some((dialog, id));
                }
                _ => {
                    let _ = caller.accept(Some(sdp()), Some(ANSWER.as_bytes().to_vec()));
                }
            },
            Err(_) => {
                let _ = caller.reject(Some(StatusCode::ServiceUnavailable), None);
            }
        }
        loop {
            tokio::select! {
                state = states.recv() => match state {
                    Some(DialogState::Terminated(_, reason)) => {
                        if let Some((dialog, _)) = &leg
                            && matches!(reason, TerminatedReason::UacBye)
                        {
                            let _ = dialog.hangup().await;
                        }
                        break;
                    }
                    Some(_) => {}
                    None => break,
                },
                state = leg_states.recv(), if leg.is_some() => {
                    if let Some(DialogState::Terminated(_, _)) = state {
                        let _ = caller.bye().await;
                        break;
                    }
                }
            }
        }
        if let Some((_, id)) = leg {
            self.dialogs.remove_dialog(&id);
        }
        self.dialogs.remove_dialog(&caller.id());
    }
}
