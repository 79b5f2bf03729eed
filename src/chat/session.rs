//! Chat sessions: who is signed in under which nick (see `name`), their signed cookie tokens,
//! the per-session rate limit and the idle timeout.
//!
//! Where sessions live:
//! - **Embedded** (no `--redis`): in memory, and written through to the SQLite store
//!   ([`SessionStore`]) when there is one, with the signing key: after a restart a cookie is
//!   still valid, its nick still held and its idle clock where it was (last activity is
//!   written at most once a second per session, so up to a second of it can be lost).
//! - **Cluster** (`--redis`): in Redis (`crate::engine::redis::sessions`), so a cookie from one
//!   node is valid on every node, a nick is held once over all of them, and the rate limit
//!   counts a session's messages wherever they were sent. Each node keeps only the
//!   [`Session`] handles (with their `ended` tokens) of the sessions its clients used; an
//!   ended session is announced to every node, which closes its streams.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::ChatError;
use super::name::{Nick, look_alike_keys};
pub use crate::engine::embedded::{SessionStore, StoredSession};
use crate::engine::redis::Redis;
use crate::engine::redis::sessions::{Created, Half, Renamed, Spent};

/// The session cookie's name.
pub const COOKIE: &str = "pushpoll_session";
/// The contract's limit: at most this many messages per session in [`RATE_WINDOW`]
/// (`--rate-limit` changes it).
pub const RATE_LIMIT: usize = 20;
/// The contract's byte budget: at most this many bytes of stored events per session in
/// [`RATE_WINDOW`] (`--rate-limit-bytes` changes it). See [`Budget::bytes`].
pub const RATE_LIMIT_BYTES: usize = 32 * 1024;
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// What one session may store per [`RATE_WINDOW`], wherever it sends from: both must have
/// room for a write to be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Messages, whispers and renames.
    pub events: usize,
    /// Bytes of those events as stored: each charged its JSON with the id counted as one
    /// digit (`crate::chat::stored_bytes`), so what a client is charged does not depend on
    /// how far the log's ids have grown.
    pub bytes: usize,
}

impl Budget {
    /// The contract's defaults (`--rate-limit`, `--rate-limit-bytes`).
    pub const DEFAULT: Budget = Budget {
        events: RATE_LIMIT,
        bytes: RATE_LIMIT_BYTES,
    };
}

impl Budget {
    /// A budget of at least one event (a flag of 0 is refused at start; a library caller
    /// gets one).
    fn at_least_one(budget: Budget) -> Budget {
        Budget {
            events: budget.events.max(1),
            bytes: budget.bytes,
        }
    }
}

/// The names a `429` gives the two halves of the budget (`too many …`).
pub const EVENTS_BUDGET: &str = "messages and renames";
pub const BYTES_BUDGET: &str = "bytes of messages and renames";

/// The name of the half of the budget a cluster script found full.
pub(super) fn half_name(half: Half) -> &'static str {
    match half {
        Half::Events => EVENTS_BUDGET,
        Half::Bytes => BYTES_BUDGET,
    }
}

/// The `429` for a budget that has room again after `wait` (whole seconds, at least one).
pub(super) fn rate_limited(what: &'static str, wait: Duration) -> ChatError {
    ChatError::RateLimited {
        what,
        retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

/// Why a session ended; a WebSocket of the session is closed with the matching code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Idle,
    LoggedOut,
}

impl EndReason {
    /// The word the cluster's `control` channel uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::LoggedOut => "logout",
        }
    }

    pub fn parse(s: &str) -> EndReason {
        if s == "idle" {
            EndReason::Idle
        } else {
            EndReason::LoggedOut
        }
    }
}

/// A live session, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: u64,
    pub nick: String,
    /// Fires when the session ends: its streams and sockets close.
    pub ended: CancellationToken,
    reason: Arc<Mutex<Option<EndReason>>>,
}

impl Session {
    fn new(id: u64, nick: &str) -> Session {
        Session {
            id,
            nick: nick.to_string(),
            ended: CancellationToken::new(),
            reason: Arc::default(),
        }
    }

    pub fn end_reason(&self) -> Option<EndReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn finish(&self, reason: EndReason) {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.ended.cancel();
    }
}

struct Entry {
    session: Session,
    last_active: Instant,
    /// When the last writes were taken and the bytes each was charged, for the budget:
    /// those of the last [`RATE_WINDOW`], so at most [`Budget::events`] of them.
    sent: VecDeque<(Instant, usize)>,
    /// The sum of the bytes in `sent`.
    sent_bytes: usize,
    /// `last_active` changed since it was last written to the store.
    dirty: bool,
}

/// Where the sessions are kept (see the module's documentation).
enum Backend {
    Embedded(Option<Arc<dyn SessionStore>>),
    Cluster(Redis),
}

pub struct Sessions {
    key: Vec<u8>,
    budget: Budget,
    idle: Duration,
    backend: Backend,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Embedded: every live session. Cluster: the sessions this node's clients used.
    by_id: HashMap<u64, Entry>,
    /// Embedded only: each key of a held nick ([`super::name::look_alike_keys`]) →
    /// the session holding it.
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
}

type HmacSha256 = Hmac<Sha256>;

/// Milliseconds since the Unix epoch: how the store records last activity.
fn unix_ms() -> u64 {
    crate::feed::clock::now_micros() / 1000
}

/// A fresh random signing key.
pub fn random_key() -> Vec<u8> {
    let mut key = [0u8; 32];
    // The OS random source failing is not something to serve through.
    getrandom::fill(&mut key).unwrap_or_else(|e| panic!("no OS randomness: {e}"));
    key.to_vec()
}

/// The signing key in `path` (`--secret-file`): at least 32 bytes, used whole. A missing file
/// is made with 32 random bytes, readable by its owner only (`0600`, whatever the umask). An
/// existing file that other users can read or write is refused: the server never makes one
/// (this function always made it `0600`), so someone else made or loosened it, and a key
/// others may have read signs cookies they can forge.
pub fn secret_from_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use crate::engine::embedded::private;
    use anyhow::Context as _;
    use std::io::Write as _;
    if let Some(mode) =
        private::too_open(path).with_context(|| format!("cannot read {}", path.display()))?
    {
        anyhow::bail!(private::refusal(
            "the secret file",
            path,
            mode,
            "it holds the key that signs the session cookies, and whoever reads it can \
             forge them"
        ));
    }
    match std::fs::read(path) {
        Ok(key) if key.len() >= 32 => return Ok(key),
        Ok(key) => anyhow::bail!(
            "the secret file {} holds {} bytes; it needs at least 32",
            path.display(),
            key.len()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
    let key = random_key();
    match private::create_new(path) {
        Ok(Some(mut file)) => {
            file.write_all(&key)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(key)
        }
        // Another node made it first: use theirs.
        Ok(None) => secret_from_file(path),
        Err(err) => Err(err).with_context(|| format!("cannot create {}", path.display())),
    }
}

fn random_id() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("no OS randomness: {e}"));
    (u64::from_le_bytes(bytes) >> 1).max(1) // fits SQLite's signed integers
}

impl Sessions {
    /// In memory only, with a fresh random key: tokens of an earlier run are not valid.
    /// Each session may store what `budget` allows per [`RATE_WINDOW`].
    pub fn new(budget: Budget) -> Sessions {
        Sessions::embedded(budget, Duration::MAX, random_key(), None)
    }

    /// Embedded sessions signed with `key`, written through to `store` if given, whose
    /// sessions still live (active within `idle`) are loaded now.
    pub fn embedded(
        budget: Budget,
        idle: Duration,
        key: Vec<u8>,
        store: Option<Arc<dyn SessionStore>>,
    ) -> Sessions {
        let mut inner = Inner::default();
        if let Some(store) = &store {
            let now_ms = unix_ms();
            match store.load_sessions() {
                Ok(stored) => {
                    for s in stored {
                        let age = Duration::from_millis(now_ms.saturating_sub(s.last_active_ms));
                        let Some(last_active) = Instant::now().checked_sub(age) else {
                            continue;
                        };
                        if age >= idle {
                            continue;
                        }
                        inner.hold(&s.nick, s.id);
                        inner.by_id.insert(
                            s.id,
                            Entry {
                                session: Session::new(s.id, &s.nick),
                                last_active,
                                sent: VecDeque::new(),
                                sent_bytes: 0,
                                dirty: false,
                            },
                        );
                    }
                }
                Err(err) => tracing::error!(%err, "could not read the stored sessions"),
            }
        }
        Sessions {
            key,
            budget: Budget::at_least_one(budget),
            idle,
            backend: Backend::Embedded(store),
            inner: Mutex::new(inner),
        }
    }

    /// Sessions kept in the cluster's Redis, signed with the cluster's `key`.
    pub fn cluster(budget: Budget, idle: Duration, key: Vec<u8>, redis: Redis) -> Sessions {
        Sessions {
            key,
            budget: Budget::at_least_one(budget),
            idle,
            backend: Backend::Cluster(redis),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a store write on the blocking pool; a failure is logged (the session still
    /// works until the next restart).
    async fn persist(
        &self,
        write: impl FnOnce(&dyn SessionStore) -> Result<(), String> + Send + 'static,
    ) {
        if let Backend::Embedded(Some(store)) = &self.backend {
            let store = store.clone();
            let done = tokio::task::spawn_blocking(move || write(store.as_ref())).await;
            if let Ok(Err(err)) | Err(err) = done.map_err(|e| e.to_string()) {
                tracing::error!(%err, "could not store a session change");
            }
        }
    }

    /// Starts a session for `nick`; `409` if someone online holds it, `503` while
    /// `max_sessions` are live (checked atomically, so concurrent logins cannot overshoot).
    pub async fn create(
        &self,
        nick: Nick,
        max_sessions: u64,
    ) -> Result<(Session, String), ChatError> {
        if let Backend::Cluster(redis) = &self.backend {
            loop {
                let id = random_id();
                match redis
                    .create_session(id, nick.as_str(), &nick.keys(), max_sessions, self.idle)
                    .await?
                {
                    Created::Ok => {
                        let session = self.remember(id, nick.as_str());
                        return Ok((session, self.token(id)));
                    }
                    Created::NickTaken => return Err(ChatError::NickTaken(nick.into())),
                    Created::Full => return Err(ChatError::TooManySessions(max_sessions)),
                    Created::IdInUse => continue,
                }
            }
        }
        let session = {
            let mut inner = self.lock();
            if inner.held_by_other(&nick.keys(), None).is_some() {
                return Err(ChatError::NickTaken(nick.into()));
            }
            if inner.by_id.len() as u64 >= max_sessions {
                return Err(ChatError::TooManySessions(max_sessions));
            }
            let mut id = random_id();
            while inner.by_id.contains_key(&id) {
                id = random_id();
            }
            let session = Session::new(id, nick.as_str());
            inner.hold(nick.as_str(), id);
            inner.by_id.insert(
                id,
                Entry {
                    session: session.clone(),
                    last_active: Instant::now(),
                    sent: VecDeque::new(),
                    sent_bytes: 0,
                    dirty: false,
                },
            );
            session
        };
        let stored = StoredSession {
            id: session.id,
            nick: session.nick.clone(),
            last_active_ms: unix_ms(),
        };
        self.persist(move |store| store.save_session(&stored)).await;
        let token = self.token(session.id);
        Ok((session, token))
    }

    /// The nick this node last knew session `id` by (a cluster checks it in Redis).
    pub fn known_nick(&self, id: u64) -> Option<String> {
        self.lock().by_id.get(&id).map(|e| e.session.nick.clone())
    }

    /// The budget per [`RATE_WINDOW`] and the idle timeout: what a cluster script checks.
    pub fn limits(&self) -> (Budget, Duration) {
        (self.budget, self.idle)
    }

    /// Cluster: this node's handle on live session `id`, made if it has none, with `nick`.
    pub(super) fn remember(&self, id: u64, nick: &str) -> Session {
        let mut inner = self.lock();
        let entry = inner.by_id.entry(id).or_insert_with(|| Entry {
            session: Session::new(id, nick),
            last_active: Instant::now(),
            sent: VecDeque::new(),
            sent_bytes: 0,
            dirty: false,
        });
        if entry.session.nick != nick {
            entry.session.nick = nick.to_string();
        }
        entry.session.clone()
    }

    /// `ID.SIGNATURE`: the session id and its HMAC-SHA256 under the server's key.
    fn token(&self, id: u64) -> String {
        format!("{id:x}.{}", URL_SAFE_NO_PAD.encode(self.sign(id)))
    }

    fn sign(&self, id: u64) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key size"));
        mac.update(&id.to_be_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn verify(&self, token: &str) -> Option<u64> {
        let (id, sig) = token.split_once('.')?;
        let id = u64::from_str_radix(id, 16).ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut mac = HmacSha256::new_from_slice(&self.key).ok()?;
        mac.update(&id.to_be_bytes());
        mac.verify_slice(&sig).ok()?;
        Some(id)
    }

    /// The live session named by a request's cookie, if any. `cookie_headers`: the values
    /// of its `Cookie` headers (the HTTP edge reads them; the chat knows no HTTP types).
    pub async fn from_cookies<'a>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<Session>, ChatError> {
        match self.id_from_cookies(cookie_headers) {
            Some(id) => self.get(id).await,
            None => Ok(None),
        }
    }

    /// The session id a request's cookie carries, its signature checked, without asking
    /// whether the session is still live: for a write, whose own check says so (in a
    /// cluster, inside the write's script and deadline).
    pub fn id_from_cookies<'a>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'a str>,
    ) -> Option<u64> {
        cookie_headers
            .into_iter()
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .find_map(|token| self.verify(token))
    }

    pub async fn get(&self, id: u64) -> Result<Option<Session>, ChatError> {
        if let Backend::Cluster(redis) = &self.backend {
            return Ok(match redis.session(id, self.idle).await? {
                Some(nick) => Some(self.remember(id, &nick)),
                None => {
                    self.end_here(id, EndReason::Idle);
                    None
                }
            });
        }
        Ok(self.lock().by_id.get(&id).map(|e| e.session.clone()))
    }

    /// The session currently holding `nick`, if it is online.
    /// The nick is matched as the nick rule does: whoever holds a nick that looks like it.
    pub async fn by_nick(&self, nick: &str) -> Result<Option<Session>, ChatError> {
        let keys = look_alike_keys(nick);
        if let Backend::Cluster(redis) = &self.backend {
            return Ok(redis
                .session_by_nick(&keys, self.idle)
                .await?
                .map(|(id, nick)| self.remember(id, &nick)));
        }
        let inner = self.lock();
        let id = inner.held_by_other(&keys, None);
        Ok(id.and_then(|id| inner.by_id.get(&id).map(|e| e.session.clone())))
    }

    /// Charges one write of `bytes` (its [`crate::chat::stored_bytes`]) to the session's
    /// budget, over every node in a cluster: the one place a session's budget is decided.
    /// Past either half of it, `429` with the wait until the oldest writes of the window have
    /// left enough room, naming the half that refused.
    pub async fn spend(&self, id: u64, bytes: usize) -> Result<(), ChatError> {
        if let Backend::Cluster(redis) = &self.backend {
            let limits = (self.budget.events, self.budget.bytes);
            return match redis
                .spend(id, limits, bytes, RATE_WINDOW, self.idle)
                .await?
            {
                Spent::Ok => Ok(()),
                Spent::Wait(wait, half) => Err(rate_limited(half_name(half), wait)),
                Spent::SignedOut => Err(ChatError::SignedOut),
            };
        }
        let mut inner = self.lock();
        let Some(entry) = inner.by_id.get_mut(&id) else {
            return Ok(());
        };
        let now = Instant::now();
        while let Some(&(at, charged)) = entry.sent.front()
            && now.duration_since(at) >= RATE_WINDOW
        {
            entry.sent.pop_front();
            entry.sent_bytes -= charged;
        }
        // When the write at `at` leaves the window.
        let leaves = |at: Instant| RATE_WINDOW.saturating_sub(now.duration_since(at));
        if entry.sent.len() >= self.budget.events {
            let oldest = entry.sent.front().map_or(now, |&(at, _)| at);
            return Err(rate_limited(EVENTS_BUDGET, leaves(oldest)));
        }
        if entry.sent_bytes + bytes > self.budget.bytes {
            // Wait until the oldest writes whose leaving makes room have left. A write larger
            // than the whole budget finds none and is told a whole window (the flag's minimum
            // is above the largest event, so only a library caller can ask for one).
            let mut left = entry.sent_bytes;
            let mut wait = RATE_WINDOW;
            for &(at, charged) in &entry.sent {
                left -= charged;
                if left + bytes <= self.budget.bytes {
                    wait = leaves(at);
                    break;
                }
            }
            return Err(rate_limited(BYTES_BUDGET, wait));
        }
        entry.sent.push_back((now, bytes));
        entry.sent_bytes += bytes;
        entry.last_active = now;
        entry.dirty = true;
        Ok(())
    }

    /// Renames the session; returns the old nick. `409` if the new nick is held by another.
    pub async fn rename(&self, id: u64, nick: Nick) -> Result<String, ChatError> {
        if let Backend::Cluster(redis) = &self.backend {
            return match redis
                .rename_session(id, nick.as_str(), &nick.keys(), self.idle)
                .await?
            {
                Renamed::Ok(old) => {
                    self.remember(id, nick.as_str());
                    Ok(old)
                }
                Renamed::NickTaken => Err(ChatError::NickTaken(nick.into())),
                Renamed::SignedOut => Err(ChatError::SignedOut),
            };
        }
        let old = {
            let mut inner = self.lock();
            if inner.held_by_other(&nick.keys(), Some(id)).is_some() {
                return Err(ChatError::NickTaken(nick.into()));
            }
            let Some(entry) = inner.by_id.get_mut(&id) else {
                return Err(ChatError::SignedOut);
            };
            let old = std::mem::replace(&mut entry.session.nick, nick.as_str().to_string());
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

    /// Ends a session everywhere: frees its nick and fires its `ended` token (in a cluster,
    /// on every node). Returns it if it was live here.
    pub async fn end(&self, id: u64, reason: EndReason) -> Result<Option<Session>, ChatError> {
        if let Backend::Cluster(redis) = &self.backend {
            redis.end_session(id, reason.as_str()).await?;
            return Ok(self.end_here(id, reason));
        }
        let ended = self.end_here(id, reason);
        if ended.is_some() {
            self.persist(move |store| store.delete_session(id)).await;
        }
        Ok(ended)
    }

    /// Ends this node's handle on the session: its streams here close.
    pub fn end_here(&self, id: u64, reason: EndReason) -> Option<Session> {
        let mut inner = self.lock();
        let entry = inner.by_id.remove(&id)?;
        inner.release(&entry.session.nick, id);
        drop(inner);
        entry.session.finish(reason);
        Some(entry.session)
    }

    /// Ends every session without activity for the idle timeout; returns those of this
    /// node. In a cluster Redis finds them (every node asks; each is ended once) and every
    /// node hears of it on the `control` channel; this also drops this node's handles on
    /// sessions Redis no longer has (a message missed while cut off).
    pub async fn expire_idle(&self) -> Result<Vec<Session>, ChatError> {
        if let Backend::Cluster(redis) = &self.backend {
            let ended = redis.sweep_sessions(self.idle, 1000).await?;
            let mut sessions: Vec<Session> = ended
                .into_iter()
                .filter_map(|id| self.end_here(id, EndReason::Idle))
                .collect();
            let ids: Vec<u64> = self.lock().by_id.keys().copied().collect();
            for (id, live) in ids.iter().zip(redis.sessions_live(&ids).await?) {
                if !live {
                    sessions.extend(self.end_here(*id, EndReason::Idle));
                }
            }
            return Ok(sessions);
        }
        let (stale, dirty): (Vec<u64>, Vec<StoredSession>) = {
            let mut inner = self.lock();
            let now_ms = unix_ms();
            let stale = inner
                .by_id
                .iter()
                .filter(|(_, e)| e.last_active.elapsed() >= self.idle)
                .map(|(id, _)| *id)
                .collect();
            let dirty = inner
                .by_id
                .values_mut()
                .filter_map(|e| std::mem::take(&mut e.dirty).then_some(&*e))
                .map(|e| StoredSession {
                    id: e.session.id,
                    nick: e.session.nick.clone(),
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
        let mut ended = Vec::new();
        for id in stale {
            if let Some(session) = self.end(id, EndReason::Idle).await? {
                ended.push(session);
            }
        }
        Ok(ended)
    }

    /// The `Set-Cookie` value that stores `token` (HttpOnly, SameSite=Strict).
    pub fn cookie(token: &str) -> String {
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")
    }

    /// The `Set-Cookie` value that removes the cookie.
    pub fn clear_cookie() -> String {
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::embedded::sqlite::SqliteStore;

    /// One `Cookie` header holding `cookie`.
    fn headers(cookie: &str) -> [&str; 1] {
        [cookie]
    }

    fn nick(s: &str) -> Nick {
        Nick::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_signed_cookie_finds_its_session_and_a_forged_one_does_not() {
        let sessions = Sessions::new(Budget::DEFAULT);
        let (session, token) = sessions.create(nick("alice"), 10).await.unwrap();
        let found = sessions
            .from_cookies(headers(&format!("a=1; {COOKIE}={token}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, session.id);
        let (id, sig) = token.split_once('.').unwrap();
        let forged = format!("{COOKIE}={:x}.{sig}", session.id ^ 1);
        assert!(
            sessions
                .from_cookies(headers(&forged))
                .await
                .unwrap()
                .is_none()
        );
        let bad = format!("{COOKIE}={id}.AAAA");
        assert!(
            sessions
                .from_cookies(headers(&bad))
                .await
                .unwrap()
                .is_none()
        );
        let other = Sessions::new(Budget::DEFAULT);
        let cookie = format!("{COOKIE}={token}");
        assert!(
            other
                .from_cookies(headers(&cookie))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_nick_is_held_until_its_session_ends_whatever_its_case() {
        let sessions = Sessions::new(Budget::DEFAULT);
        let (alice, _) = sessions.create(nick("alice"), 10).await.unwrap();
        assert!(matches!(
            sessions.create(nick("ALICE"), 10).await,
            Err(ChatError::NickTaken(_))
        ));
        let (bob, _) = sessions.create(nick("bob"), 10).await.unwrap();
        assert!(sessions.rename(bob.id, nick("Alice")).await.is_err());
        sessions
            .end(alice.id, EndReason::LoggedOut)
            .await
            .unwrap()
            .unwrap();
        assert!(alice.ended.is_cancelled());
        assert_eq!(alice.end_reason(), Some(EndReason::LoggedOut));
        assert_eq!(sessions.rename(bob.id, nick("Alice")).await.unwrap(), "bob");
        assert_eq!(sessions.by_nick("alice").await.unwrap().unwrap().id, bob.id);
    }

    #[tokio::test]
    async fn live_sessions_are_capped_and_an_ended_one_frees_its_place() {
        let sessions = Sessions::new(Budget::DEFAULT);
        let (a, _) = sessions.create(nick("a"), 2).await.unwrap();
        sessions.create(nick("b"), 2).await.unwrap();
        assert!(matches!(
            sessions.create(nick("c"), 2).await,
            Err(ChatError::TooManySessions(2))
        ));
        sessions.end(a.id, EndReason::LoggedOut).await.unwrap();
        assert!(sessions.create(nick("c"), 2).await.is_ok());
    }

    #[tokio::test]
    async fn the_rate_limit_allows_twenty_messages_per_ten_seconds() {
        let sessions = Sessions::new(Budget::DEFAULT);
        let (s, _) = sessions.create(nick("alice"), 10).await.unwrap();
        for _ in 0..RATE_LIMIT {
            sessions.spend(s.id, 100).await.unwrap();
        }
        match sessions.spend(s.id, 100).await {
            Err(ChatError::RateLimited { retry_after, what }) => {
                assert_eq!(what, EVENTS_BUDGET);
                assert!((1..=10).contains(&retry_after), "{retry_after}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// The byte half: writes are taken while their sum fits, the one that would pass it is
    /// refused (and not charged), a smaller one that fits is still taken, and another session
    /// has its own budget.
    #[tokio::test]
    async fn the_byte_budget_refuses_the_write_that_would_pass_it() {
        let sessions = Sessions::new(Budget {
            events: 100,
            bytes: 10_000,
        });
        let (s, _) = sessions.create(nick("alice"), 10).await.unwrap();
        let (other, _) = sessions.create(nick("bob"), 10).await.unwrap();
        for _ in 0..4 {
            sessions.spend(s.id, 2_000).await.unwrap();
        }
        match sessions.spend(s.id, 2_001).await {
            Err(ChatError::RateLimited { retry_after, what }) => {
                assert_eq!(what, BYTES_BUDGET);
                assert!((1..=10).contains(&retry_after), "{retry_after}")
            }
            other => panic!("{other:?}"),
        }
        sessions.spend(s.id, 2_000).await.unwrap();
        assert!(sessions.spend(s.id, 1).await.is_err(), "exactly full");
        sessions.spend(other.id, 10_000).await.unwrap();
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
            Sessions::embedded(Budget::DEFAULT, idle, key, Some(store))
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
            Sessions::embedded(Budget::DEFAULT, Duration::from_secs(3600), key, Some(store))
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

    #[test]
    fn a_secret_file_others_can_read_is_refused_and_left_as_it_is() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, [7u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = secret_from_file(&path).unwrap_err().to_string();
        assert!(err.contains("mode 0644"), "{err}");
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o644,
            "the server does not change a file it did not make"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(secret_from_file(&path).unwrap(), vec![7u8; 32]);
    }

    #[test]
    fn a_secret_file_is_made_once_private_and_refused_when_short() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let made = secret_from_file(&path).unwrap();
        assert_eq!(made.len(), 32);
        assert_eq!(secret_from_file(&path).unwrap(), made);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, b"short").unwrap();
        let err = secret_from_file(&path).unwrap_err().to_string();
        assert!(err.contains("at least 32"), "{err}");
    }
}
