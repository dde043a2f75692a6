//! What a client run saw: calls and messages per RPC kind, latency histograms, and
//! errors by kind. Faults the test expects (the server killed, a connection cut, load
//! shed) are tolerated and counted apart from failures, which fail the run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;
use tonic::{Code, Status};

/// An error the client retries after reconnecting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Could not connect (refused, unreachable, timed out).
    Connect,
    /// TLS handshake failed.
    Handshake,
    /// UNAVAILABLE: the server is going away or not there.
    Unavailable,
    /// The connection broke mid-call.
    Disconnected,
    /// DEADLINE_EXCEEDED.
    Timeout,
    /// RESOURCE_EXHAUSTED: the server shed load.
    Shed,
}

/// Classifies a call's error: `Ok(fault)` when tolerated, `Err(description)` when it
/// is a real failure.
pub fn classify(status: &Status) -> Result<Fault, String> {
    let message = status.message().to_ascii_lowercase();
    let transport =
        ["transport", "h2", "connection", "broken pipe", "reset", "closed", "body", "stream no longer needed"]
            .iter()
            .any(|hint| message.contains(hint));
    match status.code() {
        Code::Unavailable if message.contains("tls") || message.contains("certificate") => Ok(Fault::Handshake),
        Code::Unavailable => Ok(Fault::Unavailable),
        Code::DeadlineExceeded => Ok(Fault::Timeout),
        Code::ResourceExhausted => Ok(Fault::Shed),
        Code::Cancelled => Ok(Fault::Disconnected),
        Code::Unknown | Code::Internal if transport => Ok(Fault::Disconnected),
        code => Err(format!("{code:?}: {}", status.message())),
    }
}

/// Classifies a failed connection attempt.
pub fn classify_connect(error: &loadlab_proto::connect::OpenError) -> Fault {
    use loadlab_proto::connect::OpenError;
    match error {
        OpenError::Tcp(_) | OpenError::Origin => Fault::Connect,
        OpenError::Tls(_) | OpenError::Http2(_) => Fault::Handshake,
    }
}

/// Figures for one RPC kind.
pub struct KindStats {
    pub calls_ok: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Whole-call durations, microseconds.
    pub latency: Histogram<u64>,
}

impl Default for KindStats {
    fn default() -> Self {
        Self {
            calls_ok: 0,
            messages_sent: 0,
            messages_received: 0,
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
        }
    }
}

#[derive(Default)]
pub struct Summary {
    pub kinds: BTreeMap<&'static str, KindStats>,
    pub faults: BTreeMap<Fault, u64>,
    pub failures: BTreeMap<String, u64>,
    pub reconnects: u64,
}

#[derive(Serialize)]
struct KindJson {
    calls_ok: u64,
    messages_sent: u64,
    messages_received: u64,
    latency_us: BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
struct SummaryJson<'a> {
    kinds: BTreeMap<&'static str, KindJson>,
    faults: &'a BTreeMap<Fault, u64>,
    failures: &'a BTreeMap<String, u64>,
    reconnects: u64,
}

impl Summary {
    pub fn merge(&mut self, other: Summary) {
        for (kind, stats) in other.kinds {
            let mine = self.kinds.entry(kind).or_default();
            mine.calls_ok += stats.calls_ok;
            mine.messages_sent += stats.messages_sent;
            mine.messages_received += stats.messages_received;
            mine.latency.add(&stats.latency).expect("same histogram bounds");
        }
        for (fault, count) in other.faults {
            *self.faults.entry(fault).or_default() += count;
        }
        for (failure, count) in other.failures {
            *self.failures.entry(failure).or_default() += count;
        }
        self.reconnects += other.reconnects;
    }

    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    fn percentiles(latency: &Histogram<u64>) -> BTreeMap<&'static str, u64> {
        [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)]
            .into_iter()
            .map(|(name, quantile)| (name, latency.value_at_percentile(quantile)))
            .collect()
    }

    pub fn to_json(&self) -> String {
        let kinds = self
            .kinds
            .iter()
            .map(|(kind, stats)| {
                (
                    *kind,
                    KindJson {
                        calls_ok: stats.calls_ok,
                        messages_sent: stats.messages_sent,
                        messages_received: stats.messages_received,
                        latency_us: Self::percentiles(&stats.latency),
                    },
                )
            })
            .collect();
        serde_json::to_string(&SummaryJson {
            kinds,
            faults: &self.faults,
            failures: &self.failures,
            reconnects: self.reconnects,
        })
        .expect("summary serialises")
    }

    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{:<16} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "kind", "calls ok", "sent", "received", "p50 ms", "p99 ms", "max ms"
        );
        for (kind, stats) in &self.kinds {
            let ms = |quantile: f64| stats.latency.value_at_percentile(quantile) as f64 / 1000.0;
            let _ = writeln!(
                text,
                "{kind:<16} {:>10} {:>10} {:>10} {:>10.2} {:>10.2} {:>10.2}",
                stats.calls_ok,
                stats.messages_sent,
                stats.messages_received,
                ms(50.0),
                ms(99.0),
                ms(100.0)
            );
        }
        let _ = writeln!(text, "reconnects: {}", self.reconnects);
        let faults: Vec<String> = self.faults.iter().map(|(fault, count)| format!("{fault:?}={count}")).collect();
        let _ =
            writeln!(text, "tolerated faults: {}", if faults.is_empty() { "none".into() } else { faults.join(" ") });
        let failures: Vec<String> =
            self.failures.iter().map(|(failure, count)| format!("{count}× {failure}")).collect();
        let _ = writeln!(text, "failures: {}", if failures.is_empty() { "none".into() } else { failures.join("; ") });
        text
    }
}
