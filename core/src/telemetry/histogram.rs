//! A fixed-bucket histogram of durations, updated without locks.
//!
//! Buckets follow the Prometheus convention (cumulative counts per upper bound in seconds, plus
//! the sum and the count), so an exporter can hand them over as they are.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the publish-latency buckets: from a local directory (milliseconds)
/// to a throttled OneLake (tens of seconds).
pub const PUBLISH_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Observations of a duration.
///
/// ```
/// use std::time::Duration;
/// use mirror_core::telemetry::Histogram;
/// let h = Histogram::new(&[0.1, 1.0]);
/// h.observe(Duration::from_millis(50));
/// h.observe(Duration::from_secs(3));
/// let s = h.snapshot();
/// assert_eq!(s.count, 2);
/// assert_eq!(s.buckets, vec![(0.1, 1), (1.0, 1)]); // cumulative; +Inf is `count`
/// assert!((s.sum_seconds - 3.05).abs() < 1e-9);
/// ```
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), one more for observations above every bound.
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

/// A histogram's counts at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations <= bound)`, cumulative, in increasing order.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    /// Their sum in seconds.
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    /// An estimate of the `q` quantile (0..=1) from the buckets, as Prometheus'
    /// `histogram_quantile` computes it (linear within a bucket); `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut lower = (0.0, 0u64);
        for &(bound, cumulative) in &self.buckets {
            if cumulative as f64 >= rank {
                let in_bucket = (cumulative - lower.1) as f64;
                if in_bucket == 0.0 {
                    return Some(bound);
                }
                return Some(lower.0 + (bound - lower.0) * (rank - lower.1 as f64) / in_bucket);
            }
            lower = (bound, cumulative);
        }
        // Above the highest bound: that bound is all that can be said.
        Some(lower.0)
    }
}

impl Histogram {
    /// A histogram with these upper bounds (seconds, increasing).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            value.as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// The counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        let count = cumulative + self.counts[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let h = Histogram::new(&[1.0, 2.0]);
        for _ in 0..10 {
            h.observe(Duration::from_millis(1500));
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(1.0, 0), (2.0, 10)]);
        assert_eq!(s.quantile(0.5), Some(1.5));
        assert_eq!(Histogram::new(&[1.0]).snapshot().quantile(0.5), None);
    }
}
