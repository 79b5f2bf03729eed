//! Accounting per client address: the one place that knows what each client holds and spends.
//!
//! An address, here, is a client's network as [`AddressKey`] names it: an IPv4 address, or the IPv6
//! network of `--ipv6-prefix` bits (a /64 by default) around an IPv6 address, since one
//! IPv6 host is normally handed a whole /64 and can pick any address in it (RFC 4291 §2.5.1
//! fixes interface identifiers at 64 bits; RFC 8981 has a host change its address often).
//! Keyed by address, such a host would have 2^64 budgets. Every method here takes a plain
//! address and keys it itself, so no budget can be charged to the wrong key. (The whole
//! 127.0.0.0/8 is loopback, so tests play several addresses.)
//!
//! - **Connections.** The listener asks [`Addresses::connect`] for every accepted TCP connection:
//!   an address may hold at most `--max-connections-per-peer` at once, so one client cannot take
//!   the whole `--max-connections` from everyone else. The [`AddressConn`] guard gives the slot
//!   back when the connection closes.
//! - **Requests in flight.** Every request takes one of its address's
//!   `--max-requests-per-peer` slots ([`Addresses::request`]) until its response body has been
//!   handed to the connection in full (or dropped): over HTTP/2 one connection carries many
//!   requests, so the connection cap alone would let an address hold 32 times as many, and every
//!   request may hold an answer the address has not read.
//! - **Budgets.** Actions that create state (a login, for one) are charged to the address with
//!   [`Addresses::spend`]: a token bucket per address and [`Budget`], refilled over time.
//!
//! Bounded by construction: an entry exists while its address holds a connection or a request,
//! or for as long as one of its buckets is still refilling; past [`MAX_IDLE_ADDRESSES`] entries
//! without either, the idle ones are forgotten (which can only make a budget more generous,
//! never hold memory).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Entries kept for addresses that hold no connection (their budgets still refilling).
pub const MAX_IDLE_ADDRESSES: usize = 10_000;

/// The IPv6 prefix an address is keyed by when none is given: the /64 a host normally gets.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// Requests one address may have in flight at once when none is given: a browser's pages with
/// every transport open (the compare page holds eleven subscriptions) many times over.
pub const DEFAULT_MAX_REQUESTS_PER_PEER: u64 = 128;

/// Who is charged: an IPv4 address (an IPv4-mapped IPv6 address counts as the IPv4 address it
/// is), or an IPv6 address with every bit past the prefix cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey {
    network: IpAddr,
    /// The IPv6 prefix length; 32 for an IPv4 address.
    prefix: u8,
}

impl AddressKey {
    /// `ip`'s key when IPv6 addresses are keyed by `ipv6_prefix` bits (clamped to 0–128).
    pub fn of(ip: IpAddr, ipv6_prefix: u8) -> AddressKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => AddressKey {
                network: IpAddr::V4(v4),
                prefix: 32,
            },
            IpAddr::V6(v6) => {
                let prefix = ipv6_prefix.min(128);
                let mask = if prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(prefix))
                };
                AddressKey {
                    network: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)),
                    prefix,
                }
            }
        }
    }
}

/// `192.0.2.7`, or `2001:db8:1:2::/64` (a whole IPv6 address is written without a prefix).
/// What the cluster's Redis buckets are named by, so every node keys a client alike.
impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.network {
            IpAddr::V6(_) if self.prefix < 128 => write!(f, "{}/{}", self.network, self.prefix),
            network => write!(f, "{network}"),
        }
    }
}

/// The per-address bounds and budgets, from the flags.
#[derive(Debug, Clone, Copy)]
pub struct AddressLimits {
    /// `--max-connections-per-peer`.
    pub connections: u64,
    /// `--max-requests-per-peer`.
    pub requests: u64,
    /// `--ipv6-prefix`.
    pub ipv6_prefix: u8,
    /// `--login-rate` per minute.
    pub login: Rate,
    /// `--draw-rate` per second.
    pub draw: Rate,
}

/// What an address can spend, each with its own bucket.
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

/// What one address holds and spends: the map's entry for its key.
struct Entry {
    /// TCP connections held.
    open: u64,
    /// Requests in flight.
    requests: u64,
    buckets: [Bucket; BUDGETS],
}

impl Entry {
    fn holds_nothing(&self) -> bool {
        self.open == 0 && self.requests == 0
    }
}

/// Why [`Addresses::connect`] or [`Addresses::request`] refused: the address holds `max` already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressFull {
    pub max: u64,
}

pub struct Addresses {
    map: Mutex<HashMap<AddressKey, Entry>>,
    max_connections: u64,
    max_requests: u64,
    ipv6_prefix: u8,
    rates: [Rate; BUDGETS],
}

impl Addresses {
    pub fn new(limits: AddressLimits) -> Arc<Addresses> {
        Arc::new(Addresses {
            map: Mutex::new(HashMap::new()),
            max_connections: limits.connections.max(1),
            max_requests: limits.requests.max(1),
            ipv6_prefix: limits.ipv6_prefix.min(128),
            rates: [limits.login, limits.draw],
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<AddressKey, Entry>> {
        // Every update is a single field write; a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key `ip` is charged under (its IPv6 network, or the IPv4 address).
    pub fn key(&self, ip: IpAddr) -> AddressKey {
        AddressKey::of(ip, self.ipv6_prefix)
    }

    fn entry<'a>(&self, map: &'a mut HashMap<AddressKey, Entry>, key: AddressKey) -> &'a mut Entry {
        if !map.contains_key(&key) {
            self.forget_idle(map);
        }
        map.entry(key).or_insert_with(|| Entry {
            open: 0,
            requests: 0,
            buckets: self.rates.map(Bucket::full),
        })
    }

    /// Keeps the entries of addresses without a connection under [`MAX_IDLE_ADDRESSES`]: first those
    /// whose buckets are full again (nothing to remember), then any idle ones. Each pass is
    /// O(n) and frees at least half the idle room, so the cost per new address stays constant.
    fn forget_idle(&self, map: &mut HashMap<AddressKey, Entry>) {
        let idle = map.values().filter(|p| p.holds_nothing()).count();
        if idle < MAX_IDLE_ADDRESSES {
            return;
        }
        let now = Instant::now();
        map.retain(|_, p| {
            !p.holds_nothing()
                || !p
                    .buckets
                    .iter()
                    .zip(self.rates)
                    .all(|(b, rate)| b.is_full(rate, now))
        });
        let mut idle = map.values().filter(|p| p.holds_nothing()).count();
        if idle >= MAX_IDLE_ADDRESSES / 2 {
            map.retain(|_, p| {
                if p.holds_nothing() && idle > MAX_IDLE_ADDRESSES / 2 {
                    idle -= 1;
                    false
                } else {
                    true
                }
            });
        }
    }

    /// Takes one of `ip`'s connection slots, or refuses when its address holds its share already.
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Result<AddressConn, AddressFull> {
        let slot = self.take(ip, SlotKind::Connection)?;
        Ok(AddressConn { slot, ip })
    }

    /// Takes one of the request slots of `ip`'s address for a request in flight, or refuses when
    /// it has `--max-requests-per-peer` in flight already, over all its connections.
    pub fn request(self: &Arc<Self>, ip: IpAddr) -> Result<AddressRequest, AddressFull> {
        self.take(ip, SlotKind::Request).map(AddressRequest)
    }

    fn take(self: &Arc<Self>, ip: IpAddr, kind: SlotKind) -> Result<Slot, AddressFull> {
        let key = self.key(ip);
        let max = match kind {
            SlotKind::Connection => self.max_connections,
            SlotKind::Request => self.max_requests,
        };
        let mut map = self.lock();
        let held = kind.of(self.entry(&mut map, key));
        if *held >= max {
            return Err(AddressFull { max });
        }
        *held += 1;
        Ok(Slot {
            addresses: self.clone(),
            key,
            kind,
        })
    }

    /// Connections `ip`'s address holds now.
    pub fn open(&self, ip: IpAddr) -> u64 {
        self.lock().get(&self.key(ip)).map_or(0, |p| p.open)
    }

    /// Requests `ip`'s address has in flight now.
    pub fn in_flight(&self, ip: IpAddr) -> u64 {
        self.lock().get(&self.key(ip)).map_or(0, |p| p.requests)
    }

    /// Addresses with an entry now (connected, or with a budget still refilling).
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
        let key = self.key(ip);
        let mut map = self.lock();
        let bucket = &mut self.entry(&mut map, key).buckets[budget as usize];
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

#[derive(Debug, Clone, Copy)]
enum SlotKind {
    Connection,
    Request,
}

impl SlotKind {
    /// The count of this kind an address holds.
    fn of(self, entry: &mut Entry) -> &mut u64 {
        match self {
            SlotKind::Connection => &mut entry.open,
            SlotKind::Request => &mut entry.requests,
        }
    }
}

/// A slot an address holds; dropping it gives the slot back, and forgets the address when it then
/// holds nothing and its buckets are full.
struct Slot {
    addresses: Arc<Addresses>,
    key: AddressKey,
    kind: SlotKind,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.addresses.lock();
        if let Some(entry) = map.get_mut(&self.key) {
            let held = self.kind.of(entry);
            *held = held.saturating_sub(1);
            let now = Instant::now();
            let idle_and_full = entry.holds_nothing()
                && entry
                    .buckets
                    .iter()
                    .zip(self.addresses.rates)
                    .all(|(b, rate)| b.is_full(rate, now));
            if idle_and_full {
                map.remove(&self.key);
            }
        }
    }
}

/// One connection slot of an address; dropping it gives the slot back.
pub struct AddressConn {
    slot: Slot,
    ip: IpAddr,
}

impl AddressConn {
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The address it is charged to.
    pub fn key(&self) -> AddressKey {
        self.slot.key
    }
}

/// One request slot of an address, held until the response body is done; dropping it gives the
/// slot back.
pub struct AddressRequest(Slot);

impl AddressRequest {
    /// The address it is charged to.
    pub fn key(&self) -> AddressKey {
        self.0.key
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

    /// Two connections and two requests per address, IPv6 keyed by /64.
    fn limits() -> AddressLimits {
        AddressLimits {
            connections: 2,
            requests: 2,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            login: login(),
            draw: DEFAULT_DRAW_RATE,
        }
    }

    fn addresses() -> Arc<Addresses> {
        Addresses::new(limits())
    }

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_holds_at_most_its_share_and_others_are_unaffected() {
        let addresses = addresses();
        let a1 = addresses.connect(ip(1)).unwrap();
        let _a2 = addresses.connect(ip(1)).unwrap();
        assert_eq!(addresses.connect(ip(1)).err(), Some(AddressFull { max: 2 }));
        let _b = addresses.connect(ip(2)).unwrap();
        drop(a1);
        assert!(addresses.connect(ip(1)).is_ok());
    }

    #[test]
    fn a_closed_peer_with_full_buckets_leaves_no_entry() {
        let addresses = addresses();
        drop(addresses.connect(ip(1)).unwrap());
        assert_eq!(addresses.tracked(), 0);
        let conn = addresses.connect(ip(1)).unwrap();
        addresses.spend(ip(1), Budget::Login).unwrap();
        drop(conn);
        assert_eq!(addresses.tracked(), 1, "the spent budget is remembered");
    }

    #[test]
    fn budgets_are_per_peer_and_say_how_long_to_wait() {
        let addresses = addresses();
        for _ in 0..3 {
            addresses.spend(ip(1), Budget::Login).unwrap();
        }
        let wait = addresses.spend(ip(1), Budget::Login).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(addresses.spend(ip(2), Budget::Login).is_ok());
    }

    #[test]
    fn idle_entries_are_bounded() {
        let addresses = addresses();
        for i in 0..(MAX_IDLE_ADDRESSES as u32 * 2) {
            let addr = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            let _ = addresses.spend(addr, Budget::Login);
        }
        assert!(
            addresses.tracked() <= MAX_IDLE_ADDRESSES,
            "{}",
            addresses.tracked()
        );
    }

    #[test]
    fn an_ipv6_peer_is_its_64_and_an_ipv4_mapped_address_is_ipv4() {
        let addresses = addresses();
        let _a = addresses.connect(v6("2001:db8:1:2::1")).unwrap();
        let _b = addresses
            .connect(v6("2001:db8:1:2:ffff:ffff:ffff:fffe"))
            .unwrap();
        assert_eq!(
            addresses.connect(v6("2001:db8:1:2:dead:beef::7")).err(),
            Some(AddressFull { max: 2 }),
            "a third address of the same /64 is the same peer"
        );
        assert!(
            addresses.connect(v6("2001:db8:1:3::1")).is_ok(),
            "the next /64 is another"
        );
        assert_eq!(
            addresses.key(v6("2001:db8:1:2:aaaa::9")).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            addresses.key(v6("::ffff:10.1.2.3")),
            addresses.key(IpAddr::from([10, 1, 2, 3]))
        );
    }

    #[test]
    fn the_prefix_is_configurable_down_to_one_address() {
        let addresses = Addresses::new(AddressLimits {
            ipv6_prefix: 128,
            ..limits()
        });
        let _a = addresses.connect(v6("2001:db8::1")).unwrap();
        let _b = addresses.connect(v6("2001:db8::1")).unwrap();
        assert!(addresses.connect(v6("2001:db8::2")).is_ok());
        assert_eq!(addresses.key(v6("2001:db8::2")).to_string(), "2001:db8::2");
        let wide = Addresses::new(AddressLimits {
            ipv6_prefix: 48,
            ..limits()
        });
        assert_eq!(
            wide.key(v6("2001:db8:7:ffff::1")),
            wide.key(v6("2001:db8:7::"))
        );
    }

    #[test]
    fn requests_in_flight_are_capped_per_peer_over_every_connection() {
        let addresses = addresses();
        let r1 = addresses.request(ip(1)).unwrap();
        let _r2 = addresses.request(ip(1)).unwrap();
        assert_eq!(addresses.request(ip(1)).err(), Some(AddressFull { max: 2 }));
        assert!(
            addresses.request(ip(2)).is_ok(),
            "another peer is still served"
        );
        assert_eq!(addresses.in_flight(ip(1)), 2);
        drop(r1);
        assert!(addresses.request(ip(1)).is_ok());
    }

    #[test]
    fn an_address_with_requests_but_no_connection_is_kept_until_they_end() {
        let addresses = addresses();
        let request = addresses.request(ip(1)).unwrap();
        drop(addresses.connect(ip(1)).unwrap());
        assert_eq!(addresses.tracked(), 1);
        drop(request);
        assert_eq!(addresses.tracked(), 0);
    }
}
