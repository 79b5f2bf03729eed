//! Limits and hostile input on the chat: each gets its contract answer, and nothing else is
//! disturbed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pushpoll::feed::EventBody;
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Subscriber, TRANSPORTS, TestApp, find, spawn_app};

const WAIT: Duration = Duration::from_secs(5);

async fn post(app: &TestApp, cookie: Option<&str>, body: serde_json::Value) -> (u16, String) {
    let (status, body, _) = app
        .send_json(Method::POST, "/api/chat/messages", cookie, body)
        .await;
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn nicks_sessions_and_texts_follow_the_rules() {
    let app = spawn_app(&[]).await;
    for bad in ["", "a b", "x@y", "<b>", "abcdefghijklmnopqrstuvwxy"] {
        let (status, body, _) = app
            .send_json(Method::POST, "/api/session", None, json!({"nick": bad}))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_nick")),
            "{bad:?}"
        );
    }
    let alice = app.login("alice").await;
    let (status, body, _) = app
        .send_json(Method::POST, "/api/session", None, json!({"nick":"Alice"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("nick_taken"))
    );

    assert_eq!(
        post(&app, None, json!({"room":"lobby","text":"hi"})).await,
        (401, "unauthorized".into())
    );
    assert_eq!(
        post(
            &app,
            Some("pushpoll_session=1.forged"),
            json!({"room":"lobby","text":"hi"})
        )
        .await
        .0,
        401
    );
    assert_eq!(
        post(&app, Some(&alice), json!({"room":"lobby","text":""})).await,
        (400, "invalid_text".into())
    );
    assert_eq!(
        post(&app, Some(&alice), json!({"room":"lobby","text":"   "})).await,
        (400, "invalid_text".into())
    );
    assert_eq!(
        post(
            &app,
            Some(&alice),
            json!({"room":"lobby","text":"x".repeat(2001)})
        )
        .await,
        (400, "invalid_text".into())
    );
    // 2000 characters is the limit in characters, not bytes.
    assert_eq!(
        post(
            &app,
            Some(&alice),
            json!({"room":"lobby","text":"é".repeat(2000)})
        )
        .await
        .0,
        201
    );
    assert_eq!(
        post(&app, Some(&alice), json!({"room":"no room!","text":"x"})).await,
        (400, "invalid_room".into())
    );
    assert_eq!(
        post(
            &app,
            Some(&alice),
            json!({"room":"lobby","to":"bob","text":"x"})
        )
        .await,
        (400, "bad_json".into())
    );
    assert_eq!(
        post(&app, Some(&alice), json!({"room":"lobby"})).await,
        (400, "bad_json".into())
    );
    assert_eq!(
        post(
            &app,
            Some(&alice),
            json!({"room":"lobby","text":"x","from":"mallory"})
        )
        .await,
        (400, "bad_json".into())
    );

    let res = app
        .http
        .post(app.url("/api/chat/messages"))
        .header("cookie", &alice)
        .body("{\"room\":")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let big = json!({"room":"lobby","text":"x".repeat(17 * 1024)});
    assert_eq!(
        post(&app, Some(&alice), big).await,
        (413, "too_large".into())
    );
    let (status, _) = app.get_json("/poll/chat?rooms=lobby,bad%20room").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_sender_is_the_session_never_the_body() {
    let app = spawn_app(&[]).await;
    let alice = app.login("alice").await;
    let (status, body, _) = app
        .send_json(
            Method::POST,
            "/api/chat/messages",
            Some(&alice),
            json!({"room":"lobby","text":"hi"}),
        )
        .await;
    assert_eq!(status, 201);
    let id = body["id"].as_u64().unwrap();
    let (events, _) = app.poll(&format!("/poll/chat?after={}", id - 1)).await;
    assert_eq!(
        events[0].body,
        EventBody::Message {
            room: "lobby".into(),
            from: "alice".into(),
            text: "hi".into()
        }
    );
}

#[tokio::test]
async fn more_than_twenty_messages_in_ten_seconds_get_429_with_retry_after() {
    let app = spawn_app(&[]).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    for i in 0..20 {
        assert_eq!(
            app.say(&alice, "lobby", &format!("m{i}")).await.0,
            201,
            "message {i}"
        );
    }
    let (status, body, headers) = app
        .send_json(
            Method::POST,
            "/api/chat/messages",
            Some(&alice),
            json!({"room":"lobby","text":"one too many"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    // Others are not limited by alice's burst.
    assert_eq!(app.say(&bob, "lobby", "fine").await.0, 201);
    // Over WebSocket the same limit is an error event, and the socket stays open.
    let mut ws = app.ws("/ws/chat?history=0", Some(&alice)).await;
    ws.send(Message::text(
        json!({"type":"say","room":"lobby","text":"again"}).to_string(),
    ))
    .await
    .unwrap();
    let error = next_error(&mut ws).await;
    assert_eq!(error["code"], "rate_limited");
}

async fn next_error(ws: &mut crate::support::Ws) -> serde_json::Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Text(text) => {
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                if value["type"] == "error" {
                    return value;
                }
            }
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn bad_websocket_frames_get_error_events_and_the_socket_stays_open() {
    let app = spawn_app(&[]).await;
    let alice = app.login("alice").await;
    let mut anon = app.ws("/ws/chat?history=0", None).await;
    anon.send(Message::text(
        json!({"type":"say","room":"lobby","text":"hi"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_error(&mut anon).await["code"], "unauthorized");

    let mut ws = app.ws("/ws/chat?history=0", Some(&alice)).await;
    let cases = [
        ("{not json", "bad_json"),
        ("[1,2]", "unknown_type"),
        ("{\"type\":\"shout\",\"text\":\"x\"}", "unknown_type"),
        ("{\"type\":\"say\"}", "bad_json"),
        (
            "{\"type\":\"say\",\"room\":\"lobby\",\"text\":\"\"}",
            "invalid_text",
        ),
        (
            "{\"type\":\"whisper\",\"to\":\"ghost\",\"text\":\"x\"}",
            "unknown_user",
        ),
        ("{\"type\":\"nick\",\"nick\":\"no spaces\"}", "invalid_nick"),
    ];
    for (frame, code) in cases {
        ws.send(Message::text(frame)).await.unwrap();
        assert_eq!(next_error(&mut ws).await["code"], code, "{frame}");
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(next_error(&mut ws).await["code"], "bad_frame");
    // Still open and working: a valid say comes back as a message.
    ws.send(Message::text(
        json!({"type":"say","room":"lobby","text":"still here"}).to_string(),
    ))
    .await
    .unwrap();
    loop {
        if let Message::Text(text) = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            if value["type"] == "message" {
                assert_eq!(value["text"], "still here");
                assert_eq!(value["from"], "alice");
                break;
            }
        }
    }
    // Over 64 KiB: closed with 1009.
    ws.send(Message::text("x".repeat(64 * 1024 + 1)))
        .await
        .unwrap();
    let close = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1009);
}

#[tokio::test]
async fn a_foreign_origin_cannot_post_or_open_a_chat_socket() {
    let app = spawn_app(&["--allow-origin", "http://localhost:9"]).await;
    let alice = app.login("alice").await;
    for (origin, expected) in [("http://evil.example", 403), ("http://localhost:9", 201)] {
        let res = app
            .http
            .post(app.url("/api/chat/messages"))
            .header("cookie", &alice)
            .header("origin", origin)
            .json(&json!({"room":"lobby","text":"x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), expected, "{origin}");
    }
    let res = app
        .http
        .delete(app.url("/api/session"))
        .header("cookie", &alice)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = app.ws_url("/ws/chat").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    request
        .headers_mut()
        .insert("cookie", alice.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
}

/// Text that tries to be markup, to end a script, or to break a JavaScript string.
const HOSTILE: &str =
    "<img src=x onerror=alert(1)></script><script>alert(2)</script>\u{2028}\u{2029} &amp; & <!--";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_arrives_intact_on_every_transport_and_cannot_break_the_iframe_stream() {
    let app = spawn_app(&[]).await;
    let alice = app.login("alice").await;
    let (_, cursor) = app.poll("/poll/chat?history=0").await;
    let mut subs = Vec::new();
    for t in TRANSPORTS {
        subs.push((
            t,
            Subscriber::open(&app, t, &format!("chat?after={cursor}"), None).await,
        ));
    }
    let mut raw_iframe = crate::support::Streaming::open(
        app.http
            .get(app.url(&format!("/iframe/chat?after={cursor}"))),
    )
    .await;
    assert_eq!(app.say(&alice, "lobby", HOSTILE).await.0, 201);
    assert_eq!(app.say(&alice, "lobby", "after").await.0, 201);
    for (t, sub) in &mut subs {
        let got = sub.messages(2, WAIT).await;
        let EventBody::Message { text, .. } = &got[0].body else {
            panic!()
        };
        assert_eq!(text, HOSTILE, "{t}");
        let EventBody::Message { text, .. } = &got[1].body else {
            panic!()
        };
        assert_eq!(
            text, "after",
            "{t}: the stream goes on after the hostile one"
        );
    }
    // On the iframe wire, the payload holds no markup and no raw line separators.
    while find(raw_iframe.buffered(), b"after").is_none() {
        assert!(raw_iframe.fill(WAIT).await);
    }
    let body = String::from_utf8(raw_iframe.buffered().to_vec()).unwrap();
    let scripts: Vec<&str> = body.split("<script>parent.pushpoll(").skip(1).collect();
    for script in scripts {
        let payload = script.split(")</script>\n").next().unwrap();
        for bad in ["<", ">", "&", "\u{2028}", "\u{2029}"] {
            assert!(!payload.contains(bad), "{bad:?} raw in {payload}");
        }
    }
}
