//! Fetch streaming's page in each engine: the chat subscribed with a POST and a JSON body,
//! hostile text shown as text, and what each engine does with a request body sent as a
//! stream over HTTP/1.1 (the HTTPS/HTTP/2 half is in h2.rs, with the server that speaks it).

use std::time::Duration;

use super::*;

/// The upstream section's three cells, once the try has an outcome: the feature detection's
/// outcome and words, what the `Request` would send, the try's outcome and words.
pub(super) async fn upstream_outcome(page: &Page<'_>) -> (String, String, String, String, String) {
    assert!(
        until_true(
            page,
            "document.querySelector('#upstream-detect')?.dataset.outcome !== '' && !document.querySelector('#upstream-try').disabled && document.querySelector('#upstream-body').textContent !== '…'",
            Duration::from_secs(10),
        )
        .await,
        "the upstream section never ran its detection"
    );
    assert!(
        eval::<bool>(
            page,
            "(() => { document.querySelector('#upstream-try').click(); return true })()"
        )
        .await
    );
    let done = until_true(
        page,
        "!['', 'trying'].includes(document.querySelector('#upstream-result').dataset.outcome)",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        done,
        "the try never finished: {}",
        text(page, "#upstream-result").await
    );
    let read = |id: &'static str| async move {
        (
            eval::<String>(
                page,
                &format!("document.getElementById('{id}').dataset.outcome"),
            )
            .await,
            text(page, &format!("#{id}")).await,
        )
    };
    let (detect, detect_text) = read("upstream-detect").await;
    let (result, result_text) = read("upstream-result").await;
    let body = text(page, "#upstream-body").await;
    (detect, detect_text, body, result, result_text)
}

/// Response streaming works in every engine (the clock: `the_fetch_streaming_page_runs_the_clock`
/// in main.rs); request streaming over HTTP/1.1 works in none, each failing its own way:
/// Chromium refuses it (it streams request bodies over HTTP/2 only), Firefox sends the text
/// `[object ReadableStream]`, which the server refuses as bad JSON, WebKitGTK throws
/// NotSupportedError.
async fn request_streaming_over_http1_fails_in_each_engine_its_own_way(engine: Engine) {
    let app = spawn_app(&[]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&app.url("/demos/fetch.html")).await;
    let (detect, detect_text, body, result, result_text) = upstream_outcome(&page).await;
    eprintln!(
        "{} {} over HTTP/1.1: detection {detect} ({detect_text}); Request body {body:?}; tried: {result} ({result_text})",
        engine.name(),
        browser.version()
    );
    match engine {
        Engine::Chromium => {
            assert_eq!(detect, "supported", "{detect_text}");
            assert_eq!(result, "type-error", "{result_text}");
        }
        Engine::Firefox => {
            assert_eq!(detect, "unsupported", "{detect_text}");
            assert_eq!(body, "[object ReadableStream]");
            assert_eq!(result, "refused", "{result_text}");
            assert!(result_text.contains("400 bad_json"), "{result_text}");
        }
        Engine::WebKit => {
            assert_eq!(result, "not-supported", "{result_text}");
        }
    }
    // Chromium logs the refused upload (net::ERR_H2_OR_QUIC_REQUIRED), Firefox the 400.
    let errors = errors.all().await;
    let left: Vec<_> = errors
        .iter()
        .filter(|e| !e.contains("/fetch/chat?for=upstream"))
        .collect();
    assert!(
        left.is_empty(),
        "{}: console errors: {errors:#?}",
        engine.name()
    );
}
in_every_engine!(request_streaming_over_http1_fails_in_each_engine_its_own_way);

/// Two people on fetch streaming's page, each chat stream a POST: a message with hostile text
/// arrives on the other page as text, and the server counted it as fetch streaming's.
async fn two_fetch_pages_chat_over_post_streams_and_hostile_text_stays_text(engine: Engine) {
    let app = spawn_app(&[]).await;
    let (a, b) = tokio::join!(Browser::launch(engine), Browser::launch(engine));
    let (one, one_errors) = a.open(&app.url("/demos/fetch.html")).await;
    let (two, two_errors) = b.open(&app.url("/demos/fetch.html")).await;
    sign_in(&one, "ada").await;
    sign_in(&two, "grace").await;
    send(&one, XSS).await;
    wait_for_message(&two, XSS).await;
    wait_for_message(&one, XSS).await;
    for page in [&one, &two] {
        assert!(
            eval::<bool>(page, "window.__xss === undefined").await,
            "the payload ran"
        );
        assert_eq!(
            eval::<u64>(page, "document.querySelectorAll('#chat-log img').length").await,
            0
        );
    }
    // The chat's stream went out as a POST with the rooms in its JSON body, as the server
    // recorded it for the page's tag.
    let tag = text(&one, "#wire [data-wire=tag]").await;
    assert!(tag.starts_with("page-"), "{tag:?}");
    let (status, record) = app.get_json(&format!("/api/debug/wire?tag={tag}")).await;
    assert_eq!(status, 200, "{record}");
    let lines: Vec<String> = record["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["request"]["line"].as_str().map(str::to_string))
        .collect();
    assert!(
        lines.iter().any(|l| l.starts_with("POST /fetch/chat?")),
        "{lines:?}"
    );
    let stats = app.stats().await;
    assert!(
        stats.transports["fetch"].open >= 4,
        "{:?}",
        stats.transports["fetch"]
    );
    for errors in [one_errors, two_errors] {
        let errors = errors.all().await;
        assert!(
            errors.is_empty(),
            "{}: console errors: {errors:#?}",
            engine.name()
        );
    }
}
in_every_engine!(two_fetch_pages_chat_over_post_streams_and_hostile_text_stays_text);
