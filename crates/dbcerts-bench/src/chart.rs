//! SVG line charts of benchmark results, drawn with `plotters`.
//!
//! The SVG backend writes text as `<text>` elements for the viewer to render, so no font files
//! are needed on this machine (plotters only estimates text widths for its layout).

use std::ops::Range;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// Chart size in pixels.
const SIZE: (u32, u32) = (960, 600);

/// One line on a chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Its legend entry.
    pub name: String,
    /// `(x, y)` points, drawn in this order.
    pub points: Vec<(f64, f64)>,
}

/// Writes an SVG line chart of `series` to `path`: a title, labelled axes, one coloured line
/// with point markers per series and a legend. The y axis starts at 0 (or lower, for negative
/// values); with `log_x` the x axis is logarithmic (all x must then be positive), e.g. for
/// 10k, 100k and 1M stored certificates.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_x: bool,
    series: &[Series],
) -> anyhow::Result<()> {
    let points = || series.iter().flat_map(|s| s.points.iter().copied());
    ensure!(
        points().next().is_some(),
        "a chart needs at least one point"
    );
    ensure!(
        points().all(|(x, y)| x.is_finite() && y.is_finite()),
        "chart points must be finite numbers"
    );
    let (x_min, x_max) = bounds(points().map(|(x, _)| x));
    let (y_min, y_max) = bounds(points().map(|(_, y)| y));
    let y_range = y_min.min(0.0)..pad_top(y_max);

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    let labels = Labels {
        title,
        x_label,
        y_label,
    };
    if log_x {
        if x_min <= 0.0 {
            bail!("a logarithmic x axis needs positive x values, not {x_min}");
        }
        // Half a decade of room either side keeps end markers off the frame.
        let x_range = (x_min / 1.5)..(x_max * 1.5);
        draw(&root, x_range.log_scale(), y_range, &labels, series)?;
    } else {
        draw(&root, widen(x_min, x_max), y_range, &labels, series)?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

struct Labels<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
}

fn draw<X>(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    x_range: X,
    y_range: Range<f64>,
    labels: &Labels<'_>,
    series: &[Series],
) -> anyhow::Result<()>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(labels.title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .x_desc(labels.x_label)
        .y_desc(labels.y_label)
        .x_label_formatter(&|x| compact(*x))
        .y_label_formatter(&|y| compact(*y))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(
                LineSeries::new(s.points.iter().copied(), color.filled().stroke_width(2))
                    .point_size(4),
            )?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The smallest and largest of `values` (not empty).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// A range that is never empty, with 3 % room either side.
fn widen(min: f64, max: f64) -> Range<f64> {
    if min == max {
        let d = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
        return (min - d)..(max + d);
    }
    let pad = (max - min) * 0.03;
    (min - pad)..(max + pad)
}

/// Room above the highest point for markers and the legend.
fn pad_top(max: f64) -> f64 {
    if max <= 0.0 { 1.0 } else { max * 1.15 }
}

/// A tick label: at most 3 significant decimals, with k/M/G for large values (10k, 1.5M).
fn compact(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let decimals = if scaled.abs() >= 100.0 {
        0
    } else if scaled.abs() >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{scaled:.decimals$}");
    if s.contains('.') {
        let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(trimmed);
    }
    if s == "-0" {
        s = "0".to_owned();
    }
    s + suffix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_labels() {
        assert_eq!(compact(10_000.0), "10k");
        assert_eq!(compact(100_000.0), "100k");
        assert_eq!(compact(1_000_000.0), "1M");
        assert_eq!(compact(1_500_000.0), "1.5M");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(12.345), "12.3");
        assert_eq!(compact(-0.001), "0");
    }

    fn sample() -> Vec<Series> {
        vec![
            Series {
                name: "dbcerts".into(),
                points: vec![(10_000.0, 950.0), (100_000.0, 900.0), (1_000_000.0, 870.0)],
            },
            Series {
                name: "cfssl".into(),
                points: vec![(10_000.0, 400.0), (100_000.0, 390.0), (1_000_000.0, 385.0)],
            },
        ]
    }

    #[test]
    fn writes_svg_with_labels_and_legend() {
        let dir = tempfile::tempdir().unwrap();
        for log_x in [false, true] {
            let path = dir.path().join(format!("chart-{log_x}.svg"));
            line_chart(
                &path,
                "Issuance throughput",
                "stored certificates",
                "requests/s",
                log_x,
                &sample(),
            )
            .unwrap();
            let svg = std::fs::read_to_string(&path).unwrap();
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
            // The SVG backend writes each text on a line of its own inside <text>.
            for text in [
                "Issuance throughput",
                "stored certificates",
                "requests/s",
                "dbcerts",
                "cfssl",
                "100k",
            ] {
                assert!(
                    svg.lines().any(|l| l.trim() == text),
                    "{text} missing (log_x={log_x})"
                );
            }
            assert!(svg.contains("<polyline"), "no lines drawn");
        }
    }

    #[test]
    fn refuses_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.svg");
        assert!(line_chart(&path, "t", "x", "y", false, &[]).is_err());
        let zero = [Series {
            name: "z".into(),
            points: vec![(0.0, 1.0), (1.0, 2.0)],
        }];
        assert!(line_chart(&path, "t", "x", "y", true, &zero).is_err());
        assert!(line_chart(&path, "t", "x", "y", false, &zero).is_ok());
    }
}
