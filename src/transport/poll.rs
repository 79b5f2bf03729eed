//! Short polling: `GET /poll/FEED?after=ID` answers at once with what is there now. The
//! client decides how often to ask; every ask costs a full request, empty or not.

use axum::extract::State;
use axum::response::Response;

use super::{answer_unless_killed, batch_response, drain, kill_guard, open};
use crate::error::ApiError;
use crate::http::{FeedPath, Subscribing};
use crate::names::Transport;
use crate::state::AppState;

pub async fn handler(
    State(app): State<AppState>,
    FeedPath(feed): FeedPath,
    Subscribing {
        params,
        headers,
        kill,
    }: Subscribing,
) -> Result<Response, ApiError> {
    app.stats().transport(Transport::Poll).request();
    let limit = params.limit()?;
    let guard = kill_guard(&kill);
    let mut sub = open(
        &app,
        Transport::Poll,
        feed,
        params.cursor()?,
        &params,
        &headers,
        kill,
    )
    .await?;
    let mut events = Vec::new();
    drain(&mut sub, &mut events, limit).await;
    Ok(answer_unless_killed(guard, || {
        batch_response(&app, Transport::Poll, &events, sub.position())
    }))
}
