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

/// A page of stored events, oldest first.
pub struct Page {
    pub events: Vec<SharedEvent>,
    /// True when the range held more events than the limit: the *newest* ones were kept.
    pub truncated: bool,
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

    /// Events with `after < id < before`; the newest `limit` of them if there are more.
    fn range(&self, after: u64, before: u64, limit: usize) -> Result<Page, StoreError>;

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
