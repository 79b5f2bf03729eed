//! Long polling: `GET /longpoll/FEED?after=ID&timeout=S` is held open until at least one
//! event after the cursor exists (answered at once if one already does), or for `S` seconds,
//! then answered like a short poll. One request per delivery, without the empty answers.

use axum::extract::State;
use axum::response::Response;

use super::{FeedPath, LONGPOLL_TIMEOUT_S, Params, Transport, batch_response, secs};
use crate::app::AppState;
use crate::error::ApiError;

pub async fn handler(
    State(app): State<AppState>,
    FeedPath(feed): FeedPath,
    params: Params,
) -> Result<Response, ApiError> {
    app.stats().transport(Transport::LongPoll).request();
    let cursor = params.cursor()?;
    let limit = params.limit()?;
    let hold = params.int("timeout", LONGPOLL_TIMEOUT_S, 25)?;
    let _open = app.stats().open(Transport::LongPoll);
    let mut sub = app.feed(feed).subscribe(cursor, app.shutdown_token());
    let mut events = Vec::new();
    // `next` returns None at shutdown, which answers the poll at once with what it has.
    if let Ok(Some(first)) = tokio::time::timeout(secs(hold), sub.next()).await {
        events.push(first);
        while events.len() < limit {
            match sub.try_next() {
                Some(event) => events.push(event),
                None => break,
            }
        }
    }
    Ok(batch_response(
        &app,
        Transport::LongPoll,
        &events,
        sub.position(),
    ))
}
