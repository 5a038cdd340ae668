//! The display delay of the WebCodecs path: from writing a `VideoFrame` to the
//! `MediaStreamTrackGenerator` to the moment the compositor expects it on the glass (the
//! `<video>`'s `requestVideoFrameCallback` `expectedDisplayTime`), about two refreshes. It is
//! how far ahead of their due time frames are written until the refresh grid is known
//! ([`super::refresh`] plans them after that), and how far the playhead trails the last write.
//!
//! A sample pairs a callback with the write of the frame it shows
//! ([`super::frame_callback::shown_write`]). The estimate is the median of the recent samples.
//! Callbacks without a display estimate ([`super::frame_callback::has_estimate`]) are
//! skipped, so the estimate keeps the last real figure instead of falling to zero.

use std::collections::VecDeque;

use super::frame_callback::{has_estimate, shown_write};

/// Writes kept for pairing.
const WRITES: usize = 32;
/// Samples in the median.
const SAMPLES: usize = 61;
/// Samples outside this range (ms) are mispairings or stalls, not the pipeline.
const PLAUSIBLE_MS: std::ops::RangeInclusive<f64> = 0.0..=250.0;

#[derive(Debug, Clone, Default)]
pub struct DisplayDelay {
    /// (written at, media time), ms.
    writes: VecDeque<(f64, f64)>,
    samples: VecDeque<f64>,
}

impl DisplayDelay {
    /// The frame at media time `pts` was written at `at` (performance.now() ms).
    pub fn on_write(&mut self, at: f64, pts: f64) {
        if !at.is_finite() {
            return;
        }
        if self.writes.len() >= WRITES {
            self.writes.pop_front();
        }
        self.writes.push_back((at, pts));
    }

    /// A frame callback: the frame at media time `media_ms` (if the browser says), submitted
    /// for composition at `presented_at`, is expected on screen at `expected_at` (both
    /// performance.now() ms).
    pub fn on_displayed(&mut self, presented_at: f64, expected_at: f64, media_ms: Option<f64>) {
        if !has_estimate(presented_at, expected_at) {
            return;
        }
        let Some(i) = shown_write(self.writes.iter().copied(), presented_at, media_ms) else {
            return;
        };
        let written = self.writes[i].0;
        let d = expected_at - written;
        if !PLAUSIBLE_MS.contains(&d) {
            return;
        }
        if self.samples.len() >= SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(d);
    }

    /// The median display delay, ms; `None` before any sample.
    pub fn delay_ms(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.samples.iter().copied().collect();
        super::quantile::nearest_rank(&mut v, 0.5)
    }

    pub fn reset(&mut self) {
        self.writes.clear();
        self.samples.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_each_callback_with_the_frame_written_before_it() {
        let mut d = DisplayDelay::default();
        assert_eq!(d.delay_ms(), None);
        // 30 fps writes; each composited at the next 60 Hz vsync after it and shown one
        // vsync later.
        let vsync = 1000.0 / 60.0;
        for k in 0..100 {
            let w = 1000.0 + k as f64 * 1000.0 / 30.0 + 3.0;
            d.on_write(w, k as f64);
            let submit = (w / vsync).ceil() * vsync;
            d.on_displayed(submit, submit + vsync, None);
        }
        let m = d.delay_ms().unwrap();
        assert!((17.0..=34.0).contains(&m), "{m}");
    }

    #[test]
    fn ignores_implausible_and_unpaired() {
        let mut d = DisplayDelay::default();
        d.on_displayed(100.0, 120.0, None); // nothing written yet
        d.on_write(200.0, 7.0);
        d.on_displayed(150.0, 170.0, None); // before the only write
        d.on_displayed(250.0, 270.0, Some(8.0)); // another frame
        d.on_displayed(210.0, 900.0, None); // a stall, not the pipeline
        d.on_displayed(f64::NAN, 1.0, None);
        d.on_displayed(210.0, 210.4, None); // no estimate: expected = presented
        d.on_displayed(210.0, 209.0, None);
        assert_eq!(d.delay_ms(), None);
        d.on_displayed(210.0, 230.0, None);
        assert_eq!(d.delay_ms(), Some(30.0));
        // By media time, whatever the presentation time says.
        d.on_write(240.0, 8.0);
        d.on_displayed(300.0, 262.0, Some(7.0));
        assert_eq!(d.delay_ms(), Some(30.0)); // (30, 62): the lower median
        d.reset();
        assert_eq!(d.delay_ms(), None);
    }

    #[test]
    fn median_resists_outliers() {
        let mut d = DisplayDelay::default();
        for k in 0..40 {
            let w = k as f64 * 33.0;
            d.on_write(w, k as f64);
            let extra = if k % 10 == 0 { 150.0 } else { 0.0 };
            d.on_displayed(w + 5.0, w + 28.0 + extra, Some(k as f64));
        }
        assert_eq!(d.delay_ms(), Some(28.0));
    }
}
