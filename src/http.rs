//! The HTTP edge's shared pieces: extractors (query parameters, the feed in the path, a JSON
//! body, the caller's session, a tagged request's kill switch), the parsers of values that
//! come in URLs (cursors, rooms), and the JSON array of shared events. Every handler module
//! (`chat_api`, `transport`, `diag`, `draw`) uses these; none of them imports another to get
//! one.

use std::ops::RangeInclusive;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::chat::{Chat, Session, parse_room};
use crate::error::ApiError;
use crate::event::SharedEvent;
use crate::names::FeedName;
use crate::net::forwarded::Client;

/// Largest request body accepted (`413` beyond).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// How long a request body may take to arrive in full; past it, `408 body_timeout`. (The
/// head has `--header-timeout`; hyper has no deadline for bodies.)
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// A JSON body; too large is `413`, malformed is `400 bad_json`, slower than
/// [`BODY_DEADLINE`] is `408`, all as JSON errors.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let read = tokio::time::timeout(BODY_DEADLINE, Bytes::from_request(req, state));
        let bytes = read
            .await
            .map_err(|_| ApiError::BodyTimeout)?
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge(MAX_BODY_BYTES)
                } else {
                    ApiError::BadRequest(e.body_text())
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadJson(e.to_string()))
    }
}

/// The values of a request's `Cookie` headers, for [`crate::chat::Sessions::from_cookies`].
pub fn cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
}

/// The live session a request's cookie names, if any; `503` if the cluster's Redis cannot
/// say.
pub async fn session_of(chat: &Chat, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    Ok(chat.sessions().from_cookies(cookies(headers)).await?)
}

/// The caller's live session, from its cookie; `401` without one.
pub struct SignedIn(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for SignedIn
where
    Chat: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        session_of(&Chat::from_ref(state), &parts.headers)
            .await?
            .map(SignedIn)
            .ok_or_else(ApiError::signed_out)
    }
}

/// The session id the request's cookie carries, its signature checked here, with no store
/// asked: for the writes (`Chat::send`, `Chat::rename`), which check that the session is
/// live themselves, within the one deadline of their Redis work in a cluster. `401` without
/// a validly signed cookie; a write as an ended session gets `401` from the chat.
pub struct SessionId(pub u64);

impl<S: Send + Sync> FromRequestParts<S> for SessionId
where
    Chat: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Chat::from_ref(state)
            .sessions()
            .id_from_cookies(cookies(&parts.headers))
            .map(SessionId)
            .ok_or_else(ApiError::signed_out)
    }
}

/// The `{feed}` segment of a transport URL; an unknown feed is a `404`.
pub struct FeedPath(pub FeedName);

impl<S: Send + Sync> FromRequestParts<S> for FeedPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        FeedName::parse(&name)
            .map(FeedPath)
            .ok_or(ApiError::UnknownFeed(name))
    }
}

/// What the diagnostics give a tagged transport request (`?tag=`): a token that fires when
/// `POST /api/debug/kill` names the tag, and a guard to hold while the connection is open
/// (so a kill can count what it dropped). The recorder puts it in the request's extensions;
/// the transports take it from there ([`Subscribing`]), so they need not know the
/// diagnostics at all.
#[derive(Clone)]
pub struct KillSwitch {
    pub token: CancellationToken,
    pub guard: Arc<KillGuard>,
}

/// One tagged request's side of a kill: open until a kill takes it or the request retires
/// it. Both moves are one compare-and-swap, so a kill counts exactly the requests it
/// broke: a long poll that already has its answer when the kill comes either retires
/// first (answered; the kill does not count it) or is taken first (broken off, counted),
/// never answered *and* counted.
#[derive(Debug, Default)]
pub struct KillGuard(std::sync::atomic::AtomicU8);

const OPEN: u8 = 0;
const KILLED: u8 = 1;
const RETIRED: u8 = 2;

impl KillGuard {
    /// Takes the request for a kill; false if it was already retired (or killed).
    pub fn kill(&self) -> bool {
        self.swap_from_open(KILLED)
    }

    /// The request is about to answer normally; false if a kill took it first, in which
    /// case it must break its connection instead.
    pub fn retire(&self) -> bool {
        self.swap_from_open(RETIRED)
    }

    fn swap_from_open(&self, to: u8) -> bool {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        self.0.compare_exchange(OPEN, to, AcqRel, Acquire).is_ok()
    }
}

/// What a transport request brings to its subscription: the query, the headers (the session
/// cookie, `Last-Event-ID`) and, when the request is tagged, its kill switch.
pub struct Subscribing {
    pub params: Params,
    pub headers: HeaderMap,
    pub kill: Option<KillSwitch>,
}

impl<S: Send + Sync> FromRequestParts<S> for Subscribing {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = Params::from_request_parts(parts, state).await?;
        Ok(Subscribing {
            params,
            headers: parts.headers.clone(),
            // Taken out, so the request itself no longer holds the guard.
            kill: parts.extensions.remove::<KillSwitch>(),
        })
    }
}

/// The query string's parameters, percent-decoded (`+` is a space; invalid UTF-8 becomes
/// U+FFFD, as `application/x-www-form-urlencoded` parsing does). A name given twice means
/// its last value. Kept as a short list rather than a map: a query has a handful of
/// parameters, and hashing every name cost more than scanning them (in a CPU profile under load).
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Params::parse(parts.uri.query().unwrap_or(""))
    }
}

impl Params {
    /// Never fails today (decoding is lossy, and the request head's size bounds the list);
    /// a `Result` so the extractor's contract stays the `400` it documents.
    pub fn parse(query: &str) -> Result<Params, ApiError> {
        Ok(Params(
            form_urlencoded::parse(query.as_bytes())
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        ))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `rooms=lobby,red`: the chat rooms to follow (default `lobby`); see [`parse_rooms`].
    pub fn rooms(&self) -> Result<Vec<Arc<str>>, ApiError> {
        parse_rooms(
            self.get("rooms")
                .unwrap_or(crate::chat::command::DEFAULT_ROOM),
        )
    }

    /// `after=ID`: deliver events with an id above it.
    pub fn cursor(&self) -> Result<Option<u64>, ApiError> {
        self.get("after")
            .map(|v| parse_cursor("after", v))
            .transpose()
    }

    /// An integer parameter within `range`, or `default` when absent.
    pub fn int(
        &self,
        name: &str,
        range: RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "{name}={raw:?} must be a whole number from {} to {}",
                range.start(),
                range.end()
            ))),
        }
    }

    /// `limit=N`: the most events one poll answer carries (1–1000, default 100).
    pub fn limit(&self) -> Result<usize, ApiError> {
        Ok(self.int("limit", 1..=1000, 100)? as usize)
    }
}

/// Rooms one subscription may follow at once.
pub const MAX_ROOMS: usize = 16;

/// The longest `rooms=` value accepted: 16 names of 24 four-byte characters with their
/// commas fit (1552 bytes), with room for some spaces and repeats. Checked before any
/// splitting, so a huge list costs one length comparison.
pub const MAX_ROOMS_PARAM_BYTES: usize = 2048;

/// Parses a `rooms=` value: comma-separated room names, blanks around them trimmed,
/// repeats folded, at most [`MAX_ROOMS`] distinct. Work is linear in the input: the raw
/// length is bounded first, and the scan stops at the 17th distinct room, so de-duplication
/// only ever compares against at most 16 names.
pub fn parse_rooms(raw: &str) -> Result<Vec<Arc<str>>, ApiError> {
    let too_many =
        || ApiError::Invalid("invalid_room", format!("at most {MAX_ROOMS} rooms at once"));
    if raw.len() > MAX_ROOMS_PARAM_BYTES {
        return Err(ApiError::Invalid(
            "invalid_room",
            format!("rooms= is longer than {MAX_ROOMS_PARAM_BYTES} bytes"),
        ));
    }
    let mut rooms: Vec<Arc<str>> = Vec::with_capacity(MAX_ROOMS);
    for name in raw.split(',') {
        let name = name.trim();
        if rooms.iter().any(|room| &**room == name) {
            continue;
        }
        if rooms.len() == MAX_ROOMS {
            return Err(too_many());
        }
        rooms.push(parse_room(name)?);
    }
    Ok(rooms)
}

/// A cursor is an event id: a non-negative integer.
pub fn parse_cursor(source: &str, raw: &str) -> Result<u64, ApiError> {
    raw.trim().parse::<u64>().map_err(|_| {
        ApiError::BadCursor(format!(
            "{source} {raw:?} is not an event id (a non-negative integer)"
        ))
    })
}

/// The events one answer holds at most, in bytes of their JSON (a short or long poll, a page
/// of history): events are added until the answer reaches it, so it holds at most one
/// event more. What an answer the client does not read can make the server hold; the
/// answer's cursor says where to go on.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// `HEAD[e1,e2,…]TAIL`: a JSON array of events from their shared JSON, never re-serialized.
pub fn events_json(events: &[SharedEvent], head: &str, tail: &str) -> Bytes {
    let size = events.iter().map(|e| e.json.len() + 1).sum::<usize>() + head.len() + tail.len() + 2;
    let mut body = BytesMut::with_capacity(size);
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(b"[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(b",");
        }
        body.extend_from_slice(&event.json);
    }
    body.extend_from_slice(b"]");
    body.extend_from_slice(tail.as_bytes());
    body.freeze()
}

/// A response body that holds its request's slot of the client's requests in flight
/// ([`crate::net::addresses::Addresses::request`]) until the body has been handed on in full, or dropped.
pub struct InFlight {
    body: axum::body::Body,
    slot: Option<crate::net::addresses::AddressRequest>,
}

impl InFlight {
    pub fn new(body: axum::body::Body, slot: crate::net::addresses::AddressRequest) -> InFlight {
        InFlight {
            body,
            slot: Some(slot),
        }
    }
}

impl http_body::Body for InFlight {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.body).poll_frame(cx);
        if let std::task::Poll::Ready(None | Some(Err(_))) = polled {
            this.slot = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Who the request is from: the TCP peer, or the client a trusted proxy forwarded
/// (`--trust-proxy`, see [`crate::net::forwarded`]). Decided once per request by the router's
/// outermost layer, which puts it in the request's extensions; handlers take it from there,
/// so the budgets, the logs and the wire view all use the same address.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Client);

impl ClientAddr {
    pub fn ip(&self) -> std::net::IpAddr {
        self.0.ip
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no client address resolved")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_percent_decoded_and_a_repeated_name_means_its_last_value() {
        let p = Params::parse("after=5&rooms=a%2Cb+c&after=7&empty=").unwrap();
        assert_eq!(p.get("after"), Some("7"));
        assert_eq!(p.cursor().unwrap(), Some(7));
        assert_eq!(p.get("rooms"), Some("a,b c"));
        assert_eq!(p.get("empty"), Some(""));
        assert_eq!(p.get("missing"), None);
        // Invalid UTF-8 is decoded lossily, never an error.
        assert_eq!(Params::parse("x=%FF").unwrap().get("x"), Some("\u{FFFD}"));
    }
}
