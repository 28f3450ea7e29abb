//! The state every task of the SIP service shares (settings, the dialog layer, registrar,
//! nonces, guard, RTP ports, metrics, admission), and what every handler does with a
//! transaction: where it came from, whether it is in a dialog, a counted answer. It sits below
//! every other module of the crate, which is why it knows none of them but the ones it holds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cfhost_core::call::Call;
use cfhost_core::runtime::Runtime;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Header, HeadersExt, StatusCode, Uri};
use rsipstack::transaction::transaction::Transaction;

use crate::auth::Nonces;
use crate::config::SipSettings;
use crate::guard::Guard;
use crate::media::pacer::{Pacer, Prompt};
use crate::media::rtp::RtpPorts;
use crate::metrics::SipMetrics;
use crate::registrar::Registrar;
use crate::throttle::Throttle;

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
    pub admission: Admission,
    /// The last calls that ended, newest last.
    pub recent: std::sync::Mutex<std::collections::VecDeque<CallSummary>>,
    /// The calls in progress, by the order they came in.
    pub active: std::sync::Mutex<std::collections::BTreeMap<u64, Active>>,
    /// The key of the next call listed in `active`.
    pub next_active: std::sync::atomic::AtomicU64,
}

/// Refused requests logged each second at most; the others are counted in the next line.
pub(crate) const REFUSALS_LOGGED_PER_SEC: u32 = 20;

/// How many ended calls [`crate::SipService::recent_calls`] keeps.
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

/// A SIP call in progress, as the API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActiveCall {
    /// Its SIP Call-ID.
    pub call_id: String,
    /// The account it runs in.
    pub account_id: String,
    /// Who placed it: `trunk <name>` or `device <id>`.
    pub caller: String,
    /// The caller's number (`anonymous` when it has none).
    pub from: String,
    /// The Request-URI it was placed to.
    pub to: String,
    /// When it came in, in Unix seconds.
    pub started_at: u64,
}

/// A call in progress as it is kept: the call itself (its details are read only when the calls
/// are listed), who placed it and when.
pub(crate) struct Active {
    call: Arc<Call>,
    caller: String,
    started_at: u64,
}

impl Active {
    /// The call as the API lists it, when it runs in `account` (or any, for `None`).
    pub fn listed_if_of(&self, account: Option<&str>) -> Option<ActiveCall> {
        let details = self.call.details();
        if account.is_some_and(|account| details.account_id != account) {
            return None;
        }
        Some(ActiveCall {
            call_id: details.call_id.clone(),
            account_id: details.account_id.clone(),
            caller: self.caller.clone(),
            from: details
                .caller_id_number
                .clone()
                .unwrap_or_else(|| "anonymous".to_string()),
            to: details.request.clone(),
            started_at: self.started_at,
        })
    }
}

/// A call listed among the calls in progress until this is dropped.
pub(crate) struct Listed {
    shared: Arc<Shared>,
    key: u64,
}

impl Drop for Listed {
    fn drop(&mut self) {
        let mut active = self.shared.active.lock().unwrap_or_else(|e| e.into_inner());
        active.remove(&self.key);
    }
}

/// The caps on calls at accept.
pub(crate) struct Admission {
    pub(crate) accepting: AtomicBool,
    in_progress: AtomicUsize,
    /// Calls admitted in the current second, and which second that is.
    this_second: std::sync::Mutex<(Instant, u32)>,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            accepting: AtomicBool::new(true),
            in_progress: AtomicUsize::new(0),
            this_second: std::sync::Mutex::new((Instant::now(), 0)),
        }
    }
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

    /// Lists `call`, placed by `caller` (`trunk <name>`, `device <id>`), among the calls in
    /// progress until the answer is dropped.
    pub fn list_active(self: &Arc<Self>, call: Arc<Call>, caller: String) -> Listed {
        let key = self.next_active.fetch_add(1, Ordering::Relaxed);
        let started_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let entry = Active {
            call,
            caller,
            started_at,
        };
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        active.insert(key, entry);
        Listed {
            shared: Arc::clone(self),
            key,
        }
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

/// An admitted call, counted until this is dropped.
pub(crate) struct Admitted(pub Arc<Shared>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.finished();
    }
}

/// Answers `tx` with `code` and `headers`, counted.
pub(crate) async fn reply(shared: &Shared, tx: &mut Transaction, code: u16, headers: Vec<Header>) {
    shared.metrics.response(code);
    if let Err(e) = tx.reply_with(StatusCode::from(code), headers, None).await {
        tracing::debug!("cannot send {code}: {e}");
    }
}

/// Where the request came from (the packet's source, not what it claims).
pub(crate) fn source(tx: &Transaction) -> Option<SocketAddr> {
    tx.connection
        .as_ref()?
        .get_remote_addr()?
        .get_socketaddr()
        .ok()
}

/// Whether a request belongs to a dialog (its To carries a tag).
pub(crate) fn is_in_dialog(tx: &Transaction) -> bool {
    tx.original
        .to_header()
        .and_then(|to| to.tag())
        .ok()
        .flatten()
        .is_some()
}
