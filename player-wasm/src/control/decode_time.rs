//! How long a WebCodecs decoder takes: submit to output, per chunk, over a sliding window.
//!
//! Chunks are matched to outputs by timestamp (a video decoder emits B-frames in presentation
//! order, not the order submitted). Only chunks that found the decoder idle are timed: in a
//! burst (the join backlog) the wait in the decoder's queue is not decode time. Pure
//! arithmetic on performance.now() ms; no `web-sys`.

use std::collections::VecDeque;

use super::quantile::nearest_rank;

/// Submitted chunks remembered while they await their output.
const PENDING: usize = 64;
/// Decode times kept.
const WINDOW: usize = 120;

#[derive(Debug, Clone)]
pub struct DecodeTimes {
    /// (timestamp ms, submitted at, or NaN when not timed), in submission order.
    pending: VecDeque<(f64, f64)>,
    samples: VecDeque<f64>,
    /// How far an output's timestamp may be from its chunk's, ms.
    tolerance_ms: f64,
}

impl Default for DecodeTimes {
    /// Outputs carry their chunk's timestamp (to the rounding to µs).
    fn default() -> Self {
        Self::new(0.5)
    }
}

impl DecodeTimes {
    /// Outputs whose timestamps may differ from their chunk's by up to `tolerance_ms` (an
    /// audio decoder may move them by its codec delay); the nearest pending chunk is theirs.
    pub fn new(tolerance_ms: f64) -> Self {
        Self {
            pending: VecDeque::new(),
            samples: VecDeque::new(),
            tolerance_ms,
        }
    }

    /// A chunk with timestamp `pts_ms` was submitted at `now`; `idle`: the decoder had
    /// nothing else queued.
    pub fn on_submit(&mut self, pts_ms: f64, now: f64, idle: bool) {
        if self.pending.len() >= PENDING {
            self.pending.pop_front();
        }
        self.pending
            .push_back((pts_ms, if idle { now } else { f64::NAN }));
    }

    /// The output with timestamp `pts_ms` came out at `now`. Outputs of chunks submitted
    /// before it that never came out are forgotten.
    pub fn on_output(&mut self, pts_ms: f64, now: f64) {
        let near = |i: usize| (self.pending[i].0 - pts_ms).abs();
        let Some(i) = (0..self.pending.len())
            .filter(|&i| near(i) < self.tolerance_ms)
            .min_by(|&a, &b| near(a).total_cmp(&near(b)))
        else {
            return;
        };
        let t = self.pending[i].1;
        self.pending.drain(..=i);
        if t.is_finite() && now >= t {
            if self.samples.len() >= WINDOW {
                self.samples.pop_front();
            }
            self.samples.push_back(now - t);
        }
    }

    /// 95th percentile of the decode times, ms.
    pub fn p95(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.samples.iter().copied().collect();
        nearest_rank(&mut v, 0.95)
    }

    /// Forgets the chunks awaiting output (a decoder reset or failure).
    pub fn forget_pending(&mut self) {
        self.pending.clear();
    }

    /// Forgets the decode times (measure afresh).
    pub fn reset_samples(&mut self) {
        self.samples.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_outputs_by_timestamp_and_times_only_idle_submissions() {
        let mut d = DecodeTimes::default();
        d.on_submit(0.0, 100.0, true);
        d.on_submit(33.0, 101.0, false); // queued behind the first: not timed
        d.on_submit(66.0, 140.0, true);
        d.on_output(0.0, 103.0);
        d.on_output(33.0, 106.0);
        d.on_output(66.0, 144.0);
        assert_eq!(d.p95(), Some(4.0));
        d.reset_samples();
        assert_eq!(d.p95(), None);
    }

    #[test]
    fn shifted_outputs_match_the_nearest_chunk_within_the_tolerance() {
        let mut d = DecodeTimes::new(4.0);
        for k in 0..3 {
            d.on_submit(k as f64 * 10.0, k as f64 * 10.0, true);
        }
        // Outputs 2.5 ms later than their chunks (a codec delay).
        d.on_output(2.5, 1.0);
        d.on_output(12.5, 12.0);
        d.on_output(22.5, 24.0);
        assert_eq!(d.p95(), Some(4.0));
        let mut strict = DecodeTimes::default();
        strict.on_submit(0.0, 0.0, true);
        strict.on_output(2.5, 1.0);
        assert_eq!(strict.p95(), None);
    }

    #[test]
    fn out_of_order_outputs_and_lost_chunks() {
        let mut d = DecodeTimes::default();
        // B-frame order: 0, 100, 33, 66 submitted; 0, 33, 66, 100 out.
        for (i, pts) in [0.0, 100.0, 33.0, 66.0].into_iter().enumerate() {
            d.on_submit(pts, i as f64, true);
        }
        d.on_output(0.0, 2.0);
        d.on_output(33.0, 7.0); // drops 100 (before it in submission order)
        assert_eq!(d.p95(), Some(5.0));
        d.on_output(100.0, 9.0); // forgotten: no sample
        d.on_output(66.0, 9.0);
        assert_eq!(d.p95(), Some(6.0));
        d.forget_pending();
        d.on_output(66.0, 20.0);
        assert_eq!(d.p95(), Some(6.0));
    }
}
