//! Figures are data (docs/FIGURES.md). Two checks over the pages (`demos/*.html`), the README
//! and the docs (`docs/*.md`), and the visible text of the page scripts (`static/**/*.js`):
//!
//! - every figure marker `<!--figure:SPEC-->TEXT<!--/figure-->` resolves against the committed
//!   results and its TEXT is the rendering (`PUSHPOLL_WRITE_FIGURES=1` rewrites them instead);
//! - no measurement (a number with ms, µs, B, bytes, KiB, MiB, KB, MB, req/s or %, or with a
//!   decimal point and s) is typed outside a
//!   figure or fact marker, unless `docs/figures-allowed.txt` lists the exact phrase for the file:
//!   definitions, protocol constants, limits and flag defaults (which helper facts's
//!   `<!--fact:NAME-->` markers generate), none of them measured. A stale entry also fails.

use std::path::PathBuf;

use pushpoll::figures::{self, Kind};

const WRITE: &str = "PUSHPOLL_WRITE_FIGURES";
const ALLOWED: &str = "docs/figures-allowed.txt";
const FACT_OPEN: &str = "<!--fact:";
const FACT_CLOSE: &str = "<!--/fact-->";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files whose text a reader sees, relative to the root, with their kind.
fn documents() -> Vec<(String, Kind)> {
    let mut files = vec![("README.md".to_owned(), Kind::Markdown)];
    for (dir, ext, kind) in [
        ("demos", "html", Kind::Html),
        ("docs", "md", Kind::Markdown),
    ] {
        files.extend(listing(dir, ext).into_iter().map(|f| (f, kind)));
    }
    files
}

fn listing(dir: &str, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    names.sort();
    names
}

/// The page scripts under `dir`, subfolders included (`static/chat/`, `static/clients/`, …).
fn scripts(dir: &str) -> Vec<String> {
    let mut found = listing(dir, "js");
    let mut folders: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
        .collect();
    folders.sort();
    for folder in folders {
        found.extend(scripts(&folder));
    }
    found
}

#[test]
fn every_figure_marker_is_its_committed_result() {
    let write = std::env::var_os(WRITE).is_some();
    let mut problems = Vec::new();
    let mut count = 0;
    for (file, kind) in documents() {
        if file == "docs/FIGURES.md" {
            continue; // its example is the grammar's, in a code block
        }
        let path = root().join(&file);
        let text = std::fs::read_to_string(&path).unwrap();
        count += figures::markers(&text).map(|m| m.len()).unwrap_or(0);
        let (rendered, found) = figures::rewrite(&text, kind);
        if write && rendered != text {
            std::fs::write(&path, &rendered).unwrap();
        }
        let unresolved: Vec<_> = found
            .into_iter()
            .filter(|p| !write || !p.contains(" should be "))
            .collect();
        problems.extend(unresolved.into_iter().map(|p| format!("{file}: {p}")));
    }
    assert!(
        count > 0,
        "no figure markers found: is the scan looking at the right files?"
    );
    assert!(
        problems.is_empty(),
        "figure markers that differ from the committed results (run with {WRITE}=1 to rewrite \
         TEXT from the results; a SPEC that does not resolve must be fixed by hand):\n{}",
        problems.join("\n")
    );
}

/// One occurrence of a measurement in a text: its byte range and the matched words.
#[derive(Debug)]
struct Occurrence {
    range: std::ops::Range<usize>,
    text: String,
}

const UNITS: &[&str] = &[
    "req/s", "&micro;s", "µs", "μs", "ms", "KiB", "MiB", "GiB", "KB", "kB", "MB", "GB", "B", "%",
    "bytes", "s",
];

/// Seconds count only with a decimal point ("3.0 s", "2.008 s"): whole seconds are nearly
/// always a timeout, an interval or a deadline of the code ("25 s", "10 s"), which helper
/// facts generates, while a measured duration carries its digits.
const DECIMAL_ONLY: &[&str] = &["s"];

/// Measurements in `text`: a number (digits, "," groups, one "."), optionally a range
/// ("–", "-", "&ndash;" and a second number), optional space (" ", NBSP, "&nbsp;", a
/// thin space) and a unit from [`UNITS`] that ends a word. A number right after a word
/// character, ".", ":", "," or "-" is part of something else (an identifier, a version, a
/// hex fingerprint, "UTF-8").
fn measurements(text: &str) -> Vec<Occurrence> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_number = bytes[i].is_ascii_digit()
            && (i == 0 || {
                let before = bytes[i - 1];
                !(before.is_ascii_alphanumeric()
                    || matches!(before, b'_' | b'.' | b':' | b',' | b'-'))
            });
        if !starts_number {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = number_end(bytes, i);
        for dash in ["–", "&ndash;", "-", "—", " to "] {
            if text[j..].starts_with(dash) {
                let k = j + dash.len();
                if k < bytes.len() && bytes[k].is_ascii_digit() {
                    j = number_end(bytes, k);
                }
                break;
            }
        }
        let mut k = j;
        for space in [
            " ", "\u{a0}", "&nbsp;", "\u{202f}", "&#8239;", "\u{2009}", "&thinsp;",
        ] {
            if text[k..].starts_with(space) {
                k += space.len();
                break;
            }
        }
        let unit = UNITS.iter().find(|u| {
            text[k..].starts_with(**u) && {
                let after = k + u.len();
                after >= bytes.len()
                    || !(bytes[after].is_ascii_alphanumeric() || bytes[after] == b'_')
            }
        });
        let unit = unit.filter(|u| !DECIMAL_ONLY.contains(u) || text[start..j].contains('.'));
        if let Some(unit) = unit {
            let end = k + unit.len();
            found.push(Occurrence {
                range: start..end,
                text: text[start..end].to_owned(),
            });
            i = end;
        } else {
            i = j.max(i + 1);
        }
    }
    found
}

fn number_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len()
        && (bytes[i].is_ascii_digit()
            || (matches!(bytes[i], b',' | b'.')
                && i + 1 < bytes.len()
                && bytes[i + 1].is_ascii_digit()))
    {
        i += 1;
    }
    i
}

/// `text` with what a reader does not see as typed prose blanked to spaces (byte offsets
/// kept): figure and fact markers whole, other HTML comments, and for JavaScript everything
/// but its string literals' surroundings… in practice its comments.
fn blank_markers(text: &str, js: bool) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let mut blank = |range: std::ops::Range<usize>| {
        for b in &mut bytes[range] {
            *b = b' ';
        }
    };
    for marker in figures::markers(text).unwrap_or_default() {
        blank(marker.whole);
    }
    for (open, close) in [(FACT_OPEN, FACT_CLOSE), ("<!--", "-->")] {
        let mut from = 0;
        while let Some(at) = text[from..].find(open) {
            let start = from + at;
            let Some(len) = text[start + open.len()..].find(close) else {
                break;
            };
            let end = start + open.len() + len + close.len();
            blank(start..end);
            from = end;
        }
    }
    if js {
        let mut from = 0;
        while let Some(at) = text[from..].find("/*") {
            let start = from + at;
            let end = text[start..]
                .find("*/")
                .map_or(text.len(), |e| start + e + 2);
            blank(start..end);
            from = end;
        }
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let comment = line
                .trim_start()
                .starts_with("//")
                .then(|| line.find("//"))
                .flatten()
                .or_else(|| line.find(" // ").map(|i| i + 1));
            if let Some(at) = comment {
                blank(offset + at..offset + line.trim_end_matches('\n').len());
            }
            offset += line.len();
        }
    }
    String::from_utf8(bytes).expect("blanking keeps UTF-8")
}

/// `docs/figures-allowed.txt`: `FILE<TAB>EXACT PHRASE<TAB>WHY`, `#` comments.
fn allowed() -> Vec<(String, String, String)> {
    std::fs::read_to_string(root().join(ALLOWED))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split('\t');
            let (Some(file), Some(phrase), Some(why)) = (parts.next(), parts.next(), parts.next())
            else {
                panic!("{ALLOWED}: {l:?} is not FILE<TAB>PHRASE<TAB>WHY");
            };
            assert!(!why.trim().is_empty(), "{ALLOWED}: {l:?} gives no reason");
            (file.to_owned(), phrase.to_owned(), why.to_owned())
        })
        .collect()
}

#[test]
fn measurements_are_bound_to_committed_results() {
    let allowed = allowed();
    let mut used = vec![false; allowed.len()];
    let mut typed = Vec::new();
    let mut files: Vec<String> = documents().into_iter().map(|(f, _)| f).collect();
    files.retain(|f| f != "docs/FIGURES.md" && f != ALLOWED);
    files.extend(scripts("static"));
    for file in &files {
        let raw = std::fs::read_to_string(root().join(file)).unwrap();
        let text = blank_markers(&raw, file.ends_with(".js"));
        for found in measurements(&text) {
            let mut ok = false;
            for (n, (allowed_file, phrase, _)) in allowed.iter().enumerate() {
                if allowed_file != file {
                    continue;
                }
                let covers = raw
                    .match_indices(phrase.as_str())
                    .any(|(at, _)| at <= found.range.start && found.range.end <= at + phrase.len());
                if covers {
                    used[n] = true;
                    ok = true;
                }
            }
            if !ok {
                let line = raw[..found.range.start].matches('\n').count() + 1;
                let context_start = raw[..found.range.start]
                    .char_indices()
                    .rev()
                    .nth(40)
                    .map_or(0, |(i, _)| i);
                let context_end = raw[found.range.end..]
                    .char_indices()
                    .nth(20)
                    .map_or(raw.len(), |(i, _)| found.range.end + i);
                typed.push(format!(
                    "{file}:{line}: {:?} in …{}…",
                    found.text,
                    raw[context_start..context_end].replace('\n', " ")
                ));
            }
        }
    }
    let stale: Vec<_> = allowed
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|((file, phrase, _), _)| format!("{file}\t{phrase}"))
        .collect();
    assert!(
        typed.is_empty() && stale.is_empty(),
        "measurements typed into prose: make each a figure marker pointing at its committed \
         result (docs/FIGURES.md), drop it, or — for a definition, protocol constant or limit, \
         never a measurement — list the phrase in {ALLOWED}:\n{}\n\n\
         {ALLOWED} lists phrases that cover no measurement any more; remove them:\n{}",
        typed.join("\n"),
        stale.join("\n")
    );
}

#[test]
fn the_scan_sees_measurements_and_skips_markers() {
    let found = |t: &str| {
        measurements(&blank_markers(t, false))
            .into_iter()
            .map(|o| o.text)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        found("p50 of 2.3&ndash;3.1 ms, 34.6 KiB, 5 % and 3,809 req/s"),
        ["2.3&ndash;3.1 ms", "34.6 KiB", "5 %", "3,809 req/s"]
    );
    assert_eq!(
        found("12&nbsp;µs, B1:8B:01, v1.2 ms-ish, id2 KB"),
        ["12&nbsp;µs"]
    );
    assert!(
        found("<!--figure:x#/y-->4.4 ms<!--/figure--> <!--fact:A-->16 KiB<!--/fact-->").is_empty()
    );
    assert_eq!(
        found("5 bytes, 2 s, 3.0 s, 3 msgs, 4 Bytes, 2 seconds"),
        ["5 bytes", "3.0 s"]
    );
    let js = "const a = 1; // 250 ms\n/* 512 B */ label('3 ms');";
    let in_js: Vec<_> = measurements(&blank_markers(js, true))
        .into_iter()
        .map(|o| o.text)
        .collect();
    assert_eq!(in_js, ["3 ms"]);
}
