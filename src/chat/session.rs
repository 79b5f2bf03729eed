//! Chat sessions: who is signed in under which nick (see `name`), their signed cookie tokens,
//! the per-session rate limit and the idle timeout.
//!
//! Which sessions are live, under which nick, and what each has spent is the engine's to keep
//! ([`Engine`]): a cookie is valid on every node that shares the engine, a nick is held once
//! over all of them, and the budget counts a session's writes wherever they were sent. Each
//! node keeps only the [`Session`] handles (with their `ended` tokens) of the sessions its
//! clients used; an ended session is announced to every node, which closes its streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::ChatError;
use super::engine::{Engine, SessionRules};
use super::name::{Nick, look_alike_keys};

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
    pub(super) fn at_least_one(budget: Budget) -> Budget {
        Budget {
            events: budget.events.max(1),
            bytes: budget.bytes,
        }
    }
}

/// The names a `429` gives the two halves of the budget (`too many …`).
pub const EVENTS_BUDGET: &str = "messages and renames";
pub const BYTES_BUDGET: &str = "bytes of messages and renames";

/// The `429` for a budget that has room again after `wait` (whole seconds, at least one).
pub fn rate_limited(what: &'static str, wait: Duration) -> ChatError {
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
    /// The word an engine tells the other nodes.
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

pub struct Sessions {
    key: Vec<u8>,
    rules: SessionRules,
    engine: Arc<dyn Engine>,
    /// This node's handles on the sessions its clients used (their `ended` tokens); the
    /// engine knows which sessions are live.
    handles: Mutex<HashMap<u64, Session>>,
}

type HmacSha256 = Hmac<Sha256>;

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
    use crate::private;
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

/// A session id: random, never 0, and it fits a signed 64-bit integer (as engines store it).
fn random_id() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("no OS randomness: {e}"));
    (u64::from_le_bytes(bytes) >> 1).max(1)
}

impl Sessions {
    /// The sessions kept in `engine`, under `rules`, their tokens signed with `key`.
    pub fn new(engine: Arc<dyn Engine>, rules: SessionRules, key: Vec<u8>) -> Sessions {
        Sessions {
            key,
            rules: SessionRules {
                budget: Budget::at_least_one(rules.budget),
                idle: rules.idle,
            },
            engine,
            handles: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Session>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session for `nick`; `409` if someone online holds it, `503` while
    /// `max_sessions` are live (checked atomically, so concurrent logins cannot overshoot).
    pub async fn create(
        &self,
        nick: Nick,
        max_sessions: u64,
    ) -> Result<(Session, String), ChatError> {
        loop {
            let id = random_id();
            if self
                .engine
                .create_session(id, &nick, max_sessions, self.rules)
                .await?
            {
                let session = self.remember(id, nick.as_str());
                return Ok((session, self.token(id)));
            }
        }
    }

    /// The nick this node last knew session `id` by (the engine checks it where it counts).
    pub fn known_nick(&self, id: u64) -> Option<String> {
        self.lock().get(&id).map(|s| s.nick.clone())
    }

    /// The budget per [`RATE_WINDOW`] and the idle timeout every session is held to.
    pub fn rules(&self) -> SessionRules {
        self.rules
    }

    /// This node's handle on live session `id`, made if it has none, with `nick`.
    pub(super) fn remember(&self, id: u64, nick: &str) -> Session {
        let mut handles = self.lock();
        let session = handles.entry(id).or_insert_with(|| Session::new(id, nick));
        if session.nick != nick {
            session.nick = nick.to_string();
        }
        session.clone()
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
    /// whether the session is still live: for a write, whose own check says so (the engine
    /// checks it inside the write's one step and deadline).
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
        Ok(match self.engine.session(id, self.rules).await? {
            Some(nick) => Some(self.remember(id, &nick)),
            None => {
                self.end_here(id, EndReason::Idle);
                None
            }
        })
    }

    /// The session currently holding `nick`, if it is online.
    /// The nick is matched as the nick rule does: whoever holds a nick that looks like it.
    pub async fn by_nick(&self, nick: &str) -> Result<Option<Session>, ChatError> {
        let keys = look_alike_keys(nick);
        Ok(self
            .engine
            .session_by_nick(&keys, self.rules)
            .await?
            .map(|(id, nick)| self.remember(id, &nick)))
    }

    /// Charges one write of `bytes` (its [`crate::chat::stored_bytes`]) to the session's
    /// budget, over every node: the one place a session's budget is asked. Past either half
    /// of it, `429` with the wait until the oldest writes of the window have left enough
    /// room, naming the half that refused.
    pub async fn spend(&self, id: u64, bytes: usize) -> Result<(), ChatError> {
        self.engine.spend(id, bytes, self.rules).await
    }

    /// Renames the session; returns the old nick. `409` if the new nick is held by another.
    pub async fn rename(&self, id: u64, nick: Nick) -> Result<String, ChatError> {
        let old = self.engine.rename_session(id, &nick, self.rules).await?;
        self.remember(id, nick.as_str());
        Ok(old)
    }

    /// Ends a session everywhere: frees its nick and fires its `ended` token (on every
    /// node). Returns it if it was live here.
    pub async fn end(&self, id: u64, reason: EndReason) -> Result<Option<Session>, ChatError> {
        self.engine.end_session(id, reason).await?;
        Ok(self.end_here(id, reason))
    }

    /// Ends this node's handle on the session: its streams here close.
    pub fn end_here(&self, id: u64, reason: EndReason) -> Option<Session> {
        let session = self.lock().remove(&id)?;
        session.finish(reason);
        Some(session)
    }

    /// Ends every session without activity for the idle timeout; returns those this node had
    /// handles on. The engine finds them (over every node, each ended once, every node told);
    /// this also drops this node's handles on sessions the engine no longer has (an end this
    /// node missed).
    pub async fn expire_idle(&self) -> Result<Vec<Session>, ChatError> {
        let ended = self.engine.expire_idle(self.rules).await?;
        let mut sessions: Vec<Session> = ended
            .into_iter()
            .filter_map(|id| self.end_here(id, EndReason::Idle))
            .collect();
        let ids: Vec<u64> = self.lock().keys().copied().collect();
        for (id, live) in ids.iter().zip(self.engine.sessions_live(&ids).await?) {
            if !live {
                sessions.extend(self.end_here(*id, EndReason::Idle));
            }
        }
        Ok(sessions)
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
