//! The report's figures, drawn as SVG with plotters.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;

use super::ReportError;
use crate::metrics::{ECE_BINS, GradedResponse, reliability_bins};
use crate::run::AccuracyTable;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 420;

/// One SVG figure of a report.
#[derive(Debug, Clone)]
pub struct Figure {
    /// File stem under `figures/` and the HTML element id.
    pub id: String,
    pub caption: String,
    pub svg: String,
}

/// A named set of responses drawn as one series.
pub struct Series<'a> {
    pub name: &'a str,
    pub responses: &'a [GradedResponse],
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn color(index: usize) -> RGBColor {
    const COLORS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    COLORS[index % COLORS.len()]
}

/// Draws into a fresh SVG document of the figure size.
fn render_svg(
    id: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> DrawResult,
) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let boxed = |error: DrawingAreaErrorKind<std::io::Error>| -> Box<dyn std::error::Error> { Box::new(error) };
        let drawn = root
            .fill(&WHITE)
            .map_err(boxed)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(boxed));
        drawn.map_err(|error| ReportError::Figure {
            figure: id.to_string(),
            message: error.to_string(),
        })?;
    }
    Ok(svg)
}

/// Reliability diagram: accuracy against mean confidence (exp(-mean NLL))
/// in 10 equal-width bins, one line per series, empty bins left out.
pub fn reliability_diagram(id: &str, title: &str, series: &[Series]) -> Result<Figure, ReportError> {
    let svg = render_svg(id, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0f64..1.0, 0.0f64..1.0)?;
        chart
            .configure_mesh()
            .x_desc("confidence exp(-mean NLL)")
            .y_desc("accuracy")
            .draw()?;

        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.4)))?
            .label("perfect calibration")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.4)));
        for (index, one) in series.iter().enumerate() {
            let points: Vec<(f64, f64)> = reliability_bins(one.responses)
                .iter()
                .filter(|bin| bin.count > 0)
                .map(|bin| (bin.mean_confidence, bin.accuracy))
                .collect();
            let style = color(index).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))?
                .label(format!("{} ({} responses)", one.name, one.responses.len()))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], style));
            chart.draw_series(points.iter().map(|&point| Circle::new(point, 4, color(index).filled())))?;
        }
        draw_legend(&mut chart)
    })?;
    Ok(Figure {
        id: id.to_string(),
        caption: format!(
            "{title}: accuracy against mean confidence in {ECE_BINS} equal-width bins; the diagonal is perfect calibration."
        ),
        svg,
    })
}

/// WoW accuracy (percent) against margin, one line per method; margins run
/// from the widest (all pairs) to the narrowest.
pub fn accuracy_by_margin(id: &str, title: &str, table: &AccuracyTable) -> Result<Figure, ReportError> {
    let mut margins: Vec<u32> = table
        .methods
        .iter()
        .flat_map(|m| m.margins.iter().map(|r| r.margin))
        .collect();
    margins.sort_unstable_by(|a, b| b.cmp(a));
    margins.dedup();
    let position = |margin: u32| margins.iter().position(|&m| m == margin).unwrap_or_default() as f64;
    let label = |x: &f64| {
        let index = x.round();
        if (x - index).abs() > 1e-6 || index < 0.0 {
            return String::new();
        }
        margins
            .get(index as usize)
            .map_or_else(String::new, |m| format!("M{m}"))
    };

    let svg = render_svg(id, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.3f64..(margins.len() as f64 - 0.7).max(0.3), 0.0f64..100.0)?;
        chart
            .configure_mesh()
            .x_labels(margins.len().max(1) * 4 + 1)
            .x_label_formatter(&label)
            .x_desc("margin (share of pairs kept, by score gap)")
            .y_desc("WoW accuracy (%)")
            .draw()?;
        chart
            .draw_series(LineSeries::new(
                [(-0.3, 50.0), (margins.len() as f64, 50.0)],
                BLACK.mix(0.3),
            ))?
            .label("chance (50%)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.3)));

        for (index, method) in table.methods.iter().enumerate() {
            let points: Vec<(f64, f64)> = method
                .margins
                .iter()
                .filter_map(|r| Some((position(r.margin), r.accuracy? * 100.0)))
                .collect();
            let style = color(index).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))?
                .label(method.method.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], style));
            chart.draw_series(points.iter().map(|&point| Circle::new(point, 4, color(index).filled())))?;
        }
        draw_legend(&mut chart)
    })?;
    Ok(Figure {
        id: id.to_string(),
        caption: format!("{title}: WoW accuracy per elicitation method at each margin; ties count as wrong."),
        svg,
    })
}

/// Histogram of the proxy correctness of wrong answers (an unparsed answer
/// counts as 0), as a share of each series' wrong answers, bars side by side.
pub fn wrong_correctness_histogram(id: &str, title: &str, series: &[Series]) -> Result<Figure, ReportError> {
    const BINS: usize = 10;
    let shares: Vec<[f64; BINS]> = series
        .iter()
        .map(|one| wrong_correctness_shares(one.responses))
        .collect();
    let top = shares.iter().flatten().copied().fold(0.0f64, f64::max).max(0.1) * 1.1;

    let svg = render_svg(id, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0f64..1.0, 0.0f64..top)?;
        chart
            .configure_mesh()
            .x_desc("proxy correctness of wrong answers")
            .y_desc("share of wrong answers")
            .draw()?;

        let bar_width = 1.0 / BINS as f64 / series.len().max(1) as f64;
        for (index, (one, shares)) in series.iter().zip(&shares).enumerate() {
            let fill = color(index).mix(0.8).filled();
            let bars = shares.iter().enumerate().map(|(bin, &share)| {
                let left = bin as f64 / BINS as f64 + index as f64 * bar_width;
                Rectangle::new([(left, 0.0), (left + bar_width, share)], fill)
            });
            let wrong = one.responses.iter().filter(|r| !r.correct).count();
            chart
                .draw_series(bars)?
                .label(format!("{} ({wrong} wrong answers)", one.name))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill));
        }
        draw_legend(&mut chart)
    })?;
    Ok(Figure {
        id: id.to_string(),
        caption: format!("{title}: distribution of the proxy correctness of wrong answers in 10 equal-width bins."),
        svg,
    })
}

/// Returns the share of wrong answers in each correctness bin [i/10, (i+1)/10),
/// the last bin containing 1.0.
fn wrong_correctness_shares<const BINS: usize>(responses: &[GradedResponse]) -> [f64; BINS] {
    let mut counts = [0usize; BINS];
    for response in responses.iter().filter(|r| !r.correct) {
        let correctness = response.correctness.unwrap_or(0.0).clamp(0.0, 1.0);
        counts[((correctness * BINS as f64) as usize).min(BINS - 1)] += 1;
    }
    let total = counts.iter().sum::<usize>().max(1) as f64;
    counts.map(|count| count as f64 / total)
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn draw_legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> DrawResult {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}
