//! The router: which handler answers which path, and the layers around them. `app(state)`
//! is what `run` serves and what tests call. Nothing imports this module but `lib.rs`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::Method;
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::http::{ClientAddr, InFlight, MAX_BODY_BYTES};
use crate::names::Transport;
use crate::net::{forwarded, origin};
use crate::state::AppState;
use crate::{assets, chat_api, diag, draw, operator, results, stats, transport};

pub fn app(state: AppState) -> Router {
    // The transport routes, `/TRANSPORT/{feed}` for each transport, with the recorder of
    // tagged requests (`?tag=`, see `diag`).
    let transports = Transport::ALL
        .into_iter()
        .fold(Router::new(), |router, t| {
            router.route(&format!("/{t}/{{feed}}"), transport::route(t))
        })
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            diag::record,
        ));
    Router::new()
        .route("/", get(assets::index))
        .route("/favicon.ico", get(assets::favicon))
        .route("/demos/{file}", get(assets::demo))
        .route("/static/{*file}", get(assets::static_file))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/api/time", get(time))
        .route("/results", get(results::redirect))
        .route("/results/", get(results::page))
        .route("/results/{*path}", get(results::raw))
        .route("/api/stats", get(stats::json))
        .route("/api/webtransport", get(transport::webtransport::info))
        .route(
            "/api/webtransport/ticket",
            post(transport::webtransport::ticket),
        )
        .route("/api/stats/stream", get(stats::stream))
        // The operator's only (loopback or its token); `/api/stats` and the diagnostics
        // decide per caller what they answer (`crate::operator`).
        .route(
            "/metrics",
            get(stats::metrics).route_layer(axum::middleware::from_fn_with_state(
                state.operator().clone(),
                operator::only,
            )),
        )
        .merge(transports)
        .route("/api/debug/wire", get(diag::wire))
        .route("/api/debug/kill", post(diag::kill))
        .route(
            "/api/session",
            get(chat_api::whoami)
                .post(chat_api::login)
                .patch(chat_api::rename)
                .delete(chat_api::logout),
        )
        .route("/api/chat/messages", post(chat_api::send))
        .route("/api/chat/rooms", get(chat_api::rooms))
        .route("/api/chat/users", get(chat_api::users))
        .route("/api/chat/history", get(chat_api::history))
        .route("/api/draw", post(draw::upload))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // One middleware for what every request goes through, in order: who it is from,
        // whether it names this server, whether its origin may do what it asks. One layer
        // rather than three: each `from_fn` layer boxes the request's future and clones the
        // state, which on a trivial route was a measurable share of its cost.
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

/// Every request, before routing: resolves its [`ClientAddr`] (the TCP peer, or the client
/// a `--trust-proxy` proxy forwarded), refuses a `Host` that is not one of the server's own
/// names (`421 unknown_host`, WebSocket upgrades included; see
/// [`crate::net::origin::OwnHosts`]), then applies the Origin rule ([`origin::enforce`]) and
/// runs the rest inside a (debug-level) log span that names the client.
async fn edge(
    State(app): State<AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument as _;
    if let Err(err) = app.own_hosts().check(req.headers()) {
        return err.into_response();
    }
    // The listener inserts the peer; a router driven without one (a unit test's `oneshot`)
    // gets none, and a handler that needs it answers `500`.
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return origin::enforce(app.own_hosts(), &app.config().allow_origin, req, next).await;
    };
    // The scheme the request reached this server by; a trusted proxy's header may say what
    // the client used in front of it.
    let scheme = if req.extensions().get::<crate::net::tls::OverTls>().is_some() {
        forwarded::Scheme::Https
    } else {
        forwarded::Scheme::Http
    };
    let client = forwarded::resolve(peer, scheme, req.headers(), &app.config().trust_proxy);
    req.extensions_mut().insert(ClientAddr(client));
    // A slot of the client's requests in flight, held until its response body is done: over
    // HTTP/2 one connection carries many requests, and each may hold an unread answer.
    let slot = match app.addresses().request(client.ip) {
        Ok(slot) => slot,
        Err(full) => return ApiError::TooManyRequests(full.max).into_response(),
    };
    // A debug-level span: with the default `info` filter it is never built. Built for every
    // request, an info span (registry slot, fields formatted into a string, enter/exit on
    // every poll) cost 2–3 µs of CPU of a 13–19 µs trivial request (measured while other
    // builds shared the machine). `PUSHPOLL_LOG=info,pushpoll=debug` turns it on.
    let span = tracing::debug_span!("request", client = %client.ip, peer = %peer);
    origin::enforce(app.own_hosts(), &app.config().allow_origin, req, next)
        .instrument(span)
        .await
        .map(|body| axum::body::Body::new(InFlight::new(body, slot)))
}

/// `GET /readyz`: `200 {"ready":true}`, or `503 shutting_down` once shutdown has begun, so a
/// load balancer that still reaches the server sends it no new clients while streams end.
async fn readyz(State(app): State<AppState>) -> axum::response::Response {
    if app.shutdown_token().is_cancelled() {
        ApiError::ShuttingDown.into_response()
    } else {
        axum::Json(serde_json::json!({ "ready": true })).into_response()
    }
}

/// `GET /api/time`: `{"ts":N}`, the server's wall clock in µs, the clock of every event's `ts`.
/// Pages time a few of these round trips to estimate how far their clock is from the server's.
async fn time() -> axum::response::Response {
    let ts = crate::feed::clock::now_micros();
    (
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({ "ts": ts })),
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("nothing at {}", uri.path()))
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}
