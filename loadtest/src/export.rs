//! Writes a [`Summary`] to the `--out` directory: `summary.json`, `summary.csv`, `summary.md`
//! and one SVG chart per measure (LOADTEST.md, "Outputs"). One [`Exporter`] per file; every
//! file is written atomically (`NAME.tmp`, then a rename), so calling [`write_all`] after each
//! transport keeps what was measured even if a later transport crashes the run.
//!
//! Charts are drawn with plotters' SVG backend only: text is emitted as SVG `<text>`, so no
//! font has to be found or loaded.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{Summary, TransportResult, Workload};

/// Renders one output file from a summary.
pub trait Exporter {
    /// The file's name inside the output directory.
    fn file_name(&self) -> &str;
    /// The whole content of the file.
    fn render(&self, summary: &Summary) -> Result<String>;
}

/// Every exporter `write_all` runs, in the order it writes them.
pub fn exporters() -> Vec<Box<dyn Exporter>> {
    vec![
        Box::new(JsonExporter),
        Box::new(CsvExporter),
        Box::new(MarkdownExporter),
        Box::new(BarChart::latency()),
        Box::new(BarChart::requests_per_event()),
        Box::new(BarChart::bytes_per_event()),
        Box::new(BarChart::cpu_per_event()),
    ]
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

// ---------------------------------------------------------------------------------------------
// JSON

/// `summary.json`: the summary as pretty JSON.
pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn file_name(&self) -> &str {
        "summary.json"
    }

    fn render(&self, summary: &Summary) -> Result<String> {
        let mut text = serde_json::to_string_pretty(summary)?;
        text.push('\n');
        Ok(text)
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

/// `summary.csv`: one row per transport, every field of [`TransportResult`] flattened.
pub struct CsvExporter;

const CSV_HEADER: [&str; 26] = [
    "transport",
    "clients",
    "duration_s",
    "rate",
    "events_expected",
    "events_received",
    "lost",
    "duplicates",
    "requests",
    "server_requests",
    "requests_per_s",
    "latency_p50_us",
    "latency_p90_us",
    "latency_p99_us",
    "latency_p999_us",
    "latency_max_us",
    "latency_mean_us",
    "bytes_in",
    "bytes_out",
    "bytes_per_event",
    "server_cpu_s",
    "server_cpu_us_per_event",
    "server_rss_peak_bytes",
    "open_connections_peak",
    "loadtest_cpu_s",
    "errors",
];

fn csv_row(r: &TransportResult) -> [String; 26] {
    let l = &r.latency_us;
    let errors = r
        .errors
        .iter()
        .map(|(kind, n)| format!("{kind}={n}"))
        .collect::<Vec<_>>()
        .join(";");
    [
        r.transport.clone(),
        r.clients.to_string(),
        r.duration_s.to_string(),
        r.rate.to_string(),
        r.events_expected.to_string(),
        r.events_received.to_string(),
        r.lost.to_string(),
        r.duplicates.to_string(),
        r.requests.to_string(),
        r.server_requests.to_string(),
        r.requests_per_s.to_string(),
        l.p50.to_string(),
        l.p90.to_string(),
        l.p99.to_string(),
        l.p999.to_string(),
        l.max.to_string(),
        l.mean.to_string(),
        r.bytes_in.to_string(),
        r.bytes_out.to_string(),
        r.bytes_per_event.to_string(),
        r.server_cpu_s.to_string(),
        r.server_cpu_us_per_event.to_string(),
        r.server_rss_peak_bytes.to_string(),
        r.open_connections_peak.to_string(),
        r.loadtest_cpu_s.to_string(),
        errors,
    ]
}

/// The byte columns added with issue 10, after the first 26 so older readers of the CSV keep
/// their column numbers. Names as in the glossary (docs/API.md): per event is ÷ events
/// received over the whole run; per second is within the measured window; `bytes_in`
/// (down) and `bytes_out` (up) are the run's totals.
const CSV_BYTES_HEADER: [&str; 5] = [
    "bytes_down_per_event",
    "bytes_up_per_event",
    "bytes_down_per_s",
    "bytes_up_per_s",
    "bytes_per_s",
];

fn csv_bytes_row(r: &TransportResult) -> [String; 5] {
    [
        r.bytes_down_per_event.to_string(),
        r.bytes_up_per_event.to_string(),
        r.bytes_down_per_s.to_string(),
        r.bytes_up_per_s.to_string(),
        r.bytes_per_s.to_string(),
    ]
}

/// Quotes a CSV field when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

impl Exporter for CsvExporter {
    fn file_name(&self) -> &str {
        "summary.csv"
    }

    fn render(&self, summary: &Summary) -> Result<String> {
        let header: Vec<&str> = CSV_HEADER
            .iter()
            .chain(&CSV_BYTES_HEADER)
            .copied()
            .collect();
        let mut text = csv_line(&header);
        for r in &summary.results {
            let row: Vec<String> = csv_row(r).into_iter().chain(csv_bytes_row(r)).collect();
            text.push_str(&csv_line(&row));
        }
        Ok(text)
    }
}

// ---------------------------------------------------------------------------------------------
// Tables: Markdown and terminal

/// Number formatting for people: up to 3 significant digits, no decimals from 100 up, trailing
/// zeros trimmed; `n/a` for NaN and infinities.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_owned();
    }
    if v == 0.0 {
        return "0".to_owned();
    }
    let decimals = if v.abs() >= 100.0 {
        0
    } else {
        (2 - v.abs().log10().floor() as i32).clamp(0, 8) as usize
    };
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(trimmed);
    }
    if s == "-0" { "0".to_owned() } else { s }
}

/// A finite number with a fixed count of decimals, `n/a` otherwise.
fn fixed(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "n/a".to_owned()
    }
}

fn ms(us: u64) -> String {
    fixed(us as f64 / 1000.0, 1)
}

/// `a / b`, or NaN when `b` is 0.
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Columns of the results table: (Markdown header, terminal header, right-aligned).
const TABLE_COLUMNS: [(&str, &str, bool); 15] = [
    ("transport", "transport", false),
    ("clients", "clients", true),
    ("events expected", "expected", true),
    ("received", "received", true),
    ("lost", "lost", true),
    ("dup", "dup", true),
    ("requests (client/server)", "req cli/srv", true),
    ("req per event", "req/event", true),
    ("p50 / p99 / max latency (ms)", "p50/p99/max ms", true),
    ("bytes per event (down + up)", "bytes/event", true),
    ("server CPU µs/event", "srv cpu µs/ev", true),
    ("server RSS peak (MiB)", "rss MiB", true),
    ("open conns peak", "conns", true),
    ("loadtest CPU s", "lt cpu s", true),
    ("errors", "errors", false),
];

/// The cells of one table row; `sep` goes between paired figures (" / " or "/").
fn table_row(r: &TransportResult, sep: &str) -> [String; 15] {
    let l = &r.latency_us;
    let errors = if r.errors.is_empty() {
        "none".to_owned()
    } else {
        r.errors
            .iter()
            .map(|(kind, n)| format!("{kind}={n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    [
        r.transport.clone(),
        r.clients.to_string(),
        r.events_expected.to_string(),
        r.events_received.to_string(),
        r.lost.to_string(),
        r.duplicates.to_string(),
        format!("{}{sep}{}", r.requests, r.server_requests),
        num(ratio(r.requests, r.events_received)),
        format!("{}{sep}{}{sep}{}", ms(l.p50), ms(l.p99), ms(l.max)),
        num(r.bytes_per_event),
        num(r.server_cpu_us_per_event),
        fixed(r.server_rss_peak_bytes as f64 / MIB, 1),
        r.open_connections_peak.to_string(),
        fixed(r.loadtest_cpu_s, 2),
        errors,
    ]
}

/// "200 clients, 20 msg/s, 20 s" (with the feed first unless it is the default chat feed).
fn workload_short(w: &Workload) -> String {
    let feed = if w.feed == "chat" {
        String::new()
    } else {
        format!("{} feed, ", w.feed)
    };
    format!(
        "{feed}{} clients, {} msg/s, {} s",
        w.clients,
        num(w.rate),
        num(w.duration_s)
    )
}

fn workload_line(w: &Workload) -> String {
    format!(
        "{} feed, {} clients, {} msg/s for {} s after a {} s ramp, short-poll interval {} ms, \
         {} room{}, {}-byte messages",
        w.feed,
        w.clients,
        num(w.rate),
        num(w.duration_s),
        num(w.ramp_s),
        w.poll_interval_ms,
        w.rooms,
        if w.rooms == 1 { "" } else { "s" },
        w.message_size
    )
}

fn md_cell(value: &str) -> String {
    value.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// `summary.md`: the run, the machine, the workload, one results table and the charts.
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

        let header: Vec<&str> = TABLE_COLUMNS.iter().map(|c| c.0).collect();
        writeln!(md, "| {} |", header.join(" | "))?;
        let align: Vec<&str> = TABLE_COLUMNS
            .iter()
            .map(|c| if c.2 { "---:" } else { "---" })
            .collect();
        writeln!(md, "|{}|", align.join("|"))?;
        for r in &s.results {
            let cells: Vec<String> = table_row(r, " / ").iter().map(|c| md_cell(c)).collect();
            writeln!(md, "| {} |", cells.join(" | "))?;
        }
        writeln!(md)?;
        writeln!(
            md,
            "Latency is `received_at − event.ts`; req per event is client requests per \
             delivered event; bytes per event counts every byte the clients read and wrote on \
             their sockets, headers included (docs/API.md, Glossary)."
        )?;
        writeln!(md)?;
        md.push_str(&markdown_bytes_table(s));
        for chart in BarChart::all() {
            writeln!(md, "![{}]({})", chart.what, chart.file)?;
            writeln!(md)?;
        }
        Ok(md)
    }
}

/// The results table as aligned plain text for the terminal: the same columns as
/// `summary.md`, with shorter headers, each column padded to its widest cell.
pub fn terminal_table(summary: &Summary) -> String {
    let header: Vec<String> = TABLE_COLUMNS.iter().map(|c| c.1.to_owned()).collect();
    let rows: Vec<Vec<String>> = summary
        .results
        .iter()
        .map(|r| table_row(r, "/").to_vec())
        .collect();
    let width = |i: usize| {
        std::iter::once(&header)
            .chain(&rows)
            .map(|row| row[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..TABLE_COLUMNS.len()).map(width).collect();
    let line = |row: &[String]| {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .zip(&TABLE_COLUMNS)
            .map(|((cell, &w), col)| {
                if col.2 {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        let mut text = cells.join("  ").trim_end().to_owned();
        text.push('\n');
        text
    };
    let mut out = line(&header);
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    out.push_str(&line(&rule));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Bytes on the wire, both directions (issue 10): a table of its own, so the definitions sit
// in its caption and the main table keeps its columns.

/// Columns of the bytes table: (Markdown header, terminal header). Names as in the glossary.
const BYTES_COLUMNS: [(&str, &str); 7] = [
    ("transport", "transport"),
    ("bytes down per event", "down/event"),
    ("bytes up per event", "up/event"),
    ("bytes per event", "total/event"),
    ("bytes down per s", "down/s"),
    ("bytes up per s", "up/s"),
    ("bytes per s", "total/s"),
];

const BYTES_CAPTION: &str = "Bytes on the clients' sockets, headers and framing included \
    (request lines and headers, chunked framing, WebSocket handshake, frame headers and \
    client masks). Down = read by the subscribers, up = written by them; the publisher's \
    POSTs are not the subscribers' and are not counted. Per event = the whole run's bytes ÷ \
    events received; per s = the measured window's bytes ÷ its length.";

fn bytes_row(r: &TransportResult) -> [String; 7] {
    [
        r.transport.clone(),
        num(r.bytes_down_per_event),
        num(r.bytes_up_per_event),
        num(r.bytes_per_event),
        num(r.bytes_down_per_s),
        num(r.bytes_up_per_s),
        num(r.bytes_per_s),
    ]
}

/// The `## Bytes on the wire` section of `summary.md`.
fn markdown_bytes_table(s: &Summary) -> String {
    let mut md = String::from("## Bytes on the wire, down and up\n\n");
    let header: Vec<&str> = BYTES_COLUMNS.iter().map(|c| c.0).collect();
    md.push_str(&format!(
        "| {} |\n|---|{}\n",
        header.join(" | "),
        "---:|".repeat(6)
    ));
    for r in &s.results {
        let cells: Vec<String> = bytes_row(r).iter().map(|c| md_cell(c)).collect();
        md.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    md.push_str(&format!("\n{BYTES_CAPTION}\n\n"));
    md
}

/// The bytes table for the terminal, aligned, under its caption's first sentence.
pub fn terminal_bytes_table(summary: &Summary) -> String {
    let header: Vec<String> = BYTES_COLUMNS.iter().map(|c| c.1.to_owned()).collect();
    let rows: Vec<Vec<String>> = summary
        .results
        .iter()
        .map(|r| bytes_row(r).to_vec())
        .collect();
    let widths: Vec<usize> = (0..BYTES_COLUMNS.len())
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
            .enumerate()
            .map(|(i, (cell, &w))| {
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        format!("{}\n", cells.join("  ").trim_end())
    };
    let mut out = String::from(
        "bytes on the clients' sockets, headers included (down = read, up = written)\n",
    );
    out.push_str(&line(&header));
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    out.push_str(&line(&rule));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// SVG charts

const CHART_SIZE: (u32, u32) = (900, 500);
/// plotters divides font sizes by 1.24 in SVG; these are the sizes as passed to plotters.
const TITLE_FONT: u32 = 24;
const AXIS_DESC_FONT: u32 = 18;
const LABEL_FONT: u32 = 16;
const VALUE_FONT: u32 = 14;
/// Width of one transport's slot on the x axis, in x units (x is an integer axis so plotters
/// can format its labels; transport `i` is centred at `i * SLOT`).
const SLOT: i32 = 1000;
/// How much of its slot a transport's bars fill.
const GROUP_WIDTH: i32 = 800;

/// One series of bars: a name for the legend, a colour, and the value per transport.
struct Series {
    name: &'static str,
    color: RGBColor,
    value: fn(&TransportResult) -> f64,
}

/// A bar chart with one bar (or one group of bars) per transport.
pub struct BarChart {
    file: &'static str,
    /// What is drawn; the title is this plus the workload.
    what: &'static str,
    y_desc: &'static str,
    series: Vec<Series>,
}

const BLUE_BAR: RGBColor = RGBColor(66, 114, 196);
const AMBER_BAR: RGBColor = RGBColor(237, 162, 47);
const RED_BAR: RGBColor = RGBColor(196, 61, 61);

impl BarChart {
    fn all() -> [BarChart; 4] {
        [
            Self::latency(),
            Self::requests_per_event(),
            Self::bytes_per_event(),
            Self::cpu_per_event(),
        ]
    }

    /// `latency.svg`: p50, p90 and p99 delivery latency per transport, in ms.
    pub fn latency() -> Self {
        BarChart {
            file: "latency.svg",
            what: "Delivery latency (p50/p90/p99)",
            y_desc: "milliseconds",
            series: vec![
                Series {
                    name: "p50",
                    color: BLUE_BAR,
                    value: |r| r.latency_us.p50 as f64 / 1000.0,
                },
                Series {
                    name: "p90",
                    color: AMBER_BAR,
                    value: |r| r.latency_us.p90 as f64 / 1000.0,
                },
                Series {
                    name: "p99",
                    color: RED_BAR,
                    value: |r| r.latency_us.p99 as f64 / 1000.0,
                },
            ],
        }
    }

    /// `requests_per_event.svg`: client HTTP requests per delivered event.
    pub fn requests_per_event() -> Self {
        BarChart {
            file: "requests_per_event.svg",
            what: "HTTP requests per delivered event",
            y_desc: "requests per delivered event",
            series: vec![Series {
                name: "requests per event",
                color: BLUE_BAR,
                value: |r| ratio(r.requests, r.events_received),
            }],
        }
    }

    /// `bytes_per_event.svg`: bytes the clients read per delivered event.
    pub fn bytes_per_event() -> Self {
        BarChart {
            file: "bytes_per_event.svg",
            what: "Bytes per delivered event, down and up (headers included)",
            y_desc: "bytes per delivered event",
            series: vec![
                Series {
                    name: "bytes down per event",
                    color: BLUE_BAR,
                    value: |r| r.bytes_down_per_event,
                },
                Series {
                    name: "bytes up per event",
                    color: AMBER_BAR,
                    value: |r| r.bytes_up_per_event,
                },
                Series {
                    name: "bytes per event",
                    color: RED_BAR,
                    value: |r| r.bytes_per_event,
                },
            ],
        }
    }

    /// `cpu_per_event.svg`: server CPU time per delivered event, in µs.
    pub fn cpu_per_event() -> Self {
        BarChart {
            file: "cpu_per_event.svg",
            what: "Server CPU per delivered event",
            y_desc: "server CPU µs per delivered event",
            series: vec![Series {
                name: "server CPU per event",
                color: BLUE_BAR,
                value: |r| r.server_cpu_us_per_event,
            }],
        }
    }

    pub fn title(&self, workload: &Workload) -> String {
        format!("{} — {}", self.what, workload_short(workload))
    }

    fn draw(&self, summary: &Summary, svg: &mut String) -> Result<()> {
        let root = SVGBackend::with_string(svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let title = self.title(&summary.workload);
        let body = root.titled(&title, ("sans-serif", TITLE_FONT))?;

        let names: Vec<&str> = summary
            .results
            .iter()
            .map(|r| r.transport.as_str())
            .collect();
        // values[transport][series]: negative, NaN and infinite values are drawn as 0.
        let values: Vec<Vec<f64>> = summary
            .results
            .iter()
            .map(|r| {
                self.series
                    .iter()
                    .map(|s| {
                        let v = (s.value)(r);
                        if v.is_finite() && v > 0.0 { v } else { 0.0 }
                    })
                    .collect()
            })
            .collect();
        let max = values.iter().flatten().copied().fold(0.0, f64::max);
        // Head room above the tallest bar for its value label.
        let y_top = (max * 1.15).max(1.0);

        let plot_area = if self.series.len() > 1 {
            let (legend, rest) = body.split_vertically(30);
            self.draw_legend(&legend)?;
            rest
        } else {
            body
        };

        // At least 3 slots wide, so one transport (a `run`, or the first of a `compare`) does
        // not get bars as wide as the chart.
        let slots = names.len().max(3);
        let pad = (slots - names.len()) as i32 * SLOT / 2;
        let x_range = (-SLOT / 2 - pad..names.len() as i32 * SLOT - SLOT / 2 + pad)
            .with_key_points((0..names.len()).map(|i| i as i32 * SLOT).collect());
        let mut chart = ChartBuilder::on(&plot_area)
            .margin_top(10)
            .margin_left(10)
            .margin_right(20)
            .margin_bottom(5)
            .x_label_area_size(55)
            .y_label_area_size(80)
            .build_cartesian_2d(x_range, 0.0..y_top)?;

        let x_label = |x: &i32| {
            usize::try_from(x / SLOT)
                .ok()
                .filter(|_| x % SLOT == 0)
                .and_then(|i| names.get(i))
                .map_or_else(String::new, |n| (*n).to_owned())
        };
        let y_label = |y: &f64| num(*y);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("transport")
            .y_desc(self.y_desc)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .y_labels(8)
            .y_max_light_lines(1)
            .label_style(("sans-serif", LABEL_FONT))
            .axis_desc_style(("sans-serif", AXIS_DESC_FONT))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(210, 210, 210))
            .draw()?;

        let k = self.series.len() as i32;
        let bar_width = GROUP_WIDTH / k;
        let inset = bar_width / 16;
        let bar_x0 = |i: usize, j: usize| i as i32 * SLOT - GROUP_WIDTH / 2 + j as i32 * bar_width;
        for (j, series) in self.series.iter().enumerate() {
            let style = series.color.filled();
            chart.draw_series(values.iter().enumerate().map(|(i, vs)| {
                let x0 = bar_x0(i, j);
                Rectangle::new([(x0 + inset, 0.0), (x0 + bar_width - inset, vs[j])], style)
            }))?;
        }

        // Value labels above the bars, when they fit across a bar.
        let (px_range, _) = chart.plotting_area().get_pixel_range();
        let bar_px = f64::from(px_range.end - px_range.start) / slots as f64 * f64::from(bar_width)
            / f64::from(SLOT);
        let value_style = TextStyle::from(("sans-serif", VALUE_FONT).into_font())
            .color(&RGBColor(40, 40, 40))
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        let char_px = f64::from(VALUE_FONT) / 1.24 * 0.62;
        let mut labels = Vec::new();
        for (i, vs) in values.iter().enumerate() {
            for (j, &v) in vs.iter().enumerate() {
                let text = num(v);
                if text.chars().count() as f64 * char_px <= bar_px + 2.0 {
                    let centre = bar_x0(i, j) + bar_width / 2;
                    labels.push((centre, v, text));
                }
            }
        }
        chart.draw_series(labels.into_iter().map(|(x, y, text)| {
            EmptyElement::at((x, y)) + Text::new(text, (0, -3), value_style.clone())
        }))?;

        root.present()?;
        Ok(())
    }

    /// A row of coloured squares and series names, centred under the title.
    fn draw_legend<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let style = TextStyle::from(("sans-serif", LABEL_FONT).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        let (width, height) = area.dim_in_pixel();
        let swatch = 14i32;
        let gap = 6i32;
        let spacing = 28i32;
        let mut entries = Vec::new();
        for s in &self.series {
            let (text_w, _) = area
                .estimate_text_size(s.name, &style)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            entries.push((s, text_w as i32));
        }
        let total: i32 = entries.iter().map(|(_, w)| swatch + gap + w).sum::<i32>()
            + spacing * (entries.len() as i32 - 1).max(0);
        let mut x = (width as i32 - total).max(0) / 2;
        let y = height as i32 / 2;
        for (s, text_w) in entries {
            area.draw(&Rectangle::new(
                [(x, y - swatch / 2), (x + swatch, y + swatch / 2)],
                s.color.filled(),
            ))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            area.draw_text(s.name, &style, (x + swatch + gap, y))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            x += swatch + gap + text_w + spacing;
        }
        Ok(())
    }
}

impl Exporter for BarChart {
    fn file_name(&self) -> &str {
        self.file
    }

    fn render(&self, summary: &Summary) -> Result<String> {
        let mut svg = String::new();
        self.draw(summary, &mut svg)
            .with_context(|| format!("drawing {}", self.file))?;
        Ok(svg)
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::report::{Latency, Machine};

    const TRANSPORTS: [&str; 5] = ["poll", "longpoll", "iframe", "sse", "ws"];
    const FILES: [&str; 7] = [
        "summary.json",
        "summary.csv",
        "summary.md",
        "latency.svg",
        "requests_per_event.svg",
        "bytes_per_event.svg",
        "cpu_per_event.svg",
    ];

    fn workload() -> Workload {
        Workload {
            feed: "chat".into(),
            clients: 200,
            rate: 20.0,
            duration_s: 20.0,
            ramp_s: 2.0,
            poll_interval_ms: 1000,
            rooms: 1,
            message_size: 100,
        }
    }

    fn summary(results: Vec<TransportResult>) -> Summary {
        Summary {
            workload: workload(),
            machine: Machine {
                cores: 2,
                memory_bytes: 24 * 1024 * 1024 * 1024,
                os: "Linux 6.1 (x86_64)".into(),
                cpu: "Test CPU @ 2.00GHz".into(),
            },
            command: "loadtest compare --clients 200 --rate 20 --duration 20s".into(),
            started: "2026-01-02T03:04:05Z".into(),
            results,
        }
    }

    fn fake_result(i: usize, transport: &str) -> TransportResult {
        let scale = (5 - i) as u64;
        let mut errors = BTreeMap::new();
        if i == 1 {
            errors.insert("status 503, \"busy\"".to_owned(), 3);
            errors.insert("connect".to_owned(), 1);
        }
        TransportResult {
            transport: transport.to_owned(),
            clients: 200,
            duration_s: 20.0,
            rate: 20.0,
            events_expected: 80_000,
            events_received: 80_000 - i as u64,
            lost: i as u64,
            duplicates: 0,
            requests: 4000 * scale,
            server_requests: 4000 * scale + 2,
            requests_per_s: 200.0 * scale as f64,
            latency_us: Latency {
                p50: 1500 * scale * scale,
                p90: 2500 * scale * scale,
                p99: 4200 * scale * scale,
                p999: 5000 * scale * scale,
                max: 9000 * scale * scale,
                mean: 1750.5 * scale as f64,
            },
            bytes_in: 30_000_000 * scale,
            bytes_out: 2_000_000 * scale,
            bytes_per_event: 375.25 * scale as f64,
            bytes_down_per_event: 75.0 * scale as f64,
            bytes_up_per_event: 6.25 * scale as f64,
            bytes_down_per_s: 7500.0 * scale as f64,
            bytes_up_per_s: 750.0 * scale as f64,
            bytes_per_s: 8250.0 * scale as f64,
            server_cpu_s: 1.5 * scale as f64,
            server_cpu_us_per_event: 18.75 * scale as f64,
            server_rss_peak_bytes: 40 * 1024 * 1024 + i as u64 * 1_000_000,
            open_connections_peak: 200 + i as i64,
            loadtest_cpu_s: 3.25,
            errors,
            faults: None,
            draw: None,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        std::env::temp_dir().join(format!(
            "loadtest-export-{name}-{}-{nanos}",
            std::process::id()
        ))
    }

    /// Splits one CSV line into fields, honouring quotes (RFC 4180).
    fn parse_csv_line(line: &str) -> Vec<String> {
        let mut fields = vec![String::new()];
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    chars.next();
                    fields.last_mut().unwrap().push('"');
                }
                ('"', _) => quoted = !quoted,
                (',', false) => fields.push(String::new()),
                (c, _) => fields.last_mut().unwrap().push(c),
            }
        }
        assert!(!quoted, "unbalanced quotes in {line:?}");
        fields
    }

    #[test]
    fn writes_every_file_for_five_transports() {
        let s = summary(
            TRANSPORTS
                .iter()
                .enumerate()
                .map(|(i, t)| fake_result(i, t))
                .collect(),
        );
        let dir = temp_dir("five");
        write_all(&dir, &s).unwrap();
        // Rewriting over existing files works too (called after each transport).
        write_all(&dir, &s).unwrap();

        for file in FILES {
            assert!(dir.join(file).is_file(), "{file} missing");
            assert!(!dir.join(format!("{file}.tmp")).exists(), "{file}.tmp left");
        }

        let json = fs::read_to_string(dir.join("summary.json")).unwrap();
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);

        let csv = fs::read_to_string(dir.join("summary.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 6, "{csv}");
        for line in &lines {
            assert_eq!(
                parse_csv_line(line).len(),
                CSV_HEADER.len() + CSV_BYTES_HEADER.len(),
                "{line}"
            );
        }
        assert_eq!(parse_csv_line(lines[0])[11], "latency_p50_us");
        let longpoll = parse_csv_line(lines[2]);
        assert_eq!(longpoll[0], "longpoll");
        assert_eq!(longpoll[25], "connect=1;status 503, \"busy\"=3");
        assert_eq!(longpoll[24], "3.25");

        assert_eq!(parse_csv_line(lines[0])[26], "bytes_down_per_event");
        assert_eq!(longpoll[26], "300");
        assert_eq!(longpoll[30], "33000");

        let md = fs::read_to_string(dir.join("summary.md")).unwrap();
        let (md_main, md_bytes) = md.split_once("## Bytes on the wire").unwrap();
        let bytes_table: Vec<&str> = md_bytes.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(bytes_table.len(), 2 + 5, "{md}");
        assert!(
            bytes_table[3].starts_with("| longpoll | 300 | 25 | 1501 | 30000 | 3000 | 33000 |"),
            "{}",
            bytes_table[3]
        );
        let table: Vec<&str> = md_main.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(table.len(), 2 + 5, "{md}");
        assert!(table[1].starts_with("|---|---:|"));
        assert!(md.contains("```sh\nloadtest compare --clients 200"));
        assert!(md.contains("2 cores, 24.0 GiB memory, Linux 6.1 (x86_64), Test CPU"));
        // poll: p50 1500 µs × 25 = 37.5 ms, p99 105.0 ms, max 225.0 ms.
        assert!(
            table[2].contains("| 37.5 / 105.0 / 225.0 |"),
            "{}",
            table[2]
        );
        for row in &table[2..] {
            assert_eq!(row.matches(" | ").count(), TABLE_COLUMNS.len() - 1, "{row}");
        }

        for chart in BarChart::all() {
            let svg = fs::read_to_string(dir.join(chart.file)).unwrap();
            assert!(svg.starts_with("<svg"), "{}", chart.file);
            let title = chart.title(&s.workload);
            assert!(
                svg.contains(&title),
                "{} lacks its title {title:?}",
                chart.file
            );
            assert!(svg.contains("200 clients, 20 msg/s, 20 s"));
            assert!(svg.contains(">\ntransport\n<") || svg.contains(">transport<"));
            for t in TRANSPORTS {
                assert!(
                    svg.contains(&format!(">\n{t}\n<")),
                    "{} lacks {t}",
                    chart.file
                );
            }
        }
        let latency = fs::read_to_string(dir.join("latency.svg")).unwrap();
        assert!(latency.contains("Delivery latency (p50/p90/p99) — 200 clients, 20 msg/s, 20 s"));
        for legend in ["p50", "p90", "p99"] {
            assert!(
                latency.contains(&format!(">\n{legend}\n<")),
                "legend {legend}"
            );
        }

        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn zeros_and_non_finite_values_render() {
        let zero = TransportResult {
            transport: "ws".into(),
            ..TransportResult::default()
        };
        let weird = TransportResult {
            transport: "sse".into(),
            bytes_per_event: f64::NAN,
            server_cpu_us_per_event: f64::INFINITY,
            loadtest_cpu_s: f64::NEG_INFINITY,
            ..TransportResult::default()
        };
        for results in [vec![zero.clone()], vec![zero, weird], vec![]] {
            let s = summary(results);
            let dir = temp_dir("zeros");
            write_all(&dir, &s).unwrap();
            for file in FILES {
                assert!(dir.join(file).is_file(), "{file} missing");
            }
            let table = terminal_table(&s);
            assert_eq!(table.lines().count(), 2 + s.results.len());
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn terminal_table_is_aligned() {
        let s = summary(
            TRANSPORTS
                .iter()
                .enumerate()
                .map(|(i, t)| fake_result(i, t))
                .collect(),
        );
        let table = terminal_table(&s);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 7, "{table}");
        assert!(lines[0].starts_with("transport  clients"));
        assert!(lines[1].chars().all(|c| c == '-' || c == ' '));
        // Every right-aligned column ends at the same character position on every line: the
        // header and rule lines and all rows agree up to the errors column.
        let chars: Vec<Vec<char>> = lines.iter().map(|l| l.chars().collect()).collect();
        let errors_at = chars[0].len() - "errors".len();
        for line in &chars {
            let line: String = line.iter().collect();
            let before: String = line.chars().take(errors_at).collect();
            assert_eq!(before.chars().count(), errors_at, "{line}");
            assert!(before.ends_with("  ") && !before.ends_with("   "), "{line}");
        }
        assert!(lines[3].starts_with("longpoll "));
        assert!(lines[3].ends_with("connect=1, status 503, \"busy\"=3"));
    }

    #[test]
    fn numbers_and_quoting() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(20.0), "20");
        assert_eq!(num(2.5), "2.5");
        assert_eq!(num(0.05), "0.05");
        assert_eq!(num(0.0025), "0.0025");
        assert_eq!(num(375.25), "375");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(f64::NAN), "n/a");
        assert_eq!(num(f64::INFINITY), "n/a");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(md_cell("a|b"), "a\\|b");
        let w = Workload {
            feed: "clock".into(),
            ..workload()
        };
        assert_eq!(
            workload_short(&w),
            "clock feed, 200 clients, 20 msg/s, 20 s"
        );
    }
}
