//! `GET /api/debug/wire?tag=NAME`: a tag's recorded exchanges as JSON, newest first.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::recording::State_;
use super::{Diagnostics, TOTAL_BYTES, parse_tag, tag_in};
use crate::error::ApiError;
use crate::operator::Caller;

#[derive(Serialize)]
struct WireReport {
    tag: String,
    exchanges: Vec<ExchangeReport>,
    /// What the whole record (every tag) holds now, and its budget.
    recorded_bytes: usize,
    budget_bytes: usize,
}

#[derive(Serialize)]
struct ExchangeReport {
    seq: u64,
    started: u64,
    duration_ms: f64,
    state: State_,
    request: Message,
    /// Who sent the request, as the budgets see it (`--trust-proxy`).
    client: Option<ClientReport>,
    /// `None` while the handler has not answered yet (a held long poll).
    response: Option<Message>,
    body: BodyReport,
}

#[derive(Serialize)]
struct ClientReport {
    /// The client's address: the TCP peer's, or the one a trusted proxy forwarded.
    address: String,
    /// The TCP peer, `IP:PORT` (the proxy, when `forwarded`).
    peer: String,
    scheme: &'static str,
    forwarded: bool,
}

#[derive(Serialize)]
struct Message {
    line: String,
    headers: Vec<(String, String)>,
}

#[derive(Serialize)]
struct BodyReport {
    bytes: u64,
    head: String,
    head_bytes: usize,
}

/// `GET /api/debug/wire?tag=NAME`: the tag's recorded exchanges, newest first; to a caller
/// that is not the operator, only those whose client address is its own.
pub async fn wire(
    State(diag): State<Arc<Diagnostics>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let raw = tag_in(query.as_deref())?
        .ok_or_else(|| ApiError::Invalid("invalid_tag", "tag= is required".into()))?;
    let tag = parse_tag(&raw)?;
    let exchanges = diag
        .exchanges(tag)
        .iter()
        .filter(|x| caller.sees(x.owner))
        .map(|x| {
            let r = x.response();
            ExchangeReport {
                seq: x.seq,
                started: x.started,
                duration_ms: (r
                    .ended
                    .unwrap_or_else(Instant::now)
                    .duration_since(x.since)
                    .as_secs_f64()
                    * 1000.0
                    * 10.0)
                    .round()
                    / 10.0,
                state: r.state,
                request: Message {
                    line: x.request_line.clone(),
                    headers: x.request_headers.clone(),
                },
                client: x.client.map(|c| ClientReport {
                    address: c.ip.to_string(),
                    peer: c.peer.to_string(),
                    scheme: c.scheme.as_str(),
                    forwarded: c.forwarded(),
                }),
                response: (!r.line.is_empty()).then(|| Message {
                    line: r.line.clone(),
                    headers: r.headers.clone(),
                }),
                body: BodyReport {
                    bytes: r.bytes,
                    head: String::from_utf8_lossy(&r.head).into_owned(),
                    head_bytes: r.head.len(),
                },
            }
        })
        .collect();
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(WireReport {
            tag: tag.to_string(),
            exchanges,
            recorded_bytes: diag.recorded_bytes(),
            budget_bytes: TOTAL_BYTES,
        }),
    )
        .into_response())
}
