//! The facts the server shares with the pages and the docs, gathered from where they are
//! defined (nothing here is a second copy): the transports and feeds (`names`), each feed's
//! event kinds (`event`), the error codes (`error`), the limits the pages state, and the
//! HTTP/2 stream cap (`listener`). From them this module builds `/static/facts.js`, the ES
//! module every page imports instead of spelling a list, and the text of the
//! `<!--fact:NAME-->TEXT<!--/fact-->` markers in pages, README.md and docs/*.md, which the
//! server substitutes when it builds a page and `tests/facts.rs` checks (and rewrites) in
//! the files.

use std::time::Duration;

use clap::CommandFactory;
use serde_json::{Value, json};

use crate::chat::name::NAME_CHARS;
use crate::chat::session::{RATE_LIMIT, RATE_LIMIT_BYTES, RATE_WINDOW};
use crate::chat::{MAX_HISTORY, MAX_TEXT_CHARS};
use crate::config::{self, Config};
use crate::error::ApiError;
use crate::event::EventBody;
use crate::feed::draw;
use crate::http::{MAX_BODY_BYTES, MAX_ROOMS};
pub use crate::names::{FeedName, Transport};
pub use crate::net::listener::MAX_H2_STREAMS;
use crate::net::listener::liveness;
use crate::net::tickets;

/// The event kinds (`type` values, SSE `event:` names) a subscriber of `feed` can receive.
/// Every feed can get a `gap`; the match makes a new feed name its kinds.
pub fn event_kinds(feed: FeedName) -> Vec<&'static str> {
    let own: &[&str] = match feed {
        FeedName::Clock => &["tick"],
        FeedName::Chat => &["message", "whisper", "join", "leave", "rename"],
        FeedName::Draw => &["stroke"],
    };
    // Spelled through `EventBody::KINDS`, so a kind that is not an event fails at once.
    own.iter()
        .chain(&["gap"])
        .map(|k| {
            *EventBody::KINDS
                .iter()
                .find(|known| *known == k)
                .unwrap_or_else(|| panic!("{k} is not in EventBody::KINDS"))
        })
        .collect()
}

/// The limits the pages state, by the name `facts.js` exports them under `LIMITS`.
fn limits() -> Value {
    json!({
        "nameChars": { "min": NAME_CHARS.start(), "max": NAME_CHARS.end() },
        "textChars": MAX_TEXT_CHARS,
        "historyMax": MAX_HISTORY,
        "rateLimit": RATE_LIMIT,
        "rateLimitBytes": RATE_LIMIT_BYTES,
        "rateWindowS": RATE_WINDOW.as_secs(),
        "bodyBytes": MAX_BODY_BYTES,
        "drawMaxCoord": draw::MAX_COORD,
        "drawMaxPoints": draw::MAX_POINTS,
        "drawMaxStrokes": draw::MAX_STROKES,
        "drawWidth": { "min": draw::WIDTHS.start(), "max": draw::WIDTHS.end() },
        "drawKept": draw::WINDOW,
        "iframeDocumentBytes": crate::wire::IFRAME_DOCUMENT_BYTES,
        "roomsPerSubscription": MAX_ROOMS,
    })
}

/// `{"a":"a","b":"b"}`: each name under itself.
fn by_name(all: &[&str]) -> Value {
    all.iter()
        .map(|c| (c.to_string(), json!(c)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// What `/static/facts.js` exports, name by name.
fn exports() -> Vec<(&'static str, Value)> {
    let names = |all: &[&'static str]| json!(all);
    vec![
        ("TRANSPORTS", names(&Transport::ALL.map(Transport::as_str))),
        ("FEEDS", names(&FeedName::ALL.map(FeedName::as_str))),
        // By name, for a page's own subset (`TRANSPORT.sse`): a typo is `undefined`, and no
        // list is spelled twice.
        ("TRANSPORT", by_name(&Transport::ALL.map(Transport::as_str))),
        ("FEED", by_name(&FeedName::ALL.map(FeedName::as_str))),
        // Each transport's name as the pages write it: [heading or cell, inside a sentence].
        (
            "TRANSPORT_NAMES",
            Transport::ALL
                .iter()
                .map(|t| {
                    (
                        t.as_str().to_string(),
                        json!([t.title(), t.name_in_sentence()]),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
        ),
        // The transports whose page sends upstream on their own connection.
        (
            "TWO_WAY",
            names(
                &Transport::ALL
                    .into_iter()
                    .filter(|t| t.two_way())
                    .map(Transport::as_str)
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "TRANSPORT_COLORS",
            Transport::ALL
                .iter()
                .map(|t| (t.as_str().to_string(), json!(t.color())))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        ),
        (
            "EVENT_KINDS",
            FeedName::ALL
                .iter()
                .map(|f| (f.as_str().to_string(), json!(event_kinds(*f))))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        ),
        ("ALL_EVENT_KINDS", names(&EventBody::KINDS)),
        ("ERROR_CODES", by_name(&ApiError::CODES)),
        ("LIMITS", limits()),
        ("H2_MAX_STREAMS", json!(MAX_H2_STREAMS)),
        ("SILENCE_FACTOR", json!(liveness::SILENCE_FACTOR)),
        // The heartbeat's JSON member and its SSE event name (src/wire.rs).
        ("HEARTBEAT_MEMBER", json!(crate::wire::HEARTBEAT_MEMBER)),
        (
            "SSE_HEARTBEAT_EVENT",
            json!(crate::wire::SSE_HEARTBEAT_EVENT),
        ),
        // The `fetch` stream's media type (src/wire.rs).
        (
            "NDJSON_CONTENT_TYPE",
            json!(crate::wire::NDJSON_CONTENT_TYPE),
        ),
    ]
}

/// The text of `/static/facts.js`: one frozen `export const` per fact.
pub fn module() -> String {
    let mut out = String::from(
        "// Generated by the server from src/facts.rs (GET /static/facts.js); never edit a copy.\n\
         // The lists and limits every page shares: import them, never spell them.\n\
         const freeze = (v) => {\n  if (v && typeof v === 'object') {\n    Object.values(v).forEach(freeze);\n    Object.freeze(v);\n  }\n  return v;\n};\n",
    );
    for (name, value) in exports() {
        out.push_str(&format!("export const {name} = freeze({value});\n"));
    }
    out
}

/// `a, b or c`.
fn words(items: &[&str]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// How many transports there are, as a word (`six`), for prose that counts them.
fn transport_count() -> String {
    const WORDS: [&str; 13] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve",
    ];
    WORDS
        .get(Transport::ALL.len())
        .map_or_else(|| Transport::ALL.len().to_string(), |w| (*w).to_string())
}

/// `short polling, long polling, … and WebSocket`: every transport's name in a sentence.
fn transport_names() -> String {
    let names = Transport::ALL.map(Transport::name_in_sentence);
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// `4,096`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A flag's default as `--help` shows it (`20000`, `10s`), or `None` for a flag without one.
pub fn flag_default(flag: &str) -> Option<String> {
    let command = Config::command();
    let arg = command
        .get_arguments()
        .find(|a| a.get_long() == Some(flag))?;
    let values: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// A default the server derives at start from the machine, as the docs state it (clap has no
/// default for such a flag: `None` means "derive it"). `max-connections`: from the open-files
/// limit ([`config::default_max_connections`]).
pub fn derived_default(flag: &str) -> Option<String> {
    (flag == "max-connections").then(|| {
        format!(
            "{}, or the open-files limit minus {} when that is lower",
            config::MAX_CONNECTIONS,
            config::OPEN_FILES_RESERVE
        )
    })
}

/// `10s` as the docs write it (`10 s`); anything else unchanged.
fn spaced_duration(default: &str) -> String {
    match crate::config::parse_duration(default) {
        Ok(d) if d < Duration::from_secs(60) && default.ends_with('s') => {
            format!("{} s", d.as_secs())
        }
        _ => default.to_string(),
    }
}

/// The text a `<!--fact:NAME-->` marker stands for, or `None` for a name that is none.
/// Names: `transports`, `transport-count` (`six`), `transport-names` (each transport's name
/// in a sentence, `… and WebSocket`), `feeds` (`clock, chat or draw`), `event-kinds:FEED`,
/// `h2-max-streams`, `draw-kept` and `draw-live` (strokes kept; the live ring),
/// `webtransport-tickets-per-session` and `webtransport-tickets-total` (`crate::net::tickets`), `default:FLAG` (a server flag's default, `10 s` for durations;
/// for a default derived at start, how: [`derived_default`]).
pub fn text(name: &str) -> Option<String> {
    if let Some(feed) = name.strip_prefix("event-kinds:") {
        return Some(words(&event_kinds(FeedName::parse(feed)?)));
    }
    if let Some(flag) = name.strip_prefix("default:") {
        return flag_default(flag)
            .map(|default| spaced_duration(&default))
            .or_else(|| derived_default(flag));
    }
    Some(match name {
        "transports" => words(&Transport::ALL.map(Transport::as_str)),
        "transport-count" => transport_count(),
        "transport-names" => transport_names(),
        "feeds" => words(&FeedName::ALL.map(FeedName::as_str)),
        "h2-max-streams" => MAX_H2_STREAMS.to_string(),
        "silence-factor" => liveness::SILENCE_FACTOR.to_string(),
        "draw-kept" => thousands(draw::WINDOW),
        "draw-live" => thousands(draw::LAG),
        "webtransport-tickets-per-session" => tickets::PER_OWNER.to_string(),
        "webtransport-tickets-total" => thousands(tickets::MAX_TICKETS),
        _ => return None,
    })
}

/// Where a marker opens and closes.
pub const OPEN: &str = "<!--fact:";
pub const CLOSE: &str = "<!--/fact-->";

/// A marker in a text: its name, where its TEXT starts and ends (byte offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker<'a> {
    pub name: &'a str,
    pub text: std::ops::Range<usize>,
}

/// The markers of `page`, in order; a marker without its closing tag ends the scan, and an
/// opening whose name is not lower case (`<!--fact:NAME-->` in prose) is not a marker.
pub fn markers(page: &str) -> Vec<Marker<'_>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = page[from..].find(OPEN).map(|i| from + i) {
        let name_start = open + OPEN.len();
        let Some(name_end) = page[name_start..].find("-->").map(|i| name_start + i) else {
            break;
        };
        let name = &page[name_start..name_end];
        // Fact names are lower case (`default:send-timeout`): `<!--fact:NAME-->` in prose
        // that describes the syntax is not a marker.
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-:_".contains(&b))
        {
            from = name_start;
            continue;
        }
        let text_start = name_end + 3;
        let Some(text_end) = page[text_start..].find(CLOSE).map(|i| text_start + i) else {
            break;
        };
        found.push(Marker {
            name,
            text: text_start..text_end,
        });
        from = text_end + CLOSE.len();
    }
    found
}

/// `page` with every marker's TEXT replaced by what the code says now (markers kept, so the
/// file stays checkable). An unknown name is left as it is; `tests/facts.rs` reports it.
pub fn fill(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    let mut last = 0;
    for m in markers(page) {
        if let Some(now) = text(m.name) {
            out.push_str(&page[last..m.text.start]);
            out.push_str(&now);
            last = m.text.end;
        }
    }
    out.push_str(&page[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_filled_from_the_code_and_unknown_ones_left_alone() {
        let page = "FEED is <!--fact:feeds-->clock or chat<!--/fact--> and \
                    <!--fact:nope-->x<!--/fact--> cap <!--fact:h2-max-streams-->1<!--/fact-->";
        assert_eq!(
            fill(page),
            format!(
                "FEED is <!--fact:feeds-->clock, chat or draw<!--/fact--> and \
                 <!--fact:nope-->x<!--/fact--> cap <!--fact:h2-max-streams-->{MAX_H2_STREAMS}<!--/fact-->"
            )
        );
        assert_eq!(text("event-kinds:draw").as_deref(), Some("stroke or gap"));
        let prose = "write `<!--fact:NAME-->TEXT<!--/fact-->` for <!--fact:feeds-->x<!--/fact-->";
        assert_eq!(markers(prose).len(), 1);
        assert_eq!(markers(prose)[0].name, "feeds");
        assert_eq!(text("default:send-timeout").as_deref(), Some("30 s"));
        assert_eq!(
            text("default:max-connections").as_deref(),
            Some("20000, or the open-files limit minus 64 when that is lower")
        );
        assert_eq!(text("default:no-such-flag"), None);
        assert_eq!(thousands(4096), "4,096");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn the_module_exports_every_feed_kind_and_the_stream_cap() {
        let js = module();
        assert!(js.contains(r#"export const FEEDS = freeze(["clock","chat","draw"]);"#));
        let transports = serde_json::to_string(&Transport::ALL.map(Transport::as_str)).unwrap();
        assert!(js.contains(&format!("export const TRANSPORTS = freeze({transports});")));
        assert!(js.contains(r#""draw":["stroke","gap"]"#), "{js}");
        assert!(js.contains(&format!(
            "export const H2_MAX_STREAMS = freeze({MAX_H2_STREAMS});"
        )));
    }

    #[test]
    fn the_help_states_how_the_derived_default_is_derived() {
        let command = Config::command();
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some("max-connections"))
            .unwrap();
        assert!(
            arg.get_default_values().is_empty(),
            "derived at start, not clap's"
        );
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        for number in [config::MAX_CONNECTIONS, config::OPEN_FILES_RESERVE] {
            assert!(help.contains(&number.to_string()), "{help}");
        }
        assert!(derived_default("max-connections").is_some());
        assert_eq!(derived_default("send-timeout"), None);
    }

    #[test]
    fn the_keepalive_help_states_the_pages_silence_factor() {
        let command = Config::command();
        let help = command
            .get_arguments()
            .find(|a| a.get_long() == Some("keepalive"))
            .and_then(|a| a.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        let factor = liveness::SILENCE_FACTOR.to_string();
        assert!(help.contains(&format!("{factor} times")), "{help}");
    }
}
