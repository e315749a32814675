//! `hetune train --plot FILE.png`: training and validation loss and accuracy per epoch, drawn in
//! process (plotters' bitmap backend). Text is rendered by ab_glyph from DejaVu Sans embedded in
//! the binary (the `dejavu` crate), so the figure renders the same on a machine without
//! fontconfig or any system font.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::report::{EpochEntry, TrainReport};
use crate::error::{Error, Result};

/// Figure size in pixels.
pub const SIZE: (u32, u32) = (1400, 560);

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is a valid TrueType file; a failure would only drop the text.
        let _ = register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// One curve: name, colour, dashed (a twin) or solid (the encrypted run), points.
struct Curve {
    name: &'static str,
    color: RGBColor,
    twin: bool,
    points: Vec<(f64, f64)>,
}

fn curve(
    epochs: &[EpochEntry],
    name: &'static str,
    color: RGBColor,
    twin: bool,
    f: impl Fn(&EpochEntry) -> Option<f64>,
) -> Curve {
    let points = epochs.iter().filter_map(|e| f(e).filter(|v| v.is_finite()).map(|v| (e.epoch as f64, v))).collect();
    Curve { name, color, twin, points }
}

fn loss_curves(e: &[EpochEntry]) -> Vec<Curve> {
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    let green = RGBColor(44, 160, 44);
    vec![
        curve(e, "encrypted: train cross-entropy", blue, false, |x| {
            x.encrypted.as_ref().map(|c| c.train.cross_entropy)
        }),
        curve(e, "encrypted: valid cross-entropy", orange, false, |x| {
            x.encrypted.as_ref().map(|c| c.valid.cross_entropy)
        }),
        curve(e, "encrypted: valid MSE (decrypted by the owner)", green, false, |x| {
            x.encrypted.as_ref().map(|c| c.encrypted_valid_mse)
        }),
        curve(e, "twin: train cross-entropy", blue, true, |x| x.approx_twin.map(|l| l.train.cross_entropy)),
        curve(e, "twin: valid cross-entropy", orange, true, |x| {
            x.approx_twin.and_then(|l| l.valid).map(|v| v.cross_entropy)
        }),
        curve(e, "twin: valid MSE", green, true, |x| x.approx_twin.and_then(|l| l.valid).map(|v| v.mse)),
    ]
}

fn accuracy_curves(e: &[EpochEntry]) -> Vec<Curve> {
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    let red = RGBColor(214, 39, 40);
    vec![
        curve(e, "encrypted: train", blue, false, |x| x.encrypted.as_ref().map(|c| 100.0 * c.train.accuracy)),
        curve(e, "encrypted: valid", orange, false, |x| x.encrypted.as_ref().map(|c| 100.0 * c.valid.accuracy)),
        curve(e, "encrypted: test", red, false, |x| x.encrypted.as_ref().map(|c| 100.0 * c.test.accuracy)),
        curve(e, "twin: train", blue, true, |x| x.approx_twin.map(|l| 100.0 * l.train.accuracy)),
        curve(e, "twin: valid", orange, true, |x| x.approx_twin.and_then(|l| l.valid).map(|v| 100.0 * v.accuracy)),
        curve(e, "twin: test", red, true, |x| x.approx_twin.and_then(|l| l.test).map(|v| 100.0 * v.accuracy)),
    ]
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot { path: path.to_path_buf(), message: e.to_string() }
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    curves: &[Curve],
    epochs: usize,
    y_range: std::ops::Range<f64>,
    legend: SeriesLabelPosition,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.5f64..epochs as f64 + 0.5, y_range)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .x_labels(epochs.min(15))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    for c in curves.iter().filter(|c| !c.points.is_empty()) {
        let style = if c.twin { c.color.mix(0.45).stroke_width(2) } else { c.color.stroke_width(3) };
        let color = c.color;
        let twin = c.twin;
        chart.draw_series(LineSeries::new(c.points.iter().copied(), style))?.label(c.name).legend(move |(x, y)| {
            let s = if twin { color.mix(0.45).stroke_width(2) } else { color.stroke_width(3) };
            PathElement::new(vec![(x, y), (x + 22, y)], s)
        });
        let filled = if c.twin { c.color.mix(0.45).filled() } else { c.color.filled() };
        chart.draw_series(c.points.iter().map(|&p| Circle::new(p, if c.twin { 3 } else { 4 }, filled)))?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(legend)
        .draw()?;
    Ok(())
}

fn range(curves: &[Curve], floor: f64, pad: f64) -> std::ops::Range<f64> {
    let (lo, hi) = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !lo.is_finite() {
        return floor..floor + 1.0;
    }
    let span = (hi - lo).max(1e-3);
    (lo - pad * span).max(floor)..hi + pad * span
}

/// Draws the report's per-epoch loss (left) and accuracy (right) on `root`: the encrypted run
/// solid, the twin with the approximation faded. `path` names the figure in errors.
fn draw_on<DB: DrawingBackend>(
    report: &TrainReport,
    root: &DrawingArea<DB, plotters::coord::Shift>,
    path: &Path,
) -> Result<()> {
    fonts();
    let epochs = report.epochs.len().max(1);
    let loss = loss_curves(&report.epochs);
    let acc = accuracy_curves(&report.epochs);
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    let name = Path::new(&report.data).file_name().map_or(report.data.clone(), |n| n.to_string_lossy().into_owned());
    let title = format!("{name} ({}): loss per epoch", report.preset);
    let legend = SeriesLabelPosition::UpperRight;
    // Headroom above the curves for the legend box.
    let loss_range = range(&loss, 0.0, 0.1);
    let loss_range = loss_range.start..loss_range.end + 0.45 * (loss_range.end - loss_range.start);
    panel(&left, &title, "loss", &loss, epochs, loss_range, legend).map_err(|e| plot_error(path, e))?;
    let acc_range = range(&acc, 0.0, 0.15);
    let acc_range = (acc_range.start - 0.45 * (acc_range.end - acc_range.start)).max(0.0)..acc_range.end.min(101.0);
    let legend = SeriesLabelPosition::LowerRight;
    panel(&right, "accuracy per epoch (%)", "accuracy (%)", &acc, epochs, acc_range, legend)
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// Draws the figure into the PNG `path` ([`SIZE`] pixels).
pub fn draw(report: &TrainReport, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    draw_on(report, &root, path)
}

/// The figure as RGB bytes (`SIZE.0 * SIZE.1 * 3`, row-major), drawn in memory.
pub fn render_rgb(report: &TrainReport) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        draw_on(report, &root, Path::new("(in memory)"))?;
    }
    Ok(buf)
}
