//! Latency histograms and the percentiles taken from them.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Significant figures kept by latency histograms: values within 0.1 % are merged.
pub const SIGNIFICANT_FIGURES: u8 = 3;

/// An empty latency histogram in microseconds, resized as needed (so no latency is too large).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(SIGNIFICANT_FIGURES).expect("3 significant figures is a valid precision")
}

/// Records `latency` into a histogram made by [`new_histogram`].
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    // `record` grows an auto-resizing histogram; clamping is for absurd values only
    // (`saturating_record` alone would clamp to the current, unresized range).
    if histogram.record(micros).is_err() {
        histogram.saturating_record(micros);
    }
}

/// Latency summary in milliseconds (0 everywhere for an empty histogram).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl LatencyMs {
    /// Percentiles of a microsecond histogram. Each is the highest value equivalent to the
    /// recorded ones at the histogram's precision, so `p50 <= p90 <= p99 <= max` always holds.
    pub fn from_histogram(histogram: &Histogram<u64>) -> LatencyMs {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if histogram.is_empty() {
            return LatencyMs {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        LatencyMs {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= want * 0.001 + 1e-9
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        // 1 ms .. 1000 ms, one sample each, recorded in two halves and merged like workers.
        let mut a = new_histogram();
        let mut b = new_histogram();
        for ms in 1..=1000u64 {
            let h = if ms % 2 == 0 { &mut a } else { &mut b };
            record(h, Duration::from_millis(ms));
        }
        a.add(&b).unwrap();
        assert_eq!(a.len(), 1000);
        let l = LatencyMs::from_histogram(&a);
        assert!(close(l.p50, 500.0), "{l:?}");
        assert!(close(l.p90, 900.0), "{l:?}");
        assert!(close(l.p99, 990.0), "{l:?}");
        assert!(close(l.max, 1000.0), "{l:?}");
        assert!(close(l.mean, 500.5), "{l:?}");
        assert!(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max);
    }

    #[test]
    fn microsecond_resolution_and_outliers() {
        let mut h = new_histogram();
        for _ in 0..99 {
            record(&mut h, Duration::from_micros(250));
        }
        record(&mut h, Duration::from_secs(120));
        let l = LatencyMs::from_histogram(&h);
        assert_eq!(l.p50, 0.25);
        assert_eq!(l.p99, 0.25);
        assert!(close(l.max, 120_000.0), "{l:?}");
    }

    #[test]
    fn empty_histogram_is_all_zero() {
        let l = LatencyMs::from_histogram(&new_histogram());
        assert_eq!(l.max, 0.0);
        assert_eq!(l.mean, 0.0);
    }
}
