//! Durable chat history. The chat feed keeps recent events in memory; everything is also
//! written here, under its id, before it is acknowledged or delivered, and read back to
//! replay a cursor older than memory, to serve history, and to continue the id sequence
//! after a restart.
//!
//! The seam is the [`Store`] trait, kept narrow so another engine (Redis, for many nodes)
//! can stand behind it. [`sqlite::SqliteStore`] is the default.

pub mod sqlite;

use crate::feed::{Audience, EventBody, SharedEvent};

#[derive(Debug, thiserror::Error)]
#[error("chat store: {0}")]
pub struct StoreError(pub String);

/// How much one read of [`Store::range`] may return: a subscriber replays a far cursor a
/// page at a time, so what it holds is bounded by this, not by how old its cursor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit {
    /// At most this many events (at least one is always returned if one exists).
    pub events: usize,
    /// Stop after the event that brings the page to this many bytes of JSON.
    pub bytes: usize,
}

pub trait Store: Send + Sync + 'static {
    /// Stores an event under the next id and returns it. `publish` is called with the event
    /// before the next append can begin, so events reach the live feed in id order.
    fn append(
        &self,
        ts: u64,
        body: EventBody,
        audience: Audience,
        publish: &mut dyn FnMut(&SharedEvent),
    ) -> Result<SharedEvent, StoreError>;

    /// The *oldest* events with `after < id < before`, oldest first, as many as `limit`
    /// allows; the caller asks again after the last id returned for the next page. Reads no
    /// more rows than it returns (plus one byte-cap overshoot at most).
    fn range(
        &self,
        after: u64,
        before: u64,
        limit: PageLimit,
    ) -> Result<Vec<SharedEvent>, StoreError>;

    /// The newest `limit` room messages of `rooms` with `id <= upto`, oldest first.
    fn recent_messages(
        &self,
        rooms: &[String],
        upto: u64,
        limit: usize,
    ) -> Result<Vec<SharedEvent>, StoreError>;

    /// The newest `limit` messages of `room` with `id < before`, oldest first.
    fn history(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<SharedEvent>, StoreError>;

    /// The highest id stored (0 when empty).
    fn last_id(&self) -> u64;
}
