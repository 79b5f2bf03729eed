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
    let results = root.join("results");
    println!("cargo:rerun-if-changed=results");
    let mut files = Vec::new();
    collect(&results, &results, &mut files);
    files.sort();
    let mut out = String::from(
        "/// Every file under `results/`: (path relative to it, contents).\npub static RESULTS: &[(&str, &[u8])] = &[\n",
    );
    for rel in &files {
        let abs = results.join(rel);
        let _ = writeln!(
            out,
            "    ({rel:?}, include_bytes!({:?})),",
            abs.display().to_string()
        );
    }
    out.push_str("];\n");
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    let dest = Path::new(&out_dir).join("results.rs");
    std::fs::write(dest, out).expect("write results.rs");

    let mut assets = Vec::new();
    for dir in ["demos", "static"] {
        println!("cargo:rerun-if-changed={dir}");
        every_file(root, &root.join(dir), &mut assets);
    }
    assets.sort();
    let mut out = String::from(
        "/// Every file under `demos/` and `static/`, subfolders included.\npub static ASSETS: &[Asset] = &[\n",
    );
    for rel in &assets {
        let abs = root.join(rel);
        let _ = writeln!(
            out,
            "    Asset {{ path: {rel:?}, body: include_bytes!({:?}) }},",
            abs.display().to_string()
        );
    }
    out.push_str("];\n");
    std::fs::write(Path::new(&out_dir).join("assets.rs"), out).expect("write assets.rs");
}

/// Every file under `dir`, as a path relative to `base` with `/` separators.
fn every_file(base: &Path, dir: &Path, files: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            every_file(base, &path, files);
        } else if let Ok(rel) = path.strip_prefix(base) {
            files.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn collect(base: &Path, dir: &Path, files: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(base, &path, files);
        } else if let Some(ext) = path.extension().and_then(|e| e.to_str())
            && ["md", "svg", "json", "csv", "txt"].contains(&ext)
            && let Ok(rel) = path.strip_prefix(base)
        {
            files.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}
