//! The canvas's HTTP API: `POST /api/draw {"strokes":[…]}` publishes strokes to the draw
//! feed. Anonymous on purpose: a stroke carries no name, so there is nothing a session would
//! add but a login round trip; what bounds a sender is its address's budget
//! (`--draw-rate` strokes a second, [`crate::net::addresses::Budget::Draw`]), charged per stroke
//! after the batch is checked and before anything is published
//! ([`AppState::send_strokes`], shared with the WebSocket `draw` frame).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, Version, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::feed::draw::Batch;
use crate::http::{ClientAddr, JsonBody};
use crate::state::AppState;

/// `POST /api/draw {"strokes":[{"color":"#rrggbb","width":3,"points":[x0,y0,…]},…]}` →
/// `201 {"ids":[…],"request":{"head":H,"body":B}}`; the strokes reach every draw subscriber,
/// the sender's too. `request` is what this upload cost upstream as the server received it
/// (see [`head_bytes`]), so a page can show the headers its browser adds but hides.
pub async fn upload(
    State(app): State<AppState>,
    client: ClientAddr,
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    JsonBody(batch): JsonBody<Batch>,
) -> Result<Response, ApiError> {
    let head = head_bytes(&method, &uri, version, &headers);
    let body = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let ids = app.send_strokes(client.ip(), batch)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "ids": ids, "request": { "head": head, "body": body } })),
    )
        .into_response())
}

/// The size of an HTTP/1.1 request head as it came: `METHOD TARGET VERSION` CRLF, then
/// `name: value` CRLF per header, then CRLF. Rebuilt from the parsed head, which keeps every
/// header in order with its value's bytes; it assumes one space after each colon (what
/// browsers and curl send) and counts names at their length (case does not change it).
pub fn head_bytes(method: &Method, uri: &Uri, version: Version, headers: &HeaderMap) -> usize {
    let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let version = match version {
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let line = method.as_str().len() + 1 + target.len() + 1 + version.len() + 2;
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + fields + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_is_counted_as_sent() {
        let raw = "POST /api/draw HTTP/1.1\r\nHost: 127.0.0.1:3000\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n";
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:3000".parse().unwrap());
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        headers.insert(header::CONTENT_LENGTH, "12".parse().unwrap());
        let uri: Uri = "/api/draw".parse().unwrap();
        assert_eq!(
            head_bytes(&Method::POST, &uri, Version::HTTP_11, &headers),
            raw.len()
        );
    }
}
