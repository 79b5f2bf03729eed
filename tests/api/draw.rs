//! The draw feed: strokes sent by POST or on a socket reach subscribers on all
//! transports; bad strokes get the contract's errors; the per-address stroke budget
//! refuses one sender while another address is still served; an old cursor gets a `gap`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pushpoll::feed::EventBody;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Subscriber, TestApp, client_from, spawn_app, tcp_from};

const WAIT: Duration = Duration::from_secs(5);
const TRANSPORTS: [&str; pushpoll::names::Transport::ALL.len()] = pushpoll::names::Transport::NAMES;
/// The contract's bounds (not the crate's constants, so a changed constant fails here).
const MAX_STROKES: usize = 16;
const MAX_POINTS: usize = 64;
const WINDOW: u64 = 4096;

fn stroke(color: &str, points: &[u32]) -> Value {
    json!({ "color": color, "width": 3, "points": points })
}

async fn post(app: &TestApp, body: Value) -> (u16, Value) {
    let (status, body, _) = app.send_json(Method::POST, "/api/draw", None, body).await;
    (status, body)
}

/// The next stroke a subscriber gets, skipping nothing else: anything but a stroke fails.
async fn next_stroke(sub: &mut Subscriber) -> (u64, String, Vec<u32>) {
    let event = sub.next_event(WAIT).await.expect("a stroke in time");
    match event.body {
        EventBody::Stroke { color, points, .. } => (event.id, color, points),
        other => panic!("expected a stroke, got {other:?}"),
    }
}

async fn error_event(ws: &mut crate::support::Ws) -> Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["type"] == "error" {
                    return value;
                }
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no error event: {other:?}"),
        }
    }
}

#[tokio::test]
async fn strokes_posted_or_sent_on_a_socket_reach_every_transport() {
    let app = spawn_app(&[]).await;
    let mut subs = Vec::new();
    for transport in TRANSPORTS {
        subs.push(Subscriber::open(&app, transport, "draw?after=0", None).await);
    }
    let (status, body) = post(
        &app,
        json!({ "strokes": [stroke("#FF0000", &[0, 0, 500, 500, 1000, 1000])] }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["ids"], json!([1]));
    for (sub, transport) in subs.iter_mut().zip(TRANSPORTS) {
        let (id, color, points) = next_stroke(sub).await;
        assert_eq!((id, color.as_str()), (1, "#ff0000"), "{transport}");
        assert_eq!(points, vec![0, 0, 500, 500, 1000, 1000], "{transport}");
    }
    // A stroke sent as a frame on a draw socket is published like a POST.
    let mut sender = app.ws("/ws/draw", None).await;
    let frame = json!({ "type": "draw", "strokes": [stroke("#00aa00", &[1, 2, 3, 4])] });
    sender
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    for (sub, transport) in subs.iter_mut().zip(TRANSPORTS) {
        let (id, color, _) = next_stroke(sub).await;
        assert_eq!((id, color.as_str()), (2, "#00aa00"), "{transport}");
    }
    // The sender's own socket gets it back too.
    let mut own = Subscriber::Socket(sender);
    assert_eq!(next_stroke(&mut own).await.0, 2);
}

#[tokio::test]
async fn bad_strokes_get_the_contract_errors_over_http_and_on_the_socket() {
    let app = spawn_app(&[]).await;
    let too_many: Vec<Value> = (0..=MAX_STROKES)
        .map(|_| stroke("#000000", &[1, 1]))
        .collect();
    let long: Vec<u32> = vec![7; 2 * (MAX_POINTS + 1)];
    for (body, code) in [
        (
            json!({ "strokes": [stroke("red", &[1, 1])] }),
            "invalid_stroke",
        ),
        (
            json!({ "strokes": [stroke("#000\"><b>", &[1, 1])] }),
            "invalid_stroke",
        ),
        (
            json!({ "strokes": [stroke("#000000", &[1, 1001])] }),
            "invalid_stroke",
        ),
        (
            json!({ "strokes": [stroke("#000000", &[1, 2, 3])] }),
            "invalid_stroke",
        ),
        (
            json!({ "strokes": [stroke("#000000", &long)] }),
            "invalid_stroke",
        ),
        (
            json!({ "strokes": [{ "color": "#000000", "width": 0, "points": [1, 1] }] }),
            "invalid_stroke",
        ),
        (json!({ "strokes": too_many }), "invalid_stroke"),
        (json!({ "strokes": [] }), "invalid_stroke"),
        (
            json!({ "strokes": [{ "color": "#000000", "width": 2, "points": [1, -1] }] }),
            "bad_json",
        ),
        (
            json!({ "strokes": [{ "color": "#000000", "width": 2, "points": [1, 1.5] }] }),
            "bad_json",
        ),
        (
            json!({ "strokes": [{ "color": "#000000", "width": 2, "points": [1, 1], "x": 1 }] }),
            "bad_json",
        ),
        (json!({ "strokes": "no" }), "bad_json"),
        (
            json!({ "strokes": [stroke("#000000", &[1, 1])], "room": "lobby" }),
            "bad_json",
        ),
    ] {
        let (status, answer) = post(&app, body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], code, "{body} → {answer}");
    }
    // Too large a body is 413 before it is parsed.
    let huge = "x".repeat(20 * 1024);
    let (status, _) = post(&app, json!({ "strokes": [], "pad": huge })).await;
    assert_eq!(status, 413);
    // Nothing was published.
    assert!(app.poll("/poll/draw?after=0").await.0.is_empty());

    // On a socket a refusal is an `error` event and the socket stays open.
    let mut ws = app.ws("/ws/draw?after=0", None).await;
    for (frame, code) in [
        ("not json".to_string(), "bad_json"),
        (
            json!({ "type": "say", "text": "hi" }).to_string(),
            "bad_json",
        ),
        (
            json!({ "type": "draw", "strokes": [stroke("#12345", &[1, 1])] }).to_string(),
            "invalid_stroke",
        ),
        (
            json!({ "type": "draw", "strokes": [stroke("#123456", &[1, 1])], "x": 1 }).to_string(),
            "bad_json",
        ),
    ] {
        ws.send(Message::Text(frame.clone().into())).await.unwrap();
        assert_eq!(error_event(&mut ws).await["code"], code, "{frame}");
    }
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(error_event(&mut ws).await["code"], "bad_frame");
    let good = json!({ "type": "draw", "strokes": [stroke("#123456", &[9, 9])] });
    ws.send(Message::Text(good.to_string().into()))
        .await
        .unwrap();
    let mut ws = Subscriber::Socket(ws);
    assert_eq!(next_stroke(&mut ws).await.0, 1);
}

#[tokio::test]
async fn the_stroke_budget_refuses_one_address_while_another_is_served() {
    let app = spawn_app(&["--draw-rate", "16"]).await;
    let batch = json!({ "strokes": (0..MAX_STROKES).map(|_| stroke("#abcdef", &[5, 5])).collect::<Vec<_>>() });
    let from = |n: u8| {
        let client = client_from(n);
        let url = app.url("/api/draw");
        let body = batch.clone();
        async move {
            let res = client.post(url).json(&body).send().await.unwrap();
            let status = res.status().as_u16();
            let retry = res.headers().get("retry-after").cloned();
            (status, retry, res.json::<Value>().await.unwrap())
        }
    };
    // A burst of 16 strokes passes; the next 16 within the second do not.
    assert_eq!(from(3).await.0, 201);
    let (status, retry, body) = from(3).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(retry.is_some(), "429 says when to retry");
    // Another address has its own budget, and the server serves it.
    assert_eq!(from(4).await.0, 201);
    app.another_peer_is_served().await;
    // The refused batch was not published: 32 strokes went out, from two addresses.
    let (events, next) = app.poll("/poll/draw?after=0").await;
    assert_eq!((events.len(), next), (32, 32));
    // On a socket the same budget holds: two full batches sent back to back from one
    // address cannot both pass (the bucket holds 16 and refills 16 a second), and the
    // refusal is an error event on the socket, which stays open.
    let tcp = tcp_from(5, app.addr).await;
    let (mut ws, _) = tokio_tungstenite::client_async(app.ws_url("/ws/draw"), tcp)
        .await
        .expect("websocket from 127.0.0.5");
    let mut frame = batch.clone();
    frame["type"] = json!("draw");
    for _ in 0..2 {
        ws.send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }
    let (mut strokes, mut refused) = (0, None);
    while refused.is_none() || strokes < MAX_STROKES {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let value = serde_json::from_str::<Value>(&text).unwrap();
                match value["type"].as_str() {
                    Some("stroke") => strokes += 1,
                    Some("error") => refused = Some(value),
                    None if value["heartbeat"].is_u64() => {}
                    _ => panic!("unexpected {value}"),
                }
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("{strokes} strokes, refusal {refused:?}, then {other:?}"),
        }
    }
    assert_eq!(refused.unwrap()["code"], "rate_limited");
    assert_eq!(strokes, MAX_STROKES, "one batch of the two passed");
}

#[tokio::test]
async fn a_cursor_older_than_the_kept_strokes_gets_a_gap_then_the_window() {
    let app = spawn_app(&["--draw-rate", "1000000", "--draw-rate-total", "1000000"]).await;
    let batch = json!({ "strokes": (0..MAX_STROKES).map(|_| stroke("#010203", &[1, 2])).collect::<Vec<_>>() });
    let posts = WINDOW as usize / MAX_STROKES + 1;
    for _ in 0..posts {
        assert_eq!(post(&app, batch.clone()).await.0, 201);
    }
    let newest = (posts * MAX_STROKES) as u64;
    let (events, _) = app.poll("/poll/draw?after=0&limit=2").await;
    let oldest_kept = newest - WINDOW + 1;
    assert_eq!(
        events[0].body,
        EventBody::Gap {
            after: 0,
            resumed_from: oldest_kept
        }
    );
    assert_eq!(events[1].id, oldest_kept);
    // A cursor inside the window is replayed without a gap.
    let (events, _) = app
        .poll(&format!("/poll/draw?after={}&limit=1", newest - 1))
        .await;
    assert_eq!(events[0].id, newest);
}

#[tokio::test]
async fn an_upload_reports_the_request_head_and_body_as_they_were_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(&[]).await;
    let body = json!({ "strokes": [stroke("#000000", &[1, 1])] }).to_string();
    let head = format!(
        "POST /api/draw HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nX-Padding: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.addr,
        "p".repeat(100),
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(format!("{head}{body}").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let json: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["request"]["head"], head.len(), "{json}");
    assert_eq!(json["request"]["body"], body.len(), "{json}");
}

#[tokio::test]
async fn the_server_wide_stroke_budget_holds_across_addresses_and_the_clock_goes_on() {
    let app = spawn_app(&["--draw-rate-total", "16"]).await;
    let batch = json!({ "strokes": (0..MAX_STROKES).map(|_| stroke("#abcdef", &[5, 5])).collect::<Vec<_>>() });
    let post_from = |n: u8| {
        let (client, url, body) = (client_from(n), app.url("/api/draw"), batch.clone());
        async move {
            let res = client.post(url).json(&body).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(post_from(3).await.0, 201);
    // A second address, with its own budget untouched, meets the server's.
    let (status, body) = post_from(4).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("on this server"),
        "{body}"
    );
    app.another_peer_is_served().await;
    assert_eq!(app.poll("/poll/draw?after=0").await.0.len(), MAX_STROKES);
}
