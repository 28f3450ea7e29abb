//! SIP over TCP. cfhost accepts the connections itself, so that they are capped, in all
//! (`[sip] max_tcp_connections`) and per address (`max_tcp_connections_per_address`), before
//! they cost more than a descriptor for a moment; each one taken is handed to rsipstack's
//! transport layer, which reads it, answers on it, rings over it a device that registered on
//! it, and closes it once nothing came on it for `tcp_idle_secs` (rsipstack's stream idle
//! timeout). A connection past a cap is closed at once, counted (`tcp_connections` among the
//! refusals) and logged at most once a second.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rsipstack::platform::CancellationToken;
use rsipstack::sip::Transport;
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::{SipAddr, SipConnection};
use tokio::net::TcpListener;

use crate::metrics::SipMetrics;
use crate::throttle::Throttle;

/// How many TCP connections may be open.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// In all.
    pub max_connections: usize,
    /// From one IP address (an office behind one NAT shares one).
    pub max_per_address: usize,
    /// How long a connection may stay silent before it is closed.
    pub idle_timeout: Duration,
}

/// The connections open, by address: each one's token is cancelled when rsipstack retires it.
#[derive(Default)]
struct Open {
    by_address: HashMap<IpAddr, Vec<CancellationToken>>,
}

impl Open {
    /// Forgets the connections that closed; how many are open in all and from `ip`.
    fn count(&mut self, ip: IpAddr) -> (usize, usize) {
        self.by_address.retain(|_, tokens| {
            tokens.retain(|t| !t.is_cancelled());
            !tokens.is_empty()
        });
        let total = self.by_address.values().map(Vec::len).sum();
        let from = self.by_address.get(&ip).map_or(0, Vec::len);
        (total, from)
    }
}

/// Accepts SIP connections on `listener` (cfhost's SIP address, `local`) within `limits`,
/// until `cancel`, and hands each to `endpoint`'s transport layer.
pub(crate) async fn serve(
    listener: TcpListener,
    local: SocketAddr,
    endpoint: EndpointInnerRef,
    limits: TcpLimits,
    metrics: Arc<SipMetrics>,
    cancel: CancellationToken,
) {
    endpoint
        .transport_layer
        .set_stream_idle_timeout(limits.idle_timeout);
    let local = SipAddr {
        r#type: Some(Transport::Tcp),
        addr: local.into(),
    };
    let mut open = Open::default();
    let warnings = Throttle::new(1);
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, most likely: wait a moment rather than spin.
                tracing::warn!("SIP over TCP: cannot accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (total, from) = open.count(remote.ip());
        if total >= limits.max_connections || from >= limits.max_per_address {
            drop(stream);
            metrics.rejected("tcp_connections");
            if let Some(held_back) = warnings.admit() {
                tracing::warn!(
                    "SIP over TCP: a connection from {remote} refused ({held_back} more before \
                     it): {total} open (max_tcp_connections {}), {from} from its address \
                     (max_tcp_connections_per_address {})",
                    limits.max_connections,
                    limits.max_per_address
                );
            }
            continue;
        }
        let token = cancel.child_token();
        match TcpConnection::from_stream(stream, local.clone(), Some(token.clone())) {
            Ok(connection) => {
                open.by_address.entry(remote.ip()).or_default().push(token);
                endpoint
                    .transport_layer
                    .add_connection(SipConnection::Tcp(connection));
            }
            Err(e) => tracing::debug!("SIP over TCP: connection from {remote}: {e}"),
        }
    }
}
