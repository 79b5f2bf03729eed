//! `--peer nchan`: the same clients, open-loop publisher and accounting as a pushpoll run,
//! against nginx with the Nchan module (`scripts/nchan.sh`, `peers/nchan.conf`), the other
//! push server pushpoll is compared with.
//!
//! What differs from a pushpoll run, and why (docs/NCHAN.md has the reader's version):
//! - The publisher POSTs each event as a whole pushpoll wire event (`{"id","ts","type",…}`)
//!   to `/pub/FEED`; nchan delivers the body verbatim, so the clients parse it with the same
//!   code and take latency from the same `ts`. `ts` is stamped by the publisher just before
//!   the POST (pushpoll stamps it on arrival), so nchan's latencies include the publish
//!   request's transit: a few tens of µs against nchan.
//! - nchan chooses its own message ids (`TIME:SEQ`); the clients resume with them (the
//!   `Last-Modified`/`Etag` pair on polls, `Last-Event-ID` on EventSource), and loss is
//!   counted by our ids inside the bodies, as for pushpoll.
//! - Server CPU and RSS come from the nginx worker's /proc (the process holding the listening
//!   socket whose command line is `nginx: worker process`), not from `/api/stats`; nginx
//!   counts no requests, so `server_requests` is 0 and the connections column counts the
//!   sockets the worker holds.
//! - One channel per feed: `--rooms` must be 1; no iframe transport, no draw feed, no faults.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use pushpoll::feed::clock::now_micros;
use pushpoll::names::{FeedName, Transport};
use tokio::task::JoinHandle;

use crate::clients::{Client, Ctx, expect_status};
use crate::metrics::Metrics;
use crate::net::{Http, body};
use crate::plan::Plan;
use crate::procfs;
use crate::report::{Summary, TransportResult};

/// The line the tables print in place of the iframe row.
pub const NCHAN_NO_IFRAME: &str = "n/a (nchan has no forever-frame subscriber)";

/// `--peer`: whether it names nchan (`pushpoll`, the default, measures pushpoll; the only
/// other server the load tester can measure is nchan).
pub fn chosen(peer: &str) -> anyhow::Result<bool> {
    match peer {
        "pushpoll" => Ok(false),
        "nchan" => Ok(true),
        other => bail!("unknown peer {other:?}: use pushpoll or nchan"),
    }
}

/// Runs `transports` against nchan at `--url`, writes the results like a pushpoll run.
pub async fn run(transports: Vec<Transport>, plan: &Plan) -> anyhow::Result<()> {
    let url = plan
        .url
        .as_deref()
        .context("--peer nchan needs --url (start nchan with scripts/nchan.sh)")?;
    let addr = crate::server::parse_url(url)?;
    if plan.urls.len() > 1 || plan.redis_pid.is_some() {
        bail!("--peer nchan is one server: give one --url and no --redis-pid");
    }
    if plan.faults.enabled() {
        bail!("--churn/--storm break connections through pushpoll's diagnostics: not with --peer");
    }
    if plan.feed == FeedName::Draw {
        bail!("--feed draw needs pushpoll's /api/draw: use chat or clock with --peer nchan");
    }
    if plan.rooms != 1 {
        bail!("--peer nchan has one channel per feed: use --rooms 1");
    }
    if transports == [Transport::Iframe] {
        bail!("iframe: {NCHAN_NO_IFRAME}");
    }
    crate::check_open_files(plan.clients)?;
    let mut http = Http::connect(addr, &Arc::default())
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    expect_status(http.get("/healthz").await?.status(), 200)
        .with_context(|| format!("{url}/healthz"))?;
    let worker = find_worker(addr).with_context(|| {
        format!("no `nginx: worker process` holds the listening socket of {url}")
    })?;
    let mut summary = Summary {
        workload: plan.workload(),
        machine: crate::machine::describe(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started: pushpoll::feed::clock::rfc3339_utc(now_micros() / 1000),
        results: Vec::new(),
    };
    let mut skipped_iframe = false;
    for transport in transports {
        if transport == Transport::Iframe {
            skipped_iframe = true;
            continue;
        }
        let result = run_one(plan, transport, addr, worker).await?;
        summary.results.push(result);
        crate::export::write_all(&plan.out, &summary)
            .with_context(|| format!("cannot write {}", plan.out.display()))?;
    }
    println!("{}", crate::export::terminal_table(&summary));
    if skipped_iframe {
        println!("iframe: {NCHAN_NO_IFRAME}\n");
    }
    println!("{}", crate::export::terminal_bytes_table(&summary));
    println!("results: {}", plan.out.display());
    Ok(())
}

/// One measured run of one transport against nchan: the phases of `runner`, in one place.
async fn run_one(
    plan: &Plan,
    transport: Transport,
    addr: SocketAddr,
    worker: u32,
) -> anyhow::Result<TransportResult> {
    let ctx = Ctx::new(addr, plan.feed, plan.clients, plan.poll_interval, None);
    let (metrics, stop) = (ctx.metrics.clone(), ctx.stop.clone());
    // Where every client starts: nchan's id of a marker message published now (a `join`,
    // which the clients do not count), so each must receive every event published after it.
    let start = publish(
        &mut Http::connect(addr, &Arc::default()).await?,
        plan.feed,
        marker(),
    )
    .await?;
    let cursor = Cursor::from_id(&start);

    // Ramp: connect the clients over --ramp, then wait (up to 15 s) for all of them.
    let mut tasks: Vec<JoinHandle<Client>> = Vec::with_capacity(plan.clients);
    let step = plan.ramp.div_f64(plan.clients as f64);
    let ramp_start = Instant::now();
    for i in 0..plan.clients {
        let client = Client::new(i, "lobby".into(), None);
        tasks.push(tokio::spawn(subscribe(
            ctx.clone(),
            transport,
            client,
            cursor.clone(),
        )));
        tokio::time::sleep_until((ramp_start + step.mul_f64((i + 1) as f64)).into()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while metrics.connected.load(Relaxed) < plan.clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = metrics.connected.load(Relaxed);
    if connected < plan.clients {
        metrics.error(format!("not_connected_{}", plan.clients - connected));
    }

    // The window: publish open-loop for --duration, sampling the worker every second.
    let before = WorkerSample::read(worker)?;
    let own_cpu_before = crate::runner::own_cpu_seconds();
    let requests_before = metrics.requests.load(Relaxed);
    let io_before = metrics.io.snapshot();
    let started = Instant::now();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let publishing = tokio::spawn(publish_for(
        addr,
        plan.feed,
        plan.rate,
        plan.duration,
        plan.message_size,
        metrics.clone(),
        acked.clone(),
    ));
    let (mut rss_peak, mut open_peak) = (before.rss_bytes, before.sockets);
    let mut sample = tokio::time::interval(Duration::from_secs(1));
    while !publishing.is_finished() {
        sample.tick().await;
        let s = WorkerSample::read(worker).context("the nginx worker is gone")?;
        rss_peak = rss_peak.max(s.rss_bytes);
        open_peak = open_peak.max(s.sockets);
    }
    let _ = publishing.await;
    let acked: Vec<u64> = std::mem::take(&mut *acked.lock().unwrap_or_else(|p| p.into_inner()));

    // Drain: until every client has every acknowledged event, or --drain (chat). The clock
    // feed is a state feed in pushpoll's runs; here it is published like chat, and counted so.
    let expected = acked.len() as u64 * plan.clients as u64;
    let drain_until = Instant::now() + plan.drain;
    while metrics
        .delivered
        .load(Relaxed)
        .saturating_sub(metrics.duplicates.load(Relaxed))
        < expected
        && Instant::now() < drain_until
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let window_s = started.elapsed().as_secs_f64();
    let requests_in_window = metrics.requests.load(Relaxed) - requests_before;
    let io_in_window = metrics.io.snapshot().since(io_before);
    let own_cpu = crate::runner::own_cpu_seconds() - own_cpu_before;
    let after = WorkerSample::read(worker)?;
    stop.cancel();
    let mut finished = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(client) = task.await {
            finished.push(client);
        }
    }

    // Loss by our ids, per client, as in `runner::tally`.
    let wanted: std::collections::HashSet<u64> = acked.iter().copied().collect();
    let (mut received, mut lost) = (0u64, 0u64);
    for client in &finished {
        let got = client.seen.iter().filter(|id| wanted.contains(id)).count() as u64;
        received += got;
        lost += acked.len() as u64 - got.min(acked.len() as u64);
    }
    // Clients that never came back from `subscribe` lost everything.
    lost += (plan.clients - finished.len()) as u64 * acked.len() as u64;
    Ok(crate::runner::transport_result(crate::runner::Counted {
        transport,
        plan,
        metrics: &metrics,
        window_s,
        io_in_window,
        requests_in_window,
        events_expected: expected,
        events_received: received,
        lost,
        // nginx keeps no request count we can read.
        server_requests: 0,
        server_cpu_s: after.cpu_s - before.cpu_s,
        server_rss_peak_bytes: rss_peak,
        open_connections_peak: open_peak,
        loadtest_cpu_s: own_cpu,
    }))
}

/// The body of the start marker: an event the clients parse but do not count.
fn marker() -> Bytes {
    Bytes::from(
        serde_json::json!({"id": 0, "ts": now_micros(), "type": "join", "room": "lobby", "nick": "loadtest"})
            .to_string(),
    )
}

/// POSTs one message to `/pub/FEED`; returns nchan's id for it (`TIME:SEQ`, from the
/// publisher's answer, `last message id: …`).
async fn publish(http: &mut Http, feed: FeedName, body: Bytes) -> anyhow::Result<String> {
    let response = http
        .send(Method::POST, &format!("/pub/{feed}"), None, Some(body))
        .await?;
    let status = response.status().as_u16();
    let text = body_text(response).await?;
    // 201: delivered to subscribers; 202: queued, no subscriber yet.
    if status != 201 && status != 202 {
        bail!("publish: HTTP {status}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("last message id: "))
        .map(|id| id.trim().to_string())
        .context("publish: no `last message id` in nchan's answer")
}

async fn body_text(response: hyper::Response<hyper::body::Incoming>) -> anyhow::Result<String> {
    Ok(String::from_utf8_lossy(&body(response).await?).into_owned())
}

/// The publisher: `rate` events per second for `duration`, open-loop (each connection on its
/// own timetable, catching up at once after a slow answer), spread over enough connections
/// that one slow answer does not hold the others. Acknowledged ids go into `acked`.
async fn publish_for(
    addr: SocketAddr,
    feed: FeedName,
    rate: f64,
    duration: Duration,
    message_size: usize,
    metrics: Arc<Metrics>,
    acked: Arc<Mutex<Vec<u64>>>,
) {
    let n = ((rate / 50.0).ceil() as usize).clamp(1, 64);
    let every = Duration::from_secs_f64(n as f64 / rate);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let (metrics, acked) = (metrics.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut http) = Http::connect(addr, &Arc::default()).await else {
                metrics.error("publish_connect");
                return;
            };
            let first = start + every.mul_f64(i as f64 / n as f64);
            let mut timetable = tokio::time::interval_at(first, every);
            timetable.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut k = 0u64;
            loop {
                let tick = timetable.tick().await;
                if tick.duration_since(start) >= duration {
                    break;
                }
                // Our ids: 1, 2, 3… over the connections, unique within the run.
                let id = 1 + i as u64 + k * n as u64;
                k += 1;
                let body = event_body(feed, id, message_size);
                if http.is_closed() {
                    match Http::connect(addr, &Arc::default()).await {
                        Ok(h) => http = h,
                        Err(_) => {
                            metrics.error("publish_connect");
                            continue;
                        }
                    }
                }
                match publish(&mut http, feed, body).await {
                    Ok(_) => acked.lock().unwrap_or_else(|p| p.into_inner()).push(id),
                    Err(_) => metrics.error("publish"),
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// One event as pushpoll would send it: a chat message of `size` bytes of text, or a tick.
fn event_body(feed: FeedName, id: u64, size: usize) -> Bytes {
    let ts = now_micros();
    let value = if feed == FeedName::Chat {
        let prefix = format!("m{id} ");
        let text = prefix.clone() + &"x".repeat(size.saturating_sub(prefix.len()).max(1));
        serde_json::json!({"id": id, "ts": ts, "type": "message", "room": "lobby", "from": "loadtest", "text": text})
    } else {
        let time = pushpoll::feed::clock::rfc3339_utc(ts / 1000);
        serde_json::json!({"id": id, "ts": ts, "type": "tick", "time": time})
    };
    Bytes::from(value.to_string())
}

/// Where a subscriber is in nchan's channel: nchan's id (`TIME:SEQ`, sent as
/// `?last_event_id=`, nchan_subscriber_last_message_id's default), or, once a poll was
/// answered, the `Last-Modified`/`Etag` pair to send back as `If-Modified-Since`/`If-None-Match`.
#[derive(Debug, Clone, Default)]
struct Cursor {
    id: Option<String>,
    headers: Option<(String, String)>,
}

impl Cursor {
    fn from_id(id: &str) -> Cursor {
        Cursor {
            id: Some(id.to_string()),
            headers: None,
        }
    }

    /// `path` with the id appended, when the cursor is an id.
    fn path(&self, path: &str) -> String {
        match (&self.headers, &self.id) {
            (None, Some(id)) => format!("{path}?last_event_id={}", id.replace(':', "%3A")),
            _ => path.to_string(),
        }
    }

    fn request_headers(&self) -> Vec<(&'static str, &str)> {
        match &self.headers {
            Some((modified, etag)) => vec![
                ("if-modified-since", modified.as_str()),
                ("if-none-match", etag.as_str()),
            ],
            None => Vec::new(),
        }
    }

    /// Moves to the message a poll answer carried.
    fn advance(&mut self, response: &hyper::Response<hyper::body::Incoming>) {
        let get = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if let (Some(modified), Some(etag)) = (get("last-modified"), get("etag")) {
            self.headers = Some((modified, etag));
        }
    }
}

/// Keeps `client` subscribed over `transport` until stopped, resuming from its cursor after a
/// failure (backoff 100 ms doubling to 2 s, as pushpoll's clients).
async fn subscribe(
    ctx: Arc<Ctx>,
    transport: Transport,
    mut client: Client,
    mut cursor: Cursor,
) -> Client {
    let mut attempt = 0u32;
    let mut rng = (client.index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while !ctx.stop.is_cancelled() {
        let ended = match transport {
            Transport::Poll => interval_poll(&ctx, &mut client, &mut cursor).await,
            Transport::LongPoll => long_poll(&ctx, &mut client, &mut cursor).await,
            Transport::Sse => event_source(&ctx, &mut client, &mut cursor).await,
            Transport::Ws => websocket(&ctx, &mut client, &cursor).await,
            Transport::Iframe => return client,
        };
        if ctx.stop.is_cancelled() {
            break;
        }
        if let Err(err) = ended {
            ctx.metrics.error(error_kind(&err));
        }
        let delay = crate::faults::backoff(attempt, true, &mut rng);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            () = ctx.stop.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    client
}

fn error_kind(err: &anyhow::Error) -> String {
    match err.downcast_ref::<crate::clients::BadStatus>() {
        Some(status) => format!("http_{}", status.0),
        None => "connection".into(),
    }
}

/// nchan's interval-poll: at each tick of the client's timetable (offset per client, as
/// pushpoll's short poll), ask until `304`: nchan answers one message per request.
async fn interval_poll(ctx: &Ctx, client: &mut Client, cursor: &mut Cursor) -> anyhow::Result<()> {
    let mut http = Http::connect(ctx.addr, &ctx.metrics.io).await?;
    let interval = ctx.poll_interval.max(Duration::from_millis(1));
    let offset = interval.mul_f64((client.index as u64 % 997) as f64 / 997.0);
    let mut timetable = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
    timetable.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let path = format!("/sub/poll/{}", ctx.feed);
    loop {
        tokio::select! {
            () = ctx.stop.cancelled() => return Ok(()),
            _ = timetable.tick() => {}
        }
        loop {
            client.requested(ctx);
            let response = http
                .get_with(&cursor.path(&path), &cursor.request_headers())
                .await?;
            client.opened(ctx);
            match response.status().as_u16() {
                304 => {
                    body(response).await?;
                    break;
                }
                200 => {
                    cursor.advance(&response);
                    let bytes = body(response).await?;
                    client.on_json(ctx, &bytes);
                }
                other => return Err(crate::clients::BadStatus(other).into()),
            }
            if ctx.stop.is_cancelled() {
                return Ok(());
            }
        }
        if http.is_closed() {
            return Ok(());
        }
    }
}

/// nchan's long-poll: held until a message (one per answer) or nchan_subscriber_timeout
/// (`304`, or `408` in some versions), then asked again at once from the new cursor.
async fn long_poll(ctx: &Ctx, client: &mut Client, cursor: &mut Cursor) -> anyhow::Result<()> {
    let mut http = Http::connect(ctx.addr, &ctx.metrics.io).await?;
    client.opened(ctx);
    let path = format!("/sub/longpoll/{}", ctx.feed);
    loop {
        client.requested(ctx);
        let (url, headers) = (cursor.path(&path), cursor.request_headers());
        let response = tokio::select! {
            () = ctx.stop.cancelled() => return Ok(()),
            response = http.get_with(&url, &headers) => response?,
        };
        match response.status().as_u16() {
            200 => {
                cursor.advance(&response);
                let bytes = body(response).await?;
                client.on_json(ctx, &bytes);
            }
            304 | 408 => {
                body(response).await?;
            }
            other => return Err(crate::clients::BadStatus(other).into()),
        }
        if http.is_closed() {
            return Ok(());
        }
    }
}

/// nchan's EventSource subscriber: `id: TIME:SEQ` and `data: BODY` per message; the last id
/// is where a reconnect resumes (as a browser's Last-Event-ID).
async fn event_source(ctx: &Ctx, client: &mut Client, cursor: &mut Cursor) -> anyhow::Result<()> {
    let mut http = Http::connect(ctx.addr, &ctx.metrics.io).await?;
    let path = cursor.path(&format!("/sub/stream/{}", ctx.feed));
    client.requested(ctx);
    let response = http
        .get_with(&path, &[("accept", "text/event-stream")])
        .await?;
    client.opened(ctx);
    expect_status(response.status(), 200)?;
    let mut stream = response.into_body();
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let frame = tokio::select! {
            () = ctx.stop.cancelled() => return Ok(()),
            frame = stream.frame() => frame,
        };
        let Some(frame) = frame else { return Ok(()) };
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        // Whole events end with a blank line; the rest waits for the next chunk.
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            let mut json = Vec::new();
            for line in event.split(|b| *b == b'\n') {
                if let Some(id) = line.strip_prefix(b"id: ") {
                    cursor.id = Some(String::from_utf8_lossy(id).into_owned());
                } else if let Some(data) = line.strip_prefix(b"data: ") {
                    json.extend_from_slice(data);
                }
            }
            if !json.is_empty() {
                client.on_json(ctx, &json);
            }
        }
        // A bound on what an endless line could make us hold.
        if pending.len() > 1 << 20 {
            bail!("an EventSource event over 1 MiB");
        }
    }
}

/// nchan's WebSocket subscriber: one text message per published body. nchan sends no ids
/// over it, so a reconnect resumes from where the run started (duplicates are counted).
async fn websocket(ctx: &Ctx, client: &mut Client, cursor: &Cursor) -> anyhow::Result<()> {
    // The same WebSocket client as a pushpoll run (handshake, frames, pongs, closing
    // handshake), pointed at nchan's subscriber location.
    let path = cursor.path(&format!("/sub/stream/{}", ctx.feed));
    crate::clients::ws::session_at(ctx, client, &path).await
}

/// The nginx worker's cost at one moment, from /proc.
struct WorkerSample {
    cpu_s: f64,
    rss_bytes: u64,
    /// Sockets it holds: the listening socket, subscribers and publisher.
    sockets: i64,
}

impl WorkerSample {
    fn read(pid: u32) -> anyhow::Result<WorkerSample> {
        Ok(WorkerSample {
            cpu_s: procfs::cpu_seconds(pid)?,
            rss_bytes: procfs::rss_bytes(pid)?,
            sockets: procfs::socket_count(pid) as i64,
        })
    }
}

/// The pid of the nginx worker serving `addr`: the process named `nginx: worker process`
/// that holds the socket listening on it (/proc/net/tcp gives the socket's inode).
fn find_worker(addr: SocketAddr) -> anyhow::Result<u32> {
    let inodes = procfs::listening_inodes(addr.port());
    if inodes.is_empty() {
        bail!("nothing listens on port {} (in /proc/net/tcp)", addr.port());
    }
    let sockets: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    procfs::pids_named(b"nginx: worker process")?
        .into_iter()
        .find(|pid| procfs::fd_targets(*pid).iter().any(|t| sockets.contains(t)))
        .context("no nginx worker process found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_by_name() {
        assert!(!chosen("pushpoll").unwrap());
        assert!(chosen("nchan").unwrap());
        assert!(chosen("mercure").is_err());
    }

    #[test]
    fn a_cursor_is_an_id_until_a_poll_answered() {
        let cursor = Cursor::from_id("1796054208:3");
        assert_eq!(
            cursor.path("/sub/poll/chat"),
            "/sub/poll/chat?last_event_id=1796054208%3A3"
        );
        assert!(cursor.request_headers().is_empty());
        let polled = Cursor {
            headers: Some(("Mon, 30 Nov 2026 15:58:12 GMT".into(), "3".into())),
            ..cursor
        };
        assert_eq!(polled.path("/sub/poll/chat"), "/sub/poll/chat");
        assert_eq!(polled.request_headers().len(), 2);
    }
}
