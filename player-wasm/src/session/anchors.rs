//! Media time ↔ relay ingest time. Each Timeline message pins one frame's media time (after
//! the remuxer's re-basing, i.e. MSE time in ms) to the relay clock time at which the relay
//! ingested it; between anchors media and wall time advance together.

use std::collections::VecDeque;

/// Anchors kept: enough to cover the buffered range (one per keyframe).
const MAX_ANCHORS: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct Anchors {
    /// (media ms, ingest µs), media ms increasing.
    list: VecDeque<(f64, f64)>,
}

impl Anchors {
    pub fn add(&mut self, media_ms: f64, ingest_us: u64) {
        // A re-based timeline never goes back; drop anchors at or after this one if it does.
        while self.list.back().is_some_and(|&(m, _)| m >= media_ms) {
            self.list.pop_back();
        }
        self.list.push_back((media_ms, ingest_us as f64));
        if self.list.len() > MAX_ANCHORS {
            self.list.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.list.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The anchor that governs media time `media_ms`: the last one at or before it, else the
    /// first.
    fn governing(&self, media_ms: f64) -> Option<(f64, f64)> {
        self.list
            .iter()
            .rev()
            .find(|&&(m, _)| m <= media_ms)
            .or_else(|| self.list.front())
            .copied()
    }

    /// Relay ingest time (µs) of the frame at `media_ms`.
    pub fn ingest_us(&self, media_ms: f64) -> Option<f64> {
        let (m, i) = self.governing(media_ms)?;
        Some(i + (media_ms - m) * 1000.0)
    }

    /// Media time (ms) of the frame ingested at relay time `ingest_us`.
    pub fn media_ms(&self, ingest_us: f64) -> Option<f64> {
        let (m, i) = self
            .list
            .iter()
            .rev()
            .find(|&&(_, i)| i <= ingest_us)
            .or_else(|| self.list.front())
            .copied()?;
        Some(m + (ingest_us - i) / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_both_ways_between_anchors() {
        let mut a = Anchors::default();
        a.add(1000.0, 5_000_000);
        a.add(2000.0, 6_010_000); // the source ran 10 ms late on the second GOP
        assert_eq!(a.ingest_us(1500.0), Some(5_500_000.0));
        assert_eq!(a.ingest_us(2100.0), Some(6_110_000.0));
        assert_eq!(a.media_ms(6_010_000.0 + 50_000.0), Some(2050.0));
        assert_eq!(a.media_ms(5_100_000.0), Some(1100.0));
    }

    #[test]
    fn bounded_and_monotonic() {
        let mut a = Anchors::default();
        for i in 0..1000 {
            a.add(i as f64 * 1000.0, i * 1_000_000);
        }
        assert!(a.list.len() <= MAX_ANCHORS);
        a.add(500.0, 2_000_000_000);
        assert_eq!(a.list.len(), 1);
    }
}
