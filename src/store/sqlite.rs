//! The SQLite store (rusqlite, SQLite compiled in). One table of events keyed by id; WAL
//! journal with `synchronous=FULL`, so an append is on disk before it is acknowledged and
//! survives `kill -9` (and power loss).
//!
//! One connection behind a std mutex: SQLite serializes writers anyway, and holding the
//! lock through `publish` is what keeps the live feed in id order. Callers run these
//! methods on the blocking pool, never on an async worker.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use rusqlite::{Connection, params};

use super::{Backlog, PageLimit, SessionStore, Store, StoreError, StoredSession};
use crate::event::{Audience, Event, EventBody, SharedEvent, WireEvent};

pub struct SqliteStore {
    inner: Mutex<Inner>,
}

struct Inner {
    conn: Connection,
    last_id: u64,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError(err.to_string())
    }
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
    /// Opens (creating if needed) the database at `path`; `:memory:` keeps nothing.
    pub fn open(path: &str) -> Result<SqliteStore, StoreError> {
        let conn = if path == ":memory:" {
            Connection::open_in_memory()?
        } else {
            if let Some(dir) = Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
            }
            Connection::open(path)?
        };
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        let last_id: i64 =
            conn.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?;
        Ok(SqliteStore {
            inner: Mutex::new(Inner {
                conn,
                last_id: last_id as u64,
            }),
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
        let id = inner.last_id + 1;
        let event = Event::with_audience(&WireEvent { id, ts, body }, audience);
        let (room, sid_a, sid_b) = match &event.audience {
            Audience::Room(room) => (Some(room.to_string()), None, None),
            Audience::Sessions(a, b) => (None, Some(*a as i64), Some(*b as i64)),
            Audience::Everyone => (None, None, None),
        };
        let json = std::str::from_utf8(&event.json).map_err(|e| StoreError(e.to_string()))?;
        inner
            .conn
            .prepare_cached(&format!(
                "INSERT INTO events ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))?
            .execute(params![
                id as i64, ts as i64, event.kind, room, sid_a, sid_b, json
            ])?;
        inner.last_id = id;
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
    fn signing_key(&self, fresh: &[u8]) -> Result<Vec<u8>, String> {
        let inner = self.lock();
        inner
            .conn
            .execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('signing_key', ?1)",
                params![fresh],
            )
            .map_err(|e| e.to_string())?;
        inner
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'signing_key'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| e.to_string())
    }

    fn load_sessions(&self) -> Result<Vec<StoredSession>, String> {
        let inner = self.lock();
        let mut stmt = inner
            .conn
            .prepare("SELECT id, nick, last_active FROM sessions")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StoredSession {
                    id: r.get::<_, i64>(0)? as u64,
                    nick: r.get(1)?,
                    last_active_ms: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
    }

    fn save_session(&self, session: &StoredSession) -> Result<(), String> {
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
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn delete_session(&self, id: u64) -> Result<(), String> {
        self.lock()
            .conn
            .execute("DELETE FROM sessions WHERE id = ?1", params![id as i64])
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

impl Backlog for SqliteStore {
    fn range(
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
        Ok(events)
    }

    fn recent(
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

    fn last_id(&self) -> u64 {
        self.lock().last_id
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
