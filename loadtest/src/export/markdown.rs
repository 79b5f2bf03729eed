//! `summary.md`: the run, the machine, the workload, the results and bytes tables (the
//! columns of [`super::columns`] with their long headers) and the charts.

use std::fmt::Write as _;

use anyhow::Result;

use super::Exporter;
use super::charts::BarChart;
use super::columns::{self, Align, BYTES, BYTES_CAPTION, Column, NODES, NODES_CAPTION, RESULTS};
use super::format::{GIB, workload_line, workload_short};
use crate::report::Summary;

pub struct MarkdownExporter;

impl Exporter for MarkdownExporter {
    fn file_name(&self) -> &str {
        "summary.md"
    }

    fn render(&self, s: &Summary) -> Result<String> {
        let mut md = String::new();
        let m = &s.machine;
        writeln!(md, "# loadtest: {}", workload_short(&s.workload))?;
        writeln!(md)?;
        if !s.started.is_empty() {
            writeln!(md, "Started {}.", s.started)?;
            writeln!(md)?;
        }
        // A fence longer than any run of backticks in the command.
        let longest_run = s
            .command
            .split(|c| c != '`')
            .map(str::len)
            .max()
            .unwrap_or(0);
        let fence = "`".repeat(longest_run.max(2) + 1);
        writeln!(md, "{fence}sh\n{}\n{fence}", s.command)?;
        writeln!(md)?;
        writeln!(
            md,
            "**Machine:** {} cores, {:.1} GiB memory, {}, {}",
            m.cores,
            m.memory_bytes as f64 / GIB,
            m.os,
            m.cpu
        )?;
        writeln!(md)?;
        writeln!(md, "**Workload:** {}", workload_line(&s.workload))?;
        writeln!(md)?;

        md.push_str(&table(&RESULTS, s));
        writeln!(md)?;
        writeln!(
            md,
            "Latency is `received_at − event.ts`; req per event is client requests per \
             delivered event; bytes per event counts every byte the clients read and wrote on \
             their sockets, headers included, or for WebTransport its QUIC UDP payload (see \
             the bytes table; docs/API.md, Glossary)."
        )?;
        for r in &s.results {
            if let Some(d) = &r.datagrams {
                writeln!(md)?;
                writeln!(
                    md,
                    "{} in datagram mode: {} events came as datagrams; {} were found missing \
                     from the ids that came, loss the transport accepts (QUIC does not resend \
                     a datagram), not counted in lost.",
                    r.transport, d.received, d.lost
                )?;
            }
        }
        writeln!(md)?;
        md.push_str("## Bytes on the wire, down and up\n\n");
        md.push_str(&table(&BYTES, s));
        md.push_str(&format!("\n{BYTES_CAPTION}\n\n"));
        // Only for runs over several nodes (or with --redis-pid): a one-server summary.md
        // is what it was.
        let nodes = columns::node_rows(s);
        if !nodes.is_empty() {
            md.push_str("## Per node\n\n");
            md.push_str(&rows_table(&NODES, &nodes));
            md.push_str(&format!("\n{NODES_CAPTION}\n\n"));
        }
        for chart in BarChart::all() {
            writeln!(md, "![{}]({})", chart.what, chart.file)?;
            writeln!(md)?;
        }
        Ok(md)
    }
}

/// A Markdown table: the header line, the alignment line, one line per transport.
fn table(table: &[Column], s: &Summary) -> String {
    rows_table(table, &s.results)
}

/// [`table`] for any rows.
fn rows_table<R>(table: &[Column<R>], rows: &[R]) -> String {
    let header: Vec<&str> = table.iter().map(|c| c.long).collect();
    let align: Vec<&str> = table
        .iter()
        .map(|c| match c.align {
            Align::Right => "---:",
            Align::Left => "---",
        })
        .collect();
    let mut md = format!("| {} |\n|{}|\n", header.join(" | "), align.join("|"));
    for r in rows {
        let cells: Vec<String> = columns::cells(table, r, " / ")
            .iter()
            .map(|c| cell(c))
            .collect();
        md.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    md
}

/// A cell's text with the characters that would break the table escaped or flattened.
pub(super) fn cell(value: &str) -> String {
    value.replace('|', "\\|").replace(['\n', '\r'], " ")
}
