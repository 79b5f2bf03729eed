//! The log: a feed is an append-only sequence of events with increasing ids, kept recent in
//! memory and fanned out live to subscribers. Every transport is a view of one question,
//! "which events come after cursor X?", so this module is the whole delivery core and the
//! transports are thin adapters over [`Feed::snapshot`] and [`Feed::subscribe`].
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

pub use event::{Event, EventBody, SharedEvent, WireEvent};

/// The feeds the server publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedName {
    Clock,
}

impl FeedName {
    pub const ALL: [FeedName; 1] = [FeedName::Clock];

    pub fn as_str(self) -> &'static str {
        match self {
            FeedName::Clock => "clock",
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
    /// and a subscription without a cursor starts at the next one.
    Latest,
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
}

struct Window {
    events: VecDeque<SharedEvent>,
    capacity: usize,
}

/// Why an event was refused by [`Feed::publish`].
#[derive(Debug, thiserror::Error)]
#[error("event id {id} is not above the feed's last id {last}")]
pub struct OutOfOrder {
    pub id: u64,
    pub last: u64,
}

impl Feed {
    /// `window` is how many recent events are kept for replay; `lag` is how far (in events) a
    /// live subscriber may fall behind before it has to resync from the window.
    pub fn new(name: FeedName, retention: Retention, window: usize, lag: usize) -> Feed {
        let (live, _) = broadcast::channel(lag.max(1));
        Feed {
            inner: Arc::new(Inner {
                name,
                retention,
                window: Mutex::new(Window {
                    events: VecDeque::with_capacity(window.max(1)),
                    capacity: window.max(1),
                }),
                live,
            }),
        }
    }

    pub fn name(&self) -> FeedName {
        self.inner.name
    }

    fn window(&self) -> MutexGuard<'_, Window> {
        // A panic while holding this lock cannot leave the window half-updated (push and pop
        // are single operations), so a poisoned lock is still safe to use.
        self.inner.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an event and hands it to every live subscriber.
    pub fn publish(&self, event: SharedEvent) -> Result<(), OutOfOrder> {
        let mut window = self.window();
        if let Some(last) = window.events.back()
            && event.id <= last.id
        {
            return Err(OutOfOrder {
                id: event.id,
                last: last.id,
            });
        }
        if window.events.len() == window.capacity {
            window.events.pop_front();
        }
        window.events.push_back(event.clone());
        // Sent while the window is locked, so that a subscriber registering under the same
        // lock sees every event either in its replay or on its receiver, never neither.
        // An error only means nobody is listening right now.
        let _ = self.inner.live.send(event);
        Ok(())
    }

    /// The id of the newest event, if there is one.
    pub fn latest_id(&self) -> Option<u64> {
        self.window().events.back().map(|e| e.id)
    }

    /// What a short poll sees now: events after `cursor` (at most `limit`), or without a
    /// cursor the latest event. Returns the events and the cursor to ask with next time.
    pub fn snapshot(&self, cursor: Option<u64>, limit: usize) -> (Vec<SharedEvent>, u64) {
        let window = self.window();
        let latest = window.events.back().map_or(0, |e| e.id);
        let mut events = match cursor {
            Some(after) => replay(&window, self.inner.retention, after),
            None => window.events.back().cloned().into_iter().collect(),
        };
        events.truncate(limit);
        let next = events.last().map(|e| e.id).or(cursor).unwrap_or(latest);
        (events, next)
    }

    /// Opens a subscription: first what the feed still holds after `cursor`, then live events.
    /// Without a cursor it starts with the next event. It ends when `shutdown` fires.
    pub fn subscribe(&self, cursor: Option<u64>, shutdown: CancellationToken) -> Subscription {
        let window = self.window();
        let rx = self.inner.live.subscribe();
        let latest = window.events.back().map_or(0, |e| e.id);
        let (backlog, position) = match cursor {
            Some(after) => (replay(&window, self.inner.retention, after).into(), after),
            None => (VecDeque::new(), latest),
        };
        drop(window);
        Subscription {
            feed: self.clone(),
            rx,
            backlog,
            position,
            resyncs: 0,
            shutdown,
        }
    }
}

/// Events in the window with an id above `after`, as the feed's retention allows.
fn replay(window: &Window, retention: Retention, after: u64) -> Vec<SharedEvent> {
    match retention {
        Retention::Latest => window
            .events
            .back()
            .filter(|e| e.id > after)
            .cloned()
            .into_iter()
            .collect(),
    }
}

/// One client's position in a feed. Every push transport reads its events from here.
pub struct Subscription {
    feed: Feed,
    rx: broadcast::Receiver<SharedEvent>,
    /// Events to deliver before reading the live channel again: the replay after the
    /// cursor, or a resync after lagging.
    backlog: VecDeque<SharedEvent>,
    /// The id of the last event delivered (or the cursor it started from).
    position: u64,
    resyncs: u64,
    shutdown: CancellationToken,
}

impl Subscription {
    /// The cursor a client should resume from: the last id delivered.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// How many times this subscriber fell behind the live ring and was resynced.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// The next event, waiting for it if needed. `None` once the server shuts down.
    ///
    /// Lag policy: a subscriber more than the live ring behind is not dropped and not
    /// buffered without bound; it is resynced from its own cursor out of the feed's window
    /// (for the clock, that means skipping straight to the latest tick).
    pub async fn next(&mut self) -> Option<SharedEvent> {
        loop {
            if let Some(event) = self.take_backlog() {
                return Some(event);
            }
            let received = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return None,
                received = self.rx.recv() => received,
            };
            match received {
                Ok(event) => {
                    if let Some(event) = self.accept(event) {
                        return Some(event);
                    }
                }
                Err(RecvError::Lagged(_)) => self.resync(),
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is already here, without waiting.
    pub fn try_next(&mut self) -> Option<SharedEvent> {
        loop {
            if let Some(event) = self.take_backlog() {
                return Some(event);
            }
            match self.rx.try_recv() {
                Ok(event) => {
                    if let Some(event) = self.accept(event) {
                        return Some(event);
                    }
                }
                Err(TryRecvError::Lagged(_)) => self.resync(),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
    }

    fn take_backlog(&mut self) -> Option<SharedEvent> {
        while let Some(event) = self.backlog.pop_front() {
            if let Some(event) = self.accept(event) {
                return Some(event);
            }
        }
        None
    }

    /// Delivers each id once: live events already seen in a replay are skipped.
    fn accept(&mut self, event: SharedEvent) -> Option<SharedEvent> {
        if event.id <= self.position {
            return None;
        }
        self.position = event.id;
        Some(event)
    }

    fn resync(&mut self) {
        self.resyncs += 1;
        let window = self.feed.window();
        self.backlog = replay(&window, self.feed.inner.retention, self.position).into();
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
        Feed::new(FeedName::Clock, Retention::Latest, 1, 4)
    }

    #[test]
    fn publish_refuses_ids_that_do_not_increase() {
        let feed = clock();
        feed.publish(tick(5)).unwrap();
        assert!(feed.publish(tick(5)).is_err());
        assert!(feed.publish(tick(4)).is_err());
        assert_eq!(feed.latest_id(), Some(5));
    }

    #[test]
    fn a_state_feed_snapshot_gives_only_the_latest_event_after_the_cursor() {
        let feed = clock();
        for id in 1..=3 {
            feed.publish(tick(id)).unwrap();
        }
        let ids = |(events, next): (Vec<SharedEvent>, u64)| {
            (events.iter().map(|e| e.id).collect::<Vec<_>>(), next)
        };
        assert_eq!(ids(feed.snapshot(None, 100)), (vec![3], 3));
        assert_eq!(ids(feed.snapshot(Some(1), 100)), (vec![3], 3));
        assert_eq!(ids(feed.snapshot(Some(3), 100)), (vec![], 3));
        assert_eq!(ids(feed.snapshot(Some(9), 100)), (vec![], 9));
    }

    #[tokio::test]
    async fn a_subscription_replays_then_goes_live_without_duplicates() {
        let feed = clock();
        feed.publish(tick(1)).unwrap();
        feed.publish(tick(2)).unwrap();
        let mut sub = feed.subscribe(Some(0), CancellationToken::new());
        feed.publish(tick(3)).unwrap();
        assert_eq!(sub.next().await.unwrap().id, 2);
        assert_eq!(sub.next().await.unwrap().id, 3);
        assert!(sub.try_next().is_none());
    }

    #[tokio::test]
    async fn a_lagging_subscriber_resyncs_to_the_latest_tick() {
        let feed = clock();
        let mut sub = feed.subscribe(None, CancellationToken::new());
        for id in 1..=20 {
            feed.publish(tick(id)).unwrap();
        }
        assert_eq!(sub.next().await.unwrap().id, 20);
        assert_eq!(sub.resyncs(), 1);
        assert!(sub.try_next().is_none());
    }

    #[tokio::test]
    async fn a_subscription_ends_on_shutdown() {
        let feed = clock();
        let token = CancellationToken::new();
        let mut sub = feed.subscribe(None, token.clone());
        token.cancel();
        assert!(sub.next().await.is_none());
    }
}
