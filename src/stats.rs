//! What the server has done, counted as it happens: per-transport requests, open
//! connections, bytes and events sent, plus the process's CPU time and resident memory.
//! Served as JSON at `/api/stats` (and as a stream at `/api/stats/stream`) and in the
//! Prometheus text format at `/metrics`, by the handlers at the end of this file.
//!
//! Only the transports' handlers (and WebTransport's sessions) count; `/api/stats`, `/metrics`, `/healthz` and the
//! pages do not, so a client watching the figures does not move them.
//!
//! The figures are the operator's (`crate::operator`): `/metrics` answers only the operator,
//! and `/api/stats` answers anyone else only its [`PublicSnapshot`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::names::Transport;
use crate::operator::Caller;

/// The live counters. Shared by every handler; all updates are relaxed atomics.
pub struct Stats {
    started: Instant,
    transports: [Counters; Transport::ALL.len()],
    tcp_open: AtomicI64,
    tcp_accepted: AtomicU64,
    tcp_rejected: AtomicU64,
    tcp_rejected_peer: AtomicU64,
    send_timeouts: AtomicU64,
    max_connections: u64,
    /// WebTransport's extra detail (datagrams, QUIC's refusals and cuts), beside its row
    /// in `transports` (see docs/API.md, WebTransport).
    pub webtransport: WebTransportCounters,
}

/// WebTransport's counters (`crate::transport::webtransport`).
#[derive(Default)]
pub struct WebTransportCounters {
    sessions: AtomicU64,
    open: AtomicI64,
    refused: AtomicU64,
    refused_per_peer: AtomicU64,
    handshake_timeouts: AtomicU64,
    send_timeouts: AtomicU64,
    bytes_sent: AtomicU64,
    events_sent: AtomicU64,
    datagrams_sent: AtomicU64,
}

/// WebTransport's figures in `/api/stats` (`webtransport`, anyone may read them, as the
/// transports' figures) and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebTransportFigures {
    /// Sessions accepted (the QUIC handshake and the CONNECT request done).
    pub sessions: u64,
    /// Slots of `--max-webtransport-sessions` held now: open sessions, and connections whose
    /// handshake or CONNECT request is under way.
    pub open: i64,
    /// Bytes written to the sessions' event streams and datagrams (payload; QUIC's own
    /// framing and encryption not included).
    pub bytes_sent: u64,
    /// Events sent, on the stream or as datagrams.
    pub events_sent: u64,
    /// Of those, events sent as datagrams (which the network may lose unseen).
    pub datagrams_sent: u64,
}

/// WebTransport's refusals and cuts (`/api/stats` `webtransport_connections`, the
/// operator's only, as `connections` is: what one tunes an attack with).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebTransportConnections {
    /// Connections refused at `--max-webtransport-sessions`.
    pub refused: u64,
    /// Connections refused at `--max-connections-per-peer`.
    pub refused_per_peer: u64,
    /// Connections closed for not finishing the handshake and CONNECT in `--header-timeout`.
    pub handshake_timeouts: u64,
    /// Sessions closed because their stream took nothing for `--send-timeout`.
    pub send_timeouts: u64,
}

/// Holds one open WebTransport session slot of `--max-webtransport-sessions`.
pub struct WebTransportSlot(Arc<Stats>);

impl Drop for WebTransportSlot {
    fn drop(&mut self) {
        self.0.webtransport.open.fetch_sub(1, Relaxed);
    }
}

impl WebTransportCounters {
    pub fn refused_per_peer(&self) {
        self.refused_per_peer.fetch_add(1, Relaxed);
    }

    pub fn handshake_timed_out(&self) {
        self.handshake_timeouts.fetch_add(1, Relaxed);
    }

    pub fn send_timed_out(&self) {
        self.send_timeouts.fetch_add(1, Relaxed);
    }

    pub fn accepted(&self) {
        self.sessions.fetch_add(1, Relaxed);
    }

    /// Counts bytes written and the events they carry, `datagram` if sent as one.
    pub fn sent(&self, bytes: usize, events: usize, datagram: bool) {
        self.bytes_sent.fetch_add(bytes as u64, Relaxed);
        self.events_sent.fetch_add(events as u64, Relaxed);
        if datagram {
            self.datagrams_sent.fetch_add(events as u64, Relaxed);
        }
    }

    fn figures(&self) -> WebTransportFigures {
        WebTransportFigures {
            sessions: self.sessions.load(Relaxed),
            open: self.open.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            events_sent: self.events_sent.load(Relaxed),
            datagrams_sent: self.datagrams_sent.load(Relaxed),
        }
    }

    fn connections(&self) -> WebTransportConnections {
        WebTransportConnections {
            refused: self.refused.load(Relaxed),
            refused_per_peer: self.refused_per_peer.load(Relaxed),
            handshake_timeouts: self.handshake_timeouts.load(Relaxed),
            send_timeouts: self.send_timeouts.load(Relaxed),
        }
    }
}

/// One transport's counters.
#[derive(Default)]
pub struct Counters {
    requests: AtomicU64,
    open: AtomicI64,
    bytes_sent: AtomicU64,
    events_sent: AtomicU64,
}

impl Counters {
    pub fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    /// Counts one response body chunk or WebSocket payload and the events it carries.
    pub fn sent(&self, bytes: usize, events: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Relaxed);
        if events > 0 {
            self.events_sent.fetch_add(events as u64, Relaxed);
        }
    }
}

/// Holds one "open connection" of a transport; dropping it closes it in the figures.
pub struct OpenGuard {
    stats: Arc<Stats>,
    transport: Transport,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.stats
            .transport(self.transport)
            .open
            .fetch_sub(1, Relaxed);
    }
}

/// The figures at one instant: the `/api/stats` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub uptime_s: f64,
    pub process: Process,
    pub connections: Connections,
    /// Keyed by [`Transport::as_str`], one entry per [`Transport::ALL`].
    pub transports: BTreeMap<String, TransportFigures>,
    /// WebTransport's extra detail beside its row in `transports`: sessions accepted,
    /// datagrams sent.
    #[serde(default)]
    pub webtransport: WebTransportFigures,
    #[serde(default)]
    pub webtransport_connections: WebTransportConnections,
}

/// What `/api/stats` answers a client that is not the operator (`crate::operator`): the
/// per-transport figures the pages teach with (the compare page's server column, the
/// dashboard's transport charts). The process's CPU and memory and the listener's
/// connection counts are the operator's: they are how an attack on the server is tuned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublicSnapshot {
    pub uptime_s: f64,
    pub transports: BTreeMap<String, TransportFigures>,
    #[serde(default)]
    pub webtransport: WebTransportFigures,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Process {
    pub cpu_user_s: f64,
    pub cpu_system_s: f64,
    pub rss_bytes: u64,
}

/// TCP connections as the listener sees them (all of them, pages and stats included).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connections {
    pub open: i64,
    pub accepted: u64,
    /// Refused with `503` at `--max-connections`.
    pub rejected: u64,
    /// Refused with `503` at `--max-connections-per-peer`.
    pub rejected_per_peer: u64,
    /// Closed because their writes made no progress for `--send-timeout`.
    pub send_timeouts: u64,
    pub max: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransportFigures {
    /// HTTP requests received (a WebSocket or stream counts once, when it opens).
    pub requests: u64,
    /// Streams, sockets and parked long polls open now.
    pub open: i64,
    /// Response body bytes (WebSocket: message payload bytes) written; HTTP headers and
    /// WebSocket frame headers are not included.
    pub bytes_sent: u64,
    pub events_sent: u64,
}

impl Stats {
    pub fn new(max_connections: u64) -> Stats {
        Stats {
            started: Instant::now(),
            transports: Default::default(),
            tcp_open: AtomicI64::new(0),
            tcp_accepted: AtomicU64::new(0),
            tcp_rejected: AtomicU64::new(0),
            tcp_rejected_peer: AtomicU64::new(0),
            send_timeouts: AtomicU64::new(0),
            max_connections,
            webtransport: WebTransportCounters::default(),
        }
    }

    pub fn transport(&self, t: Transport) -> &Counters {
        &self.transports[t as usize]
    }

    /// Marks a connection of `transport` open until the guard is dropped.
    pub fn open(self: &Arc<Self>, transport: Transport) -> OpenGuard {
        self.transport(transport).open.fetch_add(1, Relaxed);
        OpenGuard {
            stats: self.clone(),
            transport,
        }
    }

    pub fn max_connections(&self) -> u64 {
        self.max_connections
    }

    /// Called by the listener: is there room for one more connection? If so it is counted
    /// as open until [`Stats::tcp_closed`].
    pub fn tcp_try_open(&self) -> bool {
        let open = self.tcp_open.fetch_add(1, Relaxed);
        if open >= self.max_connections as i64 {
            self.tcp_open.fetch_sub(1, Relaxed);
            self.tcp_rejected.fetch_add(1, Relaxed);
            return false;
        }
        self.tcp_accepted.fetch_add(1, Relaxed);
        true
    }

    pub fn tcp_closed(&self) {
        self.tcp_open.fetch_sub(1, Relaxed);
    }

    /// Takes one of `max` WebTransport session slots, or counts a refusal.
    pub fn webtransport_try_open(self: &Arc<Self>, max: u64) -> Option<WebTransportSlot> {
        let w = &self.webtransport;
        if w.open.fetch_add(1, Relaxed) >= max as i64 {
            w.open.fetch_sub(1, Relaxed);
            w.refused.fetch_add(1, Relaxed);
            return None;
        }
        Some(WebTransportSlot(self.clone()))
    }

    /// A connection refused at `--max-connections-per-peer`.
    pub fn tcp_refused_for_peer(&self) {
        self.tcp_rejected_peer.fetch_add(1, Relaxed);
    }

    /// A connection closed at `--send-timeout`.
    pub fn send_timed_out(&self) {
        self.send_timeouts.fetch_add(1, Relaxed);
    }

    fn transport_figures(&self) -> BTreeMap<String, TransportFigures> {
        Transport::ALL
            .into_iter()
            .map(|t| {
                let c = self.transport(t);
                let figures = TransportFigures {
                    requests: c.requests.load(Relaxed),
                    open: c.open.load(Relaxed),
                    bytes_sent: c.bytes_sent.load(Relaxed),
                    events_sent: c.events_sent.load(Relaxed),
                };
                (t.as_str().to_string(), figures)
            })
            .collect()
    }

    /// The figures any client may read ([`PublicSnapshot`]).
    pub fn public_snapshot(&self) -> PublicSnapshot {
        PublicSnapshot {
            uptime_s: self.started.elapsed().as_secs_f64(),
            transports: self.transport_figures(),
            webtransport: self.webtransport.figures(),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let transports = self.transport_figures();
        Snapshot {
            uptime_s: self.started.elapsed().as_secs_f64(),
            process: Process::now(),
            connections: Connections {
                open: self.tcp_open.load(Relaxed),
                accepted: self.tcp_accepted.load(Relaxed),
                rejected: self.tcp_rejected.load(Relaxed),
                rejected_per_peer: self.tcp_rejected_peer.load(Relaxed),
                send_timeouts: self.send_timeouts.load(Relaxed),
                max: self.max_connections,
            },
            transports,
            webtransport: self.webtransport.figures(),
            webtransport_connections: self.webtransport.connections(),
        }
    }

    /// The snapshot in the Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let s = self.snapshot();
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, String)]| {
            let _ = writeln!(
                out,
                "# HELP pushpoll_{name} {help}\n# TYPE pushpoll_{name} {kind}"
            );
            for (labels, value) in rows {
                let _ = writeln!(out, "pushpoll_{name}{labels} {value}");
            }
        };
        let plain = |v: String| vec![(String::new(), v)];
        let per = |f: fn(&TransportFigures) -> String| -> Vec<(String, String)> {
            s.transports
                .iter()
                .map(|(t, fig)| (format!("{{transport=\"{t}\"}}"), f(fig)))
                .collect()
        };
        metric(
            "uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            &plain(s.uptime_s.to_string()),
        );
        metric(
            "process_cpu_seconds_total",
            "counter",
            "Process CPU time by mode.",
            &[
                ("{mode=\"user\"}".into(), s.process.cpu_user_s.to_string()),
                (
                    "{mode=\"system\"}".into(),
                    s.process.cpu_system_s.to_string(),
                ),
            ],
        );
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident set size.",
            &plain(s.process.rss_bytes.to_string()),
        );
        metric(
            "tcp_connections_open",
            "gauge",
            "TCP connections open now.",
            &plain(s.connections.open.to_string()),
        );
        metric(
            "tcp_connections_accepted_total",
            "counter",
            "TCP connections accepted.",
            &plain(s.connections.accepted.to_string()),
        );
        metric(
            "tcp_connections_rejected_total",
            "counter",
            "TCP connections refused with 503 at --max-connections.",
            &plain(s.connections.rejected.to_string()),
        );
        metric(
            "tcp_connections_rejected_per_peer_total",
            "counter",
            "TCP connections refused with 503 at --max-connections-per-peer.",
            &plain(s.connections.rejected_per_peer.to_string()),
        );
        metric(
            "send_timeouts_total",
            "counter",
            "Connections closed because their writes made no progress for --send-timeout.",
            &plain(s.connections.send_timeouts.to_string()),
        );
        metric(
            "requests_total",
            "counter",
            "Requests received per transport (a stream or socket counts once).",
            &per(|f| f.requests.to_string()),
        );
        metric(
            "open_connections",
            "gauge",
            "Streams, sockets and parked long polls open per transport.",
            &per(|f| f.open.to_string()),
        );
        metric(
            "bytes_sent_total",
            "counter",
            "Response body / WebSocket payload bytes sent per transport.",
            &per(|f| f.bytes_sent.to_string()),
        );
        metric(
            "events_sent_total",
            "counter",
            "Events sent per transport.",
            &per(|f| f.events_sent.to_string()),
        );
        let (wt, wtc) = (&s.webtransport, &s.webtransport_connections);
        for (name, kind, help, value) in [
            (
                "webtransport_sessions_total",
                "counter",
                "WebTransport sessions accepted.",
                wt.sessions.to_string(),
            ),
            (
                "webtransport_sessions_open",
                "gauge",
                "WebTransport sessions open now, and handshakes under way.",
                wt.open.to_string(),
            ),
            (
                "webtransport_refused_total",
                "counter",
                "WebTransport connections refused at --max-webtransport-sessions.",
                wtc.refused.to_string(),
            ),
            (
                "webtransport_refused_per_peer_total",
                "counter",
                "WebTransport connections refused at --max-connections-per-peer.",
                wtc.refused_per_peer.to_string(),
            ),
            (
                "webtransport_handshake_timeouts_total",
                "counter",
                "WebTransport connections closed at --header-timeout before their session began.",
                wtc.handshake_timeouts.to_string(),
            ),
            (
                "webtransport_send_timeouts_total",
                "counter",
                "WebTransport sessions closed at --send-timeout.",
                wtc.send_timeouts.to_string(),
            ),
            (
                "webtransport_bytes_sent_total",
                "counter",
                "WebTransport stream and datagram payload bytes sent.",
                wt.bytes_sent.to_string(),
            ),
            (
                "webtransport_events_sent_total",
                "counter",
                "WebTransport events sent (stream and datagrams).",
                wt.events_sent.to_string(),
            ),
            (
                "webtransport_datagrams_sent_total",
                "counter",
                "WebTransport events sent as datagrams.",
                wt.datagrams_sent.to_string(),
            ),
        ] {
            metric(name, kind, help, &plain(value));
        }
        out
    }
}

impl Process {
    /// CPU time from `getrusage(RUSAGE_SELF)`; resident memory from `/proc/self/statm`.
    pub fn now() -> Process {
        // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_SELF is valid.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            usage
        };
        let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        Process {
            cpu_user_s: secs(usage.ru_utime),
            cpu_system_s: secs(usage.ru_stime),
            rss_bytes: resident_bytes().unwrap_or(0),
        }
    }
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

// --- the handlers: the figures over HTTP ---

/// The snapshot `caller` may read, as JSON.
fn snapshot_json(stats: &Stats, caller: Caller) -> String {
    match caller {
        Caller::Operator => serde_json::to_string(&stats.snapshot()),
        Caller::Client(_) => serde_json::to_string(&stats.public_snapshot()),
    }
    .unwrap_or_default()
}

/// `GET /api/stats`: the snapshot as JSON (to a client that is not the operator, its
/// [`PublicSnapshot`]).
pub(crate) async fn json(State(stats): State<Arc<Stats>>, caller: Caller) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        snapshot_json(&stats, caller),
    )
}

/// `GET /api/stats/stream`: the `/api/stats` snapshot once a second as Server-Sent Events
/// (`event: stats`), for the live dashboard; the caller is decided once, when the stream
/// opens. Not counted in the transport figures.
pub(crate) async fn stream(
    State(stats): State<Arc<Stats>>,
    State(shutdown): State<CancellationToken>,
    caller: Caller,
) -> impl IntoResponse {
    let body = async_stream::stream! {
        yield Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(b"retry: 2000\n\n"));
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = every.tick() => {}
            }
            let json = snapshot_json(&stats, caller);
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

/// `GET /metrics`: the Prometheus text format.
pub(crate) async fn metrics(State(stats): State<Arc<Stats>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        stats.prometheus(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_guards_count_up_and_down() {
        let stats = Arc::new(Stats::new(10));
        let c = stats.transport(Transport::Sse);
        c.request();
        let guard = stats.open(Transport::Sse);
        c.sent(100, 1);
        let fig = &stats.snapshot().transports["sse"];
        assert_eq!(
            (fig.requests, fig.open, fig.bytes_sent, fig.events_sent),
            (1, 1, 100, 1)
        );
        drop(guard);
        assert_eq!(stats.snapshot().transports["sse"].open, 0);
    }

    #[test]
    fn the_connection_limit_is_enforced() {
        let stats = Stats::new(2);
        assert!(stats.tcp_try_open());
        assert!(stats.tcp_try_open());
        assert!(!stats.tcp_try_open());
        stats.tcp_closed();
        assert!(stats.tcp_try_open());
        assert_eq!(stats.snapshot().connections.rejected, 1);
    }

    #[test]
    fn process_figures_are_real() {
        let p = Process::now();
        assert!(p.rss_bytes > 1024 * 1024, "rss {}", p.rss_bytes);
        assert!(p.cpu_user_s + p.cpu_system_s > 0.0);
    }

    #[test]
    fn prometheus_text_has_every_transport() {
        let text = Stats::new(1).prometheus();
        for t in Transport::ALL {
            assert!(text.contains(&format!(
                "pushpoll_requests_total{{transport=\"{}\"}} 0",
                t.as_str()
            )));
        }
        assert!(text.contains("# TYPE pushpoll_process_cpu_seconds_total counter"));
    }
}
