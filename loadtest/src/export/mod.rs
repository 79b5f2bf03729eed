//! Writes a [`Summary`] to the `--out` directory: `summary.json`, `summary.csv`, `summary.md`
//! and one SVG chart per measure (LOADTEST.md, "Outputs"). One [`Exporter`] per file, one file
//! per format; every file is written atomically (`NAME.tmp`, then a rename), so calling
//! [`write_all`] after each transport keeps what was measured even if a later transport
//! crashes the run.
//!
//! - [`columns`]: the two tables the people read (results, bytes), each one list of columns
//!   that `summary.md` and the terminal both render, so headers and cells cannot drift;
//! - [`format`]: numbers and the workload in words;
//! - [`json`], [`csv`], [`markdown`], [`charts`]: one exporter each;
//! - [`table`]: the same tables aligned for the terminal.

mod charts;
mod columns;
mod csv;
mod format;
mod json;
mod markdown;
mod table;

use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::report::Summary;

pub use table::{terminal_bytes_table, terminal_nodes_table, terminal_table};

// The side-by-side report (`crate::sidebyside`) formats numbers as these files do.
pub(crate) use format::num;

/// Renders one output file from a summary.
pub trait Exporter {
    /// The file's name inside the output directory.
    fn file_name(&self) -> &str;
    /// The whole content of the file.
    fn render(&self, summary: &Summary) -> Result<String>;
}

/// Every exporter `write_all` runs, in the order it writes them.
pub fn exporters() -> Vec<Box<dyn Exporter>> {
    let mut all: Vec<Box<dyn Exporter>> = vec![
        Box::new(json::JsonExporter),
        Box::new(csv::CsvExporter),
        Box::new(markdown::MarkdownExporter),
    ];
    for chart in charts::BarChart::all() {
        all.push(Box::new(chart));
    }
    all
}

/// The charts alone, as (file name, SVG), drawn by the same exporters `write_all` runs: what
/// `loadtest charts` redraws from a committed `summary.json`.
pub fn charts(summary: &Summary) -> Result<Vec<(String, String)>> {
    charts::BarChart::all()
        .iter()
        .map(|chart| Ok((chart.file_name().to_owned(), chart.render(summary)?)))
        .collect()
}

/// Creates `dir` if needed and (re)writes every output file for `summary`.
///
/// Each file is written to `NAME.tmp` and renamed over `NAME`. A failure in one exporter does
/// not stop the others: all are attempted and the first error is returned.
pub fn write_all(dir: &Path, summary: &Summary) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut first_error = None;
    for exporter in exporters() {
        let path = dir.join(exporter.file_name());
        let written = exporter
            .render(summary)
            .and_then(|text| write_atomic(&path, text.as_bytes()))
            .with_context(|| format!("writing {}", path.display()));
        if let Err(error) = written {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp_name = path
        .file_name()
        .context("output path has no file name")?
        .to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(file);
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
