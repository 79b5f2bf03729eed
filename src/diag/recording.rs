//! What one exchange of a tagged request keeps: the request line and the allowlisted
//! headers within its byte budget, the response head, and the body's first bytes (counting
//! the rest) as the body goes out.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName};
use http_body::{Frame, SizeHint};
use serde::Serialize;

use super::{ENTRY_OVERHEAD, LINE_BYTES, SUMMARY_BYTES};

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
pub(super) fn not_shown(len: usize) -> String {
    format!("({len} bytes, not shown)")
}

/// What a part of one exchange may still keep. Every kept string is charged here.
pub(super) struct Budget {
    pub(super) left: usize,
}

impl Budget {
    pub(super) fn new(bytes: usize) -> Self {
        Budget { left: bytes }
    }

    /// Charges a kept string of `len` bytes, if it fits.
    pub(super) fn take(&mut self, len: usize) -> bool {
        let cost = len + ENTRY_OVERHEAD;
        if cost <= self.left {
            self.left -= cost;
            true
        } else {
            false
        }
    }

    /// Up to `max` bytes for a growing buffer (the body head); charged at once.
    pub(super) fn take_up_to(&mut self, max: usize) -> usize {
        let n = max.min(self.left);
        self.left -= n;
        n
    }
}

/// Records `headers` within `budget`: allowlisted values as they are, others as their
/// length; a header that does not fit at all is only counted, in one last
/// `(more headers)` entry.
pub(super) fn headers_of(headers: &HeaderMap, budget: &mut Budget) -> Vec<(String, String)> {
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
pub(super) fn request_line(req: &Request, budget: &mut Budget) -> String {
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

/// One recorded request and its response.
pub(super) struct Exchange {
    pub(super) seq: u64,
    pub(super) started: u64,
    pub(super) since: Instant,
    /// What this exchange is charged in the total: its request part as kept, the
    /// [`RESPONSE_BYTES`] reserved for its response, and the struct itself.
    pub(super) cost: usize,
    pub(super) request_line: String,
    pub(super) request_headers: Vec<(String, String)>,
    /// Who sent it: the TCP peer, or the client a trusted proxy forwarded (`--trust-proxy`).
    /// Fixed-size, so `size_of::<Exchange>()` in `cost` covers it.
    pub(super) client: Option<crate::net::forwarded::Client>,
    /// The address whose requests a caller that is not the operator may read and kill
    /// (`crate::operator::Gate::address`): `client`'s, or behind a proxy on this machine
    /// that nobody declared, the client it forwarded. Fixed-size too.
    pub(super) owner: Option<std::net::IpAddr>,
    pub(super) response: Mutex<ResponseRecord>,
}

#[derive(Default)]
pub(super) struct ResponseRecord {
    pub(super) line: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) head: Vec<u8>,
    /// How much of the body `head` may keep: what the response's budget has left.
    pub(super) head_room: usize,
    pub(super) bytes: u64,
    pub(super) state: State_,
    pub(super) ended: Option<Instant>,
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum State_ {
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
    pub(super) fn response(&self) -> MutexGuard<'_, ResponseRecord> {
        self.response.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn end(&self, state: State_) {
        let mut r = self.response();
        if r.state == State_::Open {
            r.state = state;
            r.ended = Some(Instant::now());
        }
    }
}

/// A response body that copies its first bytes and counts the rest into its exchange.
pub(super) struct RecordingBody {
    pub(super) inner: Body,
    pub(super) exchange: Arc<Exchange>,
    /// A body of known length is done when that much went out (hyper may not poll again).
    pub(super) expected: Option<u64>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::{EXCHANGE_BYTES, RESPONSE_BYTES};
    use axum::http::HeaderValue;

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
}
