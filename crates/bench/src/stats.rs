//! Order statistics over latency samples: median and p95 (nearest rank), and the ratio of
//! two medians.

use std::time::Duration;

/// Summary of one sample of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median; the mean of the two middle values when `n` is even.
    pub median: Duration,
    /// 95th percentile by nearest rank: the `ceil(0.95 n)`-th smallest value.
    pub p95: Duration,
    /// Smallest value.
    pub min: Duration,
    /// Largest value.
    pub max: Duration,
}

impl Summary {
    /// Summarises `samples` (any order); `None` when empty.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_unstable();
        Some(Summary {
            n: s.len(),
            median: median_sorted(&s),
            p95: nearest_rank(&s, 95),
            min: s[0],
            max: s[s.len() - 1],
        })
    }
}

/// Median of a sorted, non-empty slice.
fn median_sorted(s: &[Duration]) -> Duration {
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2
    }
}

/// The `pct`-th percentile of a sorted, non-empty slice by nearest rank (1-based rank
/// `ceil(pct/100 * n)`), so it is always one of the samples.
fn nearest_rank(s: &[Duration], pct: usize) -> Duration {
    let rank = (pct * s.len()).div_ceil(100).max(1);
    s[rank - 1]
}

/// `reference / ours`, the speed-up factor; `None` when `ours` is zero.
pub fn ratio(reference: Duration, ours: Duration) -> Option<f64> {
    if ours.is_zero() {
        None
    } else {
        Some(reference.as_secs_f64() / ours.as_secs_f64())
    }
}

/// Element-wise sums of several equally long sample vectors (e.g. the per-plugin latencies
/// of one chain into the chain's latency per cycle).
pub fn sum_columns(columns: &[Vec<Duration>]) -> Vec<Duration> {
    let n = columns.iter().map(Vec::len).min().unwrap_or(0);
    (0..n).map(|i| columns.iter().map(|c| c[i]).sum()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&x| Duration::from_millis(x)).collect()
    }

    #[test]
    fn empty_has_no_summary() {
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn odd_and_even_medians() {
        assert_eq!(
            Summary::of(&ms(&[5, 1, 3])).unwrap().median,
            Duration::from_millis(3)
        );
        assert_eq!(
            Summary::of(&ms(&[4, 1, 3, 2])).unwrap().median,
            Duration::from_micros(2500)
        );
    }

    #[test]
    fn p95_is_nearest_rank() {
        // 1..=200 ms: rank ceil(0.95*200) = 190
        let v: Vec<u64> = (1..=200).rev().collect();
        let s = Summary::of(&ms(&v)).unwrap();
        assert_eq!(s.p95, Duration::from_millis(190));
        assert_eq!(s.min, Duration::from_millis(1));
        assert_eq!(s.max, Duration::from_millis(200));
        assert_eq!(s.n, 200);
        // 1..=20: rank 19
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(Summary::of(&ms(&v)).unwrap().p95, Duration::from_millis(19));
        // a single sample is its own p95
        assert_eq!(
            Summary::of(&ms(&[7])).unwrap().p95,
            Duration::from_millis(7)
        );
        // 21 samples: rank ceil(19.95) = 20
        let v: Vec<u64> = (1..=21).collect();
        assert_eq!(Summary::of(&ms(&v)).unwrap().p95, Duration::from_millis(20));
    }

    #[test]
    fn ratio_of_medians() {
        assert_eq!(
            ratio(Duration::from_millis(30), Duration::from_millis(3)),
            Some(10.0)
        );
        assert_eq!(ratio(Duration::from_millis(3), Duration::ZERO), None);
    }

    #[test]
    fn columns_sum_per_cycle() {
        let s = sum_columns(&[ms(&[1, 2, 3]), ms(&[10, 20, 30])]);
        assert_eq!(s, ms(&[11, 22, 33]));
        assert!(sum_columns(&[]).is_empty());
    }
}
