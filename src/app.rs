//! The router and the state every handler shares. `app(state)` is what `run` serves and
//! what tests call.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api;
use crate::assets;
use crate::chat::Chat;
use crate::config::Config;
use crate::error::ApiError;
use crate::feed::{self, Feed};
use crate::stats::Stats;
use crate::store::{Store, StoreError, sqlite::SqliteStore};
use crate::transport::{iframe, longpoll, poll, sse, ws};

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
    draw: crate::feed::draw::Draw,
    stats: Arc<Stats>,
    /// What each client address holds and spends (connections, logins).
    peers: Arc<crate::peers::Peers>,
    diagnostics: crate::diag::Diagnostics,
    /// The names the server answers to (the `Host` check).
    own_hosts: crate::origin::OwnHosts,
    /// Fired once at shutdown; every stream, long poll, socket and background task listens.
    shutdown: CancellationToken,
    /// Tasks that outlive a request (sockets, the clock ticker): shutdown waits for them.
    tracker: TaskTracker,
}

impl AppState {
    /// Opens the chat store, builds the state and starts the feeds' background tasks on
    /// `tracker`.
    pub fn start(
        config: Config,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<AppState, StoreError> {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.db)?);
        let clock = feed::clock::feed();
        tracker.spawn(feed::clock::run(
            clock.clone(),
            config.tick(),
            shutdown.clone(),
        ));
        let chat = Chat::start(
            store,
            config.feed_limits(),
            config.history as usize,
            config.rate_limit as usize,
            config.idle_timeout,
            shutdown.clone(),
            &tracker,
        );
        let draw = crate::feed::draw::Draw::new(config.draw_rate_total);
        Ok(AppState {
            inner: Arc::new(Inner {
                stats: Arc::new(Stats::new(config.max_connections)),
                peers: crate::peers::Peers::with_rates(
                    config.max_connections_per_peer(),
                    crate::peers::Rate {
                        count: config.login_rate,
                        per: std::time::Duration::from_secs(60),
                    },
                    crate::peers::Rate {
                        count: config.draw_rate,
                        per: std::time::Duration::from_secs(1),
                    },
                ),
                diagnostics: Default::default(),
                own_hosts: crate::origin::OwnHosts::new(config.addr, &config.allow_origin),
                config,
                clock,
                chat,
                draw,
                shutdown,
                tracker,
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

    pub fn draw(&self) -> &crate::feed::draw::Draw {
        &self.inner.draw
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    pub fn peers(&self) -> &Arc<crate::peers::Peers> {
        &self.inner.peers
    }

    /// Tagged requests: the wire record and the kill switches (`crate::diag`).
    pub fn diagnostics(&self) -> &crate::diag::Diagnostics {
        &self.inner.diagnostics
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    pub fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }
}

pub fn app(state: AppState) -> Router {
    // The transport routes, with the recorder of tagged requests (`?tag=`, see `diag`).
    let transports = Router::new()
        .route("/poll/{feed}", get(poll::handler))
        .route("/longpoll/{feed}", get(longpoll::handler))
        .route("/iframe/{feed}", get(iframe::handler))
        .route("/sse/{feed}", get(sse::handler))
        .route("/ws/{feed}", get(ws::handler))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::diag::record,
        ));
    Router::new()
        .route("/", get(assets::index))
        .route("/favicon.ico", get(assets::favicon))
        .route("/demos/{file}", get(assets::demo))
        .route("/static/{*file}", get(assets::static_file))
        .route("/healthz", get(|| async { "ok" }))
        .route("/results", get(crate::results::redirect))
        .route("/results/", get(crate::results::page))
        .route("/results/{*path}", get(crate::results::raw))
        .route("/api/stats", get(stats_json))
        .route("/api/stats/stream", get(stats_stream))
        .route("/metrics", get(metrics))
        .merge(transports)
        .route("/api/debug/wire", get(crate::diag::wire))
        .route("/api/debug/kill", post(crate::diag::kill))
        .route(
            "/api/session",
            get(api::whoami)
                .post(api::login)
                .patch(api::rename)
                .delete(api::logout),
        )
        .route("/api/chat/messages", post(api::send))
        .route("/api/chat/rooms", get(api::rooms))
        .route("/api/chat/users", get(api::users))
        .route("/api/chat/history", get(api::history))
        .route("/api/draw", post(crate::draw::upload))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(api::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::check_origin,
        ))
        // Outermost: a request for another host name is refused before anything else runs.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            check_host,
        ))
        .with_state(state)
}

/// Refuses requests whose `Host` is not one of the server's own names (`421 unknown_host`),
/// WebSocket upgrades included; see [`crate::origin::OwnHosts`].
async fn check_host(
    State(app): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match app.inner.own_hosts.check(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(err) => err.into_response(),
    }
}

async fn stats_json(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(app.stats().snapshot()),
    )
}

/// `GET /api/stats/stream`: the `/api/stats` snapshot once a second as Server-Sent Events
/// (`event: stats`), for the live dashboard. Not counted in the transport figures.
async fn stats_stream(State(app): State<AppState>) -> impl IntoResponse {
    let shutdown = app.shutdown_token();
    let body = async_stream::stream! {
        yield Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(b"retry: 2000\n\n"));
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = every.tick() => {}
            }
            let json = serde_json::to_string(&app.stats().snapshot()).unwrap_or_default();
            yield Ok(bytes::Bytes::from(format!("event: stats\ndata: {json}\n\n")));
        }
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache, no-store"),
        ],
        axum::body::Body::from_stream(body),
    )
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.stats().prometheus(),
    )
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("nothing at {}", uri.path()))
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}
