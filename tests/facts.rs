//! One fact, one place: the lists and limits the server shares with the pages, the docs and
//! the load tester are defined in Rust (`src/facts.rs` gathers them) and reach the others
//! generated. These tests fail where a copy remains:
//! - a page script (static/) or the load tester spells a list of transports, feeds, event
//!   kinds or error codes by hand, or types the HTTP/2 stream cap;
//! - a `<!--fact:NAME-->TEXT<!--/fact-->` marker in demos/*.html, README.md or docs/*.md
//!   holds a TEXT other than what the code generates now. `PUSHPOLL_WRITE_FACTS=1 cargo test
//!   --test facts` rewrites those TEXTs instead;
//! - docs/API.md's Limits table states a flag's default other than the flag's, or its list of
//!   error codes misses one;
//! - a transport lacks one of its files (server adapter, load-tester client, page client,
//!   page), or a place that holds one entry per transport misses it (docs/ARCHITECTURE.md,
//!   Adding a transport).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use pushpoll::error::ApiError;
use pushpoll::event::EventBody;
use pushpoll::facts;
use pushpoll::names::{FeedName, Transport};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files under `dir` (recursively) whose names end with `ext`.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path, ext));
        } else if path.to_string_lossy().ends_with(ext) {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Every word a shared list is made of.
fn shared_words() -> BTreeSet<&'static str> {
    Transport::ALL
        .map(Transport::as_str)
        .into_iter()
        .chain(FeedName::ALL.map(FeedName::as_str))
        .chain(EventBody::KINDS)
        .chain(ApiError::CODES)
        .collect()
}

/// The quoted strings of `text` (`'…'`, `"…"`), without their quotes.
fn quoted(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(['\'', '"']) {
        let quote = rest.as_bytes()[start] as char;
        let after = &rest[start + 1..];
        let Some(end) = after.find(quote) else { break };
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    out
}

/// The array literals of `source` (innermost brackets) holding two or more shared words:
/// `(line, literal)`.
fn hand_lists(source: &str, words: &BTreeSet<&str>) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut open = None;
    for (i, c) in source.char_indices() {
        match c {
            '[' => open = Some(i),
            ']' => {
                if let Some(start) = open.take() {
                    let inside = &source[start + 1..i];
                    let shared = quoted(inside)
                        .into_iter()
                        .filter(|w| words.contains(w))
                        .count();
                    if shared >= 2 {
                        let line = source[..start].matches('\n').count() + 1;
                        found.push((line, source[start..=i].to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// A JavaScript constant about HTTP/2 streams set to a number typed in the script.
fn typed_stream_caps(source: &str) -> Vec<(usize, String)> {
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim_start();
            (line.starts_with("const ") || line.starts_with("let "))
                && line
                    .split(['=', ' '])
                    .nth(1)
                    .is_some_and(|name| name.to_ascii_uppercase().ends_with("STREAMS"))
                && line
                    .split_once('=')
                    .is_some_and(|(_, v)| v.trim().trim_end_matches(';').parse::<u64>().is_ok())
        })
        .map(|(i, line)| (i + 1, line.to_string()))
        .collect()
}

#[test]
fn no_page_script_or_load_tester_spells_a_shared_list_by_hand() {
    let words = shared_words();
    let mut sources = files(&root().join("static"), ".js");
    sources.extend(files(&root().join("demos"), ".html"));
    // The load tester's own code; its unit tests' expected outputs are not copies.
    sources.extend(
        files(&root().join("loadtest/src"), ".rs")
            .into_iter()
            .filter(|p| !p.ends_with("tests.rs")),
    );
    assert!(sources.len() > 20, "found only {sources:?}");
    let mut copies = Vec::new();
    for path in &sources {
        let source = fs::read_to_string(path).unwrap();
        let name = path.strip_prefix(root()).unwrap().display();
        for (line, literal) in hand_lists(&source, &words) {
            copies.push(format!("{name}:{line}: {literal}"));
        }
        if path.extension().is_some_and(|e| e == "js") {
            for (line, text) in typed_stream_caps(&source) {
                copies.push(format!("{name}:{line}: {text}"));
            }
        }
    }
    assert!(
        copies.is_empty(),
        "these spell a list (or the stream cap) that src/facts.rs defines; import it from \
         /static/facts.js (pages) or use pushpoll::names / pushpoll::facts (Rust):\n{}",
        copies.join("\n")
    );
}

/// The array literals of `source` that are one whole list and nothing else: all the
/// transports, all the feeds or all the event kinds (a test's subset is its own choice, and a
/// table of what each transport should do is an expectation, not a copy).
fn whole_lists(source: &str) -> Vec<(usize, String)> {
    let wholes: [Vec<&str>; 3] = [
        Transport::ALL.map(Transport::as_str).to_vec(),
        FeedName::ALL.map(FeedName::as_str).to_vec(),
        EventBody::KINDS.to_vec(),
    ];
    let all: BTreeSet<&str> = wholes.iter().flatten().copied().collect();
    hand_lists(source, &all)
        .into_iter()
        .filter(|(_, literal)| {
            let named = quoted(literal);
            // A pure list (every string in it is a name), not a table of expectations.
            wholes.iter().any(|whole| {
                whole.iter().all(|w| named.contains(w)) && named.iter().all(|n| whole.contains(n))
            })
        })
        .collect()
}

#[test]
fn no_test_spells_a_whole_list_by_hand() {
    // A test that runs over every transport takes them from `pushpoll::names`, so a new
    // transport is tested without anyone remembering to add it. This file's own examples of
    // old copies are the exception.
    let mut sources = files(&root().join("tests"), ".rs");
    sources.extend(files(&root().join("loadtest/tests"), ".rs"));
    let mut copies = Vec::new();
    for path in &sources {
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        if name == "tests/facts.rs" {
            continue;
        }
        let source = fs::read_to_string(path).unwrap();
        for (line, literal) in whole_lists(&source) {
            copies.push(format!("{name}:{line}: {literal}"));
        }
    }
    assert!(
        copies.is_empty(),
        "these tests spell a whole list that src/names.rs or src/event.rs defines; use \
         pushpoll::names::Transport::NAMES (or the enum's ALL):\n{}",
        copies.join("\n")
    );
    let every = Transport::NAMES.map(|t| format!("{t:?}")).join(", ");
    assert_eq!(whole_lists(&format!("for t in [{every}] {{}}")).len(), 1);
    assert!(whole_lists("for t in [\"sse\", \"ws\"] {}").is_empty());
}

/// The transports a page's markup names one by one (`data-transport="sse"`, `id="lane-ws"`,
/// `data-lab="poll"`: an attribute value that is a transport's name, or ends in `-NAME`),
/// other than on `<body>`, which names the page's own transport: `(line, transport)`.
fn transports_in_markup(html: &str) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    for (i, line) in html.lines().enumerate() {
        if line.trim_start().starts_with("<body") {
            continue;
        }
        for value in line
            .split("=\"")
            .skip(1)
            .filter_map(|v| v.split('"').next())
        {
            if let Some(t) = Transport::ALL
                .iter()
                .find(|t| value == t.as_str() || value.ends_with(&format!("-{}", t.as_str())))
            {
                found.push((i + 1, t.as_str()));
            }
        }
    }
    found
}

#[test]
fn no_page_repeats_its_markup_per_transport_by_hand() {
    // A page that shows every transport (the compare page's lanes, the proxy lab's rows)
    // repeats a fragment with `<!-- each-transport _NAME.html -->` (src/assets.rs), so its
    // lanes come from src/names.rs; markup naming two or more transports is a copy.
    let mut copies = Vec::new();
    for path in files(&root().join("demos"), ".html") {
        let html = fs::read_to_string(&path).unwrap();
        let found = transports_in_markup(&html);
        let distinct: BTreeSet<_> = found.iter().map(|(_, t)| *t).collect();
        if distinct.len() >= 2 {
            let name = path.strip_prefix(root()).unwrap().display();
            copies.extend(found.iter().map(|(line, t)| format!("{name}:{line}: {t}")));
        }
    }
    assert!(
        copies.is_empty(),
        "these pages spell their per-transport markup by hand; write it once as a fragment \
         and repeat it with <!-- each-transport _NAME.html -->:\n{}",
        copies.join("\n")
    );
    // The check sees the old compare page's lanes.
    let old = "<section id=\"lane-poll\" data-transport=\"poll\">\n<section id=\"lane-ws\" data-transport=\"ws\">\n";
    assert_eq!(transports_in_markup(old).len(), 4);
}

#[test]
fn the_checks_find_the_old_hand_lists() {
    let words = shared_words();
    let old = "const SSE_EVENT_TYPES = ['tick', 'message', 'whisper', 'join', 'leave', 'rename', 'gap'];\n\
               const H2_STREAMS = 32;\n";
    assert_eq!(hand_lists(old, &words).len(), 1);
    assert_eq!(typed_stream_caps(old).len(), 1);
    assert!(hand_lists("const FEEDS: [&str; 2] = [\"clock\", \"chat\"];", &words).len() == 1);
    assert!(hand_lists("x = [a, 'tick']; y = ['a', 'b']", &words).is_empty());
}

/// The text files that may hold fact markers.
fn marked_files() -> Vec<PathBuf> {
    let mut out = files(&root().join("demos"), ".html");
    out.extend(files(&root().join("docs"), ".md"));
    out.push(root().join("README.md"));
    out
}

#[test]
fn every_fact_marker_holds_what_the_code_generates() {
    let write = std::env::var_os("PUSHPOLL_WRITE_FACTS").is_some_and(|v| v == "1");
    let mut wrong = Vec::new();
    let mut seen = 0;
    for path in marked_files() {
        let text = fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        for m in facts::markers(&text) {
            seen += 1;
            let line = text[..m.text.start].matches('\n').count() + 1;
            match facts::text(m.name) {
                None => wrong.push(format!("{name}:{line}: no fact is called {:?}", m.name)),
                Some(now) if now != text[m.text.clone()] && !write => wrong.push(format!(
                    "{name}:{line}: <!--fact:{}--> says {:?}; the code says {now:?}",
                    m.name,
                    &text[m.text.clone()]
                )),
                Some(_) => {}
            }
        }
        let filled = facts::fill(&text);
        if write && filled != text {
            fs::write(&path, filled).unwrap();
        }
    }
    assert!(seen >= 3, "only {seen} fact markers found");
    assert!(
        wrong.is_empty(),
        "{}\n(PUSHPOLL_WRITE_FACTS=1 cargo test --test facts rewrites them)",
        wrong.join("\n")
    );
}

/// docs/API.md's Limits table: `| what | `--flag` | default | past it |`. A default derived at
/// start (`--max-connections`, from the open-files limit) is checked by its description.
#[test]
fn the_limits_table_states_each_flags_default() {
    let api = fs::read_to_string(root().join("docs/API.md")).unwrap();
    let squeeze = |s: &str| s.replace([' ', ','], "");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for row in api.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let [_, _, flag, default, ..] = cells.as_slice() else {
            continue;
        };
        let Some(flag) = flag.strip_prefix("`--").and_then(|f| f.strip_suffix('`')) else {
            continue;
        };
        // clap's default, or for a default derived at start (no clap default) its
        // description (`facts::derived_default`), which the cell must state.
        let code = facts::flag_default(flag);
        let Some(facts_text) = facts::text(&format!("default:{flag}")) else {
            continue;
        };
        checked += 1;
        let stated = default
            .split("<!--fact:")
            .next()
            .map(squeeze)
            .unwrap_or_default();
        let states_code = code.as_ref().is_some_and(|code| stated.starts_with(code));
        if !(squeeze(default).contains(&squeeze(&facts_text)) || states_code) {
            wrong.push(format!(
                "--{flag}: the table says {default:?}, the code {:?}",
                code.unwrap_or(facts_text)
            ));
        }
    }
    assert!(
        checked >= 10,
        "only {checked} rows with a flag and a default"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn api_md_names_every_error_code() {
    let api = fs::read_to_string(root().join("docs/API.md")).unwrap();
    let missing: Vec<_> = ApiError::CODES
        .iter()
        .filter(|code| !api.contains(*code))
        .collect();
    assert!(missing.is_empty(), "docs/API.md never names {missing:?}");
}

#[test]
fn the_generated_module_exports_what_the_pages_import() {
    let module = facts::module();
    let mut missing = Vec::new();
    for path in files(&root().join("static"), ".js") {
        let source = fs::read_to_string(&path).unwrap();
        for line in source
            .lines()
            .filter(|l| l.contains("from '/static/facts.js'"))
        {
            let names = line
                .split_once('{')
                .and_then(|(_, r)| r.split_once('}'))
                .map(|(n, _)| n)
                .unwrap_or_default();
            for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if !module.contains(&format!("export const {name} = ")) {
                    missing.push(format!("{}: {name}", path.display()));
                }
            }
        }
    }
    assert!(missing.is_empty(), "facts.js does not export {missing:?}");
}

/// The transports a script writes as object keys, one entry per transport: `sse: …`, or the
/// method `sse(…) {` at the start of a line.
fn transport_keys(source: &str) -> BTreeSet<&'static str> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        for t in Transport::NAMES {
            let method = line.trim_start().starts_with(&format!("{t}("));
            let key = line.match_indices(&format!("{t}:")).any(|(at, _)| {
                line[..at]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !(c.is_alphanumeric() || "_$.'\"".contains(c)))
            });
            if method || key {
                found.insert(t);
            }
        }
    }
    found
}

/// The scripts allowed to hold a map with one entry per transport, with the transports each
/// leaves out, as its code says (a transport left out of `ORDER` has no probe). Any other
/// script takes what it needs per transport from facts.js (`TRANSPORT_NAMES`,
/// `TRANSPORT_COLORS`).
const PER_TRANSPORT_MAPS: &[(&str, &[&str], &str)] = &[
    // connect()'s FACTORIES: each transport's client.
    ("static/clients/index.js", &[], ""),
    // negotiate()'s PROBES: the iframe is never probed (it cannot tell a buffering proxy
    // from a quiet feed before the deadline).
    ("static/fallback.js", &["iframe"], "t !== 'iframe'"),
];

#[test]
fn every_transport_has_its_files_and_every_per_transport_map_names_it() {
    let read = |path: &str| fs::read_to_string(root().join(path)).unwrap_or_default();
    let mut missing = Vec::new();
    let index_js = read("static/clients/index.js");
    let index_html = read("demos/index.html");
    for t in Transport::NAMES {
        for file in [
            format!("src/transport/{t}.rs"),
            format!("loadtest/src/clients/{t}.rs"),
            format!("static/clients/{t}.js"),
            format!("demos/{t}.html"),
        ] {
            if !root().join(&file).is_file() {
                missing.push(format!("{t}: no {file}"));
            }
        }
        if !index_js.contains(&format!("from '/static/clients/{t}.js'")) {
            missing.push(format!(
                "{t}: static/clients/index.js does not import its client"
            ));
        }
        if !index_html.contains(&format!("href=\"/demos/{t}.html\"")) {
            missing.push(format!(
                "{t}: demos/index.html has no card linking its page"
            ));
        }
    }
    for path in files(&root().join("static"), ".js") {
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        let source = fs::read_to_string(&path).unwrap();
        let keys = transport_keys(&source);
        if keys.len() < 2 {
            continue;
        }
        match PER_TRANSPORT_MAPS.iter().find(|(file, ..)| *file == name) {
            None => missing.push(format!(
                "{name}: a map with an entry per transport ({keys:?}); take it from facts.js \
                 or add the file to PER_TRANSPORT_MAPS"
            )),
            Some((_, left_out, rule)) => {
                assert!(source.contains(rule), "{name} no longer says {rule:?}");
                for t in Transport::NAMES {
                    if !keys.contains(t) && !left_out.contains(&t) {
                        missing.push(format!("{name}: no entry for {t}"));
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "a transport is not wired everywhere (docs/ARCHITECTURE.md, Adding a transport):\n{}",
        missing.join("\n")
    );
    // The check sees the dashboard's old colour map and fallback.js's probes.
    let old = "const COLORS = { poll: '#d1495b', longpoll: '#edae49', server: '#444' };";
    assert_eq!(transport_keys(old).len(), 2);
    assert_eq!(
        transport_keys("  sse(timeoutMs) {\n  x.poll(1); a ? ws : b").len(),
        1
    );
}
