//! Nearest-rank quantiles of the small sample windows the control modules keep (arrival,
//! jitter, display delay, refresh period, decode time): one implementation, so one copy in
//! the wasm.

/// The nearest-rank `q` quantile of `values` (reordered in place): the smallest value with
/// at least `q·n` values at or below it. `q` is clamped to 0..=1; `None` when `values` is
/// empty.
pub fn nearest_rank(values: &mut [f64], q: f64) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n) - 1;
    let (_, &mut x, _) = values.select_nth_unstable_by(rank, |a, b| a.total_cmp(b));
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        assert_eq!(nearest_rank(&mut [], 0.5), None);
        let mut v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(nearest_rank(&mut v, 0.0), Some(1.0));
        assert_eq!(nearest_rank(&mut v, 0.5), Some(3.0));
        assert_eq!(nearest_rank(&mut v, 0.95), Some(5.0));
        assert_eq!(nearest_rank(&mut v, 2.0), Some(5.0));
        let mut even = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(nearest_rank(&mut even, 0.5), Some(2.0));
    }
}
