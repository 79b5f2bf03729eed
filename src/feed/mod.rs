//! The log: a feed is an append-only sequence of events with increasing ids, kept recent in
//! memory and fanned out live to subscribers. Every transport is a view of one question,
//! "which events come after cursor X?", so this module is the whole delivery core and the
//! transports are thin adapters over [`Feed::subscribe`] and [`Subscription`].
//!
//! Fan-out uses one `tokio::sync::broadcast` channel per feed: a single bounded ring shared by
//! all subscribers, so a slow subscriber costs no memory of its own and never slows the
//! publisher or the others. A subscriber that falls further behind than the ring is told so
//! (`Lagged`) and resyncs from its cursor out of the feed's replay window; see
//! [`Subscription::next`].
//!
//! Replay is cursor-driven and paged: a subscription holds only its position and at most one
//! page of events ([`Limits::page`]); when that page is delivered it reads the next one, from
//! memory if the window still has it, else from the store. So what a subscriber holds does not
//! depend on how old its cursor is, and a subscriber that does not read stops reading too.

pub mod backlog;
pub mod clock;
pub mod draw;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::CancellationToken;

pub use backlog::{Backlog, BacklogError, PageLimit};
// The events a feed carries are defined in the leaf `event` module; re-exported here because
// the load tester and the tests name them as `pushpoll::feed::WireEvent` and friends.
pub use crate::event::{Audience, Event, EventBody, SharedEvent, WireEvent};
use crate::names::FeedName;

/// How a feed treats the events a client has not seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Only the latest event matters (the clock): a stale cursor gets the latest event only,
    /// and a push subscription without a cursor starts at the next one.
    Latest,
    /// Every event matters (the chat): a cursor gets everything after it, from memory or
    /// the store, or a `gap` event saying where delivery resumes.
    All,
}

/// What a request without a cursor wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Short polling: what is there now (the clock's latest tick; the chat's history).
    Now,
    /// Push and long polling: the next event (the chat still sends its history first).
    Next,
}

/// Which events of a feed a subscription receives.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Rooms subscribed to; `None` means every room-less event only (the clock).
    pub rooms: Vec<Arc<str>>,
    /// The subscriber's session, for whispers.
    pub session: Option<u64>,
}

impl Filter {
    pub fn wants(&self, event: &Event) -> bool {
        match &event.audience {
            Audience::Everyone => true,
            Audience::Room(room) => self.rooms.iter().any(|r| r == room),
            Audience::Sessions(a, b) => self.session.is_some_and(|s| s == *a || s == *b),
        }
    }
}

/// How far behind the newest event a replay reaches by default; beyond it a `gap` says so.
pub const MAX_BACKFILL: u64 = 10_000;

/// What one replay read holds by default: a subscriber's backlog is at most this (plus one
/// event past the byte cap), whatever its cursor.
pub const PAGE: PageLimit = PageLimit {
    events: 128,
    bytes: 256 * 1024,
};

/// How much of a feed is kept in memory and how subscribers catch up with the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Recent events kept in memory (shared by all subscribers).
    pub window: usize,
    /// How many events the live ring holds: how far a subscriber may fall behind before it
    /// resyncs from its cursor.
    pub lag: usize,
    /// One read of a replay, from memory or the store: a subscriber's backlog.
    pub page: PageLimit,
    /// The furthest behind the newest event a replay reaches. Paging already bounds memory;
    /// this bounds the work (store reads, bytes sent) one old cursor can demand, and older
    /// messages stay reachable through `GET /api/chat/history`.
    pub max_backfill: u64,
}

impl Limits {
    /// `window` and `lag` as given, the default page and backfill.
    pub const fn new(window: usize, lag: usize) -> Limits {
        Limits {
            window,
            lag,
            page: PAGE,
            max_backfill: MAX_BACKFILL,
        }
    }
}

/// A cheap-to-clone handle on one feed.
#[derive(Clone)]
pub struct Feed {
    inner: Arc<Inner>,
}

struct Inner {
    name: FeedName,
    retention: Retention,
    /// Recent events, oldest first. A std mutex: it is held only to copy a few `Arc`s or to
    /// append one, never across an `.await`.
    window: Mutex<Window>,
    live: broadcast::Sender<SharedEvent>,
    /// Where events older than the window are kept (the chat), if anywhere.
    store: Option<Arc<dyn Backlog>>,
    page: PageLimit,
    max_backfill: u64,
}

struct Window {
    events: VecDeque<SharedEvent>,
    capacity: usize,
    /// The newest id published, also across restarts (from the store).
    last_id: u64,
}

/// Why an event was refused by [`Feed::publish`].
#[derive(Debug, thiserror::Error)]
#[error("event id {id} is not above the feed's last id {last}")]
pub struct OutOfOrder {
    pub id: u64,
    pub last: u64,
}

impl Feed {
    /// A feed keeping `limits.window` recent events in memory, the rest (if any) in `store`.
    pub fn new(
        name: FeedName,
        retention: Retention,
        limits: Limits,
        store: Option<Arc<dyn Backlog>>,
    ) -> Feed {
        let window = limits.window;
        let (live, _) = broadcast::channel(limits.lag.max(1));
        let last_id = store.as_ref().map_or(0, |s| s.last_id());
        Feed {
            inner: Arc::new(Inner {
                name,
                retention,
                window: Mutex::new(Window {
                    events: VecDeque::with_capacity(window.max(1)),
                    capacity: window.max(1),
                    last_id,
                }),
                live,
                store,
                page: PageLimit {
                    events: limits.page.events.max(1),
                    bytes: limits.page.bytes.max(1),
                },
                max_backfill: limits.max_backfill.max(1),
            }),
        }
    }

    pub fn name(&self) -> FeedName {
        self.inner.name
    }

    pub fn backlog(&self) -> Option<&Arc<dyn Backlog>> {
        self.inner.store.as_ref()
    }

    fn window(&self) -> MutexGuard<'_, Window> {
        // A panic while holding this lock cannot leave the window half-updated (push and pop
        // are single operations), so a poisoned lock is still safe to use.
        self.inner.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an event and hands it to every live subscriber.
    pub fn publish(&self, event: SharedEvent) -> Result<(), OutOfOrder> {
        let mut window = self.window();
        if event.id <= window.last_id {
            return Err(OutOfOrder {
                id: event.id,
                last: window.last_id,
            });
        }
        if window.events.len() == window.capacity {
            window.events.pop_front();
        }
        window.last_id = event.id;
        window.events.push_back(event.clone());
        // Sent while the window is locked, so that a subscriber registering under the same
        // lock sees every event either in its replay or on its receiver, never neither.
        // An error only means nobody is listening right now.
        let _ = self.inner.live.send(event);
        Ok(())
    }

    /// The id of the newest event, if there is one.
    pub fn latest_id(&self) -> Option<u64> {
        let window = self.window();
        (window.last_id > 0).then_some(window.last_id)
    }

    /// Opens a subscription: first what the feed holds after `cursor` (or, without one, what
    /// `start` and `history` ask for), then live events that pass `filter`, until `shutdown`.
    pub fn subscribe(
        &self,
        cursor: Option<u64>,
        start: Start,
        history: usize,
        filter: Filter,
        shutdown: CancellationToken,
    ) -> Subscription {
        let window = self.window();
        let rx = self.inner.live.subscribe();
        let last_id = window.last_id;
        let mut sub = Subscription {
            feed: self.clone(),
            rx,
            backlog: VecDeque::new(),
            history: None,
            replaying: false,
            page: self.inner.page,
            position: last_id,
            filter,
            resyncs: 0,
            shutdown,
            session_end: None,
            kill: None,
            stop: None,
            ended: None,
            _guards: Vec::new(),
        };
        match (self.inner.retention, cursor) {
            (Retention::Latest, Some(after)) => {
                sub.position = after;
                sub.backlog = window
                    .events
                    .back()
                    .filter(|e| e.id > after)
                    .cloned()
                    .into_iter()
                    .collect();
            }
            (Retention::Latest, None) if start == Start::Now => {
                sub.backlog = window.events.back().cloned().into_iter().collect();
            }
            (Retention::Latest, None) => {}
            (Retention::All, Some(after)) if after > last_id => {
                // A cursor from the future (another database, or a typo): say so, and
                // continue from what exists.
                sub.backlog.push_back(gap(after, last_id + 1));
            }
            (Retention::All, Some(after)) => {
                // Nothing is copied now: the replay is read a page at a time as it drains.
                sub.position = after;
                sub.replaying = after < last_id;
            }
            (Retention::All, None) => {
                if history > 0 {
                    sub.history = Some(History {
                        limit: history,
                        upto: last_id,
                    });
                }
            }
        }
        drop(window);
        sub
    }
}

/// Waits for `token` to fire; forever without one.
/// The first of the three to fire, in this order when several have: shutdown, the session's
/// end, the kill switch.
fn stop_of(
    shutdown: CancellationToken,
    session_end: Option<CancellationToken>,
    kill: Option<CancellationToken>,
) -> Stop {
    Box::pin(async move {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => Ended::Shutdown,
            () = fired(session_end.as_ref()) => Ended::SessionEnded,
            () = fired(kill.as_ref()) => Ended::Killed,
        }
    })
}

async fn fired(token: Option<&CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

/// A `gap` event: delivery after `after` resumes at `resumed_from`. Public for a store that
/// knows it no longer holds what a cursor asks for (the Redis log, trimmed to its retention).
pub fn gap(after: u64, resumed_from: u64) -> SharedEvent {
    Event::new(&WireEvent {
        id: resumed_from.saturating_sub(1),
        ts: clock::now_micros(),
        body: EventBody::Gap {
            after,
            resumed_from,
        },
    })
}

/// The history a subscription without a cursor starts with: the last `limit` messages of
/// its rooms, up to `upto`. Bounded by the chat's `MAX_HISTORY`.
#[derive(Debug, Clone, Copy)]
struct History {
    limit: usize,
    upto: u64,
}

/// What a replay step found it has to do next.
enum Step {
    /// The backlog was refilled from memory, or the replay moved on or ended.
    Done,
    /// Events with `after < id < before` are only in the store: read a page of them.
    Store { after: u64, before: u64 },
}

/// Why a subscription stopped delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Shutdown,
    SessionEnded,
    /// The kill switch of [`Subscription::end_when_killed`] fired (`POST /api/debug/kill`).
    Killed,
}

/// The end signals of a subscription as one future (see `Subscription::stop`).
type Stop = std::pin::Pin<Box<dyn Future<Output = Ended> + Send + Sync>>;

/// One client's position in a feed. Every transport reads its events from here.
pub struct Subscription {
    feed: Feed,
    rx: broadcast::Receiver<SharedEvent>,
    /// Events to deliver before reading the live channel again (one page of a replay, or
    /// the history); they are already in id order and are not checked against `position`.
    /// At most one page: refilled only once it is empty.
    backlog: VecDeque<SharedEvent>,
    /// History still to be read from the store.
    history: Option<History>,
    /// True while events after `position` may exist that are neither in the backlog nor
    /// surely on the live receiver: the replay (or a resync) is not caught up yet.
    replaying: bool,
    /// How much one replay read takes (a short poll narrows it to its `limit`).
    page: PageLimit,
    /// The highest id delivered or passed over (the cursor it started from, at first).
    position: u64,
    filter: Filter,
    resyncs: u64,
    shutdown: CancellationToken,
    session_end: Option<CancellationToken>,
    kill: Option<CancellationToken>,
    /// Waits for the first of `shutdown`, `session_end` and `kill`. Kept from one wait for
    /// an event to the next, so that a delivery does not leave and rejoin each token's list
    /// of waiters (the shutdown token's is shared by every subscriber); made again when a
    /// token is added.
    stop: Option<Stop>,
    ended: Option<Ended>,
    /// Held for as long as the subscription lives (presence, for one).
    _guards: Vec<Box<dyn Send + Sync>>,
}

impl Subscription {
    /// The cursor a client should resume from.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// How many times this subscriber fell behind the live ring and was resynced.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Why [`Subscription::next`] returned `None`.
    pub fn ended(&self) -> Option<Ended> {
        self.ended
    }

    /// Also end when `token` fires (the session logged out or timed out).
    pub fn end_with_session(&mut self, token: CancellationToken) {
        self.session_end = Some(token);
        self.stop = None;
    }

    /// Also end, as [`Ended::Killed`], when `token` fires.
    pub fn end_when_killed(&mut self, token: CancellationToken) {
        self.kill = Some(token);
        self.stop = None;
    }

    /// Keeps `guard` alive as long as the subscription.
    pub fn hold(&mut self, guard: impl Send + Sync + 'static) {
        self._guards.push(Box::new(guard));
    }

    /// Reads at most `events` events and `bytes` bytes (plus one event) per replay read
    /// from now on (at least one event): a short poll that answers `limit` events, or one
    /// answer's bytes, reads no more than that.
    pub fn read_at_most(&mut self, events: usize, bytes: usize) {
        self.page.events = self.page.events.min(events.max(1));
        self.page.bytes = self.page.bytes.min(bytes.max(1));
    }

    /// The next event, waiting for it if needed. `None` once the server shuts down or the
    /// session ends.
    ///
    /// Lag policy: a subscriber more than the live ring behind is not dropped and not
    /// buffered without bound; it is resynced from its own cursor, a page at a time, out of
    /// the feed's window and store (for the clock, that means skipping to the latest tick).
    ///
    /// Cancel-safe: a replay read interrupted by the caller's `select!` changes nothing and
    /// is done again on the next call.
    pub async fn next(&mut self) -> Option<SharedEvent> {
        loop {
            if let Some(event) = self.take_backlog() {
                return Some(event);
            }
            if self.history.is_some() || self.replaying {
                // A long replay still stops at shutdown or when the session ends.
                if let Some(ended) = self.stopped() {
                    self.ended = Some(ended);
                    return None;
                }
                self.refill().await;
                continue;
            }
            let stop = match &mut self.stop {
                Some(stop) => stop,
                none => none.insert(stop_of(
                    self.shutdown.clone(),
                    self.session_end.clone(),
                    self.kill.clone(),
                )),
            };
            let received = tokio::select! {
                biased;
                ended = stop => Err(ended),
                received = self.rx.recv() => Ok(received),
            };
            let received = match received {
                Ok(received) => received,
                Err(ended) => {
                    // A finished future must not be polled again.
                    self.stop = None;
                    self.ended = Some(ended);
                    return None;
                }
            };
            match received {
                Ok(event) => {
                    if let Some(event) = self.accept_live(event) {
                        return Some(event);
                    }
                }
                Err(RecvError::Lagged(_)) => self.resync(),
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is already here, without waiting and without reading the
    /// store. Call [`Subscription::ready`] first so that one page of replay is loaded.
    pub fn try_next(&mut self) -> Option<SharedEvent> {
        loop {
            if let Some(event) = self.take_backlog() {
                return Some(event);
            }
            if self.history.is_some() {
                return None;
            }
            if self.replaying {
                match self.refill_from_memory() {
                    Step::Done => continue,
                    Step::Store { .. } => return None,
                }
            }
            match self.rx.try_recv() {
                Ok(event) => {
                    if let Some(event) = self.accept_live(event) {
                        return Some(event);
                    }
                }
                Err(TryRecvError::Lagged(_)) => self.resync(),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
    }

    /// Does the store work (one page of replay, or the history) this subscription needs
    /// before [`Subscription::try_next`] can deliver. A store error is logged and delivery
    /// goes on after a `gap`.
    pub async fn ready(&mut self) {
        if self.backlog.is_empty() && (self.history.is_some() || self.replaying) {
            self.refill().await;
        }
    }

    /// Which of the subscription's end signals has fired, if any.
    fn stopped(&self) -> Option<Ended> {
        if self.shutdown.is_cancelled() {
            Some(Ended::Shutdown)
        } else if self.session_end.as_ref().is_some_and(|t| t.is_cancelled()) {
            Some(Ended::SessionEnded)
        } else if self.kill.as_ref().is_some_and(|t| t.is_cancelled()) {
            Some(Ended::Killed)
        } else {
            None
        }
    }

    /// Refills the empty backlog: the history, or the next page of the replay.
    async fn refill(&mut self) {
        if let Some(history) = self.history {
            self.load_history(history).await;
            return;
        }
        if let Step::Store { after, before } = self.refill_from_memory() {
            self.load_page(after, before).await;
        }
    }

    async fn load_history(&mut self, history: History) {
        let Some(store) = self.feed.backlog().cloned() else {
            self.history = None;
            return;
        };
        let rooms: Vec<String> = self.filter.rooms.iter().map(|r| r.to_string()).collect();
        let loaded =
            tokio::task::spawn_blocking(move || store.recent(&rooms, history.upto, history.limit))
                .await;
        // Only now, so that a cancelled call leaves the history to load again.
        self.history = None;
        match loaded {
            Ok(Ok(events)) => self.backlog.extend(events),
            failed => {
                // History is a courtesy, not a replay: the client asked for no cursor, so
                // nothing it is owed is missing. Log it and go live.
                tracing::error!(?failed, "could not read the chat history");
            }
        }
    }

    /// Reads one page of events with `after < id < before` from the store into the backlog.
    async fn load_page(&mut self, after: u64, before: u64) {
        let loaded = match self.feed.backlog().cloned() {
            Some(store) => {
                let page = self.page;
                tokio::task::spawn_blocking(move || store.range(after, before, page))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
            }
            None => {
                // A feed without a store (the draw feed) keeps nothing older than its
                // window: that is a decision, not a failure, so no error is logged.
                self.backlog.push_back(gap(after, before));
                self.position = self.position.max(before - 1);
                return;
            }
        };
        match loaded {
            Ok(events) if !events.is_empty() => self.backlog.extend(events),
            // The store holds nothing more in the range: continue from memory.
            Ok(_) => self.position = self.position.max(before - 1),
            Err(err) => {
                tracing::error!(
                    %err,
                    after,
                    before,
                    "could not read the chat store; delivery resumes with a gap"
                );
                self.backlog.push_back(gap(after, before));
                self.position = self.position.max(before - 1);
            }
        }
    }

    /// One replay step that needs no store: a page copied from the window, a `gap` past
    /// the backfill bound, or the end of the replay. Otherwise says which range the store
    /// must be read for. Called only with an empty backlog.
    fn refill_from_memory(&mut self) -> Step {
        let feed = self.feed.clone();
        let window = feed.window();
        let newest = window.last_id;
        if self.position >= newest {
            // Caught up: everything later is on the live receiver (or it lagged, and says so).
            self.replaying = false;
            return Step::Done;
        }
        if feed.inner.retention == Retention::Latest {
            self.backlog.extend(
                window
                    .events
                    .back()
                    .filter(|e| e.id > self.position)
                    .cloned(),
            );
            self.replaying = false;
            return Step::Done;
        }
        let max_backfill = feed.inner.max_backfill;
        if newest - self.position > max_backfill {
            let resumed = newest - max_backfill + 1;
            self.backlog.push_back(gap(self.position, resumed));
            self.position = resumed - 1;
            return Step::Done;
        }
        let oldest_in_memory = window.events.front().map_or(newest + 1, |e| e.id);
        if self.position + 1 < oldest_in_memory {
            return Step::Store {
                after: self.position,
                before: oldest_in_memory,
            };
        }
        // The window is in id order: start after the position, take one page.
        let start = window.events.partition_point(|e| e.id <= self.position);
        let mut bytes = 0;
        for event in window.events.range(start..) {
            if self.backlog.len() >= self.page.events || bytes >= self.page.bytes {
                break;
            }
            bytes += event.json.len();
            self.backlog.push_back(event.clone());
        }
        if self.backlog.back().is_none_or(|e| e.id >= newest) {
            self.replaying = false;
        }
        Step::Done
    }

    fn take_backlog(&mut self) -> Option<SharedEvent> {
        while let Some(event) = self.backlog.pop_front() {
            self.position = self.position.max(event.id);
            if self.filter.wants(&event) {
                return Some(event);
            }
        }
        None
    }

    /// Delivers each id once: live events already seen in a replay are skipped.
    fn accept_live(&mut self, event: SharedEvent) -> Option<SharedEvent> {
        if event.id <= self.position {
            return None;
        }
        self.position = event.id;
        self.filter.wants(&event).then_some(event)
    }

    /// Fell behind the live ring: replay from the cursor again, a page at a time.
    fn resync(&mut self) {
        self.resyncs += 1;
        self.replaying = true;
        tracing::debug!(
            feed = self.feed.name().as_str(),
            position = self.position,
            "subscriber lagged; resyncing from its cursor"
        );
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::embedded::Store;
    use crate::engine::embedded::sqlite::SqliteStore;

    fn tick(id: u64) -> SharedEvent {
        Event::new(&WireEvent {
            id,
            ts: id * 1000,
            body: EventBody::Tick {
                time: String::new(),
            },
        })
    }

    fn clock() -> Feed {
        Feed::new(FeedName::Clock, Retention::Latest, Limits::new(1, 4), None)
    }

    fn sub(feed: &Feed, cursor: Option<u64>) -> Subscription {
        feed.subscribe(
            cursor,
            Start::Next,
            0,
            Filter::default(),
            CancellationToken::new(),
        )
    }

    /// What a short poll would answer: the ids available now, and the next cursor.
    async fn poll(
        feed: &Feed,
        cursor: Option<u64>,
        filter: Filter,
        history: usize,
    ) -> (Vec<u64>, u64) {
        let mut s = feed.subscribe(
            cursor,
            Start::Now,
            history,
            filter,
            CancellationToken::new(),
        );
        s.ready().await;
        let mut ids = Vec::new();
        while let Some(e) = s.try_next() {
            ids.push(e.id);
        }
        (ids, s.position())
    }

    /// A chat feed over an in-memory store holding `n` messages (odd ids in `red`), with
    /// only the last `window` of them in memory.
    fn chat(n: u64, window: usize) -> Feed {
        chat_with(n, Limits::new(window, 64))
    }

    fn chat_with(n: u64, limits: Limits) -> Feed {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(":memory:").unwrap());
        chat_over(store, n, limits)
    }

    /// A chat feed over `store`, with `n` messages appended through it.
    fn chat_over(store: Arc<dyn Store>, n: u64, limits: Limits) -> Feed {
        let backlog: Arc<dyn Backlog> = store.clone();
        let feed = Feed::new(FeedName::Chat, Retention::All, limits, Some(backlog));
        for i in 1..=n {
            let room = if i % 2 == 1 { "red" } else { "lobby" };
            let body = EventBody::Message {
                room: room.into(),
                from: "a".into(),
                text: format!("m{i}"),
            };
            store
                .append(i, body, Audience::Room(room.into()), &mut |e| {
                    feed.publish(e.clone()).unwrap()
                })
                .unwrap();
        }
        feed
    }

    fn rooms(names: &[&str]) -> Filter {
        Filter {
            rooms: names.iter().map(|n| Arc::from(*n)).collect(),
            session: None,
        }
    }

    #[test]
    fn publish_refuses_ids_that_do_not_increase() {
        let feed = clock();
        feed.publish(tick(5)).unwrap();
        assert!(feed.publish(tick(5)).is_err());
        assert!(feed.publish(tick(4)).is_err());
        assert_eq!(feed.latest_id(), Some(5));
    }

    #[tokio::test]
    async fn a_state_feed_poll_gives_only_the_latest_event_after_the_cursor() {
        let feed = clock();
        for id in 1..=3 {
            feed.publish(tick(id)).unwrap();
        }
        assert_eq!(poll(&feed, None, Filter::default(), 0).await, (vec![3], 3));
        assert_eq!(
            poll(&feed, Some(1), Filter::default(), 0).await,
            (vec![3], 3)
        );
        assert_eq!(
            poll(&feed, Some(3), Filter::default(), 0).await,
            (vec![], 3)
        );
        assert_eq!(
            poll(&feed, Some(9), Filter::default(), 0).await,
            (vec![], 9)
        );
    }

    #[tokio::test]
    async fn a_subscription_replays_then_goes_live_without_duplicates() {
        let feed = clock();
        feed.publish(tick(1)).unwrap();
        feed.publish(tick(2)).unwrap();
        let mut s = sub(&feed, Some(0));
        feed.publish(tick(3)).unwrap();
        assert_eq!(s.next().await.unwrap().id, 2);
        assert_eq!(s.next().await.unwrap().id, 3);
        assert!(s.try_next().is_none());
    }

    #[tokio::test]
    async fn a_lagging_subscriber_resyncs_to_the_latest_tick() {
        let feed = clock();
        let mut s = sub(&feed, None);
        for id in 1..=20 {
            feed.publish(tick(id)).unwrap();
        }
        assert_eq!(s.next().await.unwrap().id, 20);
        assert_eq!(s.resyncs(), 1);
        assert!(s.try_next().is_none());
    }

    #[tokio::test]
    async fn a_subscription_ends_on_shutdown_or_session_end() {
        let feed = clock();
        let token = CancellationToken::new();
        let mut s = feed.subscribe(None, Start::Next, 0, Filter::default(), token.clone());
        token.cancel();
        assert!(s.next().await.is_none());
        assert_eq!(s.ended(), Some(Ended::Shutdown));

        let session = CancellationToken::new();
        let mut s = sub(&feed, None);
        s.end_with_session(session.clone());
        session.cancel();
        assert!(s.next().await.is_none());
        assert_eq!(s.ended(), Some(Ended::SessionEnded));
    }

    #[tokio::test]
    async fn an_event_feed_replays_from_memory_and_store_in_order() {
        let feed = chat(50, 8);
        let (ids, next) = poll(&feed, Some(10), rooms(&["red", "lobby"]), 0).await;
        assert_eq!(ids, (11..=50).collect::<Vec<_>>());
        assert_eq!(next, 50);
        let (ids, _) = poll(&feed, Some(40), rooms(&["red"]), 0).await;
        assert_eq!(ids, vec![41, 43, 45, 47, 49]);
    }

    #[tokio::test]
    async fn without_a_cursor_the_chat_sends_the_rooms_history_then_live_events() {
        let feed = chat(30, 4);
        let (ids, next) = poll(&feed, None, rooms(&["lobby"]), 3).await;
        assert_eq!(ids, vec![26, 28, 30]);
        assert_eq!(next, 30);
        let (ids, _) = poll(&feed, None, rooms(&["lobby"]), 0).await;
        assert!(ids.is_empty());
    }

    /// `(id, after, resumed_from)` of a gap event (the store's tests use it too).
    pub(crate) fn gap_of(event: &SharedEvent) -> (u64, u64, u64) {
        assert_eq!(event.kind, "gap");
        let gap: WireEvent = serde_json::from_slice(&event.json).unwrap();
        match gap.body {
            EventBody::Gap {
                after,
                resumed_from,
            } => (gap.id, after, resumed_from),
            other => panic!("not a gap: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_replay_longer_than_the_backfill_limit_starts_with_a_gap() {
        let n = MAX_BACKFILL + 100;
        let feed = chat(n, 16);
        let mut s = feed.subscribe(
            Some(5),
            Start::Next,
            0,
            rooms(&["red", "lobby"]),
            CancellationToken::new(),
        );
        let resumed = n - MAX_BACKFILL + 1;
        assert_eq!(
            gap_of(&s.next().await.unwrap()),
            (resumed - 1, 5, resumed),
            "the gap's id is the cursor to continue from"
        );
        // Then every one of the last MAX_BACKFILL events, once, in order.
        for id in resumed..=n {
            assert_eq!(s.next().await.unwrap().id, id);
        }
        assert!(s.try_next().is_none());
    }

    /// A store that counts the rows it hands out, and can be told to fail.
    struct Probe {
        inner: SqliteStore,
        rows_read: std::sync::atomic::AtomicUsize,
        failing: std::sync::atomic::AtomicBool,
    }

    impl Probe {
        fn new() -> Arc<Probe> {
            Arc::new(Probe {
                inner: SqliteStore::open(":memory:").unwrap(),
                rows_read: Default::default(),
                failing: Default::default(),
            })
        }
        fn rows_read(&self) -> usize {
            self.rows_read.load(std::sync::atomic::Ordering::SeqCst)
        }
        fn fail(&self, yes: bool) {
            self.failing.store(yes, std::sync::atomic::Ordering::SeqCst);
        }
        fn check(&self) -> Result<(), crate::engine::embedded::StoreError> {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                Err(crate::engine::embedded::StoreError::Refused(
                    "disk on fire".into(),
                ))
            } else {
                Ok(())
            }
        }
    }

    impl Store for Probe {
        fn append(
            &self,
            ts: u64,
            body: EventBody,
            audience: Audience,
            publish: &mut dyn FnMut(&SharedEvent),
        ) -> Result<SharedEvent, crate::engine::embedded::StoreError> {
            self.inner.append(ts, body, audience, publish)
        }
        fn history(
            &self,
            room: &str,
            before: u64,
            limit: usize,
        ) -> Result<Vec<SharedEvent>, crate::engine::embedded::StoreError> {
            self.check()?;
            self.inner.history(room, before, limit)
        }
    }

    impl Backlog for Probe {
        fn range(
            &self,
            after: u64,
            before: u64,
            limit: PageLimit,
        ) -> Result<Vec<SharedEvent>, BacklogError> {
            self.check()?;
            let page = self.inner.range(after, before, limit)?;
            self.rows_read
                .fetch_add(page.len(), std::sync::atomic::Ordering::SeqCst);
            Ok(page)
        }
        fn recent(
            &self,
            rooms: &[String],
            upto: u64,
            limit: usize,
        ) -> Result<Vec<SharedEvent>, BacklogError> {
            self.check()?;
            self.inner.recent(rooms, upto, limit)
        }
        fn last_id(&self) -> u64 {
            self.inner.last_id()
        }
    }

    const SMALL_PAGES: Limits = Limits {
        window: 8,
        lag: 64,
        page: PageLimit {
            events: 10,
            bytes: usize::MAX,
        },
        max_backfill: MAX_BACKFILL,
    };

    #[tokio::test]
    async fn an_old_cursor_is_read_a_page_at_a_time_as_it_drains() {
        let probe = Probe::new();
        let feed = chat_over(probe.clone(), 100, SMALL_PAGES);
        let mut s = feed.subscribe(
            Some(0),
            Start::Next,
            0,
            rooms(&["red", "lobby"]),
            CancellationToken::new(),
        );
        assert_eq!(probe.rows_read(), 0, "subscribing reads nothing");
        assert_eq!(s.next().await.unwrap().id, 1);
        assert_eq!(probe.rows_read(), 10, "one page");
        assert!(s.backlog.len() < 10);
        for id in 2..=100 {
            assert_eq!(s.next().await.unwrap().id, id);
            assert!(s.backlog.len() <= SMALL_PAGES.page.events);
        }
        // Ids 93..=100 were in memory: the store gave the 92 before them, no more.
        assert_eq!(probe.rows_read(), 92);
        assert!(s.try_next().is_none());
    }

    #[tokio::test]
    async fn a_page_stops_at_its_byte_cap() {
        let probe = Probe::new();
        let limits = Limits {
            page: PageLimit {
                events: 50,
                bytes: 1,
            },
            ..SMALL_PAGES
        };
        let feed = chat_over(probe.clone(), 30, limits);
        let mut s = feed.subscribe(
            Some(0),
            Start::Next,
            0,
            rooms(&["red", "lobby"]),
            CancellationToken::new(),
        );
        assert_eq!(s.next().await.unwrap().id, 1);
        assert_eq!(probe.rows_read(), 1, "a one-byte cap holds one event");
    }

    #[tokio::test]
    async fn a_short_poll_reads_no_more_rows_than_its_limit() {
        let probe = Probe::new();
        let feed = chat_over(probe.clone(), 100, SMALL_PAGES);
        let mut s = feed.subscribe(
            Some(0),
            Start::Now,
            0,
            rooms(&["red", "lobby"]),
            CancellationToken::new(),
        );
        s.read_at_most(3, usize::MAX);
        s.ready().await;
        let mut ids = Vec::new();
        while let Some(e) = s.try_next() {
            ids.push(e.id);
        }
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(s.position(), 3);
        assert_eq!(probe.rows_read(), 3);
    }

    #[tokio::test]
    async fn a_failing_store_gives_a_gap_and_delivery_goes_on_from_memory() {
        let probe = Probe::new();
        let feed = chat_over(probe.clone(), 40, SMALL_PAGES);
        probe.fail(true);
        let mut s = feed.subscribe(
            Some(10),
            Start::Next,
            0,
            rooms(&["red", "lobby"]),
            CancellationToken::new(),
        );
        // 33..=40 are in memory; 11..=32 only in the store, which fails.
        assert_eq!(gap_of(&s.next().await.unwrap()), (32, 10, 33));
        for id in 33..=40 {
            assert_eq!(s.next().await.unwrap().id, id);
        }
        // And live delivery goes on.
        probe.fail(false);
        let body = EventBody::Message {
            room: "red".into(),
            from: "a".into(),
            text: "live".into(),
        };
        probe
            .append(1, body, Audience::Room("red".into()), &mut |e| {
                feed.publish(e.clone()).unwrap()
            })
            .unwrap();
        assert_eq!(s.next().await.unwrap().id, 41);
    }

    #[tokio::test]
    async fn a_failing_store_mid_replay_gives_a_gap_for_what_it_could_not_read() {
        let probe = Probe::new();
        let feed = chat_over(probe.clone(), 40, SMALL_PAGES);
        let mut s = feed.subscribe(
            Some(0),
            Start::Next,
            0,
            rooms(&["red", "lobby"]),
            CancellationToken::new(),
        );
        for id in 1..=10 {
            assert_eq!(s.next().await.unwrap().id, id);
        }
        probe.fail(true);
        assert_eq!(gap_of(&s.next().await.unwrap()), (32, 10, 33));
        assert_eq!(s.next().await.unwrap().id, 33);
    }

    #[tokio::test]
    async fn a_subscriber_lagging_past_the_ring_resyncs_and_gets_every_event_once() {
        let probe = Probe::new();
        let limits = Limits {
            window: 4,
            lag: 4,
            page: PageLimit {
                events: 3,
                bytes: usize::MAX,
            },
            max_backfill: MAX_BACKFILL,
        };
        let feed = chat_over(probe.clone(), 5, limits);
        let mut s = feed.subscribe(
            Some(5),
            Start::Next,
            0,
            rooms(&["red", "lobby"]),
            CancellationToken::new(),
        );
        let publish = |text: &str| {
            let body = EventBody::Message {
                room: "red".into(),
                from: "a".into(),
                text: text.into(),
            };
            probe
                .append(1, body, Audience::Room("red".into()), &mut |e| {
                    feed.publish(e.clone()).unwrap()
                })
                .unwrap();
        };
        // 30 events while it reads none: far past the ring of 4 and the window of 4.
        for i in 0..30 {
            publish(&format!("m{i}"));
        }
        let mut ids = Vec::new();
        // Interleave more publishing with reading, so it lags again mid-resync.
        for round in 0..3 {
            for _ in 0..12 {
                ids.push(s.next().await.unwrap().id);
            }
            for i in 0..10 {
                publish(&format!("r{round}-{i}"));
            }
        }
        while let Some(e) = s.try_next() {
            ids.push(e.id);
        }
        s.ready().await;
        while let Some(e) = s.try_next() {
            ids.push(e.id);
            s.ready().await;
        }
        assert_eq!(ids, (6..=65).collect::<Vec<_>>());
        assert!(s.resyncs() >= 1);
    }

    #[tokio::test]
    async fn a_cursor_older_than_the_stores_retention_gets_a_gap_then_what_is_kept() {
        use crate::engine::embedded::sqlite::Retain;
        let retain = Retain {
            events: 20,
            bytes: u64::MAX,
        };
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open_retaining(":memory:", retain).unwrap());
        // The store keeps 31..=50, memory 43..=50.
        let feed = chat_over(store, 50, SMALL_PAGES);
        let mut s = feed.subscribe(
            Some(5),
            Start::Next,
            0,
            rooms(&["red", "lobby"]),
            CancellationToken::new(),
        );
        assert_eq!(gap_of(&s.next().await.unwrap()), (30, 5, 31));
        for id in 31..=50 {
            assert_eq!(s.next().await.unwrap().id, id);
        }
        assert!(s.try_next().is_none());
        // A short poll from the same cursor: the gap, then one page (10); `next` continues.
        let (ids, next) = poll(&feed, Some(5), rooms(&["red", "lobby"]), 0).await;
        assert_eq!(ids, [vec![30], (31..=40).collect()].concat());
        assert_eq!(next, 40);
    }

    #[tokio::test]
    async fn a_cursor_beyond_the_last_id_gets_a_gap_and_continues_from_what_exists() {
        let feed = chat(3, 8);
        let (ids, next) = poll(&feed, Some(99), rooms(&["red"]), 0).await;
        assert_eq!(
            ids,
            vec![3],
            "the gap event, whose id is the cursor to continue from"
        );
        assert_eq!(next, 3);
    }

    #[test]
    fn whispers_reach_only_their_two_sessions() {
        let whisper = Event::with_audience(
            &WireEvent {
                id: 1,
                ts: 1,
                body: EventBody::Whisper {
                    from: "a".into(),
                    to: "b".into(),
                    text: "x".into(),
                },
            },
            Audience::Sessions(7, 9),
        );
        let who = |session| Filter {
            rooms: vec!["lobby".into()],
            session,
        };
        assert!(who(Some(7)).wants(&whisper));
        assert!(who(Some(9)).wants(&whisper));
        assert!(!who(Some(8)).wants(&whisper));
        assert!(!who(None).wants(&whisper));
    }
}
