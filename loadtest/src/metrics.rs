//! What the clients record while they run: delivery latency in HdrHistograms (one per
//! shard of clients, merged at the end, so 10,000 clients do not each carry one), and
//! counters for requests, deliveries, duplicates, connections and errors by kind.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

use crate::net::IoCounters;
use crate::report::Latency;

/// Latencies are recorded in µs up to one hour, with 3 significant digits.
const MAX_LATENCY_US: u64 = 3_600_000_000;

pub struct Metrics {
    shards: Vec<Mutex<Histogram<u64>>>,
    /// HTTP requests made (a WebSocket, SSE or iframe connection, a WebTransport session,
    /// counts as one).
    pub requests: AtomicU64,
    /// Feed events delivered (messages for the chat, ticks for the clock), duplicates too.
    pub delivered: AtomicU64,
    pub duplicates: AtomicU64,
    /// Clients that have connected at least once.
    pub connected: AtomicUsize,
    /// `--datagrams`: events that came as WebTransport datagrams, and events found missing
    /// from the ids of what came (loss the transport accepts: QUIC does not resend a
    /// datagram). Not in the run's `lost`.
    pub datagrams: AtomicU64,
    pub datagrams_lost: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Bytes on the clients' sockets (TCP), or the UDP payload of their QUIC connections
    /// (WebTransport; see `clients::webtransport`).
    pub io: Arc<IoCounters>,
}

impl Metrics {
    pub fn new(shards: usize) -> Metrics {
        Metrics {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(new_histogram()))
                .collect(),
            requests: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            connected: AtomicUsize::new(0),
            datagrams: AtomicU64::new(0),
            datagrams_lost: AtomicU64::new(0),
            errors: Mutex::default(),
            io: Arc::default(),
        }
    }

    pub fn latency(&self, shard: usize, micros: u64) {
        let mut h = self.shards[shard % self.shards.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        h.saturating_record(micros.clamp(1, MAX_LATENCY_US));
    }

    pub fn error(&self, kind: impl Into<String>) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind.into())
            .or_default() += 1;
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn error_count(&self) -> u64 {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// All shards merged into one histogram.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in &self.shards {
            let h = shard.lock().unwrap_or_else(|p| p.into_inner());
            // Same bounds on both sides: adding cannot fail.
            let _ = all.add(&*h);
        }
        all
    }

    /// All shards merged, and each shard emptied: the latencies recorded since the previous
    /// call. The soak reads one such window per sample (a per-minute p99), where [`merged`]
    /// would give the whole run so far.
    ///
    /// [`merged`]: Metrics::merged
    pub fn take_merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in &self.shards {
            let mut h = shard.lock().unwrap_or_else(|p| p.into_inner());
            let _ = all.add(&*h);
            h.reset();
        }
        all
    }
}

impl Metrics {
    /// The metrics of several nodes of one run added up: histograms merged, counters and
    /// bytes summed, errors merged by kind. The sum of one is that one's figures, so a run
    /// against one node reports exactly what it did before nodes existed.
    pub fn sum(parts: &[&Metrics]) -> Metrics {
        let total = Metrics::new(1);
        {
            let mut h = total.shards[0].lock().unwrap_or_else(|p| p.into_inner());
            for part in parts {
                // Same bounds on both sides: adding cannot fail.
                let _ = h.add(part.merged());
            }
        }
        let mut errors = BTreeMap::new();
        for part in parts {
            for (sum, each) in total.counters().into_iter().zip(part.counters()) {
                sum.fetch_add(each.load(Relaxed), Relaxed);
            }
            total
                .connected
                .fetch_add(part.connected.load(Relaxed), Relaxed);
            for (kind, n) in part.errors() {
                *errors.entry(kind).or_default() += n;
            }
        }
        *total.errors.lock().unwrap_or_else(|p| p.into_inner()) = errors;
        total
    }
}

impl Metrics {
    /// The counters [`Metrics::sum`] adds up (all but `connected`, a `usize`), in one order.
    fn counters(&self) -> [&AtomicU64; 7] {
        [
            &self.requests,
            &self.delivered,
            &self.duplicates,
            &self.datagrams,
            &self.datagrams_lost,
            &self.io.read,
            &self.io.written,
        ]
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .unwrap_or_else(|e| unreachable!("valid bounds: {e}"))
}

/// The percentiles a report shows.
pub fn summarize(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    Latency {
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_into_the_same_percentiles_as_one_histogram() {
        let metrics = Metrics::new(4);
        let mut single = new_histogram();
        for i in 1..=10_000u64 {
            metrics.latency(i as usize, i * 10);
            single.record(i * 10).unwrap();
        }
        let merged = metrics.merged();
        assert_eq!(merged.len(), 10_000);
        assert_eq!(summarize(&merged), summarize(&single));
        let l = summarize(&merged);
        assert!((49_900..=50_100).contains(&l.p50), "{l:?}");
        assert!((98_900..=99_100).contains(&l.p99), "{l:?}");
        assert_eq!(l.max, single.max());
    }

    #[test]
    fn take_merged_returns_each_window_once() {
        let metrics = Metrics::new(3);
        for i in 0..300usize {
            metrics.latency(i, 1_000);
        }
        let first = metrics.take_merged();
        assert_eq!(first.len(), 300);
        assert_eq!(summarize(&first).p99, 1_000);
        // The next window holds only what came after the first was taken.
        for i in 0..10usize {
            metrics.latency(i, 50_000);
        }
        let second = metrics.take_merged();
        assert_eq!(second.len(), 10);
        assert!((49_900..=50_100).contains(&summarize(&second).p99));
        assert!(metrics.take_merged().is_empty());
        assert!(metrics.merged().is_empty());
    }

    #[test]
    fn the_sum_of_nodes_adds_their_counts_and_merges_their_latencies() {
        let (a, b) = (Metrics::new(2), Metrics::new(3));
        for i in 0..100usize {
            a.latency(i, 1_000);
            b.latency(i, 9_000);
        }
        a.delivered.fetch_add(100, Relaxed);
        b.delivered.fetch_add(100, Relaxed);
        b.duplicates.fetch_add(2, Relaxed);
        a.requests.fetch_add(7, Relaxed);
        b.requests.fetch_add(5, Relaxed);
        a.connected.fetch_add(3, Relaxed);
        b.connected.fetch_add(2, Relaxed);
        a.io.read.fetch_add(1_000, Relaxed);
        b.io.written.fetch_add(30, Relaxed);
        a.error("connect");
        b.error("connect");
        b.error("parse");
        let total = Metrics::sum(&[&a, &b]);
        assert_eq!(total.delivered.load(Relaxed), 200);
        assert_eq!(total.duplicates.load(Relaxed), 2);
        assert_eq!(total.requests.load(Relaxed), 12);
        assert_eq!(total.connected.load(Relaxed), 5);
        assert_eq!(
            (total.io.read.load(Relaxed), total.io.written.load(Relaxed)),
            (1_000, 30)
        );
        assert_eq!(
            total.errors(),
            BTreeMap::from([("connect".to_owned(), 2), ("parse".to_owned(), 1)])
        );
        let merged = total.merged();
        assert_eq!(merged.len(), 200);
        assert_eq!(summarize(&merged).p50, 1_000);
        assert!((8_990..=9_010).contains(&summarize(&merged).p99));
        // The sum of one node is that node, percentiles and all.
        let one = Metrics::sum(&[&a]);
        assert_eq!(summarize(&one.merged()), summarize(&a.merged()));
        assert_eq!(one.errors(), a.errors());
    }

    #[test]
    fn an_empty_run_summarizes_to_zeros() {
        assert_eq!(summarize(&Metrics::new(2).merged()), Latency::default());
    }
}
