//! What a feed needs from durable storage, declared here so the feed depends on no engine:
//! each engine's log (SQLite's, Redis's) implements [`Backlog`], and the feed reads the
//! events older than its memory window through it.

use crate::event::SharedEvent;

/// Why a backlog read failed: the engine's own error, kept whole as the cause. The feed logs
/// it and goes on from memory, with a `gap` for what it could not read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BacklogError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl BacklogError {
    pub fn new(cause: impl std::error::Error + Send + Sync + 'static) -> BacklogError {
        BacklogError(Box::new(cause))
    }
}

/// How much one read of [`Backlog::range`] may return: a subscriber replays a far cursor a
/// page at a time, so what it holds is bounded by this, not by how old its cursor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit {
    /// At most this many events (at least one is always returned if one exists).
    pub events: usize,
    /// Stop after the event that brings the page to this many bytes of JSON.
    pub bytes: usize,
}

/// The events of a feed that memory no longer holds. Called from blocking tasks
/// (`spawn_blocking`), so an implementation may block.
pub trait Backlog: Send + Sync + 'static {
    /// The *oldest* events with `after < id < before`, oldest first, as many as `limit`
    /// allows; the caller asks again after the last id returned for the next page. Reads no
    /// more rows than it returns (plus one byte-cap overshoot at most). A store that no
    /// longer holds the start of the range (pruned or trimmed to its retention) puts a
    /// `gap` first (`crate::feed::gap(after, first id it holds)`, or `before` if none).
    fn range(
        &self,
        after: u64,
        before: u64,
        limit: PageLimit,
    ) -> Result<Vec<SharedEvent>, BacklogError>;

    /// What a subscription without a cursor starts with: the newest `limit` messages of
    /// `rooms` with `id <= upto`, oldest first.
    fn recent(
        &self,
        rooms: &[String],
        upto: u64,
        limit: usize,
    ) -> Result<Vec<SharedEvent>, BacklogError>;

    /// The highest id stored (0 when empty): where the feed's ids continue after a restart.
    fn last_id(&self) -> u64;
}

/// The newest `limit` of `events` (gathered room by room, in no order), oldest first: how
/// [`Backlog::recent`] merges its rooms' newest messages, for every store.
pub fn newest(mut events: Vec<SharedEvent>, limit: usize) -> Vec<SharedEvent> {
    events.sort_by_key(|e| e.id);
    let skip = events.len().saturating_sub(limit);
    events.split_off(skip)
}
