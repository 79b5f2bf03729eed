//! The embedded engine's sessions: in memory, and written through to the [`SessionStore`]
//! when there is one, with the signing key: after a restart a cookie is still valid, its
//! nick still held and its idle clock where it was (last activity is written at most once a
//! second per session, by the idle sweep, so up to a second of it can be lost).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{SessionStore, StoredSession};
use crate::chat::engine::{SessionRules, Spending};
use crate::chat::name::look_alike_keys;
use crate::chat::{ChatError, Nick};

struct Entry {
    nick: String,
    last_active: Instant,
    /// The session's writes of the budget's window.
    spending: Spending,
    /// `last_active` changed since it was last written to the store.
    dirty: bool,
}

impl Entry {
    fn new(nick: &str, last_active: Instant) -> Entry {
        Entry {
            nick: nick.to_string(),
            last_active,
            spending: Spending::default(),
            dirty: false,
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Every live session.
    by_id: HashMap<u64, Entry>,
    /// Each key of a held nick ([`look_alike_keys`]) → the session holding it.
    by_nick: HashMap<String, u64>,
}

impl Inner {
    /// The session other than `id` that holds a nick looking like one with `keys`.
    fn held_by_other(&self, keys: &[String], id: Option<u64>) -> Option<u64> {
        keys.iter()
            .filter_map(|k| self.by_nick.get(k).copied())
            .find(|holder| Some(*holder) != id)
    }

    fn hold(&mut self, nick: &str, id: u64) {
        for key in look_alike_keys(nick) {
            self.by_nick.insert(key, id);
        }
    }

    fn release(&mut self, nick: &str, id: u64) {
        for key in look_alike_keys(nick) {
            if self.by_nick.get(&key) == Some(&id) {
                self.by_nick.remove(&key);
            }
        }
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.by_id.remove(&id)?;
        self.release(&entry.nick, id);
        Some(entry)
    }
}

/// Milliseconds since the Unix epoch: how the store records last activity.
fn unix_ms() -> u64 {
    crate::feed::clock::now_micros() / 1000
}

/// The live sessions of this process.
pub struct Book {
    store: Option<Arc<dyn SessionStore>>,
    inner: Mutex<Inner>,
}

impl Book {
    /// Sessions in memory, written through to `store` if given.
    pub fn new(store: Option<Arc<dyn SessionStore>>) -> Book {
        Book {
            store,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the stored sessions still live (active within `idle`).
    pub fn load(&self, idle: Duration) {
        let Some(store) = &self.store else {
            return;
        };
        let stored = match store.load_sessions() {
            Ok(stored) => stored,
            Err(err) => {
                tracing::error!(%err, "could not read the stored sessions");
                return;
            }
        };
        let now_ms = unix_ms();
        let mut inner = self.lock();
        for s in stored {
            let age = Duration::from_millis(now_ms.saturating_sub(s.last_active_ms));
            let Some(last_active) = Instant::now().checked_sub(age) else {
                continue;
            };
            if age >= idle {
                continue;
            }
            inner.hold(&s.nick, s.id);
            inner.by_id.insert(s.id, Entry::new(&s.nick, last_active));
        }
    }

    /// Runs a store write on the blocking pool; a failure is logged (the session still
    /// works until the next restart).
    async fn persist(
        &self,
        write: impl FnOnce(&dyn SessionStore) -> Result<(), super::StoreError> + Send + 'static,
    ) {
        let Some(store) = &self.store else {
            return;
        };
        let store = store.clone();
        match tokio::task::spawn_blocking(move || write(store.as_ref())).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(%err, "could not store a session change"),
            Err(err) => tracing::error!(%err, "could not store a session change"),
        }
    }

    pub async fn create(&self, id: u64, nick: &Nick, max: u64) -> Result<bool, ChatError> {
        {
            let mut inner = self.lock();
            if inner.held_by_other(&nick.keys(), None).is_some() {
                return Err(ChatError::NickTaken(nick.as_str().to_string()));
            }
            if inner.by_id.len() as u64 >= max {
                return Err(ChatError::TooManySessions(max));
            }
            if inner.by_id.contains_key(&id) {
                return Ok(false);
            }
            inner.hold(nick.as_str(), id);
            inner
                .by_id
                .insert(id, Entry::new(nick.as_str(), Instant::now()));
        }
        let stored = StoredSession {
            id,
            nick: nick.as_str().to_string(),
            last_active_ms: unix_ms(),
        };
        self.persist(move |store| store.save_session(&stored)).await;
        Ok(true)
    }

    pub fn nick(&self, id: u64) -> Option<String> {
        self.lock().by_id.get(&id).map(|e| e.nick.clone())
    }

    pub fn by_nick(&self, keys: &[String]) -> Option<(u64, String)> {
        let inner = self.lock();
        let id = inner.held_by_other(keys, None)?;
        inner.by_id.get(&id).map(|e| (id, e.nick.clone()))
    }

    /// A session this process does not know spends nothing: the chat asked for it a moment
    /// ago, so it ended since, and its write finds it gone.
    pub fn spend(&self, id: u64, bytes: usize, rules: SessionRules) -> Result<(), ChatError> {
        let mut inner = self.lock();
        let Some(entry) = inner.by_id.get_mut(&id) else {
            return Ok(());
        };
        let now = Instant::now();
        entry.spending.spend(now, bytes, rules.budget)?;
        entry.last_active = now;
        entry.dirty = true;
        Ok(())
    }

    pub async fn rename(&self, id: u64, nick: &Nick) -> Result<String, ChatError> {
        let old = {
            let mut inner = self.lock();
            if inner.held_by_other(&nick.keys(), Some(id)).is_some() {
                return Err(ChatError::NickTaken(nick.as_str().to_string()));
            }
            let Some(entry) = inner.by_id.get_mut(&id) else {
                return Err(ChatError::SignedOut);
            };
            let old = std::mem::replace(&mut entry.nick, nick.as_str().to_string());
            entry.last_active = Instant::now();
            inner.release(&old, id);
            inner.hold(nick.as_str(), id);
            old
        };
        let stored = StoredSession {
            id,
            nick: nick.as_str().to_string(),
            last_active_ms: unix_ms(),
        };
        self.persist(move |store| store.save_session(&stored)).await;
        Ok(old)
    }

    pub async fn end(&self, id: u64) {
        if self.lock().remove(id).is_some() {
            self.persist(move |store| store.delete_session(id)).await;
        }
    }

    /// Ends the sessions idle for `idle`, and writes the last activity of those that were
    /// active since the last sweep; the ids ended.
    pub async fn expire_idle(&self, idle: Duration) -> Vec<u64> {
        let (stale, dirty): (Vec<u64>, Vec<StoredSession>) = {
            let mut inner = self.lock();
            let now_ms = unix_ms();
            let stale = inner
                .by_id
                .iter()
                .filter(|(_, e)| e.last_active.elapsed() >= idle)
                .map(|(id, _)| *id)
                .collect();
            let dirty = inner
                .by_id
                .iter_mut()
                .filter_map(|(id, e)| std::mem::take(&mut e.dirty).then_some((*id, &*e)))
                .map(|(id, e)| StoredSession {
                    id,
                    nick: e.nick.clone(),
                    last_active_ms: now_ms
                        .saturating_sub(e.last_active.elapsed().as_millis() as u64),
                })
                .collect();
            (stale, dirty)
        };
        if !dirty.is_empty() {
            self.persist(move |store| dirty.iter().try_for_each(|s| store.save_session(s)))
                .await;
        }
        for id in &stale {
            self.end(*id).await;
        }
        stale
    }

    pub fn live(&self, ids: &[u64]) -> Vec<bool> {
        let inner = self.lock();
        ids.iter().map(|id| inner.by_id.contains_key(id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::session::{COOKIE, random_key};
    use crate::chat::{Budget, EndReason, Sessions};
    use crate::engine::embedded::Embedded;
    use crate::engine::embedded::sqlite::SqliteStore;

    /// One `Cookie` header holding `cookie`.
    fn headers(cookie: &str) -> [&str; 1] {
        [cookie]
    }

    fn nick(s: &str) -> Nick {
        Nick::parse(s).unwrap()
    }

    /// The chat's sessions over an embedded engine that writes them to `store`, after its
    /// start has loaded what `store` holds.
    fn over(store: Arc<SqliteStore>, idle: Duration, key: Vec<u8>) -> Sessions {
        let engine = Embedded::new(store.clone(), Some(store));
        engine.book.load(idle);
        let rules = SessionRules {
            budget: Budget::DEFAULT,
            idle,
        };
        Sessions::new(Arc::new(engine), rules, key)
    }

    /// The restart: a new `Sessions` over the same store (and so the same key) knows the
    /// cookie, the nick and the renamed nick; a logged-out session stays out, and one idle
    /// past the timeout is not brought back.
    #[tokio::test]
    async fn sessions_and_their_key_survive_a_restart_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.sqlite");
        let path = path.to_str().unwrap();
        let open = |idle: Duration| {
            let store = Arc::new(SqliteStore::open(path).unwrap());
            let key = store.signing_key(&random_key()).unwrap();
            over(store, idle, key)
        };
        let hour = Duration::from_secs(3600);
        let (kept, token) = {
            let sessions = open(hour);
            let (kept, token) = sessions.create(nick("kept"), 10).await.unwrap();
            let (gone, _) = sessions.create(nick("gone"), 10).await.unwrap();
            sessions.rename(kept.id, nick("Kept2")).await.unwrap();
            sessions.end(gone.id, EndReason::LoggedOut).await.unwrap();
            (kept, token)
        };
        let sessions = open(hour);
        let cookie = format!("{COOKIE}={token}");
        let found = sessions
            .from_cookies(headers(&cookie))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.id, found.nick.as_str()), (kept.id, "Kept2"));
        assert!(matches!(
            sessions.create(nick("kept2"), 10).await,
            Err(ChatError::NickTaken(_))
        ));
        assert!(sessions.create(nick("gone"), 10).await.is_ok());
        drop(sessions);
        std::thread::sleep(Duration::from_millis(30));
        let short = open(Duration::from_millis(10));
        assert!(
            short
                .from_cookies(headers(&cookie))
                .await
                .unwrap()
                .is_none()
        );
    }

    /// `create` writes the session itself: one that is never renamed, never sends and is
    /// never swept (the sweep writes only sessions that sent) is still there after a restart.
    /// (The test above renames its session, and a rename saves it too.)
    #[tokio::test]
    async fn a_session_that_only_signed_in_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.sqlite");
        let path = path.to_str().unwrap();
        let open = || {
            let store = Arc::new(SqliteStore::open(path).unwrap());
            let key = store.signing_key(&random_key()).unwrap();
            over(store, Duration::from_secs(3600), key)
        };
        let (made, token) = open().create(nick("quiet"), 10).await.unwrap();
        let sessions = open();
        let found = sessions
            .from_cookies(headers(&format!("{COOKIE}={token}")))
            .await
            .unwrap()
            .expect("the cookie of a session that only signed in");
        assert_eq!((found.id, found.nick.as_str()), (made.id, "quiet"));
        assert!(matches!(
            sessions.create(nick("QUIET"), 10).await,
            Err(ChatError::NickTaken(_))
        ));
    }
}
