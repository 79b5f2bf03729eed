//! What the chat needs from where it is kept, in the chat's terms: one [`Engine`] holding its
//! log (append, history, the feed's [`Backlog`]), its sessions, its presence over every node
//! and the deadline of a request's work. The chat holds an `Arc<dyn Engine>` and never asks
//! which one it has; the implementations sit side by side in `crate::engine` and the edge
//! picks one at start.
//!
//! The chat's rules stay here: what a nick may be and which nicks collide (`name`), what a
//! session may spend ([`Spending`]), when a session is idle ([`SessionRules`]), which joins
//! presence records (`presence`). An engine keeps the state those rules read and decides
//! atomically where many nodes share it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::presence::{Change, Presence};
use super::session::{BYTES_BUDGET, Budget, EVENTS_BUDGET, EndReason, RATE_WINDOW, rate_limited};
use super::{ChatError, Nick};
use crate::event::{Audience, EventBody, SharedEvent};
use crate::feed::{Backlog, Feed};

/// An engine's answer, boxed so that the chat can hold any engine as `Arc<dyn Engine>`.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, ChatError>> + Send + 'a>>;

/// What the chat asks of every session, wherever it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRules {
    /// What one session may store per [`RATE_WINDOW`].
    pub budget: Budget,
    /// A session without activity for this long is ended.
    pub idle: Duration,
}

/// What [`Engine::say`] did with a room message.
pub enum Said {
    /// Stored (and in this node's feed).
    Stored(SharedEvent),
    /// The session is called this now (renamed on another node): build the message again.
    Renamed(String),
    /// The session is not live.
    SignedOut,
}

/// A session that ended on another node: this node closes its streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub id: u64,
    pub reason: EndReason,
}

/// What [`Engine::start`] gets from the chat: the live feed the engine's log fills, this
/// node's presence, where to tell of sessions that ended elsewhere, and the tasks' lifetime.
pub struct Running<'a> {
    pub feed: Feed,
    pub presence: Presence,
    pub rules: SessionRules,
    pub ended: mpsc::Sender<Ended>,
    pub shutdown: CancellationToken,
    pub tracker: &'a TaskTracker,
}

/// Where the chat's log, sessions and presence are kept. Every method answers in the chat's
/// terms ([`ChatError`]: an engine that cannot answer in time says `Unavailable`, a fault of
/// its own is `Internal`).
pub trait Engine: Send + Sync + 'static {
    /// The events the feed's memory no longer holds (replay, a subscription's first page, the
    /// id the log continues from).
    fn backlog(&self) -> Arc<dyn Backlog>;

    /// Starts the engine's own background work (once, from `Chat::start`).
    fn start(&self, running: Running<'_>);

    /// How long one request's engine work may take in all (see [`within`]); `None`: as long
    /// as it takes.
    fn request_deadline(&self) -> Option<Duration>;

    /// What the engine keeps the chat in, by the name a client's refusal gives it.
    fn store(&self) -> &'static str;

    // The log.

    /// Stores the event under the next id; returns it once it is durable and in `feed`.
    fn append<'a>(
        &'a self,
        feed: &'a Feed,
        body: EventBody,
        audience: Audience,
    ) -> Answer<'a, SharedEvent>;

    /// The newest `limit` messages of `room` with `id < before`, oldest first.
    fn history(&self, room: Arc<str>, before: u64, limit: usize) -> Answer<'_, Vec<SharedEvent>>;

    /// A room message from session `id`, which the caller knows as `nick`: the session is
    /// checked, one write charged to its budget (`429` past it) and the message stored, as
    /// one step where the engine can.
    fn say<'a>(
        &'a self,
        feed: &'a Feed,
        id: u64,
        nick: &'a str,
        room: Arc<str>,
        text: &'a str,
        rules: SessionRules,
    ) -> Answer<'a, Said>;

    // Sessions.

    /// Starts session `id` as `nick`: `409` if a live session holds a nick that looks like
    /// it, `503` while `max` are live. `false`: the id is in use, draw another.
    fn create_session<'a>(
        &'a self,
        id: u64,
        nick: &'a Nick,
        max: u64,
        rules: SessionRules,
    ) -> Answer<'a, bool>;

    /// The nick of live session `id`.
    fn session(&self, id: u64, rules: SessionRules) -> Answer<'_, Option<String>>;

    /// The live session holding a nick with one of `keys` (`name::look_alike_keys`).
    fn session_by_nick<'a>(
        &'a self,
        keys: &'a [String],
        rules: SessionRules,
    ) -> Answer<'a, Option<(u64, String)>>;

    /// Charges one write of `bytes` to the session's budget: `429` past it.
    fn spend(&self, id: u64, bytes: usize, rules: SessionRules) -> Answer<'_, ()>;

    /// Renames session `id`; the old nick. `409` if the nick is held by another, `401` if
    /// the session is not live.
    fn rename_session<'a>(
        &'a self,
        id: u64,
        nick: &'a Nick,
        rules: SessionRules,
    ) -> Answer<'a, String>;

    /// Ends session `id` everywhere (every node is told, see [`Running::ended`]).
    fn end_session(&self, id: u64, reason: EndReason) -> Answer<'_, ()>;

    /// Ends sessions idle for `rules.idle`; their ids.
    fn expire_idle(&self, rules: SessionRules) -> Answer<'_, Vec<u64>>;

    /// For each id, whether the session is still live.
    fn sessions_live<'a>(&'a self, ids: &'a [u64]) -> Answer<'a, Vec<bool>>;

    // Presence.

    /// Records one transition of this node's presence (see `presence`). `Unavailable`:
    /// try the same change again later.
    fn record_presence<'a>(&'a self, feed: &'a Feed, change: &'a Change) -> Answer<'a, ()>;

    /// Rooms with someone online over every node, with their counts; `here` is this node's.
    fn online_rooms<'a>(&'a self, here: &'a Presence) -> Answer<'a, Vec<(String, usize)>>;

    /// Nicks online in `room` over every node, in no order; `here` is this node's.
    fn online_users<'a>(&'a self, room: &'a str, here: &'a Presence) -> Answer<'a, Vec<String>>;

    /// Takes a token from the bucket `name` (`burst` per `window`) that every node shares:
    /// `Some(wait)` when it is empty. `None` when this node serves alone, so its own budgets
    /// are the shared ones.
    fn shared_token<'a>(
        &'a self,
        name: &'a str,
        burst: u32,
        window: Duration,
    ) -> Option<Answer<'a, Option<Duration>>>;
}

tokio::task_local! {
    /// The deadline of the request the current task serves (see [`within`]).
    static DEADLINE: tokio::time::Instant;
}

/// Runs `work` under one deadline, `limit` from now, for all the engine work it does in this
/// task; inside another `within`, the outer deadline stays. One deadline rather than one per
/// call, so a request of several calls (a session lookup, then the write) is still answered
/// within it, however many requests wait on the engine.
pub async fn within<F: Future>(limit: Option<Duration>, work: F) -> F::Output {
    match limit {
        Some(limit) if DEADLINE.try_with(|_| ()).is_err() => {
            DEADLINE
                .scope(tokio::time::Instant::now() + limit, work)
                .await
        }
        _ => work.await,
    }
}

/// The deadline of the request this task serves, if it has one.
pub fn deadline() -> Option<tokio::time::Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// One session's writes of the last [`RATE_WINDOW`], against its [`Budget`]: the budget's
/// rule, for an engine that keeps the writes in memory.
#[derive(Debug, Default)]
pub struct Spending {
    /// When the last writes were taken and the bytes each was charged: those of the last
    /// [`RATE_WINDOW`], so at most [`Budget::events`] of them.
    sent: VecDeque<(Instant, usize)>,
    /// The sum of the bytes in `sent`.
    bytes: usize,
}

impl Spending {
    /// Takes one write of `bytes` at `now` if both halves of `budget` have room; past either,
    /// `429` with the wait until the oldest writes of the window have left enough room,
    /// naming the half that refused.
    pub fn spend(&mut self, now: Instant, bytes: usize, budget: Budget) -> Result<(), ChatError> {
        while let Some(&(at, charged)) = self.sent.front()
            && now.duration_since(at) >= RATE_WINDOW
        {
            self.sent.pop_front();
            self.bytes -= charged;
        }
        // When the write at `at` leaves the window.
        let leaves = |at: Instant| RATE_WINDOW.saturating_sub(now.duration_since(at));
        if self.sent.len() >= budget.events {
            let oldest = self.sent.front().map_or(now, |&(at, _)| at);
            return Err(rate_limited(EVENTS_BUDGET, leaves(oldest)));
        }
        if self.bytes + bytes > budget.bytes {
            // Wait until the oldest writes whose leaving makes room have left. A write larger
            // than the whole budget finds none and is told a whole window (the flag's minimum
            // is above the largest event, so only a library caller can ask for one).
            let mut left = self.bytes;
            let mut wait = RATE_WINDOW;
            for &(at, charged) in &self.sent {
                left -= charged;
                if left + bytes <= budget.bytes {
                    wait = leaves(at);
                    break;
                }
            }
            return Err(rate_limited(BYTES_BUDGET, wait));
        }
        self.sent.push_back((now, bytes));
        self.bytes += bytes;
        Ok(())
    }
}
