//! One error type for the HTTP edge. Every error leaves the server as
//! `{"error":{"code":"…","message":"…"}}` with its status; internals of a 5xx are logged,
//! never sent.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("unknown feed {0:?}: the feeds are clock")]
    UnknownFeed(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    BadCursor(String),
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("this URL speaks WebSocket: {0}")]
    UpgradeRequired(String),
    #[error("request origin {0:?} is not allowed")]
    ForbiddenOrigin(String),
    #[error("the server is at its limit of {0} connections; try again later")]
    Overloaded(u64),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::UnknownFeed(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::BadCursor(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            ApiError::ForbiddenOrigin(_) => StatusCode::FORBIDDEN,
            ApiError::Overloaded(_) | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable name of the error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "not_found",
            ApiError::UnknownFeed(_) => "unknown_feed",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::BadCursor(_) => "bad_cursor",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::UpgradeRequired(_) => "upgrade_required",
            ApiError::ForbiddenOrigin(_) => "forbidden_origin",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Internal(_) => "internal",
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
        if let ApiError::Internal(err) = &self {
            tracing::error!(error = ?err, "internal error");
        }
        (
            self.status(),
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            self.body(),
        )
            .into_response()
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
}
