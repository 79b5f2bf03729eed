//! Embeds the committed measurements (`results/`) and the pages with their scripts and styles
//! (`demos/`, `static/`) into the binary, so the server shows them from any working directory
//! and a new file is served without being listed anywhere.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read at run time: `env!` would bake in the folder the build script was compiled in, and
    // a target directory copied from another checkout would then embed that one's results.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir);
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    let out_dir = Path::new(&out_dir);

    let results = root.join("results");
    let mut files = Vec::new();
    collect(
        &results,
        &results,
        &["md", "svg", "json", "csv", "txt"],
        &mut files,
    );
    let entries = embed(&results, &files, |rel, bytes| format!("({rel:?}, {bytes})"));
    let out = format!(
        "/// Every file under `results/`: (path relative to it, contents).\n\
         pub static RESULTS: &[(&str, &[u8])] = &[\n{entries}];\n"
    );
    std::fs::write(out_dir.join("results.rs"), out).expect("write results.rs");

    let mut files = Vec::new();
    for dir in ["demos", "static"] {
        collect(root, &root.join(dir), &[], &mut files);
    }
    let entries = embed(root, &files, |rel, bytes| {
        format!("Asset {{ path: {rel:?}, body: {bytes} }}")
    });
    let out = format!(
        "/// Every file under `demos/` and `static/`, subfolders included.\n\
         pub static ASSETS: &[Asset] = &[\n{entries}];\n"
    );
    std::fs::write(out_dir.join("assets.rs"), out).expect("write assets.rs");
}

/// One line per file (sorted), each `entry(path relative to base, its include_bytes!)`.
fn embed(base: &Path, files: &[String], entry: impl Fn(&str, &str) -> String) -> String {
    let mut sorted = files.to_vec();
    sorted.sort();
    let mut out = String::new();
    for rel in &sorted {
        let bytes = format!("include_bytes!({:?})", base.join(rel).display().to_string());
        let _ = writeln!(out, "    {},", entry(rel, &bytes));
    }
    out
}

/// Every file under `dir` whose extension is one of `extensions` (any, when empty), as a path
/// relative to `base` with `/` separators; each folder is watched for changes.
fn collect(base: &Path, dir: &Path, extensions: &[&str], files: &mut Vec<String>) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(base, &path, extensions, files);
        } else if (extensions.is_empty()
            || path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e)))
            && let Ok(rel) = path.strip_prefix(base)
        {
            files.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}
