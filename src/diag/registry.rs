//! The registry of tags: each tag's recent exchanges and its kill switch, bounded in
//! number of tags, exchanges per tag and bytes in all (the oldest forgotten first).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio_util::sync::CancellationToken;

use super::recording::Exchange;
use super::{MAX_EXCHANGES, MAX_TAGS, TOTAL_BYTES};
use crate::http::KillGuard;

/// All tags the server knows, oldest first for eviction.
#[derive(Default)]
pub struct Diagnostics {
    tags: Mutex<Tags>,
    seq: AtomicU64,
}

#[derive(Default)]
struct Tags {
    map: HashMap<String, TagEntry>,
    /// Tags in the order they were first seen.
    order: VecDeque<String>,
    /// The sum of the kept exchanges' `cost`: at most [`TOTAL_BYTES`].
    bytes: usize,
}

struct TagEntry {
    exchanges: VecDeque<Arc<Exchange>>,
    /// Connections open under the tag, each with its own switch, so that a kill asked by a
    /// client that is not the operator drops only the connections from its address.
    open: Vec<Opened>,
}

/// One connection opened under a tag.
struct Opened {
    /// Fired by a kill that takes this connection.
    token: CancellationToken,
    /// Held by the connection while it is open; counted by a kill.
    guard: Weak<KillGuard>,
    /// The client address it came from (`None` when the router resolved none).
    client: Option<IpAddr>,
}

impl Tags {
    fn entry(&mut self, tag: &str) -> &mut TagEntry {
        if !self.map.contains_key(tag) {
            while self.map.len() >= MAX_TAGS {
                let Some(oldest) = self.order.pop_front() else {
                    break;
                };
                if let Some(gone) = self.map.remove(&oldest) {
                    self.bytes -= gone.exchanges.iter().map(|x| x.cost).sum::<usize>();
                }
            }
            self.order.push_back(tag.to_string());
        }
        self.map.entry(tag.to_string()).or_insert_with(|| TagEntry {
            exchanges: VecDeque::new(),
            open: Vec::new(),
        })
    }

    /// Forgets the oldest exchange of any tag; `false` if there is none. A scan of at most
    /// [`MAX_TAGS`] queue fronts, done about once per recorded exchange once the budget is
    /// full: cheaper than keeping a second, global queue in step.
    fn forget_oldest(&mut self) -> bool {
        let oldest = self
            .map
            .iter()
            .filter_map(|(tag, entry)| entry.exchanges.front().map(|x| (x.seq, tag)))
            .min_by_key(|(seq, _)| *seq)
            .map(|(_, tag)| tag.clone());
        let Some(tag) = oldest else {
            return false;
        };
        if let Some(gone) = self
            .map
            .get_mut(&tag)
            .and_then(|entry| entry.exchanges.pop_front())
        {
            self.bytes -= gone.cost;
        }
        true
    }
}

impl Diagnostics {
    fn lock(&self) -> MutexGuard<'_, Tags> {
        self.tags.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// For a connection of `tag` from `client`: the token that fires when a kill takes it,
    /// and a guard to hold while the connection is open (so a kill can say how many it
    /// dropped). The tag's list forgets closed connections here, so it holds at most the
    /// tag's open connections plus those closed since the last one opened.
    pub fn kill_switch(
        &self,
        tag: &str,
        client: Option<IpAddr>,
    ) -> (CancellationToken, Arc<KillGuard>) {
        let mut tags = self.lock();
        let entry = tags.entry(tag);
        let guard = Arc::new(KillGuard::default());
        let token = CancellationToken::new();
        entry.open.retain(|o| o.guard.strong_count() > 0);
        entry.open.push(Opened {
            token: token.clone(),
            guard: Arc::downgrade(&guard),
            client,
        });
        (token, guard)
    }

    /// Drops the open connections of `tag` whose client address `takes` accepts (all of
    /// them for the operator, its own for anyone else); returns how many it broke (a request
    /// that retired its guard first, answering normally, is not one). Connections opened
    /// afterwards get a fresh switch.
    pub fn kill(&self, tag: &str, takes: impl Fn(Option<IpAddr>) -> bool) -> usize {
        let mut tags = self.lock();
        let Some(entry) = tags.map.get_mut(tag) else {
            return 0;
        };
        let mut killed = 0;
        entry.open.retain(|o| {
            if !takes(o.client) {
                return true;
            }
            killed += usize::from(o.guard.upgrade().is_some_and(|g| g.kill()));
            o.token.cancel();
            false
        });
        killed
    }

    /// The next exchange's sequence number (1, 2, …): the record's age order.
    pub(super) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The bytes charged to the record now (never more than [`TOTAL_BYTES`]).
    pub fn recorded_bytes(&self) -> usize {
        self.lock().bytes
    }

    pub(super) fn record(&self, tag: &str, exchange: Arc<Exchange>) {
        let mut tags = self.lock();
        let entry = tags.entry(tag);
        let dropped = if entry.exchanges.len() >= MAX_EXCHANGES {
            entry.exchanges.pop_front().map_or(0, |x| x.cost)
        } else {
            0
        };
        tags.bytes -= dropped;
        while tags.bytes + exchange.cost > TOTAL_BYTES && tags.forget_oldest() {}
        tags.bytes += exchange.cost;
        tags.entry(tag).exchanges.push_back(exchange);
    }

    pub(super) fn exchanges(&self, tag: &str) -> Vec<Arc<Exchange>> {
        let tags = self.lock();
        tags.map
            .get(tag)
            .map(|e| e.exchanges.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::EXCHANGE_BYTES;
    use std::time::Instant;

    #[test]
    fn a_kill_fires_open_switches_and_counts_them_and_the_next_switch_is_fresh() {
        let d = Diagnostics::default();
        let (a, guard_a) = d.kill_switch("t", None);
        let (b, guard_b) = d.kill_switch("t", None);
        drop(guard_b);
        assert_eq!(d.kill("t", |_| true), 1);
        assert!(a.is_cancelled() && b.is_cancelled());
        let (c, _guard_c) = d.kill_switch("t", None);
        assert!(!c.is_cancelled());
        assert_eq!(d.kill("unknown", |_| true), 0);
        drop(guard_a);
    }

    #[test]
    fn a_kill_takes_only_the_connections_of_the_addresses_it_is_given() {
        let d = Diagnostics::default();
        let (here, there): (IpAddr, IpAddr) =
            ("10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let (mine, _g1) = d.kill_switch("t", Some(here));
        let (theirs, _g2) = d.kill_switch("t", Some(there));
        let (unknown, _g3) = d.kill_switch("t", None);
        assert_eq!(d.kill("t", |c| c == Some(here)), 1);
        assert!(mine.is_cancelled());
        assert!(!theirs.is_cancelled() && !unknown.is_cancelled());
        assert_eq!(d.kill("t", |c| c == Some(here)), 0, "already taken");
        assert_eq!(d.kill("t", |_| true), 2);
        assert!(theirs.is_cancelled() && unknown.is_cancelled());
    }

    #[test]
    fn a_request_that_retired_its_guard_is_not_counted_and_one_killed_cannot_retire() {
        let d = Diagnostics::default();
        let (_, answered) = d.kill_switch("t", None);
        let (_, held) = d.kill_switch("t", None);
        assert!(answered.retire());
        assert_eq!(d.kill("t", |_| true), 1, "only the held request was broken");
        assert!(!held.retire(), "the killed request must break, not answer");
        assert!(!answered.kill(), "retired stays retired");
    }

    #[test]
    fn tags_are_bounded_in_number() {
        let d = Diagnostics::default();
        for i in 0..MAX_TAGS + 5 {
            let _ = d.kill_switch(&format!("t{i}"), None);
        }
        assert_eq!(d.lock().map.len(), MAX_TAGS);
        assert!(!d.lock().map.contains_key("t0"));
    }

    fn exchange(d: &Diagnostics, cost: usize) -> Arc<Exchange> {
        Arc::new(Exchange {
            seq: d.next_seq(),
            started: 0,
            since: Instant::now(),
            cost,
            request_line: String::new(),
            request_headers: Vec::new(),
            client: None,
            owner: None,
            response: Mutex::default(),
        })
    }

    #[test]
    fn the_total_stays_in_budget_and_the_oldest_exchange_anywhere_goes_first() {
        let d = Diagnostics::default();
        let cost = EXCHANGE_BYTES + size_of::<Exchange>();
        for round in 0..MAX_EXCHANGES {
            for t in 0..MAX_TAGS {
                d.record(&format!("t{t}"), exchange(&d, cost));
                let tags = d.lock();
                let sum: usize = tags
                    .map
                    .values()
                    .flat_map(|e| e.exchanges.iter().map(|x| x.cost))
                    .sum();
                assert_eq!(tags.bytes, sum, "round {round}, tag {t}");
                assert!(tags.bytes <= TOTAL_BYTES);
            }
        }
        assert!(d.recorded_bytes() > TOTAL_BYTES - cost);
        // The newest exchanges are kept: the last tag recorded has its last ones.
        let newest = d.exchanges(&format!("t{}", MAX_TAGS - 1));
        assert!(!newest.is_empty());
        assert_eq!(newest[0].seq, (MAX_TAGS * MAX_EXCHANGES) as u64);
        // And what was forgotten is older than anything kept.
        let tags = d.lock();
        let kept_min = tags
            .map
            .values()
            .flat_map(|e| e.exchanges.iter().map(|x| x.seq))
            .min()
            .unwrap();
        let kept = tags.map.values().map(|e| e.exchanges.len()).sum::<usize>() as u64;
        assert_eq!(kept_min, (MAX_TAGS * MAX_EXCHANGES) as u64 - kept + 1);
    }
}
