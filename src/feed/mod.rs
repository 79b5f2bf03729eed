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

pub mod clock;
pub mod event;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::CancellationToken;

pub use event::{Audience, Event, EventBody, SharedEvent, WireEvent};

use crate::store::Store;

/// The feeds the server publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedName {
    Clock,
    Chat,
}

impl FeedName {
    pub const ALL: [FeedName; 2] = [FeedName::Clock, FeedName::Chat];

    pub fn as_str(self) -> &'static str {
        match self {
            FeedName::Clock => "clock",
            FeedName::Chat => "chat",
        }
    }

    pub fn parse(name: &str) -> Option<FeedName> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

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

/// The most events one backfill from the store replays; beyond it a `gap` says so.
pub const MAX_BACKFILL: usize = 10_000;

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
    store: Option<Arc<dyn Store>>,
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
    /// `window` is how many recent events are kept in memory; `lag` is how far (in events) a
    /// live subscriber may fall behind before it has to resync from the window.
    pub fn new(
        name: FeedName,
        retention: Retention,
        window: usize,
        lag: usize,
        store: Option<Arc<dyn Store>>,
    ) -> Feed {
        let (live, _) = broadcast::channel(lag.max(1));
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
            }),
        }
    }

    pub fn name(&self) -> FeedName {
        self.inner.name
    }

    pub fn store(&self) -> Option<&Arc<dyn Store>> {
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
            pending: None,
            position: last_id,
            filter,
            resyncs: 0,
            shutdown,
            session_end: None,
            kill: None,
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
                sub.position = after;
                sub.replay_from_window(&window);
            }
            (Retention::All, None) => {
                if history > 0 {
                    sub.pending = Some(Pending::History {
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
async fn fired(token: Option<&CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

/// A `gap` event: delivery after `after` resumes at `resumed_from`.
fn gap(after: u64, resumed_from: u64) -> SharedEvent {
    Event::new(&WireEvent {
        id: resumed_from.saturating_sub(1),
        ts: clock::now_micros(),
        body: EventBody::Gap {
            after,
            resumed_from,
        },
    })
}

/// Store work a subscription still has to do before delivering (it needs `.await`).
#[derive(Debug, Clone, Copy)]
enum Pending {
    /// Events with `after < id < before` are not in memory.
    Range { after: u64, before: u64 },
    /// The last `limit` messages of the rooms, up to `upto`.
    History { limit: usize, upto: u64 },
}

/// Why a subscription stopped delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Shutdown,
    SessionEnded,
    /// `POST /api/debug/kill` dropped the connection (see `crate::diag`).
    Killed,
}

/// One client's position in a feed. Every transport reads its events from here.
pub struct Subscription {
    feed: Feed,
    rx: broadcast::Receiver<SharedEvent>,
    /// Events to deliver before reading the live channel again (a replay, a resync or
    /// history); they are already in id order and are not checked against `position`.
    backlog: VecDeque<SharedEvent>,
    pending: Option<Pending>,
    /// The highest id delivered or passed over (the cursor it started from, at first).
    position: u64,
    filter: Filter,
    resyncs: u64,
    shutdown: CancellationToken,
    session_end: Option<CancellationToken>,
    kill: Option<CancellationToken>,
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
    }

    /// Also end, as [`Ended::Killed`], when `token` fires.
    pub fn end_when_killed(&mut self, token: CancellationToken) {
        self.kill = Some(token);
    }

    /// Keeps `guard` alive as long as the subscription.
    pub fn hold(&mut self, guard: impl Send + Sync + 'static) {
        self._guards.push(Box::new(guard));
    }

    /// The next event, waiting for it if needed. `None` once the server shuts down or the
    /// session ends.
    ///
    /// Lag policy: a subscriber more than the live ring behind is not dropped and not
    /// buffered without bound; it is resynced from its own cursor out of the feed's window
    /// and store (for the clock, that means skipping straight to the latest tick).
    pub async fn next(&mut self) -> Option<SharedEvent> {
        loop {
            self.ready().await;
            if let Some(event) = self.take_backlog() {
                return Some(event);
            }
            let received = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => {
                    self.ended = Some(Ended::Shutdown);
                    return None;
                }
                () = fired(self.session_end.as_ref()) => {
                    self.ended = Some(Ended::SessionEnded);
                    return None;
                }
                () = fired(self.kill.as_ref()) => {
                    self.ended = Some(Ended::Killed);
                    return None;
                }
                received = self.rx.recv() => received,
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

    /// The next event if one is already here, without waiting. Call [`Subscription::ready`]
    /// first so that replay from the store is done.
    pub fn try_next(&mut self) -> Option<SharedEvent> {
        loop {
            if let Some(event) = self.take_backlog() {
                return Some(event);
            }
            if self.pending.is_some() {
                return None;
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

    /// Does the store work (replay older than memory, history) this subscription needs.
    /// A store error is logged and delivery goes on from what memory has, after a `gap`.
    pub async fn ready(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let Some(store) = self.feed.store().cloned() else {
            return;
        };
        let loaded = tokio::task::spawn_blocking({
            let rooms: Vec<String> = self.filter.rooms.iter().map(|r| r.to_string()).collect();
            move || match pending {
                Pending::Range { after, before } => store
                    .range(after, before, MAX_BACKFILL)
                    .map(|p| (p.events, p.truncated)),
                Pending::History { limit, upto } => store
                    .recent_messages(&rooms, upto, limit)
                    .map(|e| (e, false)),
            }
        })
        .await;
        let mut older = VecDeque::new();
        match loaded {
            Ok(Ok((events, truncated))) => {
                if truncated
                    && let (Pending::Range { after, .. }, Some(first)) = (pending, events.first())
                {
                    older.push_back(gap(after, first.id));
                }
                older.extend(events);
            }
            failed => {
                tracing::error!(
                    ?failed,
                    "could not read the chat store; delivery resumes with a gap"
                );
                if let (Pending::Range { after, before }, true) = (pending, true) {
                    older.push_back(gap(after, before));
                }
            }
        }
        older.append(&mut self.backlog);
        self.backlog = older;
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

    /// Fills the backlog with what the window holds after `position`, noting what only the
    /// store still has.
    fn replay_from_window(&mut self, window: &Window) {
        let after = self.position;
        match self.feed.inner.retention {
            Retention::Latest => {
                self.backlog = window
                    .events
                    .back()
                    .filter(|e| e.id > after)
                    .cloned()
                    .into_iter()
                    .collect();
            }
            Retention::All => {
                self.backlog = window
                    .events
                    .iter()
                    .filter(|e| e.id > after)
                    .cloned()
                    .collect();
                let oldest_in_memory = window.events.front().map_or(window.last_id + 1, |e| e.id);
                if oldest_in_memory > after + 1 && window.last_id > after {
                    self.pending = Some(Pending::Range {
                        after,
                        before: oldest_in_memory,
                    });
                }
            }
        }
    }

    fn resync(&mut self) {
        self.resyncs += 1;
        let feed = self.feed.clone();
        let window = feed.window();
        self.replay_from_window(&window);
        tracing::debug!(
            feed = self.feed.name().as_str(),
            position = self.position,
            "subscriber lagged; resynced from its cursor"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

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
        Feed::new(FeedName::Clock, Retention::Latest, 1, 4, None)
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
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(":memory:").unwrap());
        let feed = Feed::new(
            FeedName::Chat,
            Retention::All,
            window,
            64,
            Some(store.clone()),
        );
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

    #[tokio::test]
    async fn a_replay_longer_than_the_backfill_limit_starts_with_a_gap() {
        let n = MAX_BACKFILL as u64 + 100;
        let feed = chat(n, 16);
        let mut s = feed.subscribe(
            Some(5),
            Start::Next,
            0,
            rooms(&["red", "lobby"]),
            CancellationToken::new(),
        );
        let first = s.next().await.unwrap();
        assert_eq!(first.kind, "gap");
        let gap: WireEvent = serde_json::from_slice(&first.json).unwrap();
        let resumed = n - MAX_BACKFILL as u64 - 16 + 1;
        assert_eq!(
            gap.body,
            EventBody::Gap {
                after: 5,
                resumed_from: resumed
            }
        );
        assert_eq!(gap.id, resumed - 1);
        assert_eq!(s.next().await.unwrap().id, resumed);
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
