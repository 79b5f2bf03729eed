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
    pulldown_cmark::html::push_html(&mut rendered, with_heading_ids(parser).into_iter());
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

/// The events of `parser` with an `id` on every heading that has none, made from its text as
/// GitHub makes it (lower case; letters, digits, `-` and `_` kept, spaces turned into `-`, the
/// rest dropped; `-1`, `-2`… after a repeat), so a link to a section (`#1-every-transport-same-job--compare-default`)
/// lands on the same heading on this page and on GitHub.
fn with_heading_ids<'a>(
    parser: impl Iterator<Item = pulldown_cmark::Event<'a>>,
) -> Vec<pulldown_cmark::Event<'a>> {
    use pulldown_cmark::{Event, Tag, TagEnd};
    let mut events: Vec<Event<'a>> = parser.collect();
    let mut seen: Vec<String> = Vec::new();
    for i in 0..events.len() {
        if !matches!(&events[i], Event::Start(Tag::Heading { id: None, .. })) {
            continue;
        }
        let mut text = String::new();
        for event in &events[i + 1..] {
            match event {
                Event::End(TagEnd::Heading(_)) => break,
                Event::Text(t) | Event::Code(t) => text.push_str(t),
                _ => {}
            }
        }
        let base = slug(&text);
        let repeats = seen.iter().filter(|s| **s == base).count();
        let id = if repeats == 0 {
            base.clone()
        } else {
            format!("{base}-{repeats}")
        };
        seen.push(base);
        if let Event::Start(Tag::Heading { id: slot, .. }) = &mut events[i] {
            *slot = Some(id.into());
        }
    }
    events
}

/// A heading's anchor as GitHub spells it.
fn slug(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
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
    fn headings_get_the_anchors_github_gives_them() {
        assert_eq!(
            slug("1. Every transport, same job \u{2014} compare-default/"),
            "1-every-transport-same-job--compare-default"
        );
        assert_eq!(
            slug("6. pushpoll against nginx + Nchan \u{2014} peers/"),
            "6-pushpoll-against-nginx--nchan--peers"
        );
        let html = render();
        assert!(html.contains(r#"<h2 id="when-it-breaks--churn-storm">"#));
    }

    /// Every link of the page to a section of itself (the charts at the top, the compare
    /// page's captions) lands on a heading of the page.
    #[test]
    fn every_section_link_names_a_heading() {
        let html = render();
        let targets: Vec<&str> = html
            .split(r##"href="#"##)
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert!(targets.len() >= 6, "{targets:?}");
        let compare =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/demos/compare.html"))
                .unwrap();
        let from_compare: Vec<&str> = compare
            .split(r#"href="/results/#"#)
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert!(from_compare.len() >= 5, "{from_compare:?}");
        for id in targets.iter().chain(&from_compare) {
            assert!(html.contains(&format!(r#" id="{id}""#)), "no heading #{id}");
        }
    }

    #[test]
    fn the_committed_results_are_embedded() {
        assert!(file("README.md").is_some());
        assert!(file("compare-default/summary.json").is_some());
        assert!(RESULTS.iter().any(|(p, _)| p.ends_with("latency.svg")));
    }
}
