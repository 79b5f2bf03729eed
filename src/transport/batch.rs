//! The batch core of the polling transports (short and long polling): read what is there,
//! answer it as one JSON object with the cursor to ask from next.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use crate::event::SharedEvent;
use crate::feed::Subscription;
use crate::http::{KillGuard, KillSwitch, events_json};
use crate::names::Transport;
use crate::state::AppState;

/// Up to `limit` events that are available now. `limit` bounds what is *read* too: at most
/// one replay page of at most `limit` events comes from the store, so an old cursor with
/// `limit=1` costs one row, not the whole range (the answer's `next` says where to go on).
pub async fn drain(sub: &mut Subscription, limit: usize) -> Vec<SharedEvent> {
    if limit == 0 {
        return Vec::new();
    }
    sub.read_at_most(limit);
    sub.ready().await;
    let mut events = Vec::new();
    while events.len() < limit {
        match sub.try_next() {
            Some(event) => events.push(event),
            None => break,
        }
    }
    events
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
pub fn answer_unless_killed(
    guard: Option<Arc<KillGuard>>,
    answer: impl FnOnce() -> Response,
) -> Response {
    if guard.is_none_or(|g| g.retire()) {
        return answer();
    }
    let broken = futures_util::stream::once(async { Err::<bytes::Bytes, _>(super::killed()) });
    Response::new(axum::body::Body::from_stream(broken))
}
