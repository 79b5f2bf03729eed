//! One error type for the HTTP edge. Every error leaves the server as
//! `{"error":{"code":"…","message":"…"}}` with its status; internals of a 5xx are logged,
//! never sent. The layers below have errors of their own ([`ChatError`], the canvas's
//! `Refused`, the parsers' errors): each is mapped to a status and a code here or by one
//! `From` impl, and keeps the message its layer wrote.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::chat::ChatError;
use crate::chat::error::too_many;
use crate::feed::draw::{Invalid, Refused};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("unknown feed {0:?}: the feeds are {feeds}", feeds = feed_names())]
    UnknownFeed(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    BadCursor(String),
    /// A field that breaks a rule; the code names the rule (`invalid_nick`, `invalid_text`…).
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("the request body is not valid JSON for this request: {0}")]
    BadJson(String),
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// A chat operation refused: the chat wrote the message, [`ApiError::status`] and
    /// [`ApiError::code`] map it. Built by `From<ChatError>`, which gives the kinds the edge
    /// has its own variant for (`Invalid`, `BadCommand`, `Internal`) to those.
    #[error(transparent)]
    Chat(ChatError),
    /// One of the edge's own budgets ran out: `what` names it ("logins from this address",
    /// "strokes from this address"). The chat's budgets are [`ChatError::RateLimited`]; both
    /// say it in [`too_many`]'s words.
    #[error("{}", too_many(.what, *.retry_after))]
    RateLimited {
        what: &'static str,
        retry_after: u64,
    },
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("this URL speaks WebSocket: {0}")]
    UpgradeRequired(String),
    #[error(
        "this server does not answer to the host {0:?}; to reach it under that name, start it with --public-url http://NAME:PORT (or https://NAME behind a proxy)"
    )]
    UnknownHost(String),
    #[error("request origin {0:?} is not allowed")]
    ForbiddenOrigin(String),
    /// An operator endpoint, asked by another machine without the operator's token
    /// (`crate::operator`); the message says how to get in.
    #[error("{0}")]
    OperatorOnly(String),
    #[error("the server is at its limit of {0} connections; try again later")]
    Overloaded(u64),
    #[error("this address already holds {0} connections, its share; close some and retry")]
    PeerOverloaded(u64),
    #[error(
        "this address already has {0} requests in flight, its share (--max-requests-per-peer); let some finish and retry"
    )]
    TooManyRequests(u64),
    #[error("the {0} transport is refused by this server (--refuse); fall back to another")]
    TransportRefused(&'static str),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
    #[error("the server is shutting down: it takes no new clients while its streams end")]
    ShuttingDown,
}

impl From<ChatError> for ApiError {
    fn from(err: ChatError) -> ApiError {
        match err {
            ChatError::Invalid(code, message) => ApiError::Invalid(code, message),
            // Fields that do not fit together are a body that is not this request's JSON.
            ChatError::BadCommand(message) => ApiError::BadJson(message),
            // Logged by `into_response` with the cause; the client reads `internal error`.
            ChatError::Internal(err) => ApiError::Internal(err),
            err => ApiError::Chat(err),
        }
    }
}

/// The canvas's refusals: a bad stroke is `400`, the server-wide budget `429`.
impl From<Invalid> for ApiError {
    fn from(err: Invalid) -> ApiError {
        ApiError::Invalid(err.code, err.message)
    }
}

impl From<Refused> for ApiError {
    fn from(err: Refused) -> ApiError {
        match err {
            Refused::Invalid(err) => err.into(),
            Refused::Busy(_, retry_after) => ApiError::RateLimited {
                what: "strokes on this server (--draw-rate-total)",
                retry_after,
            },
        }
    }
}

/// `clock, chat, draw`: the feeds, for the message of [`ApiError::UnknownFeed`].
fn feed_names() -> String {
    crate::names::FeedName::ALL.map(|f| f.as_str()).join(", ")
}

impl ApiError {
    /// A request that carries no live session: the chat's [`ChatError::SignedOut`], which
    /// the extractors and the WebSocket answer without asking the chat.
    pub fn signed_out() -> ApiError {
        ApiError::Chat(ChatError::SignedOut)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::UnknownFeed(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_)
            | ApiError::BadCursor(_)
            | ApiError::Invalid(..)
            | ApiError::BadJson(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Chat(err) => match err {
                ChatError::Invalid(..) | ChatError::BadCommand(_) => StatusCode::BAD_REQUEST,
                ChatError::SignedOut => StatusCode::UNAUTHORIZED,
                ChatError::NickTaken(_) => StatusCode::CONFLICT,
                ChatError::UnknownUser(_) => StatusCode::NOT_FOUND,
                ChatError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                ChatError::TooManySessions(_) | ChatError::Unavailable { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ChatError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            ApiError::ForbiddenOrigin(_) | ApiError::OperatorOnly(_) => StatusCode::FORBIDDEN,
            ApiError::UnknownHost(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Overloaded(_)
            | ApiError::PeerOverloaded(_)
            | ApiError::TooManyRequests(_)
            | ApiError::TransportRefused(_)
            | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Every code a client can get: [`ApiError::code`]'s, the rule codes of
    /// [`ApiError::Invalid`] and the chat's and the canvas's refusals, and those only a
    /// WebSocket `error` event carries (`bad_frame`, `unknown_type`, `read_only`). The pages
    /// get this list as `ERROR_CODES` (`src/facts.rs`); `tests/facts.rs` checks docs/API.md
    /// names each one.
    pub const CODES: [&'static str; 34] = [
        "not_found",
        "unknown_feed",
        "bad_request",
        "bad_cursor",
        "bad_json",
        "invalid_nick",
        "invalid_room",
        "invalid_text",
        "invalid_tag",
        "invalid_stroke",
        "invalid_ticket",
        "invalid_datagrams",
        "too_large",
        "body_timeout",
        "unauthorized",
        "nick_taken",
        "unknown_user",
        "rate_limited",
        "method_not_allowed",
        "upgrade_required",
        "forbidden_origin",
        "operator_only",
        "unknown_host",
        "overloaded",
        "too_many_connections",
        "too_many_requests",
        "too_many_sessions",
        "transport_refused",
        "internal",
        "shutting_down",
        "store_unavailable",
        "bad_frame",
        "unknown_type",
        "read_only",
    ];

    /// The stable, machine-readable name of the error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "not_found",
            ApiError::UnknownFeed(_) => "unknown_feed",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::BadCursor(_) => "bad_cursor",
            ApiError::Invalid(code, _) => code,
            ApiError::BadJson(_) => "bad_json",
            ApiError::TooLarge(_) => "too_large",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::Chat(err) => match err {
                ChatError::Invalid(code, _) => code,
                ChatError::BadCommand(_) => "bad_json",
                ChatError::SignedOut => "unauthorized",
                ChatError::NickTaken(_) => "nick_taken",
                ChatError::UnknownUser(_) => "unknown_user",
                ChatError::RateLimited { .. } => "rate_limited",
                ChatError::TooManySessions(_) => "too_many_sessions",
                ChatError::Unavailable { .. } => "store_unavailable",
                ChatError::Internal(_) => "internal",
            },
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::UpgradeRequired(_) => "upgrade_required",
            ApiError::ForbiddenOrigin(_) => "forbidden_origin",
            ApiError::OperatorOnly(_) => "operator_only",
            ApiError::UnknownHost(_) => "unknown_host",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::PeerOverloaded(_) => "too_many_connections",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::TransportRefused(_) => "transport_refused",
            ApiError::Internal(_) => "internal",
            ApiError::ShuttingDown => "shutting_down",
        }
    }

    /// The JSON body, also used by the connection limiter, which answers before hyper.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: String,
        }
        serde_json::to_string(&Body {
            error: Inner {
                code: self.code(),
                message: self.to_string(),
            },
        })
        .unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(err) | ApiError::Chat(ChatError::Internal(err)) = &self {
            tracing::error!(error = ?err, "internal error");
        }
        let mut response = (
            self.status(),
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            self.body(),
        )
            .into_response();
        if let ApiError::RateLimited { retry_after, .. }
        | ApiError::Chat(
            ChatError::RateLimited { retry_after, .. } | ChatError::Unavailable { retry_after, .. },
        ) = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after.into());
        }
        if let ApiError::TooManyRequests(_) = self {
            response.headers_mut().insert(header::RETRY_AFTER, 1.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_code_and_message() {
        let body: serde_json::Value =
            serde_json::from_str(&ApiError::UnknownFeed("news".into()).body()).unwrap();
        assert_eq!(body["error"]["code"], "unknown_feed");
        assert!(body["error"]["message"].as_str().unwrap().contains("news"));
    }

    #[test]
    fn the_chats_refusals_keep_their_words_and_its_failures_stay_inside() {
        let body = |e: ApiError| -> serde_json::Value { serde_json::from_str(&e.body()).unwrap() };
        let internal = body(ChatError::Internal(anyhow::anyhow!("disk on fire")).into());
        assert_eq!(internal["error"]["code"], "internal");
        assert_eq!(internal["error"]["message"], "internal error");
        let bad = body(ChatError::BadCommand("give one".into()).into());
        assert_eq!(bad["error"]["code"], "bad_json");
        assert_eq!(
            bad["error"]["message"],
            "the request body is not valid JSON for this request: give one"
        );
        let chat = ApiError::from(ChatError::RateLimited {
            what: "messages",
            retry_after: 2,
        });
        let edge = ApiError::RateLimited {
            what: "messages",
            retry_after: 2,
        };
        assert_eq!(chat.body(), edge.body());
        assert_eq!(chat.status(), edge.status());
        assert_eq!(
            ApiError::signed_out().status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            ApiError::signed_out()
        );
    }

    #[test]
    fn every_variants_code_is_in_codes() {
        let s = String::new;
        let all = [
            ApiError::NotFound(s()),
            ApiError::UnknownFeed(s()),
            ApiError::BadRequest(s()),
            ApiError::BadCursor(s()),
            ApiError::BadJson(s()),
            ApiError::BodyTimeout,
            ApiError::TooLarge(0),
            ApiError::RateLimited {
                what: "",
                retry_after: 1,
            },
            ApiError::MethodNotAllowed(s()),
            ApiError::UpgradeRequired(s()),
            ApiError::UnknownHost(s()),
            ApiError::ForbiddenOrigin(s()),
            ApiError::OperatorOnly(s()),
            ApiError::Overloaded(0),
            ApiError::PeerOverloaded(0),
            ApiError::TooManyRequests(0),
            ApiError::TransportRefused(""),
            ApiError::Internal(anyhow::anyhow!("x")),
            ApiError::ShuttingDown,
        ]
        .into_iter()
        .chain(
            [
                ChatError::Invalid("invalid_nick", s()),
                ChatError::SignedOut,
                ChatError::NickTaken(s()),
                ChatError::UnknownUser(s()),
                ChatError::RateLimited {
                    what: "",
                    retry_after: 1,
                },
                ChatError::TooManySessions(0),
                ChatError::BadCommand(s()),
                ChatError::Unavailable {
                    store: "Redis",
                    retry_after: 1,
                },
                ChatError::Internal(anyhow::anyhow!("x")),
            ]
            .map(ApiError::Chat),
        );
        for e in all {
            assert!(
                ApiError::CODES.contains(&e.code()),
                "{} is not in CODES",
                e.code()
            );
        }
    }
}
