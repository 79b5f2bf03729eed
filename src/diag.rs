//! Diagnostics for the teaching pages: a transport request may carry `tag=NAME`, and then
//! - the server records the exchange as it happened (request line and headers, response
//!   status and headers, the first bytes of the body and the bytes sent so far), which
//!   `GET /api/debug/wire?tag=NAME` returns: the "show the wire" view, because a page's
//!   script cannot see its own request headers or the raw bytes of an EventSource or iframe;
//! - `POST /api/debug/kill {"tag":"NAME"}` drops every open connection with that tag the way
//!   a network failure would (no close frame, no end of the chunked body), so the compare
//!   page can show each transport recovering from its cursor.
//!
//! Untagged requests (the load tester's, for one) are not touched.
//!
//! A tag is a capability: whoever knows it reads the record (a chat stream's body head holds
//! what its subscriber may see, whispers included) and may kill the connections. So a tag
//! must be at least [`MIN_TAG_LEN`] characters (the pages put 128 random bits in it), and a
//! query that repeats `tag=` is refused rather than guessed at. The record itself keeps the
//! values of [`shows_value`]'s allowlist of headers only (those the pages explain); any other
//! header is kept as its name and length, so credentials (`Authorization`, API keys,
//! cookies) never reach it. Request bodies are never read.
//!
//! Everything is bounded by one byte budget: every string kept is charged to its exchange,
//! which may hold at most [`EXCHANGE_BYTES`] (the request's part, and [`RESPONSE_BYTES`]
//! reserved for the response and body head), and all exchanges together at most
//! [`TOTAL_BYTES`]: past it the oldest exchange, whatever its tag, is forgotten first. Counts
//! bound the rest: [`MAX_EXCHANGES`] per tag and [`MAX_TAGS`] tags (the oldest forgotten).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::http::{JsonBody, KillSwitch};

pub const MAX_TAGS: usize = 256;
pub const MAX_EXCHANGES: usize = 10;
/// What one exchange may hold: request line and headers, response line and headers, body
/// head, each string with [`ENTRY_OVERHEAD`].
pub const EXCHANGE_BYTES: usize = 8 * 1024;
/// The part of [`EXCHANGE_BYTES`] kept for the response (line, headers, body head), so a
/// request with huge headers cannot leave its response unrecorded.
pub const RESPONSE_BYTES: usize = 3 * 1024;
/// The most of a response body that is kept (if its exchange still has room).
pub const HEAD_BYTES: usize = 2048;
/// All exchanges of all tags together.
pub const TOTAL_BYTES: usize = 4 * 1024 * 1024;
/// 128 bits in base64url: the shortest tag accepted. The server cannot measure randomness;
/// this floor only makes the pages' random tags mandatory in length.
pub const MIN_TAG_LEN: usize = 22;
pub const MAX_TAG_LEN: usize = 64;
/// Charged per kept string besides its bytes (its `String`, roughly), so a hundred empty
/// headers are not free.
const ENTRY_OVERHEAD: usize = size_of::<String>();
/// Kept back from a part's budget for the one "(more headers)" entry that says what did not
/// fit (its name, a value of at most 40 bytes, their overhead).
const SUMMARY_BYTES: usize = 128;
/// The longest request line kept; the rest of a long URL is replaced by its length.
const LINE_BYTES: usize = 1024;

/// `NAME` of `tag=NAME`: 22–64 ASCII letters, digits, `-` or `_`.
pub fn parse_tag(raw: &str) -> Result<&str, ApiError> {
    let ok = (MIN_TAG_LEN..=MAX_TAG_LEN).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(raw)
    } else {
        // The tag is not echoed: it may be 60 KB, and an error need not repeat it.
        Err(ApiError::Invalid(
            "invalid_tag",
            format!(
                "a tag must be {MIN_TAG_LEN} to {MAX_TAG_LEN} letters, digits, - or _ \
                 (at least 128 random bits, e.g. 22 base64url characters)"
            ),
        ))
    }
}

fn repeated_tag() -> ApiError {
    ApiError::Invalid("invalid_tag", "give tag= at most once".into())
}

/// The value of `tag=` in a query string, if there is one (not yet validated); `tag=` given
/// twice is an error (which one would be recorded, and which one killed?), and so is a value
/// that is not percent-encoded UTF-8 (it could not be a valid tag anyway).
pub fn tag_in(query: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(query) = query else {
        return Ok(None);
    };
    // Fast path for untagged requests: a query that cannot spell `tag`, even
    // percent-encoded, has none.
    if !query.contains("tag") && !query.contains('%') {
        return Ok(None);
    }
    let mut found = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(key).as_deref() != Some("tag") {
            continue;
        }
        if found.is_some() {
            return Err(repeated_tag());
        }
        found = Some(decode(value).ok_or_else(|| {
            ApiError::Invalid("invalid_tag", "tag= is not percent-encoded UTF-8".into())
        })?);
    }
    Ok(found)
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

/// Whether a header's value is recorded: the ones the pages explain, and nothing that
/// carries credentials. Every other header is recorded as its name and length.
///
/// Left out on purpose: `authorization`, `cookie`, `set-cookie`, API keys and any unknown
/// header (the allowlist is what keeps a new credential header out); `referer`, which carries
/// the full address of the page, query string included, where third parties put tokens, and
/// which no page explains; `sec-websocket-protocol`, which clients use to smuggle a bearer
/// token into a WebSocket handshake (a browser cannot set `Authorization` there).
pub fn shows_value(name: &HeaderName) -> bool {
    const SHOWN: &[&str] = &[
        // request
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "pragma",
        "connection",
        "keep-alive",
        "upgrade",
        "origin",
        "last-event-id",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        // both
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        // response
        "date",
        "vary",
        "retry-after",
        "x-accel-buffering",
        "x-content-type-options",
        "referrer-policy",
        "content-security-policy",
        "timing-allow-origin",
        "sec-websocket-accept",
    ];
    const SHOWN_PREFIXES: &[&str] = &["access-control-", "sec-fetch-"];
    let name = name.as_str();
    SHOWN.contains(&name) || SHOWN_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// How a value that is not shown is written; the wire view parses it to count the head.
fn not_shown(len: usize) -> String {
    format!("({len} bytes, not shown)")
}

/// What a part of one exchange may still keep. Every kept string is charged here.
struct Budget {
    left: usize,
}

impl Budget {
    fn new(bytes: usize) -> Self {
        Budget { left: bytes }
    }

    /// Charges a kept string of `len` bytes, if it fits.
    fn take(&mut self, len: usize) -> bool {
        let cost = len + ENTRY_OVERHEAD;
        if cost <= self.left {
            self.left -= cost;
            true
        } else {
            false
        }
    }

    /// Up to `max` bytes for a growing buffer (the body head); charged at once.
    fn take_up_to(&mut self, max: usize) -> usize {
        let n = max.min(self.left);
        self.left -= n;
        n
    }
}

/// Records `headers` within `budget`: allowlisted values as they are, others as their
/// length; a header that does not fit at all is only counted, in one last
/// `(more headers)` entry.
fn headers_of(headers: &HeaderMap, budget: &mut Budget) -> Vec<(String, String)> {
    let mut summary = Budget::new(SUMMARY_BYTES);
    budget.left = budget.left.saturating_sub(SUMMARY_BYTES);
    let mut kept = Vec::new();
    let (mut left_out, mut left_out_bytes) = (0usize, 0usize);
    for (name, value) in headers {
        let shown = if shows_value(name) {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        } else {
            not_shown(value.len())
        };
        let hidden = || not_shown(value.len());
        if budget.take(name.as_str().len()) {
            if budget.take(shown.len()) {
                kept.push((name.as_str().to_string(), shown));
                continue;
            }
            let hidden = hidden();
            if budget.take(hidden.len()) {
                kept.push((name.as_str().to_string(), hidden));
                continue;
            }
            // Too little left even for the length: give the name's charge back.
            budget.left += name.as_str().len() + ENTRY_OVERHEAD;
        }
        left_out += 1;
        // As on the wire: `name: value` and CRLF.
        left_out_bytes += name.as_str().len() + 2 + value.len() + 2;
    }
    if left_out > 0 {
        let name = "(more headers)".to_string();
        let value = not_shown(left_out_bytes);
        if summary.take(name.len()) && summary.take(value.len()) {
            kept.push((name, value));
        }
    }
    budget.left += summary.left;
    kept.shrink_to_fit();
    kept
}

/// The request line, its target cut to [`LINE_BYTES`] (the rest given as a length).
fn request_line(req: &Request, budget: &mut Budget) -> String {
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path(), |p| p.as_str());
    let line = if target.len() <= LINE_BYTES {
        format!("{} {} {:?}", req.method(), target, req.version())
    } else {
        // A URI is ASCII (hyper refuses anything else), so any cut is a char boundary;
        // `get` keeps that an assumption that cannot panic.
        let kept = target.get(..LINE_BYTES).unwrap_or("");
        format!(
            "{} {}…{} {:?}",
            req.method(),
            kept,
            not_shown(target.len() - kept.len()),
            req.version()
        )
    };
    // A line of at most LINE_BYTES + ~60 always fits a fresh request budget.
    budget.take(line.len());
    line
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
    /// The sum of the kept exchanges' `cost`: at most [`TOTAL_BYTES`].
    bytes: usize,
}

struct TagEntry {
    exchanges: VecDeque<Arc<Exchange>>,
    /// Fired by a kill; every connection opened under the tag before it listens.
    kill: CancellationToken,
    /// Connections open under the tag (their guards), counted by a kill.
    open: Vec<Weak<()>>,
}

impl Tags {
    fn entry(&mut self, tag: &str) -> &mut TagEntry {
        if !self.map.contains_key(tag) {
            while self.map.len() >= MAX_TAGS {
                let Some(oldest) = self.order.pop_front() else {
                    break;
                };
                if let Some(gone) = self.map.remove(&oldest) {
                    self.bytes -= gone.exchanges.iter().map(|x| x.cost).sum::<usize>();
                }
            }
            self.order.push_back(tag.to_string());
        }
        self.map.entry(tag.to_string()).or_insert_with(|| TagEntry {
            exchanges: VecDeque::new(),
            kill: CancellationToken::new(),
            open: Vec::new(),
        })
    }

    /// Forgets the oldest exchange of any tag; `false` if there is none. A scan of at most
    /// [`MAX_TAGS`] queue fronts, done about once per recorded exchange once the budget is
    /// full: cheaper than keeping a second, global queue in step.
    fn forget_oldest(&mut self) -> bool {
        let oldest = self
            .map
            .iter()
            .filter_map(|(tag, entry)| entry.exchanges.front().map(|x| (x.seq, tag)))
            .min_by_key(|(seq, _)| *seq)
            .map(|(_, tag)| tag.clone());
        let Some(tag) = oldest else {
            return false;
        };
        if let Some(gone) = self
            .map
            .get_mut(&tag)
            .and_then(|entry| entry.exchanges.pop_front())
        {
            self.bytes -= gone.cost;
        }
        true
    }
}

impl Diagnostics {
    fn lock(&self) -> MutexGuard<'_, Tags> {
        self.tags.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token that fires when `tag` is killed, and a guard to hold while the connection
    /// is open (so a kill can say how many it dropped).
    pub fn kill_switch(&self, tag: &str) -> (CancellationToken, Arc<()>) {
        let mut tags = self.lock();
        let entry = tags.entry(tag);
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

    /// The bytes charged to the record now (never more than [`TOTAL_BYTES`]).
    pub fn recorded_bytes(&self) -> usize {
        self.lock().bytes
    }

    fn record(&self, tag: &str, exchange: Arc<Exchange>) {
        let mut tags = self.lock();
        let entry = tags.entry(tag);
        let dropped = if entry.exchanges.len() >= MAX_EXCHANGES {
            entry.exchanges.pop_front().map_or(0, |x| x.cost)
        } else {
            0
        };
        tags.bytes -= dropped;
        while tags.bytes + exchange.cost > TOTAL_BYTES && tags.forget_oldest() {}
        tags.bytes += exchange.cost;
        tags.entry(tag).exchanges.push_back(exchange);
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
    /// What this exchange is charged in the total: its request part as kept, the
    /// [`RESPONSE_BYTES`] reserved for its response, and the struct itself.
    cost: usize,
    request_line: String,
    request_headers: Vec<(String, String)>,
    response: Mutex<ResponseRecord>,
}

#[derive(Default)]
struct ResponseRecord {
    line: String,
    headers: Vec<(String, String)>,
    head: Vec<u8>,
    /// How much of the body `head` may keep: what the response's budget has left.
    head_room: usize,
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

/// Middleware on the transport routes: records tagged requests, rejects malformed tags.
/// A tagged request also gets its tag's [`KillSwitch`] as a request extension, which the
/// transports hold for as long as they serve it (`POST /api/debug/kill`).
pub async fn record(
    State(diag): State<Arc<Diagnostics>>,
    mut req: Request,
    next: Next,
) -> Response {
    let raw = match tag_in(req.uri().query()) {
        Ok(Some(raw)) => raw,
        Ok(None) => return next.run(req).await,
        Err(err) => return err.into_response(),
    };
    let tag = match parse_tag(&raw) {
        Ok(tag) => tag.to_string(),
        Err(err) => return err.into_response(),
    };
    let mut budget = Budget::new(EXCHANGE_BYTES - RESPONSE_BYTES);
    let request_line = request_line(&req, &mut budget);
    let request_headers = headers_of(req.headers(), &mut budget);
    let exchange = Arc::new(Exchange {
        seq: diag.seq.fetch_add(1, Ordering::Relaxed) + 1,
        started: crate::feed::clock::now_micros(),
        since: Instant::now(),
        cost: (EXCHANGE_BYTES - RESPONSE_BYTES - budget.left)
            + RESPONSE_BYTES
            + size_of::<Exchange>(),
        request_line,
        request_headers,
        response: Mutex::default(),
    });
    diag.record(&tag, exchange.clone());
    let (token, guard) = diag.kill_switch(&tag);
    req.extensions_mut().insert(KillSwitch { token, guard });
    let response = next.run(req).await;
    let (parts, body) = response.into_parts();
    {
        let mut budget = Budget::new(RESPONSE_BYTES);
        let line = format!("{:?} {}", parts.version, parts.status);
        budget.take(line.len());
        let mut headers = headers_of(&parts.headers, &mut budget);
        // What hyper adds when it writes the head: the body's framing.
        let framing = if parts.status != axum::http::StatusCode::SWITCHING_PROTOCOLS {
            Some(match body.size_hint().exact() {
                Some(n) => ("content-length".to_string(), n.to_string()),
                None => ("transfer-encoding".to_string(), "chunked".to_string()),
            })
        } else {
            None
        };
        if let Some((name, value)) = framing
            && budget.take(name.len())
            && budget.take(value.len())
        {
            headers.push((name, value));
        }
        let mut r = exchange.response();
        r.line = line;
        r.headers = headers;
        r.head_room = budget.take_up_to(HEAD_BYTES);
        if parts.status == axum::http::StatusCode::SWITCHING_PROTOCOLS {
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
                    let room = r.head_room.saturating_sub(r.head.len());
                    let kept = &data[..room.min(data.len())];
                    // Exactly what is kept: doubling growth could hold twice the budget.
                    r.head.reserve_exact(kept.len());
                    r.head.extend_from_slice(kept);
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

#[derive(Serialize)]
struct WireReport {
    tag: String,
    exchanges: Vec<ExchangeReport>,
    /// What the whole record (every tag) holds now, and its budget.
    recorded_bytes: usize,
    budget_bytes: usize,
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
    State(diag): State<Arc<Diagnostics>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let raw = tag_in(query.as_deref())?
        .ok_or_else(|| ApiError::Invalid("invalid_tag", "tag= is required".into()))?;
    let tag = parse_tag(&raw)?;
    let exchanges = diag
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
            recorded_bytes: diag.recorded_bytes(),
            budget_bytes: TOTAL_BYTES,
        }),
    )
        .into_response())
}

/// `{"tag":"NAME"}`, read by hand so that a repeated `"tag"` is told apart from other bad
/// JSON (serde's derive would call it a duplicate field, a `bad_json`); other keys are
/// ignored.
pub struct KillBody {
    tag: String,
    repeated: bool,
}

impl<'de> Deserialize<'de> for KillBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = KillBody;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object with a \"tag\"")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KillBody, A::Error> {
                let mut tag: Option<String> = None;
                let mut repeated = false;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "tag" {
                        repeated |= tag.is_some();
                        tag = Some(map.next_value()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                let tag = tag.ok_or_else(|| de::Error::missing_field("tag"))?;
                Ok(KillBody { tag, repeated })
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// `POST /api/debug/kill {"tag":"NAME"}` → `{"tag":…,"killed":N}`: drops the tag's open
/// connections.
pub async fn kill(
    State(diag): State<Arc<Diagnostics>>,
    JsonBody(body): JsonBody<KillBody>,
) -> Result<Response, ApiError> {
    if body.repeated {
        return Err(repeated_tag());
    }
    let tag = parse_tag(&body.tag)?;
    let killed = diag.kill(tag);
    // The tag is a capability: it is not written to the log.
    tracing::info!(killed, "killed tagged connections");
    Ok(Json(serde_json::json!({ "tag": tag, "killed": killed })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const TAG: &str = "page-0123456789abcdefABCDEF";

    #[test]
    fn tags_are_long_plain_words_given_once() {
        assert!(parse_tag(TAG).is_ok());
        assert!(parse_tag(&"x".repeat(MIN_TAG_LEN)).is_ok());
        assert!(parse_tag(&"x".repeat(MAX_TAG_LEN)).is_ok());
        assert!(parse_tag(&"x".repeat(MIN_TAG_LEN - 1)).is_err());
        assert!(parse_tag(&"x".repeat(MAX_TAG_LEN + 1)).is_err());
        assert!(parse_tag("").is_err());
        assert!(
            parse_tag("cmp-1a_2").is_err(),
            "too short to be a capability"
        );
        assert!(parse_tag("aaaaaaaaaaa bbbbbbbbbbbb").is_err());
        assert!(parse_tag("<script>aaaaaaaaaaaaaaaaaaaa").is_err());
        let tagged = |q: &str| tag_in(Some(q)).map_err(|e| e.to_string());
        assert_eq!(tagged("after=3&tag=p%2D1"), Ok(Some("p-1".into())));
        assert_eq!(tagged("after=3"), Ok(None));
        assert_eq!(tag_in(None).ok(), Some(None));
        assert!(tagged("tag=%zz").is_err());
        assert_eq!(tagged("x=%zz"), Ok(None));
        assert!(tagged("tag=a&tag=a").is_err());
        assert!(
            tagged("tag=a&after=1&t%61g=b").is_err(),
            "spelled another way"
        );
        assert_eq!(tagged("t%61g=b"), Ok(Some("b".into())));
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
    fn tags_are_bounded_in_number() {
        let d = Diagnostics::default();
        for i in 0..MAX_TAGS + 5 {
            let _ = d.kill_switch(&format!("t{i}"));
        }
        assert_eq!(d.lock().map.len(), MAX_TAGS);
        assert!(!d.lock().map.contains_key("t0"));
    }

    #[test]
    fn only_allowlisted_header_values_are_kept_and_the_rest_is_their_length() {
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("text/event-stream"));
        headers.insert("authorization", HeaderValue::from_static("Bearer secret"));
        headers.insert("x-api-key", HeaderValue::from_static("k"));
        headers.insert("cookie", HeaderValue::from_static("pushpoll_session=abc"));
        headers.insert("referer", HeaderValue::from_static("http://h/?token=t"));
        headers.insert("sec-fetch-mode", HeaderValue::from_static("cors"));
        let mut budget = Budget::new(EXCHANGE_BYTES);
        let kept = headers_of(&headers, &mut budget);
        let value = |name: &str| {
            kept.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(value("accept"), Some("text/event-stream"));
        assert_eq!(value("sec-fetch-mode"), Some("cors"));
        assert_eq!(value("authorization"), Some("(13 bytes, not shown)"));
        assert_eq!(value("x-api-key"), Some("(1 bytes, not shown)"));
        assert_eq!(value("cookie"), Some("(20 bytes, not shown)"));
        assert_eq!(value("referer"), Some("(17 bytes, not shown)"));
    }

    #[test]
    fn huge_headers_are_cut_to_the_exchange_budget_and_say_what_was_left_out() {
        let mut headers = HeaderMap::new();
        let big = HeaderValue::from_str(&"u".repeat(20_000)).unwrap();
        headers.insert("user-agent", big.clone());
        for i in 0..90 {
            let name =
                HeaderName::from_bytes(format!("x-filler-{i:02}-{}", "n".repeat(100)).as_bytes())
                    .unwrap();
            headers.insert(name, big.clone());
        }
        let start = EXCHANGE_BYTES - RESPONSE_BYTES;
        let mut budget = Budget::new(start);
        let kept = headers_of(&headers, &mut budget);
        let text: usize = kept
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2 * ENTRY_OVERHEAD)
            .sum();
        assert!(text <= start - budget.left, "{text} > charged");
        assert!(budget.left <= start);
        assert_eq!(
            kept[0],
            ("user-agent".into(), "(20000 bytes, not shown)".into())
        );
        let (name, value) = kept.last().unwrap();
        assert_eq!(name, "(more headers)");
        assert!(value.ends_with("bytes, not shown)"), "{value}");
    }

    fn exchange(d: &Diagnostics, cost: usize) -> Arc<Exchange> {
        Arc::new(Exchange {
            seq: d.seq.fetch_add(1, Ordering::Relaxed) + 1,
            started: 0,
            since: Instant::now(),
            cost,
            request_line: String::new(),
            request_headers: Vec::new(),
            response: Mutex::default(),
        })
    }

    #[test]
    fn the_total_stays_in_budget_and_the_oldest_exchange_anywhere_goes_first() {
        let d = Diagnostics::default();
        let cost = EXCHANGE_BYTES + size_of::<Exchange>();
        for round in 0..MAX_EXCHANGES {
            for t in 0..MAX_TAGS {
                d.record(&format!("t{t}"), exchange(&d, cost));
                let tags = d.lock();
                let sum: usize = tags
                    .map
                    .values()
                    .flat_map(|e| e.exchanges.iter().map(|x| x.cost))
                    .sum();
                assert_eq!(tags.bytes, sum, "round {round}, tag {t}");
                assert!(tags.bytes <= TOTAL_BYTES);
            }
        }
        assert!(d.recorded_bytes() > TOTAL_BYTES - cost);
        // The newest exchanges are kept: the last tag recorded has its last ones.
        let newest = d.exchanges(&format!("t{}", MAX_TAGS - 1));
        assert!(!newest.is_empty());
        assert_eq!(newest[0].seq, (MAX_TAGS * MAX_EXCHANGES) as u64);
        // And what was forgotten is older than anything kept.
        let tags = d.lock();
        let kept_min = tags
            .map
            .values()
            .flat_map(|e| e.exchanges.iter().map(|x| x.seq))
            .min()
            .unwrap();
        let kept = tags.map.values().map(|e| e.exchanges.len()).sum::<usize>() as u64;
        assert_eq!(kept_min, (MAX_TAGS * MAX_EXCHANGES) as u64 - kept + 1);
    }

    proptest::proptest! {
        /// Any query at all: no panic, and a refused tag is always `invalid_tag`.
        #[test]
        fn any_query_is_parsed_or_refused_as_invalid_tag(query in "[a-z%=&0-9A-F<]{0,60}|.{0,100}") {
            let refused = |e: &ApiError| matches!(e, ApiError::Invalid("invalid_tag", _));
            match tag_in(Some(&query)) {
                Ok(Some(raw)) => {
                    if let Err(e) = parse_tag(&raw) {
                        proptest::prop_assert!(refused(&e));
                    }
                }
                // No plain `tag` key was overlooked.
                Ok(None) => proptest::prop_assert!(
                    !query.split('&').any(|p| p.split('=').next() == Some("tag"))
                ),
                Err(e) => proptest::prop_assert!(refused(&e)),
            }
        }

        /// A tag of the accepted alphabet and length is found among other parameters and
        /// accepted; one character less is refused.
        #[test]
        fn a_well_formed_tag_round_trips(tag in "[A-Za-z0-9_-]{22,64}", after in 0u64..1000) {
            let query = format!("after={after}&tag={tag}&history=0");
            let found = tag_in(Some(&query)).ok().flatten();
            proptest::prop_assert_eq!(found.as_deref(), Some(tag.as_str()));
            proptest::prop_assert!(parse_tag(&tag).is_ok());
            proptest::prop_assert!(parse_tag(&tag[..21]).is_err());
            let twice = format!("{query}&tag={tag}");
            proptest::prop_assert!(tag_in(Some(&twice)).is_err());
        }
    }
}
