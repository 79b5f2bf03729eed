//! Who is online where. A user is online in a room while a push subscription (iframe, SSE,
//! WebSocket) of theirs to it is open, or a poll of it arrived within the last
//! [`POLL_PRESENCE`]. `join` and `leave` are emitted on those transitions.
//!
//! Bounded by construction:
//!
//! - **No inbox to flood.** The state lives behind a `std::sync::Mutex` and every call
//!   (attach, detach, poll, rename, end) updates it in place, in microseconds, without
//!   awaiting. Repeats merge by construction: a poll refresh of a (session, room) already
//!   online, or a second tab, only touches its slot and queues nothing. A detach (from a
//!   `Drop`, which cannot wait) is applied on the spot, so it can never be lost.
//! - **Transitions are queued in order** under the same lock, and one task writes them to the
//!   chat's durable log one by one, so events keep the order the transitions happened in. The
//!   queue is bounded: a join is only recorded while fewer than [`MAX_PENDING`] changes wait
//!   (past it the join is not recorded, see below); a leave is always queued, and there is at
//!   most one per recorded join, so leaves are bounded by the joins.
//! - **Per session:** present in at most [`MAX_ROOMS_PER_SESSION`] rooms at once, and at most
//!   [`JOIN_BUDGET`] joins per [`JOIN_WINDOW`] (a token bucket). A join past either bound is
//!   not recorded: the subscription is still served the rooms it asked for, but the session
//!   is not listed there and no `join` (hence no `leave`) is written. That bounds the rows one
//!   session can write to 2 × [`JOIN_BUDGET`] per window.
//! - **Reads are snapshots of an index.** `rooms` and `users` read a room → sessions index
//!   under the lock: their cost is the size of their answer, never the length of a queue.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{ChatError, Log};

/// How long a poll keeps its user online in the rooms it asked for.
pub const POLL_PRESENCE: Duration = Duration::from_secs(30);
/// Rooms one session may be present in at once (a subscription asks for at most 16).
pub const MAX_ROOMS_PER_SESSION: usize = 32;
/// Joins one session may make per [`JOIN_WINDOW`]: a burst of this many, then one every
/// `JOIN_WINDOW / JOIN_BUDGET`. A page load joins a room or two; this is generous for
/// people and a hard ceiling for scripts.
pub const JOIN_BUDGET: u32 = 64;
pub const JOIN_WINDOW: Duration = Duration::from_secs(60);
/// Presence changes waiting to be written, all sessions together; past it joins are not
/// recorded until the writer catches up.
pub const MAX_PENDING: usize = 16 * 1024;

/// A cheap handle on the presence state and its writer task.
#[derive(Clone)]
pub struct Presence {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer when a change is queued (a stored permit: no wake-up is lost).
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every operation leaves the state consistent before it can panic (it does not
        // panic on client input), so a poisoned lock still guards good data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state and wakes the writer if it queued anything.
    fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.lock();
        let before = state.pending.len();
        let out = f(&mut state);
        let queued = state.pending.len() > before;
        drop(state);
        if queued {
            self.wake.notify_one();
        }
        out
    }
}

/// Holds a push subscription's presence; dropping it detaches (applied at once).
pub struct Attached {
    shared: Arc<Shared>,
    session: u64,
    /// Only the rooms this subscription was admitted to: detaching others would take a
    /// slot away from another tab of the same session.
    rooms: Vec<Arc<str>>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        let rooms = std::mem::take(&mut self.rooms);
        self.shared
            .change(|state| state.detach(self.session, &rooms, Instant::now()));
    }
}

#[derive(Default)]
struct Slot {
    pushes: u32,
    polled_at: Option<Instant>,
}

impl Slot {
    fn online(&self, now: Instant) -> bool {
        self.pushes > 0
            || self
                .polled_at
                .is_some_and(|t| now.duration_since(t) < POLL_PRESENCE)
    }
}

/// A session as presence knows it.
struct Member {
    nick: String,
    /// Rooms it is present in (at most [`MAX_ROOMS_PER_SESSION`]).
    rooms: BTreeSet<Arc<str>>,
    /// The join budget, as a token bucket.
    tokens: f64,
    at: Instant,
}

impl Member {
    fn new(nick: &str, now: Instant) -> Member {
        Member {
            nick: nick.to_string(),
            rooms: BTreeSet::new(),
            tokens: JOIN_BUDGET as f64,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let per_token = JOIN_WINDOW.as_secs_f64() / JOIN_BUDGET as f64;
        let gained = now.duration_since(self.at).as_secs_f64() / per_token;
        self.tokens = (self.tokens + gained).min(JOIN_BUDGET as f64);
        self.at = now;
    }
}

/// One transition of this node's presence, for the engine to record: `session`, called
/// `nick`, is now online in `room` through this node (`joined`), or no longer.
#[derive(Debug, PartialEq)]
pub struct Change {
    pub joined: bool,
    pub room: Arc<str>,
    pub nick: String,
    pub session: u64,
}

#[derive(Default)]
struct State {
    /// (session, room) → what keeps it online.
    slots: HashMap<(u64, Arc<str>), Slot>,
    members: HashMap<u64, Member>,
    /// room → sessions online in it: what `rooms` and `users` read.
    index: HashMap<Arc<str>, BTreeSet<u64>>,
    /// Transitions not yet written, oldest first.
    pending: VecDeque<Change>,
}

impl Presence {
    /// Starts the presence writer; it stops at `shutdown`.
    pub fn start(
        log: Log,
        shutdown: CancellationToken,
        tracker: &tokio_util::task::TaskTracker,
    ) -> Presence {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        });
        tracker.spawn(run(log, shared.clone(), shutdown));
        Presence { shared }
    }

    /// A push subscription of `session` to `rooms` opened; it stays online there until the
    /// returned guard drops. Rooms past the session's bounds are served but not joined.
    pub fn attach(&self, session: u64, nick: &str, rooms: &[Arc<str>]) -> Attached {
        let admitted = self
            .shared
            .change(|state| state.attach(session, nick, rooms, Instant::now()));
        Attached {
            shared: self.shared.clone(),
            session,
            rooms: admitted,
        }
    }

    /// A poll of `session` for `rooms` arrived: online there for [`POLL_PRESENCE`].
    pub fn polled(&self, session: u64, nick: &str, rooms: &[Arc<str>]) {
        self.shared
            .change(|state| state.polled(session, nick, rooms, Instant::now()));
    }

    pub fn renamed(&self, session: u64, nick: &str) {
        if let Some(member) = self.shared.lock().members.get_mut(&session) {
            member.nick = nick.to_string();
        }
    }

    /// The session ended: it leaves every room it was in.
    pub fn ended(&self, session: u64) {
        self.shared.change(|state| state.end(session));
    }

    /// Rooms with people online through this node, with their counts.
    pub fn rooms(&self) -> Vec<(String, usize)> {
        let state = self.shared.lock();
        state
            .index
            .iter()
            .map(|(room, sessions)| (room.to_string(), sessions.len()))
            .collect()
    }

    /// Nicks online in `room` through this node, in no order.
    pub fn users(&self, room: &str) -> Vec<String> {
        let state = self.shared.lock();
        state
            .index
            .get(room)
            .into_iter()
            .flatten()
            .filter_map(|s| state.members.get(s).map(|m| m.nick.clone()))
            .collect()
    }

    /// Queues a `join` for every (session, room) online through this node: for an engine
    /// that lost this node's presence (taken for dead, or restarted) to be told it again.
    pub fn restate(&self) {
        self.shared.change(|state| {
            let mut again: Vec<Change> = Vec::new();
            for (room, sessions) in &state.index {
                for session in sessions {
                    if let Some(member) = state.members.get(session) {
                        again.push(Change {
                            joined: true,
                            room: room.clone(),
                            nick: member.nick.clone(),
                            session: *session,
                        });
                    }
                }
            }
            state.pending.extend(again);
        });
    }
}

/// The writer: takes the queued transitions in order and has the engine record each (a
/// `join` or `leave` in the durable log when the room's presence changed); once a second,
/// expires poll presence.
async fn run(log: Log, shared: Arc<Shared>, shutdown: CancellationToken) {
    const SWEEP: Duration = Duration::from_secs(1);
    let mut next_sweep = tokio::time::Instant::now() + SWEEP;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        // Sweep on schedule even while changes keep coming.
        if tokio::time::Instant::now() >= next_sweep {
            shared.change(|state| state.sweep(Instant::now()));
            next_sweep = tokio::time::Instant::now() + SWEEP;
        }
        let next = shared.lock().pending.pop_front();
        let Some(change) = next else {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = shared.wake.notified() => {}
                () = tokio::time::sleep_until(next_sweep) => {}
            }
            continue;
        };
        match log.record(&change).await {
            Ok(()) => {}
            Err(ChatError::Unavailable { .. }) => {
                // The engine is away: keep the change first in line and try again, so no
                // transition is lost or reordered (joins past MAX_PENDING are refused
                // meanwhile, as when the writer is slow).
                tracing::warn!("could not record a presence change; retrying");
                shared.lock().pending.push_front(change);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            Err(err) => tracing::error!(%err, "could not record a presence change"),
        }
    }
}

impl State {
    fn member(&mut self, session: u64, nick: &str, now: Instant) -> &mut Member {
        let member = self
            .members
            .entry(session)
            .or_insert_with(|| Member::new(nick, now));
        if member.nick != nick {
            member.nick = nick.to_string();
        }
        member
    }

    /// Makes `session` present in `room` if its bounds allow: queues the `join`.
    fn admit(&mut self, session: u64, nick: &str, room: &Arc<str>, now: Instant) -> bool {
        let queue_full = self.pending.len() >= MAX_PENDING;
        let member = self.member(session, nick, now);
        member.refill(now);
        if queue_full || member.rooms.len() >= MAX_ROOMS_PER_SESSION || member.tokens < 1.0 {
            return false;
        }
        member.tokens -= 1.0;
        member.rooms.insert(room.clone());
        let nick = member.nick.clone();
        self.index.entry(room.clone()).or_default().insert(session);
        self.pending.push_back(Change {
            joined: true,
            room: room.clone(),
            nick,
            session,
        });
        true
    }

    /// Takes `session` out of `room`: queues the `leave`.
    fn remove(&mut self, session: u64, room: &Arc<str>) {
        self.slots.remove(&(session, room.clone()));
        if let Some(sessions) = self.index.get_mut(room) {
            sessions.remove(&session);
            if sessions.is_empty() {
                self.index.remove(room);
            }
        }
        let nick = match self.members.get_mut(&session) {
            Some(member) => {
                member.rooms.remove(room);
                member.nick.clone()
            }
            None => String::new(),
        };
        self.pending.push_back(Change {
            joined: false,
            room: room.clone(),
            nick,
            session,
        });
    }

    /// Returns the rooms admitted (already online, or newly joined).
    fn attach(
        &mut self,
        session: u64,
        nick: &str,
        rooms: &[Arc<str>],
        now: Instant,
    ) -> Vec<Arc<str>> {
        let mut admitted = Vec::with_capacity(rooms.len());
        for room in rooms {
            let key = (session, room.clone());
            if let Some(slot) = self.slots.get_mut(&key) {
                slot.pushes += 1;
            } else if self.admit(session, nick, room, now) {
                self.slots.insert(
                    key,
                    Slot {
                        pushes: 1,
                        polled_at: None,
                    },
                );
            } else {
                continue;
            }
            admitted.push(room.clone());
        }
        admitted
    }

    fn polled(&mut self, session: u64, nick: &str, rooms: &[Arc<str>], now: Instant) {
        for room in rooms {
            let key = (session, room.clone());
            if let Some(slot) = self.slots.get_mut(&key) {
                // Already online: a refresh, nothing to tell anyone.
                slot.polled_at = Some(now);
            } else if self.admit(session, nick, room, now) {
                self.slots.insert(
                    key,
                    Slot {
                        pushes: 0,
                        polled_at: Some(now),
                    },
                );
            }
        }
    }

    fn detach(&mut self, session: u64, rooms: &[Arc<str>], now: Instant) {
        for room in rooms {
            let Some(slot) = self.slots.get_mut(&(session, room.clone())) else {
                continue;
            };
            slot.pushes = slot.pushes.saturating_sub(1);
            if !slot.online(now) {
                self.remove(session, room);
            }
        }
    }

    fn end(&mut self, session: u64) {
        let rooms: Vec<Arc<str>> = self
            .members
            .get(&session)
            .map(|m| m.rooms.iter().cloned().collect())
            .unwrap_or_default();
        for room in &rooms {
            self.remove(session, room);
        }
        self.members.remove(&session);
    }

    /// Poll presence that ran out leaves; members with nothing to remember are forgotten.
    fn sweep(&mut self, now: Instant) {
        let mut expired: Vec<(u64, Arc<str>)> = self
            .slots
            .iter()
            .filter(|(_, slot)| !slot.online(now))
            .map(|(k, _)| k.clone())
            .collect();
        expired.sort();
        for (session, room) in expired {
            self.remove(session, &room);
        }
        self.members.retain(|_, m| {
            m.refill(now);
            !m.rooms.is_empty() || m.tokens < JOIN_BUDGET as f64
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    fn drain(s: &mut State) -> Vec<(bool, String, String)> {
        s.pending
            .drain(..)
            .map(|c| (c.joined, c.room.to_string(), c.nick))
            .collect()
    }

    #[test]
    fn joins_once_and_leaves_when_the_last_push_subscription_closes() {
        let mut s = State::default();
        let now = Instant::now();
        let lr = rooms(&["lobby", "red"]);
        assert_eq!(s.attach(1, "al", &lr, now).len(), 2);
        assert_eq!(drain(&mut s).len(), 2);
        assert_eq!(s.attach(1, "al", &lr, now).len(), 2);
        assert!(drain(&mut s).is_empty(), "a second tab does not join again");
        s.detach(1, &lr, now);
        assert!(drain(&mut s).is_empty());
        s.detach(1, &lr, now);
        let left = drain(&mut s);
        assert_eq!(left.len(), 2);
        assert!(left.iter().all(|(joined, _, nick)| !joined && nick == "al"));
        assert!(s.index.is_empty() && s.slots.is_empty());
    }

    #[test]
    fn a_poll_keeps_its_user_online_and_ending_the_session_leaves_everywhere() {
        let mut s = State::default();
        let now = Instant::now();
        s.polled(2, "bo", &rooms(&["lobby"]), now);
        assert_eq!(drain(&mut s), vec![(true, "lobby".into(), "bo".into())]);
        s.polled(2, "bo", &rooms(&["lobby"]), now);
        s.sweep(now);
        assert!(drain(&mut s).is_empty(), "a fresh poll keeps bo online");
        s.end(2);
        assert_eq!(drain(&mut s), vec![(false, "lobby".into(), "bo".into())]);
        s.polled(3, "cy", &rooms(&["lobby"]), now);
        s.sweep(now + POLL_PRESENCE);
        assert_eq!(
            drain(&mut s).last(),
            Some(&(false, "lobby".into(), "cy".into()))
        );
    }

    #[test]
    fn a_session_is_present_in_at_most_32_rooms_and_joins_are_budgeted() {
        let mut s = State::default();
        let now = Instant::now();
        for batch in 0..10 {
            let names: Vec<String> = (0..16).map(|i| format!("r{batch}-{i}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            s.polled(7, "flood", &rooms(&names), now);
        }
        assert_eq!(s.members[&7].rooms.len(), MAX_ROOMS_PER_SESSION);
        assert_eq!(drain(&mut s).len(), MAX_ROOMS_PER_SESSION);
        // Push subscriptions that open and close keep joining and leaving until the budget
        // is spent; then nothing more is recorded.
        s.end(7);
        drain(&mut s);
        let mut written = 0;
        for i in 0..1000 {
            let room = rooms(&[&format!("p{i}")]);
            let admitted = s.attach(8, "churn", &room, now);
            s.detach(8, &admitted, now);
            written += drain(&mut s).len();
        }
        assert_eq!(written, 2 * JOIN_BUDGET as usize);
        // The budget refills with time.
        assert_eq!(
            s.attach(8, "churn", &rooms(&["later"]), now + JOIN_WINDOW)
                .len(),
            1
        );
    }

    #[test]
    fn the_queue_is_bounded_and_leaves_are_never_dropped() {
        let mut s = State::default();
        let now = Instant::now();
        let mut admitted = Vec::new();
        for session in 0..(MAX_PENDING as u64 / 16 + 10) {
            let names: Vec<String> = (0..16).map(|i| format!("q{i}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            admitted.push((session, s.attach(session, "x", &rooms(&names), now)));
        }
        assert_eq!(s.pending.len(), MAX_PENDING);
        for (session, rooms) in &admitted {
            s.detach(*session, rooms, now);
        }
        let leaves = s.pending.iter().filter(|c| !c.joined).count();
        assert_eq!(leaves, MAX_PENDING, "one leave per recorded join");
        assert!(s.index.is_empty());
    }
}
