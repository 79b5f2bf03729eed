//! `--peer nchan`: what the load tester needs to measure nginx with the Nchan module
//! (`scripts/nchan.sh`, `peers/nchan.conf`), the other push server pushpoll is compared
//! with: its publisher, its subscriber protocols and its worker's figures. The run itself
//! is `runner`'s, phase for phase, with [`crate::runner::Target::Nchan`].
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use pushpoll::feed::clock::now_micros;
use pushpoll::names::{FeedName, Transport};

use crate::clients::{Client, Ctx, expect_status};
use crate::metrics::Metrics;
use crate::net::{Http, body};
use crate::plan::Plan;
use crate::procfs;
use crate::publisher::Acked;

/// Why nchan is not measured over `transport`, for the line the tables print in place of
/// its row; `None` where nchan has a subscriber for it. A `match`, so a new transport is
/// placed here.
pub const fn missing(transport: Transport) -> Option<&'static str> {
    match transport {
        Transport::Iframe => Some("n/a (nchan has no forever-frame subscriber)"),
        // nchan's "HTTP raw stream" subscriber (messages separated by a newline) is the
        // nearest; peers/nchan.conf does not serve it, so the run does not pretend to.
        Transport::Fetch => Some("n/a (peers/nchan.conf serves no http-raw-stream subscriber)"),
        Transport::WebTransport => Some("n/a (nchan has no WebTransport subscriber)"),
        Transport::Poll | Transport::LongPoll | Transport::Sse | Transport::Ws => None,
    }
}

/// `--peer`: whether it names nchan (`pushpoll`, the default, measures pushpoll; the only
/// other server the load tester can measure is nchan).
pub fn chosen(peer: &str) -> anyhow::Result<bool> {
    match peer {
        "pushpoll" => Ok(false),
        "nchan" => Ok(true),
        other => bail!("unknown peer {other:?}: use pushpoll or nchan"),
    }
}

/// Checks that `plan` fits nchan (one server, one channel per feed, no faults, no draw feed,
/// not iframe alone), that `--url` answers, and finds the nginx worker that serves it: the
/// process whose figures stand for nchan's, as `/api/stats` stands for pushpoll's.
pub async fn worker(transports: &[Transport], plan: &Plan) -> anyhow::Result<u32> {
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
    if let [only] = transports
        && let Some(why) = missing(*only)
    {
        bail!("{only}: {why}");
    }
    let mut http = Http::connect(addr, &Arc::default())
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    expect_status(http.get("/healthz").await?.status(), 200)
        .with_context(|| format!("{url}/healthz"))?;
    find_worker(addr)
        .with_context(|| format!("no `nginx: worker process` holds the listening socket of {url}"))
}

/// Where every client of a run starts: nchan's id of a marker message published now (a
/// `join`, which the clients do not count), so each must receive every event published after.
pub async fn start(addr: SocketAddr, feed: FeedName) -> anyhow::Result<Cursor> {
    let id = publish(
        &mut Http::connect(addr, &Arc::default()).await?,
        feed,
        marker(),
    )
    .await?;
    Ok(Cursor::from_id(&id))
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
/// that one slow answer does not hold the others. Acknowledged ids go into `acked`, all in
/// room 0: nchan's one channel for the feed. Both feeds are published so: the clock too.
pub async fn publish_for(
    addr: SocketAddr,
    feed: FeedName,
    rate: f64,
    duration: Duration,
    message_size: usize,
    metrics: Arc<Metrics>,
    acked: Arc<Mutex<Vec<Acked>>>,
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
                    Ok(_) => acked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((id, 0)),
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
pub struct Cursor {
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
pub async fn subscribe(
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
            Transport::Iframe | Transport::Fetch | Transport::WebTransport => return client,
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
pub struct WorkerSample {
    pub cpu_s: f64,
    pub rss_bytes: u64,
    /// Sockets it holds: the listening socket, subscribers and publisher.
    pub sockets: i64,
}

impl WorkerSample {
    pub fn read(pid: u32) -> anyhow::Result<WorkerSample> {
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
