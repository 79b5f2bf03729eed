//! `fetch()` streaming: NDJSON with the same events as SSE, the heartbeat line, the chat's
//! subscription as a POST with a JSON body (resumed by the cursor in it), and that body held
//! to the bounds of every body.

use std::time::Duration;

use pushpoll::feed::{EventBody, WireEvent};
use pushpoll::http::MAX_BODY_BYTES;
use pushpoll::wire::{NDJSON_CONTENT_TYPE, is_heartbeat};
use serde_json::json;

use crate::support::{Streaming, spawn_app};

const WAIT: Duration = Duration::from_secs(3);

#[tokio::test]
async fn the_fetch_stream_is_ndjson_with_a_heartbeat_first_and_the_same_events_as_sse() {
    let app = spawn_app(&["--tick-ms", "100"]).await;
    let cursor = app.latest_tick().await;
    let mut sse =
        Streaming::open(app.http.get(app.url(&format!("/sse/clock?after={cursor}")))).await;
    let mut lines = Streaming::open(
        app.http
            .get(app.url(&format!("/fetch/clock?after={cursor}"))),
    )
    .await;
    assert_eq!(lines.status, 200);
    assert_eq!(lines.headers["content-type"], NDJSON_CONTENT_TYPE);
    assert_eq!(lines.headers["x-accel-buffering"], "no");
    assert_eq!(lines.headers["cache-control"], "no-cache, no-store");
    // Nothing before the heartbeat: every line of the body is one JSON value.
    let first = lines.next_line(WAIT).await.unwrap();
    assert!(is_heartbeat(first.as_bytes()), "{first}");
    let heartbeat: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert!(heartbeat["heartbeat"].as_u64().unwrap() > 0, "{first}");
    let mut from_sse: Vec<WireEvent> = Vec::new();
    let mut from_fetch: Vec<WireEvent> = Vec::new();
    while from_sse.len() < 3 {
        from_sse.push(sse.next_sse_event(WAIT).await.unwrap().1);
    }
    while from_fetch.len() < 3 {
        from_fetch.push(lines.next_ndjson_event(WAIT).await.unwrap());
    }
    assert_eq!(from_sse, from_fetch);
    assert!(from_fetch.iter().all(|e| e.id > cursor));
}

#[tokio::test]
async fn a_quiet_fetch_stream_sends_heartbeat_lines() {
    let app = spawn_app(&["--tick-ms", "60000", "--keepalive", "150ms"]).await;
    let cursor = app.latest_tick().await;
    let mut lines = Streaming::open(
        app.http
            .get(app.url(&format!("/fetch/clock?after={cursor}"))),
    )
    .await;
    for _ in 0..3 {
        let line = lines.next_line(WAIT).await.unwrap();
        assert_eq!(line, r#"{"heartbeat":150}"#);
    }
}

/// Opens `POST /fetch/chat` with `body` (and a session cookie).
async fn post_stream(
    app: &crate::support::TestApp,
    cookie: Option<&str>,
    body: serde_json::Value,
) -> Streaming {
    let mut req = app.http.post(app.url("/fetch/chat")).json(&body);
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    Streaming::open(req).await
}

async fn messages(stream: &mut Streaming, n: usize) -> Vec<WireEvent> {
    let mut got = Vec::new();
    while got.len() < n {
        let event = stream.next_ndjson_event(WAIT).await.expect("an event");
        if matches!(event.body, EventBody::Message { .. }) {
            got.push(event);
        }
    }
    got
}

#[tokio::test]
async fn the_chat_subscribes_with_a_post_and_resumes_from_the_cursor_in_its_body() {
    let app = spawn_app(&[]).await;
    let cookie = app.login("ada").await;
    let mut stream = post_stream(&app, Some(&cookie), json!({ "rooms": ["lobby", "red"] })).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["content-type"], NDJSON_CONTENT_TYPE);
    assert!(is_heartbeat(
        stream.next_line(WAIT).await.unwrap().as_bytes()
    ));
    for (room, text) in [
        ("lobby", "one"),
        ("red", "two"),
        ("blue", "not followed"),
        ("lobby", "three"),
    ] {
        assert_eq!(app.say(&cookie, room, text).await.0, 201);
    }
    let got = messages(&mut stream, 3).await;
    let texts: Vec<String> = got
        .iter()
        .map(|e| match &e.body {
            EventBody::Message { text, .. } => text.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
    drop(stream);

    // A break, then the same POST with the last id it delivered: the rest, nothing twice.
    let mut resumed = post_stream(
        &app,
        Some(&cookie),
        json!({ "after": got[0].id, "rooms": ["lobby", "red"] }),
    )
    .await;
    let again = messages(&mut resumed, 2).await;
    assert_eq!(
        again.iter().map(|e| e.id).collect::<Vec<_>>(),
        [got[1].id, got[2].id]
    );

    // And the same stream as a GET with the values in the query.
    let mut get = Streaming::open(
        app.http
            .get(app.url(&format!("/fetch/chat?rooms=lobby,red&after={}", got[0].id))),
    )
    .await;
    assert_eq!(
        messages(&mut get, 2).await,
        again,
        "GET and POST carry the same events"
    );

    // `history` in the body replays the room's latest messages.
    let mut history = post_stream(&app, None, json!({ "rooms": ["lobby"], "history": 2 })).await;
    let replayed = messages(&mut history, 2).await;
    assert_eq!(
        replayed.iter().map(|e| e.id).collect::<Vec<_>>(),
        [got[0].id, got[2].id]
    );
}

#[tokio::test]
async fn a_post_subscription_is_held_to_the_rules_of_every_body_and_every_query() {
    let app = spawn_app(&[]).await;
    let post = |body: String, content_type: &'static str| {
        let req = app
            .http
            .post(app.url("/fetch/chat"))
            .header("content-type", content_type)
            .body(body);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            (
                status,
                body["error"]["code"].as_str().unwrap_or("").to_string(),
            )
        }
    };
    let cases = [
        ("{".to_string(), 400, "bad_json"),
        // What Firefox sends for a ReadableStream body it does not stream.
        ("[object ReadableStream]".to_string(), 400, "bad_json"),
        (r#"{"after":-1}"#.to_string(), 400, "bad_json"),
        (r#"{"room":"lobby"}"#.to_string(), 400, "bad_json"),
        (
            r#"{"rooms":["no spaces allowed"]}"#.to_string(),
            400,
            "invalid_room",
        ),
        (r#"{"rooms":["a,b"]}"#.to_string(), 400, "invalid_room"),
        (r#"{"history":100000}"#.to_string(), 400, "bad_request"),
        (
            format!(r#"{{"rooms":["{}"]}}"#, "a".repeat(MAX_BODY_BYTES)),
            413,
            "too_large",
        ),
    ];
    for (body, status, code) in cases {
        let shown = body.chars().take(60).collect::<String>();
        assert_eq!(
            post(body, "application/json").await,
            (status, code.to_string()),
            "{shown}"
        );
    }
    // Too many rooms is the query's rule too.
    let rooms: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
    let (status, code) = post(json!({ "rooms": rooms }).to_string(), "application/json").await;
    assert_eq!((status, code.as_str()), (400, "invalid_room"));

    // Another site's page may not open a subscription with a POST (it may read a GET).
    let res = app
        .http
        .post(app.url("/fetch/clock"))
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn the_fetch_transport_counts_its_requests_and_open_streams() {
    let app = spawn_app(&["--tick-ms", "100"]).await;
    let mut get = Streaming::open(app.http.get(app.url("/fetch/clock"))).await;
    get.next_ndjson_event(WAIT).await.unwrap();
    let mut post = post_stream(&app, None, json!({})).await;
    post.next_line(WAIT).await.unwrap();
    let stats = app.stats().await;
    let fetch = &stats.transports["fetch"];
    assert_eq!((fetch.requests, fetch.open), (2, 2));
    assert!(fetch.events_sent >= 1 && fetch.bytes_sent > 0);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("transport=\"fetch\"") && l.ends_with(" 2")),
        "{metrics}"
    );
}
