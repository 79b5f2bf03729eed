//! The batch core of the polling transports (short and long polling): read what is there,
//! answer it as one JSON object with the cursor to ask from next.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use crate::event::SharedEvent;
use crate::feed::Subscription;
use crate::http::{KillGuard, KillSwitch, MAX_ANSWER_BYTES, events_json};
use crate::names::Transport;
use crate::state::AppState;

/// Adds to `events` what is available now, until the answer holds `limit` events or
/// [`MAX_ANSWER_BYTES`] of them (so at most one event past that). Both bound what is *read*
/// too: at most one replay page of what is left comes from the store, so an old cursor with
/// `limit=1` costs one row, not the whole range (the answer's `next` says where to go on).
pub async fn drain(sub: &mut Subscription, events: &mut Vec<SharedEvent>, limit: usize) {
    let mut bytes = answer_bytes(events);
    if events.len() >= limit || bytes >= MAX_ANSWER_BYTES {
        return;
    }
    sub.read_at_most(limit - events.len(), MAX_ANSWER_BYTES - bytes);
    sub.ready().await;
    while events.len() < limit && bytes < MAX_ANSWER_BYTES {
        match sub.try_next() {
            Some(event) => {
                bytes += event.json.len() + 1;
                events.push(event);
            }
            None => break,
        }
    }
}

/// The bytes `events` take in an answer (each event's JSON and its comma).
fn answer_bytes(events: &[SharedEvent]) -> usize {
    events.iter().map(|e| e.json.len() + 1).sum()
}

/// `{"events":[…],"next":ID}`, the answer of both polling transports.
pub fn batch_response(
    app: &AppState,
    transport: Transport,
    events: &[SharedEvent],
    next: u64,
) -> Response {
    let body = events_json(events, "{\"events\":", &format!(",\"next\":{next}}}"));
    app.stats()
        .transport(transport)
        .sent(body.len(), events.len());
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// A tagged polling request's hold on its kill switch, taken before the switch goes into
/// the subscription: the request retires it just before answering.
pub fn kill_guard(kill: &Option<KillSwitch>) -> Option<Arc<KillGuard>> {
    kill.as_ref().map(|k| k.guard.clone())
}

/// The answer, unless a kill took the request first: then the connection is broken off
/// (head, then no body), which is what the kill counted. Deciding here, in one atomic step
/// against the kill, is what keeps the count exact: a kill that lands while the events are
/// being gathered breaks the request even though it has events to give.
///
/// The head goes out before the break. A connection closed before any byte of its answer is
/// what a browser takes for a stale keep-alive connection: it sends the GET again by itself
/// (Chromium, Firefox and WebKitGTK all do, tests/browser/timeline.rs), so the page would see
/// its request answered, late, and never the break. After the head nobody may resend it.
pub fn answer_unless_killed(
    guard: Option<Arc<KillGuard>>,
    answer: impl FnOnce() -> Response,
) -> Response {
    if guard.is_none_or(|g| g.retire()) {
        return answer();
    }
    let broken = futures_util::stream::once(async {
        // Pending once: hyper writes out the head it holds before it polls the body again.
        tokio::task::yield_now().await;
        Err::<bytes::Bytes, _>(super::killed())
    });
    Response::new(axum::body::Body::from_stream(broken))
}
