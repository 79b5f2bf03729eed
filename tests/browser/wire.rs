//! "Show the wire" on the transport pages: the page tags its subscriptions, the server
//! records the tagged exchanges, and the page lists them (static/wire.js) while its
//! `<details>` is open, and stops asking when it is closed.

use super::*;

/// One exchange as the page shows it.
#[derive(Debug, serde::Deserialize)]
struct Shown {
    transport: String,
    state: String,
    request: String,
    response: String,
    headers: String,
    body: String,
    elided: Vec<String>,
}

const SHOWN: &str = "[...document.querySelectorAll('#wire-list .wire-exchange')].map(li => ({
    transport: li.dataset.transport ?? '',
    state: li.dataset.state ?? '',
    request: li.querySelector('.wire-request-line')?.textContent ?? '',
    response: li.querySelector('.wire-response-line')?.textContent ?? '',
    headers: li.querySelector('.wire-response-line')?.parentElement.textContent ?? '',
    body: li.querySelector('.wire-body')?.textContent ?? '',
    elided: [...li.querySelectorAll('.wire-elided')].map(e => e.textContent),
}))";

/// Markup that would run or break out of the listing if it were parsed as HTML.
const HOSTILE: &str = "<img src=x onerror=window.__xss=1></pre><script>window.__xss=2</script>";

/// How many times the page has asked for its record so far.
const ASKED: &str = "performance.getEntriesByType('resource').filter(e => e.name.includes('/api/debug/wire?tag=')).length";

/// Opens the `transport` page, opens its wire view, and waits until it lists the clock's
/// exchange with `response_line` whose body head contains `body` (when given). Returns it,
/// and the whole list as it was then.
async fn the_wire_view_shows_the_clock_over(
    engine: Engine,
    transport: &str,
    response_line: &str,
    body: Option<&str>,
) -> (Shown, Vec<Shown>) {
    let app = spawn_app(&[]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser
        .open(&app.url(&format!("/demos/{transport}.html")))
        .await;

    // Closed, the view asks nothing; it opens once the page's modules have run (they show
    // the page's tag).
    let tag = until(Duration::from_secs(10), async || {
        let tag = text(&page, "#wire [data-wire=tag]").await;
        // `page-` and 128 random bits in base64url (22 characters).
        if tag.starts_with("page-") && tag.len() == 27 {
            Ok(tag)
        } else {
            Err(tag)
        }
    })
    .await
    .unwrap_or_else(|tag| panic!("{transport}: no tag shown: {tag:?}"));
    assert_eq!(eval::<u64>(&page, ASKED).await, 0, "asked while closed");
    assert!(
        eval::<bool>(
            &page,
            "(() => { document.querySelector('#wire-details').open = true; return true; })()"
        )
        .await
    );

    // A request under the page's tag with markup in a header: it must show as text. The
    // header is one whose value the server records (its allowlist; others are a length).
    let hostile = app
        .http
        .get(app.url(&format!("/poll/chat?tag={tag}")))
        .header("accept-language", HOSTILE)
        .send()
        .await
        .unwrap();
    assert_eq!(hostile.status(), 200);
    let js = format!(
        "[...document.querySelectorAll('#wire-list .wire-header')].some(h => h.textContent === {})",
        serde_json::to_string(&format!("\naccept-language: {HOSTILE}")).unwrap()
    );
    assert!(
        until_true(&page, &js, Duration::from_secs(10)).await,
        "{transport}: the hostile header never showed: {}",
        text(&page, "#wire").await
    );
    assert!(eval::<bool>(&page, "window.__xss === undefined").await);
    assert_eq!(
        eval::<u64>(
            &page,
            "document.querySelectorAll('#wire-list img, #wire-list script').length"
        )
        .await,
        0
    );

    let prefix = format!("GET /{transport}/clock?");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (found, all) = loop {
        let mut shown: Vec<Shown> = eval(&page, SHOWN).await;
        let found = shown.iter().position(|x| {
            x.request.starts_with(&prefix)
                && x.request.contains(&format!("tag={tag}"))
                && x.response == response_line
                && body.is_none_or(|b| x.body.contains(b))
        });
        if let Some(found) = found {
            break (shown.remove(found), shown);
        }
        assert!(
            Instant::now() < deadline,
            "{transport}: no {prefix}… exchange answered {response_line:?}; status {:?}; list {:?}",
            text(&page, "#wire [data-wire=status]").await,
            eval::<Vec<Shown>>(&page, SHOWN).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(found.transport, transport, "{found:?}");
    assert!(
        ["open", "complete"].contains(&found.state.as_str()),
        "{found:?}"
    );
    if transport == "sse" {
        screenshot_element(&page, "#wire", "wire-sse").await;
    }

    // Closing the view stops its requests (one already on its way may still land).
    eval::<bool>(
        &page,
        "(() => { document.querySelector('#wire-details').open = false; return true; })()",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = eval::<u64>(&page, ASKED).await;
    assert!(asked >= 1);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(
        eval::<u64>(&page, ASKED).await <= asked + 1,
        "still asking while closed"
    );

    let errors = errors.all().await;
    assert!(
        unexpected(&errors).is_empty(),
        "{transport}: console errors: {errors:#?}"
    );
    (found, all)
}

async fn the_short_polling_page_shows_its_polls_on_the_wire(engine: Engine) {
    let (poll, _) =
        the_wire_view_shows_the_clock_over(engine, "poll", "HTTP/1.1 200 OK", Some("{\"events\":"))
            .await;
    assert_eq!(poll.state, "complete", "{poll:?}");
    assert!(
        poll.headers.contains("content-type: application/json"),
        "{poll:?}"
    );
}
in_every_engine!(the_short_polling_page_shows_its_polls_on_the_wire);

async fn the_long_polling_page_shows_its_held_requests_on_the_wire(engine: Engine) {
    let (answered, all) = the_wire_view_shows_the_clock_over(
        engine,
        "longpoll",
        "HTTP/1.1 200 OK",
        Some("{\"events\":"),
    )
    .await;
    assert!(answered.request.contains("timeout="), "{answered:?}");
    // The chat's long poll (an empty room, no history) is held: no response yet.
    assert!(
        all.iter()
            .any(|x| x.request.starts_with("GET /longpoll/chat?")
                && x.state == "open"
                && x.response.starts_with("(no response yet")),
        "{all:#?}"
    );
}
in_every_engine!(the_long_polling_page_shows_its_held_requests_on_the_wire);

async fn the_iframe_page_shows_its_stream_document_on_the_wire(engine: Engine) {
    let (stream, _) = the_wire_view_shows_the_clock_over(
        engine,
        "iframe",
        "HTTP/1.1 200 OK",
        Some("<!doctype html>"),
    )
    .await;
    assert_eq!(stream.state, "open", "{stream:?}");
    assert!(
        stream.headers.contains("content-type: text/html"),
        "{stream:?}"
    );
    // The prelude's padding is shown collapsed.
    assert!(
        stream.elided.iter().any(|e| e.contains("spaces")),
        "{stream:?}"
    );
    assert!(!stream.body.contains(&" ".repeat(40)), "{stream:?}");
}
in_every_engine!(the_iframe_page_shows_its_stream_document_on_the_wire);

async fn the_sse_page_shows_its_event_stream_on_the_wire(engine: Engine) {
    let (stream, _) =
        the_wire_view_shows_the_clock_over(engine, "sse", "HTTP/1.1 200 OK", Some("retry: 2000"))
            .await;
    assert_eq!(stream.state, "open", "{stream:?}");
    assert!(
        stream.headers.contains("content-type: text/event-stream"),
        "{stream:?}"
    );
}
in_every_engine!(the_sse_page_shows_its_event_stream_on_the_wire);

async fn the_fetch_streaming_page_shows_its_ndjson_stream_on_the_wire(engine: Engine) {
    let (stream, all) = the_wire_view_shows_the_clock_over(
        engine,
        "fetch",
        "HTTP/1.1 200 OK",
        Some("{\"heartbeat\":"),
    )
    .await;
    assert_eq!(stream.state, "open", "{stream:?}");
    assert!(
        stream
            .headers
            .contains("content-type: application/x-ndjson"),
        "{stream:?}"
    );
    // The chat's subscription is the POST beside it.
    assert!(
        all.iter()
            .any(|x| x.request.starts_with("POST /fetch/chat?")),
        "{all:?}"
    );
}
in_every_engine!(the_fetch_streaming_page_shows_its_ndjson_stream_on_the_wire);

async fn the_websocket_page_shows_its_upgrade_on_the_wire(engine: Engine) {
    let (upgrade, _) =
        the_wire_view_shows_the_clock_over(engine, "ws", "HTTP/1.1 101 Switching Protocols", None)
            .await;
    assert!(
        upgrade.headers.contains("sec-websocket-accept: "),
        "{upgrade:?}"
    );
}
in_every_engine!(the_websocket_page_shows_its_upgrade_on_the_wire);
