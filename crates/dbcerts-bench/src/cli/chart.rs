//! `dbcerts-bench chart`: an SVG line chart from numbers given on the command line.

use std::path::PathBuf;

use clap::Args;

use crate::chart::{Series, line_chart};

/// Arguments of `chart`.
#[derive(Debug, Args)]
pub struct ChartArgs {
    /// The SVG file to write.
    #[arg(long, value_name = "FILE.svg")]
    pub out: PathBuf,
    /// Chart title.
    #[arg(long)]
    pub title: String,
    /// X axis label.
    #[arg(long)]
    pub x_label: String,
    /// Y axis label.
    #[arg(long)]
    pub y_label: String,
    /// Logarithmic x axis.
    #[arg(long)]
    pub log_x: bool,
    /// A line: `NAME=x:y,x:y,...` (repeatable).
    #[arg(long = "series", value_name = "NAME=x:y,...", required = true, value_parser = parse_series)]
    pub series: Vec<Series>,
}

/// `NAME=x:y,x:y,...`.
pub fn parse_series(s: &str) -> Result<Series, String> {
    let (name, points) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("expected NAME=x:y,..., got {s:?}"))?;
    let points = points
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (x, y) = p
                .split_once(':')
                .ok_or_else(|| format!("expected x:y, got {p:?}"))?;
            let num = |v: &str| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("not a number: {v:?}"))
            };
            Ok((num(x)?, num(y)?))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if points.is_empty() {
        return Err(format!("series {name:?} has no points"));
    }
    Ok(Series {
        name: name.to_owned(),
        points,
    })
}

/// Runs `chart`.
pub fn main(args: ChartArgs) -> anyhow::Result<()> {
    line_chart(
        &args.out,
        &args.title,
        &args.x_label,
        &args.y_label,
        args.log_x,
        &args.series,
    )?;
    println!("wrote {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_series() {
        let s = parse_series("dbcerts c=8=1:100,2:190.5, 4:350").unwrap();
        assert_eq!(s.name, "dbcerts c=8");
        assert_eq!(s.points, vec![(1.0, 100.0), (2.0, 190.5), (4.0, 350.0)]);
        assert!(parse_series("x=").is_err());
        assert!(parse_series("x=1").is_err());
        assert!(parse_series("x=1:a").is_err());
        assert!(parse_series("1:2").is_err());
    }
}
