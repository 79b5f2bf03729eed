//! The demo pages and their CSS/JS, compiled into the binary so the server works from any
//! working directory. Pages get a Content-Security-Policy that allows nothing from another
//! origin and no inline script: the promise "pages load nothing from outside" is enforced
//! by the browser, not just kept by hand.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

pub struct Asset {
    /// Path relative to the repository root, e.g. `demos/sse.html`.
    pub path: &'static str,
    pub body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset { path: $path, body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path)) }),*]
    };
}

/// Every file under `demos/` and `static/` (a test checks that none is missing).
pub static ASSETS: &[Asset] = assets![
    "demos/index.html",
    "demos/poll.html",
    "demos/longpoll.html",
    "demos/iframe.html",
    "demos/sse.html",
    "demos/ws.html",
    "static/style.css",
    "static/demo.js",
    "static/clients.js",
    "static/panel.js",
    "static/chat.js",
    "static/favicon.svg",
];

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn serve(path: &str) -> Result<Response, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.path == path)
        .ok_or_else(|| ApiError::NotFound(format!("no page or file at /{path}")))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(path)),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        asset.body,
    )
        .into_response())
}

pub async fn index() -> Result<Response, ApiError> {
    serve("demos/index.html")
}

pub async fn demo(Path(file): Path<String>) -> Result<Response, ApiError> {
    serve(&format!("demos/{file}"))
}

pub async fn static_file(Path(file): Path<String>) -> Result<Response, ApiError> {
    serve(&format!("static/{file}"))
}

pub async fn favicon() -> Result<Response, ApiError> {
    serve("static/favicon.svg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_under_demos_and_static_is_embedded() {
        let root = env!("CARGO_MANIFEST_DIR");
        for dir in ["demos", "static"] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                let path = format!("{dir}/{name}");
                assert!(
                    ASSETS.iter().any(|a| a.path == path),
                    "{path} is not in ASSETS"
                );
            }
        }
    }
}
