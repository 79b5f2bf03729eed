//! The embedded engine's durable chat history. The chat feed keeps recent events in memory;
//! everything is also written here, under its id, before it is acknowledged or delivered,
//! and read back to replay a cursor older than memory, to serve history, and to continue the
//! id sequence after a restart. [`Store`] is the feed's [`Backlog`] plus what the embedded
//! engine adds (appending, a room's history); [`SessionStore`] keeps the sessions across a
//! restart. [`super::sqlite::SqliteStore`] implements both.

use std::path::PathBuf;

use crate::event::{Audience, EventBody, SharedEvent};
pub use crate::feed::backlog::{Backlog, BacklogError, PageLimit};

/// Why the store failed, with its cause. Its text is what the server says when it cannot
/// start (the refusals name the file and the fix).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("chat store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file or directory of the database could not be made, read or changed.
    #[error("chat store: cannot {action} {}: {source}", path.display())]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A database file that others may read, which the server will not use (the text says
    /// why and how to fix it).
    #[error("chat store: {0}")]
    Refused(String),
    /// A stored event whose JSON is not UTF-8.
    #[error("chat store: {0}")]
    Utf8(#[from] std::str::Utf8Error),
}

impl StoreError {
    pub(super) fn file(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::File {
            action,
            path,
            source,
        }
    }
}

impl From<StoreError> for BacklogError {
    fn from(err: StoreError) -> BacklogError {
        BacklogError::new(err)
    }
}

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
    fn signing_key(&self, fresh: &[u8]) -> Result<Vec<u8>, StoreError>;
    fn load_sessions(&self) -> Result<Vec<StoredSession>, StoreError>;
    /// Inserts or updates.
    fn save_session(&self, session: &StoredSession) -> Result<(), StoreError>;
    fn delete_session(&self, id: u64) -> Result<(), StoreError>;
}
