//! Grouped bar charts: one group of bars per x label, one bar per series, each bar's value
//! written above it when it fits. The transport charts (`export`) and the side-by-side charts
//! (`sidebyside`) are drawn by it.

use anyhow::Result;
use plotters::coord::combinators::BindKeyPoints;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Area, num};

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

/// A grouped bar chart as plain data: one group of bars per x label, one bar per series.
/// The transport charts above and the side-by-side charts (`crate::sidebyside`) both draw through it.
pub struct Grouped<'a> {
    pub title: String,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    /// The x labels, one per group.
    pub groups: Vec<String>,
    /// Each series' legend name and colour.
    pub series: Vec<(&'a str, RGBColor)>,
    /// `values[group][series]`; a negative, NaN or infinite value is not a figure: it has no
    /// bar, and `n/a` where its value would be.
    pub values: Vec<Vec<f64>>,
    /// A logarithmic y axis: for latencies, where short polling's ~1 s would otherwise flatten
    /// the push transports' few ms to nothing.
    pub log_y: bool,
}

impl Grouped<'_> {
    /// The chart as an SVG document.
    pub fn render(&self) -> Result<String> {
        super::svg(CHART_SIZE, |root| self.draw(root))
    }

    fn draw(&self, root: &Area<'_>) -> Result<()> {
        let body = root.titled(&self.title, ("sans-serif", TITLE_FONT))?;

        let values: Vec<Vec<f64>> = self
            .values
            .iter()
            .map(|vs| {
                vs.iter()
                    .map(|&v| if v.is_finite() && v > 0.0 { v } else { 0.0 })
                    .collect()
            })
            .collect();
        let max = values.iter().flatten().copied().fold(0.0, f64::max);

        let plot_area = if self.series.len() > 1 {
            let (legend, rest) = body.split_vertically(30);
            draw_legend(&self.series, &legend)?;
            rest
        } else {
            body
        };

        if self.log_y {
            // From the decade at or below the smallest bar to above the tallest, with room for
            // its label; a chart of zeros still gets one decade.
            let min = values
                .iter()
                .flatten()
                .copied()
                .filter(|&v| v > 0.0)
                .fold(f64::INFINITY, f64::min);
            let bottom = if min.is_finite() {
                10f64.powf(min.log10().floor())
            } else {
                1.0
            };
            let top = (max * 2.0).max(bottom * 10.0);
            self.plot(&plot_area, &values, (bottom..top).log_scale(), bottom)
        } else {
            // Head room above the tallest bar for its value label.
            let y_top = (max * 1.15).max(1.0);
            self.plot(&plot_area, &values, 0.0..y_top, 0.0)
        }
    }

    /// The axes, bars and value labels on a y axis `y` whose bars start at `base`.
    fn plot<Y>(&self, plot_area: &Area<'_>, values: &[Vec<f64>], y: Y, base: f64) -> Result<()>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let names = &self.groups;
        // At least 3 slots wide, so one transport (a `run`, or the first of a `compare`) does
        // not get bars as wide as the chart.
        let slots = names.len().max(3);
        let pad = (slots - names.len()) as i32 * SLOT / 2;
        let x_range = (-SLOT / 2 - pad..names.len() as i32 * SLOT - SLOT / 2 + pad)
            .with_key_points((0..names.len()).map(|i| i as i32 * SLOT).collect());
        let mut chart = ChartBuilder::on(plot_area)
            .margin_top(10)
            .margin_left(10)
            .margin_right(20)
            .margin_bottom(5)
            .x_label_area_size(55)
            .y_label_area_size(80)
            .build_cartesian_2d(x_range, y)?;

        let x_label = |x: &i32| {
            usize::try_from(x / SLOT)
                .ok()
                .filter(|_| x % SLOT == 0)
                .and_then(|i| names.get(i))
                .map_or_else(String::new, Clone::clone)
        };
        let y_label = |y: &f64| num(*y);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(self.x_desc)
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
        for (j, (_, color)) in self.series.iter().enumerate() {
            let style = color.filled();
            chart.draw_series(values.iter().enumerate().map(|(i, vs)| {
                let x0 = bar_x0(i, j);
                // On a log axis a zero has no bar: it stays at the base.
                let top = vs[j].max(base);
                Rectangle::new([(x0 + inset, base), (x0 + bar_width - inset, top)], style)
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
        for (i, (vs, given)) in values.iter().zip(&self.values).enumerate() {
            for (j, &v) in vs.iter().enumerate() {
                let figure = given.get(j).is_some_and(|g| g.is_finite() && *g >= 0.0);
                let text = if figure { num(v) } else { "n/a".to_owned() };
                if text.chars().count() as f64 * char_px <= bar_px + 2.0 {
                    let centre = bar_x0(i, j) + bar_width / 2;
                    labels.push((centre, v.max(base), text));
                }
            }
        }
        chart.draw_series(labels.into_iter().map(|(x, y, text)| {
            EmptyElement::at((x, y)) + Text::new(text, (0, -3), value_style.clone())
        }))?;
        Ok(())
    }
}

/// A row of coloured squares and series names, centred under the title.
fn draw_legend<DB: DrawingBackend>(
    series: &[(&str, RGBColor)],
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
    for &(name, color) in series {
        let (text_w, _) = area
            .estimate_text_size(name, &style)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        entries.push((name, color, text_w as i32));
    }
    let total: i32 = entries
        .iter()
        .map(|(_, _, w)| swatch + gap + w)
        .sum::<i32>()
        + spacing * (entries.len() as i32 - 1).max(0);
    let mut x = (width as i32 - total).max(0) / 2;
    let y = height as i32 / 2;
    for (name, color, text_w) in entries {
        area.draw(&Rectangle::new(
            [(x, y - swatch / 2), (x + swatch, y + swatch / 2)],
            color.filled(),
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        area.draw_text(name, &style, (x + swatch + gap, y))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        x += swatch + gap + text_w + spacing;
    }
    Ok(())
}
