//! Per-peer accounting: the one place that knows what each client address holds and spends.
//! A peer is an IP address (the whole 127.0.0.0/8 is loopback, so tests play several peers).
//!
//! - **Connections.** The listener asks [`Peers::connect`] for every accepted TCP connection:
//!   a peer may hold at most `--max-connections-per-peer` at once, so one client cannot take
//!   the whole `--max-connections` from everyone else. The [`PeerConn`] guard gives the slot
//!   back when the connection closes.
//! - **Budgets.** Actions that create state (a login, for one) are charged to the peer with
//!   [`Peers::spend`]: a token bucket per peer and [`Budget`], refilled over time.
//!
//! Bounded by construction: an entry exists while its peer holds a connection, or for as long
//! as one of its buckets is still refilling; past [`MAX_IDLE_PEERS`] entries without a
//! connection, the idle ones are forgotten (which can only make a budget more generous,
//! never hold memory).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Entries kept for peers that hold no connection (their budgets still refilling).
pub const MAX_IDLE_PEERS: usize = 10_000;

/// What a peer can spend, each with its own bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// `POST /api/session`.
    Login = 0,
    /// Strokes on the shared canvas (`POST /api/draw`, WebSocket `draw` frames), charged one
    /// token per stroke.
    Draw = 1,
}

const BUDGETS: usize = 2;

/// The draw budget when none is given: 60 strokes a second, a burst of 60. A person drawing
/// sends a stroke every 50 ms or so (20 a second); the rest is headroom for a fast hand.
pub const DEFAULT_DRAW_RATE: Rate = Rate {
    count: 60,
    per: Duration::from_secs(1),
};

/// `count` actions per `per`, as a token bucket: a burst of `count`, then one every
/// `per / count`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    fn refill_interval(&self) -> Duration {
        self.per / self.count.max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate) -> Bucket {
        Bucket {
            tokens: rate.count as f64,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let per_token = rate.refill_interval().as_secs_f64();
        let gained = now.duration_since(self.at).as_secs_f64() / per_token.max(1e-9);
        self.tokens = (self.tokens + gained).min(rate.count as f64);
        self.at = now;
    }

    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        b.tokens >= rate.count as f64
    }
}

struct Peer {
    open: u64,
    buckets: [Bucket; BUDGETS],
}

/// Why [`Peers::connect`] refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerFull {
    pub max: u64,
}

pub struct Peers {
    map: Mutex<HashMap<IpAddr, Peer>>,
    max_per_peer: u64,
    rates: [Rate; BUDGETS],
}

impl Peers {
    pub fn new(max_per_peer: u64, login: Rate) -> Arc<Peers> {
        Self::with_rates(max_per_peer, login, DEFAULT_DRAW_RATE)
    }

    /// Like [`Peers::new`], with the draw budget too.
    pub fn with_rates(max_per_peer: u64, login: Rate, draw: Rate) -> Arc<Peers> {
        Arc::new(Peers {
            map: Mutex::new(HashMap::new()),
            max_per_peer: max_per_peer.max(1),
            rates: [login, draw],
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Peer>> {
        // Every update is a single field write; a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn max_per_peer(&self) -> u64 {
        self.max_per_peer
    }

    fn entry<'a>(&self, map: &'a mut HashMap<IpAddr, Peer>, ip: IpAddr) -> &'a mut Peer {
        if !map.contains_key(&ip) {
            self.forget_idle(map);
        }
        map.entry(ip).or_insert_with(|| Peer {
            open: 0,
            buckets: self.rates.map(Bucket::full),
        })
    }

    /// Keeps the entries of peers without a connection under [`MAX_IDLE_PEERS`]: first those
    /// whose buckets are full again (nothing to remember), then any idle ones. Each pass is
    /// O(n) and frees at least half the idle room, so the cost per new peer stays constant.
    fn forget_idle(&self, map: &mut HashMap<IpAddr, Peer>) {
        let idle = map.values().filter(|p| p.open == 0).count();
        if idle < MAX_IDLE_PEERS {
            return;
        }
        let now = Instant::now();
        map.retain(|_, p| {
            p.open > 0
                || !p
                    .buckets
                    .iter()
                    .zip(self.rates)
                    .all(|(b, rate)| b.is_full(rate, now))
        });
        let mut idle = map.values().filter(|p| p.open == 0).count();
        if idle >= MAX_IDLE_PEERS / 2 {
            map.retain(|_, p| {
                if p.open == 0 && idle > MAX_IDLE_PEERS / 2 {
                    idle -= 1;
                    false
                } else {
                    true
                }
            });
        }
    }

    /// Takes one of `ip`'s connection slots, or refuses when it holds its share already.
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Result<PeerConn, PeerFull> {
        let mut map = self.lock();
        let peer = self.entry(&mut map, ip);
        if peer.open >= self.max_per_peer {
            return Err(PeerFull {
                max: self.max_per_peer,
            });
        }
        peer.open += 1;
        Ok(PeerConn {
            peers: self.clone(),
            ip,
        })
    }

    /// Connections `ip` holds now.
    pub fn open(&self, ip: IpAddr) -> u64 {
        self.lock().get(&ip).map_or(0, |p| p.open)
    }

    /// Peers with an entry now (connected, or with a budget still refilling).
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    /// Charges one `budget` action to `ip`; `Err(seconds to wait)` when its bucket is empty.
    pub fn spend(&self, ip: IpAddr, budget: Budget) -> Result<(), u64> {
        self.spend_many(ip, budget, 1)
    }

    /// Charges `n` actions at once (a batch of strokes): all of them, or none when the
    /// bucket holds fewer than `n` tokens; `Err(seconds to wait)` then. A batch larger than
    /// the whole burst can never pass, so callers keep batches below it.
    pub fn spend_many(&self, ip: IpAddr, budget: Budget, n: u32) -> Result<(), u64> {
        let rate = self.rates[budget as usize];
        let n = f64::from(n.max(1));
        let now = Instant::now();
        let mut map = self.lock();
        let bucket = &mut self.entry(&mut map, ip).buckets[budget as usize];
        bucket.refill(rate, now);
        if bucket.tokens >= n {
            bucket.tokens -= n;
            Ok(())
        } else {
            let wait = (n - bucket.tokens) * rate.refill_interval().as_secs_f64();
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

/// One connection slot of a peer; dropping it gives the slot back.
pub struct PeerConn {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl PeerConn {
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for PeerConn {
    fn drop(&mut self) {
        let mut map = self.peers.lock();
        if let Some(peer) = map.get_mut(&self.ip) {
            peer.open = peer.open.saturating_sub(1);
            let now = Instant::now();
            let idle_and_full = peer.open == 0
                && peer
                    .buckets
                    .iter()
                    .zip(self.peers.rates)
                    .all(|(b, rate)| b.is_full(rate, now));
            if idle_and_full {
                map.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn login() -> Rate {
        Rate {
            count: 3,
            per: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_peer_holds_at_most_its_share_and_others_are_unaffected() {
        let peers = Peers::new(2, login());
        let a1 = peers.connect(ip(1)).unwrap();
        let _a2 = peers.connect(ip(1)).unwrap();
        assert_eq!(peers.connect(ip(1)).err(), Some(PeerFull { max: 2 }));
        let _b = peers.connect(ip(2)).unwrap();
        drop(a1);
        assert!(peers.connect(ip(1)).is_ok());
    }

    #[test]
    fn a_closed_peer_with_full_buckets_leaves_no_entry() {
        let peers = Peers::new(2, login());
        drop(peers.connect(ip(1)).unwrap());
        assert_eq!(peers.tracked(), 0);
        let conn = peers.connect(ip(1)).unwrap();
        peers.spend(ip(1), Budget::Login).unwrap();
        drop(conn);
        assert_eq!(peers.tracked(), 1, "the spent budget is remembered");
    }

    #[test]
    fn budgets_are_per_peer_and_say_how_long_to_wait() {
        let peers = Peers::new(2, login());
        for _ in 0..3 {
            peers.spend(ip(1), Budget::Login).unwrap();
        }
        let wait = peers.spend(ip(1), Budget::Login).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(peers.spend(ip(2), Budget::Login).is_ok());
    }

    #[test]
    fn idle_entries_are_bounded() {
        let peers = Peers::new(2, login());
        for i in 0..(MAX_IDLE_PEERS as u32 * 2) {
            let addr = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            let _ = peers.spend(addr, Budget::Login);
        }
        assert!(peers.tracked() <= MAX_IDLE_PEERS, "{}", peers.tracked());
    }
}
