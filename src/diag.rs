//! Diagnostics for the teaching pages: a transport request may carry `tag=NAME`, and then
//! - the server records the exchange as it happened (request line and headers, response
//!   status and headers, the first bytes of the body and the bytes sent so far), which
//!   `GET /api/debug/wire?tag=NAME` returns: the "show the wire" view, because a page's
//!   script cannot see its own request headers or the raw bytes of an EventSource or iframe;
//! - `POST /api/debug/kill {"tag":"NAME"}` drops every open connection with that tag the way
//!   a network failure would (no close frame, no end of the chunked body), so the compare
//!   page can show each transport recovering from its cursor.
//!
//! Untagged requests (the load tester's, for one) are not touched. Everything is bounded:
//! at most [`MAX_TAGS`] tags (the oldest is forgotten first), [`MAX_EXCHANGES`] exchanges
//! per tag and [`HEAD_BYTES`] of each body.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::api::JsonBody;
use crate::app::AppState;
use crate::error::ApiError;

pub const MAX_TAGS: usize = 256;
pub const MAX_EXCHANGES: usize = 10;
pub const HEAD_BYTES: usize = 2048;
const MAX_TAG_LEN: usize = 64;

/// `NAME` of `tag=NAME`: 1–64 ASCII letters, digits, `-` or `_`.
pub fn parse_tag(raw: &str) -> Result<&str, ApiError> {
    let ok = (1..=MAX_TAG_LEN).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(raw)
    } else {
        Err(ApiError::Invalid(
            "invalid_tag",
            format!("tag {raw:?} must be 1 to {MAX_TAG_LEN} letters, digits, - or _"),
        ))
    }
}

/// The value of `tag=` in a query string, if there is one (not yet validated).
fn tag_in(query: Option<&str>) -> Option<String> {
    let query = query?;
    if !query.contains("tag=") {
        return None;
    }
    url_pairs(query).find_map(|(k, v)| (k == "tag").then_some(v))
}

fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        Some((decode(k)?, decode(v)?))
    })
}

/// Percent-decoding for a query component (`+` is a space); `None` if it is not UTF-8.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// All tags the server knows, oldest first for eviction.
#[derive(Default)]
pub struct Diagnostics {
    tags: Mutex<Tags>,
    seq: AtomicU64,
}

#[derive(Default)]
struct Tags {
    map: HashMap<String, TagEntry>,
    /// Tags in the order they were first seen.
    order: VecDeque<String>,
}

struct TagEntry {
    exchanges: VecDeque<Arc<Exchange>>,
    /// Fired by a kill; every connection opened under the tag before it listens.
    kill: CancellationToken,
    /// Connections open under the tag (their guards), counted by a kill.
    open: Vec<Weak<()>>,
}

impl Diagnostics {
    fn lock(&self) -> MutexGuard<'_, Tags> {
        self.tags.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry<'a>(tags: &'a mut Tags, tag: &str) -> &'a mut TagEntry {
        if !tags.map.contains_key(tag) {
            while tags.map.len() >= MAX_TAGS {
                let Some(oldest) = tags.order.pop_front() else {
                    break;
                };
                tags.map.remove(&oldest);
            }
            tags.order.push_back(tag.to_string());
            tags.map.insert(
                tag.to_string(),
                TagEntry {
                    exchanges: VecDeque::new(),
                    kill: CancellationToken::new(),
                    open: Vec::new(),
                },
            );
        }
        tags.map.get_mut(tag).expect("inserted above")
    }

    /// The token that fires when `tag` is killed, and a guard to hold while the connection
    /// is open (so a kill can say how many it dropped).
    pub fn kill_switch(&self, tag: &str) -> (CancellationToken, Arc<()>) {
        let mut tags = self.lock();
        let entry = Self::entry(&mut tags, tag);
        let guard = Arc::new(());
        entry.open.retain(|w| w.strong_count() > 0);
        entry.open.push(Arc::downgrade(&guard));
        (entry.kill.clone(), guard)
    }

    /// Drops every open connection of `tag`; returns how many there were. Connections
    /// opened afterwards get a fresh switch.
    pub fn kill(&self, tag: &str) -> usize {
        let mut tags = self.lock();
        let Some(entry) = tags.map.get_mut(tag) else {
            return 0;
        };
        let open = entry.open.iter().filter(|w| w.strong_count() > 0).count();
        entry.open.clear();
        std::mem::replace(&mut entry.kill, CancellationToken::new()).cancel();
        open
    }

    fn record(&self, tag: &str, exchange: Arc<Exchange>) {
        let mut tags = self.lock();
        let entry = Self::entry(&mut tags, tag);
        if entry.exchanges.len() >= MAX_EXCHANGES {
            entry.exchanges.pop_front();
        }
        entry.exchanges.push_back(exchange);
    }

    fn exchanges(&self, tag: &str) -> Vec<Arc<Exchange>> {
        let tags = self.lock();
        tags.map
            .get(tag)
            .map(|e| e.exchanges.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

/// One recorded request and its response.
struct Exchange {
    seq: u64,
    started: u64,
    since: Instant,
    request_line: String,
    request_headers: Vec<(String, String)>,
    response: Mutex<ResponseRecord>,
}

#[derive(Default)]
struct ResponseRecord {
    line: String,
    headers: Vec<(String, String)>,
    head: Vec<u8>,
    bytes: u64,
    state: State_,
    ended: Option<Instant>,
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum State_ {
    #[default]
    Open,
    /// The body ended as it should.
    Complete,
    /// The server broke the connection off (a kill, or a body error).
    Aborted,
    /// The connection went away before the body ended (the client left).
    Closed,
}

impl Exchange {
    fn response(&self) -> MutexGuard<'_, ResponseRecord> {
        self.response.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn end(&self, state: State_) {
        let mut r = self.response();
        if r.state == State_::Open {
            r.state = state;
            r.ended = Some(Instant::now());
        }
    }
}

fn headers_of(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let shown = if name == header::COOKIE || name == header::SET_COOKIE {
                format!("({} bytes, not shown)", value.len())
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_string(), shown)
        })
        .collect()
}

/// Middleware on the transport routes: records tagged requests, rejects malformed tags.
pub async fn record(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let Some(raw) = tag_in(req.uri().query()) else {
        return next.run(req).await;
    };
    let tag = match parse_tag(&raw) {
        Ok(tag) => tag.to_string(),
        Err(err) => return err.into_response(),
    };
    let diag = app.diagnostics();
    let exchange = Arc::new(Exchange {
        seq: diag.seq.fetch_add(1, Ordering::Relaxed) + 1,
        started: crate::feed::clock::now_micros(),
        since: Instant::now(),
        request_line: format!(
            "{} {} {:?}",
            req.method(),
            req.uri()
                .path_and_query()
                .map_or_else(|| req.uri().path(), |p| p.as_str()),
            req.version()
        ),
        request_headers: headers_of(req.headers()),
        response: Mutex::default(),
    });
    diag.record(&tag, exchange.clone());
    let response = next.run(req).await;
    let (parts, body) = response.into_parts();
    {
        let mut r = exchange.response();
        r.line = format!("{:?} {}", parts.version, parts.status);
        r.headers = headers_of(&parts.headers);
        // What hyper adds when it writes the head: the body's framing.
        if parts.status != axum::http::StatusCode::SWITCHING_PROTOCOLS {
            match body.size_hint().exact() {
                Some(n) => r.headers.push(("content-length".into(), n.to_string())),
                None => r
                    .headers
                    .push(("transfer-encoding".into(), "chunked".into())),
            }
        } else {
            r.state = State_::Complete;
            r.ended = Some(Instant::now());
        }
    }
    let expected = body.size_hint().exact();
    Response::from_parts(
        parts,
        Body::new(RecordingBody {
            inner: body,
            exchange,
            expected,
        }),
    )
}

/// A response body that copies its first bytes and counts the rest into its exchange.
struct RecordingBody {
    inner: Body,
    exchange: Arc<Exchange>,
    /// A body of known length is done when that much went out (hyper may not poll again).
    expected: Option<u64>,
}

impl HttpBody for RecordingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let mut r = self.exchange.response();
                    r.bytes += data.len() as u64;
                    let room = HEAD_BYTES.saturating_sub(r.head.len());
                    r.head.extend_from_slice(&data[..room.min(data.len())]);
                    let done = self.expected.is_some_and(|n| r.bytes >= n);
                    drop(r);
                    if done {
                        self.exchange.end(State_::Complete);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => self.exchange.end(State_::Aborted),
            Poll::Ready(None) => self.exchange.end(State_::Complete),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RecordingBody {
    fn drop(&mut self) {
        self.exchange.end(State_::Closed);
    }
}

#[derive(Deserialize)]
pub struct TagQuery {
    tag: String,
}

#[derive(Serialize)]
struct WireReport {
    tag: String,
    exchanges: Vec<ExchangeReport>,
}

#[derive(Serialize)]
struct ExchangeReport {
    seq: u64,
    started: u64,
    duration_ms: f64,
    state: State_,
    request: Message,
    /// `None` while the handler has not answered yet (a held long poll).
    response: Option<Message>,
    body: BodyReport,
}

#[derive(Serialize)]
struct Message {
    line: String,
    headers: Vec<(String, String)>,
}

#[derive(Serialize)]
struct BodyReport {
    bytes: u64,
    head: String,
    head_bytes: usize,
}

/// `GET /api/debug/wire?tag=NAME`: the tag's recorded exchanges, newest first.
pub async fn wire(
    State(app): State<AppState>,
    query: Result<Query<TagQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let tag = parse_tag(&query.tag)?;
    let exchanges = app
        .diagnostics()
        .exchanges(tag)
        .iter()
        .map(|x| {
            let r = x.response();
            ExchangeReport {
                seq: x.seq,
                started: x.started,
                duration_ms: (r
                    .ended
                    .unwrap_or_else(Instant::now)
                    .duration_since(x.since)
                    .as_secs_f64()
                    * 1000.0
                    * 10.0)
                    .round()
                    / 10.0,
                state: r.state,
                request: Message {
                    line: x.request_line.clone(),
                    headers: x.request_headers.clone(),
                },
                response: (!r.line.is_empty()).then(|| Message {
                    line: r.line.clone(),
                    headers: r.headers.clone(),
                }),
                body: BodyReport {
                    bytes: r.bytes,
                    head: String::from_utf8_lossy(&r.head).into_owned(),
                    head_bytes: r.head.len(),
                },
            }
        })
        .collect();
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(WireReport {
            tag: tag.to_string(),
            exchanges,
        }),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct KillBody {
    tag: String,
}

/// `POST /api/debug/kill {"tag":"NAME"}` → `{"tag":…,"killed":N}`: drops the tag's open
/// connections.
pub async fn kill(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<KillBody>,
) -> Result<Response, ApiError> {
    let tag = parse_tag(&body.tag)?;
    let killed = app.diagnostics().kill(tag);
    tracing::info!(tag, killed, "killed tagged connections");
    Ok(Json(serde_json::json!({ "tag": tag, "killed": killed })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_short_plain_words() {
        assert!(parse_tag("cmp-1a_2").is_ok());
        assert!(parse_tag("").is_err());
        assert!(parse_tag("a b").is_err());
        assert!(parse_tag("<script>").is_err());
        assert!(parse_tag(&"x".repeat(65)).is_err());
        assert_eq!(tag_in(Some("after=3&tag=p%2D1")).as_deref(), Some("p-1"));
        assert_eq!(tag_in(Some("after=3")), None);
        assert_eq!(tag_in(Some("tag=%zz")), None);
    }

    #[test]
    fn a_kill_fires_open_switches_and_counts_them_and_the_next_switch_is_fresh() {
        let d = Diagnostics::default();
        let (a, guard_a) = d.kill_switch("t");
        let (b, guard_b) = d.kill_switch("t");
        drop(guard_b);
        assert_eq!(d.kill("t"), 1);
        assert!(a.is_cancelled() && b.is_cancelled());
        let (c, _guard_c) = d.kill_switch("t");
        assert!(!c.is_cancelled());
        assert_eq!(d.kill("unknown"), 0);
        drop(guard_a);
    }

    #[test]
    fn tags_and_exchanges_are_bounded() {
        let d = Diagnostics::default();
        for i in 0..MAX_TAGS + 5 {
            let _ = d.kill_switch(&format!("t{i}"));
        }
        assert_eq!(d.lock().map.len(), MAX_TAGS);
        assert!(!d.lock().map.contains_key("t0"));
    }
}
