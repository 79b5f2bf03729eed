//! The Redis engine: the chat's engine when pushpoll runs as many nodes (`--redis URL`), beside
//! the embedded one (`super::embedded`). One log with global ids ([`log`]), sessions every
//! node accepts ([`sessions`]), and presence summed over the nodes ([`presence`]). Each change
//! is one Lua script ([`scripts`]), so it is atomic however many nodes write at once.
//! [`RedisEngine`] puts their answers in the chat's terms (`chat::Engine`).
//!
//! Two connections per node, both redis-rs `ConnectionManager`s (they reconnect by
//! themselves): one for commands, one RESP3 connection subscribed to the `events` and
//! `control` channels, resubscribed automatically after a reconnect. What a node may have
//! missed while it was cut off is read back from the log (see [`log::RedisLog::catch_up`]),
//! so the channel only makes delivery fast; the log makes it complete.

mod engine;
pub mod log;
pub mod presence;
pub mod scripts;
pub mod sessions;

pub use engine::RedisEngine;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{ProtocolVersion, PushInfo, RedisFuture, Script};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Why a Redis operation failed: Redis is unreachable, slow past the response timeout, or
/// answered with an error. The chat answers `503` with `Retry-After` for it.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisError(pub String);

impl From<redis::RedisError> for RedisError {
    fn from(err: redis::RedisError) -> Self {
        RedisError(err.to_string())
    }
}

/// Whatever went wrong with Redis, the chat answers `503` with `Retry-After`: Redis is away
/// or slow, and the client can try again.
/// What a client's refusal calls this engine.
pub const STORE: &str = "Redis";

impl From<RedisError> for crate::chat::ChatError {
    fn from(err: RedisError) -> Self {
        tracing::warn!(%err, "redis");
        crate::chat::ChatError::Unavailable {
            store: STORE,
            retry_after: 1,
        }
    }
}

/// How long one command may wait for its answer; past it the caller gets a [`RedisError`]
/// (a write: `503`) instead of waiting for Redis to come back.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one request may spend on Redis in all (`chat::engine::within`): every command
/// it sends, a wait for a reconnection, and the wait for this node's feed to hold what it
/// stored.
pub const REQUEST_DEADLINE: Duration = RESPONSE_TIMEOUT;
/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Pushed messages waiting for the ingest task; past it they are dropped and the ingest
/// reads the log instead (so a burst costs bounded memory and loses nothing). The default of
/// `--redis-push-queue` (hidden: tests make it small).
pub const PUSH_QUEUE: usize = 8192;

/// When what is started now must be done: the request's deadline, and at most
/// [`RESPONSE_TIMEOUT`] from now (the background tasks, which serve no request).
fn deadline() -> Instant {
    let own = Instant::now() + RESPONSE_TIMEOUT;
    crate::chat::engine::deadline().map_or(own, |d| d.min(own))
}

fn timed_out() -> redis::RedisError {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer from Redis within the deadline",
    )
    .into()
}

/// The command connection as every call uses it: each command waits until [`deadline`] at
/// most, the wait for a reconnection included (the connection manager's response timeout
/// starts only once a connection is there).
#[derive(Clone)]
struct Bounded(ConnectionManager);

impl ConnectionLike for Bounded {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, redis::Value> {
        let deadline = deadline();
        Box::pin(async move {
            tokio::time::timeout_at(deadline, self.0.req_packed_command(cmd))
                .await
                .unwrap_or_else(|_| Err(timed_out()))
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        let deadline = deadline();
        Box::pin(async move {
            tokio::time::timeout_at(
                deadline,
                self.0.req_packed_commands(pipeline, offset, count),
            )
            .await
            .unwrap_or_else(|_| Err(timed_out()))
        })
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

/// A cheap-to-clone handle on the Redis of this cluster.
#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    prefix: Arc<str>,
    /// Events the log keeps.
    retention: u64,
    /// This node's name in the presence sets: unique per process start.
    node: Arc<str>,
    scripts: Arc<Scripts>,
}

struct Scripts {
    append: Script,
    session_create: Script,
    session_get: Script,
    session_by_nick: Script,
    session_spend: Script,
    session_rename: Script,
    session_end: Script,
    session_sweep: Script,
    presence_join: Script,
    presence_leave: Script,
    node_heartbeat: Script,
    node_reap: Script,
    bucket: Script,
    say: Script,
    history: Script,
}

/// The messages pushed on the subscriber connection, bounded (see [`PUSH_QUEUE`]).
pub struct Pushes {
    pub rx: mpsc::Receiver<PushInfo>,
    /// Set when a message was dropped because the queue was full.
    pub overflowed: Arc<AtomicBool>,
    /// The subscribed connection: it lives as long as whoever reads the pushes.
    _subscriber: ConnectionManager,
}

struct PushQueue {
    tx: mpsc::Sender<PushInfo>,
    overflowed: Arc<AtomicBool>,
}

impl redis::aio::AsyncPushSender for PushQueue {
    fn send(&self, info: PushInfo) -> Result<(), redis::aio::SendError> {
        match self.tx.try_send(info) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed.store(true, Ordering::Release);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(redis::aio::SendError),
        }
    }
}

impl Redis {
    /// Connects (both connections) and subscribes to the cluster's channels; `push_queue`
    /// announcements wait for the ingest at most (see [`PUSH_QUEUE`]).
    pub async fn connect(
        url: &str,
        prefix: &str,
        retention: u64,
        push_queue: usize,
    ) -> Result<(Redis, Pushes), RedisError> {
        let client = redis::Client::open(url)?;
        let info = client.get_connection_info().clone();
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(resp3))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = client
            .get_connection_manager_with_config(config.clone())
            .await?;
        let (tx, rx) = mpsc::channel(push_queue.max(1));
        let overflowed = Arc::new(AtomicBool::new(false));
        let mut subscriber = client
            .get_connection_manager_with_config(
                config
                    .set_push_sender(PushQueue {
                        tx,
                        overflowed: overflowed.clone(),
                    })
                    .set_automatic_resubscription(),
            )
            .await?;
        let mut node = [0u8; 8];
        getrandom::fill(&mut node).map_err(|e| RedisError(e.to_string()))?;
        let redis = Redis {
            conn,
            prefix: prefix.into(),
            retention,
            node: format!("{:016x}", u64::from_le_bytes(node)).into(),
            scripts: Arc::new(Scripts {
                append: Script::new(scripts::APPEND),
                session_create: Script::new(scripts::SESSION_CREATE),
                session_get: Script::new(scripts::SESSION_GET),
                session_by_nick: Script::new(scripts::SESSION_BY_NICK),
                session_spend: Script::new(scripts::SESSION_SPEND),
                session_rename: Script::new(scripts::SESSION_RENAME),
                session_end: Script::new(scripts::SESSION_END),
                session_sweep: Script::new(scripts::SESSION_SWEEP),
                presence_join: Script::new(scripts::PRESENCE_JOIN),
                presence_leave: Script::new(scripts::PRESENCE_LEAVE),
                node_heartbeat: Script::new(scripts::NODE_HEARTBEAT),
                node_reap: Script::new(scripts::NODE_REAP),
                bucket: Script::new(scripts::BUCKET),
                say: Script::new(scripts::SAY),
                history: Script::new(scripts::HISTORY),
            }),
        };
        subscriber
            .subscribe(&[redis.key("events"), redis.key("control")])
            .await?;
        Ok((
            redis,
            Pushes {
                rx,
                overflowed,
                _subscriber: subscriber,
            },
        ))
    }

    /// A key or channel name of this cluster.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This node's name in the presence sets.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn conn(&self) -> Bounded {
        Bounded(self.conn.clone())
    }

    /// Takes one token from the cluster-wide bucket `name` (`burst` per `window`):
    /// `Ok(None)` taken, `Ok(Some(wait))` empty.
    pub async fn take_token(
        &self,
        name: &str,
        burst: u32,
        window: Duration,
    ) -> Result<Option<Duration>, RedisError> {
        let wait: u64 = self
            .scripts
            .bucket
            .arg(self.prefix())
            .arg(name)
            .arg(burst.max(1))
            .arg(window.as_millis().max(1) as u64)
            .arg(1)
            .invoke_async(&mut self.conn())
            .await?;
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }

    /// The session signing key shared by every node: made once (`SET NX`), then read.
    pub async fn signing_key(&self) -> Result<Vec<u8>, RedisError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| RedisError(e.to_string()))?;
        let name = self.key("signing_key");
        let mut conn = self.conn();
        let (stored,): (Vec<u8>,) = redis::pipe()
            .cmd("SET")
            .arg(&name)
            .arg(&key[..])
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&name)
            .query_async(&mut conn)
            .await?;
        Ok(stored)
    }
}
