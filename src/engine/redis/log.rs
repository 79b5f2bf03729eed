//! The chat's log in Redis: one stream (`log`) of every event under its global id, a stream
//! per room of its messages' ids (for history, read back from `log`: each event is kept
//! once), and the `events` channel that announces each event to every node.
//! [`RedisLog::append`] does all three in one script.
//!
//! Each node's feed is filled by one path, [`RedisLog::catch_up`] and
//! [`RedisLog::deliver`], under one lock: an event is published to the local feed only when
//! every id below it has been (read back from the stream if the channel skipped it), so
//! subscribers see the log in id order, each event once. A hole that the stream no longer
//! holds (trimmed to `--redis-retention`, or lost with an unpersisted Redis) becomes a `gap`
//! event; ids that were never stored (a script that failed after taking its id) are not
//! a gap, since nothing was lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use redis::PushKind;
use redis::streams::StreamRangeReply;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::sessions::{Half, Spent, spent};
use super::{Pushes, Redis, RedisError};
use crate::chat::EndReason;
use crate::chat::engine::Ended;
use crate::event::{Audience, Event, EventBody, SharedEvent, WireEvent};
use crate::feed::backlog::{Backlog, BacklogError, PageLimit, newest};
use crate::feed::{Feed, gap};

/// Stream entries read per command when catching up.
const CATCH_UP_PAGE: usize = 512;
/// How often a node compares the log's last id with its own, in case the channel missed
/// something without a disconnect it could see.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// What [`RedisLog::say`] did.
pub enum Said {
    Stored(SharedEvent),
    /// Past the session's budget: retry after this; the half that is full.
    Wait(Duration, Half),
    /// The session is now called this: build the message again.
    Renamed(String),
    SignedOut,
}

/// A message on the `control` channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// A session ended (`logout` or `idle`): every node closes its streams.
    SessionEnded { id: u64, reason: String },
}

pub struct RedisLog {
    redis: Redis,
    /// The stream's last id when the node started: where its feed's ids begin.
    start_id: u64,
    /// Serializes everything that publishes to the local feed.
    ingest: tokio::sync::Mutex<()>,
    runtime: tokio::runtime::Handle,
}

/// `*`, `r:ROOM` or `s:A:B`: an audience as the stream stores it.
pub fn encode_audience(audience: &Audience) -> String {
    match audience {
        Audience::Everyone => "*".into(),
        Audience::Room(room) => format!("r:{room}"),
        Audience::Sessions(a, b) => format!("s:{a}:{b}"),
    }
}

pub fn decode_audience(s: &str) -> Option<Audience> {
    if s == "*" {
        return Some(Audience::Everyone);
    }
    if let Some(room) = s.strip_prefix("r:") {
        return Some(Audience::Room(room.into()));
    }
    let (a, b) = s.strip_prefix("s:")?.split_once(':')?;
    Some(Audience::Sessions(a.parse().ok()?, b.parse().ok()?))
}

/// `ID\nTS\nKIND\nAUDIENCE\nJSON`: an event as the `events` channel announces it.
pub fn decode_announcement(payload: &[u8]) -> Option<SharedEvent> {
    let mut parts = payload.splitn(5, |b| *b == b'\n');
    let id = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let ts = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let kind = Event::static_kind(std::str::from_utf8(parts.next()?).ok()?);
    let audience = decode_audience(std::str::from_utf8(parts.next()?).ok()?)?;
    let json = Bytes::copy_from_slice(parts.next()?);
    Some(Event::from_json(id, ts, kind, audience, json))
}

fn field<'a>(map: &'a HashMap<String, redis::Value>, name: &str) -> Option<&'a [u8]> {
    match map.get(name)? {
        redis::Value::BulkString(bytes) => Some(bytes),
        _ => None,
    }
}

/// A log entry (`ID-0` with fields t, k, a, j) as an event.
fn entry_event(id: &str, map: &HashMap<String, redis::Value>) -> Option<SharedEvent> {
    let id: u64 = id.split_once('-')?.0.parse().ok()?;
    let ts = std::str::from_utf8(field(map, "t")?).ok()?.parse().ok()?;
    let kind = Event::static_kind(std::str::from_utf8(field(map, "k")?).ok()?);
    let audience = decode_audience(std::str::from_utf8(field(map, "a")?).ok()?)?;
    let json = Bytes::copy_from_slice(field(map, "j")?);
    Some(Event::from_json(id, ts, kind, audience, json))
}

fn events_of(reply: StreamRangeReply) -> Vec<SharedEvent> {
    reply
        .ids
        .iter()
        .filter_map(|e| {
            let event = entry_event(&e.id, &e.map);
            if event.is_none() {
                tracing::error!(id = e.id, "unreadable entry in the Redis log; skipped");
            }
            event
        })
        .collect()
}

impl RedisLog {
    /// Reads where the log stands; the node's feed continues from there.
    pub async fn open(redis: Redis) -> Result<Arc<RedisLog>, RedisError> {
        let seq: Option<u64> = redis::cmd("GET")
            .arg(redis.key("seq"))
            .query_async(&mut redis.conn())
            .await?;
        Ok(Arc::new(RedisLog {
            redis,
            start_id: seq.unwrap_or(0),
            ingest: tokio::sync::Mutex::new(()),
            runtime: tokio::runtime::Handle::current(),
        }))
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Stores the event under the next global id and announces it; returns once this node's
    /// feed has it (so a client that is told "stored" finds it on a poll of this node), or,
    /// if Redis stops answering between the two, once it is stored.
    pub async fn append(
        &self,
        feed: &Feed,
        ts: u64,
        body: EventBody,
        audience: Audience,
    ) -> Result<SharedEvent, RedisError> {
        let kind = body.kind();
        let room = match (&body, &audience) {
            (EventBody::Message { .. }, Audience::Room(room)) => room.to_string(),
            _ => String::new(),
        };
        let json = serde_json::to_string(&WireEvent { id: 0, ts, body })
            .map_err(|e| RedisError(e.to_string()))?;
        let tail = json
            .strip_prefix("{\"id\":0,")
            .ok_or_else(|| RedisError(format!("unexpected event JSON {json:?}")))?;
        let id: u64 = self
            .redis
            .scripts
            .append
            .arg(self.redis.prefix())
            .arg(feed.latest_id().unwrap_or(0))
            .arg(ts.to_string())
            .arg(kind)
            .arg(encode_audience(&audience))
            .arg(tail)
            .arg(room)
            .arg(self.redis.retention)
            .invoke_async(&mut self.redis.conn())
            .await?;
        // Stored: from here on the answer is "stored", even if reading it back into this
        // node's feed fails (Redis went away just now). The ingest task delivers it when
        // Redis answers again; a `503` here would make the client store it a second time.
        self.read_back(feed, id).await;
        Ok(Event::from_json(
            id,
            ts,
            kind,
            audience,
            Bytes::from(format!("{{\"id\":{id},{tail}")),
        ))
    }

    /// A room message from session `sid`, in one script (see [`super::scripts::SAY`]):
    /// the session is checked, its budget spent and the message stored together. `nick` is
    /// the caller's idea of the session's nick; if it changed, the answer says to what.
    /// `limits`: writes and bytes per `window`; the message is charged the bytes of its JSON
    /// with the id counted as one digit (`{"id":0,…}`), as the chat charges every write.
    #[allow(clippy::too_many_arguments)]
    pub async fn say(
        &self,
        feed: &Feed,
        sid: u64,
        nick: &str,
        room: Arc<str>,
        text: &str,
        limits: (usize, usize),
        window: Duration,
        idle: Duration,
    ) -> Result<Said, RedisError> {
        let ts = crate::feed::clock::now_micros();
        let body = EventBody::Message {
            room: room.to_string(),
            from: nick.to_string(),
            text: text.to_string(),
        };
        let audience = Audience::Room(room.clone());
        let json = serde_json::to_string(&WireEvent { id: 0, ts, body })
            .map_err(|e| RedisError(e.to_string()))?;
        let tail = json
            .strip_prefix("{\"id\":0,")
            .ok_or_else(|| RedisError(format!("unexpected event JSON {json:?}")))?;
        let answer: Vec<String> = self
            .redis
            .scripts
            .say
            .arg(self.redis.prefix())
            .arg(sid)
            .arg(nick)
            .arg(limits.0)
            .arg(window.as_millis() as u64)
            .arg(idle.as_millis().min(u64::MAX as u128) as u64)
            .arg(feed.latest_id().unwrap_or(0))
            .arg(ts.to_string())
            .arg(encode_audience(&audience))
            .arg(tail)
            .arg(&*room)
            .arg(self.redis.retention)
            .arg(json.len())
            .arg(limits.1)
            .invoke_async(&mut self.redis.conn())
            .await?;
        let number = |i: usize| -> Result<u64, RedisError> {
            answer
                .get(i)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| RedisError(format!("unexpected answer {answer:?}")))
        };
        match answer.first().map(String::as_str) {
            Some("ok") => {
                let id = number(1)?;
                self.read_back(feed, id).await;
                Ok(Said::Stored(Event::from_json(
                    id,
                    ts,
                    "message",
                    audience,
                    Bytes::from(format!("{{\"id\":{id},{tail}")),
                )))
            }
            Some("nick") => Ok(Said::Renamed(answer.get(1).cloned().unwrap_or_default())),
            _ => match spent(&answer)? {
                Spent::Wait(wait, half) => Ok(Said::Wait(wait, half)),
                Spent::SignedOut => Ok(Said::SignedOut),
                Spent::Ok => Err(RedisError(format!("unexpected answer {answer:?}"))),
            },
        }
    }

    /// After a write stored as `id`: returns once this node's feed holds it (read from the
    /// stream with what came before it, if the announcement has not done so yet), or when
    /// the deadline passes (see `chat::engine::within`), with a warning; the ingest task delivers
    /// it when Redis answers again. Bounded in time, the wait for the ingest lock included:
    /// writers that all stored before Redis stalled would otherwise queue on that lock and
    /// each spend a full response timeout reading, one after another.
    async fn read_back(&self, feed: &Feed, id: u64) {
        if feed.latest_id() >= Some(id) {
            return;
        }
        let read = async {
            let _ingest = tokio::time::timeout_at(super::deadline(), self.ingest.lock())
                .await
                .map_err(|_| RedisError("the ingest lock was busy past the deadline".into()))?;
            self.fill(feed, Some(id)).await
        };
        if let Err(err) = read.await {
            tracing::warn!(%err, id, "stored, but not yet in this node's feed");
        }
    }

    /// Publishes to `feed` every stored event after its last id, up to `upto` (else all).
    pub async fn catch_up(&self, feed: &Feed, upto: Option<u64>) -> Result<(), RedisError> {
        let _ingest = self.ingest.lock().await;
        self.fill(feed, upto).await
    }

    /// Publishes one announced event, after any it skipped.
    pub async fn deliver(&self, feed: &Feed, event: SharedEvent) -> Result<(), RedisError> {
        let _ingest = self.ingest.lock().await;
        let last = feed.latest_id().unwrap_or(0);
        if event.id <= last {
            return Ok(());
        }
        if event.id > last + 1 {
            self.fill(feed, Some(event.id - 1)).await?;
        }
        if event.id > feed.latest_id().unwrap_or(0) {
            let _ = feed.publish(event);
        }
        Ok(())
    }

    /// Reads the stream after the feed's last id (up to `upto`) and publishes it, with a
    /// `gap` first if the stream no longer holds the start. Called with the ingest lock.
    async fn fill(&self, feed: &Feed, upto: Option<u64>) -> Result<(), RedisError> {
        loop {
            let last = feed.latest_id().unwrap_or(0);
            if upto.is_some_and(|u| u <= last) {
                return Ok(());
            }
            let end = upto.map_or("+".to_string(), |u| format!("{u}-0"));
            let reply: StreamRangeReply = redis::cmd("XRANGE")
                .arg(self.redis.key("log"))
                .arg(format!("{}-0", last + 1))
                .arg(&end)
                .arg("COUNT")
                .arg(CATCH_UP_PAGE)
                .query_async(&mut self.redis.conn())
                .await?;
            let count = reply.ids.len();
            let events = events_of(reply);
            if let Some(first) = events.first()
                && first.id > last + 1
                && self.trimmed_before(first.id).await?
            {
                let _ = feed.publish(gap(last, first.id));
            }
            for event in events {
                if event.id > feed.latest_id().unwrap_or(0) {
                    let _ = feed.publish(event);
                }
            }
            if count < CATCH_UP_PAGE {
                return Ok(());
            }
        }
    }

    /// Whether the stream's oldest entry is at `id` or later: what came before was trimmed
    /// (or lost), as opposed to ids that were never stored.
    async fn trimmed_before(&self, id: u64) -> Result<bool, RedisError> {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.redis.key("log"))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(events_of(reply).first().is_none_or(|e| e.id >= id))
    }

    /// The ingest task: announced events into `feed`, in order; sessions ended on other
    /// nodes to `ended`; after a reconnect (or a dropped push, or every `CHECK_EVERY` (0.5 s) if the log
    /// moved on without us) what was missed, from the stream.
    pub async fn run(
        self: Arc<Self>,
        feed: Feed,
        mut pushes: Pushes,
        ended: mpsc::Sender<Ended>,
        shutdown: CancellationToken,
    ) {
        let events = self.redis.key("events");
        let control_channel = self.redis.key("control");
        let mut check = tokio::time::interval(CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut behind = false;
            tokio::select! {
                () = shutdown.cancelled() => return,
                push = pushes.rx.recv() => match push {
                    None => return,
                    Some(push) => match push.kind {
                        PushKind::Message => {
                            let (Some(redis::Value::BulkString(channel)), Some(redis::Value::BulkString(payload))) =
                                (push.data.first(), push.data.get(1)) else { continue };
                            if *channel == events.as_bytes() {
                                match decode_announcement(payload) {
                                    Some(event) => {
                                        if let Err(err) = self.deliver(&feed, event).await {
                                            tracing::warn!(%err, "could not fill a hole in the log; retrying");
                                            behind = true;
                                        }
                                    }
                                    None => tracing::error!("unreadable announcement on the events channel"),
                                }
                            } else if *channel == control_channel.as_bytes()
                                && let Some(Control::SessionEnded { id, reason }) = decode_control(payload)
                            {
                                // Bounded: a full queue drops the message, and the chat's
                                // sweep finds the ended session in Redis later.
                                let reason = EndReason::parse(&reason);
                                let _ = ended.try_send(Ended { id, reason });
                            }
                        }
                        PushKind::Subscribe | PushKind::Disconnection => behind = true,
                        _ => {}
                    }
                },
                _ = check.tick() => behind = self.moved_on(&feed).await,
            }
            if pushes.overflowed.swap(false, Ordering::AcqRel) {
                behind = true;
            }
            if behind && let Err(err) = self.catch_up(&feed, None).await {
                tracing::warn!(%err, "could not read the Redis log; retrying");
            }
        }
    }

    /// Whether the log's counter is past this node's feed.
    async fn moved_on(&self, feed: &Feed) -> bool {
        let seq: Result<Option<u64>, _> = redis::cmd("GET")
            .arg(self.redis.key("seq"))
            .query_async(&mut self.redis.conn())
            .await;
        matches!(seq, Ok(Some(seq)) if seq > feed.latest_id().unwrap_or(0))
    }

    /// `history`: the newest `limit` messages of `room` before `before`, oldest first, in
    /// one round trip (see [`super::scripts::HISTORY`]): as far back as the log reaches.
    pub async fn history(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<SharedEvent>, RedisError> {
        if before <= 1 || limit == 0 {
            return Ok(Vec::new());
        }
        let end = if before == u64::MAX {
            "+".to_string()
        } else {
            format!("{}-0", before - 1)
        };
        let reply: StreamRangeReply = self
            .redis
            .scripts
            .history
            .arg(self.redis.prefix())
            .arg(room)
            .arg(end)
            .arg(limit)
            .invoke_async(&mut self.redis.conn())
            .await?;
        let mut events = events_of(reply);
        events.reverse();
        Ok(events)
    }

    async fn range_async(
        &self,
        after: u64,
        before: u64,
        limit: PageLimit,
    ) -> Result<Vec<SharedEvent>, RedisError> {
        if before <= after + 1 {
            return Ok(Vec::new());
        }
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.redis.key("log"))
            .arg(format!("{}-0", after + 1))
            .arg(format!("{}-0", before - 1))
            .arg("COUNT")
            .arg(limit.events.max(1))
            .query_async(&mut self.redis.conn())
            .await?;
        let mut events = Vec::new();
        let mut bytes = 0;
        for event in events_of(reply) {
            bytes += event.json.len();
            events.push(event);
            if bytes >= limit.bytes {
                break;
            }
        }
        let first = events.first().map_or(before, |e| e.id);
        if first > after + 1 && self.trimmed_before(first).await? {
            events.insert(0, gap(after, first));
        }
        Ok(events)
    }
}

fn decode_control(payload: &[u8]) -> Option<Control> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut words = text.split(' ');
    match (words.next()?, words.next(), words.next()) {
        ("end", Some(id), Some(reason)) => Some(Control::SessionEnded {
            id: id.parse().ok()?,
            reason: reason.to_string(),
        }),
        _ => None,
    }
}

/// The feed reads what its memory no longer holds through this, on the blocking pool.
impl Backlog for RedisLog {
    fn range(
        &self,
        after: u64,
        before: u64,
        limit: PageLimit,
    ) -> Result<Vec<SharedEvent>, BacklogError> {
        self.runtime
            .block_on(self.range_async(after, before, limit))
            .map_err(BacklogError::new)
    }

    fn recent(
        &self,
        rooms: &[String],
        upto: u64,
        limit: usize,
    ) -> Result<Vec<SharedEvent>, BacklogError> {
        self.runtime
            .block_on(async {
                let mut all = Vec::new();
                for room in rooms {
                    all.extend(self.history(room, upto.saturating_add(1), limit).await?);
                }
                Ok::<_, RedisError>(newest(all, limit))
            })
            .map_err(BacklogError::new)
    }

    fn last_id(&self) -> u64 {
        self.start_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_and_announcements_round_trip() {
        for audience in [
            Audience::Everyone,
            Audience::Room("lobby".into()),
            Audience::Sessions(7, u64::MAX >> 1),
        ] {
            assert_eq!(decode_audience(&encode_audience(&audience)), Some(audience));
        }
        assert_eq!(decode_audience("s:1"), None);
        assert_eq!(decode_audience("x"), None);
        let event =
            decode_announcement(b"12\n1700000000000000\nmessage\nr:red\n{\"id\":12}").unwrap();
        assert_eq!(
            (event.id, event.ts, event.kind),
            (12, 1_700_000_000_000_000, "message")
        );
        assert_eq!(event.audience, Audience::Room("red".into()));
        assert_eq!(&event.json[..], b"{\"id\":12}");
        assert!(decode_announcement(b"x\n1\nmessage\n*\n{}").is_none());
        assert_eq!(
            decode_control(b"end 42 idle"),
            Some(Control::SessionEnded {
                id: 42,
                reason: "idle".into()
            })
        );
        assert_eq!(decode_control(b"end x idle"), None);
    }
}
