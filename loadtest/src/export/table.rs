//! The results and bytes tables as aligned plain text for the terminal: the columns of
//! `summary.md` (see [`super::columns`]) with their short headers, each column padded to its
//! widest cell.

use super::columns::{
    self, Align, BYTES, BYTES_TERMINAL_CAPTION, Column, NODES, NODES_TERMINAL_CAPTION, RESULTS,
};
use crate::report::Summary;

/// The results table, as `loadtest` prints it at the end of a run.
pub fn terminal_table(summary: &Summary) -> String {
    aligned(&RESULTS, summary)
}

/// The bytes table, under its caption's first sentence.
pub fn terminal_bytes_table(summary: &Summary) -> String {
    format!("{BYTES_TERMINAL_CAPTION}\n{}", aligned(&BYTES, summary))
}

/// The per-node table under its caption, when the run had several nodes (or `--redis-pid`).
pub fn terminal_nodes_table(summary: &Summary) -> Option<String> {
    let rows = columns::node_rows(summary);
    if rows.is_empty() {
        return None;
    }
    Some(format!(
        "{NODES_TERMINAL_CAPTION}\n{}",
        aligned_rows(&NODES, &rows)
    ))
}

/// Header, a rule of dashes, then one line per transport; columns two spaces apart, trailing
/// spaces trimmed.
fn aligned(table: &[Column], summary: &Summary) -> String {
    aligned_rows(table, &summary.results)
}

/// [`aligned`] for any rows.
fn aligned_rows<R>(table: &[Column<R>], rows: &[R]) -> String {
    let header: Vec<String> = table.iter().map(|c| c.short.to_owned()).collect();
    let rows: Vec<Vec<String>> = rows.iter().map(|r| columns::cells(table, r, "/")).collect();
    let widths: Vec<usize> = (0..table.len())
        .map(|i| {
            std::iter::once(&header)
                .chain(&rows)
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |row: &[String]| {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .zip(table)
            .map(|((cell, &w), column)| match column.align {
                Align::Right => format!("{cell:>w$}"),
                Align::Left => format!("{cell:<w$}"),
            })
            .collect();
        format!("{}\n", cells.join("  ").trim_end())
    };
    let mut out = line(&header);
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    out.push_str(&line(&rule));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}
