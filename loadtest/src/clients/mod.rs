//! The seven clients, mirroring the server's transports file for file. They share one
//! skeleton: [`run`] keeps a client connected until told to stop, reconnecting from its
//! cursor after any failure; each transport only supplies its `session`: connect, read
//! events, hand each to [`Client::on_event`], which records it.

pub mod fetch;
pub mod iframe;
pub mod longpoll;
pub mod poll;
pub mod sse;
pub mod stream;
pub mod webtransport;
pub mod ws;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use pushpoll::feed::clock::now_micros;
use pushpoll::feed::{EventBody, WireEvent};
use pushpoll::names::{FeedName, Transport};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What every client of one run shares.
pub struct Ctx {
    pub addr: SocketAddr,
    pub feed: FeedName,
    pub metrics: Arc<Metrics>,
    pub stop: CancellationToken,
    pub poll_interval: Duration,
    /// `--feed draw`: what the clients send, and how often (see `crate::draw`).
    pub sending: Option<Arc<crate::draw::Sending>>,
    /// `--datagrams`: WebTransport sessions ask for datagram mode (clock, draw).
    pub datagrams: bool,
    /// Where this node's WebTransport endpoint is, and its certificate's hashes.
    pub webtransport: Arc<webtransport::Pins>,
}

impl Ctx {
    /// What `clients` subscribers to `addr` share in one run: fresh metrics (one shard per
    /// 64 clients, 1–64), a fresh stop token, and WebTransport's hashes not read yet. Both
    /// the pushpoll runner and the nchan peer start their clients from this.
    pub fn new(
        addr: SocketAddr,
        feed: FeedName,
        clients: usize,
        poll_interval: Duration,
        sending: Option<Arc<crate::draw::Sending>>,
        datagrams: bool,
    ) -> Arc<Ctx> {
        Arc::new(Ctx {
            addr,
            feed,
            metrics: Arc::new(Metrics::new((clients / 64).clamp(1, 64))),
            stop: CancellationToken::new(),
            poll_interval,
            sending,
            datagrams,
            webtransport: Arc::default(),
        })
    }

    /// What the subscribers to another node of the same run share: the same feed, interval,
    /// senders and stop token, but their own address and metrics, so each node's deliveries,
    /// latency and bytes are counted apart (and summed for the total, see
    /// [`Metrics::sum`]). `clients` is how many subscribers this node gets.
    pub fn on_node(&self, addr: SocketAddr, clients: usize) -> Arc<Ctx> {
        Arc::new(Ctx {
            addr,
            feed: self.feed,
            metrics: Arc::new(Metrics::new((clients / 64).clamp(1, 64))),
            stop: self.stop.clone(),
            poll_interval: self.poll_interval,
            sending: self.sending.clone(),
            datagrams: self.datagrams,
            webtransport: Arc::default(),
        })
    }
}

/// One client's own state: where it is in the feed and what it has seen.
pub struct Client {
    pub index: usize,
    /// The chat room it follows.
    pub room: String,
    /// The id to resume after (`after=`).
    pub cursor: Option<u64>,
    /// Ids of the feed events (chat messages, clock ticks) it received.
    pub seen: HashSet<u64>,
    connected: bool,
    /// Reconnect backoff: the attempt number since the last successful open, whether the
    /// delay is jittered, and this client's generator for the jitter.
    attempt: u32,
    jitter: bool,
    rng: u64,
    /// In a faulted run: the shared fault state (the client's tag, its break mark).
    faults: Option<Arc<crate::faults::FaultState>>,
    /// When its connection was broken on purpose, until it is open again / its next event.
    broken_at: Option<u64>,
    reopened: bool,
    /// `--feed draw` over WebSocket: when this client sends its next stroke on its socket.
    pub draw: Option<crate::draw::Schedule>,
}

impl Client {
    pub fn new(index: usize, room: String, cursor: Option<u64>) -> Client {
        Client {
            index,
            room,
            cursor,
            seen: HashSet::new(),
            connected: false,
            attempt: 0,
            jitter: true,
            // Any odd seed spreads the clients; they need not be unpredictable.
            rng: (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            faults: None,
            broken_at: None,
            reopened: false,
            draw: None,
        }
    }

    /// Reconnects after a failure on the plain exponential schedule instead of with jitter
    /// (`--no-jitter`, to show what jitter is for).
    pub fn without_jitter(mut self) -> Client {
        self.jitter = false;
        self
    }

    /// Makes the client part of a faulted run: it carries its diagnostics tag (so it can be
    /// broken) and reports its reconnects and recovery.
    pub fn with_faults(mut self, faults: Arc<crate::faults::FaultState>) -> Client {
        self.faults = Some(faults);
        self
    }

    /// Whether it was broken on purpose and has not had an event since.
    pub fn awaiting_recovery(&self) -> bool {
        self.broken_at.is_some()
    }

    /// `/{transport}/{feed}?…&after=CURSOR`: the subscription URL, resuming from the cursor.
    pub fn path(&self, ctx: &Ctx, transport: Transport, extra: &str) -> String {
        let mut path = format!(
            "/{transport}/{}?rooms={}&history=0{extra}",
            ctx.feed, self.room
        );
        if let Some(cursor) = self.cursor {
            path.push_str(&format!("&after={cursor}"));
        }
        if let Some(faults) = &self.faults {
            path.push_str(&format!("&tag={}", faults.tag(self.index)));
        }
        path
    }

    /// Counts one request, when it is sent (as the server counts it when it arrives), so
    /// that a long poll still parked at the end is counted on both sides.
    pub fn requested(&self, ctx: &Ctx) {
        ctx.metrics.requests.fetch_add(1, Relaxed);
        if let Some(faults) = &self.faults {
            faults.requested(self.broken_at.is_some());
        }
    }

    /// Marks the client connected, once: its first request was answered.
    pub fn opened(&mut self, ctx: &Ctx) {
        self.attempt = 0;
        if let (Some(faults), Some(at)) = (&self.faults, self.broken_at)
            && !self.reopened
        {
            self.reopened = true;
            faults.reconnected(at);
        }
        if !self.connected {
            self.connected = true;
            ctx.metrics.connected.fetch_add(1, Relaxed);
        }
    }

    /// Records one event from its JSON. Only `id`, `ts` and `type` are kept (see
    /// [`EventHead`]); the rest of the document is still parsed, so malformed JSON, an
    /// unknown `type` or a missing `id`/`ts` is a `parse` error as before.
    pub fn on_json(&mut self, ctx: &Ctx, json: &[u8]) {
        self.on_head(ctx, serde_json::from_slice::<EventHead>(json));
    }

    /// [`Client::on_json`] for JSON already checked as UTF-8 (a WebSocket text frame):
    /// serde_json reads a `&str` without validating its strings' UTF-8 again.
    pub fn on_text(&mut self, ctx: &Ctx, json: &str) {
        self.on_head(ctx, serde_json::from_str::<EventHead>(json));
    }

    fn on_head(&mut self, ctx: &Ctx, head: serde_json::Result<EventHead<'_>>) {
        let kind = head
            .ok()
            .and_then(|head| Some((head.id, head.ts, EventKind::of(&head.kind)?)));
        match kind {
            Some((id, ts, kind)) => self.record(ctx, id, ts, kind),
            None => ctx.metrics.error("parse"),
        }
    }

    /// Records one event: its latency from the server's `ts`, once per id.
    pub fn on_event(&mut self, ctx: &Ctx, event: WireEvent) {
        let kind = match event.body {
            EventBody::Message { .. } => EventKind::Message,
            EventBody::Tick { .. } => EventKind::Tick,
            EventBody::Stroke { .. } => EventKind::Stroke,
            EventBody::Gap { .. } => EventKind::Gap,
            _ => EventKind::Other,
        };
        self.record(ctx, event.id, event.ts, kind);
    }

    /// Records the event `id` of kind `kind`, created at `ts`.
    fn record(&mut self, ctx: &Ctx, id: u64, ts: u64, kind: EventKind) {
        let received_at = now_micros();
        self.cursor = Some(self.cursor.map_or(id, |c| c.max(id)));
        let counted = match kind {
            EventKind::Message => ctx.feed == FeedName::Chat,
            EventKind::Tick => ctx.feed == FeedName::Clock,
            EventKind::Stroke => ctx.feed == FeedName::Draw,
            EventKind::Gap => {
                ctx.metrics.error("gap");
                false
            }
            EventKind::Other => false,
        };
        if !counted {
            return;
        }
        ctx.metrics.delivered.fetch_add(1, Relaxed);
        if !self.seen.insert(id) {
            ctx.metrics.duplicates.fetch_add(1, Relaxed);
            return;
        }
        if let (Some(faults), Some(at)) = (&self.faults, self.broken_at.take()) {
            faults.recovered(at);
        }
        ctx.metrics
            .latency(self.index, received_at.saturating_sub(ts));
    }
}

/// The part of an event the clients record: its id, its time and its type. Deserializing
/// this instead of [`WireEvent`] skips building the body (whose `#[serde(flatten)]` and
/// internal tag make serde buffer every field as an owned value first: about 9% of the
/// WebSocket client's CPU in a profile of 10,000 subscribers); serde_json still parses the
/// fields it ignores, and a duplicate `id`, `ts` or `type` is still an error. What is no
/// longer checked is the body's own fields (a `message` without `text` would count).
#[derive(serde::Deserialize)]
struct EventHead<'a> {
    id: u64,
    ts: u64,
    /// Borrowed unless the server escaped a character of it.
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// What the accounting tells apart among the event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    Message,
    Tick,
    Stroke,
    Gap,
    /// A known type the load tester does not count (presence, whispers, renames).
    Other,
}

impl EventKind {
    /// The kind of a `type` value; `None` for one [`EventBody`] does not have, which
    /// parsing into [`WireEvent`] refuses too.
    fn of(kind: &str) -> Option<EventKind> {
        Some(match kind {
            "message" => EventKind::Message,
            "tick" => EventKind::Tick,
            "stroke" => EventKind::Stroke,
            "gap" => EventKind::Gap,
            "whisper" | "join" | "leave" | "rename" => EventKind::Other,
            _ => return None,
        })
    }
}

/// Keeps `client` subscribed over `transport` until `ctx.stop`, reconnecting from its
/// cursor after a failure or an ended response; returns it with what it saw.
pub async fn run(ctx: Arc<Ctx>, transport: Transport, mut client: Client) -> Client {
    // `--feed draw`: a WebSocket client sends on its own socket, a WebTransport client on
    // its session's command stream; the others send from a task of their own, on a
    // connection of their own.
    if let Some(sending) = &ctx.sending {
        if matches!(transport, Transport::Ws | Transport::WebTransport) {
            client.draw = Some(crate::draw::Schedule::new(sending, client.index));
        } else {
            tokio::spawn(crate::draw::http_sender(
                ctx.addr,
                ctx.stop.clone(),
                ctx.metrics.clone(),
                sending.clone(),
                client.index,
            ));
        }
    }
    while !ctx.stop.is_cancelled() {
        let ended = match transport {
            Transport::Poll => poll::session(&ctx, &mut client).await,
            Transport::LongPoll => longpoll::session(&ctx, &mut client).await,
            Transport::Iframe => iframe::session(&ctx, &mut client).await,
            Transport::Fetch => fetch::session(&ctx, &mut client).await,
            Transport::Sse => sse::session(&ctx, &mut client).await,
            Transport::Ws => ws::session(&ctx, &mut client).await,
            Transport::WebTransport => webtransport::session(&ctx, &mut client).await,
        };
        if ctx.stop.is_cancelled() {
            break;
        }
        // Broken on purpose (a fault run's kill): not an error, but a reconnect with backoff
        // like any failure, timed until the connection is back and the next event is in.
        let broken = client
            .faults
            .as_ref()
            .and_then(|f| f.take_break(client.index));
        if let Some(at) = broken {
            client.broken_at = Some(at);
            client.reopened = false;
        }
        match ended {
            // An ended response (the iframe's 256 KiB): reopen at once.
            Ok(()) if broken.is_none() => continue,
            Ok(()) => {}
            Err(err) if broken.is_none() => ctx.metrics.error(kind(&err)),
            Err(_) => {}
        }
        let delay = crate::faults::backoff(client.attempt, client.jitter, &mut client.rng);
        client.attempt = client.attempt.saturating_add(1);
        tokio::select! {
            () = ctx.stop.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    client
}

/// A short name for an error, for the `errors` table.
fn kind(err: &anyhow::Error) -> String {
    if let Some(status) = err.downcast_ref::<BadStatus>() {
        return format!("http_{}", status.0);
    }
    let text = err.to_string().to_lowercase();
    // A QUIC or HTTP/3 handshake that failed: refused (the server's caps), or ended (the
    // cause, with its error code, is the context's source).
    if text.starts_with("webtransport handshake") {
        let cause = format!("{err:#}").to_lowercase();
        return if cause.contains("refused") {
            "connect_refused".into()
        } else {
            "webtransport_handshake".into()
        };
    }
    if text.contains("refused") {
        "connect_refused".into()
    } else if text.contains("reset") || text.contains("broken pipe") || text.contains("closed") {
        "connection_closed".into()
    } else if text.contains("timed out") {
        "timeout".into()
    } else {
        "other".into()
    }
}

/// A response with a status other than the one expected.
#[derive(Debug)]
pub struct BadStatus(pub u16);

impl std::fmt::Display for BadStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unexpected HTTP status {}", self.0)
    }
}

impl std::error::Error for BadStatus {}

/// Fails on a status other than `expected`.
pub fn expect_status(status: hyper::StatusCode, expected: u16) -> anyhow::Result<()> {
    if status.as_u16() == expected {
        Ok(())
    } else {
        Err(BadStatus(status.as_u16()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type the server can send is known to the lean parse, with the kind the full
    /// parse ([`Client::on_event`]) gives it; an unknown type is refused by both.
    #[test]
    fn the_event_head_sorts_every_type_as_the_whole_event_does() {
        let bodies = [
            EventBody::Tick { time: "t".into() },
            EventBody::Message {
                room: "r".into(),
                from: "f".into(),
                text: "x".into(),
            },
            EventBody::Whisper {
                from: "f".into(),
                to: "t".into(),
                text: "x".into(),
            },
            EventBody::Join {
                room: "r".into(),
                nick: "n".into(),
            },
            EventBody::Leave {
                room: "r".into(),
                nick: "n".into(),
            },
            EventBody::Rename {
                from: "f".into(),
                nick: "n".into(),
            },
            EventBody::Gap {
                after: 1,
                resumed_from: 3,
            },
            EventBody::Stroke {
                color: "#000000".into(),
                width: 2,
                points: vec![1, 2],
            },
        ];
        for body in bodies {
            let json = serde_json::to_vec(&WireEvent {
                id: 7,
                ts: 9,
                body: body.clone(),
            })
            .unwrap();
            let head: EventHead = serde_json::from_slice(&json).unwrap();
            assert_eq!((head.id, head.ts), (7, 9));
            let expected = match body {
                EventBody::Message { .. } => EventKind::Message,
                EventBody::Tick { .. } => EventKind::Tick,
                EventBody::Stroke { .. } => EventKind::Stroke,
                EventBody::Gap { .. } => EventKind::Gap,
                _ => EventKind::Other,
            };
            assert_eq!(EventKind::of(&head.kind), Some(expected), "{body:?}");
        }
        assert_eq!(EventKind::of("handshake"), None);
        // An escaped type name is still read (owned rather than borrowed).
        let head: EventHead =
            serde_json::from_slice(br#"{"id":1,"ts":2,"type":"ti\u0063k","time":""}"#).unwrap();
        assert_eq!(EventKind::of(&head.kind), Some(EventKind::Tick));
        // Malformed JSON after the fields kept is still refused.
        assert!(
            serde_json::from_slice::<EventHead>(br#"{"id":1,"ts":2,"type":"tick","x":}"#).is_err()
        );
        assert!(serde_json::from_slice::<EventHead>(br#"{"id":1,"type":"tick"}"#).is_err());
    }
}
