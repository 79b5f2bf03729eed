//! `loadtest ws-clients`: what one received WebSocket message costs the load tester with
//! each client it could use — its own [`crate::wsframe`], fastwebsockets, and
//! tokio-tungstenite with a small read buffer — so the choice among them rests on a
//! measurement made on one machine in one run (docs/MEASURING.md, "The WebSocket client").
//!
//! Each phase starts a pushpoll server, connects `--connections` subscribers of one
//! client kind to its chat room, publishes `--rate` messages/s for `--seconds`, and reads
//! the CPU time (user + system, `getrusage(RUSAGE_THREAD)`) of the one thread that ran
//! every subscriber of that phase, from the first published message to the end of the
//! drain. CPU time rather than wall time, so other work on a shared machine slows a phase
//! without changing its figure much. The kinds take turns, in a rotated order each round,
//! so a slow drift of the machine falls on all of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use anyhow::bail;
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::cli::WsClientsArgs;
use crate::metrics::Metrics;
use crate::net::{Counting, IoCounters, tcp};
use crate::publisher::{Publisher, room_name};
use crate::wsframe::{self, Incoming, Reader};

/// The read buffer tokio-tungstenite is given: wsframe's own (4 KiB), rather than its
/// 128 KiB default that it zero-fills before every read.
const TUNGSTENITE_READ_BUFFER: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Wsframe,
    Fastwebsockets,
    Tungstenite,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Wsframe, Kind::Fastwebsockets, Kind::Tungstenite];

    /// Its key in `summary.json`.
    fn key(self) -> &'static str {
        match self {
            Kind::Wsframe => "wsframe",
            Kind::Fastwebsockets => "fastwebsockets",
            Kind::Tungstenite => "tungstenite",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Wsframe => "wsframe (loadtest's own)",
            Kind::Fastwebsockets => "fastwebsockets 0.10",
            Kind::Tungstenite => "tokio-tungstenite 0.29, 4 KiB read buffer",
        }
    }
}

/// One phase's figures: one kind's subscribers over one publishing window.
#[derive(Debug, Clone, Copy, Serialize)]
struct Phase {
    #[serde(serialize_with = "by_key")]
    kind: Kind,
    round: usize,
    cpu_s: f64,
    messages: u64,
    bytes_down: u64,
    errors: u64,
}

impl Phase {
    fn us_per_message(&self) -> f64 {
        self.cpu_s * 1e6 / self.messages.max(1) as f64
    }
}

fn by_key<S: serde::Serializer>(kind: &Kind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.key())
}

/// One kind over every round: what `summary.json` and the table say of it.
#[derive(Debug, Serialize)]
struct Figures {
    client: &'static str,
    name: &'static str,
    /// µs of CPU per message received, each round in order.
    us_per_message: Vec<f64>,
    mean_us: f64,
    min_us: f64,
    max_us: f64,
    /// (max − min) ÷ mean, in %: the noise between rounds.
    spread_percent: f64,
    /// This kind's mean ÷ wsframe's.
    vs_wsframe: f64,
    messages_per_phase: u64,
    bytes_down_per_message: f64,
    errors: u64,
}

#[derive(Debug, Serialize)]
struct Summary<'a> {
    started: String,
    command: String,
    machine: crate::report::Machine,
    connections: u64,
    rate: f64,
    message_size: usize,
    seconds: u64,
    rounds: u64,
    clients: Vec<Figures>,
    phases: &'a [Phase],
}

pub async fn run(args: &WsClientsArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.rounds == 0 || args.seconds == 0 || args.rate <= 0.0 {
        bail!("--connections, --rounds, --seconds and --rate must be above 0");
    }
    crate::check_open_files(args.connections as usize)?;
    let started = pushpoll::feed::clock::rfc3339_utc(pushpoll::feed::clock::now_micros() / 1000);
    let mut phases = Vec::new();
    for round in 0..args.rounds as usize {
        let mut order = Kind::ALL;
        order.rotate_left(round % Kind::ALL.len());
        for kind in order {
            // A fresh server per phase, as `compare` starts one per transport: the
            // publisher's sign-ins stay within its login limit.
            let server = crate::server::Spawned::start(args.connections as usize).await?;
            let phase = measure(kind, round + 1, server.addr, args).await;
            server.stop().await;
            let phase = phase?;
            eprintln!(
                "round {}: {:<42} {:>8} messages {:>7.3} s CPU {:>6.2} µs/message",
                round + 1,
                kind.name(),
                phase.messages,
                phase.cpu_s,
                phase.us_per_message()
            );
            phases.push(phase);
        }
    }
    let clients = figures(&phases);
    println!("{}", table(args, &clients));
    let summary = Summary {
        started,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: crate::machine::describe(),
        connections: args.connections,
        rate: args.rate,
        message_size: args.message_size,
        seconds: args.seconds,
        rounds: args.rounds,
        clients,
        phases: &phases,
    };
    std::fs::create_dir_all(&args.out)?;
    let path = args.out.join("summary.json");
    crate::export::write_atomic(&path, serde_json::to_string_pretty(&summary)?.as_bytes())?;
    println!("results: {}", path.display());
    Ok(())
}

/// One phase: `kind`'s subscribers on a thread of their own, the publisher on this runtime.
async fn measure(
    kind: Kind,
    round: usize,
    addr: SocketAddr,
    args: &WsClientsArgs,
) -> anyhow::Result<Phase> {
    let connections = args.connections as usize;
    let connected = Arc::new(AtomicUsize::new(0));
    // `false`: connecting; `true`: the window is open; the sender dropped: it closed.
    let (window, window_rx) = watch::channel(false);
    let subscribers = {
        let connected = connected.clone();
        std::thread::spawn(move || subscribers(kind, addr, connections, connected, window_rx))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while connected.load(Relaxed) < connections {
        if tokio::time::Instant::now() > deadline || subscribers.is_finished() {
            bail!(
                "{}: {} of {connections} connected",
                kind.name(),
                connected.load(Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let publisher = Publisher::connect(addr, args.rate).await?;
    let metrics = Arc::new(Metrics::new(1));
    let _ = window.send(true);
    publisher
        .run(
            args.rate,
            Duration::from_secs(args.seconds),
            1,
            args.message_size,
            metrics.clone(),
            Arc::default(),
        )
        .await;
    // The drain: what the server still had queued for the subscribers.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(window);
    let mut phase = tokio::task::spawn_blocking(move || subscribers.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the {} thread panicked", kind.name()))??;
    phase.round = round;
    phase.errors += metrics.error_count();
    Ok(phase)
}

/// The subscribers' thread: a runtime of one thread, so that thread's CPU time is theirs.
fn subscribers(
    kind: Kind,
    addr: SocketAddr,
    connections: usize,
    connected: Arc<AtomicUsize>,
    mut window: watch::Receiver<bool>,
) -> anyhow::Result<Phase> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let io = Arc::new(IoCounters::default());
        let (messages, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stop = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        let path = format!("/ws/chat?rooms={}&history=0", room_name(0));
        for _ in 0..connections {
            let (io, path, stop) = (io.clone(), path.clone(), stop.clone());
            let (messages, errors, connected) =
                (messages.clone(), errors.clone(), connected.clone());
            tasks.spawn(async move {
                let session = async {
                    let stream = tcp(addr, &io).await?;
                    subscribe(kind, stream, addr, &path, &connected, &messages).await
                };
                tokio::select! {
                    () = stop.cancelled() => {}
                    ended = session => if ended.is_err() { errors.fetch_add(1, Relaxed); },
                }
            });
        }
        let _ = window.wait_for(|open| *open).await;
        let (cpu, count, bytes) = (thread_cpu_s(), messages.load(Relaxed), io.snapshot());
        let _ = window.changed().await;
        let phase = Phase {
            kind,
            round: 0,
            cpu_s: thread_cpu_s() - cpu,
            messages: messages.load(Relaxed) - count,
            bytes_down: io.snapshot().since(bytes).read,
            errors: errors.load(Relaxed),
        };
        stop.cancel();
        while tasks.join_next().await.is_some() {}
        Ok(phase)
    })
}

/// One subscriber of `kind`: connected, then counting the text messages it receives.
async fn subscribe(
    kind: Kind,
    mut stream: Counting<tokio::net::TcpStream>,
    addr: SocketAddr,
    path: &str,
    connected: &AtomicUsize,
    messages: &AtomicU64,
) -> anyhow::Result<()> {
    let host = addr.to_string();
    match kind {
        Kind::Wsframe => {
            let mut reader = Reader::default();
            wsframe::handshake(&mut stream, &host, path, &mut reader).await?;
            connected.fetch_add(1, Relaxed);
            loop {
                while let Some(incoming) = reader.next()? {
                    match incoming {
                        Incoming::Text(text) => count(messages, text.len()),
                        Incoming::Ping(payload) => {
                            let pong = wsframe::client_frame(wsframe::OP_PONG, payload);
                            stream.write_all(&pong).await?;
                        }
                        Incoming::Binary(_) => {}
                        Incoming::Close(_) => return Ok(()),
                    }
                }
                if reader.fill(&mut stream).await? == 0 {
                    return Ok(());
                }
            }
        }
        Kind::Fastwebsockets => {
            handshake_exact(&mut stream, &host, path).await?;
            let ws =
                fastwebsockets::WebSocket::after_handshake(stream, fastwebsockets::Role::Client);
            // Whole messages, UTF-8 checked, pings answered: what wsframe's reader does.
            let mut ws = fastwebsockets::FragmentCollector::new(ws);
            connected.fetch_add(1, Relaxed);
            loop {
                let frame = ws.read_frame().await?;
                match frame.opcode {
                    fastwebsockets::OpCode::Text => count(messages, frame.payload.len()),
                    fastwebsockets::OpCode::Close => return Ok(()),
                    _ => {}
                }
            }
        }
        Kind::Tungstenite => {
            let config = WebSocketConfig::default().read_buffer_size(TUNGSTENITE_READ_BUFFER);
            let url = format!("ws://{host}{path}");
            let (mut ws, _) =
                tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
            connected.fetch_add(1, Relaxed);
            while let Some(message) = ws.next().await {
                match message? {
                    Message::Text(text) => count(messages, text.len()),
                    Message::Close(_) => return Ok(()),
                    _ => {}
                }
            }
            Ok(())
        }
    }
}

/// Counts one message; its length is looked at so no client can skip reading it.
fn count(messages: &AtomicU64, len: usize) {
    std::hint::black_box(len);
    messages.fetch_add(1, Relaxed);
}

/// The opening handshake read a byte at a time, so not one byte of the first frames is
/// taken from the stream that fastwebsockets then reads. Its key is not checked: the
/// server is pushpoll, and only the frames after it are measured.
async fn handshake_exact<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
) -> anyhow::Result<()> {
    let (_, request) = wsframe::upgrade_request(host, path);
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            bail!("WebSocket handshake: response head over 16 KiB");
        }
        head.push(stream.read_u8().await?);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        bail!("WebSocket handshake: {}", String::from_utf8_lossy(&head));
    }
    Ok(())
}

/// This thread's CPU time, user and system, in seconds.
fn thread_cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct it is given; RUSAGE_THREAD is Linux's.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(usage.ru_utime) + s(usage.ru_stime)
}

/// Each kind's figures over its rounds, and its mean against wsframe's.
fn figures(phases: &[Phase]) -> Vec<Figures> {
    let mut out: Vec<Figures> = Kind::ALL
        .iter()
        .map(|kind| {
            let mine: Vec<&Phase> = phases.iter().filter(|p| p.kind == *kind).collect();
            let n = mine.len().max(1);
            let runs: Vec<f64> = mine.iter().map(|p| p.us_per_message()).collect();
            let mean = runs.iter().sum::<f64>() / n as f64;
            let min = runs.iter().copied().fold(f64::INFINITY, f64::min);
            let max = runs.iter().copied().fold(0.0, f64::max);
            let messages: u64 = mine.iter().map(|p| p.messages).sum();
            let bytes: u64 = mine.iter().map(|p| p.bytes_down).sum();
            Figures {
                client: kind.key(),
                name: kind.name(),
                us_per_message: runs,
                mean_us: mean,
                min_us: min,
                max_us: max,
                spread_percent: (max - min) / mean * 100.0,
                vs_wsframe: 0.0,
                messages_per_phase: messages / n as u64,
                bytes_down_per_message: bytes as f64 / messages.max(1) as f64,
                errors: mine.iter().map(|p| p.errors).sum(),
            }
        })
        .collect();
    let base = out[0].mean_us;
    for f in &mut out {
        f.vs_wsframe = f.mean_us / base;
    }
    out
}

/// The figures in Markdown, one row per kind.
fn table(args: &WsClientsArgs, clients: &[Figures]) -> String {
    let mut out = format!(
        "{} subscribers per client, one chat room, {} messages/s of {} bytes for {} s per \
         phase, {} rounds; the subscribers' thread's CPU (user + system) per message.\n\n\
         | client | µs CPU per message, each round | mean | spread (max−min)/mean | vs wsframe \
         | messages per phase | bytes down per message | errors |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
        args.connections, args.rate, args.message_size, args.seconds, args.rounds
    );
    for f in clients {
        let runs: Vec<String> = f.us_per_message.iter().map(|x| format!("{x:.2}")).collect();
        out.push_str(&format!(
            "| {} | {} | {:.2} | {:.0}% | {:.2}× | {} | {:.1} | {} |\n",
            f.name,
            runs.join(" · "),
            f.mean_us,
            f.spread_percent,
            f.vs_wsframe,
            f.messages_per_phase,
            f.bytes_down_per_message,
            f.errors
        ));
    }
    out
}

/// Why fastwebsockets does not replace wsframe although it costs as little (docs/MEASURING.md,
/// "The load tester's WebSocket client"). Each test pins one reason; one that fails means
/// the crate changed and the choice is due again.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncWriteExt, DuplexStream};

    use super::*;

    /// A 200-byte text frame (16-bit length) whose first two bytes arrive 100 ms before the
    /// rest, then a 2-byte one.
    fn split_frame_server() -> DuplexStream {
        let (client, mut server) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let mut frame = vec![0x81, 126, 0, 200];
            frame.extend_from_slice(&[b'a'; 200]);
            server.write_all(&frame[..2]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            server.write_all(&frame[2..]).await.unwrap();
            server.write_all(&[0x81, 2, b'o', b'k']).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        client
    }

    #[tokio::test]
    async fn a_dropped_wsframe_read_loses_nothing() {
        let mut stream = split_frame_server();
        let mut reader = Reader::default();
        // Dropped mid-frame, as the session's select! drops it when a stroke is due.
        let dropped = tokio::time::timeout(Duration::from_millis(50), async {
            loop {
                if reader.next().unwrap().is_some() {
                    return;
                }
                reader.fill(&mut stream).await.unwrap();
            }
        });
        assert!(dropped.await.is_err());
        let text = loop {
            if let Some(Incoming::Text(text)) = reader.next().unwrap() {
                break text.len();
            }
            reader.fill(&mut stream).await.unwrap();
        };
        assert_eq!(text, 200);
    }

    #[tokio::test]
    async fn a_dropped_fastwebsockets_read_loses_the_frames_first_bytes() {
        let stream = split_frame_server();
        let mut ws =
            fastwebsockets::WebSocket::after_handshake(stream, fastwebsockets::Role::Client);
        let dropped = tokio::time::timeout(Duration::from_millis(50), ws.read_frame()).await;
        assert!(dropped.is_err());
        // The header's first two bytes were consumed by the dropped read: the rest is misread.
        let next = ws.read_frame().await.map(|f| (f.opcode, f.payload.len()));
        assert!(
            !matches!(next, Ok((fastwebsockets::OpCode::Text, 200))),
            "fastwebsockets now survives a dropped read: measure it again"
        );
    }

    #[tokio::test]
    async fn fastwebsockets_hands_over_a_masked_server_frame() {
        let (stream, mut server) = tokio::io::duplex(4096);
        server
            .write_all(&[0x81, 0x82, 1, 2, 3, 4, b'{' ^ 1, b'}' ^ 2])
            .await
            .unwrap();
        let mut ws =
            fastwebsockets::WebSocket::after_handshake(stream, fastwebsockets::Role::Client);
        // RFC 6455 §5.1: a client must fail the connection (wsframe: WsError::Masked, 1002).
        assert!(
            ws.read_frame().await.is_ok(),
            "fastwebsockets now refuses masked server frames: measure it again"
        );
        let mut reader = Reader::default();
        reader.push(&[0x81, 0x82, 1, 2, 3, 4, b'{' ^ 1, b'}' ^ 2]);
        assert_eq!(reader.next(), Err(wsframe::WsError::Masked));
    }
}
