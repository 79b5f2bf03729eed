//! The diagnostics' bounds: the wire record keeps no credential and no
//! header value off its allowlist, tags are capabilities (short or repeated ones are
//! refused), and the record stays inside its byte budget however large the requests,
//! while another peer is served and its clock keeps ticking.

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::diagnostics::tag;
use crate::support::{client_from, spawn_app, spawn_binary};

fn header<'a>(message: &'a Value, name: &str) -> Option<&'a str> {
    message["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0] == name)
        .and_then(|h| h[1].as_str())
}

#[tokio::test]
async fn the_wire_keeps_no_credential_or_unlisted_header_value_only_its_name_and_length() {
    let app = spawn_app(&[]).await;
    let cookie = app.login("private").await;
    let t = tag("secrets");
    let secrets = [
        ("authorization", "Bearer s3cret-token-4711".to_string()),
        ("x-api-key", "key-0815-do-not-show".to_string()),
        (
            "referer",
            "http://elsewhere.example/?token=ref-token-42".to_string(),
        ),
        (
            "sec-websocket-protocol",
            "bearer.proto-token-99".to_string(),
        ),
        ("cookie", cookie.clone()),
    ];
    for path in [
        format!("/poll/chat?tag={t}"),
        format!("/longpoll/clock?tag={t}&timeout=1"),
    ] {
        let mut req = app
            .http
            .get(app.url(&path))
            .header("accept", "application/json");
        for (name, value) in &secrets {
            req = req.header(*name, value);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        res.bytes().await.unwrap();
    }
    let res = app
        .http
        .get(app.url(&format!("/api/debug/wire?tag={t}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let wire: Value = serde_json::from_str(&text).unwrap();
    let exchanges = wire["exchanges"].as_array().unwrap();
    assert_eq!(exchanges.len(), 2, "{wire}");
    // The session cookie's value is the part after `=`.
    let cookie_value = cookie.split_once('=').map_or(cookie.as_str(), |(_, v)| v);
    for leak in [
        "s3cret-token-4711",
        "key-0815-do-not-show",
        "ref-token-42",
        "proto-token-99",
        cookie_value,
    ] {
        assert!(
            !text.contains(leak),
            "{leak:?} is in the wire record: {text}"
        );
    }
    for x in exchanges {
        let request = &x["request"];
        for (name, value) in &secrets {
            assert_eq!(
                header(request, name),
                Some(format!("({} bytes, not shown)", value.len()).as_str()),
                "{name}: {request}"
            );
        }
        // Allowlisted values are still shown, as the pages explain them.
        assert_eq!(header(request, "accept"), Some("application/json"));
        assert!(header(request, "host").is_some_and(|h| h.starts_with("127.0.0.1:")));
        // The record says what it holds; the response keeps its framing.
        assert!(header(&x["response"], "content-type").is_some(), "{x}");
    }
    assert!(wire["recorded_bytes"].as_u64() > Some(0), "{wire}");
    assert_eq!(wire["budget_bytes"], 4 * 1024 * 1024);
    app.another_peer_is_served().await;
}

#[tokio::test]
async fn short_and_repeated_tags_are_refused_with_invalid_tag_everywhere() {
    let app = spawn_app(&[]).await;
    let good = tag("good");
    let short = "x".repeat(21);
    let mut paths = vec![
        "/api/debug/wire?tag=cmp-1-sse".to_string(),
        format!("/api/debug/wire?tag={short}"),
        format!("/api/debug/wire?tag={good}&tag={good}"),
        format!("/api/debug/wire?t%61g={good}&tag={good}"),
        "/api/debug/wire".to_string(),
        "/api/debug/wire?tag=".to_string(),
    ];
    for transport in pushpoll::names::Transport::NAMES {
        paths.push(format!("/{transport}/clock?tag={short}"));
        paths.push(format!("/{transport}/clock?tag={good}&after=0&tag={good}"));
        paths.push(format!("/{transport}/clock?tag={good}&t%61g=other"));
    }
    for path in &paths {
        let (status, body) = app.get_json(path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_tag")),
            "{path}: {body}"
        );
    }
    // A WebSocket handshake with a short tag is refused before the upgrade.
    let res = app
        .http
        .get(app.url(&format!("/ws/clock?tag={short}")))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Kill: a short tag, and a body that gives "tag" twice.
    let (status, body, _) = app
        .send_json(
            reqwest::Method::POST,
            "/api/debug/kill",
            None,
            json!({ "tag": short }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_tag")),
        "{body}"
    );
    let res = app
        .http
        .post(app.url("/api/debug/kill"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"tag":"{good}","tag":"{good}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_tag", "{body}");
    // A good tag is still accepted everywhere.
    let (status, _) = app.get_json(&format!("/poll/clock?tag={good}")).await;
    assert_eq!(status, 200);
    let (status, wire) = app.get_json(&format!("/api/debug/wire?tag={good}")).await;
    assert_eq!(
        (status, wire["exchanges"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    app.another_peer_is_served().await;
}

/// 256 tags × 10 requests with ~61 KB of headers each: 156 MB of headers if they were kept.
/// The record stays under its 4 MiB budget (it keeps the newest exchanges, each cut to
/// 8 KiB), the process grows by far less than what was sent, and another peer is served.
#[tokio::test]
async fn the_record_stays_in_its_byte_budget_under_256_tags_of_huge_headers() {
    const TAGS: usize = 256;
    const REQUESTS: usize = 10;
    // The real binary, in its own process, so its memory is its own.
    let app = spawn_binary(&[]).await;
    let before = app.server_rss();
    let filler = "f".repeat(19_000);
    let client = client_from(1);
    // A shown value that fits the exchange's budget and eats most of it.
    let language = "l".repeat(4_000);
    // Tag by tag, ten requests each (a page's first seconds).
    let requests = (0..TAGS)
        .flat_map(|t| (0..REQUESTS).map(move |_| t))
        .map(|t| {
            let req = client
                .get(app.url(&format!("/poll/clock?tag={}", tag(&format!("t{t:03}")))))
                .header("accept-language", &language)
                .header("user-agent", &filler)
                .header("x-filler", &filler)
                .header("authorization", &filler);
            async move {
                let res = req.send().await.expect("request");
                let status = res.status();
                res.bytes().await.expect("body");
                status
            }
        });
    let statuses: Vec<_> = futures_util::stream::iter(requests)
        .buffer_unordered(4)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let newest = tag(&format!("t{:03}", TAGS - 1));
    let (status, wire) = app.get_json(&format!("/api/debug/wire?tag={newest}")).await;
    assert_eq!(status, 200);
    let recorded = wire["recorded_bytes"].as_u64().unwrap();
    let budget = wire["budget_bytes"].as_u64().unwrap();
    assert!(recorded <= budget, "{recorded} > {budget}");
    // Full, not empty: the budget is what bounds it here.
    assert!(recorded > budget / 2, "{recorded}");
    // The newest tag keeps its ten exchanges, each cut to the exchange budget.
    let exchanges = wire["exchanges"].as_array().unwrap();
    assert_eq!(exchanges.len(), REQUESTS);
    for x in exchanges {
        let size = x["request"].to_string().len() + x["response"].to_string().len();
        assert!(size <= 8 * 1024 + 1024, "{size} bytes recorded: {x}");
        assert_eq!(
            header(&x["request"], "x-filler"),
            Some("(19000 bytes, not shown)")
        );
    }
    // The oldest tag's exchanges were forgotten first.
    let (_, oldest) = app
        .get_json(&format!("/api/debug/wire?tag={}", tag("t000")))
        .await;
    assert_eq!(oldest["exchanges"], json!([]), "{oldest}");

    let grown = app.server_rss().saturating_sub(before);
    assert!(
        grown < 64 * 1024 * 1024,
        "RSS grew by {} MB for a 4 MiB record",
        grown / (1024 * 1024)
    );
    app.another_peer_is_served().await;
}
