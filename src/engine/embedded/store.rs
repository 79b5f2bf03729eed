//! Durable chat history. The chat feed keeps recent events in memory; everything is also
//! written here, under its id, before it is acknowledged or delivered, and read back to
//! replay a cursor older than memory, to serve history, and to continue the id sequence
//! after a restart.
//!
//! The seam is the feed's [`Backlog`] trait and the chat's [`Store`] on top of it, kept narrow so another engine (Redis, for many nodes)
//! can stand behind it. [`sqlite::SqliteStore`] is the default.

use crate::event::{Audience, EventBody, SharedEvent};
pub use crate::feed::backlog::{Backlog, PageLimit, StoreError};

/// The chat's durable log: the feed's [`Backlog`] (replay, starting history, last id) plus
/// what only the chat does, appending and paging back through a room's history.
pub trait Store: Backlog {
    /// Stores an event under the next id and returns it. `publish` is called with the event
    /// before the next append can begin, so events reach the live feed in id order.
    fn append(
        &self,
        ts: u64,
        body: EventBody,
        audience: Audience,
        publish: &mut dyn FnMut(&SharedEvent),
    ) -> Result<SharedEvent, StoreError>;

    /// The newest `limit` messages of `room` with `id < before`, oldest first.
    fn history(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<SharedEvent>, StoreError>;
}

/// A session as the store keeps it, so sessions survive a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub id: u64,
    pub nick: String,
    /// Last activity, in milliseconds since the Unix epoch.
    pub last_active_ms: u64,
}

/// Where embedded sessions and their signing key are kept across restarts. Called on the
/// blocking pool (except at start).
pub trait SessionStore: Send + Sync + 'static {
    /// The session signing key, made (32 random bytes, from `fresh`) on first use.
    fn signing_key(&self, fresh: &[u8]) -> Result<Vec<u8>, String>;
    fn load_sessions(&self) -> Result<Vec<StoredSession>, String>;
    /// Inserts or updates.
    fn save_session(&self, session: &StoredSession) -> Result<(), String>;
    fn delete_session(&self, id: u64) -> Result<(), String>;
}
