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
//! query that repeats `tag=` is refused rather than guessed at. A tag travels in URLs, so on
//! a network it can be read (over plain HTTP, or off a projected "show the wire" view): to a
//! caller that is not the operator (`crate::operator`), a tag reads and kills only the
//! requests that came from the caller's own address. The record itself keeps the
//! values of [`shows_value`]'s allowlist of headers only (those the pages explain); any other
//! header is kept as its name and length, so credentials (`Authorization`, API keys,
//! cookies) never reach it. Request bodies are never read.
//!
//! Everything is bounded by one byte budget: every string kept is charged to its exchange,
//! which may hold at most [`EXCHANGE_BYTES`] (the request's part, and [`RESPONSE_BYTES`]
//! reserved for the response and body head), and all exchanges together at most
//! [`TOTAL_BYTES`]: past it the oldest exchange, whatever its tag, is forgotten first. Counts
//! bound the rest: [`MAX_EXCHANGES`] per tag and [`MAX_TAGS`] tags (the oldest forgotten).
//!
//! The parts: `registry` (tags, their exchanges and kill switches, within the budgets),
//! `recording` (what one exchange keeps: the allowlisted head, the body's first bytes),
//! `report` (`GET /api/debug/wire`); this file has the tag rules and the two entry points,
//! the recorder middleware and `POST /api/debug/kill`.

mod recording;
mod registry;
mod report;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::error::ApiError;
use crate::http::{ClientAddr, JsonBody, KillSwitch};
use crate::operator::{Caller, Gate};
pub use recording::shows_value;
use recording::{Budget, Exchange, RecordingBody, State_, headers_of, request_line};
pub use registry::Diagnostics;
pub use report::wire;

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

impl Diagnostics {
    /// The kill switch of a session that is no HTTP request (WebTransport's, from the QUIC
    /// endpoint) whose `query` carries `tag=`: the rules of the recorder's tags, the client
    /// address `client`. Its exchange is not recorded (there is no HTTP head to show).
    pub fn kill_switch_in(
        &self,
        query: Option<&str>,
        client: std::net::IpAddr,
    ) -> Result<Option<KillSwitch>, ApiError> {
        let Some(raw) = tag_in(query)? else {
            return Ok(None);
        };
        let (token, guard) = self.kill_switch(parse_tag(&raw)?, Some(client));
        Ok(Some(KillSwitch { token, guard }))
    }
}

/// Middleware on the transport routes: records tagged requests, rejects malformed tags.
/// A tagged request also gets its tag's [`KillSwitch`] as a request extension, which the
/// transports hold for as long as they serve it (`POST /api/debug/kill`).
pub async fn record(
    State(diag): State<Arc<Diagnostics>>,
    State(gate): State<Arc<Gate>>,
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
    let client = req.extensions().get::<ClientAddr>().map(|c| c.0);
    let exchange = Arc::new(Exchange {
        seq: diag.next_seq(),
        started: crate::feed::clock::now_micros(),
        since: Instant::now(),
        cost: (EXCHANGE_BYTES - RESPONSE_BYTES - budget.left)
            + RESPONSE_BYTES
            + size_of::<Exchange>(),
        request_line,
        request_headers,
        client,
        owner: client.map(|c| gate.address(&c, req.headers())),
        response: Mutex::default(),
    });
    diag.record(&tag, exchange.clone());
    let (token, guard) = diag.kill_switch(&tag, exchange.owner);
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
/// connections; to a caller that is not the operator, only those from its own address.
pub async fn kill(
    State(diag): State<Arc<Diagnostics>>,
    caller: Caller,
    JsonBody(body): JsonBody<KillBody>,
) -> Result<Response, ApiError> {
    if body.repeated {
        return Err(repeated_tag());
    }
    let tag = parse_tag(&body.tag)?;
    let killed = diag.kill(tag, |client| caller.sees(client));
    // The tag is a capability: it is not written to the log.
    tracing::info!(killed, "killed tagged connections");
    Ok(Json(serde_json::json!({ "tag": tag, "killed": killed })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

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
