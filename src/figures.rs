//! Figures are data: the committed measurements (`results/`, embedded at build time) and the
//! figure markers that quote them in pages and docs, `<!--figure:SPEC-->TEXT<!--/figure-->`.
//! docs/FIGURES.md defines the grammar; this module resolves a SPEC against the embedded
//! results, renders its TEXT, and expands the markers of a page with their citation.
//! `tests/figures.rs` checks every marker in the pages and docs against [`rewrite`].

use serde_json::Value;

include!(concat!(env!("OUT_DIR"), "/results.rs"));

/// The opening of a figure marker; the SPEC follows up to [`SPEC_END`].
pub const OPEN: &str = "<!--figure:";
/// The end of a marker's SPEC; TEXT follows up to [`CLOSE`].
pub const SPEC_END: &str = "-->";
/// The closing of a figure marker.
pub const CLOSE: &str = "<!--/figure-->";

/// A committed file under `results/` (path relative to it), if this build embeds it.
pub fn result_file(path: &str) -> Option<&'static [u8]> {
    RESULTS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, body)| *body)
}

/// One resolved SPEC: the rendered value and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The file under `results/` the value is in.
    pub path: String,
    /// The JSON pointer to it, as written.
    pub pointer: String,
    /// The rendered value with its unit ("4.4 ms").
    pub value: String,
    /// The result's name: the first segment of `path`.
    pub name: String,
    /// The run's date, YYYY-MM-DD.
    pub date: String,
}

impl Figure {
    /// The citation as Markdown: `([NAME](/results/PATH), DATE)`.
    pub fn markdown_citation(&self) -> String {
        format!("([{}](/results/{}), {})", self.name, self.path, self.date)
    }

    /// The citation as HTML, a link to the committed file.
    pub fn html_citation(&self) -> String {
        format!(
            r#"<a class="figure-source" href="/results/{}" title="results/{}, {}">({}, {})</a>"#,
            escape(&self.path),
            escape(&self.path),
            escape(&self.pointer),
            escape(&self.name),
            escape(&self.date)
        )
    }
}

/// Why a marker or its SPEC does not resolve: what `tests/figures.rs` reports for a doc or a
/// page to be fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadFigure {
    #[error("unclosed figure marker at byte {0}")]
    Unclosed(usize),
    #[error("figure marker at byte {0} has no {CLOSE}")]
    NoClose(usize),
    /// The SPEC (first) breaks the grammar of docs/FIGURES.md in the way the second says.
    #[error("{0}: {1}")]
    Spec(String, String),
    #[error("no committed results/{0}")]
    NoFile(String),
    /// A committed file that is not the JSON, CSV or text it should be: the parser's words.
    #[error("results/{0}: {1}")]
    Unreadable(String, String),
    /// `PATH#POINTER` (first) does not point at one value, for the reason second.
    #[error("{0}: {1}")]
    Pointer(String, String),
}

/// Resolves a SPEC (`PATH#POINTER;OPTION;…`, docs/FIGURES.md) against the embedded results.
pub fn resolve(spec: &str) -> Result<Figure, BadFigure> {
    let bad = |why: String| BadFigure::Spec(spec.to_owned(), why);
    let mut parts = spec.split(';');
    let target = parts.next().unwrap_or_default();
    let (path, pointer) = target
        .split_once('#')
        .ok_or_else(|| bad("no '#' between the file and the pointer".into()))?;
    let number = lookup(path, pointer)?
        .as_f64()
        .ok_or_else(|| bad(format!("the value at {pointer} is not a number")))?;
    let mut value = number;
    let mut dp = 0usize;
    let mut unit = None;
    let mut group = false;
    let mut date_at = None;
    for option in parts {
        let (key, arg) = option.split_once('=').unwrap_or((option, ""));
        // A factor is a number, or a pointer ("/…") to a number in the same file.
        let factor = || {
            if arg.starts_with('/') {
                lookup(path, arg)?
                    .as_f64()
                    .ok_or_else(|| bad(format!("{key}={arg} is not a number")))
            } else {
                arg.parse::<f64>()
                    .map_err(|_| bad(format!("{key}= needs a number, not {arg:?}")))
            }
        };
        match key {
            "mul" => value *= factor()?,
            "div" => value /= factor()?,
            "dp" => {
                dp = arg
                    .parse()
                    .map_err(|_| bad(format!("dp= needs a digit, not {arg:?}")))?
            }
            "unit" if !arg.is_empty() => unit = Some(arg),
            "group" if arg.is_empty() => group = true,
            "date" => date_at = Some(arg),
            _ => return Err(bad(format!("unknown option {option:?}"))),
        }
    }
    let mut text = format_number(value, dp, group);
    match unit {
        Some("%") => text.push('%'),
        Some(unit) => {
            text.push(' ');
            text.push_str(unit);
        }
        None => {}
    }
    let date = match date_at {
        Some(at) => {
            let (file, pointer) = at
                .split_once('#')
                .ok_or_else(|| bad("date= needs FILE#POINTER".into()))?;
            lookup(file, pointer)?
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("the date at {at} is not a string")))?
        }
        None => {
            let root = parse(path)?;
            root.get("started")
                .or_else(|| root.get("date"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    bad(format!(
                        "{path} has no \"started\" or \"date\"; name one with date="
                    ))
                })?
        }
    };
    let date: String = date.chars().take(10).collect();
    if date.len() != 10 || date.as_bytes()[4] != b'-' || date.as_bytes()[7] != b'-' {
        return Err(bad(format!("{date:?} is not a YYYY-MM-DD date")));
    }
    Ok(Figure {
        name: path.split('/').next().unwrap_or(path).to_owned(),
        path: path.to_owned(),
        pointer: pointer.to_owned(),
        value: text,
        date,
    })
}

/// A committed file as JSON: `.json` as it is; `.jsonl` as an array of its lines; `.csv` as an
/// array of objects, one per row, keyed by the header (a cell that parses as a number is one);
/// `.txt` of `key: value` lines (a `machine.txt`) as an object of strings.
fn parse(path: &str) -> Result<Value, BadFigure> {
    let body = result_file(path).ok_or_else(|| BadFigure::NoFile(path.to_owned()))?;
    let text = std::str::from_utf8(body)
        .map_err(|e| BadFigure::Unreadable(path.to_owned(), e.to_string()))?;
    let bad = |e: serde_json::Error| BadFigure::Unreadable(path.to_owned(), e.to_string());
    match path.rsplit('.').next() {
        Some("jsonl") => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(bad))
            .collect::<Result<Vec<Value>, _>>()
            .map(Value::Array),
        Some("csv") => {
            let mut lines = text.lines().filter(|l| !l.trim().is_empty());
            let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
            let rows = lines.map(|line| {
                let cells = header.iter().zip(line.split(',')).map(|(key, cell)| {
                    let value = match cell.parse::<f64>() {
                        Ok(n) => serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
                        Err(_) => Value::String(cell.to_owned()),
                    };
                    ((*key).to_owned(), value)
                });
                Value::Object(cells.collect())
            });
            Ok(Value::Array(rows.collect()))
        }
        Some("txt") => Ok(Value::Object(
            text.lines()
                .filter_map(|l| l.split_once(": "))
                .map(|(k, v)| (k.trim().to_owned(), Value::String(v.trim().to_owned())))
                .collect(),
        )),
        _ => serde_json::from_str(text).map_err(bad),
    }
}

/// The value at an RFC 6901 pointer in a committed JSON file, with the `[KEY=VALUE]` token
/// that selects the one array element whose member KEY is VALUE.
fn lookup(path: &str, pointer: &str) -> Result<Value, BadFigure> {
    let root = parse(path)?;
    let bad = |why: String| BadFigure::Pointer(format!("{path}#{pointer}"), why);
    let Some(tokens) = pointer.strip_prefix('/') else {
        return Err(bad("a pointer starts with '/'".into()));
    };
    let mut here = &root;
    for raw in tokens.split('/') {
        let token = raw.replace("~1", "/").replace("~0", "~");
        let next = match (
            here,
            token.strip_prefix('[').and_then(|t| t.strip_suffix(']')),
        ) {
            (Value::Array(items), Some(select)) => {
                let mut wants = Vec::new();
                for pair in select.split(',') {
                    wants.push(
                        pair.split_once('=').ok_or_else(|| {
                            bad(format!("[{select}] needs KEY=VALUE[,KEY=VALUE]"))
                        })?,
                    );
                }
                let mut found = items.iter().filter(|item| {
                    wants.iter().all(|(key, want)| match item.get(key) {
                        Some(Value::String(s)) => s == want,
                        Some(Value::Number(n)) => {
                            n.to_string() == *want || n.as_f64() == want.parse::<f64>().ok()
                        }
                        _ => false,
                    })
                });
                match (found.next(), found.next()) {
                    (Some(one), None) => Some(one),
                    (Some(_), Some(_)) => {
                        return Err(bad(format!("more than one element has {select}")));
                    }
                    _ => None,
                }
            }
            (Value::Array(items), None) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
            (Value::Object(map), _) => map.get(&token),
            _ => None,
        };
        here = next.ok_or_else(|| bad(format!("nothing at {raw:?}")))?;
    }
    Ok(here.clone())
}

/// `value` rounded half away from zero to `dp` places, with "," between thousands if asked.
pub fn format_number(value: f64, dp: usize, group: bool) -> String {
    let scale = 10f64.powi(dp as i32);
    let rounded = (value * scale).round() / scale;
    let text = format!("{:.dp$}", rounded.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut out = String::new();
    if rounded < 0.0 {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if group && i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Where a marker is in a text: byte ranges of the whole marker, its SPEC and its TEXT.
#[derive(Debug, Clone)]
pub struct Marker {
    pub whole: std::ops::Range<usize>,
    pub spec: std::ops::Range<usize>,
    pub text: std::ops::Range<usize>,
}

/// Every figure marker in `text`, in order; an unclosed marker is an error.
pub fn markers(text: &str) -> Result<Vec<Marker>, BadFigure> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(OPEN) {
        let start = from + at;
        let spec_start = start + OPEN.len();
        let spec_end = text[spec_start..]
            .find(SPEC_END)
            .map(|i| spec_start + i)
            .ok_or(BadFigure::Unclosed(start))?;
        let text_start = spec_end + SPEC_END.len();
        let text_end = text[text_start..]
            .find(CLOSE)
            .map(|i| text_start + i)
            .ok_or(BadFigure::NoClose(start))?;
        if text[text_start..text_end].contains(OPEN) {
            return Err(BadFigure::NoClose(start));
        }
        let end = text_end + CLOSE.len();
        found.push(Marker {
            whole: start..end,
            spec: spec_start..spec_end,
            text: text_start..text_end,
        });
        from = end;
    }
    Ok(found)
}

/// How a file shows its figures' citations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A page (`demos/*.html`): TEXT is the value alone; [`expand_html`] adds the citation.
    Html,
    /// Markdown (README.md, docs/*.md): the citation is part of TEXT.
    Markdown,
}

/// True when `between` (the text between two figures) ends the block the first one is in:
/// a blank line in Markdown; a closing `p`, `li`, `dd`, `table`, `section` or `figure` in HTML. A figure cites its result unless the figure before it in the same block
/// cites the same one (a table of one run cites it once).
fn ends_block(between: &str, kind: Kind) -> bool {
    match kind {
        Kind::Markdown => between.contains("\n\n") || between.contains("\n\r\n"),
        Kind::Html => [
            "</p>",
            "</li>",
            "</dd>",
            "</table>",
            "</section>",
            "</figure>",
        ]
        .iter()
        .any(|tag| between.contains(tag)),
    }
}

/// A marker, its resolved figure (or why it did not resolve) and whether it carries the citation.
type Resolved = (Marker, Result<Figure, BadFigure>, bool);

/// Each marker of `text`, resolved.
fn resolved(text: &str, kind: Kind) -> Result<Vec<Resolved>, BadFigure> {
    let mut out: Vec<Resolved> = Vec::new();
    for marker in markers(text)? {
        let figure = resolve(&text[marker.spec.clone()]);
        let cite = match (out.last(), &figure) {
            (Some((before, Ok(previous), _)), Ok(this)) => {
                previous.path.split('/').next() != this.path.split('/').next()
                    || previous.date != this.date
                    || ends_block(&text[before.whole.end..marker.whole.start], kind)
            }
            _ => true,
        };
        out.push((marker, figure, cite));
    }
    Ok(out)
}

/// The TEXT a marker must hold in a file of this kind.
fn file_text(figure: &Figure, cite: bool, kind: Kind) -> String {
    match (kind, cite) {
        (Kind::Markdown, true) => format!("{} {}", figure.value, figure.markdown_citation()),
        _ => figure.value.clone(),
    }
}

/// `text` with every marker's TEXT rendered from its SPEC, and the list of what differed
/// ("SPEC: TEXT → rendering") or did not resolve.
pub fn rewrite(text: &str, kind: Kind) -> (String, Vec<String>) {
    let mut problems = Vec::new();
    let list = match resolved(text, kind) {
        Ok(list) => list,
        Err(e) => return (text.to_owned(), vec![e.to_string()]),
    };
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (marker, figure, cite) in list {
        out.push_str(&text[last..marker.text.start]);
        let current = &text[marker.text.clone()];
        let spec = &text[marker.spec.clone()];
        match figure {
            Ok(figure) => {
                let want = file_text(&figure, cite, kind);
                if want != current {
                    problems.push(format!("{spec}: {current:?} should be {want:?}"));
                }
                out.push_str(&want);
            }
            Err(e) => {
                problems.push(e.to_string());
                out.push_str(current);
            }
        }
        last = marker.text.end;
    }
    out.push_str(&text[last..]);
    (out, problems)
}

/// A page with its figure markers replaced by the value and, where [`rewrite`]'s rule says,
/// a link to the result with its date. A SPEC that does not resolve keeps its typed TEXT
/// (`tests/figures.rs` refuses such a page before it ships).
pub fn expand_html(page: &str) -> String {
    let Ok(list) = resolved(page, Kind::Html) else {
        return page.to_owned();
    };
    let mut out = String::with_capacity(page.len() + list.len() * 160);
    let mut last = 0;
    for (marker, figure, cite) in list {
        out.push_str(&page[last..marker.whole.start]);
        match figure {
            Ok(figure) => {
                out.push_str(r#"<span class="figure">"#);
                out.push_str(&escape(&figure.value));
                out.push_str("</span>");
                if cite {
                    out.push(' ');
                    out.push_str(&figure.html_citation());
                }
            }
            Err(_) => out.push_str(&page[marker.text.clone()]),
        }
        last = marker.whole.end;
    }
    out.push_str(&page[last..]);
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const P50: &str = "compare-default/summary.json#/results/[transport=longpoll]/latency_us/p50;mul=0.001;dp=1;unit=ms";

    #[test]
    fn a_spec_resolves_to_the_committed_value() {
        let figure = resolve(P50).unwrap();
        assert_eq!(figure.value, "3.2 ms");
        assert_eq!(figure.name, "compare-default");
        assert_eq!(figure.date, "2026-12-07");
        let by_index = resolve(
            "compare-default/summary.json#/results/1/latency_us/p50;mul=0.001;dp=1;unit=ms",
        )
        .unwrap();
        assert_eq!(by_index.value, figure.value);
        let per = resolve("compare-default/summary.json#/results/[transport=poll]/requests;div=/results/[transport=poll]/events_received;dp=3").unwrap();
        assert_eq!(per.value, "0.057");
        let idle = resolve("peers/summary.json#/runs/[label=pushpoll,transport=poll,subscribers=10000]/rss_per_connection_kib;dp=1;unit=KiB;date=peers/runs/pushpoll/poll-10000/summary.json#/started").unwrap();
        // The value as the committed file has it (re-measured runs change it), and the date
        // from the run named by `date=`, not the summary.
        let peers: Value =
            serde_json::from_slice(result_file("peers/summary.json").unwrap()).unwrap();
        let kib = peers["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["label"] == "pushpoll" && r["transport"] == "poll" && r["subscribers"] == 10000
            })
            .and_then(|r| r["rss_per_connection_kib"].as_f64())
            .unwrap();
        let run: Value = serde_json::from_slice(
            result_file("peers/runs/pushpoll/poll-10000/summary.json").unwrap(),
        )
        .unwrap();
        assert_eq!(idle.value, format!("{kib:.1} KiB"));
        assert_eq!(
            Some(idle.date.as_str()),
            run["started"].as_str().map(|s| &s[..10])
        );
        let csv = resolve("scale-out/redis-append/append.csv#/[persistence=always,connections=20,subscribers=1]/redis_cpu_us_per_append;dp=1;unit=µs;date=scale-out/redis-append/machine.txt#/date").unwrap();
        assert_eq!(
            (csv.value.as_str(), csv.date.as_str()),
            ("38.5 µs", "2026-11-30")
        );
    }

    #[test]
    fn numbers_round_half_away_from_zero_and_group() {
        assert_eq!(format_number(2.25, 1, false), "2.3");
        assert_eq!(format_number(-2.25, 1, false), "-2.3");
        assert_eq!(format_number(1234567.0, 0, true), "1,234,567");
        assert_eq!(format_number(999.96, 1, true), "1,000.0");
        assert_eq!(format_number(0.4, 0, false), "0");
    }

    #[test]
    fn bad_specs_are_errors() {
        assert!(resolve("compare-default/summary.json").is_err());
        assert!(resolve("nope/summary.json#/x").is_err());
        assert!(resolve("compare-default/summary.json#/results/[transport=nope]/lost").is_err());
        assert!(resolve("compare-default/summary.json#/command").is_err());
        assert!(resolve("compare-default/summary.json#/results/0/lost;bogus").is_err());
        assert!(
            resolve("peers/summary.json#/runs/0/p50_us").is_err(),
            "no date"
        );
    }

    #[test]
    fn a_block_cites_each_result_once() {
        let page = format!(
            "<p><!--figure:{P50}-->x<!--/figure--> and <!--figure:{P50}-->x<!--/figure--></p><p><!--figure:{P50}-->x<!--/figure--></p>"
        );
        let html = expand_html(&page);
        assert_eq!(html.matches("figure-source").count(), 2, "{html}");
        assert_eq!(html.matches("3.2 ms").count(), 3);
        let (md, problems) = rewrite(&page.replace("</p><p>", "\n\n"), Kind::Markdown);
        assert_eq!(problems.len(), 3);
        assert_eq!(
            md.matches("(/results/compare-default/summary.json)")
                .count(),
            2
        );
        assert!(rewrite(&md, Kind::Markdown).1.is_empty());
    }
}
