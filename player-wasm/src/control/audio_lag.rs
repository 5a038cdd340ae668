//! How much later than the video the audio is played in WebCodecs mode, when it cannot be
//! heard on time at the shared delay D.
//!
//! An AAC encoder sees ahead before it emits a frame (ffmpeg's: three 1024-sample frames,
//! ~64 ms at 48 kHz), so a live source's audio reaches the relay tens of milliseconds after
//! the video of the same instant. Holding the video back for it would cost every viewer that
//! much latency; dropping late audio would leave them with none. Instead the audio is played
//! `lag` ms after its due time, `lag` just covering what the audio path needs beyond D, but
//! never more than [`MAX_AUDIO_LAG_MS`], the most that audio may trail the picture. Broadcast
//! allows more (ATSC IS-191: 45 ms; EBU R37: 60); our target is ±20 ms, and the cap is that
//! target: the audio chain's own start error is ~0 (`audio_chain` steers it and plays late
//! buffers' rest on time). A lower cap costs latency by whole refreshes: D must put the
//! video's landing at need − cap or later, the landing moves in steps of a refresh, and at 18
//! ms a need 0.5 ms over the cap moved it 16.7 ms later (p50 27 → 44 ms in one run). Past the cap, D itself must rise
//! ([`AudioLag::min_delay_on_grid_ms`]), and the viewer asks the relay for it.
//!
//! The lag rises at once (late audio would be dropped) and falls slowly, about 1 % per tick
//! (a few seconds), so the audio schedule is not shaken by each sample.

/// The most that audio may trail the video, ms.
pub const MAX_AUDIO_LAG_MS: f64 = 20.0;

/// Share of the gap closed per tick when the lag falls.
const DECAY: f64 = 0.01;

#[derive(Debug, Clone, Default)]
pub struct AudioLag {
    lag_ms: f64,
}

impl AudioLag {
    /// `need_ms`: the least delay at which audio is heard on time (its arrival p95, decode
    /// and output path); `delay_ms`: D. Returns the lag now in force.
    pub fn update(&mut self, need_ms: f64, delay_ms: f64) -> f64 {
        if !(need_ms.is_finite() && delay_ms.is_finite()) {
            return self.lag_ms;
        }
        let want = (need_ms - delay_ms).clamp(0.0, MAX_AUDIO_LAG_MS);
        if want > self.lag_ms {
            self.lag_ms = want;
        } else {
            self.lag_ms += (want - self.lag_ms) * DECAY;
        }
        self.lag_ms
    }

    /// The lag in force, ms.
    pub fn lag_ms(&self) -> f64 {
        self.lag_ms
    }

    pub fn reset(&mut self) {
        self.lag_ms = 0.0;
    }

    /// The least D at which audio needing `need_ms` trails the video by no more than
    /// [`MAX_AUDIO_LAG_MS`].
    pub fn min_delay_ms(need_ms: f64) -> f64 {
        need_ms - MAX_AUDIO_LAG_MS
    }

    /// The same when audio follows the video's landing: the video lands on the display's
    /// refreshes, `landing_ms` after ingest now (D plus its landing error) and so on a grid of
    /// `period_ms`, at the refresh nearest ingest + D. The answer is the least D whose nearest
    /// refresh is at or after `need − max lag`: it does not depend on the D in force (a
    /// figure that did, D + landing error, set D ping-ponging: each 5 ms step of D moved the
    /// landing by a refresh and the requirement with it).
    pub fn min_delay_on_grid_ms(need_ms: f64, landing_ms: f64, period_ms: f64) -> f64 {
        let least = Self::min_delay_ms(need_ms);
        if !(period_ms > 0.0 && landing_ms.is_finite() && least.is_finite()) {
            return least;
        }
        let first = landing_ms + ((least - landing_ms) / period_ms).ceil() * period_ms;
        first - period_ms / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_the_gap_at_once_and_within_the_limit() {
        let mut l = AudioLag::default();
        assert_eq!(l.update(30.0, 50.0), 0.0, "audio on time: no lag");
        assert_eq!(l.update(60.0, 50.0), 10.0);
        assert_eq!(l.update(200.0, 50.0), MAX_AUDIO_LAG_MS, "capped");
        assert_eq!(AudioLag::min_delay_ms(200.0), 200.0 - MAX_AUDIO_LAG_MS);
    }

    #[test]
    fn on_the_grid_the_requirement_does_not_depend_on_d() {
        let p = 1000.0 / 60.0;
        // Audio needs 48 ms + the max lag: it may trail to 48. The video lands on 28.3 + k·P
        // after ingest. The first landing at or after 48 is 61.7 (28.3 + 2P); D is nearest to
        // it from 53.3 on.
        let need = 48.0 + MAX_AUDIO_LAG_MS;
        for d in [40.0f64, 45.0, 50.0, 55.0, 60.0, 70.0] {
            // Where the video lands at that D: the grid point nearest to it.
            let landing = 28.333 + ((d - 28.333) / p).round() * p;
            let least = AudioLag::min_delay_on_grid_ms(need, landing, p);
            assert!((least - 53.333).abs() < 0.01, "D {d}: {least}");
        }
        // Unknown grid: the plain figure.
        assert_eq!(AudioLag::min_delay_on_grid_ms(need, 30.0, 0.0), 48.0);
    }

    #[test]
    fn falls_slowly() {
        let mut l = AudioLag::default();
        l.update(60.0, 50.0);
        let after_one = l.update(50.0, 50.0);
        assert!(after_one > 9.8 && after_one < 10.0, "{after_one}");
        for _ in 0..600 {
            l.update(50.0, 50.0);
        }
        assert!(l.lag_ms() < 0.1, "{}", l.lag_ms());
    }

    #[test]
    fn ignores_garbage() {
        let mut l = AudioLag::default();
        l.update(62.0, 50.0);
        assert_eq!(l.update(f64::NAN, 50.0), 12.0);
        assert_eq!(l.update(62.0, f64::INFINITY), 12.0);
        l.reset();
        assert_eq!(l.lag_ms(), 0.0);
    }
}
