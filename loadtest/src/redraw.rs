//! `loadtest charts [--check] [DIR...]`: every chart under the results directories, drawn
//! again from the data beside it by the code the runs draw it with, so a committed chart
//! cannot lag its data. What draws what:
//!
//! - a run's `summary.json` (`run`, `compare`): its four bar charts (`export`);
//! - a soak's `summary.json`: `chart.svg` (`soak`);
//! - a side-by-side report's `summary.json`: its charts (`sidebyside`);
//! - a directory whose subdirectories hold a churn run, or a storm run with jitter and one
//!   without: `recovery.svg`, `storm.svg` (`faults`).
//!
//! `--check` writes nothing and fails, naming each chart that differs from what its data draws
//! and each chart no data draws (`scripts/test.sh` runs it). Drawing is deterministic (no
//! clock, no hash order, coordinates in whole pixels and labels in one number format), so the
//! check cannot flake.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::cli::ChartsArgs;
use crate::report::Summary;

/// One chart file and what its data draws into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub path: PathBuf,
    pub svg: String,
}

/// What `dirs` hold against what their data draws.
#[derive(Debug, Default, PartialEq)]
pub struct Comparison {
    /// Every chart the data draws, by path.
    pub drawn: Vec<Chart>,
    /// Drawn charts whose file is missing or holds something else.
    pub stale: Vec<PathBuf>,
    /// SVG files that no data under `dirs` draws.
    pub undrawn: Vec<PathBuf>,
}

/// `loadtest charts`: redraw (or with `--check`, compare) every chart under each directory.
pub fn run(args: &ChartsArgs) -> Result<()> {
    let found = compare(&args.dirs)?;
    let mut problems = Vec::new();
    for chart in found.drawn.iter().filter(|c| found.stale.contains(&c.path)) {
        if args.check {
            let why = if chart.path.exists() {
                "differs from what its data draws"
            } else {
                "is missing"
            };
            problems.push(format!("{}: {why}", chart.path.display()));
        } else {
            crate::export::write_atomic(&chart.path, chart.svg.as_bytes())
                .with_context(|| format!("writing {}", chart.path.display()))?;
            println!("redrew {}", chart.path.display());
        }
    }
    for path in &found.undrawn {
        problems.push(format!(
            "{}: no data here draws it (commit the data it was drawn from, or remove it)",
            path.display()
        ));
    }
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("{problem}");
        }
        let redraw = if args.check {
            " (`loadtest charts DIR` redraws them)"
        } else {
            ""
        };
        bail!(
            "{} of {} charts are not what their data draws{redraw}",
            problems.len(),
            found.drawn.len() + found.undrawn.len()
        );
    }
    println!("{} charts are what their data draws", found.drawn.len());
    Ok(())
}

/// Draws every chart the data under `dirs` draws and compares each with its file.
pub fn compare(dirs: &[PathBuf]) -> Result<Comparison> {
    let mut drawn = Vec::new();
    let mut on_disk = BTreeSet::new();
    for dir in dirs {
        if !dir.is_dir() {
            bail!("{} is not a directory of results", dir.display());
        }
        for sub in tree(dir)? {
            for (name, svg) in draw_dir(&sub)? {
                drawn.push(Chart {
                    path: sub.join(name),
                    svg,
                });
            }
            on_disk.extend(svgs_in(&sub)?);
        }
    }
    drawn.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(pair) = drawn.windows(2).find(|w| w[0].path == w[1].path) {
        bail!(
            "{} is drawn twice, from two kinds of data in one directory",
            pair[0].path.display()
        );
    }
    let stale = drawn
        .iter()
        .filter(|c| fs::read(&c.path).ok().as_deref() != Some(c.svg.as_bytes()))
        .map(|c| c.path.clone())
        .collect();
    let drawn_paths: BTreeSet<&PathBuf> = drawn.iter().map(|c| &c.path).collect();
    let undrawn = on_disk
        .into_iter()
        .filter(|p| !drawn_paths.contains(p))
        .collect();
    Ok(Comparison {
        drawn,
        stale,
        undrawn,
    })
}

/// The charts the data in `dir` itself draws, as (file name, SVG).
fn draw_dir(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut charts = Vec::new();
    if let Some(summary) = Summary::read_if_run(dir)? {
        charts.extend(crate::export::charts(&summary)?);
    }
    charts.extend(crate::soak::charts_of(dir)?);
    charts.extend(crate::sidebyside::charts_of(dir)?);
    charts.extend(crate::faults::charts_of(dir)?);
    Ok(charts)
}

/// `dir` and every directory below it (symbolic links not followed), sorted.
fn tree(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while let Some(d) = out.get(i).cloned() {
        i += 1;
        let mut subs = Vec::new();
        for entry in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry.with_context(|| format!("reading {}", d.display()))?;
            if entry.file_type()?.is_dir() {
                subs.push(entry.path());
            }
        }
        subs.sort();
        out.extend(subs);
    }
    out.sort();
    Ok(out)
}

/// The `.svg` files directly in `dir`.
fn svgs_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "svg") {
            out.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
