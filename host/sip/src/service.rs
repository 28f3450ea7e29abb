//! The SIP service: UDP and TCP on `[sip] listen`, rsipstack's transaction and dialog layers,
//! and one task per incoming transaction ([`crate::dispatch`]). It admits calls within the
//! caps, stops admitting on shutdown, and lets the calls in progress finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cfhost_core::runtime::Runtime;
use rsipstack::EndpointBuilder;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::Uri;
use rsipstack::transport::TransportLayer;
use rsipstack::transport::udp::UdpConnection;

use crate::auth::Nonces;
use crate::config::{SipConfig, SipConfigError};
use crate::guard::Guard;
use crate::media::pacer::{Pacer, Prompt};
use crate::media::rtp::RtpPorts;
use crate::metrics::SipMetrics;
use crate::registrar::Registrar;
pub use crate::shared::{ActiveCall, CallSummary, RECENT_CALLS};
use crate::shared::{Admission, REFUSALS_LOGGED_PER_SEC, Shared};
use crate::throttle::Throttle;

/// The SIP service could not start.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error(transparent)]
    Config(#[from] SipConfigError),
    #[error("cannot listen for SIP on {address}: {reason}")]
    Listen { address: SocketAddr, reason: String },
}

/// How many ports to try when the UDP port the kernel picked is taken for TCP.
const PORT_TRIES: usize = 16;

/// A UDP socket and a TCP listener on `listen`, on the same port (the kernel picks a port for
/// UDP alone when `listen`'s port is 0, so that pick is tried for TCP, and retried).
async fn bind_udp_and_tcp(
    listen: SocketAddr,
    cancel: &CancellationToken,
) -> Result<(UdpConnection, SocketAddr, tokio::net::TcpListener), SipError> {
    let fail = |address: SocketAddr, reason: String| SipError::Listen { address, reason };
    let mut last_error = String::new();
    for _ in 0..PORT_TRIES {
        let udp = UdpConnection::create_connection(listen, None, Some(cancel.child_token()))
            .await
            .map_err(|e| fail(listen, e.to_string()))?;
        let bound = udp
            .get_addr()
            .get_socketaddr()
            .map_err(|e| fail(listen, e.to_string()))?;
        let local = SocketAddr::new(listen.ip(), bound.port());
        match tcp_listener(local) {
            Ok(tcp) => return Ok((udp, bound, tcp)),
            Err(e) if listen.port() == 0 => last_error = format!("TCP on {local}: {e}"),
            Err(e) => return Err(fail(local, format!("TCP: {e}"))),
        }
    }
    Err(fail(listen, last_error))
}

/// A TCP listener on `local`, as a SIP server's (SO_REUSEADDR, so that a restart does not
/// wait for the old connections' TIME_WAIT).
fn tcp_listener(local: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match local {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(local)?;
    socket.listen(1024)
}

/// A running SIP service.
pub struct SipService {
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl SipService {
    /// Starts listening on `config`'s address (UDP and TCP, on the same port) and taking calls
    /// into `runtime`.
    pub async fn start(runtime: Arc<Runtime>, config: &SipConfig) -> Result<SipService, SipError> {
        let settings = config.settings()?;
        let cancel = CancellationToken::new();
        let (udp, bound, tcp) = bind_udp_and_tcp(settings.listen, &cancel).await?;
        let local = SocketAddr::new(settings.listen.ip(), bound.port());
        // TCP is cfhost's own listener (`crate::tcp`), which caps the connections and hands
        // each to the transport layer; rsipstack has no listener of TCP to advertise, and
        // gives the UDP address with the TCP token in the Via of what it sends over TCP.
        let transports = TransportLayer::new(cancel.clone());
        transports.add_transport(udp.into());
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transports)
            .with_user_agent("cfhost")
            .build();
        let mut incoming = endpoint
            .incoming_transactions()
            .expect("taken once, right after the endpoint is built");
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let contact: Uri = format!("sip:cfhost@{bound}")
            .as_str()
            .try_into()
            .expect("an address makes a SIP URI");
        let (first, last) = settings.rtp_ports;
        let shared = Arc::new(Shared {
            dialogs,
            registrar: Registrar::new(settings.max_contacts),
            nonces: Nonces::new(settings.nonce_lifetime),
            guard: Guard::new(settings.guard),
            rtp: RtpPorts::new(bound.ip(), first, last),
            pacer: Pacer::start(),
            beep: Prompt::tone(440.0, 500),
            metrics: Arc::default(),
            refusal_log: Throttle::new(REFUSALS_LOGGED_PER_SEC),
            contact,
            local: bound,
            admission: Admission::default(),
            recent: std::sync::Mutex::default(),
            active: std::sync::Mutex::default(),
            next_active: std::sync::atomic::AtomicU64::new(0),
            settings,
            runtime,
        });
        tokio::spawn(crate::tcp::serve(
            tcp,
            local,
            endpoint.inner.clone(),
            shared.settings.tcp,
            Arc::clone(&shared.metrics),
            cancel.clone(),
        ));
        tokio::spawn(async move { endpoint.serve().await });
        let accepting = Arc::clone(&shared);
        tokio::spawn(async move {
            while let Some(transaction) = incoming.recv().await {
                let shared = Arc::clone(&accepting);
                tokio::spawn(crate::dispatch::dispatch(shared, transaction));
            }
        });
        tracing::info!("SIP on {bound} (UDP and TCP)");
        Ok(SipService { shared, cancel })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// Calls in progress.
    pub fn calls_in_progress(&self) -> usize {
        self.shared.in_progress()
    }

    /// Its counters, as Prometheus text.
    pub fn render_metrics(&self) -> String {
        let bindings = self.shared.registrar.len(Instant::now());
        self.shared
            .metrics
            .render(self.shared.in_progress(), bindings)
    }

    /// The devices' live registrations, of `account` only or of every account.
    pub fn registrations(&self, account: Option<&str>) -> Vec<crate::registrar::Registration> {
        self.shared.registrar.list(account, Instant::now())
    }

    /// The last calls that ended (at most [`RECENT_CALLS`]), oldest first: of `account`, or
    /// of every account.
    pub fn recent_calls(&self, account: Option<&str>) -> Vec<CallSummary> {
        let recent = self.shared.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .filter(|call| account.is_none_or(|account| call.account_id == account))
            .cloned()
            .collect()
    }

    /// The calls in progress, oldest first: of `account`, or of every account.
    pub fn active_calls(&self, account: Option<&str>) -> Vec<ActiveCall> {
        let active = self.shared.active.lock().unwrap_or_else(|e| e.into_inner());
        active
            .values()
            .filter_map(|entry| entry.listed_if_of(account))
            .collect()
    }

    /// Its counters.
    pub fn metrics(&self) -> &SipMetrics {
        &self.shared.metrics
    }

    /// New INVITEs get 503 from now on; calls in progress go on.
    pub fn stop_accepting(&self) {
        self.shared
            .admission
            .accepting
            .store(false, Ordering::Release);
    }

    /// Stops taking calls, waits up to `drain` for the calls in progress (and their
    /// termination callbacks) to finish, then closes the transports. Returns how many calls
    /// were still running.
    pub async fn shutdown(self, drain: Duration) -> usize {
        self.stop_accepting();
        let deadline = tokio::time::Instant::now() + drain;
        while self.shared.in_progress() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.shared.in_progress();
        self.cancel.cancel();
        left
    }
}

impl Drop for SipService {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
