//! The shared canvas: a WebSocket page and a long-polling page draw together; each sees the
//! other's strokes in its canvas pixels, and each shows what its sends cost upstream by the
//! definition it names.

use super::*;

/// The draw panel's canvas on every page that has one.
const PANEL: &str = "#draw-canvas";

/// Draws a horizontal line across `canvas` (a selector) at `y` (a fraction of its height), in
/// `color`, with synthetic pointer events, from x = 10 % to 90 %.
pub(super) fn draw_line(canvas: &str, color: &str, y: f64) -> String {
    format!(
        "(() => {{
            document.getElementById('draw-color').value = {color:?};
            const c = document.querySelector({canvas:?});
            const r = c.getBoundingClientRect();
            const at = (fx) => ({{ clientX: r.left + fx * r.width, clientY: r.top + {y} * r.height, pointerId: 7, bubbles: true }});
            c.dispatchEvent(new PointerEvent('pointerdown', at(0.1)));
            for (let i = 1; i <= 40; i++) c.dispatchEvent(new PointerEvent('pointermove', at(0.1 + i * 0.02)));
            c.dispatchEvent(new PointerEvent('pointerup', at(0.9)));
            return true;
        }})()"
    )
}

/// The pixels of `canvas` at canvas units (x, y - 3) to (x, y + 3), each `[r, g, b, a]`.
async fn column(page: &Page<'_>, canvas: &str, x: u32, y: u32) -> Vec<Vec<u8>> {
    let top = y.saturating_sub(3);
    eval(
        page,
        &format!("(() => {{ const d = document.querySelector({canvas:?}).getContext('2d').getImageData({x}, {top}, 1, 7).data; const out = []; for (let i = 0; i < d.length; i += 4) out.push([...d.slice(i, i + 4)]); return out; }})()"),
    )
    .await
}

/// Whether `canvas` shows `rgb`, opaque, at (x, y), give or take 3 canvas units up or down:
/// WebKit's pointer events carry whole CSS pixels (`clientY` 2171, not 2171.42), so its line
/// lands a few units from where the others put it. Otherwise the pixels seen there.
pub(super) async fn ink_at(
    page: &Page<'_>,
    canvas: &str,
    (x, y): (u32, u32),
    rgb: [u8; 3],
) -> Result<(), Vec<Vec<u8>>> {
    let seen = column(page, canvas, x, y).await;
    if seen.iter().any(|p| p[..3] == rgb && p[3] == 255) {
        Ok(())
    } else {
        Err(seen)
    }
}

async fn figures(page: &Page<'_>) -> serde_json::Value {
    eval(page, "document.getElementById('draw').drawFigures()").await
}

/// Waits until the draw panel's canvas of `page` shows `rgb` at (x, y) (see [`ink_at`]).
async fn wait_for_ink(page: &Page<'_>, x: u32, y: u32, rgb: [u8; 3]) {
    let seen = until(Duration::from_secs(10), async || {
        ink_at(page, PANEL, (x, y), rgb).await
    })
    .await;
    assert!(
        seen.is_ok(),
        "{}: pixels ({x},{y}±3) are {seen:?}, not {rgb:?}",
        page.engine().name()
    );
}

async fn a_websocket_page_and_a_long_polling_page_draw_together_and_show_what_sending_costs(
    engine: Engine,
) {
    let app = spawn_app(&[]).await;
    let (a, b) = tokio::join!(Browser::launch(engine), Browser::launch(engine));
    let (ws_page, ws_errors) = a.open(&app.url("/demos/ws.html")).await;
    let (lp_page, lp_errors) = b.open(&app.url("/demos/longpoll.html")).await;
    for (page, transport) in [(&ws_page, "ws"), (&lp_page, "longpoll")] {
        let ready = until_true(
            page,
            &format!("document.getElementById('draw')?.dataset.transport === {transport:?}"),
            Duration::from_secs(10),
        )
        .await;
        assert!(ready, "{transport}: the canvas did not start");
    }
    // The WebSocket page's socket must be open before it can send.
    assert!(
        until_true(
            &ws_page,
            "document.querySelector('[data-draw=state]').textContent === 'OPEN'",
            Duration::from_secs(10)
        )
        .await,
        "the draw socket did not open"
    );
    // The long-polling page's first poll must be parked, so its cursor is set.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Red from the WebSocket page reaches the long-polling page, and comes back to its own.
    assert!(eval::<bool>(&ws_page, &draw_line(PANEL, "#ff0000", 0.3)).await);
    wait_for_ink(&lp_page, 500, 300, [255, 0, 0]).await;
    // Green from the long-polling page reaches the WebSocket page.
    assert!(eval::<bool>(&lp_page, &draw_line(PANEL, "#00ff00", 0.7)).await);
    wait_for_ink(&ws_page, 500, 700, [0, 255, 0]).await;

    // Upstream costs, by their definitions. WebSocket: each send is one masked client frame,
    // 2 + 4 bytes (payloads under 126 bytes) or 4 + 4 around its payload.
    let ws = figures(&ws_page).await;
    let strokes = ws["strokesSent"].as_u64().unwrap();
    let sends = ws["sends"].as_u64().unwrap();
    assert!(strokes >= 1 && sends >= 1, "{ws}");
    let last = text(&ws_page, "[data-draw=last]").await;
    let header: u64 = last
        .split("frame: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("last send: {last}"));
    assert!(
        header == 6 || header == 8,
        "frame header and mask {header}: {last}"
    );
    // The server takes no extension: the browser's socket says so.
    let extensions: String = eval(
        &ws_page,
        "new Promise((ok) => { const s = new WebSocket(location.origin.replace('http', 'ws') + '/ws/draw'); s.onopen = () => { ok(s.extensions); s.close(); }; s.onerror = () => ok('error'); })",
    )
    .await;
    assert_eq!(extensions, "", "negotiated extensions");

    // HTTP: head and body as the server received them; the browser's head carries headers a
    // script cannot see (User-Agent, Sec-Fetch-*), so it outweighs the JSON of a stroke.
    // The stroke is published before the POST is answered, so the other page may show it
    // before this page has counted its send: wait for the answer.
    assert!(
        until_true(
            &lp_page,
            "document.getElementById('draw').drawFigures().strokesSent >= 1",
            Duration::from_secs(10)
        )
        .await,
        "the long-polling page's POST was not answered: {}",
        figures(&lp_page).await
    );
    let lp = figures(&lp_page).await;
    let last = text(&lp_page, "[data-draw=last]").await;
    let head: u64 = last
        .split("request head ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("last send: {last}"));
    assert!(head > 300, "request head {head} B: {last}");
    // Both pages received both lines' strokes, and none was refused.
    for (page, name) in [(&ws_page, "ws"), (&lp_page, "longpoll")] {
        // A page's own stroke comes back through its subscription, possibly a moment later.
        until_true(
            page,
            "document.getElementById('draw').drawFigures().strokesReceived >= 2",
            Duration::from_secs(10),
        )
        .await;
        let f = figures(page).await;
        assert!(f["strokesReceived"].as_u64().unwrap() >= 2, "{name}: {f}");
        assert_eq!(f["refused"], 0, "{name}: {f}");
    }
    eprintln!("measured: ws {ws} · longpoll {lp} · {last}");
    // The page checks received strokes as the server does: nothing but a #rrggbb colour,
    // whole widths and coordinates in range ever reaches the canvas.
    let refused: Vec<bool> = eval(
        &lp_page,
        r##"import('/static/draw.js').then(({ validStroke }) => [
            { color: '#000000;background:url(x)', width: 3, points: [1, 1] },
            { color: '<img src=x>', width: 3, points: [1, 1] },
            { color: '#00ff00', width: '3', points: [1, 1] },
            { color: '#00ff00', width: 3, points: [1, 1.5] },
            { color: '#00ff00', width: 3, points: [1, 1001] },
            { color: '#00ff00', width: 3, points: [1] },
            { color: '#00ff00', width: 3, points: Array(130).fill(1) },
        ].map((s) => validStroke(s) === null))"##,
    )
    .await;
    assert_eq!(refused, vec![true; 7]);
    assert!(eval::<bool>(&lp_page, "import('/static/draw.js').then(({ validStroke }) => validStroke({ color: '#00ff00', width: 3, points: [0, 1000] }) !== null)").await);
    screenshot_element(&ws_page, "#draw", "draw-ws").await;
    for errors in [ws_errors, lp_errors] {
        let errors = errors.all().await;
        assert!(errors.is_empty(), "console errors: {errors:#?}");
    }
}
in_every_engine!(
    a_websocket_page_and_a_long_polling_page_draw_together_and_show_what_sending_costs
);

/// The SSE page listens for every event kind the server names (`/static/facts.js`), so a
/// stroke, sent as `event: stroke`, reaches its canvas: three strokes posted to `/api/draw`
/// by another client are counted as received and drawn in the page's pixels.
async fn strokes_posted_to_the_api_appear_on_the_sse_page(engine: Engine) {
    let app = spawn_app(&[]).await;
    let browser = Browser::launch(engine).await;
    let (page, errors) = browser.open(&app.url("/demos/sse.html")).await;
    assert!(
        until_true(
            &page,
            "document.getElementById('draw')?.dataset.transport === 'sse' \
             && document.querySelector('[data-draw=state]').textContent === 'OPEN'",
            Duration::from_secs(10),
        )
        .await,
        "the SSE canvas did not open its stream: {}",
        text(&page, "[data-draw=state]").await
    );
    // Three strokes, each a horizontal line in blue at its own height.
    for y in [200u32, 500, 800] {
        let stroke = serde_json::json!({
            "color": "#0000ff", "width": 8, "points": [100, y, 500, y, 900, y]
        });
        let (status, body, _) = app
            .send_json(
                reqwest::Method::POST,
                "/api/draw",
                None,
                serde_json::json!({ "strokes": [stroke] }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    assert!(
        until_true(
            &page,
            "document.getElementById('draw').drawFigures().strokesReceived >= 3",
            Duration::from_secs(10),
        )
        .await,
        "{}: the SSE page received {}",
        engine.name(),
        figures(&page).await
    );
    for y in [200, 500, 800] {
        wait_for_ink(&page, 500, y, [0, 0, 255]).await;
    }
    assert_eq!(figures(&page).await["refused"], 0);
    let errors = errors.all().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
in_every_engine!(strokes_posted_to_the_api_appear_on_the_sse_page);
