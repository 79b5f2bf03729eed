//! The SQLite store (rusqlite, SQLite compiled in). One table of events keyed by id; WAL
//! journal with `synchronous=FULL`, so an append is on disk before it is acknowledged and
//! survives `kill -9` (and power loss).
//!
//! One connection behind a std mutex: SQLite serializes writers anyway, and holding the
//! lock through `publish` is what keeps the live feed in id order. Callers run these
//! methods on the blocking pool, never on an async worker.
//!
//! **Retention** ([`Retain`], `--retain-events` and `--retain-bytes`): each append, in its
//! own transaction, deletes the oldest events past either bound, so the log cannot grow
//! without limit. Bytes are the database's pages in use, `(page_count − freelist_count) ×
//! page_size`: what the file holds for the events, their room index, the sessions and the
//! key, read from SQLite's own header rather than estimated from the rows. Freed pages go to
//! SQLite's freelist and the next appends reuse them before the file grows, so the file
//! stays within the bound plus what one prune step frees (measured in the tests below).
//! A database is made with `auto_vacuum=INCREMENTAL`, and at start, after pruning to a
//! bound that may have been lowered, the free pages are handed back (`incremental_vacuum`),
//! so the file also shrinks; a database made before retention existed is converted once,
//! by a `VACUUM` at start (its work bounded by the retention it was just pruned to).
//! Sessions and the key are never pruned. A replay from a cursor older than the oldest
//! kept event gets a `gap` first, as the Redis log does.
//!
//! **Privacy** (`super::private`): the file is created `0600` and its directory `0700`
//! before SQLite opens it; SQLite's unix VFS gives the `-wal` and `-shm` files the main
//! file's mode, so they are owner-only too (the tests read all three as another user). An
//! existing database that other users can read is made owner-only, with a warning, if it is
//! pushpoll's (it has the `events` table with pushpoll's columns: every version before this
//! one created it with SQLite's `0644`); anything else is refused, unchanged.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use rusqlite::{Connection, params};

use super::{Backlog, BacklogError, PageLimit, SessionStore, Store, StoreError, StoredSession};
use crate::event::{Audience, Event, EventBody, SharedEvent, WireEvent};
use crate::feed::gap;
use crate::private;

/// How much of the log the store keeps; the newest events are kept, the oldest pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retain {
    /// The newest this-many events (by id).
    pub events: u64,
    /// The database's pages in use, in bytes, at most this (while more than one event is
    /// kept: the newest event always is, so that ids continue after a restart).
    pub bytes: u64,
}

/// `--retain-events`: a million events. A classroom of 30 that each send a message a
/// minute for eight hours writes 30 × 60 × 8 = 14,400 (plus joins and leaves), so this is
/// many weeks of lessons, and 100 times `--max-backfill`.
pub const RETAIN_EVENTS: u64 = 1_000_000;
/// `--retain-bytes`: 256 MiB, where the events bound meets the bytes bound for ordinary
/// chat: the event of a 100-character message (192 bytes of JSON) costs 258 bytes of pages,
/// so 256 MiB holds about 1.04 million. The largest (8,092 bytes of JSON) cost 8,239, so
/// the bytes bound keeps about 32,600 of them: a flood of big messages meets this bound
/// long before the other. (Measured by `the_default_bounds_meet_near_a_million_ordinary_events`.)
pub const RETAIN_BYTES: u64 = 256 * 1024 * 1024;

impl Default for Retain {
    fn default() -> Retain {
        Retain {
            events: RETAIN_EVENTS,
            bytes: RETAIN_BYTES,
        }
    }
}

/// The fewest events one step of pruning by bytes deletes: deleting one small row seldom
/// frees a page, and each step costs a statement and a look at the header.
const PRUNE_STEP: u64 = 16;

/// The `-wal` file is cut back to this after a checkpoint that found it larger (a big prune
/// or the one-time `VACUUM`); in between it holds at most the 1000 pages of SQLite's
/// automatic checkpoint (4 MiB at the default page size) plus one transaction.
const WAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

pub struct SqliteStore {
    inner: Mutex<Inner>,
}

struct Inner {
    conn: Connection,
    ids: Ids,
    retain: Retain,
    page_size: u64,
}

/// The ids the table holds.
#[derive(Debug, Clone, Copy)]
struct Ids {
    /// The oldest stored (0 when there is none): below it, everything was pruned.
    first: u64,
    /// The newest ever stored: pruning always keeps it.
    last: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id    INTEGER PRIMARY KEY,
    ts    INTEGER NOT NULL,
    type  TEXT    NOT NULL,
    room  TEXT,            -- the audience room (message, join, leave)
    sid_a INTEGER,         -- the audience sessions of a whisper
    sid_b INTEGER,
    json  TEXT    NOT NULL -- the event exactly as delivered
);
CREATE INDEX IF NOT EXISTS events_by_room ON events (room, type, id);
-- Sessions survive a restart: their signing key and who holds which nick.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id          INTEGER PRIMARY KEY,
    nick        TEXT    NOT NULL,
    last_active INTEGER NOT NULL -- ms since the Unix epoch
);
";

const COLUMNS: &str = "id, ts, type, room, sid_a, sid_b, json";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with the default retention;
    /// `:memory:` keeps nothing.
    pub fn open(path: &str) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_retaining(path, Retain::default())
    }

    /// Opens (creating if needed) the database at `path`, keeping what `retain` allows: the
    /// oldest events past it are pruned now and after each append. `:memory:` keeps nothing
    /// across restarts, and is bounded the same way while it runs.
    pub fn open_retaining(path: &str, retain: Retain) -> Result<SqliteStore, StoreError> {
        let conn = if path == ":memory:" {
            Connection::open_in_memory()?
        } else {
            open_private(Path::new(path))?
        };
        // Before the first table exists (a new database) this makes it incremental; on an
        // older database it only takes effect at the `VACUUM` below.
        let legacy = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get::<_, i64>(0))? == 0
            && table_exists(&conn, "events")?;
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        conn.execute_batch(SCHEMA)?;
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let ids = stored_ids(&conn)?;
        let mut inner = Inner {
            conn,
            ids,
            retain: Retain {
                events: retain.events.max(1),
                bytes: retain.bytes,
            },
            page_size: page_size.max(1) as u64,
        };
        let before = inner.used_bytes()?;
        let pruned = prune(&inner.conn, &mut inner.ids, inner.retain, inner.page_size)?;
        if pruned > 0 {
            tracing::info!(
                pruned,
                before_bytes = before,
                after_bytes = inner.used_bytes()?,
                "pruned the chat log to its retention"
            );
        }
        if legacy && path != ":memory:" {
            // Once per database: a file made before retention existed cannot hand pages
            // back without this rewrite. Its work is bounded by the retention just applied.
            // A failure (a full disk: VACUUM needs room for a copy) costs only the shrinking:
            // retention still keeps the file from growing, so the server starts anyway.
            tracing::warn!(
                db = path,
                "converting the database to incremental vacuum (once): rewriting it"
            );
            match inner
                .conn
                .execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
            {
                Ok(()) => tracing::info!(db = path, "database converted"),
                Err(err) => tracing::warn!(
                    db = path,
                    %err,
                    "could not convert the database; it will not shrink, but it will not grow"
                ),
            }
        } else {
            inner.vacuum()?;
        }
        // In WAL mode the file is cut to its new size only when the pages are checkpointed
        // into it: do that now, rather than after the next thousand pages of appends.
        inner
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(SqliteStore {
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn query(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<SharedEvent>, StoreError> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, row_to_event)?;
        let mut events = rows.collect::<Result<Vec<_>, _>>()?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    /// The database's pages in use, in bytes: what `--retain-bytes` bounds.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.lock().used_bytes()?)
    }

    /// The oldest event id kept (0 when there is none).
    pub fn first_id(&self) -> u64 {
        self.lock().ids.first
    }
}

impl Inner {
    fn used_bytes(&self) -> rusqlite::Result<u64> {
        used_bytes(&self.conn, self.page_size)
    }

    /// Hands every free page back to the file system (an incremental-vacuum database; a
    /// no-op on any other).
    fn vacuum(&self) -> rusqlite::Result<()> {
        // Each step of the pragma frees one page: run it to the end.
        let mut stmt = self.conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        Ok(())
    }
}

/// Opens the file at `path` for SQLite, owner-only (see the module's documentation).
fn open_private(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        private::create_dir(dir).map_err(StoreError::file("create", dir))?;
    }
    // Made here, empty and 0600, so that SQLite finds it and never creates it with its own
    // 0644; its -wal and -shm take this mode from it.
    let created = private::create_new(path)
        .map_err(StoreError::file("create", path))?
        .is_some();
    let loose = too_open(path)?;
    let conn = Connection::open(path)?;
    if let Some((file, mode)) = loose.first() {
        if created || !is_pushpoll_database(&conn)? {
            return Err(StoreError::Refused(private::refusal(
                "the database file",
                file,
                *mode,
                "the server made neither it nor a pushpoll database in it, so it does not \
                 change its mode",
            )));
        }
        // Looked at again: reading the schema of a WAL database made its -wal and -shm,
        // with the main file's loose mode.
        for (file, mode) in too_open(path)? {
            private::tighten(&file).map_err(StoreError::file("chmod 600", &file))?;
            tracing::warn!(
                file = %file.display(),
                was = format!("{mode:04o}"),
                "the chat database could be read by other users (it holds the session key, \
                 the session ids and the whispers); made it owner-only (0600)"
            );
        }
    }
    Ok(conn)
}

/// The database's files (it, its `-wal`, its `-shm`) that others may read, with their modes.
fn too_open(path: &Path) -> Result<Vec<(PathBuf, u32)>, StoreError> {
    let mut loose = Vec::new();
    for file in [
        path.to_path_buf(),
        with_suffix(path, "-wal"),
        with_suffix(path, "-shm"),
    ] {
        let mode = private::too_open(&file).map_err(StoreError::file("read", &file))?;
        if let Some(mode) = mode {
            loose.push((file, mode));
        }
    }
    Ok(loose)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Whether the database has pushpoll's `events` table, column for column: the mark of a
/// database this server (any version) made.
fn is_pushpoll_database(conn: &Connection) -> Result<bool, StoreError> {
    let columns: Option<String> = conn.query_row(
        "SELECT group_concat(name, ', ') FROM (SELECT name FROM pragma_table_info('events') ORDER BY cid)",
        [],
        |r| r.get(0),
    )?;
    Ok(columns.as_deref() == Some(COLUMNS))
}

fn stored_ids(conn: &Connection) -> rusqlite::Result<Ids> {
    conn.query_row(
        "SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM events",
        [],
        |r| {
            Ok(Ids {
                first: r.get::<_, i64>(0)? as u64,
                last: r.get::<_, i64>(1)? as u64,
            })
        },
    )
}

fn used_bytes(conn: &Connection, page_size: u64) -> rusqlite::Result<u64> {
    let pages: i64 = conn
        .prepare_cached(
            "SELECT page_count - freelist_count FROM pragma_page_count(), pragma_freelist_count()",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(pages.max(0) as u64 * page_size)
}

/// Deletes the oldest events past `retain`, never the newest; returns how many. `ids` is
/// kept up to date.
fn prune(
    conn: &Connection,
    ids: &mut Ids,
    retain: Retain,
    page_size: u64,
) -> rusqlite::Result<u64> {
    let mut deleted = 0;
    let mut delete_below = |below: u64, ids: &mut Ids| -> rusqlite::Result<()> {
        deleted += conn
            .prepare_cached("DELETE FROM events WHERE id < ?1")?
            .execute([below.min(i64::MAX as u64) as i64])? as u64;
        *ids = stored_ids(conn)?;
        Ok(())
    };
    if ids.first > 0 && ids.last - ids.first >= retain.events {
        delete_below(ids.last - retain.events + 1, ids)?;
    }
    loop {
        let used = used_bytes(conn, page_size)?;
        if used <= retain.bytes || ids.first == 0 || ids.first >= ids.last {
            break;
        }
        // As many of the oldest as the mean event holds of the excess, at least a step;
        // each pass deletes at least one event, so the loop ends.
        let held = ids.last - ids.first + 1;
        let mean = (used / held).max(1);
        let n = ((used - retain.bytes) / mean).max(PRUNE_STEP);
        delete_below(ids.first.saturating_add(n).min(ids.last), ids)?;
    }
    Ok(deleted)
}

fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<SharedEvent> {
    let id: i64 = row.get(0)?;
    let ts: i64 = row.get(1)?;
    let kind: String = row.get(2)?;
    let room: Option<String> = row.get(3)?;
    let sid_a: Option<i64> = row.get(4)?;
    let sid_b: Option<i64> = row.get(5)?;
    let json: String = row.get(6)?;
    let audience = match (room, sid_a, sid_b) {
        (Some(room), _, _) => Audience::Room(room.into()),
        (None, Some(a), Some(b)) => Audience::Sessions(a as u64, b as u64),
        _ => Audience::Everyone,
    };
    Ok(Event::from_json(
        id as u64,
        ts as u64,
        Event::static_kind(&kind),
        audience,
        Bytes::from(json),
    ))
}

impl Store for SqliteStore {
    fn append(
        &self,
        ts: u64,
        body: EventBody,
        audience: Audience,
        publish: &mut dyn FnMut(&SharedEvent),
    ) -> Result<SharedEvent, StoreError> {
        let mut inner = self.lock();
        let Inner {
            conn,
            ids,
            retain,
            page_size,
        } = &mut *inner;
        let id = ids.last + 1;
        let event = Event::with_audience(&WireEvent { id, ts, body }, audience);
        let (room, sid_a, sid_b) = match &event.audience {
            Audience::Room(room) => (Some(room.to_string()), None, None),
            Audience::Sessions(a, b) => (None, Some(*a as i64), Some(*b as i64)),
            Audience::Everyone => (None, None, None),
        };
        let json = std::str::from_utf8(&event.json)?;
        // The insert and the prune it makes due commit together: one fsync per append.
        let mut tx = conn.transaction()?;
        tx.prepare_cached(&format!(
            "INSERT INTO events ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ))?
        .execute(params![
            id as i64, ts as i64, event.kind, room, sid_a, sid_b, json
        ])?;
        let stored = Ids {
            first: if ids.first == 0 { id } else { ids.first },
            last: id,
        };
        // A prune that fails costs the message nothing: it is undone alone, logged, and
        // the next append tries again.
        let mut after = stored;
        let savepoint = tx.savepoint()?;
        match prune(&savepoint, &mut after, *retain, *page_size) {
            Ok(_) => savepoint.commit()?,
            Err(err) => {
                drop(savepoint);
                after = stored;
                tracing::error!(%err, "could not prune the chat log; will retry");
            }
        }
        tx.commit()?;
        *ids = after;
        publish(&event);
        Ok(event)
    }

    fn history(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<SharedEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE room = ?1 AND type = 'message' AND id < ?2 ORDER BY id DESC LIMIT ?3"
        );
        self.query(
            &sql,
            params![room, before.min(i64::MAX as u64) as i64, limit as i64],
        )
    }
}

impl SessionStore for SqliteStore {
    fn signing_key(&self, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        let inner = self.lock();
        inner.conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('signing_key', ?1)",
            params![fresh],
        )?;
        inner
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'signing_key'",
                [],
                |r| r.get(0),
            )
            .map_err(StoreError::from)
    }

    fn load_sessions(&self) -> Result<Vec<StoredSession>, StoreError> {
        let inner = self.lock();
        let mut stmt = inner
            .conn
            .prepare("SELECT id, nick, last_active FROM sessions")?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredSession {
                id: r.get::<_, i64>(0)? as u64,
                nick: r.get(1)?,
                last_active_ms: r.get::<_, i64>(2)? as u64,
            })
        })?;
        rows.collect::<Result<_, _>>().map_err(StoreError::from)
    }

    fn save_session(&self, session: &StoredSession) -> Result<(), StoreError> {
        self.lock()
            .conn
            .prepare_cached(
                "INSERT INTO sessions (id, nick, last_active) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET nick = excluded.nick, last_active = excluded.last_active",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    session.id as i64,
                    session.nick,
                    session.last_active_ms.min(i64::MAX as u64) as i64
                ])
            })
            .map(drop).map_err(StoreError::from)
    }

    fn delete_session(&self, id: u64) -> Result<(), StoreError> {
        self.lock()
            .conn
            .execute("DELETE FROM sessions WHERE id = ?1", params![id as i64])
            .map(drop)
            .map_err(StoreError::from)
    }
}

/// The reads behind [`Backlog`], in the store's own error.
impl SqliteStore {
    fn read_range(
        &self,
        after: u64,
        before: u64,
        limit: PageLimit,
    ) -> Result<Vec<SharedEvent>, StoreError> {
        // Ascending from the cursor, so the primary key walks forward and SQLite stops after
        // the rows this page takes; the byte cap stops the walk early for big events.
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE id > ?1 AND id < ?2 ORDER BY id ASC LIMIT ?3"
        );
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                after.min(i64::MAX as u64) as i64,
                before.min(i64::MAX as u64) as i64,
                limit.events.clamp(1, i64::MAX as usize) as i64
            ],
            row_to_event,
        )?;
        let mut events = Vec::new();
        let mut bytes = 0;
        for row in rows {
            let event = row?;
            bytes += event.json.len();
            events.push(event);
            if bytes >= limit.bytes {
                break;
            }
        }
        // What the range starts with was pruned: say so, as the Redis log does for what it
        // trimmed. (Ids are never skipped on append, so a hole here is always a prune.)
        let first = events.first().map_or(before, |e| e.id);
        if first > after.saturating_add(1) && (inner.ids.first == 0 || inner.ids.first >= first) {
            events.insert(0, gap(after, first));
        }
        Ok(events)
    }

    fn read_recent(
        &self,
        rooms: &[String],
        upto: u64,
        limit: usize,
    ) -> Result<Vec<SharedEvent>, StoreError> {
        // One indexed query per room, merged: the newest `limit` over all of them.
        let mut all = Vec::new();
        for room in rooms {
            let sql = format!(
                "SELECT {COLUMNS} FROM events WHERE room = ?1 AND type = 'message' AND id <= ?2 ORDER BY id DESC LIMIT ?3"
            );
            all.extend(self.query(&sql, params![room, upto as i64, limit as i64])?);
        }
        Ok(crate::feed::backlog::newest(all, limit))
    }
}

impl Backlog for SqliteStore {
    fn range(
        &self,
        after: u64,
        before: u64,
        limit: PageLimit,
    ) -> Result<Vec<SharedEvent>, BacklogError> {
        Ok(self.read_range(after, before, limit)?)
    }

    fn recent(
        &self,
        rooms: &[String],
        upto: u64,
        limit: usize,
    ) -> Result<Vec<SharedEvent>, BacklogError> {
        Ok(self.read_recent(rooms, upto, limit)?)
    }

    fn last_id(&self) -> u64 {
        self.lock().ids.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(room: &str, text: &str) -> EventBody {
        EventBody::Message {
            room: room.into(),
            from: "alice".into(),
            text: text.into(),
        }
    }

    const LOTS: PageLimit = PageLimit {
        events: 100,
        bytes: usize::MAX,
    };

    fn room(name: &str) -> Audience {
        Audience::Room(name.into())
    }

    fn append_n(store: &SqliteStore, n: usize, text: &str) {
        for _ in 0..n {
            store
                .append(1, message("lobby", text), room("lobby"), &mut |_| {})
                .unwrap();
        }
    }

    fn ids(page: &[SharedEvent]) -> Vec<u64> {
        page.iter().map(|e| e.id).collect()
    }

    use crate::feed::tests::gap_of;

    fn file_size(path: &str) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    /// 8,000 bytes of text: the largest message (2000 four-byte characters).
    fn big_text() -> String {
        "\u{1F600}".repeat(2000)
    }

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn the_newest_events_are_kept_and_an_older_cursor_gets_a_gap_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.sqlite");
        let path = path.to_str().unwrap();
        let ten = Retain {
            events: 10,
            bytes: u64::MAX,
        };
        let store = SqliteStore::open_retaining(path, ten).unwrap();
        append_n(&store, 25, "x");
        assert_eq!((store.first_id(), store.last_id()), (16, 25));
        let page = store.range(0, u64::MAX, LOTS).unwrap();
        assert_eq!(gap_of(&page[0]), (15, 0, 16), "then every kept event");
        assert_eq!(ids(&page[1..]), (16..=25).collect::<Vec<_>>());
        // A range wholly pruned is one gap to its end; one that starts at what is kept has none.
        let page = store.range(3, 12, LOTS).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(gap_of(&page[0]), (11, 3, 12));
        assert_eq!(
            ids(&store.range(15, 20, LOTS).unwrap()),
            vec![16, 17, 18, 19]
        );
        // History simply has nothing older.
        assert_eq!(
            ids(&store.history("lobby", u64::MAX, 200).unwrap()),
            (16..=25).collect::<Vec<_>>()
        );
        drop(store);
        let store = SqliteStore::open_retaining(path, ten).unwrap();
        assert_eq!((store.first_id(), store.last_id()), (16, 25));
        append_n(&store, 1, "again");
        assert_eq!(
            (store.first_id(), store.last_id()),
            (17, 26),
            "ids continue"
        );
    }

    #[test]
    fn the_file_stops_growing_at_its_byte_retention() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.sqlite");
        let path = path.to_str().unwrap();
        let wal = format!("{path}-wal");
        let store = SqliteStore::open_retaining(
            path,
            Retain {
                events: u64::MAX,
                bytes: MIB,
            },
        )
        .unwrap();
        let text = big_text();
        let (mut largest, mut largest_wal) = (0, 0);
        // 4.8 MB of messages into a 1 MiB bound.
        for _ in 0..600 {
            append_n(&store, 1, &text);
            largest = largest.max(file_size(path));
            largest_wal = largest_wal.max(file_size(&wal));
        }
        assert!(store.used_bytes().unwrap() <= MIB);
        // Over the bound by at most what one prune step frees (16 events of 8 KB), which
        // the next appends reuse before the file grows.
        assert!(
            largest <= MIB + 16 * 9000,
            "the file reached {largest} bytes"
        );
        assert!(
            largest_wal <= 5 * MIB,
            "the -wal reached {largest_wal} bytes"
        );
        let kept = store.last_id() - store.first_id() + 1;
        assert!((100..130).contains(&kept), "{kept} events of 8 KB kept");
        let page = store.range(0, u64::MAX, LOTS).unwrap();
        assert_eq!(gap_of(&page[0]).2, store.first_id());
    }

    #[test]
    fn a_lowered_retention_prunes_at_start_and_shrinks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.sqlite");
        let path = path.to_str().unwrap();
        append_n(&SqliteStore::open(path).unwrap(), 400, &big_text());
        let before = file_size(path);
        assert!(before > 3 * MIB, "{before}");
        let store = SqliteStore::open_retaining(
            path,
            Retain {
                events: u64::MAX,
                bytes: MIB,
            },
        )
        .unwrap();
        assert!(store.used_bytes().unwrap() <= MIB);
        assert!(file_size(path) <= MIB, "{} bytes", file_size(path));
        assert_eq!(store.last_id(), 400);
    }

    #[test]
    fn a_database_made_before_retention_is_converted_once_and_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.sqlite");
        let path = path.to_str().unwrap();
        {
            // As the server made it before: no auto_vacuum, the schema, rows.
            let conn = Connection::open(path).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            let json = format!("{{\"text\":\"{}\"}}", big_text());
            for id in 1..=400 {
                conn.execute(
                    "INSERT INTO events (id, ts, type, room, json) VALUES (?1, 1, 'message', 'lobby', ?2)",
                    params![id, json],
                )
                .unwrap();
            }
        }
        let before = file_size(path);
        assert!(before > 3 * MIB, "{before}");
        let store = SqliteStore::open_retaining(
            path,
            Retain {
                events: u64::MAX,
                bytes: MIB,
            },
        )
        .unwrap();
        assert!(file_size(path) <= MIB, "{} bytes", file_size(path));
        let mode: i64 = store
            .lock()
            .conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, 2, "incremental from now on");
        assert_eq!(store.last_id(), 400);
    }

    #[test]
    fn a_database_others_can_read_is_made_private_if_it_is_pushpolls_else_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mode_of = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let loosen =
            |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();

        let ours = dir.path().join("sub/ours.sqlite");
        append_n(&SqliteStore::open(ours.to_str().unwrap()).unwrap(), 3, "x");
        assert_eq!(mode_of(&ours), 0o600);
        assert_eq!(
            mode_of(ours.parent().unwrap()),
            0o700,
            "the directory it made"
        );
        loosen(&ours);
        let store = SqliteStore::open(ours.to_str().unwrap()).unwrap();
        assert_eq!(mode_of(&ours), 0o600, "tightened: it is pushpoll's");
        assert_eq!(store.last_id(), 3);

        let foreign = dir.path().join("foreign.sqlite");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT)")
            .unwrap();
        let empty = dir.path().join("empty.sqlite");
        std::fs::write(&empty, b"").unwrap();
        for file in [foreign, empty] {
            loosen(&file);
            let err = SqliteStore::open(file.to_str().unwrap())
                .err()
                .expect("refused")
                .to_string();
            assert!(
                err.contains(&format!("chmod 600 {}", file.display())),
                "{err}"
            );
            assert!(err.contains("mode 0644"), "{err}");
            assert_eq!(mode_of(&file), 0o644, "left as it was");
        }
    }

    /// The bytes of pages one event costs, as a file fills with `n` of them (in one
    /// transaction, as appends with ascending ids pack them).
    fn pages_per_event(text: &str, n: u64) -> (usize, u64) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("c.sqlite").to_str().unwrap()).unwrap();
        let empty = store.used_bytes().unwrap();
        let mut json = 0;
        {
            let mut inner = store.lock();
            let tx = inner.conn.transaction().unwrap();
            for id in 1..=n {
                let body = message("lobby", text);
                // A real timestamp (µs since 1970) and ids of six digits, as in a long-lived log.
                let (id, ts) = (100_000 + id, 1_796_067_548_356_253);
                let event = Event::with_audience(&WireEvent { id, ts, body }, room("lobby"));
                json = event.json.len();
                tx.execute(
                    &format!(
                        "INSERT INTO events ({COLUMNS}) VALUES (?1, 1, 'message', 'lobby', NULL, NULL, ?2)"
                    ),
                    params![id as i64, std::str::from_utf8(&event.json).unwrap()],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        (json, (store.used_bytes().unwrap() - empty) / n)
    }

    /// Why the two defaults go together (the figures of `RETAIN_BYTES`'s comment): an
    /// ordinary event costs about 255 bytes of pages, so a million of them nearly fill
    /// 256 MiB; the largest cost about 8.2 KB, so 256 MiB holds some 32,000.
    #[test]
    fn the_default_bounds_meet_near_a_million_ordinary_events() {
        let (json, cost) = pages_per_event(&"a".repeat(100), 20_000);
        assert_eq!(json, 192, "a 100-character message's event");
        assert!(
            (230..=280).contains(&cost),
            "{cost} bytes of pages per event"
        );
        let fit = RETAIN_BYTES / cost;
        assert!((900_000..=1_200_000).contains(&fit), "{fit} events");
        let (json, cost) = pages_per_event(&big_text(), 2_000);
        assert_eq!(json, 8092, "the largest message's event");
        assert!(
            (8_100..=8_400).contains(&cost),
            "{cost} bytes of pages per event"
        );
    }

    #[test]
    fn ids_continue_after_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/chat.sqlite");
        let path = path.to_str().unwrap();
        {
            let store = SqliteStore::open(path).unwrap();
            for i in 0..3 {
                store
                    .append(
                        1,
                        message("lobby", &format!("m{i}")),
                        room("lobby"),
                        &mut |_| {},
                    )
                    .unwrap();
            }
        }
        let store = SqliteStore::open(path).unwrap();
        assert_eq!(store.last_id(), 3);
        let next = store
            .append(2, message("lobby", "again"), room("lobby"), &mut |_| {})
            .unwrap();
        assert_eq!(next.id, 4);
    }

    #[test]
    fn events_read_back_byte_for_byte_with_their_audience() {
        let store = SqliteStore::open(":memory:").unwrap();
        let mut published = Vec::new();
        let written = store
            .append(5, message("red", "</script> & é"), room("red"), &mut |e| {
                published.push(e.id)
            })
            .unwrap();
        let whisper = EventBody::Whisper {
            from: "a".into(),
            to: "b".into(),
            text: "psst".into(),
        };
        store
            .append(6, whisper, Audience::Sessions(7, 9), &mut |e| {
                published.push(e.id)
            })
            .unwrap();
        assert_eq!(published, vec![1, 2]);
        let page = store.range(0, u64::MAX, LOTS).unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page[0].json, written.json);
        assert_eq!(page[0].audience, room("red"));
        assert_eq!(page[1].audience, Audience::Sessions(7, 9));
        assert_eq!(page[1].kind, "whisper");
    }

    #[test]
    fn ranges_page_forward_from_the_cursor_and_history_pages_back() {
        let store = SqliteStore::open(":memory:").unwrap();
        for i in 0..10 {
            let r = if i % 2 == 0 { "lobby" } else { "red" };
            store
                .append(i, message(r, "x"), room(r), &mut |_| {})
                .unwrap();
        }
        let ids = |page: Vec<SharedEvent>| page.iter().map(|e| e.id).collect::<Vec<_>>();
        let three = PageLimit {
            events: 3,
            bytes: usize::MAX,
        };
        assert_eq!(ids(store.range(2, 9, three).unwrap()), vec![3, 4, 5]);
        assert_eq!(ids(store.range(5, 9, three).unwrap()), vec![6, 7, 8]);
        assert_eq!(ids(store.range(8, 9, three).unwrap()), Vec::<u64>::new());
        // The byte cap ends a page after the event that reaches it, never before the first.
        let one_byte = PageLimit {
            events: 3,
            bytes: 1,
        };
        assert_eq!(ids(store.range(2, 9, one_byte).unwrap()), vec![3]);
        let lobby = store.history("lobby", 9, 2).unwrap();
        assert_eq!(lobby.iter().map(|e| e.id).collect::<Vec<_>>(), vec![5, 7]);
        let both = store.recent(&["lobby".into(), "red".into()], 8, 3).unwrap();
        assert_eq!(both.iter().map(|e| e.id).collect::<Vec<_>>(), vec![6, 7, 8]);
    }
}
