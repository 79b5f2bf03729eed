//! `/results`: the committed measurements (`results/`, embedded at build time) as a page —
//! `results/README.md` rendered, with its tables and SVG charts — and every raw file beside it.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::ApiError;

use crate::figures::RESULTS;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'";

/// `/results` → `/results/`, so the README's relative links resolve under it.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/results/")
}

pub async fn page() -> Result<Response, ApiError> {
    let readme = file("README.md")
        .ok_or_else(|| ApiError::NotFound("no results/README.md in this build".into()))?;
    let markdown = String::from_utf8_lossy(readme);
    let mut rendered = String::new();
    let parser = pulldown_cmark::Parser::new_ext(&markdown, pulldown_cmark::Options::ENABLE_TABLES);
    pulldown_cmark::html::push_html(&mut rendered, parser);
    // Table alignment comes out as inline styles, which the page's CSP (rightly) blocks:
    // turn them into classes styled from style.css.
    let rendered = rendered
        .replace(r#" style="text-align: right""#, r#" class="num""#)
        .replace(r#" style="text-align: center""#, r#" class="mid""#)
        .replace(r#" style="text-align: left""#, "");
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Results · pushpoll</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/style.css">
  <script src="/static/errors.js"></script>
</head>
<body data-transport="results">
<header class="site">
  <a class="brand" href="/"><img src="/static/favicon.svg" alt="" width="24" height="24"> pushpoll</a>
  <nav aria-label="Pages"><ul><li><a href="/">Demos</a></li><li><a href="/demos/dashboard.html">Dashboard</a></li><li><a href="/results/" aria-current="page">Results</a></li></ul></nav>
</header>
<main class="results">
  <p class="lead">In one paragraph: in these runs every transport delivered every message, none twice, on loopback and with no connection broken (resuming after a break is not exercised by these runs); delivery is at-least-once from the client&rsquo;s cursor, de-duplicated by id. On a healthy connection the transports differ in cost, and the choice also turns on reach (proxies that buffer streams or refuse upgrades), direction and what a break does. Short polling pays in latency (the interval) and empty requests; long polling pays a full HTTP request per delivery, up and down; the hidden iframe, SSE and WebSocket pay one connection each and deliver in milliseconds, WebSocket with the smallest frames and, once upgraded, the least memory per client. The figures below come from <code>loadtest</code> on the machine named, with the commands given; every raw file is linked beside them.</p>
{rendered}
  <h2>Raw files</h2>
  <ul class="results-files">{files}</ul>
</main>
<footer class="site"><p id="page-errors" class="page-errors" role="alert" hidden></p></footer>
</body>
</html>"#,
        files = RESULTS
            .iter()
            .map(|(path, _)| format!(r#"<li><a href="{path}">{path}</a></li>"#))
            .collect::<String>()
    );
    Ok((
        [
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        axum::response::Html(html),
    )
        .into_response())
}

fn file(path: &str) -> Option<&'static [u8]> {
    crate::figures::result_file(path)
}

pub async fn raw(Path(path): Path<String>) -> Result<Response, ApiError> {
    let body = file(&path).ok_or_else(|| ApiError::NotFound(format!("no results file {path}")))?;
    let kind = match path.rsplit('.').next() {
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("csv") => "text/csv; charset=utf-8",
        Some("md") => "text/markdown; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_tables_carry_no_inline_styles() {
        let html = render();
        assert!(
            !html.contains("style="),
            "inline styles would be blocked by the CSP"
        );
    }

    fn render() -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let response = rt.block_on(page()).unwrap();
        let body = rt
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[test]
    fn the_committed_results_are_embedded() {
        assert!(file("README.md").is_some());
        assert!(file("compare-default/summary.json").is_some());
        assert!(RESULTS.iter().any(|(p, _)| p.ends_with("latency.svg")));
    }
}
