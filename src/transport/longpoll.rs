//! Long polling: `GET /longpoll/FEED?after=ID&timeout=S` is held open until at least one
//! event after the cursor exists (answered at once if one already does), or for `S` seconds,
//! then answered like a short poll. One request per delivery, without the empty answers.

use std::ops::RangeInclusive;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;

use super::{answer_unless_killed, batch_response, drain, kill_guard, open};
use crate::error::ApiError;
use crate::http::{FeedPath, Subscribing};
use crate::names::Transport;
use crate::state::AppState;

/// Long-poll holds are whole seconds between these bounds.
const LONGPOLL_TIMEOUT_S: RangeInclusive<u64> = 1..=60;

/// How long a long poll is held when it names no `timeout=` (seconds).
pub const DEFAULT_HOLD_S: u64 = 25;

pub async fn handler(
    State(app): State<AppState>,
    FeedPath(feed): FeedPath,
    Subscribing {
        params,
        headers,
        kill,
    }: Subscribing,
) -> Result<Response, ApiError> {
    app.stats().transport(Transport::LongPoll).request();
    let limit = params.limit()?;
    let hold = params.int("timeout", LONGPOLL_TIMEOUT_S, DEFAULT_HOLD_S)?;
    let guard = kill_guard(&kill);
    let mut sub = open(
        &app,
        Transport::LongPoll,
        feed,
        params.cursor()?,
        &params,
        &headers,
        kill,
    )
    .await?;
    let _open = app.stats().open(Transport::LongPoll);
    let mut events = Vec::new();
    drain(&mut sub, &mut events, limit).await;
    // Nothing yet: wait. `next` returns None at shutdown, which answers at once, empty.
    if events.is_empty()
        && let Ok(Some(first)) = tokio::time::timeout(Duration::from_secs(hold), sub.next()).await
    {
        events.push(first);
        drain(&mut sub, &mut events, limit).await;
    }
    // Killed while held (`next` ended with `Ended::Killed`) or while answering: either
    // way the guard was taken, and the connection is broken off.
    Ok(answer_unless_killed(guard, || {
        batch_response(&app, Transport::LongPoll, &events, sub.position())
    }))
}
