//! WebTransport's session tickets: a browser sends no cookies with a WebTransport session, so
//! a page that wants its chat session on one first asks `POST /api/webtransport/ticket` (a
//! cookie-authenticated, origin-checked request) for a ticket and puts it in the session's URL
//! (`?ticket=`). A ticket names one chat session, is redeemed at most once, and expires
//! after `--webtransport-ticket-ttl`.
//!
//! Bounded: [`PER_OWNER`] unredeemed tickets per chat session (a new one drops that session's
//! oldest, so a page reconnecting in a loop never locks itself out) and [`MAX_TICKETS`] in
//! all (past it, after the expired ones are swept, a request is refused until some expire).
//! A ticket is 128 random bits in base64url; only this node knows it (a cluster's nodes each
//! keep their own: the page opens the session at the node that issued the ticket, which is
//! the node it asked, since WebTransport goes straight to a node, never through a proxy).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// `--webtransport-ticket-ttl`'s default: a page asks for its ticket just before it opens the
/// session, so a few seconds would do; 30 s leaves room for a slow QUIC handshake.
pub const DEFAULT_TTL: &str = "30s";

/// Unredeemed tickets one chat session may hold.
pub const PER_OWNER: usize = 4;

/// Unredeemed tickets in all.
pub const MAX_TICKETS: usize = 10_000;

/// The random bytes of a ticket (128 bits).
const TICKET_BYTES: usize = 16;

/// The longest string that can be a ticket (base64url of [`TICKET_BYTES`], unpadded).
pub const TICKET_LEN: usize = 22;

/// The live tickets of this node.
pub struct Tickets {
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_ticket: HashMap<String, Entry>,
    /// Tickets in the order they were issued, for the sweep (a redeemed or replaced one stays
    /// here until its turn and is skipped then).
    order: VecDeque<(Instant, String)>,
}

struct Entry {
    owner: u64,
    expires: Instant,
}

/// Why no ticket was issued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// [`MAX_TICKETS`] are live: retry after this long, when the oldest expires.
    Full(Duration),
    /// The system gave no randomness.
    NoRandomness,
}

impl Tickets {
    pub fn new(ttl: Duration) -> Tickets {
        Tickets {
            ttl,
            inner: Mutex::default(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new ticket for chat session `owner`.
    pub fn issue(&self, owner: u64) -> Result<String, Refused> {
        let mut bytes = [0u8; TICKET_BYTES];
        getrandom::fill(&mut bytes).map_err(|_| Refused::NoRandomness)?;
        let ticket = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut inner = self.lock();
        inner.sweep(now);
        let mine: Vec<(Instant, String)> = inner
            .by_ticket
            .iter()
            .filter(|(_, e)| e.owner == owner)
            .map(|(t, e)| (e.expires, t.clone()))
            .collect();
        if mine.len() >= PER_OWNER
            && let Some((_, oldest)) = mine.iter().min_by_key(|(expires, _)| *expires)
        {
            inner.by_ticket.remove(oldest);
        }
        if inner.by_ticket.len() >= MAX_TICKETS {
            let wait = inner.order.front().map_or(self.ttl, |(expires, _)| {
                expires.saturating_duration_since(now)
            });
            return Err(Refused::Full(wait));
        }
        let expires = now + self.ttl;
        inner
            .by_ticket
            .insert(ticket.clone(), Entry { owner, expires });
        inner.order.push_back((expires, ticket.clone()));
        // Replaced and redeemed tickets stay queued until their expiry; a session asking
        // again and again would grow the queue, so past twice the total it keeps the live ones.
        if inner.order.len() > 2 * MAX_TICKETS {
            let Inner { by_ticket, order } = &mut *inner;
            order.retain(|(_, t)| by_ticket.contains_key(t));
        }
        Ok(ticket)
    }

    /// The chat session `ticket` names, once: it is forgotten here. `None` for a ticket
    /// never issued, already redeemed, replaced or expired.
    pub fn redeem(&self, ticket: &str) -> Option<u64> {
        if ticket.len() != TICKET_LEN {
            return None;
        }
        let now = Instant::now();
        let entry = self.lock().by_ticket.remove(ticket)?;
        (entry.expires > now).then_some(entry.owner)
    }

    /// Unredeemed tickets held now (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.lock().by_ticket.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn sweep(&mut self, now: Instant) {
        while let Some((expires, _)) = self.order.front() {
            if *expires > now {
                break;
            }
            if let Some((_, ticket)) = self.order.pop_front()
                && self
                    .by_ticket
                    .get(&ticket)
                    .is_some_and(|e| e.expires <= now)
            {
                self.by_ticket.remove(&ticket);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_redeemed_once_for_its_owner() {
        let tickets = Tickets::new(Duration::from_secs(30));
        let t = tickets.issue(7).unwrap();
        assert_eq!(t.len(), TICKET_LEN);
        assert_eq!(tickets.redeem(&t), Some(7));
        assert_eq!(tickets.redeem(&t), None, "single use");
        assert_eq!(tickets.redeem("not-a-ticket"), None);
    }

    #[test]
    fn an_expired_ticket_is_refused_and_swept() {
        let tickets = Tickets::new(Duration::from_millis(20));
        let t = tickets.issue(1).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(tickets.redeem(&t), None);
        let _ = tickets.issue(1).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        let _ = tickets.issue(2).unwrap();
        assert_eq!(tickets.len(), 1, "the expired one swept");
    }

    #[test]
    fn an_owner_holds_at_most_per_owner_and_its_oldest_goes_first() {
        let tickets = Tickets::new(Duration::from_secs(30));
        let first = tickets.issue(1).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let rest: Vec<String> = (0..PER_OWNER).map(|_| tickets.issue(1).unwrap()).collect();
        assert_eq!(tickets.len(), PER_OWNER);
        assert_eq!(tickets.redeem(&first), None, "the oldest was dropped");
        assert_eq!(tickets.redeem(&rest[PER_OWNER - 1]), Some(1));
    }

    #[test]
    fn past_the_total_a_ticket_is_refused_until_some_expire() {
        let tickets = Tickets::new(Duration::from_secs(30));
        for owner in 0..MAX_TICKETS as u64 {
            tickets.issue(owner).unwrap();
        }
        assert!(matches!(tickets.issue(u64::MAX), Err(Refused::Full(_))));
        assert_eq!(tickets.len(), MAX_TICKETS);
    }
}
