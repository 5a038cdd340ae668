//! How much later than the video the audio is played in WebCodecs mode, when it cannot be
//! heard on time at the shared delay D.
//!
//! An AAC encoder sees ahead before it emits a frame (ffmpeg's: three 1024-sample frames,
//! ~64 ms at 48 kHz), so a live source's audio reaches the relay tens of milliseconds after
//! the video of the same instant. Holding the video back for it would cost every viewer that
//! much latency; dropping late audio would leave them with none. Instead the audio is played
//! `lag` ms after its due time, `lag` just covering what the audio path needs beyond D, but
//! never more than [`MAX_AUDIO_LAG_MS`], the most that audio may trail the picture (ATSC
//! IS-191: audio no more than 45 ms behind video; EBU R37 allows 60). Past that, D itself must
//! rise ([`AudioLag::min_delay_ms`]), and the viewer asks the relay for it.
//!
//! The lag rises at once (late audio would be dropped) and falls slowly, about 1 % per tick
//! (a few seconds), so the audio schedule is not shaken by each sample.

/// The most that audio may trail the video, ms.
pub const MAX_AUDIO_LAG_MS: f64 = 45.0;

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_the_gap_at_once_and_within_the_limit() {
        let mut l = AudioLag::default();
        assert_eq!(l.update(30.0, 50.0), 0.0, "audio on time: no lag");
        assert_eq!(l.update(80.0, 50.0), 30.0);
        assert_eq!(l.update(200.0, 50.0), MAX_AUDIO_LAG_MS, "capped");
        assert_eq!(AudioLag::min_delay_ms(200.0), 155.0);
    }

    #[test]
    fn falls_slowly() {
        let mut l = AudioLag::default();
        l.update(90.0, 50.0);
        let after_one = l.update(50.0, 50.0);
        assert!(after_one > 39.0 && after_one < 40.0, "{after_one}");
        for _ in 0..600 {
            l.update(50.0, 50.0);
        }
        assert!(l.lag_ms() < 0.1, "{}", l.lag_ms());
    }

    #[test]
    fn ignores_garbage() {
        let mut l = AudioLag::default();
        l.update(70.0, 50.0);
        assert_eq!(l.update(f64::NAN, 50.0), 20.0);
        assert_eq!(l.update(70.0, f64::INFINITY), 20.0);
        l.reset();
        assert_eq!(l.lag_ms(), 0.0);
    }
}
