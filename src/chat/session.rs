//! Chat sessions: who is signed in under which nick (see `name`), their signed cookie tokens,
//! the per-session rate limit and the idle timeout. Sessions live in memory: after a restart a
//! browser's cookie is no longer valid and the page asks for a nick again (the history, in the
//! store, remains).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::ChatError;
use super::name::Nick;

/// The session cookie's name.
pub const COOKIE: &str = "pushpoll_session";
/// The contract's limit: at most this many messages per session in [`RATE_WINDOW`]
/// (`--rate-limit` changes it).
pub const RATE_LIMIT: usize = 20;
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Why a session ended; a WebSocket of the session is closed with the matching code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Idle,
    LoggedOut,
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
    pub fn end_reason(&self) -> Option<EndReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Entry {
    session: Session,
    last_active: Instant,
    /// When the last messages were sent, for the rate limit (at most RATE_LIMIT kept).
    sent: VecDeque<Instant>,
}

pub struct Sessions {
    key: [u8; 32],
    rate_limit: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<u64, Entry>,
    by_nick: HashMap<String, u64>,
}

type HmacSha256 = Hmac<Sha256>;

impl Sessions {
    /// A fresh random signing key each start: tokens of an earlier run are not valid.
    /// Each session may send `rate_limit` messages per [`RATE_WINDOW`].
    pub fn new(rate_limit: usize) -> Sessions {
        let mut key = [0u8; 32];
        // The OS random source failing is not something to serve through.
        getrandom::fill(&mut key).unwrap_or_else(|e| panic!("no OS randomness: {e}"));
        Sessions {
            key,
            rate_limit: rate_limit.max(1),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session for `nick`; `409` if someone online holds it, `503` while
    /// `max_sessions` are live (checked under the lock, so concurrent logins cannot overshoot).
    pub fn create(&self, nick: Nick, max_sessions: u64) -> Result<(Session, String), ChatError> {
        let mut inner = self.lock();
        if inner.by_nick.contains_key(&nick.key()) {
            return Err(ChatError::NickTaken(nick.into()));
        }
        if inner.by_id.len() as u64 >= max_sessions {
            return Err(ChatError::TooManySessions(max_sessions));
        }
        let mut id = 0;
        while id == 0 || inner.by_id.contains_key(&id) {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("no OS randomness: {e}"));
            id = u64::from_le_bytes(bytes) >> 1; // fits SQLite's signed integers
        }
        let session = Session {
            id,
            nick: nick.as_str().to_string(),
            ended: CancellationToken::new(),
            reason: Arc::default(),
        };
        inner.by_nick.insert(nick.key(), id);
        inner.by_id.insert(
            id,
            Entry {
                session: session.clone(),
                last_active: Instant::now(),
                sent: VecDeque::new(),
            },
        );
        Ok((session, self.token(id)))
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
    pub fn from_cookies<'a>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'a str>,
    ) -> Option<Session> {
        let id = cookie_headers
            .into_iter()
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .find_map(|token| self.verify(token))?;
        self.get(id)
    }

    pub fn get(&self, id: u64) -> Option<Session> {
        self.lock().by_id.get(&id).map(|e| e.session.clone())
    }

    /// The session currently holding `nick`, if it is online.
    pub fn by_nick(&self, nick: &str) -> Option<Session> {
        let inner = self.lock();
        let id = inner.by_nick.get(&nick.to_lowercase())?;
        inner.by_id.get(id).map(|e| e.session.clone())
    }

    /// Counts one message against the rate limit; `Err(seconds to wait)` past it.
    pub fn spend(&self, id: u64) -> Result<(), u64> {
        let mut inner = self.lock();
        let Some(entry) = inner.by_id.get_mut(&id) else {
            return Ok(());
        };
        let now = Instant::now();
        while entry
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW)
        {
            entry.sent.pop_front();
        }
        if entry.sent.len() >= self.rate_limit {
            let oldest = entry.sent.front().copied().unwrap_or(now);
            let wait = RATE_WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        entry.sent.push_back(now);
        entry.last_active = now;
        Ok(())
    }

    /// Renames the session; returns the old nick. `409` if the new nick is held by another.
    pub fn rename(&self, id: u64, nick: Nick) -> Result<String, ChatError> {
        let mut inner = self.lock();
        if inner
            .by_nick
            .get(&nick.key())
            .is_some_and(|holder| *holder != id)
        {
            return Err(ChatError::NickTaken(nick.into()));
        }
        let Some(entry) = inner.by_id.get_mut(&id) else {
            return Err(ChatError::SignedOut);
        };
        let old = std::mem::replace(&mut entry.session.nick, nick.as_str().to_string());
        entry.last_active = Instant::now();
        inner.by_nick.remove(&old.to_lowercase());
        inner.by_nick.insert(nick.key(), id);
        Ok(old)
    }

    /// Ends a session: frees its nick and fires its `ended` token.
    pub fn end(&self, id: u64, reason: EndReason) -> Option<Session> {
        let mut inner = self.lock();
        let entry = inner.by_id.remove(&id)?;
        inner.by_nick.remove(&entry.session.nick.to_lowercase());
        drop(inner);
        *entry
            .session
            .reason
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(reason);
        entry.session.ended.cancel();
        Some(entry.session)
    }

    /// Ends every session without activity for `idle`; returns them.
    pub fn expire_idle(&self, idle: Duration) -> Vec<Session> {
        let stale: Vec<u64> = self
            .lock()
            .by_id
            .iter()
            .filter(|(_, e)| e.last_active.elapsed() >= idle)
            .map(|(id, _)| *id)
            .collect();
        stale
            .into_iter()
            .filter_map(|id| self.end(id, EndReason::Idle))
            .collect()
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

    /// One `Cookie` header holding `cookie`.
    fn headers(cookie: &str) -> [&str; 1] {
        [cookie]
    }

    #[test]
    fn a_signed_cookie_finds_its_session_and_a_forged_one_does_not() {
        let sessions = Sessions::new(RATE_LIMIT);
        let (session, token) = sessions.create(Nick::parse("alice").unwrap(), 10).unwrap();
        let found = sessions
            .from_cookies(headers(&format!("a=1; {COOKIE}={token}")))
            .unwrap();
        assert_eq!(found.id, session.id);
        let (id, _) = token.split_once('.').unwrap();
        let forged = format!(
            "{COOKIE}={:x}.{}",
            session.id ^ 1,
            token.split_once('.').unwrap().1
        );
        assert!(sessions.from_cookies(headers(&forged)).is_none());
        assert!(
            sessions
                .from_cookies(headers(&format!("{COOKIE}={id}.AAAA")))
                .is_none()
        );
        assert!(
            Sessions::new(RATE_LIMIT)
                .from_cookies(headers(&format!("{COOKIE}={token}")))
                .is_none()
        );
    }

    #[test]
    fn a_nick_is_held_until_its_session_ends_whatever_its_case() {
        let sessions = Sessions::new(RATE_LIMIT);
        let (alice, _) = sessions.create(Nick::parse("alice").unwrap(), 10).unwrap();
        assert!(matches!(
            sessions.create(Nick::parse("ALICE").unwrap(), 10),
            Err(ChatError::NickTaken(_))
        ));
        let (bob, _) = sessions.create(Nick::parse("bob").unwrap(), 10).unwrap();
        assert!(
            sessions
                .rename(bob.id, Nick::parse("Alice").unwrap())
                .is_err()
        );
        sessions.end(alice.id, EndReason::LoggedOut).unwrap();
        assert!(alice.ended.is_cancelled());
        assert_eq!(alice.end_reason(), Some(EndReason::LoggedOut));
        assert_eq!(
            sessions
                .rename(bob.id, Nick::parse("Alice").unwrap())
                .unwrap(),
            "bob"
        );
        assert_eq!(sessions.by_nick("alice").unwrap().id, bob.id);
    }

    #[test]
    fn live_sessions_are_capped_and_an_ended_one_frees_its_place() {
        let sessions = Sessions::new(RATE_LIMIT);
        let (a, _) = sessions.create(Nick::parse("a").unwrap(), 2).unwrap();
        sessions.create(Nick::parse("b").unwrap(), 2).unwrap();
        assert!(matches!(
            sessions.create(Nick::parse("c").unwrap(), 2),
            Err(ChatError::TooManySessions(2))
        ));
        sessions.end(a.id, EndReason::LoggedOut).unwrap();
        assert!(sessions.create(Nick::parse("c").unwrap(), 2).is_ok());
    }

    #[test]
    fn the_rate_limit_allows_twenty_messages_per_ten_seconds() {
        let sessions = Sessions::new(RATE_LIMIT);
        let (s, _) = sessions.create(Nick::parse("alice").unwrap(), 10).unwrap();
        for _ in 0..RATE_LIMIT {
            sessions.spend(s.id).unwrap();
        }
        let wait = sessions.spend(s.id).unwrap_err();
        assert!((1..=10).contains(&wait), "{wait}");
    }
}
