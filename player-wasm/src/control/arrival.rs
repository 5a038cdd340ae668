//! How late frames arrive: for each received video frame, relay-clock arrival time minus its
//! relay ingest time (network and relay delay, in ms), over a sliding window.
//!
//! The jitter estimate ([`super::jitter`]) sees only the spread of transit times, not their
//! level: a viewer behind a constant 100 ms path has no jitter but can never hold a latency
//! under 100 ms. This window gives that level; the lowest latency a viewer can hold is its
//! arrival p95 plus what its presentation path needs ([`ArrivalLatency::required_ms`]).

use std::collections::VecDeque;

/// Window length, ms of local time.
pub const WINDOW_MS: f64 = 5_000.0;
/// Most samples kept (a 60 fps stream fills 5 s with 300).
pub const MAX_SAMPLES: usize = 600;

#[derive(Debug, Clone, Default)]
pub struct ArrivalLatency {
    samples: VecDeque<(f64, f64)>,
}

impl ArrivalLatency {
    /// One frame arrived at local time `local_ms`, `arrival_ms` after the relay ingested it.
    pub fn on_arrival(&mut self, local_ms: f64, arrival_ms: f64) {
        if !local_ms.is_finite() || !arrival_ms.is_finite() {
            return;
        }
        self.samples.push_back((local_ms, arrival_ms));
        while self.samples.len() > MAX_SAMPLES
            || self
                .samples
                .front()
                .is_some_and(|&(t, _)| local_ms - t > WINDOW_MS)
        {
            self.samples.pop_front();
        }
    }

    pub fn reset(&mut self) {
        self.samples.clear();
    }

    /// Nearest-rank quantile `q` of the arrival latencies; `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let mut v: Vec<f64> = self.samples.iter().map(|&(_, a)| a).collect();
        super::quantile::nearest_rank(&mut v, q)
    }

    /// The lowest latency this viewer can hold: 95 % of frames have arrived by then, plus
    /// `present_ms` for its presentation path (append, decode, display).
    pub fn required_ms(&self, present_ms: f64) -> Option<f64> {
        self.quantile(0.95).map(|p| p.max(0.0) + present_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_path_delay_is_the_level() {
        let mut a = ArrivalLatency::default();
        for i in 0..300 {
            a.on_arrival(i as f64 * 33.3, 100.0 + (i % 7) as f64);
        }
        let p95 = a.quantile(0.95).unwrap();
        assert!((105.0..=106.0).contains(&p95), "{p95}");
        assert_eq!(a.required_ms(66.0), Some(p95 + 66.0));
    }

    #[test]
    fn window_forgets_an_old_bad_patch() {
        let mut a = ArrivalLatency::default();
        for i in 0..100 {
            a.on_arrival(i as f64 * 33.3, 400.0);
        }
        for i in 100..400 {
            a.on_arrival(i as f64 * 33.3, 20.0);
        }
        assert_eq!(a.quantile(0.95), Some(20.0));
        assert!(a.samples.len() <= MAX_SAMPLES);
    }

    #[test]
    fn empty_and_garbage() {
        let mut a = ArrivalLatency::default();
        assert_eq!(a.required_ms(50.0), None);
        a.on_arrival(f64::NAN, 1.0);
        a.on_arrival(1.0, f64::INFINITY);
        assert_eq!(a.quantile(0.5), None);
    }
}
