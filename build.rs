//! Embeds the committed measurements (`results/`) into the binary, so `/results` shows them
//! from any working directory.

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
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("results.rs");
    std::fs::write(dest, out).expect("write results.rs");
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
