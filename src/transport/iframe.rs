//! The hidden iframe ("forever frame"): `GET /iframe/FEED` answers an HTML document that
//! never finishes loading; each event arrives as `<script>parent.pushpoll(EVENT)</script>`,
//! which the browser runs as soon as it is parsed. The oldest push technique there is: it
//! works on any browser, at the cost of a growing document and a spinning load indicator.

use std::sync::LazyLock;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;

use super::{Framing, get_stream};
use crate::error::ApiError;
use crate::event::Event;
use crate::http::{FeedPath, Subscribing};
use crate::names::Transport;
use crate::state::AppState;

/// The head is padded past 1 KiB because WebKitGTK still needs padding: it held a forever
/// frame's first script back after a 255-byte head and ran it after a 511-byte one, which fits
/// the 512 bytes libsoup's content sniffer waits for before it hands a response on. Firefox runs
/// the first script at once when the charset is declared (as here, in the header and a `<meta>`)
/// and waits for up to 1024 bytes only when none is; Chromium runs it after any head
/// (`tests/browser/claims.rs` measures each engine). The margin past 512 bytes covers a
/// document without a charset and the Comet-era reports of old WebKit holding ~1 KiB; it costs
/// ~1.1 KiB once per 256 KiB document.
pub const PRELUDE_MIN_BYTES: usize = 1024;

static PRELUDE: LazyLock<Bytes> = LazyLock::new(|| {
    let mut head = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>pushpoll iframe stream</title></head><body>\n\
         <!-- pushpoll: this document never finishes loading. Each event below arrives as a\n\
         script calling parent.pushpoll(event). The padding that follows is for browsers that hold\n\
         back a document's first bytes (WebKitGTK: 512 bytes) before they run its scripts.\n",
    );
    while head.len() < PRELUDE_MIN_BYTES + 64 {
        head.push_str("                                                               \n");
    }
    head.push_str("-->\n");
    Bytes::from(head)
});

static IFRAME: Framing = Framing {
    transport: Transport::Iframe,
    content_type: "text/html; charset=utf-8",
    prelude: || PRELUDE.clone(),
    heartbeat: crate::wire::iframe_heartbeat,
    frame: Event::iframe_chunk,
    max_bytes: Some(crate::wire::IFRAME_DOCUMENT_BYTES),
};

pub async fn handler(
    State(app): State<AppState>,
    FeedPath(feed): FeedPath,
    subscribing: Subscribing,
) -> Result<Response, ApiError> {
    get_stream(&app, &IFRAME, feed, subscribing).await
}
