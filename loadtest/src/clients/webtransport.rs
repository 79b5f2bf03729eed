//! WebTransport over HTTP/3: a QUIC connection to the UDP port `GET /api/webtransport` names,
//! the server's certificate pinned by the SHA-256 hashes it lists (as a page passes them to
//! `serverCertificateHashes`), one session at `/webtransport/FEED?…&after=CURSOR`.
//!
//! - **Events**: NDJSON on the stream the server opens, decoded as fetch streaming's body is
//!   (heartbeat lines skipped); with `--datagrams` (clock, draw) also one event per datagram.
//! - **Upstream** (`--feed draw`): each stroke is a command line on a bidirectional stream the
//!   client opens, as the WebSocket sends a frame on its socket; a refusal comes back as an
//!   `error` line on that stream.
//! - **Bytes**: not a TCP socket's, so not [`crate::net::Counting`]'s: the UDP payload quinn
//!   sent and received on the session's connection (`ConnectionStats::udp_tx`/`udp_rx`
//!   bytes: QUIC packets with their headers, encryption and acknowledgements, the TLS
//!   handshake and the HTTP/3 CONNECT; without the UDP, IP and link headers, as TCP's counts
//!   are without theirs), added to the run's counters when the session opens (its
//!   handshake), four times a second (so the measured window's bytes are within a quarter
//!   of a second of its edges), and when it ends, after its close has been sent.
//! - **Datagram loss**: QUIC does not resend a datagram, so a missing id is loss the transport
//!   accepts. Within a session the server sends the events in id order, so a jump in the ids
//!   of what arrived (one tick period for the clock, one for the draw feed's sequence) counts
//!   the missing ones in [`Metrics::datagrams_lost`](crate::metrics::Metrics), apart from the
//!   run's `lost`.
//! - **Certificate rotation**: the hashes are read once per run (per node); a handshake that
//!   fails makes the next attempt read them again.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use wtransport::endpoint::ConnectOptions;
use wtransport::error::ConnectingError;
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream, VarInt};

use pushpoll::names::{FeedName, Transport};
use pushpoll::wire::NdjsonDecoder;

use super::{Client, Ctx};
use crate::net::{Http, IoCounters, body};

/// How often a session adds its connection's UDP bytes to the run's counters.
const SAMPLE_BYTES: Duration = Duration::from_millis(250);

/// Where a node's WebTransport endpoint is, and the hashes its certificate is pinned by: read
/// once (see [`Pins::get`]) and shared by the node's clients.
pub struct Pinned {
    pub addr: SocketAddr,
    pub hashes: Vec<Sha256Digest>,
}

/// The node's [`Pinned`], read on first use and again after a handshake failed with it.
#[derive(Default)]
pub struct Pins(Mutex<Option<Arc<Pinned>>>);

impl Pins {
    /// The endpoint and hashes, reading `GET /api/webtransport` at `tcp` if none are kept.
    /// The read is not held under the lock: clients that miss together read together, and
    /// the runner reads once before any client starts.
    pub async fn get(&self, tcp: SocketAddr) -> anyhow::Result<Arc<Pinned>> {
        if let Some(pinned) = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(pinned);
        }
        let fresh = Arc::new(read_pins(tcp).await?);
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Ok(slot.get_or_insert(fresh).clone())
    }

    /// Drops `used` so the next [`Pins::get`] reads the list again (the certificate may have
    /// rotated); a newer list another client read already is kept.
    fn forget(&self, used: &Arc<Pinned>) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|kept| Arc::ptr_eq(kept, used)) {
            *slot = None;
        }
    }
}

/// `GET /api/webtransport` at `tcp`: the UDP port (on the same host) and the hashes. The
/// request is the runner's, like the cursor probe, and its bytes are not the clients'.
async fn read_pins(tcp: SocketAddr) -> anyhow::Result<Pinned> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Info {
        port: u16,
        certificate_hashes: Vec<Hash>,
    }
    #[derive(serde::Deserialize)]
    struct Hash {
        algorithm: String,
        value: String,
    }
    let mut http = Http::connect(tcp, &Arc::new(IoCounters::default())).await?;
    let response = http.get("/api/webtransport").await?;
    let status = response.status().as_u16();
    let text = body(response).await?;
    if status == 404 {
        anyhow::bail!(
            "the server at {tcp} serves no WebTransport (started with --no-webtransport, or its UDP port was taken)"
        );
    }
    super::expect_status(hyper::StatusCode::from_u16(status)?, 200)?;
    let info: Info = serde_json::from_slice(&text).context("GET /api/webtransport")?;
    let mut hashes = Vec::with_capacity(info.certificate_hashes.len());
    for hash in info.certificate_hashes {
        anyhow::ensure!(
            hash.algorithm == "sha-256",
            "GET /api/webtransport: unknown hash algorithm {:?}",
            hash.algorithm
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&hash.value)
            .context("GET /api/webtransport: a hash that is not base64")?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            anyhow::anyhow!("GET /api/webtransport: a SHA-256 hash of the wrong length")
        })?;
        hashes.push(Sha256Digest::new(bytes));
    }
    anyhow::ensure!(
        !hashes.is_empty(),
        "GET /api/webtransport lists no certificate hash (a server with --tls-cert): the load tester pins by hash only"
    );
    Ok(Pinned {
        addr: SocketAddr::new(tcp.ip(), info.port),
        hashes,
    })
}

pub async fn session(ctx: &Ctx, client: &mut Client) -> anyhow::Result<()> {
    let pinned = ctx.webtransport.get(ctx.addr).await?;
    let extra = if ctx.datagrams { "&datagrams=1" } else { "" };
    let path = client.path(ctx, Transport::WebTransport, extra);
    session_at(ctx, client, &pinned, &path).await
}

/// One session at `path` on `pinned`'s endpoint, from a UDP socket of its own.
pub async fn session_at(
    ctx: &Ctx,
    client: &mut Client,
    pinned: &Arc<Pinned>,
    path: &str,
) -> anyhow::Result<()> {
    let config = ClientConfig::builder()
        .with_bind_address(SocketAddr::new(unspecified(pinned.addr), 0))
        .with_server_certificate_hashes(pinned.hashes.iter().cloned())
        .build();
    let endpoint = Endpoint::client(config).context("WebTransport client endpoint")?;
    let url = format!("https://{}{path}", pinned.addr);
    client.requested(ctx);
    let connection = match endpoint.connect(ConnectOptions::builder(url).build()).await {
        Ok(connection) => connection,
        Err(ConnectingError::SessionRejected) => {
            // HTTP/3's answer to the CONNECT (403 or 404); wtransport does not pass its status on.
            anyhow::bail!("WebTransport session refused");
        }
        Err(err) => {
            // The certificate may have rotated since the hashes were read.
            ctx.webtransport.forget(pinned);
            return Err(anyhow::Error::new(err).context("WebTransport handshake"));
        }
    };
    client.opened(ctx);
    let mut counted = Counted::default();
    // The handshake's bytes, now rather than at the next sample (the window may open first).
    counted.add(&connection, &ctx.metrics.io);
    let ended = events(ctx, client, &connection, &mut counted).await;
    // Closed by us in every case (a no-op if the server closed first), then the endpoint is
    // left to drain (three probe timeouts, about 0.1 s on loopback), so the CONNECTION_CLOSE
    // and what the server sent meanwhile are counted. At the run's end the client waits for
    // it, so its bytes are in before the totals are read; after a break or a failure it
    // drains in the background, as a browser reconnects without waiting for its old
    // connection to drain.
    let io = ctx.metrics.io.clone();
    let finish = async move {
        connection.close(VarInt::from_u32(0), b"");
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        counted.add(&connection, &io);
    };
    if ctx.stop.is_cancelled() {
        finish.await;
    } else {
        tokio::spawn(finish);
    }
    ended
}

/// The any-address of `peer`'s family, to bind the client's socket.
fn unspecified(peer: SocketAddr) -> std::net::IpAddr {
    match peer {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// The connection's UDP bytes already added to the run's counters.
#[derive(Default)]
struct Counted {
    read: u64,
    written: u64,
}

impl Counted {
    /// Adds what the connection's statistics gained since the last call.
    fn add(&mut self, connection: &Connection, io: &IoCounters) {
        let stats = connection.quic_connection().stats();
        let (read, written) = (stats.udp_rx.bytes, stats.udp_tx.bytes);
        io.read.fetch_add(read.saturating_sub(self.read), Relaxed);
        io.written
            .fetch_add(written.saturating_sub(self.written), Relaxed);
        self.read = self.read.max(read);
        self.written = self.written.max(written);
    }
}

/// Reads the session until the server ends it or the run stops (`Ok`), or it fails.
async fn events(
    ctx: &Ctx,
    client: &mut Client,
    connection: &Connection,
    counted: &mut Counted,
) -> anyhow::Result<()> {
    let mut stream = tokio::select! {
        () = ctx.stop.cancelled() => return Ok(()),
        stream = connection.accept_uni() => stream.context("the server's event stream")?,
    };
    let mut lines = NdjsonDecoder::default();
    let mut gaps = Gaps::default();
    let mut upstream: Option<Upstream> = None;
    let mut buf = vec![0u8; 16 * 1024];
    let mut sample = tokio::time::interval(SAMPLE_BYTES);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = ctx.stop.cancelled();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            read = stream.read(&mut buf) => match read.context("the server's event stream")? {
                // The server finished the stream: it ends the session too.
                None => return Ok(()),
                Some(n) => lines.push(&buf[..n], |json| {
                    gaps.seen(ctx, json, &client.seen);
                    client.on_json(ctx, json);
                }),
            },
            datagram = connection.receive_datagram(), if ctx.datagrams => {
                let datagram = datagram.context("the session's datagrams")?;
                ctx.metrics.datagrams.fetch_add(1, Relaxed);
                gaps.seen(ctx, &datagram, &client.seen);
                client.on_json(ctx, &datagram);
            }
            _ = sample.tick() => counted.add(connection, &ctx.metrics.io),
            stroke = super::ws::due(ctx, &mut client.draw) => {
                if upstream.is_none() {
                    upstream = Some(Upstream::open(connection).await?);
                }
                if let (Some(up), Some(sending)) = (upstream.as_mut(), &ctx.sending) {
                    let line = format!("{}\n", crate::draw::ws_frame(stroke));
                    sending.sends.fetch_add(1, Relaxed);
                    up.send.write_all(line.as_bytes()).await.context("the command stream")?;
                    sending.strokes.fetch_add(1, Relaxed);
                    sending.stream_line_bytes.fetch_add(line.len() as u64, Relaxed);
                }
            }
            refusal = refusals(&mut upstream) => {
                refusal?;
                ctx.metrics.error("draw_refused");
            }
        }
    }
}

/// The bidirectional stream the draw commands go up on, and its answers' read half.
struct Upstream {
    send: SendStream,
    recv: RecvStream,
    replies: NdjsonDecoder,
    pending: u64,
}

impl Upstream {
    async fn open(connection: &Connection) -> anyhow::Result<Upstream> {
        let (send, recv) = connection
            .open_bi()
            .await
            .context("opening the command stream")?
            .await
            .context("opening the command stream")?;
        Ok(Upstream {
            send,
            recv,
            replies: NdjsonDecoder::default(),
            pending: 0,
        })
    }
}

/// Waits for the server's next answer on the command stream: each line is a refusal (the
/// server answers only those). Never returns while there is no stream.
async fn refusals(upstream: &mut Option<Upstream>) -> anyhow::Result<()> {
    let Some(up) = upstream.as_mut() else {
        return std::future::pending().await;
    };
    let mut buf = [0u8; 4096];
    loop {
        if up.pending > 0 {
            up.pending -= 1;
            return Ok(());
        }
        match up.recv.read(&mut buf).await.context("the command stream")? {
            None => anyhow::bail!("the server closed the command stream"),
            Some(n) => {
                let mut count = 0;
                up.replies.push(&buf[..n], |_| count += 1);
                up.pending += count;
            }
        }
    }
}

/// Counts the events missing between those that arrived in one session, in datagram mode.
#[derive(Default)]
struct Gaps {
    last: Option<u64>,
    /// The clock's tick period in ids (its ids are milliseconds): the smallest step seen.
    step: Option<u64>,
}

impl Gaps {
    /// Notes the event `json` before the client records it (`seen`: the ids it has).
    fn seen(&mut self, ctx: &Ctx, json: &[u8], seen: &std::collections::HashSet<u64>) {
        #[derive(serde::Deserialize)]
        struct Id {
            id: u64,
        }
        if !ctx.datagrams {
            return;
        }
        let Ok(Id { id }) = serde_json::from_slice::<Id>(json) else {
            return;
        };
        let Some(last) = self.last else {
            self.last = Some(id);
            return;
        };
        if id <= last {
            // A datagram a later one overtook was counted missing when that one came.
            if id < last && !seen.contains(&id) && self.step_of(ctx).is_some() {
                let _ = ctx
                    .metrics
                    .datagrams_lost
                    .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
            }
            return;
        }
        let diff = id - last;
        if ctx.feed == FeedName::Clock {
            self.step = Some(self.step.map_or(diff, |s| s.min(diff)));
        }
        if let Some(step) = self.step_of(ctx) {
            // Rounded: a clock tick published a little late is still one step.
            let steps = (diff + step / 2) / step;
            ctx.metrics
                .datagrams_lost
                .fetch_add(steps.saturating_sub(1), Relaxed);
        }
        self.last = Some(id);
    }

    /// The id step between consecutive events: 1 for the draw feed's sequence, the tick
    /// period for the clock once two ticks were seen.
    fn step_of(&self, ctx: &Ctx) -> Option<u64> {
        match ctx.feed {
            FeedName::Draw => Some(1),
            FeedName::Clock => self.step,
            FeedName::Chat => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::AtomicU64;

    use tokio::net::UdpSocket;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::metrics::Metrics;

    fn ctx(addr: SocketAddr, feed: FeedName, datagrams: bool) -> Ctx {
        Ctx {
            addr,
            feed,
            metrics: Arc::new(Metrics::new(1)),
            stop: CancellationToken::new(),
            poll_interval: Duration::from_secs(1),
            sending: None,
            datagrams,
            webtransport: Arc::default(),
        }
    }

    fn tick(id: u64) -> Vec<u8> {
        format!(r#"{{"id":{id},"ts":1,"type":"tick","time":"t"}}"#).into_bytes()
    }

    fn stroke(id: u64) -> Vec<u8> {
        format!(
            r##"{{"id":{id},"ts":1,"type":"stroke","color":"#000000","width":1,"points":[1,2]}}"##
        )
        .into_bytes()
    }

    /// Feeds `ids` through the gap counter as they would arrive, recording each as seen.
    fn missing(feed: FeedName, ids: &[u64], event: fn(u64) -> Vec<u8>) -> u64 {
        let ctx = ctx("127.0.0.1:9".parse().unwrap(), feed, true);
        let mut gaps = Gaps::default();
        let mut seen = HashSet::new();
        for &id in ids {
            gaps.seen(&ctx, &event(id), &seen);
            seen.insert(id);
        }
        ctx.metrics.datagrams_lost.load(Relaxed)
    }

    #[test]
    fn missing_ids_are_counted_once_and_a_late_datagram_is_taken_back() {
        // The draw feed's ids are a sequence.
        assert_eq!(missing(FeedName::Draw, &[5, 6, 7, 8], stroke), 0);
        assert_eq!(missing(FeedName::Draw, &[5, 6, 9, 10, 13], stroke), 4);
        // 7 overtaken by 8: counted missing when 8 came, taken back when 7 did; a duplicate
        // of an id already seen is not a late one.
        assert_eq!(missing(FeedName::Draw, &[5, 6, 8, 7, 9], stroke), 0);
        assert_eq!(missing(FeedName::Draw, &[5, 6, 8, 6, 9], stroke), 1);
        // The clock's ids are milliseconds a tick period apart; a tick a little late is
        // still one period.
        let clock = |ids: &[u64]| missing(FeedName::Clock, ids, tick);
        assert_eq!(clock(&[1_000, 2_000, 3_000, 4_001]), 0);
        assert_eq!(clock(&[1_000, 2_000, 5_000, 6_000]), 2);
        assert_eq!(clock(&[500, 1_500, 2_500]), 0);
        // Without datagram mode nothing is counted (the stream is reliable).
        let plain = ctx("127.0.0.1:9".parse().unwrap(), FeedName::Draw, false);
        let mut gaps = Gaps::default();
        for id in [1, 5] {
            gaps.seen(&plain, &stroke(id), &HashSet::new());
        }
        assert_eq!(plain.metrics.datagrams_lost.load(Relaxed), 0);
    }

    /// A UDP relay in front of the server's QUIC port, counting the payload it forwards each
    /// way: what a client sent and what reached it.
    #[derive(Default)]
    struct Relay {
        up: AtomicU64,
        down: AtomicU64,
    }

    /// Forwards between the one client that writes to `front` and `server`, counting.
    async fn relay(front: UdpSocket, server: SocketAddr, counts: Arc<Relay>) {
        let front = Arc::new(front);
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        back.connect(server).await.unwrap();
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let down = {
            let (front, back, client, counts) =
                (front.clone(), back.clone(), client.clone(), counts.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok(n) = back.recv(&mut buf).await {
                    let to = *client.lock().unwrap();
                    if let Some(to) = to
                        && front.send_to(&buf[..n], to).await.is_ok()
                    {
                        counts.down.fetch_add(n as u64, Relaxed);
                    }
                }
            })
        };
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = front.recv_from(&mut buf).await {
            *client.lock().unwrap() = Some(from);
            counts.up.fetch_add(n as u64, Relaxed);
            let _ = back.send(&buf[..n]).await;
        }
        down.abort();
    }

    /// The real server (the `pushpoll` binary beside this one), a clock session in datagram
    /// mode through the relay: the bytes the client reports both ways are exactly the UDP
    /// payload the relay forwarded, and the server counted the one session the client did.
    #[tokio::test]
    async fn the_bytes_counted_are_the_udp_payload_on_the_wire_both_ways() {
        let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let relay_addr = front.local_addr().unwrap();
        let bin = crate::server::server_binary().expect("the pushpoll binary (cargo build)");
        let mut command = tokio::process::Command::new(bin);
        command
            .args([
                "--addr",
                "127.0.0.1:0",
                "--db",
                ":memory:",
                "--tick-ms",
                "200",
            ])
            // The relay's address is a name the server answers to (the CONNECT's authority).
            .arg("--allow-origin")
            .arg(format!("http://{relay_addr}"))
            .env("PUSHPOLL_LOG", "warn");
        let server = pushpoll::spawn::start(&mut command).await.unwrap();
        let tcp = server.addr;
        let ctx = ctx(tcp, FeedName::Clock, true);
        let pinned = ctx.webtransport.get(tcp).await.unwrap();
        assert_eq!(pinned.addr, tcp, "UDP at the TCP port number");
        let counts = Arc::new(Relay::default());
        tokio::spawn(relay(front, pinned.addr, counts.clone()));
        let via_relay = Arc::new(Pinned {
            addr: relay_addr,
            hashes: pinned.hashes.clone(),
        });
        let mut client = Client::new(0, "lobby".into(), None);
        let path = client.path(&ctx, Transport::WebTransport, "&datagrams=1");
        let stop = ctx.stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            stop.cancel();
        });
        session_at(&ctx, &mut client, &via_relay, &path)
            .await
            .unwrap();
        let io = ctx.metrics.io.snapshot();
        assert!(io.read > 1_000 && io.written > 1_000, "{io:?}");
        assert_eq!(io.written, counts.up.load(Relaxed), "bytes up");
        assert_eq!(io.read, counts.down.load(Relaxed), "bytes down");
        // About 8 ticks at 200 ms, as datagrams, and none missing on loopback.
        let delivered = ctx.metrics.delivered.load(Relaxed);
        assert!(delivered >= 5, "{delivered} ticks");
        assert!(ctx.metrics.datagrams.load(Relaxed) >= delivered - 1);
        assert_eq!(ctx.metrics.datagrams_lost.load(Relaxed), 0);
        assert_eq!(ctx.metrics.requests.load(Relaxed), 1);
        let stats = crate::server::stats(tcp).await.unwrap();
        assert_eq!(stats.webtransport.sessions, 1, "{:?}", stats.webtransport);
        // The server's payload (events and heartbeats) travels inside what was counted.
        assert!(stats.webtransport.bytes_sent < io.read);
    }

    /// Hashes that no longer match (a rotated certificate) fail the handshake, and the next
    /// session reads the list again and connects.
    #[tokio::test]
    async fn a_refused_certificate_makes_the_next_session_read_the_hashes_again() {
        let bin = crate::server::server_binary().expect("the pushpoll binary (cargo build)");
        let mut command = tokio::process::Command::new(bin);
        command
            .args(["--addr", "127.0.0.1:0", "--db", ":memory:"])
            .env("PUSHPOLL_LOG", "warn");
        let server = pushpoll::spawn::start(&mut command).await.unwrap();
        let ctx = ctx(server.addr, FeedName::Clock, false);
        let fresh = ctx.webtransport.get(server.addr).await.unwrap();
        let stale = Arc::new(Pinned {
            addr: fresh.addr,
            hashes: vec![Sha256Digest::new([7; 32])],
        });
        *ctx.webtransport.0.lock().unwrap() = Some(stale.clone());
        let mut client = Client::new(0, "lobby".into(), None);
        let err = session(&ctx, &mut client).await.unwrap_err();
        assert!(format!("{err:#}").contains("handshake"), "{err:#}");
        let again = ctx.webtransport.get(server.addr).await.unwrap();
        assert!(!Arc::ptr_eq(&again, &stale), "the stale hashes were kept");
        assert_eq!(again.hashes, fresh.hashes);
        // And with them the session opens and ticks arrive.
        let stop = ctx.stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            stop.cancel();
        });
        session(&ctx, &mut client).await.unwrap();
        assert!(ctx.metrics.delivered.load(Relaxed) >= 1);
        assert_eq!(ctx.metrics.requests.load(Relaxed), 2);
    }
}
