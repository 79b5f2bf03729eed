//! Bad input gets a JSON error with the right status, and disturbs nobody else.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pushpoll::feed::WireEvent;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::{Streaming, TestApp, spawn_app};

const WAIT: Duration = Duration::from_secs(3);
const TRANSPORTS: [&str; pushpoll::names::Transport::ALL.len()] = pushpoll::names::Transport::NAMES;

async fn assert_error(app: &TestApp, request: reqwest::RequestBuilder, status: u16, code: &str) {
    let res = request.send().await.unwrap();
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    let _ = app;
}

#[tokio::test]
async fn bad_requests_get_json_errors_and_other_clients_keep_their_stream() {
    let app = spawn_app(&["--tick-ms", "100"]).await;
    let mut bystander = Streaming::open(app.http.get(app.url("/sse/clock"))).await;
    let (_, before) = bystander.next_sse_event(WAIT).await.unwrap();

    for t in TRANSPORTS {
        assert_error(
            &app,
            app.http.get(app.url(&format!("/{t}/weather"))),
            404,
            "unknown_feed",
        )
        .await;
        for cursor in ["abc", "-1", "1.5", "", "99999999999999999999999"] {
            let url = app.url(&format!("/{t}/clock?after={cursor}"));
            let request = app
                .http
                .get(url)
                .header("connection", "upgrade")
                .header("upgrade", "websocket");
            let request = if t == "ws" {
                request
                    .header("sec-websocket-version", "13")
                    .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            } else {
                app.http.get(app.url(&format!("/{t}/clock?after={cursor}")))
            };
            assert_error(&app, request, 400, "bad_cursor").await;
        }
    }
    let bad_header = app
        .http
        .get(app.url("/sse/clock"))
        .header("Last-Event-ID", "yesterday");
    assert_error(&app, bad_header, 400, "bad_cursor").await;
    for timeout in ["0", "61", "ten", "-5"] {
        let url = app.url(&format!("/longpoll/clock?timeout={timeout}"));
        assert_error(&app, app.http.get(url), 400, "bad_request").await;
    }
    for limit in ["0", "1001", "x"] {
        let url = app.url(&format!("/poll/clock?limit={limit}"));
        assert_error(&app, app.http.get(url), 400, "bad_request").await;
    }
    assert_error(
        &app,
        app.http.get(app.url("/no/such/page")),
        404,
        "not_found",
    )
    .await;
    assert_error(
        &app,
        app.http.get(app.url("/demos/missing.html")),
        404,
        "not_found",
    )
    .await;
    assert_error(
        &app,
        app.http.post(app.url("/sse/clock")),
        405,
        "method_not_allowed",
    )
    .await;
    assert_error(
        &app,
        app.http.get(app.url("/ws/clock")),
        426,
        "upgrade_required",
    )
    .await;
    assert_error(
        &app,
        app.http.get(app.url("/poll/clock?after=%ZZ")),
        400,
        "bad_cursor",
    )
    .await;

    // The bystander's stream carried on through all of it.
    let (_, after) = bystander.next_sse_event(WAIT).await.unwrap();
    assert!(after.id > before.id);
    let (_, later) = bystander.next_sse_event(WAIT).await.unwrap();
    assert!(later.id > after.id);
}

#[tokio::test]
async fn a_client_frame_on_the_clock_socket_gets_an_error_event_and_the_socket_stays_open() {
    let app = spawn_app(&["--tick-ms", "100"]).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(app.ws_url("/ws/clock"))
        .await
        .unwrap();
    socket
        .send(Message::text("{\"type\":\"say\",\"text\":\"hi\"}"))
        .await
        .unwrap();
    socket.send(Message::text("not json at all")).await.unwrap();
    socket
        .send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    let mut errors = 0;
    let mut ticks_after_errors = 0;
    while ticks_after_errors < 2 {
        let Message::Text(text) = tokio::time::timeout(WAIT, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        match value["type"].as_str() {
            Some("error") => {
                assert_eq!(value["code"], "read_only");
                errors += 1;
            }
            Some("tick") if errors == 3 => {
                serde_json::from_value::<WireEvent>(value).unwrap();
                ticks_after_errors += 1;
            }
            Some("tick") => {}
            None if value["heartbeat"].is_u64() => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_websocket_message_over_64_kib_closes_with_1009_and_others_carry_on() {
    let app = spawn_app(&["--tick-ms", "100"]).await;
    let (mut other, _) = tokio_tungstenite::connect_async(app.ws_url("/ws/clock"))
        .await
        .unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(app.ws_url("/ws/clock"))
        .await
        .unwrap();
    socket
        .send(Message::text("x".repeat(64 * 1024 + 1)))
        .await
        .unwrap();
    let close = loop {
        match tokio::time::timeout(WAIT, socket.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.unwrap().code, CloseCode::Size);

    let mut ticks = 0;
    while ticks < 2 {
        if let Message::Text(_) = tokio::time::timeout(WAIT, other.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            ticks += 1;
        }
    }
}

#[tokio::test]
async fn a_websocket_upgrade_from_a_foreign_origin_is_forbidden() {
    let app = spawn_app(&[]).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            app.ws_url("/ws/clock"),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(request).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    let mut own = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        app.ws_url("/ws/clock"),
    )
    .unwrap();
    own.headers_mut()
        .insert("origin", format!("http://{}", app.addr).parse().unwrap());
    tokio_tungstenite::connect_async(own)
        .await
        .expect("own origin is allowed");
}

#[tokio::test]
async fn past_max_connections_new_connections_get_503() {
    let app = spawn_app(&["--max-connections", "3", "--max-connections-per-peer", "3"]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(Streaming::open(app.http.get(app.url("/sse/clock"))).await);
    }
    // A fresh client, so no pooled connection is reused.
    let res = reqwest::Client::new()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let res = reqwest::Client::new()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_refused_transport_answers_503_and_the_others_still_work() {
    let app = spawn_app(&["--refuse", "ws,sse"]).await;
    let res = app.http.get(app.url("/sse/clock")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "transport_refused");
    match tokio_tungstenite::connect_async(app.ws_url("/ws/clock")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 503),
        other => panic!("expected 503, got {other:?}"),
    }
    let (events, _) = app.poll("/poll/clock").await;
    assert_eq!(events.len(), 1);
}

/// A request refused for its cursor was still a request: every HTTP transport counts it in
/// `/api/stats` before it reads the cursor, so a page's bad URL shows in the counters.
#[tokio::test]
async fn a_request_refused_for_its_cursor_is_still_counted() {
    let app = spawn_app(&[]).await;
    let counted = ["poll", "longpoll", "iframe", "fetch", "sse"];
    for t in counted {
        for _ in 0..3 {
            let url = app.url(&format!("/{t}/clock?after=abc"));
            assert_error(&app, app.http.get(url), 400, "bad_cursor").await;
        }
    }
    let (status, stats) = app.get_json("/api/stats").await;
    assert_eq!(status, 200);
    for t in counted {
        assert_eq!(stats["transports"][t]["requests"], 3, "{t}: {stats}");
        assert_eq!(stats["transports"][t]["open"], 0, "{t}: {stats}");
    }
}
