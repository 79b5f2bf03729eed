//! Grouped bar charts: one group of bars per x label, one bar per series, each bar's value
//! written above it when it fits. The transport charts (`export`) and the side-by-side charts
//! (`sidebyside`) are drawn by it.

use anyhow::Result;
use plotters::coord::combinators::BindKeyPoints;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{AXIS_TEXT, Area, TEXT, line_px, num, text_px};

const CHART_SIZE: (u32, u32) = (900, 500);
/// The x axis's labels and its description, below the axis: room for a label in two lines.
const X_LABEL_AREA: u32 = 100;
/// The y axis's labels (up to six digits) and its description, left of it.
const Y_LABEL_AREA: u32 = 115;
/// The legend's row, under the title.
const LEGEND_ROW: u32 = 40;
/// Left and right of the plot, besides the y labels.
const MARGINS: u32 = 30;
const MARGIN_TOP: u32 = 10;
const MARGIN_BOTTOM: u32 = 5;
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
        let body = super::titled(root, &self.title)?;

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
            let (legend, rest) = body.split_vertically(LEGEND_ROW);
            draw_legend(&self.series, &legend)?;
            rest
        } else {
            body
        };
        let layout = Layout::of(self, &plot_area);
        let labels = self.value_labels(&values, &layout);
        // The share of the plot's height each label needs above its bar.
        let share = |l: &Label| l.height_px / layout.plot_h;

        if self.log_y {
            // From the decade at or below the smallest bar to above the tallest, with room for
            // every label above its bar; a chart of zeros still gets one decade.
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
            let room = labels
                .iter()
                .filter(|l| l.value > bottom)
                .map(|l| {
                    let f = share(l).min(0.9);
                    10f64.powf((l.value.log10() - f * bottom.log10()) / (1.0 - f))
                })
                .fold(0.0, f64::max);
            let top = (max * 2.0).max(bottom * 10.0).max(room);
            self.plot(
                &plot_area,
                &layout,
                &values,
                &labels,
                (bottom..top).log_scale(),
                bottom,
            )
        } else {
            let room = labels
                .iter()
                .map(|l| l.value / (1.0 - share(l).min(0.9)))
                .fold(0.0, f64::max);
            let y_top = (max * 1.15).max(1.0).max(room);
            self.plot(&plot_area, &layout, &values, &labels, 0.0..y_top, 0.0)
        }
    }

    /// Each bar's value, or n/a where it has none: across the bar where it fits, else up it.
    fn value_labels(&self, values: &[Vec<f64>], layout: &Layout) -> Vec<Label> {
        let mut labels = Vec::new();
        for (i, (vs, given)) in values.iter().zip(&self.values).enumerate() {
            for (j, &v) in vs.iter().enumerate() {
                let figure = given.get(j).is_some_and(|g| g.is_finite() && *g >= 0.0);
                let text = if figure { num(v) } else { "n/a".to_owned() };
                let width = text_px(&text, TEXT.1);
                // A few pixels short of the bar's width, so neighbours' labels do not touch.
                let across = width <= layout.bar_px - 2.0;
                labels.push(Label {
                    group: i,
                    series: j,
                    value: v,
                    height_px: if across { line_px(TEXT.1) } else { width } + 6.0,
                    text,
                    across,
                });
            }
        }
        labels
    }

    /// The axes, bars and labels on a y axis `y` whose bars start at `base`.
    fn plot<Y>(
        &self,
        plot_area: &Area<'_>,
        layout: &Layout,
        values: &[Vec<f64>],
        labels: &[Label],
        y: Y,
        base: f64,
    ) -> Result<()>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let names = &self.groups;
        let pad = (layout.slots - names.len()) as i32 * SLOT / 2;
        let x_range = (-SLOT / 2 - pad..names.len() as i32 * SLOT - SLOT / 2 + pad)
            .with_key_points((0..names.len()).map(|i| i as i32 * SLOT).collect());
        let mut chart = ChartBuilder::on(plot_area)
            .margin_top(MARGIN_TOP)
            .margin_left(MARGINS / 3)
            .margin_right(MARGINS - MARGINS / 3)
            .margin_bottom(MARGIN_BOTTOM)
            .x_label_area_size(X_LABEL_AREA)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(x_range, y)?;

        // The group names are drawn below (in two lines where one does not fit its slot);
        // the mesh draws only their ticks.
        let y_label = |y: &f64| num(*y);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&y_label)
            .y_labels(8)
            .y_max_light_lines(1)
            .label_style(TEXT)
            .axis_desc_style(AXIS_TEXT)
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(210, 210, 210))
            .draw()?;

        let name_style = TextStyle::from(TEXT.into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        let mut group_names = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let lines = match name.rsplit_once(' ') {
                Some((head, tail)) if text_px(name, TEXT.1) > layout.slot_px - 8.0 => {
                    vec![head, tail]
                }
                _ => vec![name.as_str()],
            };
            for (k, line) in lines.into_iter().enumerate() {
                let dy = 8 + k as i32 * line_px(TEXT.1) as i32;
                group_names.push((i as i32 * SLOT, line.to_owned(), dy));
            }
        }
        chart.draw_series(group_names.into_iter().map(|(x, text, dy)| {
            EmptyElement::at((x, base)) + Text::new(text, (0, dy), name_style.clone())
        }))?;

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

        let value_color = RGBColor(40, 40, 40);
        let across = TextStyle::from(TEXT.into_font())
            .color(&value_color)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        let up = TextStyle::from(TEXT.into_font().transform(FontTransform::Rotate270))
            .color(&value_color)
            .pos(Pos::new(HPos::Left, VPos::Center));
        chart.draw_series(labels.iter().map(|l| {
            let x = bar_x0(l.group, l.series) + bar_width / 2;
            let style = if l.across { &across } else { &up };
            EmptyElement::at((x, l.value.max(base)))
                + Text::new(l.text.clone(), (0, -3), style.clone())
        }))?;
        Ok(())
    }
}

/// Where things fall on a chart of a given size, known before it is drawn.
struct Layout {
    /// Slots across the x axis: one per group, at least 3, so one transport (a `run`) does not
    /// get bars as wide as the chart.
    slots: usize,
    slot_px: f64,
    bar_px: f64,
    /// The plot's height, between the margins and the x labels.
    plot_h: f64,
}

impl Layout {
    fn of(chart: &Grouped<'_>, plot_area: &Area<'_>) -> Layout {
        let (w, h) = plot_area.dim_in_pixel();
        let slots = chart.groups.len().max(3);
        let slot_px = (f64::from(w) - f64::from(Y_LABEL_AREA + MARGINS)) / slots as f64;
        let bar_width = GROUP_WIDTH / chart.series.len().max(1) as i32;
        Layout {
            slots,
            slot_px,
            bar_px: slot_px * f64::from(bar_width) / f64::from(SLOT),
            plot_h: (f64::from(h) - f64::from(X_LABEL_AREA + MARGIN_TOP + MARGIN_BOTTOM)).max(1.0),
        }
    }
}

/// A bar's value label.
struct Label {
    group: usize,
    series: usize,
    /// The bar's height, where the label starts.
    value: f64,
    text: String,
    /// Across the bar's top where it fits, else up from it.
    across: bool,
    /// The room it takes above the bar, in pixels.
    height_px: f64,
}

/// A row of coloured squares and series names, centred under the title.
fn draw_legend<DB: DrawingBackend>(
    series: &[(&str, RGBColor)],
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let style = TextStyle::from(TEXT.into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let (width, height) = area.dim_in_pixel();
    let swatch = 18i32;
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
