//! The SIP service: UDP and TCP on `[sip] listen`, rsipstack's transaction and dialog layers,
//! and one task per incoming transaction ([`crate::dispatch`]). It admits calls within the
//! caps, stops admitting on shutdown, and lets the calls in progress finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cfhost_core::runtime::Runtime;
use rsipstack::EndpointBuilder;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::Uri;
use rsipstack::transport::TransportLayer;
use rsipstack::transport::udp::UdpConnection;

use crate::auth::Nonces;
use crate::config::{SipConfig, SipConfigError, SipSettings};
use crate::guard::Guard;
use crate::media::pacer::{Pacer, Prompt};
use crate::media::rtp::RtpPorts;
use crate::metrics::SipMetrics;
use crate::registrar::Registrar;
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

/// What every task of the service shares.
pub(crate) struct Shared {
    pub runtime: Arc<Runtime>,
    pub settings: SipSettings,
    pub dialogs: Arc<DialogLayer>,
    pub registrar: Registrar,
    pub nonces: Nonces,
    pub guard: Guard,
    pub rtp: RtpPorts,
    /// The clock every call's prompts are played on.
    pub pacer: Pacer,
    /// The tone before a recording (500 ms at 440 Hz), encoded once.
    pub beep: Prompt,
    pub metrics: Arc<SipMetrics>,
    /// The budget of refusals logged per second.
    pub refusal_log: Throttle,
    /// `sip:cfhost@<address>`: the Contact of cfhost's dialogs.
    pub contact: Uri,
    pub local: SocketAddr,
    admission: Admission,
    /// The last calls that ended, newest last.
    recent: std::sync::Mutex<std::collections::VecDeque<CallSummary>>,
}

/// Refused requests logged each second at most; the others are counted in the next line.
const REFUSALS_LOGGED_PER_SEC: u32 = 20;

/// How many ended calls [`SipService::recent_calls`] keeps.
pub const RECENT_CALLS: usize = 256;

/// A SIP call that ended, with its trace (the SIP side's events among the nodes').
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallSummary {
    pub call_id: String,
    pub account_id: String,
    /// How it ended (`bridged`, `message_left`, `caller_hung_up`, ...).
    pub result: String,
    /// One line per event, as `cfhost simulate` prints them.
    pub trace: Vec<String>,
}

/// The caps on calls at accept.
struct Admission {
    accepting: AtomicBool,
    in_progress: AtomicUsize,
    /// Calls admitted in the current second, and which second that is.
    this_second: std::sync::Mutex<(Instant, u32)>,
}

/// Why a new call is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    ShuttingDown,
    TooManyCalls,
    TooManyPerSecond,
}

impl Shared {
    /// Admits one more call, within the caps; the call is counted until [`Shared::finished`].
    pub fn admit(&self) -> Result<(), Refusal> {
        let admission = &self.admission;
        if !admission.accepting.load(Ordering::Acquire) {
            return Err(Refusal::ShuttingDown);
        }
        {
            let mut second = admission
                .this_second
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if now.duration_since(second.0) >= Duration::from_secs(1) {
                *second = (now, 0);
            }
            if second.1 >= self.settings.max_cps {
                return Err(Refusal::TooManyPerSecond);
            }
            second.1 += 1;
        }
        let previous = admission.in_progress.fetch_add(1, Ordering::AcqRel);
        if previous >= self.settings.max_calls {
            admission.in_progress.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::TooManyCalls);
        }
        Ok(())
    }

    /// An admitted call ended.
    pub fn finished(&self) {
        self.admission.in_progress.fetch_sub(1, Ordering::AcqRel);
    }

    /// Calls in progress.
    pub fn in_progress(&self) -> usize {
        self.admission.in_progress.load(Ordering::Acquire)
    }

    /// Keeps `summary` among the recent calls.
    pub fn ended(&self, summary: CallSummary) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_CALLS {
            recent.pop_front();
        }
        recent.push_back(summary);
    }
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
            admission: Admission {
                accepting: AtomicBool::new(true),
                in_progress: AtomicUsize::new(0),
                this_second: std::sync::Mutex::new((Instant::now(), 0)),
            },
            recent: std::sync::Mutex::default(),
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

    /// The last calls that ended (at most [`RECENT_CALLS`]), oldest first.
    pub fn recent_calls(&self) -> Vec<CallSummary> {
        let recent = self.shared.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().cloned().collect()
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
