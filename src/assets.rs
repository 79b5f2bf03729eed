//! The demo pages and their CSS/JS, compiled into the binary so the server works from any
//! working directory. Pages get a Content-Security-Policy that allows nothing from another
//! origin and no inline script: the promise "pages load nothing from outside" is enforced
//! by the browser, not just kept by hand.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::error::ApiError;
use crate::facts;
use crate::names::Transport;

/// The generated module of shared lists and limits (not a file: `facts::module` builds it).
pub const FACTS_JS: &str = "static/facts.js";

static FACTS_MODULE: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(facts::module()));

pub struct Asset {
    /// Path relative to the repository root, e.g. `demos/sse.html`.
    pub path: &'static str,
    pub body: &'static [u8],
}

// `ASSETS`: every file under `demos/` and `static/`, subfolders included, listed by build.rs.
include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// `connect-src` also names the loopback aliases of this machine, so the compare page can
/// reach the server under a second origin (`localhost` next to `127.0.0.1`) for a second
/// pool of connections; nothing off this machine.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' http://127.0.0.1:* http://localhost:*; \
                   frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Where a page pulls in a shared fragment: `<!-- include _NAME.html -->`.
const INCLUDE: &str = "<!-- include ";

/// The pages with their fragments expanded, built once at first use. Fragments (files named
/// `_*.html`) hold markup several pages share, such as the chat panel; they are not pages.
static PAGES: LazyLock<HashMap<&'static str, Bytes>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .filter(|a| a.path.ends_with(".html"))
        .map(|a| {
            (
                a.path,
                Bytes::from(expand(&String::from_utf8_lossy(a.body), url_of(a.path))),
            )
        })
        .collect()
});

/// The URL a page is served at: `/` for the index.
fn url_of(path: &str) -> String {
    if path == "demos/index.html" {
        "/".to_string()
    } else {
        format!("/{path}")
    }
}

/// Expands the page's includes, then fills its `<!--fact:…-->` markers from the code
/// ([`facts::fill`]); the link to `url` itself is marked `aria-current="page"`.
fn expand(page: &str, url: String) -> String {
    facts::fill(&include_fragments(&each_transport(page), url))
}

/// Where a page repeats a fragment once per transport: `<!-- each-transport _NAME.html -->`.
const EACH_TRANSPORT: &str = "<!-- each-transport ";

/// The page with each `<!-- each-transport _NAME.html -->` line replaced by the fragment once
/// per transport, in [`Transport::ALL`]'s order, with `{transport}` and `{title}` filled in:
/// so a page that shows every transport lists them from `src/names.rs`, not by hand. A
/// `<!-- include _NAME.html -->` in the fragment whose file does not exist for a transport
/// (a control only one transport has) is dropped.
fn each_transport(page: &str) -> String {
    let mut out = String::with_capacity(page.len() * 2);
    let mut rest = page;
    while let Some(start) = rest.find(EACH_TRANSPORT) {
        let after = &rest[start + EACH_TRANSPORT.len()..];
        let Some(end) = after.find(" -->") else { break };
        let Some(fragment) = ASSETS
            .iter()
            .find(|a| a.path == format!("demos/{}", &after[..end]))
        else {
            out.push_str(&rest[..start + EACH_TRANSPORT.len() + end + 4]);
            rest = &after[end + 4..];
            continue;
        };
        // The fragments replace the marker's whole line (its indentation included).
        out.push_str(rest[..start].trim_end_matches(' '));
        let template = String::from_utf8_lossy(fragment.body);
        // A one-line fragment of table markup (a cell, a row) repeats on one line, as it
        // would be typed: whitespace between cells would show in the row's text. Any other
        // (a list item) repeats a line each.
        let table = ["<td", "<th", "<tr"]
            .iter()
            .any(|tag| template.trim_start().starts_with(tag));
        if table && template.trim_end().lines().count() == 1 {
            let indent = &template[..template.len() - template.trim_start().len()];
            out.push_str(indent);
            for transport in Transport::ALL {
                out.push_str(
                    &template
                        .trim()
                        .replace("{transport}", transport.as_str())
                        .replace("{title}", transport.title()),
                );
            }
            out.push('\n');
            rest = after[end + 4..]
                .strip_prefix('\n')
                .unwrap_or(&after[end + 4..]);
            continue;
        }
        for transport in Transport::ALL {
            let filled = template
                .replace("{transport}", transport.as_str())
                .replace("{title}", transport.title());
            for line in filled.lines() {
                let missing = line
                    .trim()
                    .strip_prefix(INCLUDE)
                    .and_then(|l| l.strip_suffix(" -->"))
                    .is_some_and(|name| !ASSETS.iter().any(|a| a.path == format!("demos/{name}")));
                if !missing {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        rest = after[end + 4..]
            .strip_prefix('\n')
            .unwrap_or(&after[end + 4..]);
    }
    out.push_str(rest);
    out
}

/// How deep fragments may include fragments (`_timeline.html` includes `_timeline_body.html`,
/// which the compare page includes alone); past it an include stays as it is, which the
/// assets test reports.
const MAX_INCLUDE_DEPTH: usize = 3;

/// The page with its `<!-- include _NAME.html -->` lines replaced by the fragments.
fn include_fragments(page: &str, url: String) -> String {
    crate::figures::expand_html(&include_within(page, &url, MAX_INCLUDE_DEPTH))
}

/// [`include_fragments`] to `depth` levels of fragments within fragments.
fn include_within(page: &str, url: &str, depth: usize) -> String {
    if depth == 0 {
        return page.to_string();
    }
    let mut out = String::with_capacity(page.len() * 2);
    let mut rest = page;
    while let Some(start) = rest.find(INCLUDE) {
        out.push_str(&rest[..start]);
        let after = &rest[start + INCLUDE.len()..];
        let Some(end) = after.find(" -->") else { break };
        let name = &after[..end];
        match ASSETS.iter().find(|a| a.path == format!("demos/{name}")) {
            Some(fragment) => {
                // A fragment may list the transports too (the header's links to their pages).
                let fragment_text = include_within(
                    &each_transport(&String::from_utf8_lossy(fragment.body)),
                    url,
                    depth - 1,
                );
                let current = format!("href=\"{url}\"");
                let marked = fragment_text.replacen(
                    &current,
                    &format!("{current} aria-current=\"page\""),
                    1,
                );
                // The fragment replaces the marker's whole line (its indentation included).
                let indent_start = out.trim_end_matches(' ').len();
                if indent_start == 0 || out[..indent_start].ends_with('\n') {
                    out.truncate(indent_start);
                }
                out.push_str(&marked);
                rest = after[end + 4..]
                    .strip_prefix('\n')
                    .unwrap_or(&after[end + 4..]);
            }
            None => {
                out.push_str(&rest[start..start + INCLUDE.len() + end + 4]);
                rest = &after[end + 4..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_fragment(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with('_'))
}

fn serve(path: &str) -> Result<Response, ApiError> {
    let body = if path == FACTS_JS {
        FACTS_MODULE.clone()
    } else {
        let asset = ASSETS
            .iter()
            .find(|a| a.path == path && !is_fragment(a.path))
            .ok_or_else(|| ApiError::NotFound(format!("no page or file at /{path}")))?;
        PAGES
            .get(asset.path)
            .cloned()
            .unwrap_or_else(|| Bytes::from_static(asset.body))
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(path)),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response())
}

pub async fn index() -> Result<Response, ApiError> {
    serve("demos/index.html")
}

pub async fn demo(Path(file): Path<String>) -> Result<Response, ApiError> {
    serve(&format!("demos/{file}"))
}

pub async fn static_file(Path(file): Path<String>) -> Result<Response, ApiError> {
    serve(&format!("static/{file}"))
}

pub async fn favicon() -> Result<Response, ApiError> {
    serve("static/favicon.svg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_show_figures_from_the_results_with_their_source() {
        let text = std::str::from_utf8(&PAGES["demos/compare.html"]).unwrap();
        assert!(
            !text.contains(crate::figures::OPEN),
            "an unexpanded figure marker"
        );
        let p50 = crate::figures::resolve(
            "compare-default/summary.json#/results/[transport=longpoll]/latency_us/p50;mul=0.001;dp=1",
        )
        .unwrap();
        assert!(text.contains(&format!(r#"<span class="figure">{}</span>"#, p50.value)));
        let source = format!(
            r#"href="/results/{}" title="results/{}, "#,
            p50.path, p50.path
        );
        assert!(text.contains(&source), "the table cites its run");
        assert!(text.contains(&format!("({}, {})</a>", p50.name, p50.date)));
        for page in PAGES.values() {
            let page = std::str::from_utf8(page).unwrap();
            assert!(
                !page.contains(crate::figures::OPEN),
                "an unexpanded figure marker"
            );
        }
    }

    #[test]
    fn every_page_includes_its_fragments_and_fragments_are_not_served() {
        // Every transport has its page (a new one without it fails here).
        for page in Transport::NAMES {
            let body = &PAGES[format!("demos/{page}.html").as_str()];
            let text = std::str::from_utf8(body).unwrap();
            assert!(!text.contains(INCLUDE), "{page}: unexpanded include");
            assert!(text.contains("id=\"chat-log\""), "{page}: no chat panel");
            assert!(text.contains("id=\"draw-canvas\""), "{page}: no canvas");
            let current = format!("href=\"/demos/{page}.html\" aria-current=\"page\"");
            assert_eq!(
                text.matches(&current).count(),
                1,
                "{page}: its own nav link is marked"
            );
            assert!(
                text.contains("<footer class=\"site\">"),
                "{page}: no footer"
            );
        }
        assert!(
            std::str::from_utf8(&PAGES["demos/index.html"])
                .unwrap()
                .contains("href=\"/\" aria-current=\"page\"")
        );
        assert!(serve("demos/_chat.html").is_err());
    }

    #[test]
    fn every_file_under_demos_and_static_is_embedded() {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut dirs = vec!["demos".to_string(), "static".to_string()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().into_string().unwrap();
                let path = format!("{dir}/{name}");
                if entry.file_type().unwrap().is_dir() {
                    dirs.push(path);
                    continue;
                }
                assert!(
                    ASSETS.iter().any(|a| a.path == path),
                    "{path} is not in ASSETS"
                );
            }
        }
    }
}
