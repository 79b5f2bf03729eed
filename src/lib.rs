//! pushpoll: a live clock, a chat room and a shared canvas delivered over the web push
//! transports of [`names::Transport::ALL`] (short polling, long polling, a hidden streaming
//! iframe, `fetch()` streaming, Server-Sent Events, WebSocket and WebTransport over HTTP/3),
//! with demo pages that show what each one costs while it runs.
//!
//! # Layout
//!
//! Layers that only point down (docs/ARCHITECTURE.md draws them; `tests/architecture.rs`
//! enforces them: no cycle, the core imports no HTTP crate, the handlers import none of each
//! other):
//!
//! - **Leaves**, which import only leaves: [`names`], the one spelling of the
//!   transports and feeds ([`names::Transport`], [`names::FeedName`]); [`event`], the events
//!   every transport delivers (ids, audiences, the JSON made once); [`wire`], the SSE and
//!   iframe framings' delimiters and their decoders (used by the load tester and the tests);
//!   [`figures`], the committed results embedded at build time and the figure markers that
//!   quote them (docs/FIGURES.md); [`spawn`], which starts this binary as a child process and
//!   reads the URL it prints (for the load tester and the tests); [`private`], files only
//!   their owner may read (the database, the secret file).
//! - **Core**, which knows nothing of HTTP: [`feed`], the one idea: a feed is an
//!   append-only log of events with increasing ids; [`feed::Feed`] keeps the recent ones and
//!   fans new ones out, and reads older ones through the [`feed::Backlog`] trait;
//!   [`feed::clock`] publishes the ticks, [`feed::draw`] is the shared canvas (strokes, in
//!   memory only). [`chat`]: rooms, whispers, sessions and presence over one durable log,
//!   with its own error type and one command type for what clients send; the chat's rules
//!   only, over one trait, [`chat::Engine`]. [`engine`]: the engines side by side,
//!   [`engine::embedded`] (one process: the log in SQLite, implementing the feed's `Backlog`,
//!   sessions in memory) and [`engine::redis`], the engine of `--redis` (one log, sessions and
//!   presence over many nodes; docs/SCALE.md).
//! - **Edge helpers**: [`net`], the connections and addresses: `net::listener`, the accept
//!   loop (hyper's HTTP/1.1 builder with a timer for the header deadline, the connection caps
//!   in total and per client address, the write-stall deadline; over HTTPS also the TLS
//!   handshake and HTTP/2); [`net::tls`], the certificate (`--tls-cert`/`--tls-key` or made
//!   by `--tls-self-signed`) and the rustls configuration with ALPN `h2`/`http/1.1`;
//!   `net::addresses`, the accounting per client address (connections, requests in flight,
//!   budgets); [`net::forwarded`], who a request is from behind a `--trust-proxy` proxy
//!   (`X-Forwarded-For`, `Forwarded`); [`net::quic`], WebTransport's QUIC endpoint on UDP
//!   at the same port, its bounds and its certificate (made, hashed and rotated, or
//!   `--tls-cert`'s); `net::origin`, the Host check and the cross-site
//!   (Origin) check; [`net::interfaces`], this machine's addresses, for the URLs printed at
//!   start and the Host check of a server on `0.0.0.0`. Then [`error`], the one error type
//!   of the HTTP edge (with its statuses); [`config`], the command-line flags (each also a
//!   `PUSHPOLL_…` environment variable), which builds the feed's limits; [`operator`], who may
//!   read the operator endpoints (loopback, or the `--operator-token-file` token) and what
//!   everyone else on the network sees of them; [`stats`], the counters behind `/api/stats`
//!   and `/metrics`; `state`, the shared [`AppState`] with a `FromRef` for each part;
//!   [`http`], the extractors and JSON helpers; [`facts`], the lists and limits the pages
//!   share, served as `/static/facts.js` and filled into `<!--fact:…-->` markers.
//! - **Handlers**, which import the layers below but never each other: `chat_api` (the chat's
//!   HTTP API), [`transport`] (one file per transport, each a thin adapter answering "events
//!   after cursor X"; `transport::webtransport` takes its sessions from the QUIC endpoint),
//!   [`diag`] (the tagged requests' wire record and kill switch), `draw`
//!   (`POST /api/draw`), `assets` (the embedded pages), `results` (the measured results,
//!   served).
//! - **Router**: `app`, which routes paths to handlers; nothing imports it but [`run`].
//! - [`run`]: serve until a shutdown signal, then end every stream and socket within 5 s.

pub(crate) mod app;
pub(crate) mod assets;
pub mod chat;
pub(crate) mod chat_api;
pub mod config;
pub mod diag;
pub(crate) mod draw;
pub mod engine;
pub mod error;
pub mod event;
pub mod facts;
pub mod feed;
pub mod figures;
pub mod http;
pub mod names;
pub mod net;
pub mod operator;
pub mod private;
pub(crate) mod results;
pub mod spawn;
pub(crate) mod state;
pub mod stats;
pub mod transport;
pub mod wire;

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
/// How the server finds a dead peer (TCP keepalive, `TCP_USER_TIMEOUT`) and the bounds that
/// follow; the tests check the defaults' arithmetic against docs/API.md.
pub use net::listener::liveness;
pub use state::AppState;

/// How long shutdown may take before the remaining work is abandoned, leaving a margin
/// inside the 5 s the contract promises.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// Serves on `listener` until `shutdown` completes. Then it stops accepting, ends every
/// stream and long poll, closes every WebSocket with 1001 and returns within
/// [`SHUTDOWN_GRACE`].
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let tls = net::tls::Tls::from_config(&config, bound(&listener)?)?;
    run_with_tls(listener, config, tls, shutdown).await
}

/// The address `listener` is bound to (port 0 picks one).
fn bound(listener: &TcpListener) -> anyhow::Result<std::net::SocketAddr> {
    listener
        .local_addr()
        .context("the listener has no local address")
}

/// [`run`] with the TLS set-up already made (the binary makes it first, to print its
/// fingerprint): HTTPS with HTTP/2 and HTTP/1.1 when `tls` is given, plain HTTP/1.1 if not.
pub async fn run_with_tls(
    listener: TcpListener,
    config: Config,
    tls: Option<net::tls::Tls>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    // The address actually bound (port 0 picks one): the server's own name for the Host check.
    let mut config = config;
    feed::clock::set_test_offset_ms(config.test_clock_offset_ms);
    config.addr = bound(&listener)?;
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let state = AppState::start(config, token.clone(), tracker.clone())
        .await
        .context("cannot open the chat store")?;
    if !state.config().no_webtransport {
        match start_webtransport(&state).await {
            Ok(quic) => {
                state.set_webtransport(quic.published);
                tracker.spawn(transport::webtransport::serve(state.clone(), quic.endpoint));
            }
            // The TCP transports are the server; WebTransport is the one a page falls back
            // from. A UDP port another program holds turns it off rather than the server.
            Err(err) if net::quic::port_taken(&err) => {
                tracing::warn!("WebTransport is off: {err:#}");
            }
            Err(err) => return Err(err),
        }
    }
    let router = app::app(state.clone());
    let deadlines = net::listener::Deadlines {
        header: state.config().header_timeout,
        send: state.config().send_timeout,
        dead_peer: state.config().dead_peer_timeout,
    };
    let accepting = tracker.spawn(net::listener::serve(
        listener,
        router,
        state.stats().clone(),
        state.addresses().clone(),
        deadlines,
        token.clone(),
        tracker.clone(),
        tls,
    ));
    shutdown.await;
    tracing::info!("shutting down: ending streams and closing sockets");
    token.cancel();
    tracker.close();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        let _ = accepting.await;
        tracker.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown grace period over; abandoning what is left");
    }
    Ok(())
}

/// Binds WebTransport's QUIC endpoint on UDP at the TCP server's address and port: with the
/// `--tls-cert` certificate, or with one made now and rotated (`net::quic`).
async fn start_webtransport(state: &AppState) -> anyhow::Result<net::quic::Quic> {
    let config = state.config();
    let source = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => net::quic::Source::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => net::quic::Source::Made {
            names: net::tls::server_names(config.addr),
            rotate: config.webtransport_rotate,
        },
    };
    let bounds = net::quic::Bounds {
        idle: config.dead_peer_timeout,
    };
    let quic = net::quic::bind(
        config.addr,
        source,
        bounds,
        config.webtransport_ticket_ttl,
        state.shutdown_token(),
        state.tracker(),
    )
    .await
    .context("cannot start WebTransport (--no-webtransport turns it off)")?;
    // Debug, not info: the first screen of `cargo run` stays the one line that says where to
    // go; /api/webtransport and docs/API.md tell the rest.
    tracing::debug!(
        port = quic.published.port,
        "WebTransport on UDP; GET /api/webtransport gives the certificate hashes"
    );
    Ok(quic)
}

/// Raises the soft open-files limit to the hard limit, so that 10,000+ connections fit.
/// Returns `(before, after)`.
pub fn raise_open_files_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = open_files_limit()?;
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, limit.rlim_cur))
}

/// The open-files limit this process can raise itself to: the hard limit, or `u64::MAX` when
/// it is unlimited or cannot be read. `--max-connections`'s default is derived from it
/// ([`config::default_max_connections`]).
pub fn open_files_hard_limit() -> u64 {
    open_files_limit().map_or(u64::MAX, |limit| limit.rlim_max)
}

fn open_files_limit() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}
