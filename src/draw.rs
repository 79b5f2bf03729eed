//! The canvas's HTTP API: `POST /api/draw {"strokes":[…]}` publishes strokes to the draw
//! feed. Anonymous on purpose: a stroke carries no name, so there is nothing a session would
//! add but a login round trip; what bounds a sender is its address's budget
//! (`--draw-rate` strokes a second, [`crate::peers::Budget::Draw`]), charged per stroke
//! after the batch is checked and before anything is published.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::JsonBody;
use crate::app::AppState;
use crate::error::ApiError;
use crate::feed::draw::{Batch, Invalid};
use crate::peers::Budget;

impl From<Invalid> for ApiError {
    fn from(err: Invalid) -> ApiError {
        ApiError::Invalid(err.code, err.message)
    }
}

/// Checks `batch`, charges its strokes to `peer`, publishes it: the one path of both the
/// HTTP endpoint and the WebSocket `draw` frame.
pub fn send(app: &AppState, peer: std::net::IpAddr, batch: Batch) -> Result<Vec<u64>, ApiError> {
    batch.check()?;
    // A checked batch holds 1..=16 strokes, so the cast is exact.
    app.peers()
        .spend_many(peer, Budget::Draw, batch.strokes.len() as u32)
        .map_err(|retry_after| ApiError::RateLimited {
            what: "strokes from this address",
            retry_after,
        })?;
    Ok(app.draw().publish(batch)?)
}

/// `POST /api/draw {"strokes":[{"color":"#rrggbb","width":3,"points":[x0,y0,…]},…]}` →
/// `201 {"ids":[…]}`; the strokes reach every draw subscriber, the sender's too.
pub async fn upload(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(batch): JsonBody<Batch>,
) -> Result<Response, ApiError> {
    let ids = send(&app, peer.ip(), batch)?;
    Ok((StatusCode::CREATED, Json(json!({ "ids": ids }))).into_response())
}
