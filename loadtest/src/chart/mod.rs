//! Every chart the load tester draws goes through here: one SVG frame ([`svg`]), the
//! transports' colours ([`transport`], the pages' palette) and a few for other series, one
//! number format for labels, and the grouped bar chart ([`Grouped`]) of the transport and
//! side-by-side reports. The faults' and the soak's charts (lines over time) draw their panels
//! with plotters inside the same frame.
//!
//! Drawn with plotters' SVG backend only: text is emitted as SVG `<text>`, so no font has to
//! be found or loaded.

mod bars;

use anyhow::{Context as _, Result};
use plotters::chart::SeriesLabelStyle;
use plotters::coord::Shift;
use plotters::prelude::*;
use pushpoll::names::Transport;

pub use bars::Grouped;

/// What a chart draws on: the whole SVG document, or a panel of it.
pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Text sizes as given to plotters, whose SVG backend writes each divided by 1.24: the
/// smallest, [`TEXT`] (labels, values, legends), is 14.5 px in a chart shown at its own size,
/// the least a projector's back row reads.
pub const TEXT: (&str, u32) = ("sans-serif", 18);
/// Axis descriptions and panel captions.
pub const AXIS_TEXT: (&str, u32) = ("sans-serif", 20);
pub const TITLE_TEXT: (&str, u32) = ("sans-serif", 24);

/// The width of `text` at `size` (as given to plotters), estimated for placing labels: 0.6 em
/// per letter or digit (sans-serif digits are 0.55–0.64 em wide), 0.3 em per other sign.
pub fn text_px(text: &str, size: u32) -> f64 {
    let em = f64::from(size) / 1.24;
    text.chars()
        .map(|c| if c.is_alphanumeric() { 0.6 } else { 0.3 })
        .sum::<f64>()
        * em
}

/// The series colours of charts whose series are not transports (percentiles, servers, runs
/// with and without jitter): apart from each other for colour-blind readers too.
pub const BLUE: RGBColor = RGBColor(66, 114, 196);
pub const AMBER: RGBColor = RGBColor(237, 162, 47);
pub const RED: RGBColor = RGBColor(196, 61, 61);
/// A total beside transports' lines: apart from every transport's colour, black included.
pub const GREY: RGBColor = RGBColor(150, 150, 150);

/// A transport's colour: the one palette the pages draw with too ([`Transport::color`]).
pub fn transport(t: Transport) -> RGBColor {
    let [r, g, b] = t.rgb();
    RGBColor(r, g, b)
}

/// An SVG document of `size` pixels on a white ground, drawn by `draw`.
pub fn svg(size: (u32, u32), draw: impl FnOnce(&Area<'_>) -> Result<()>) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).context("drawing the chart")?;
        draw(&root).context("drawing the chart")?;
        root.present().context("drawing the chart")?;
    }
    Ok(out)
}

/// A legend entry for a line: a short stroke of its colour.
pub fn line_legend(color: RGBColor, width: u32) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(width))
}

/// The legend box every line chart uses: white, a little transparent, with a black border.
pub fn legend_box<'a, 'b: 'a, 'c, X: Ranged, Y: Ranged>(
    chart: &'c mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
) -> SeriesLabelStyle<'a, 'c, SVGBackend<'b>, Cartesian2d<X, Y>> {
    let mut style = chart.configure_series_labels();
    style
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(TEXT);
    style
}

/// Number formatting for people: up to 3 significant digits, no decimals from 100 up, trailing
/// zeros trimmed; `n/a` for NaN and infinities. The charts' labels and the tables' cells.
pub fn num(v: f64) -> String {
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
