//! The architecture, checked: the layers of docs/ARCHITECTURE.md only point down, so the
//! modules of each crate (the server, `src/`, and the load tester, `loadtest/src/`) import
//! each other without a cycle; the server's leaves import only leaves, its core imports no
//! edge module and names no HTTP crate, its engines import none of each other and its chat
//! names no engine, its handlers import none of each other, and nothing imports its router; docs/ARCHITECTURE.md's table and graph are the ones computed here;
//! and the transports' names are spelled in one place, `src/names.rs`. A plain test over
//! the source text, with no dependencies: it reads every `.rs` file, drops comments and
//! `#[cfg(test)]` items, and follows `crate::…` and `super::…` paths.
//!
//! What counts as an import of module `b` by module `a`: a path `crate::b…` (also inside a
//! `use crate::{…}` group) or a `super::…` path that climbs out of `a` into `b`, anywhere in
//! `a`'s non-test code. Paths through the other crate (`pushpoll::…` in the load tester) are
//! not edges: that crate is below the load tester as a whole. Names that are not modules
//! (`crate::Config`, a re-export) are ignored. The modules of a folder that groups by topic
//! (`src/net/`) are modules of the graph of their own (`net::listener`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The transport names. Spelling one of them as a string literal outside `src/names.rs` is
/// what this test refuses (see [`spells_a_transport`]); taken from there, so a new
/// transport's name is refused elsewhere too without anyone adding it here.
const TRANSPORT_NAMES: [&str; pushpoll::names::Transport::ALL.len()] =
    pushpoll::names::Transport::NAMES;

#[test]
fn the_servers_top_level_modules_import_each_other_without_a_cycle() {
    assert_no_cycle(&root().join("src"), SERVER_GROUPS, &[]);
}

#[test]
fn the_load_testers_top_level_modules_import_each_other_without_a_cycle() {
    assert_no_cycle(&root().join("loadtest/src"), &[], LOADTEST_KNOWN_BACK_EDGES);
}

/// The server's layers, as docs/ARCHITECTURE.md draws them; every node of the module graph
/// (a top-level module, or a module of `net/`) is in exactly one.
///
/// Leaves: what everything may use; they import only other leaves.
const LEAVES: &[&str] = &["names", "wire", "event", "figures", "spawn", "private"];
/// The core: the feeds, the chat and its engines. It imports only the core and the leaves,
/// and no HTTP framework ([`HTTP_CRATES`]).
const CORE: &[&str] = &["feed", "chat", "engine::embedded", "engine::redis"];
/// The edge's helpers: what the handlers share, below them (connections, addresses, the
/// shared state, the extractors, the HTTP errors, the flags, the counters).
const EDGE: &[&str] = &[
    "error",
    "config",
    "net::addresses",
    "net::forwarded",
    "net::interfaces",
    "net::listener",
    "net::origin",
    "net::quic",
    "net::tickets",
    "net::tls",
    "operator",
    "http",
    "state",
    "stats",
    "facts",
];
/// The handlers: each answers its own routes and imports none of the others; what two of
/// them share lives below them (a helper of the edge, or the core).
const HANDLERS: &[&str] = &["chat_api", "transport", "diag", "draw", "assets", "results"];
/// The router, which nothing imports (the crate root starts it).
const ROUTER: &[&str] = &["app"];

/// The crates that speak HTTP (or WebSocket, or TLS, or QUIC): the core names none of them.
const HTTP_CRATES: &[&str] = &[
    "axum",
    "http",
    "http_body",
    "hyper",
    "hyper_util",
    "tower",
    "tower_http",
    "tungstenite",
    "fastwebsockets",
    "rustls",
    "tokio_rustls",
    "wtransport",
    "quinn",
];

fn server_graph() -> BTreeMap<String, BTreeSet<String>> {
    module_graph(&root().join("src"), SERVER_GROUPS)
}

/// A rule's breaches, listed, or the test passes.
fn assert_none(what: &str, breaches: Vec<String>) {
    assert!(
        breaches.is_empty(),
        "{what} (docs/ARCHITECTURE.md, Layers):\n  {}",
        breaches.join("\n  ")
    );
}

#[test]
fn every_server_module_is_in_exactly_one_layer() {
    let layers = [LEAVES, CORE, EDGE, HANDLERS, ROUTER];
    let graph = server_graph();
    let mut breaches = Vec::new();
    for node in graph.keys() {
        let n = layers.iter().filter(|l| l.contains(&node.as_str())).count();
        if n != 1 {
            breaches.push(format!("{node} is in {n} layers; place it in one"));
        }
    }
    for listed in layers.concat() {
        if !graph.contains_key(listed) {
            breaches.push(format!("{listed} is listed but is no module; delete it"));
        }
    }
    assert_none("modules placed in no layer or in several", breaches);
}

/// The imports that break a rule: each edge from a module `from` accepts (`None`: every
/// module) to a module `to` refuses, as `from imports to`.
fn imports_where(from: Option<&[&str]>, refused: impl Fn(&str) -> bool) -> Vec<String> {
    let mut breaches = Vec::new();
    for (module, imports) in server_graph() {
        if from.is_some_and(|layer| !layer.contains(&module.as_str())) {
            continue;
        }
        for to in imports.iter().filter(|t| refused(t)) {
            breaches.push(format!("{module} imports {to}"));
        }
    }
    breaches
}

#[test]
fn the_leaves_import_only_leaves() {
    let breaches = imports_where(Some(LEAVES), |to| !LEAVES.contains(&to));
    assert_none("a leaf imports a module that is not a leaf", breaches);
}

#[test]
fn the_core_imports_only_the_core_and_the_leaves() {
    let breaches = imports_where(Some(CORE), |to| {
        !CORE.contains(&to) && !LEAVES.contains(&to)
    });
    assert_none("the core imports the edge", breaches);
}

/// The engines (`src/engine/`, one node each) stand side by side: neither imports the other.
const ENGINES: &[&str] = &["engine::embedded", "engine::redis"];

#[test]
fn the_engines_import_none_of_each_other() {
    let breaches = imports_where(Some(ENGINES), |to| ENGINES.contains(&to));
    assert_none("an engine imports another engine", breaches);
}

/// The chat holds its rules only: it reaches an engine through `chat::Engine`, so no file of
/// `src/chat/`, its tests included, names an engine's module or the store it keeps the chat
/// in (the words `redis` and `sqlite`, any case, comments included).
#[test]
fn the_chat_and_its_tests_name_no_engine() {
    let mut breaches = Vec::new();
    for file in rust_files(&root().join("src/chat")) {
        let text = std::fs::read_to_string(&file).unwrap().to_lowercase();
        for word in ["crate::engine::", "engine::embedded", "redis", "sqlite"] {
            if text.contains(word) {
                breaches.push(format!("{} names {word}", relative(&file)));
            }
        }
    }
    assert_none(
        "the chat names an engine (go through chat::Engine)",
        breaches,
    );
}

#[test]
fn the_core_and_the_leaves_name_no_http_framework() {
    let src = root().join("src");
    let mut breaches = Vec::new();
    for file in rust_files(&src) {
        let Some(node) = node_of(&module_path(&src, &file), SERVER_GROUPS) else {
            continue;
        };
        if !CORE.contains(&node.as_str()) && !LEAVES.contains(&node.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for krate in http_crates(&scan(&text).code) {
            breaches.push(format!("{} names {krate}", relative(&file)));
        }
    }
    assert_none(
        "the core or a leaf uses an HTTP framework (map to HTTP at the edge)",
        breaches,
    );
}

#[test]
fn handlers_never_import_each_other() {
    let breaches = imports_where(Some(HANDLERS), |to| HANDLERS.contains(&to));
    assert_none(
        "a handler imports another (move what they share below them)",
        breaches,
    );
}

#[test]
fn nothing_imports_the_router() {
    let breaches = imports_where(None, |to| ROUTER.contains(&to));
    assert_none("a module imports the router", breaches);
}

/// docs/ARCHITECTURE.md's table of layers lists the modules of each layer as this test does,
/// and its block of edges ("module → what it imports") is the graph this test computes: the
/// picture a reader gets cannot drift from the code.
#[test]
fn architecture_md_shows_these_layers_and_this_graph() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let mut breaches = Vec::new();
    for (layer, modules) in [
        ("leaf", LEAVES),
        ("core", CORE),
        ("edge", EDGE),
        ("handlers", HANDLERS),
        ("router", ROUTER),
    ] {
        let Some(row) = doc.lines().find(|l| l.starts_with(&format!("| {layer} |"))) else {
            breaches.push(format!("no table row `| {layer} | …`"));
            continue;
        };
        let cell = row.split('|').nth(2).unwrap_or("");
        let listed: BTreeSet<String> = doc_modules(cell);
        let expected: BTreeSet<String> = modules.iter().map(|m| m.to_string()).collect();
        if listed != expected {
            breaches.push(format!(
                "the {layer} row lists {listed:?}; the test, {expected:?}"
            ));
        }
    }
    let graph = server_graph();
    // The fenced block after the line that introduces it.
    let block = doc
        .split_once("The edges behind it")
        .and_then(|(_, after)| after.split("```").nth(1))
        .unwrap_or("");
    let written: BTreeMap<String, BTreeSet<String>> = block
        .lines()
        .filter_map(|l| l.split_once(" → "))
        .map(|(from, to)| {
            let to = to.split_whitespace().map(String::from).collect();
            (from.trim().to_string(), to)
        })
        .collect();
    let computed: BTreeMap<String, BTreeSet<String>> =
        graph.into_iter().filter(|(_, to)| !to.is_empty()).collect();
    if written != computed {
        let lines: Vec<String> = computed
            .iter()
            .map(|(from, to)| {
                let to: Vec<&str> = to.iter().map(String::as_str).collect();
                format!("{from:<15} → {}", to.join(" "))
            })
            .collect();
        breaches.push(format!(
            "the block of edges is not the module graph; it is now (in any order):\n{}",
            lines.join("\n")
        ));
    }
    assert_none("docs/ARCHITECTURE.md does not show the code", breaches);
}

/// The modules a table cell names in backticks: `` `a` `b` `` and `` `net::{x, y}` ``.
fn doc_modules(cell: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, quoted) in cell.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        match quoted.split_once("::{") {
            Some((group, rest)) => {
                for m in rest.trim_end_matches('}').split(',') {
                    found.insert(format!("{group}::{}", m.trim()));
                }
            }
            None => {
                found.insert(quoted.trim_end_matches('/').to_string());
            }
        }
    }
    found
}

/// The [`HTTP_CRATES`] that `code` names in a path (`axum::…`, `use hyper::{…}`), outside
/// this crate's own modules (`crate::http::…`, `super::http`), sorted.
fn http_crates(code: &str) -> Vec<String> {
    let code: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let code = code.replace(":: ", "::").replace(" ::", "::");
    let mut found = BTreeSet::new();
    for krate in HTTP_CRATES {
        for (at, _) in code.match_indices(&format!("{krate}::")) {
            let before = code[..at].chars().last();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                found.insert(krate.to_string());
            }
        }
    }
    found.into_iter().collect()
}

/// Imports of the load tester allowed to close a cycle: none. (The list stays so that a cycle
/// one must live with for a while is written down with its reason, never silently skipped;
/// a stale entry is reported.)
const LOADTEST_KNOWN_BACK_EDGES: &[(&str, &str)] = &[];

/// The rule: a string literal in non-test Rust that *is* a transport name (`"longpoll"`), or
/// a list of them (`"poll, longpoll"`), is a spelling, allowed only in `src/names.rs`; code
/// elsewhere uses `names::Transport` and its `Display`/`FromStr`. A literal holding a `/` is
/// a URL or a file path (a route such as `"/longpoll/{feed}"`, a page such as
/// `"demos/iframe.html"`): those name a resource, not the transport, and are allowed. So are
/// names inside longer text (an error message that mentions "the iframe stream").
#[test]
fn transport_names_are_spelled_only_in_names_rs() {
    let mut found = Vec::new();
    for dir in ["src", "loadtest/src"] {
        for file in rust_files(&root().join(dir)) {
            if file.ends_with("src/names.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let scanned = scan(&text);
            for literal in &scanned.literals {
                if spells_a_transport(literal) {
                    found.push(format!("{}: {literal:?}", relative(&file)));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "transport names spelled outside src/names.rs (use names::Transport):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_checker_sees_what_it_should() {
    let code = r#"
        //! crate::doc_only
        use crate::{alpha, beta::Thing};
        use super::gamma;
        fn f() { let s = "crate::in_a_string"; let c = '{'; crate::delta::go(); }
        #[cfg(test)]
        mod tests { use crate::epsilon; fn g() { "longpoll"; } }
        #[cfg(test)]
        use crate::zeta;
        const T: &str = "iframe";
        const R: &str = "/longpoll/{feed}";
    "#;
    let scanned = scan(code);
    let refs: BTreeSet<_> = references(&scanned.code, &["x".to_string()], &[])
        .into_iter()
        .collect();
    let expected: BTreeSet<_> = ["alpha", "beta", "delta", "super:gamma"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(refs, expected);
    let grouped = "use crate::net::{listener, tls::Tls}; use super::origin; \
                   fn f() { crate::net::addresses::go(); crate::chat::go(); }";
    let in_net = ["net".to_string(), "forwarded".to_string()];
    let refs: BTreeSet<_> = references(grouped, &in_net, &["net"]).into_iter().collect();
    let expected: BTreeSet<_> = [
        "net::listener",
        "net::tls",
        "super:net::origin",
        "net::addresses",
        "chat",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(refs, expected);
    assert_eq!(
        http_crates("use axum::Router; fn f() { crate::http::x(); hyper_util::rt::go(); }"),
        ["axum", "hyper_util"]
    );
    let spelled: Vec<_> = scanned
        .literals
        .iter()
        .filter(|l| spells_a_transport(l))
        .collect();
    assert_eq!(spelled, ["iframe"]);
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

fn spells_a_transport(literal: &str) -> bool {
    if literal.contains('/') {
        return false;
    }
    let words: Vec<&str> = literal
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    !words.is_empty() && words.iter().all(|w| TRANSPORT_NAMES.contains(w))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Whether `path` is a module its parent declares as `#[cfg(test)] mod NAME;` (the unit tests
/// kept in a file of their own, such as `export/tests.rs`): test code, like the
/// `#[cfg(test)]` items dropped from the other files.
fn is_test_module_file(path: &Path) -> bool {
    let Some(name) = path.file_stem().and_then(|n| n.to_str()) else {
        return false;
    };
    let dir = path.parent().unwrap();
    let parents = [dir.join("mod.rs"), dir.with_extension("rs")];
    parents.iter().any(|parent| {
        std::fs::read_to_string(parent).is_ok_and(|text| {
            let compact: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            compact.contains(&format!("#[cfg(test)] mod {name};"))
        })
    })
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !is_test_module_file(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The module path of a file under `src`: `src/feed/mod.rs` → `[feed]`, `src/feed/clock.rs`
/// → `[feed, clock]`; the crate root (`lib.rs`, `main.rs`) → `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        parts.clear();
    }
    parts
}

/// The folders of `src/` that group modules by topic rather than make one: each module inside
/// is a node of the graph of its own (`net::listener`), placed in a layer of its own.
const SERVER_GROUPS: &[&str] = &["net", "engine"];

/// The node a file belongs to: its top-level module, or `group::module` inside a group
/// folder; `None` for the crate root and a group's own `mod.rs`, which only declare modules.
fn node_of(path: &[String], groups: &[&str]) -> Option<String> {
    let top = path.first()?;
    if groups.contains(&top.as_str()) {
        return path.get(1).map(|sub| format!("{top}::{sub}"));
    }
    Some(top.clone())
}

/// The module graph of the crate under `src`: each node (see [`node_of`]) and the nodes it
/// imports, outside its tests.
fn module_graph(src: &Path, groups: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(src);
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| node_of(&module_path(src, f), groups))
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let path = module_path(src, file);
        // The crate root declares the modules and wires them together; it is above all.
        let Some(node) = node_of(&path, groups) else {
            continue;
        };
        graph.entry(node.clone()).or_default();
        let text = std::fs::read_to_string(file).unwrap();
        for reference in references(&scan(&text).code, &path, groups) {
            // `super::x` from a top-level file climbs to the root (`super:x`); from a module
            // of a group, one climb reaches a sibling in the group (`super:net::x`).
            let target = reference.strip_prefix("super:").unwrap_or(&reference);
            // `crate::net::x` is the node `net::x`; `crate::net` alone, the group's root.
            let target = match target.split_once("::") {
                Some((head, sub)) if groups.contains(&head) => format!("{head}::{}", ident(sub)),
                _ => ident(target),
            };
            if target != node && modules.contains(&target) {
                graph.entry(node.clone()).or_default().insert(target);
            }
        }
    }
    graph
}

fn assert_no_cycle(src: &Path, groups: &[&str], known_back_edges: &[(&str, &str)]) {
    let mut graph = module_graph(src, groups);
    let mut stale = Vec::new();
    for (from, to) in known_back_edges {
        let removed = graph.get_mut(*from).is_some_and(|edges| edges.remove(*to));
        if !removed {
            stale.push(format!("{from} → {to}"));
        }
    }
    assert!(
        stale.is_empty(),
        "{}: these known back-edges are gone; delete them from the list: {}",
        relative(src),
        stale.join(", ")
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "{}: the top-level modules import each other in a cycle: {}\n(edges: {graph:#?})",
            relative(src),
            cycle.join(" → ")
        );
    }
}

/// A cycle in `graph` as `a → b → … → a`, if there is one (depth-first, three colours).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut done, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

/// A file's code without comments, string contents and `#[cfg(test)]` items, and its
/// string literals (outside `#[cfg(test)]` items).
struct Scanned {
    code: String,
    literals: Vec<String>,
}

fn scan(text: &str) -> Scanned {
    // Pass 1: blank out comments and literals, keeping each literal's text aside (with the
    // offset of its placeholder, to drop those of test items in pass 2).
    let chars: Vec<char> = text.chars().collect();
    let mut code = String::with_capacity(text.len());
    let mut literals: Vec<(usize, String)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            let (literal, end) = read_string(&chars, i);
            literals.push((code.len(), literal));
            code.push_str("\"\"");
            i = end;
        } else if c == '\'' {
            // A char literal ('x', '\n', '{') or a lifetime ('a).
            if next == Some('\\') {
                // Past the escaped character, which may itself be a quote (`'\''`).
                let mut j = i + 3;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                code.push_str("' '");
                i = j + 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                code.push_str("' '");
                i += 3;
            } else {
                code.push(c);
                i += 1;
            }
        } else {
            // Identifiers are copied whole, so that only a lone `r`, `b` or `br` before a
            // quote starts a raw or byte string.
            if c.is_alphanumeric() || c == '_' {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                // `r"`, `r#"`, `b"`, `br#"`, but not the raw identifier `r#type`.
                let hashes = chars[i..].iter().take_while(|c| **c == '#').count();
                let quote_next =
                    chars.get(i + hashes) == Some(&'"') && (hashes == 0 || word != "b");
                if matches!(word.as_str(), "r" | "b" | "br") && quote_next {
                    let (literal, end) = read_string(&chars, start);
                    literals.push((code.len(), literal));
                    code.push_str("\"\"");
                    i = end;
                } else {
                    code.push_str(&word);
                }
                continue;
            }
            code.push(c);
            i += 1;
        }
    }
    // Pass 2: drop `#[cfg(test)]` items: the attribute, then the item up to its `;` or its
    // balanced `{…}`.
    let mut kept = String::with_capacity(code.len());
    let mut dropped: Vec<(usize, usize)> = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if code[i..].starts_with("#[cfg(test)]") {
            let start = i;
            let mut j = i + "#[cfg(test)]".len();
            let mut depth = 0usize;
            while j < bytes.len() {
                match bytes[j] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            j += 1;
                            break;
                        }
                    }
                    b';' if depth == 0 => {
                        j += 1;
                        break;
                    }
                    _ => {}
                }
                j += 1;
            }
            dropped.push((start, j));
            i = j;
        } else {
            // Copy one char (UTF-8 aware).
            let ch = code[i..].chars().next().unwrap();
            kept.push(ch);
            i += ch.len_utf8();
        }
    }
    let literals = literals
        .into_iter()
        .filter(|(at, _)| !dropped.iter().any(|(s, e)| (*s..*e).contains(at)))
        .map(|(_, l)| l)
        .collect();
    Scanned {
        code: kept,
        literals,
    }
}

/// Reads the string literal starting at `i` (`"…"`, `b"…"`, `r"…"`, `r#"…"#`); returns its
/// contents and the index after it.
fn read_string(chars: &[char], mut i: usize) -> (String, usize) {
    if chars[i] == 'b' {
        i += 1;
    }
    if chars[i] == 'r' {
        i += 1;
        let mut hashes = 0;
        while chars[i] == '#' {
            hashes += 1;
            i += 1;
        }
        i += 1; // the opening quote
        let start = i;
        loop {
            if chars[i] == '"'
                && chars[i + 1..]
                    .iter()
                    .take(hashes)
                    .filter(|c| **c == '#')
                    .count()
                    == hashes
            {
                let literal: String = chars[start..i].iter().collect();
                return (literal, i + 1 + hashes);
            }
            i += 1;
        }
    }
    i += 1; // the opening quote
    let mut literal = String::new();
    while chars[i] != '"' {
        if chars[i] == '\\' {
            literal.push(chars[i]);
            i += 1;
        }
        literal.push(chars[i]);
        i += 1;
    }
    (literal, i + 1)
}

/// The top-level modules `code` refers to: `x` for `crate::x…` and each `x` of
/// `crate::{x…, y…}` (`g::x` when `g` is one of `groups`); `super:x` for a `super::` path
/// that reaches the crate root (from a file at `path`, so `super::` in a top-level file,
/// `super::super::` one level down), and `super:g::x` for one that climbs from a module of
/// group `g` to a sibling.
fn references(code: &str, path: &[String], groups: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let squeezed: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let code = squeezed.replace(":: ", "::").replace(" ::", "::");
    for (at, _) in code.match_indices("crate::") {
        // Not `pushpoll_crate::` or the like.
        if code[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            found.extend(group_heads(group, groups));
        } else {
            found.extend(heads(rest, groups));
        }
    }
    let depth = path.len();
    let in_group = depth == 2 && groups.contains(&path[0].as_str());
    for (at, _) in code.match_indices("super::") {
        if code[..at].ends_with("super::") {
            continue; // counted from the first `super::` of a chain
        }
        let mut rest = &code[at..];
        let mut climbs = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            climbs += 1;
            rest = r;
        }
        let prefix = if climbs == depth && depth > 0 {
            "super:".to_string()
        } else if in_group && climbs == 1 {
            format!("super:{}::", path[0])
        } else {
            continue;
        };
        if let Some(group) = rest.strip_prefix('{') {
            found.extend(
                group_heads(group, &[])
                    .into_iter()
                    .map(|h| format!("{prefix}{h}")),
            );
        } else {
            found.push(format!("{prefix}{}", ident(rest)));
        }
    }
    found.retain(|f| !f.is_empty() && !f.ends_with(':'));
    found
}

/// The module a path (after `crate::`) names: its first segment, or `g::x` for a path
/// through group `g` (each `g::x` of `g::{x, y}`).
fn heads(rest: &str, groups: &[&str]) -> Vec<String> {
    let head = ident(rest);
    let Some(inner) = rest[head.len()..].strip_prefix("::") else {
        return vec![head];
    };
    if !groups.contains(&head.as_str()) {
        return vec![head];
    }
    match inner.strip_prefix('{') {
        Some(group) => group_heads(group, &[])
            .into_iter()
            .map(|h| format!("{head}::{h}"))
            .collect(),
        None => vec![format!("{head}::{}", ident(inner))],
    }
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The module of each path in a `{a, b::c, d::{e}}` group (after its `{`), as [`heads`]
/// names it.
fn group_heads(group: &str, groups: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut depth = 0;
    let mut at_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_start = true,
            c if at_start && !c.is_whitespace() => {
                found.extend(heads(&group[i..], groups));
                at_start = false;
            }
            _ => {}
        }
    }
    found
}
