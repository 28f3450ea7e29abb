//! What the SIP side counts, for `/metrics`: requests by method, responses cfhost sent by
//! code, registrations, rejected requests (challenges answered wrongly, strangers, unknown
//! numbers, floods), and calls by how they ended.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Counters of the SIP service.
#[derive(Default)]
pub struct SipMetrics {
    counts: Mutex<Counts>,
    setup: SetupTimes,
}

/// Call setup times (the INVITE to the 200 the caller got), in buckets a quarter of a binary
/// order of magnitude wide, from 16 µs to about 60 s.
pub struct SetupTimes {
    buckets: [std::sync::atomic::AtomicU64; SETUP_BUCKETS],
}

const SETUP_BUCKETS: usize = 88;
const SETUP_FIRST_US: f64 = 16.0;

impl Default for SetupTimes {
    fn default() -> Self {
        SetupTimes {
            buckets: std::array::from_fn(|_| std::sync::atomic::AtomicU64::new(0)),
        }
    }
}

impl SetupTimes {
    fn bucket(micros: f64) -> usize {
        if micros <= SETUP_FIRST_US {
            return 0;
        }
        ((4.0 * (micros / SETUP_FIRST_US).log2()).ceil() as usize).min(SETUP_BUCKETS - 1)
    }

    /// The upper bound of bucket `i`, in µs.
    fn bound(i: usize) -> f64 {
        SETUP_FIRST_US * 2f64.powf(i as f64 / 4.0)
    }

    fn record(&self, time: Duration) {
        let i = Self::bucket(time.as_secs_f64() * 1e6);
        self.buckets[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn counts(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(std::sync::atomic::Ordering::Relaxed))
            .collect()
    }
}

/// The setup times recorded so far, to take percentiles of what happened between two of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupSnapshot(Vec<u64>);

impl SetupSnapshot {
    /// The `p`th percentile (an upper bound, within a quarter of a binary order of magnitude)
    /// of the setups since `earlier`; `None` when there were none.
    pub fn percentile_since(&self, earlier: &SetupSnapshot, p: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .0
            .iter()
            .zip(&earlier.0)
            .map(|(now, before)| now - before)
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_secs_f64(SetupTimes::bound(i) / 1e6));
            }
        }
        None
    }

    /// How many setups are in it.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

#[derive(Default)]
struct Counts {
    requests: BTreeMap<String, u64>,
    responses: BTreeMap<u16, u64>,
    registrations: BTreeMap<&'static str, u64>,
    rejected: BTreeMap<&'static str, u64>,
    calls: BTreeMap<String, u64>,
}

impl SipMetrics {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request arrived.
    pub fn request(&self, method: &str) {
        *self
            .counts()
            .requests
            .entry(method.to_string())
            .or_default() += 1;
    }

    /// cfhost sent a response with `code`.
    pub fn response(&self, code: u16) {
        *self.counts().responses.entry(code).or_default() += 1;
    }

    /// A REGISTER ended: `ok`, `unregistered`, `challenged`, `refused`.
    pub fn registration(&self, outcome: &'static str) {
        *self.counts().registrations.entry(outcome).or_default() += 1;
    }

    /// A request was refused: `stranger`, `bad_credentials`, `unknown_number`, `overload`, ...
    pub fn rejected(&self, why: &'static str) {
        *self.counts().rejected.entry(why).or_default() += 1;
    }

    /// A call ended with `result`.
    pub fn call(&self, result: &str) {
        *self.counts().calls.entry(result.to_string()).or_default() += 1;
    }

    /// A call was answered `time` after its INVITE arrived.
    pub fn setup(&self, time: Duration) {
        self.setup.record(time);
    }

    /// The setup times so far.
    pub fn setup_snapshot(&self) -> SetupSnapshot {
        SetupSnapshot(self.setup.counts())
    }

    /// How many requests of `method` arrived.
    pub fn requests(&self, method: &str) -> u64 {
        self.counts().requests.get(method).copied().unwrap_or(0)
    }

    /// How many requests were refused for `why`.
    pub fn rejections(&self, why: &str) -> u64 {
        self.counts().rejected.get(why).copied().unwrap_or(0)
    }

    /// How many calls ended, whatever their result.
    pub fn calls_ended(&self) -> u64 {
        self.counts().calls.values().sum()
    }

    /// How many calls ended with `result`.
    pub fn calls(&self, result: &str) -> u64 {
        self.counts().calls.get(result).copied().unwrap_or(0)
    }

    /// The counters as Prometheus text, with `in_progress` calls and `bindings` registered.
    pub fn render(&self, in_progress: usize, bindings: usize) -> String {
        let counts = self.counts();
        let mut out = String::new();
        let labelled = |name: &str, label: &str, values: Vec<(String, u64)>| {
            let mut body = String::new();
            for (value, n) in values {
                let _ = writeln!(body, "{name}{{{label}=\"{value}\"}} {n}");
            }
            body
        };
        section(
            &mut out,
            "cfhost_sip_requests_total",
            "SIP requests received, by method.",
            "counter",
            labelled(
                "cfhost_sip_requests_total",
                "method",
                pairs(&counts.requests),
            ),
        );
        section(
            &mut out,
            "cfhost_sip_responses_total",
            "SIP responses cfhost sent, by code.",
            "counter",
            labelled(
                "cfhost_sip_responses_total",
                "code",
                pairs(&counts.responses),
            ),
        );
        section(
            &mut out,
            "cfhost_sip_registrations_total",
            "REGISTER requests, by outcome.",
            "counter",
            labelled(
                "cfhost_sip_registrations_total",
                "outcome",
                pairs(&counts.registrations),
            ),
        );
        section(
            &mut out,
            "cfhost_sip_rejected_total",
            "SIP requests refused, by reason.",
            "counter",
            labelled(
                "cfhost_sip_rejected_total",
                "reason",
                pairs(&counts.rejected),
            ),
        );
        section(
            &mut out,
            "cfhost_sip_calls_total",
            "SIP calls that ended, by result.",
            "counter",
            labelled("cfhost_sip_calls_total", "result", pairs(&counts.calls)),
        );
        section(
            &mut out,
            "cfhost_sip_calls_in_progress",
            "SIP calls in progress.",
            "gauge",
            format!("cfhost_sip_calls_in_progress {in_progress}\n"),
        );
        section(
            &mut out,
            "cfhost_sip_registered_contacts",
            "Device contacts registered now.",
            "gauge",
            format!("cfhost_sip_registered_contacts {bindings}\n"),
        );
        out
    }
}

/// A counter map's entries, as text and count.
fn pairs<K: std::fmt::Display>(map: &BTreeMap<K, u64>) -> Vec<(String, u64)> {
    map.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// Appends one metric family: its help and type lines, then its samples.
fn section(out: &mut String, name: &str, help: &str, kind: &str, samples: String) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    out.push_str(&samples);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let metrics = SipMetrics::default();
        metrics.request("INVITE");
        metrics.request("INVITE");
        metrics.response(404);
        metrics.rejected("stranger");
        metrics.call("no_answer");
        let text = metrics.render(3, 1);
        assert!(
            text.contains("cfhost_sip_requests_total{method=\"INVITE\"} 2"),
            "{text}"
        );
        assert!(text.contains("cfhost_sip_responses_total{code=\"404\"} 1"));
        assert!(text.contains("cfhost_sip_rejected_total{reason=\"stranger\"} 1"));
        assert!(text.contains("cfhost_sip_calls_total{result=\"no_answer\"} 1"));
        assert!(text.contains("cfhost_sip_calls_in_progress 3"));
        assert_eq!(metrics.requests("INVITE"), 2);
    }

    #[test]
    fn setup_percentiles_come_from_the_histogram_within_a_bucket() {
        let metrics = SipMetrics::default();
        let before = metrics.setup_snapshot();
        for micros in [300, 320, 350, 400, 20_000] {
            metrics.setup(Duration::from_micros(micros));
        }
        let after = metrics.setup_snapshot();
        assert_eq!(after.total(), 5);
        let p50 = after.percentile_since(&before, 50.0).unwrap();
        assert!((350..=420).contains(&p50.as_micros()), "{p50:?}");
        let p99 = after.percentile_since(&before, 99.0).unwrap();
        assert!((20_000..=24_000).contains(&p99.as_micros()), "{p99:?}");
        assert_eq!(after.percentile_since(&after, 50.0), None);
    }
}
