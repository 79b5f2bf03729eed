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
use plotters::style::text_anchor::{HPos, Pos, VPos};
use pushpoll::names::Transport;

pub use bars::Grouped;

/// What a chart draws on: the whole SVG document, or a panel of it.
pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Text sizes as given to plotters, whose SVG backend writes each divided by 1.24. The
/// smallest, [`TEXT`] (labels, values, legends), is 23.4 px in the 900 px-wide charts, so it
/// is at least 14 px wherever a chart is shown at least 540 px wide. The pages show them no
/// narrower than 34rem (544 px): two to a row at 1280 px, and on a phone each scrolls sideways
/// inside its figure (`.chart` in `static/compare.css`, `.results .glance` in
/// `static/style.css`); 14 px is the least a projector's back row reads.
pub const TEXT: (&str, u32) = ("sans-serif", 29);
/// Axis descriptions and panel captions.
pub const AXIS_TEXT: (&str, u32) = ("sans-serif", 30);
pub const TITLE_TEXT: (&str, u32) = ("sans-serif", 31);

/// The height of a line of text at `size` (as given to plotters), in pixels.
pub fn line_px(size: u32) -> f64 {
    f64::from(size) / 1.24 * 1.2
}

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

/// Draws `title` across the top of `area`, centred, in as many lines as it needs to fit the
/// width (broken after a dash first, then between words), and gives the area below it.
pub fn titled<'a>(area: &Area<'a>, title: &str) -> Result<Area<'a>> {
    let (width, _) = area.dim_in_pixel();
    let lines = wrap(title, f64::from(width) - 20.0, TITLE_TEXT.1);
    let style = TextStyle::from(TITLE_TEXT.into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    let line = line_px(TITLE_TEXT.1);
    let top = 6.0;
    for (k, text) in lines.iter().enumerate() {
        let y = top + k as f64 * line;
        area.draw_text(text, &style, (width as i32 / 2, y as i32))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let used = top + lines.len() as f64 * line + 4.0;
    Ok(area.split_vertically(used.ceil() as u32).1)
}

/// `text` in lines of at most `max_px` at `size` where its words allow: a dash (` — `) ends
/// a line where the whole does not fit, and a part still too wide is cut into as few lines
/// as it needs, of even widths (no word left alone on a line).
fn wrap(text: &str, max_px: f64, size: u32) -> Vec<String> {
    if text_px(text, size) <= max_px {
        return vec![text.to_owned()];
    }
    let mut lines = Vec::new();
    for part in text.split(" — ") {
        let width = text_px(part, size);
        let count = (width / max_px).ceil().max(1.0);
        let target = (width / count * 1.1).min(max_px);
        let mut line = String::new();
        for word in part.split(' ') {
            let longer = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if !line.is_empty() && text_px(&longer, size) > target {
                lines.push(std::mem::replace(&mut line, word.to_owned()));
            } else {
                line = longer;
            }
        }
        lines.push(line);
    }
    lines
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_too_wide_breaks_after_its_dash_then_between_words() {
        let title =
            "Bytes per delivered event, down and up (headers included) — clock feed, 64 clients";
        assert_eq!(wrap(title, 2000.0, TITLE_TEXT.1), [title]);
        assert_eq!(
            wrap(title, 880.0, TITLE_TEXT.1),
            [
                "Bytes per delivered event, down and up (headers included)",
                "clock feed, 64 clients"
            ]
        );
        let lines = wrap(title, 300.0, TITLE_TEXT.1);
        assert!(lines.len() > 2, "{lines:?}");
        // Even lines, not a full one and a word.
        assert_eq!(
            wrap(
                "Time to recover from a break, churn 0.05/s (200 chat clients, 20 msg/s)",
                880.0,
                TITLE_TEXT.1
            ),
            [
                "Time to recover from a break, churn",
                "0.05/s (200 chat clients, 20 msg/s)"
            ]
        );
        assert!(
            lines.iter().all(|l| text_px(l, TITLE_TEXT.1) <= 300.0),
            "{lines:?}"
        );
        assert_eq!(lines.join(" "), title.replace(" — ", " "));
    }
}
