//! The teaching diagnostics: `?tag=` records the wire (`/api/debug/wire`), `POST
//! /api/debug/kill` breaks tagged connections the way a network failure does, and loopback
//! aliases of the server's own origin may read transports cross-origin (CORS), which is
//! how the compare page gets a second pool of six connections.

use std::time::Duration;

use futures_util::StreamExt;
use pushpoll::feed::EventBody;
use serde_json::{Value, json};

use crate::support::{Subscriber, spawn_app};

const WAIT: Duration = Duration::from_secs(5);

/// A tag long enough to be accepted (the server wants 22+ characters, 128 random bits on
/// the pages); `name` keeps the tests readable.
pub fn tag(name: &str) -> String {
    format!("{name}-aB3dE6gH9jK2mN5pQ8sT1v")
}

async fn kill(app: &crate::support::TestApp, tag: &str) -> u64 {
    let (status, body, _) = app
        .send_json(
            reqwest::Method::POST,
            "/api/debug/kill",
            None,
            json!({ "tag": tag }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tag"], tag);
    body["killed"].as_u64().unwrap()
}

fn text_of(event: &pushpoll::feed::WireEvent) -> Option<&str> {
    match &event.body {
        EventBody::Message { text, .. } => Some(text),
        _ => None,
    }
}

/// Streams (SSE, iframe): the body is broken off, not ended, and an untagged stream next to
/// it goes on; a resume from the cursor gets what was said during the outage.
#[tokio::test]
async fn a_kill_breaks_tagged_streams_off_mid_body_and_leaves_others_alone() {
    let app = spawn_app(&[]).await;
    let cookie = app.login("killer").await;
    for transport in ["sse", "iframe"] {
        let tag = tag(&format!("k-{transport}"));
        let url = app.url(&format!("/{transport}/chat?history=0&tag={tag}"));
        let mut tagged = app.http.get(&url).send().await.unwrap().bytes_stream();
        let mut other = Subscriber::open(&app, transport, "chat?history=0", None).await;
        assert_eq!(
            app.say(&cookie, "lobby", &format!("before {transport}"))
                .await
                .0,
            201
        );
        assert!(other.messages(1, WAIT).await.len() == 1);
        assert_eq!(kill(&app, &tag).await, 1, "{transport}");
        // Read what is left: the body must end in an error (no last chunk), not cleanly.
        let ended = tokio::time::timeout(WAIT, async {
            loop {
                match tagged.next().await {
                    Some(Ok(_)) => continue,
                    Some(Err(_)) => return "broken",
                    None => return "ended cleanly",
                }
            }
        })
        .await
        .expect("the killed stream stays open");
        assert_eq!(ended, "broken", "{transport}");
        // The untagged subscriber is untouched.
        assert_eq!(
            app.say(&cookie, "lobby", &format!("after {transport}"))
                .await
                .0,
            201
        );
        let got = other.messages(1, WAIT).await;
        assert_eq!(
            text_of(&got[0]),
            Some(format!("after {transport}").as_str())
        );
        // The same tag works again after a kill (a fresh switch), and nothing is left open.
        assert_eq!(kill(&app, &tag).await, 0);
    }
}

/// A held long poll is broken off (the client sees a network error, not an empty answer);
/// the retry from the same cursor gets the message said in between.
#[tokio::test]
async fn a_kill_breaks_a_held_long_poll_and_the_retry_loses_nothing() {
    let app = spawn_app(&[]).await;
    let cookie = app.login("lp").await;
    let (_, next) = app.poll("/poll/chat?history=0").await;
    let lp = tag("k-lp");
    let url = app.url(&format!("/longpoll/chat?after={next}&timeout=30&tag={lp}"));
    let held = tokio::spawn({
        let http = app.http.clone();
        async move {
            let res = http.get(url).send().await?;
            res.bytes().await
        }
    });
    // Wait until the poll is parked on the server.
    for _ in 0..100 {
        if app.stats().await.transports["longpoll"].open == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(kill(&app, &lp).await, 1);
    let answer = tokio::time::timeout(WAIT, held).await.unwrap().unwrap();
    assert!(answer.is_err(), "a killed long poll answered {answer:?}");
    assert_eq!(app.say(&cookie, "lobby", "in between").await.0, 201);
    let (events, _) = app
        .poll(&format!("/longpoll/chat?after={next}&timeout=5&tag={lp}"))
        .await;
    let texts: Vec<_> = events.iter().filter_map(text_of).collect();
    assert_eq!(texts, ["in between"]);
}

/// A WebSocket is dropped without a close frame (the browser reports 1006).
#[tokio::test]
async fn a_kill_drops_a_tagged_websocket_without_a_close_frame() {
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app(&[]).await;
    let k_ws = tag("k-ws");
    let mut ws = app.ws(&format!("/ws/clock?tag={k_ws}"), None).await;
    let mut other = app.ws("/ws/clock", None).await;
    assert!(matches!(ws.next().await, Some(Ok(Message::Text(_)))));
    assert_eq!(kill(&app, &k_ws).await, 1);
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return format!("close frame {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return "dropped".to_string(),
            }
        }
    })
    .await
    .expect("the killed socket stays open");
    assert_eq!(end, "dropped");
    let next = tokio::time::timeout(Duration::from_secs(3), other.next()).await;
    assert!(matches!(next, Ok(Some(Ok(Message::Text(_))))), "{next:?}");
}

#[tokio::test]
async fn the_wire_record_shows_each_tagged_exchange_as_it_happened() {
    let app = spawn_app(&[]).await;
    let cookie = app.login("wired").await;
    let w1 = tag("w-1");
    // A stream, still open, with a cookie that must not be shown.
    let mut sse = app
        .http
        .get(app.url(&format!("/sse/chat?tag={w1}&history=0")))
        .header("cookie", &cookie)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let first = sse.next().await.unwrap().unwrap();
    // The prelude, then the heartbeat announcing its interval (the default 15 s).
    assert_eq!(
        &first[..],
        b"retry: 2000\n\nevent: heartbeat\ndata: {\"heartbeat\":15000}\n\n"
    );
    // A short poll, complete.
    app.poll(&format!("/poll/clock?tag={w1}")).await;
    // Not tagged: not recorded.
    app.poll("/poll/clock").await;

    let (status, wire) = app.get_json(&format!("/api/debug/wire?tag={w1}")).await;
    assert_eq!(status, 200, "{wire}");
    let exchanges = wire["exchanges"].as_array().unwrap();
    assert_eq!(exchanges.len(), 2, "{wire}");
    let header = |msg: &Value, name: &str| -> Option<String> {
        msg["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == name)
            .map(|h| h[1].as_str().unwrap().to_string())
    };
    // Newest first: the poll.
    let poll = &exchanges[0];
    assert_eq!(
        poll["request"]["line"],
        format!("GET /poll/clock?tag={w1} HTTP/1.1")
    );
    assert_eq!(poll["response"]["line"], "HTTP/1.1 200 OK");
    assert_eq!(poll["state"], "complete");
    let length: u64 = header(&poll["response"], "content-length")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(poll["body"]["bytes"], length);
    assert!(
        poll["body"]["head"]
            .as_str()
            .unwrap()
            .starts_with("{\"events\":[")
    );

    let stream = &exchanges[1];
    assert_eq!(
        stream["request"]["line"],
        format!("GET /sse/chat?tag={w1}&history=0 HTTP/1.1")
    );
    assert_eq!(
        header(&stream["request"], "accept").as_deref(),
        Some("text/event-stream")
    );
    let shown_cookie = header(&stream["request"], "cookie").unwrap();
    assert!(
        shown_cookie.contains("not shown") && !shown_cookie.contains("pushpoll_session"),
        "{shown_cookie}"
    );
    assert_eq!(
        header(&stream["response"], "content-type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(
        header(&stream["response"], "transfer-encoding").as_deref(),
        Some("chunked")
    );
    assert_eq!(stream["state"], "open");
    // The prelude, then perhaps already this user's own `join`.
    let head = stream["body"]["head"].as_str().unwrap();
    assert!(head.starts_with("retry: 2000\n\n"), "{head}");
    assert_eq!(stream["body"]["bytes"], head.len());
    assert!(stream["seq"].as_u64() < poll["seq"].as_u64());

    // The client leaves: the stream's record says so.
    drop(sse);
    let mut state = Value::Null;
    for _ in 0..100 {
        let (_, wire) = app.get_json(&format!("/api/debug/wire?tag={w1}")).await;
        state = wire["exchanges"][1]["state"].clone();
        if state != "open" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, "closed");

    // Unknown tags have no record; malformed ones are refused everywhere.
    let (status, wire) = app
        .get_json(&format!("/api/debug/wire?tag={}", tag("nobody")))
        .await;
    assert_eq!((status, wire["exchanges"].clone()), (200, json!([])));
    for path in [
        "/api/debug/wire?tag=%3Cscript%3E",
        "/poll/clock?tag=a%20b",
        "/sse/clock?tag=",
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_tag", "{path}");
    }
    let (status, body, _) = app
        .send_json(
            reqwest::Method::POST,
            "/api/debug/kill",
            None,
            json!({ "tag": "" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_tag"))
    );
}

/// A page from `127.0.0.1:PORT` may read transports from `localhost:PORT` (another origin
/// of the same server); foreign origins get no CORS headers, and credentials are never
/// allowed cross-origin.
#[tokio::test]
async fn loopback_aliases_of_the_servers_origin_may_read_cross_origin_and_others_may_not() {
    let app = spawn_app(&[]).await;
    let port = app.addr.port();
    let alias = format!("http://localhost:{port}");
    let get = |origin: String| {
        app.http
            .get(app.url("/longpoll/clock?timeout=1"))
            .header("origin", origin)
            .send()
    };
    let res = get(alias.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], alias.as_str());
    assert!(
        res.headers()
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("origin"))
    );
    assert!(
        !res.headers()
            .contains_key("access-control-allow-credentials")
    );

    for foreign in [
        format!("http://localhost:{}", port.wrapping_add(1)),
        "http://evil.example".to_string(),
    ] {
        let res = get(foreign.clone()).await.unwrap();
        assert_eq!(res.status(), 200, "a GET is still answered");
        assert!(
            !res.headers().contains_key("access-control-allow-origin"),
            "{foreign}"
        );
    }

    // The preflight EventSource needs when it resumes with Last-Event-ID.
    let preflight = |origin: String| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/sse/chat"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "last-event-id")
            .send()
    };
    let res = preflight(alias.clone()).await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["access-control-allow-origin"], alias.as_str());
    assert_eq!(
        res.headers()["access-control-allow-headers"],
        "last-event-id"
    );
    let res = preflight("http://evil.example".into()).await.unwrap();
    assert_eq!(res.status(), 403);

    // State-changing requests from the alias pass the origin check (and then need a session).
    let res = app
        .http
        .post(app.url("/api/chat/messages"))
        .header("origin", &alias)
        .json(&json!({ "text": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
