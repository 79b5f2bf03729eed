//! Short polling: `GET /poll/FEED?after=ID` answers at once with what is there now. The
//! client decides how often to ask; every ask costs a full request, empty or not.

use axum::extract::State;
use axum::response::Response;

use super::{FeedPath, Params, Transport, batch_response};
use crate::app::AppState;
use crate::error::ApiError;

pub async fn handler(
    State(app): State<AppState>,
    FeedPath(feed): FeedPath,
    params: Params,
) -> Result<Response, ApiError> {
    app.stats().transport(Transport::Poll).request();
    let cursor = params.cursor()?;
    let limit = params.limit()?;
    let (events, next) = app.feed(feed).snapshot(cursor, limit);
    Ok(batch_response(&app, Transport::Poll, &events, next))
}
