//! Command-line configuration. Every flag is also an environment variable `PUSHPOLL_…`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::names::Transport;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "pushpoll",
    version,
    about = "A live clock, a chat and a shared canvas over every way the web pushes data to a browser, with what each costs."
)]
pub struct Config {
    /// Address to listen on: loopback (the default), an interface's address, or `0.0.0.0` /
    /// `[::]` for every interface; port 0 picks a free port.
    #[arg(long, env = "PUSHPOLL_ADDR", default_value = "127.0.0.1:3000", value_parser = parse_addr)]
    pub addr: SocketAddr,

    /// SQLite file for the chat history, created if missing (`:memory:` keeps nothing).
    #[arg(long, env = "PUSHPOLL_DB", default_value = "data/pushpoll.sqlite")]
    pub db: String,

    /// Chat events the SQLite database keeps: the newest this-many; older ones are pruned
    /// (a cursor older than what is kept gets a `gap` event). Sessions are never pruned.
    #[arg(long, env = "PUSHPOLL_RETAIN_EVENTS", default_value_t = crate::engine::embedded::sqlite::RETAIN_EVENTS,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub retain_events: u64,

    /// Bytes the SQLite database may hold (its pages in use: events, their index,
    /// sessions); past it the oldest events are pruned, the newest always kept. The `-wal`
    /// file adds up to about 4 MiB.
    #[arg(long, env = "PUSHPOLL_RETAIN_BYTES", default_value_t = crate::engine::embedded::sqlite::RETAIN_BYTES,
          value_parser = clap::value_parser!(u64).range(1024 * 1024..=1 << 50))]
    pub retain_bytes: u64,

    /// Milliseconds between clock ticks.
    #[arg(long, env = "PUSHPOLL_TICK_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub tick_ms: u64,

    /// Chat messages a new subscription gets first when it has no cursor (`history=`).
    #[arg(long, env = "PUSHPOLL_HISTORY", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(0..=200))]
    pub history: u64,

    /// Chat messages one session may send per 10 s; past it, `429` (or an `error` event).
    #[arg(long, env = "PUSHPOLL_RATE_LIMIT", default_value_t = crate::chat::session::RATE_LIMIT as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rate_limit: u64,

    /// Bytes one chat session may store per 10 s: each message, whisper and rename is charged
    /// its event's JSON (the id counted as one digit); past it, `429` (or an `error` event).
    /// At least 16384, above the largest event (2000 characters escaped to 6 bytes each, plus
    /// its names).
    #[arg(long, env = "PUSHPOLL_RATE_LIMIT_BYTES", default_value_t = crate::chat::session::RATE_LIMIT_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(16_384..=1_073_741_824))]
    pub rate_limit_bytes: u64,

    /// A chat session without activity (sending, renaming) for this long ends: `leave`,
    /// and its sockets close with 4000.
    #[arg(long, env = "PUSHPOLL_IDLE_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Connections accepted at once; past it new connections get 503. Default: 20000, or the
    /// open-files limit minus a reserve of 64 descriptors when that is lower; a larger value
    /// than the limit allows is warned about at start.
    #[arg(long, env = "PUSHPOLL_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: Option<u64>,

    /// Another origin (scheme://host:port) whose pages may open WebSockets and send
    /// state-changing requests here. Repeatable, or comma-separated.
    #[arg(
        long = "allow-origin",
        env = "PUSHPOLL_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    pub allow_origin: Vec<String>,

    /// Refuse a transport with `503`, to watch clients fall back to another. Repeatable, or
    /// comma-separated.
    #[arg(long, env = "PUSHPOLL_REFUSE", value_delimiter = ',', value_enum)]
    pub refuse: Vec<Transport>,

    /// Heartbeat interval of the SSE and iframe streams and of WebSocket: `{"heartbeat":MS}`
    /// is sent at the start and whenever nothing else was sent for this long; clients take
    /// a silence of 2.5 times it for a dead stream and reconnect from their cursor.
    #[arg(long, env = "PUSHPOLL_KEEPALIVE", default_value = "15s", value_parser = parse_duration)]
    pub keepalive: Duration,

    /// How long TCP may go without hearing from a peer before it drops the connection:
    /// `TCP_USER_TIMEOUT` (data sent and not acknowledged) and TCP keepalive (an idle
    /// connection; first probe after half of it, then one every sixth). See
    /// `listener::liveness` and docs/API.md, Limits.
    #[arg(long, env = "PUSHPOLL_DEAD_PEER_TIMEOUT",
          default_value = crate::net::listener::liveness::DEFAULT_DEAD_PEER_TIMEOUT,
          value_parser = parse_duration)]
    pub dead_peer_timeout: Duration,

    /// A request head (request line and headers) must arrive within this long, counted from
    /// the moment the connection waits for one: a new connection, or an idle keep-alive one
    /// between requests. Past it the connection is closed.
    #[arg(long, env = "PUSHPOLL_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// A connection whose writes make no progress for this long (a response body, stream or
    /// WebSocket the peer does not read) is closed.
    #[arg(long, env = "PUSHPOLL_SEND_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub send_timeout: Duration,

    /// Do not serve WebTransport (HTTP/3 over QUIC, UDP at the server's port number).
    #[arg(long, env = "PUSHPOLL_NO_WEBTRANSPORT")]
    pub no_webtransport: bool,

    /// WebTransport sessions open at once, in all; past it a new one is refused (HTTP/3 429).
    #[arg(long, env = "PUSHPOLL_MAX_WEBTRANSPORT_SESSIONS", default_value_t = DEFAULT_MAX_WEBTRANSPORT_SESSIONS,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_webtransport_sessions: u64,

    /// How often the WebTransport certificate made at start is replaced (hidden: the tests
    /// make it short; it must stay under the certificate's 14 days).
    #[arg(long, env = "PUSHPOLL_WEBTRANSPORT_ROTATE", hide = true,
          default_value = crate::net::quic::DEFAULT_ROTATE, value_parser = parse_duration)]
    pub webtransport_rotate: Duration,

    /// How long a WebTransport session ticket (`POST /api/webtransport/ticket`) may wait to
    /// be redeemed (hidden: the tests make it short).
    #[arg(long, env = "PUSHPOLL_WEBTRANSPORT_TICKET_TTL", hide = true,
          default_value = crate::net::tickets::DEFAULT_TTL, value_parser = parse_duration)]
    pub webtransport_ticket_ttl: Duration,

    /// Connections one peer address may hold at once; past it that peer gets 503 and others
    /// are still served. Default: a quarter of --max-connections.
    #[arg(long, env = "PUSHPOLL_MAX_CONNECTIONS_PER_PEER",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections_per_peer: Option<u64>,

    /// Requests one peer may have in flight at once, over all its connections (an HTTP/2
    /// connection carries many): held long polls and streams, and answers it has not read
    /// yet. Past it, 503 too_many_requests; other peers are served.
    #[arg(long, env = "PUSHPOLL_MAX_REQUESTS_PER_PEER",
          default_value_t = crate::net::addresses::DEFAULT_MAX_REQUESTS_PER_PEER,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_requests_per_peer: u64,

    /// IPv6 clients are one peer per network of this many prefix bits (every per-peer limit
    /// and budget is shared by the network): a host is normally given a whole /64 and can
    /// use any address in it. 128 keys each address alone.
    #[arg(long, env = "PUSHPOLL_IPV6_PREFIX", default_value_t = crate::net::addresses::DEFAULT_IPV6_PREFIX,
          value_parser = clap::value_parser!(u8).range(16..=128))]
    pub ipv6_prefix: u8,

    /// Logins (`POST /api/session`) one peer address may make per minute; past it, 429.
    #[arg(long, env = "PUSHPOLL_LOGIN_RATE", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub login_rate: u32,

    /// Strokes one peer address may send to the draw feed per second (a burst of as many);
    /// past it, 429 / a WebSocket `rate_limited` error. At least 16, the largest batch.
    #[arg(long, env = "PUSHPOLL_DRAW_RATE", default_value_t = crate::net::addresses::DEFAULT_DRAW_RATE.count,
          value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub draw_rate: u32,

    /// Strokes the whole server takes per second, from every address together (a burst of
    /// as many): each stroke goes to every draw subscriber. Past it, 429.
    #[arg(long, env = "PUSHPOLL_DRAW_RATE_TOTAL", default_value_t = 600,
          value_parser = clap::value_parser!(u32).range(16..=10_000_000))]
    pub draw_rate_total: u32,

    /// Chat sessions alive at once; past it a login gets 503.
    #[arg(long, env = "PUSHPOLL_MAX_SESSIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_sessions: u64,

    /// WebSocket ping interval.
    #[arg(long, env = "PUSHPOLL_WS_PING", default_value = "20s", value_parser = parse_duration)]
    pub ws_ping: Duration,

    /// A WebSocket peer silent (no frame, no pong) for this long is closed with 4001.
    #[arg(long, env = "PUSHPOLL_WS_TIMEOUT", default_value = "40s", value_parser = parse_duration)]
    pub ws_timeout: Duration,

    /// The library that speaks WebSocket frames on an upgraded HTTP/1.1 connection:
    /// `tungstenite` or `fastwebsockets`. Both serve the same messages, limits and close
    /// codes, so one binary can measure them side by side.
    #[arg(long, env = "PUSHPOLL_WS_ENGINE", value_enum, default_value_t = WsEngine::Fastwebsockets)]
    pub ws_engine: WsEngine,

    /// The shape of the async runtime: `multi-thread` (one worker thread per core the process
    /// may run on, tasks stolen between them), `current-thread` (every connection on the
    /// main thread; SQLite and backlog reads still go to the blocking pool), or `auto`:
    /// current-thread when the process may run on one core only (`taskset`, a container's
    /// cpuset), where it does the same work for less CPU (results/peers), multi-thread
    /// otherwise.
    #[arg(long, env = "PUSHPOLL_RUNTIME", value_enum, default_value_t = Runtime::Auto)]
    pub runtime: Runtime,

    /// How far behind the newest chat event a replay from a cursor reaches (in ids); an
    /// older cursor first gets a `gap` event, then the last this-many events.
    #[arg(long, env = "PUSHPOLL_MAX_BACKFILL", default_value_t = crate::feed::MAX_BACKFILL,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub max_backfill: u64,

    /// Events one subscriber reads from the store (or memory) at a time while it replays a
    /// cursor: what it holds queued. A short poll reads at most its `limit`.
    #[arg(long, env = "PUSHPOLL_BACKFILL_PAGE", default_value_t = crate::feed::PAGE.events as u64,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub backfill_page: u64,

    /// Bytes of events one replay read holds at most (one event past it, at worst).
    #[arg(long, env = "PUSHPOLL_BACKFILL_PAGE_BYTES", default_value_t = crate::feed::PAGE.bytes as u64,
          value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    pub backfill_page_bytes: u64,

    /// Recent chat events kept in memory; older ones are read from the store. (Tuning and
    /// tests.)
    #[arg(long, env = "PUSHPOLL_CHAT_WINDOW", default_value_t = 4096, hide = true,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub chat_window: u64,

    /// The chat's live ring: how many events a subscriber may fall behind before it resyncs
    /// from its cursor. (Tuning and tests.)
    #[arg(long, env = "PUSHPOLL_CHAT_LAG", default_value_t = 1024, hide = true,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub chat_lag: u64,

    /// Test only: shifts the server's wall clock (every event's `ts`, the clock's ticks,
    /// `GET /api/time`) by this many milliseconds, negative for behind, to play a server whose
    /// clock disagrees with the browser's as on another machine. Process-wide.
    #[arg(long, hide = true, default_value_t = 0, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-86_400_000..=86_400_000))]
    pub test_clock_offset_ms: i64,

    /// A URL this server is also reached at, through a proxy or under a DNS name
    /// (`https://class.example`): its host is accepted by the Host check and its origin by the
    /// Origin check. Repeatable, or comma-separated.
    #[arg(long = "public-url", env = "PUSHPOLL_PUBLIC_URL", value_delimiter = ',',
          value_parser = crate::net::origin::PublicUrl::parse)]
    pub public_url: Vec<crate::net::origin::PublicUrl>,

    /// A proxy address range (CIDR, `127.0.0.0/8`, `10.0.0.0/8`, `::1/128`, or one address):
    /// when the TCP peer is inside one, the client's address and scheme are taken from
    /// `X-Forwarded-For`/`X-Forwarded-Proto` or `Forwarded`; otherwise those headers are
    /// ignored. Repeatable, or comma-separated.
    #[arg(long = "trust-proxy", env = "PUSHPOLL_TRUST_PROXY", value_delimiter = ',',
          value_parser = crate::net::forwarded::Cidr::parse)]
    pub trust_proxy: Vec<crate::net::forwarded::Cidr>,

    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this PEM certificate chain; needs
    /// --tls-key.
    #[arg(
        long,
        env = "PUSHPOLL_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "PUSHPOLL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Serve HTTPS with a certificate made at start-up for the server's names (localhost,
    /// 127.0.0.1, ::1, the bound address); prints its SHA-256 fingerprint.
    #[arg(long, env = "PUSHPOLL_TLS_SELF_SIGNED")]
    pub tls_self_signed: bool,

    /// Run as one node of many: the chat's log, live fan-out, sessions, presence and rate
    /// limits live in this Redis (`redis://HOST:PORT[/DB]`); `--db` is then not used for the
    /// chat. Without it everything stays embedded (SQLite).
    #[arg(long, env = "PUSHPOLL_REDIS")]
    pub redis: Option<String>,

    /// Events the Redis log keeps (older ones are trimmed; a cursor older than what is kept
    /// gets a `gap` event). Approximate by up to 100 (Redis trims whole stream nodes).
    #[arg(long, env = "PUSHPOLL_REDIS_RETENTION", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(100..=100_000_000))]
    pub redis_retention: u64,

    /// Announcements a node holds for its ingest before it drops them and reads the log
    /// instead. (Tests: a small queue makes a burst overflow it.)
    #[arg(long, env = "PUSHPOLL_REDIS_PUSH_QUEUE", default_value_t = crate::engine::redis::PUSH_QUEUE as u64, hide = true,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub redis_push_queue: u64,

    /// Prefix of every Redis key and channel this cluster uses (several clusters can share
    /// one Redis with different prefixes).
    #[arg(long, env = "PUSHPOLL_REDIS_PREFIX", default_value = "pushpoll:", value_parser = parse_prefix)]
    pub redis_prefix: String,

    /// The session cookies' signing key: a file holding at least 32 bytes (made with 32
    /// random bytes if it does not exist). Without it the key lives in the SQLite database,
    /// or in Redis with `--redis`, so sessions survive a restart either way.
    #[arg(long, env = "PUSHPOLL_SECRET_FILE")]
    pub secret_file: Option<std::path::PathBuf>,

    /// A file holding the operator's token (22–512 characters; only its owner may read it,
    /// mode 0600): a request with `Authorization: Bearer TOKEN` may read the operator
    /// endpoints (`/metrics`, all of `/api/stats`, every tag's record) from another machine.
    /// Without it, only loopback clients may.
    #[arg(long, env = "PUSHPOLL_OPERATOR_TOKEN_FILE", value_name = "PATH",
          value_parser = crate::operator::Token::from_file, conflicts_with = "operator_token")]
    pub operator_token_file: Option<crate::operator::Token>,

    /// The operator's token itself, for environments that pass secrets as variables
    /// (`PUSHPOLL_OPERATOR_TOKEN`); on the command line other users of this machine can read
    /// it (`ps`), so prefer --operator-token-file.
    #[arg(long, env = "PUSHPOLL_OPERATOR_TOKEN", hide_env_values = true, value_name = "TOKEN",
          value_parser = crate::operator::Token::parse)]
    pub operator_token: Option<crate::operator::Token>,
}

/// A refused `--redis-prefix`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("1–64 printable ASCII characters without spaces")]
pub struct BadPrefix;

/// A Redis key prefix: 1–64 printable ASCII characters without spaces.
fn parse_prefix(s: &str) -> Result<String, BadPrefix> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BadPrefix);
    }
    Ok(s.to_string())
}

impl Config {
    /// Whether the server terminates TLS itself (`--tls-cert`/`--tls-key` or
    /// `--tls-self-signed`): its own origins are then `https://`.
    pub fn serves_tls(&self) -> bool {
        self.tls_cert.is_some() || self.tls_self_signed
    }

    /// The defaults, as if run with no flags and no environment: for tests and embedding.
    pub fn defaults() -> Config {
        // Parsing an empty command line with the defaults above cannot fail.
        Config::try_parse_from(["pushpoll"]).unwrap_or_else(|e| panic!("default config: {e}"))
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    /// The chat feed's memory and replay limits.
    pub fn feed_limits(&self) -> crate::feed::Limits {
        crate::feed::Limits {
            window: self.chat_window as usize,
            lag: self.chat_lag as usize,
            page: crate::feed::PageLimit {
                events: self.backfill_page as usize,
                bytes: self.backfill_page_bytes as usize,
            },
            max_backfill: self.max_backfill,
        }
    }

    /// The per-peer bounds and budgets ([`crate::net::addresses`]).
    pub fn address_limits(&self) -> crate::net::addresses::AddressLimits {
        crate::net::addresses::AddressLimits {
            connections: self.max_connections_per_peer(),
            requests: self.max_requests_per_peer,
            ipv6_prefix: self.ipv6_prefix,
            login: crate::net::addresses::Rate {
                count: self.login_rate,
                per: Duration::from_secs(60),
            },
            draw: crate::net::addresses::Rate {
                count: self.draw_rate,
                per: Duration::from_secs(1),
            },
        }
    }

    /// The operator's token, from `--operator-token-file` or `--operator-token`.
    pub fn operator_token(&self) -> Option<&crate::operator::Token> {
        self.operator_token_file
            .as_ref()
            .or(self.operator_token.as_ref())
    }

    /// What the SQLite store keeps (`--retain-events`, `--retain-bytes`).
    pub fn retain(&self) -> crate::engine::embedded::sqlite::Retain {
        crate::engine::embedded::sqlite::Retain {
            events: self.retain_events,
            bytes: self.retain_bytes,
        }
    }

    /// `--max-connections-per-peer`, or a quarter of `--max-connections` (at least 1).
    pub fn max_connections_per_peer(&self) -> u64 {
        self.max_connections_per_peer
            .unwrap_or((self.max_connections() / 4).max(1))
    }

    /// `--max-connections` as given, or its default for the open-files limit this process can
    /// reach (its hard limit, to which `main` raises the soft one).
    pub fn max_connections(&self) -> u64 {
        self.max_connections_within(crate::open_files_hard_limit())
    }

    /// `--max-connections` as given, or its default for an open-files limit of `open_files`.
    pub fn max_connections_within(&self, open_files: u64) -> u64 {
        self.max_connections
            .unwrap_or_else(|| default_max_connections(open_files))
    }

    /// The descriptors an explicit `--max-connections` needs that an open-files limit of
    /// `open_files` does not give, or `None` when it fits (or was not given: the default
    /// always fits). What `main` warns about.
    pub fn open_files_shortfall(&self, open_files: u64) -> Option<u64> {
        let needed = self.max_connections?.saturating_add(OPEN_FILES_RESERVE);
        (needed > open_files).then(|| needed - open_files)
    }
}

/// `--max-connections` where the open-files limit leaves room for it: the bound the Limits
/// table of docs/API.md and the load tests were written against.
pub const MAX_CONNECTIONS: u64 = 20_000;

/// Descriptors kept out of `--max-connections`'s default for what is not a client's
/// connection: the listening socket, the store (SQLite's database, `-wal` and `-shm`, or the
/// Redis connections), stdin/stdout/stderr, and the runtime's own (epoll, its wake-up
/// descriptors).
pub const OPEN_FILES_RESERVE: u64 = 64;

/// `--max-connections`'s default under an open-files limit of `open_files`: one descriptor per
/// connection beside [`OPEN_FILES_RESERVE`], at most [`MAX_CONNECTIONS`], at least 1. So a
/// machine whose hard limit is 20,000 gets 19,936 and a server that starts without a warning,
/// rather than a bound the kernel would refuse first (`accept` failing with `EMFILE`).
pub fn default_max_connections(open_files: u64) -> u64 {
    open_files
        .saturating_sub(OPEN_FILES_RESERVE)
        .clamp(1, MAX_CONNECTIONS)
}

/// A refused `--addr`.
/// The WebSocket frame library (`--ws-engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WsEngine {
    /// tungstenite through axum's `ws` extractor.
    Tungstenite,
    /// Deno's fastwebsockets on hyper's upgraded connection.
    Fastwebsockets,
}

/// The async runtime's shape (`--runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    Auto,
    MultiThread,
    CurrentThread,
}

impl Runtime {
    /// Whether the runtime runs on one thread, for a process that may run on `cores` cores
    /// (`Auto`: only when that is one).
    pub fn current_thread(self, cores: usize) -> bool {
        match self {
            Runtime::Auto => cores <= 1,
            Runtime::CurrentThread => true,
            Runtime::MultiThread => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAddr {
    #[error("{0} (expected IP:PORT, e.g. 127.0.0.1:3000, 0.0.0.0:3000 or [::]:3000)")]
    NotIpPort(std::net::AddrParseError),
    #[error("{0} is a multicast or broadcast address")]
    Unusable(SocketAddr),
}

/// `IP:PORT`: loopback, an interface's address, or the unspecified `0.0.0.0` / `[::]` (every
/// interface). Multicast and broadcast addresses cannot be listened on and are refused here,
/// with a message, rather than by `bind`.
fn parse_addr(s: &str) -> Result<SocketAddr, BadAddr> {
    let addr: SocketAddr = s.trim().parse().map_err(BadAddr::NotIpPort)?;
    let unusable = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
        std::net::IpAddr::V6(v6) => v6.is_multicast(),
    };
    if unusable {
        return Err(BadAddr::Unusable(addr));
    }
    Ok(addr)
}

/// The longest duration a flag takes: 366 days.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// A refused duration (every duration flag, and the load tester's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadDuration {
    #[error("{0:?} is not a duration (try 500ms, 15s, 30m, 2h)")]
    NotADuration(String),
    #[error("unknown unit {unit:?} in {input:?} (use ms, s, m or h)")]
    UnknownUnit { unit: String, input: String },
    #[error("{0:?} is too long (at most {days} days)", days = MAX_DURATION.as_secs() / 86_400)]
    TooLong(String),
    #[error("a duration must be more than zero")]
    Zero,
}

/// `--max-webtransport-sessions`'s default.
pub const DEFAULT_MAX_WEBTRANSPORT_SESSIONS: u64 = 1000;

/// `250ms`, `15s`, `30m`, `2h`; a bare number is seconds; at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, BadDuration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| BadDuration::NotADuration(s.to_string()))?;
    let millis_per_unit: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => {
            return Err(BadDuration::UnknownUnit {
                unit: other.to_string(),
                input: s.to_string(),
            });
        }
    };
    // Durations are added to clock instants later, where an overflow would panic: refuse
    // anything past a bound here, at start-up, with a clear message.
    let d = n
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| BadDuration::TooLong(s.to_string()))?;
    if d.is_zero() {
        return Err(BadDuration::Zero);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_clock_offset_is_hidden_from_help_and_takes_negative_values() {
        use clap::CommandFactory;
        let help = Config::command().render_long_help().to_string();
        assert!(!help.contains("test-clock-offset"), "{help}");
        let config = Config::try_parse_from(["pushpoll", "--test-clock-offset-ms", "-7000"]);
        assert_eq!(config.map(|c| c.test_clock_offset_ms).ok(), Some(-7000));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("8784h").is_ok());
        assert!(parse_duration("8785h").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
        assert!(parse_duration("99999999999999999999999s").is_err());
    }

    #[test]
    fn any_unicast_address_is_accepted() {
        for ok in [
            "127.0.0.1:0",
            "[::1]:3000",
            "0.0.0.0:3000",
            "[::]:3000",
            "192.168.1.2:3000",
        ] {
            assert!(parse_addr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "localhost:3000",
            "0.0.0.0",
            "224.0.0.1:3000",
            "255.255.255.255:80",
            "[ff02::1]:80",
            "",
        ] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auto_runtime_is_current_thread_on_one_core_only() {
        assert!(Runtime::Auto.current_thread(1));
        assert!(!Runtime::Auto.current_thread(2));
        assert!(!Runtime::MultiThread.current_thread(1));
        assert!(Runtime::CurrentThread.current_thread(8));
    }

    #[test]
    fn defaults_match_the_api_contract() {
        let c = Config::defaults();
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.tick_ms, 1000);
        assert_eq!(c.max_connections, None);
        assert_eq!(c.max_connections_within(1 << 20), MAX_CONNECTIONS);
        assert_eq!(c.keepalive, Duration::from_secs(15));
        assert_eq!(c.ws_ping, Duration::from_secs(20));
        assert_eq!(c.ws_timeout, Duration::from_secs(40));
        assert_eq!(c.ws_engine, WsEngine::Fastwebsockets);
        assert_eq!(c.runtime, Runtime::Auto);
        assert_eq!(c.history, 20);
        assert_eq!(c.rate_limit, 20);
        assert_eq!(c.rate_limit_bytes, 32 * 1024);
        assert_eq!(c.idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.db, "data/pushpoll.sqlite");
        assert_eq!(c.retain_events, 1_000_000);
        assert_eq!(c.retain_bytes, 256 * 1024 * 1024);
    }

    #[test]
    fn the_connection_default_leaves_the_reserve_of_the_open_files_limit() {
        // This machine's case: a hard limit of 20,000, which the old fixed default filled.
        assert_eq!(default_max_connections(20_000), 20_000 - OPEN_FILES_RESERVE);
        assert_eq!(default_max_connections(4_096), 4_096 - OPEN_FILES_RESERVE);
        // Room enough: the bound stays what the Limits table states.
        assert_eq!(default_max_connections(1 << 20), MAX_CONNECTIONS);
        assert_eq!(default_max_connections(u64::MAX), MAX_CONNECTIONS); // RLIM_INFINITY
        assert_eq!(
            default_max_connections(MAX_CONNECTIONS + OPEN_FILES_RESERVE),
            MAX_CONNECTIONS
        );
        // A limit smaller than the reserve still admits one connection.
        assert_eq!(default_max_connections(10), 1);
        assert_eq!(default_max_connections(0), 1);
    }

    #[test]
    fn only_an_explicit_max_connections_that_does_not_fit_is_a_shortfall() {
        let default = Config::defaults();
        for limit in [0, 10, 1_024, 20_000, 1 << 20] {
            assert_eq!(
                default.open_files_shortfall(limit),
                None,
                "default at {limit}"
            );
        }
        assert_eq!(default.max_connections_within(20_000), 19_936);

        let given = |n: &str| {
            Config::try_parse_from(["pushpoll", "--max-connections", n])
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let big = given("20000");
        assert_eq!(big.max_connections_within(20_000), 20_000);
        assert_eq!(big.open_files_shortfall(20_000), Some(OPEN_FILES_RESERVE));
        assert_eq!(big.open_files_shortfall(20_064), None);
        assert_eq!(given("19936").open_files_shortfall(20_000), None);
        assert_eq!(given("100000").open_files_shortfall(1 << 20), None);
    }
}
