//! How figures are written in the report's tables and prose.

use std::time::Duration;

use crate::outcome::Outcome;
use crate::stats::ratio;

/// Milliseconds, with a precision that suits the magnitude.
pub fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 1000.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// Seconds with one decimal.
pub fn fmt_s(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A ratio `reference / ours` as `12.3×`.
pub fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{r:.1}×"),
        None => "–".into(),
    }
}

/// A ratio with two decimals (`1.96×`), for the targets and growth factors, where the
/// rounding of [`fmt_ratio`] could show a missed bound as met.
pub fn fmt_ratio2(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{r:.2}×"),
        None => "–".into(),
    }
}

/// KiB as MiB with one decimal.
pub fn fmt_kib(k: u64) -> String {
    format!("{:.1} MiB", k as f64 / 1024.0)
}

/// Bytes as MiB with two decimals.
pub fn fmt_bytes(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / (1024.0 * 1024.0))
}

/// The ratio cell of a row: reference / ours of the duration `f` picks, `–` unless both
/// sides were measured.
pub fn ratio_cell<T>(
    ours: &Outcome<T>,
    reference: &Outcome<T>,
    f: impl Fn(&T) -> Duration,
) -> String {
    match (ours.done(), reference.done()) {
        (Some(o), Some(r)) => fmt_ratio(ratio(f(r), f(o))),
        _ => "–".into(),
    }
}

/// The ratio cell of a row of sizes (bytes, KiB): reference / ours.
pub fn size_ratio_cell(ours: &Outcome<u64>, reference: &Outcome<u64>) -> String {
    match (ours.done(), reference.done()) {
        (Some(&o), Some(&f)) if o > 0 => format!("{:.1}×", f as f64 / o as f64),
        _ => "–".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(fmt_ms(Duration::from_micros(1234)), "1.23");
        assert_eq!(fmt_ms(Duration::from_micros(12345)), "12.3");
        assert_eq!(fmt_ms(Duration::from_millis(1234)), "1234");
        assert_eq!(fmt_s(Duration::from_millis(1234)), "1.2 s");
        assert_eq!(fmt_ratio(Some(9.96)), "10.0×");
        assert_eq!(fmt_ratio(None), "–");
        assert_eq!(fmt_ratio2(Some(1.996)), "2.00×");
        assert_eq!(fmt_kib(2048), "2.0 MiB");
        assert_eq!(fmt_bytes(3 << 20), "3.00 MiB");
    }

    #[test]
    fn ratio_cells_need_both_sides() {
        let ms = Duration::from_millis;
        let o: Outcome<Duration> = Outcome::Done(ms(2));
        let r: Outcome<Duration> = Outcome::Done(ms(5));
        assert_eq!(ratio_cell(&o, &r, |d| *d), "2.5×");
        assert_eq!(ratio_cell(&o, &Outcome::NoEquivalent, |d| *d), "–");
        assert_eq!(
            size_ratio_cell(&Outcome::Done(1 << 20), &Outcome::Done(3 << 20)),
            "3.0×"
        );
        assert_eq!(size_ratio_cell(&Outcome::Done(0), &Outcome::Done(1)), "–");
    }
}
