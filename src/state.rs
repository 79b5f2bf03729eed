//! The state every handler shares: a cheap-to-clone [`AppState`], built once by
//! [`AppState::start`]. Handlers that need one part take it alone (`State<Chat>`,
//! `State<Arc<Stats>>`…) through the `FromRef` impls below, so a handler's signature says
//! what it uses and its module need not know the rest.

use std::sync::Arc;

use axum::extract::FromRef;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::Chat;
use crate::config::Config;
use crate::diag::Diagnostics;
use crate::error::ApiError;
use crate::feed::draw::{Batch, Draw};
use crate::feed::{self, Feed};
use crate::net::addresses::{Addresses, Budget};
use crate::net::origin::OwnHosts;
use crate::operator::Gate;
use crate::stats::Stats;
use anyhow::Context as _;

use crate::chat::{Engine, session};
use crate::engine::embedded::{Embedded, SessionStore, sqlite::SqliteStore};
use crate::engine::redis::log::RedisLog;
use crate::engine::redis::{Redis, RedisEngine};

/// A cheap-to-clone handle on everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    clock: Feed,
    chat: Chat,
    /// The shared canvas: strokes in memory only (`crate::feed::draw`).
    draw: Draw,
    stats: Arc<Stats>,
    /// What each client address holds and spends (connections, logins).
    addresses: Arc<Addresses>,
    diagnostics: Arc<Diagnostics>,
    /// The names the server answers to (the `Host` check).
    own_hosts: OwnHosts,
    /// Who may read the operator endpoints (`crate::operator`).
    operator: Arc<Gate>,
    /// Fired once at shutdown; every stream, long poll, socket and background task listens.
    shutdown: CancellationToken,
    /// Tasks that outlive a request (sockets, the clock ticker): shutdown waits for them.
    tracker: TaskTracker,
    /// The WebTransport endpoint's port and certificate hashes, set once it is bound (after
    /// the state, which its sessions need); unset with `--no-webtransport`.
    webtransport: std::sync::OnceLock<crate::net::quic::Published>,
}

impl AppState {
    /// Opens the chat's engine (SQLite, or the cluster's Redis with `--redis`), builds the state
    /// and starts the feeds' background tasks on `tracker`.
    pub async fn start(
        config: Config,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> anyhow::Result<AppState> {
        // The engine is chosen here, once; the chat never asks which one it has.
        let (engine, key): (Arc<dyn Engine>, Vec<u8>) = match &config.redis {
            Some(url) => {
                let (redis, pushes) = Redis::connect(
                    url,
                    &config.redis_prefix,
                    config.redis_retention,
                    config.redis_push_queue as usize,
                )
                .await
                .with_context(|| format!("cannot reach Redis at {url}"))?;
                let key = match &config.secret_file {
                    Some(path) => session::secret_from_file(path)?,
                    None => redis.signing_key().await?,
                };
                let log = RedisLog::open(redis).await?;
                (Arc::new(RedisEngine::new(log, pushes)), key)
            }
            None => {
                let store = Arc::new(SqliteStore::open_retaining(&config.db, config.retain())?);
                let key = match &config.secret_file {
                    Some(path) => session::secret_from_file(path)?,
                    None => store
                        .signing_key(&session::random_key())
                        .context("cannot read the signing key")?,
                };
                let sessions: Arc<dyn SessionStore> = store.clone();
                (Arc::new(Embedded::new(store, Some(sessions))), key)
            }
        };
        let clock = feed::clock::feed();
        tracker.spawn(feed::clock::run(
            clock.clone(),
            config.tick(),
            shutdown.clone(),
        ));
        let settings = crate::chat::Settings {
            limits: config.feed_limits(),
            history: config.history as usize,
            budget: crate::chat::Budget {
                events: config.rate_limit as usize,
                bytes: config.rate_limit_bytes as usize,
            },
            idle_timeout: config.idle_timeout,
            key,
        };
        let chat = Chat::start(engine, settings, shutdown.clone(), &tracker);
        let draw = Draw::new(config.draw_rate_total);
        Ok(AppState {
            inner: Arc::new(Inner {
                stats: Arc::new(Stats::new(config.max_connections())),
                addresses: Addresses::new(config.address_limits()),
                diagnostics: Default::default(),
                own_hosts: OwnHosts::build(
                    config.addr,
                    if config.serves_tls() { "https" } else { "http" },
                    &crate::net::interfaces::list(),
                    &config.public_url,
                    &config.allow_origin,
                ),
                operator: Arc::new(Gate::new(
                    config.operator_token().cloned(),
                    &config.trust_proxy,
                )),
                config,
                clock,
                chat,
                draw,
                shutdown,
                tracker,
                webtransport: std::sync::OnceLock::new(),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn clock(&self) -> &Feed {
        &self.inner.clock
    }

    pub fn chat(&self) -> &Chat {
        &self.inner.chat
    }

    pub fn draw(&self) -> &Draw {
        &self.inner.draw
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    pub fn addresses(&self) -> &Arc<Addresses> {
        &self.inner.addresses
    }

    /// Tagged requests: the wire record and the kill switches (`crate::diag`).
    pub fn diagnostics(&self) -> &Arc<Diagnostics> {
        &self.inner.diagnostics
    }

    /// The names the server answers to (the `Host` check).
    pub fn own_hosts(&self) -> &OwnHosts {
        &self.inner.own_hosts
    }

    /// Who may read the operator endpoints (`crate::operator`).
    pub fn operator(&self) -> &Arc<Gate> {
        &self.inner.operator
    }

    /// The WebTransport endpoint, if it serves (`GET /api/webtransport`).
    pub fn webtransport(&self) -> Option<&crate::net::quic::Published> {
        self.inner.webtransport.get()
    }

    /// Records the bound WebTransport endpoint; only the first call counts.
    pub fn set_webtransport(&self, published: crate::net::quic::Published) {
        let _ = self.inner.webtransport.set(published);
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    pub fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    /// Checks `batch`, charges its strokes to `peer`, then to the server-wide budget, publishes
    /// it: the one path of both the HTTP endpoint and the WebSocket `draw` frame. A batch the
    /// server-wide budget refuses has still been charged to its sender.
    pub fn send_strokes(&self, peer: std::net::IpAddr, batch: Batch) -> Result<Vec<u64>, ApiError> {
        batch.check()?;
        // A checked batch holds 1..=16 strokes, so the cast is exact.
        self.addresses()
            .spend_many(peer, Budget::Draw, batch.strokes.len() as u32)
            .map_err(|retry_after| ApiError::RateLimited {
                what: "strokes from this address",
                retry_after,
            })?;
        Ok(self.draw().publish(batch)?)
    }
}

impl FromRef<AppState> for Chat {
    fn from_ref(app: &AppState) -> Chat {
        app.chat().clone()
    }
}

impl FromRef<AppState> for Arc<Stats> {
    fn from_ref(app: &AppState) -> Arc<Stats> {
        app.stats().clone()
    }
}

impl FromRef<AppState> for Arc<Diagnostics> {
    fn from_ref(app: &AppState) -> Arc<Diagnostics> {
        app.diagnostics().clone()
    }
}

impl FromRef<AppState> for Arc<Gate> {
    fn from_ref(app: &AppState) -> Arc<Gate> {
        app.operator().clone()
    }
}

impl FromRef<AppState> for CancellationToken {
    fn from_ref(app: &AppState) -> CancellationToken {
        app.shutdown_token()
    }
}
