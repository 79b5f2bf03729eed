//! What the clients and the injector of one faulted run share: the tags, the break marks,
//! the request-rate buckets and the reconnect and recovery histograms, and the figures they
//! make at the end.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use pushpoll::feed::clock::now_micros;

use super::{BUCKET, BUCKETS, FaultPlan, TIMELINE_AFTER, TIMELINE_BEFORE};
use crate::report::{FaultResult, Percentiles, StormRate};

/// 16 bytes from the OS, as 32 hex digits.
fn random_hex() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the diagnostics tags")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What the clients and the injector of one faulted run share.
pub struct FaultState {
    pub(super) run_id: String,
    pub(super) origin: Instant,
    /// Per client: when its connection was broken on purpose (µs, wall clock), 0 if not.
    pub(super) broken_at: Vec<AtomicU64>,
    /// Requests sent per [`BUCKET`] since `origin`.
    pub(super) buckets: Vec<AtomicU64>,
    /// The bucket the storm fired in, plus one (0: no storm yet).
    pub(super) storm_bucket: AtomicU64,
    /// How long sending all the storm's kills took, µs: the breaks are spread over it.
    pub(super) storm_kills_us: AtomicU64,
    pub(super) kills_sent: AtomicU64,
    pub(super) kill_failures: AtomicU64,
    /// Connections the server said it dropped.
    pub(super) breaks: AtomicU64,
    /// Breaks the clients saw (their session ended while marked broken).
    pub(super) breaks_seen: AtomicU64,
    pub(super) recovery_requests: AtomicU64,
    pub(super) reconnect: Mutex<Histogram<u64>>,
    pub(super) recovery: Mutex<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|e| unreachable!("valid bounds: {e}"))
}

impl FaultState {
    pub fn new(clients: usize) -> anyhow::Result<Arc<FaultState>> {
        Ok(Arc::new(FaultState {
            run_id: random_hex()?,
            origin: Instant::now(),
            broken_at: (0..clients).map(|_| AtomicU64::new(0)).collect(),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            storm_bucket: AtomicU64::new(0),
            storm_kills_us: AtomicU64::new(0),
            kills_sent: AtomicU64::new(0),
            kill_failures: AtomicU64::new(0),
            breaks: AtomicU64::new(0),
            breaks_seen: AtomicU64::new(0),
            recovery_requests: AtomicU64::new(0),
            reconnect: Mutex::new(histogram()),
            recovery: Mutex::new(histogram()),
        }))
    }

    /// Client `index`'s diagnostics tag: 22–64 characters of `[A-Za-z0-9_-]`, 128 random
    /// bits (the run's) and the index.
    pub fn tag(&self, index: usize) -> String {
        format!("lt-{}-{index}", self.run_id)
    }

    /// Counts one request in the rate timeline.
    pub fn requested(&self, awaiting_recovery: bool) {
        let i = (self.origin.elapsed().as_nanos() / BUCKET.as_nanos()) as usize;
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Relaxed);
        }
        if awaiting_recovery {
            self.recovery_requests.fetch_add(1, Relaxed);
        }
    }

    /// Called when client `index`'s session ended: the break time if it was broken on
    /// purpose (and the mark is taken: the next break is a new one).
    pub fn take_break(&self, index: usize) -> Option<u64> {
        let at = self.broken_at.get(index)?.swap(0, Relaxed);
        if at == 0 {
            return None;
        }
        self.breaks_seen.fetch_add(1, Relaxed);
        Some(at)
    }

    pub fn reconnected(&self, broken_at: u64) {
        let mut h = self.reconnect.lock().unwrap_or_else(|p| p.into_inner());
        h.saturating_record(now_micros().saturating_sub(broken_at).max(1));
    }

    pub fn recovered(&self, broken_at: u64) {
        let mut h = self.recovery.lock().unwrap_or_else(|p| p.into_inner());
        h.saturating_record(now_micros().saturating_sub(broken_at).max(1));
    }

    pub(super) fn busy(&self, index: usize) -> bool {
        self.broken_at[index].load(Relaxed) != 0
    }
}

impl FaultState {
    /// The figures, once the clients have finished (`unrecovered` counted by the runner).
    pub fn result(&self, plan: &FaultPlan, unrecovered: u64) -> FaultResult {
        let storm = match self.storm_bucket.load(Relaxed) {
            0 => None,
            b => {
                let at = (b - 1) as usize;
                let per = |d: Duration| (d.as_nanos() / BUCKET.as_nanos()) as usize;
                let from = at.saturating_sub(per(TIMELINE_BEFORE));
                let to = (at + per(TIMELINE_AFTER)).min(BUCKETS);
                let timeline: Vec<u64> = self.buckets[from..to]
                    .iter()
                    .map(|b| b.load(Relaxed))
                    .collect();
                let after = &timeline[at - from..];
                let before = &timeline[..at - from];
                StormRate {
                    peak_per_100ms: after.chunks(10).map(|c| c.iter().sum()).max().unwrap_or(0),
                    peak_per_10ms: after.iter().copied().max().unwrap_or(0),
                    before_per_100ms: before.iter().sum::<u64>() as f64
                        / (before.len().max(1) as f64 / 10.0),
                    kills_ms: self.storm_kills_us.load(Relaxed) as f64 / 1000.0,
                    timeline_10ms: timeline,
                }
                .into()
            }
        };
        FaultResult {
            churn: plan.churn,
            storm_at_s: plan.storm.map(|d| d.as_secs_f64()),
            jitter: plan.jitter,
            kills_sent: self.kills_sent.load(Relaxed),
            kill_failures: self.kill_failures.load(Relaxed),
            breaks: self.breaks.load(Relaxed),
            breaks_seen: self.breaks_seen.load(Relaxed),
            reconnect_us: Percentiles::of(
                &self.reconnect.lock().unwrap_or_else(|p| p.into_inner()),
            ),
            recovery_us: Percentiles::of(&self.recovery.lock().unwrap_or_else(|p| p.into_inner())),
            unrecovered,
            recovery_requests: self.recovery_requests.load(Relaxed),
            storm,
            extra_requests: None,
            extra_bytes_in: None,
            extra_bytes_out: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_what_the_server_accepts() {
        let state = FaultState::new(3).unwrap();
        for i in [0, 199] {
            let tag = state.tag(i);
            assert!(pushpoll::diag::parse_tag(&tag).is_ok(), "{tag}");
        }
        assert_ne!(FaultState::new(1).unwrap().tag(0), state.tag(0));
    }

    #[test]
    fn a_storm_bucket_gives_the_peak_and_the_steady_rate_before() {
        let state = FaultState::new(1).unwrap();
        for (i, n) in [(100usize, 2u64), (140, 5), (149, 1), (160, 30), (161, 3)] {
            state.buckets[i].store(n, Relaxed);
        }
        state.storm_bucket.store(151, Relaxed);
        let r = state.result(&FaultPlan::default(), 0);
        let s = r.storm.unwrap();
        assert_eq!(s.peak_per_10ms, 30);
        assert_eq!(s.peak_per_100ms, 33);
        assert!((s.before_per_100ms - 8.0 / 5.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.timeline_10ms.len(), 350);
    }
}
