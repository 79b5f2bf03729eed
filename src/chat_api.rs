//! The chat's HTTP API: sessions (`/api/session`), sending (`POST /api/chat/messages`), and
//! the read-only views (`rooms`, `users` from the presence index, `history`). Bodies are JSON
//! of at most [`crate::http::MAX_BODY_BYTES`]; every failure is an [`ApiError`].

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::chat::command::{DEFAULT_ROOM, SendBody};
use crate::chat::{Chat, Message, Session, Sessions, parse_room};
use crate::error::ApiError;
use crate::http::{
    ClientAddr, JsonBody, MAX_ANSWER_BYTES, Params, SessionId, SignedIn, events_json, parse_cursor,
    session_of,
};
use crate::net::addresses::Budget;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct NickBody {
    nick: String,
}

fn with_cookie(status: StatusCode, body: serde_json::Value, cookie: String) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /api/session {"nick"}` → `201`, with the session cookie. Every attempt with a
/// well-formed body is charged to the caller's address (`--login-rate` per minute, `429`
/// past it), before any work: a refused nick costs as much to check as a granted one. Live
/// sessions are capped at `--max-sessions` (`503 too_many_sessions`).
pub async fn login(
    State(app): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NickBody>,
) -> Result<Response, ApiError> {
    // In a cluster one deadline covers all of it: the bucket, the old session, the new one.
    let (session, token) = app
        .chat()
        .bounded(sign_in(&app, &client, &headers, &body.nick))
        .await?;
    Ok(with_cookie(
        StatusCode::CREATED,
        json!({ "nick": session.nick }),
        Sessions::cookie(&token),
    ))
}

async fn sign_in(
    app: &AppState,
    client: &ClientAddr,
    headers: &HeaderMap,
    nick: &str,
) -> Result<(Session, String), ApiError> {
    // One node: the address's bucket here. Many: one bucket per address over every node, in
    // the engine they share (a client spreading its logins over the nodes gets the same budget).
    let name = format!("login:{}", app.addresses().key(client.ip()));
    let shared = app
        .chat()
        .shared_token(
            &name,
            app.config().login_rate,
            std::time::Duration::from_secs(60),
        )
        .await;
    let refused = match shared {
        None => app.addresses().spend(client.ip(), Budget::Login).err(),
        Some(taken) => taken?.map(|wait| wait.as_secs_f64().ceil().max(1.0) as u64),
    };
    if let Some(retry_after) = refused {
        return Err(ApiError::RateLimited {
            what: "logins from this address",
            retry_after,
        });
    }
    // A browser that signs in again leaves its old session first.
    if let Some(old) = session_of(app.chat(), headers).await? {
        app.chat().logout(old.id).await?;
    }
    Ok(app.chat().login(nick, app.config().max_sessions).await?)
}

/// `GET /api/session` → `{"nick"}` of the caller's session, or `401`.
pub async fn whoami(SignedIn(session): SignedIn) -> Result<Response, ApiError> {
    Ok(Json(json!({ "nick": session.nick })).into_response())
}

/// `PATCH /api/session {"nick"}` → renames, emitting `rename`.
pub async fn rename(
    State(chat): State<Chat>,
    SessionId(id): SessionId,
    JsonBody(body): JsonBody<NickBody>,
) -> Result<Response, ApiError> {
    let nick = chat.rename(id, &body.nick).await?;
    Ok(Json(json!({ "nick": nick })).into_response())
}

/// `DELETE /api/session` → `204`; `leave` in its rooms, its streams and sockets close.
pub async fn logout(
    State(chat): State<Chat>,
    SignedIn(session): SignedIn,
) -> Result<Response, ApiError> {
    chat.logout(session.id).await?;
    Ok(with_cookie(
        StatusCode::NO_CONTENT,
        json!(null),
        Sessions::clear_cookie(),
    ))
}

/// `POST /api/chat/messages {"room","text"}` or `{"to","text"}` → `201 {"id"}`, stored first.
pub async fn send(
    State(chat): State<Chat>,
    SessionId(id): SessionId,
    JsonBody(body): JsonBody<SendBody>,
) -> Result<Response, ApiError> {
    let event = chat.send(id, Message::try_from(body)?).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": event.id }))).into_response())
}

/// `GET /api/chat/rooms` → `{"rooms":[{"room","online"}]}`.
pub async fn rooms(State(chat): State<Chat>) -> Result<Response, ApiError> {
    let rooms: Vec<_> = chat
        .online_rooms()
        .await?
        .into_iter()
        .map(|(room, online)| json!({ "room": room, "online": online }))
        .collect();
    Ok(Json(json!({ "rooms": rooms })).into_response())
}

/// `GET /api/chat/users?room=lobby` → `{"room","users":[nicks]}`.
pub async fn users(State(chat): State<Chat>, params: Params) -> Result<Response, ApiError> {
    let room = parse_room(params.get("room").unwrap_or(DEFAULT_ROOM))?;
    let users = chat.online_users(&room).await?;
    Ok(Json(json!({ "room": &*room, "users": users })).into_response())
}

/// `GET /api/chat/history?room=lobby&before=ID&limit=N` → `{"events":[…]}`, newest last.
pub async fn history(State(chat): State<Chat>, params: Params) -> Result<Response, ApiError> {
    let room = params.get("room").unwrap_or(DEFAULT_ROOM);
    let before = params
        .get("before")
        .map(|b| parse_cursor("before", b))
        .transpose()?;
    let limit = params.int("limit", 1..=crate::chat::MAX_HISTORY, 50)? as usize;
    let events = chat.history(room, before, limit).await?;
    // The newest first, up to one answer's bytes: older ones are one more page back, with
    // `before` = the oldest id of this one.
    let mut bytes = 0;
    let mut oldest = events.len();
    while oldest > 0 && bytes < MAX_ANSWER_BYTES {
        oldest -= 1;
        bytes += events[oldest].json.len() + 1;
    }
    let body = events_json(&events[oldest..], "{\"events\":", "}");
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}
