//! Arrival jitter of received frames, robust to clock offset and drift-free enough for a
//! sliding window of a few seconds.
//!
//! For every frame the player records `transit = local arrival time − media timestamp`. The
//! absolute value of `transit` is meaningless (the two clocks have an unknown offset), but its
//! *spread* is exactly how much later than the earliest frame of the window a frame may
//! arrive, which is the buffer the player needs to play through without stalling. The report
//! is `p95(transit) − min(transit)` over the last [`DEFAULT_WINDOW_MS`] of local time (at
//! most [`DEFAULT_MAX_SAMPLES`] samples).
//!
//! What it shows and what it does not (see the tests):
//! * constant delay → 0; uniform extra delay 0..X → ≈ 0.95·X;
//! * rare outliers (less than 5 % of the window, e.g. one frame in 30 late by 300 ms, 3.3 %)
//!   are **not** shown by the p95; they are by [`ArrivalJitter::spread_ms`]`(1.0)` (max − min).
//!   One late frame in 10 (10 %) is shown in full;
//! * bursts of old frames are not jitter. After `new()`/`reset()` (the join backlog: the relay
//!   sends from the last keyframe, a GOP of old frames at once) and after an outage (no arrival
//!   for more than [`DEFAULT_OUTAGE_GAP_MS`]; the frames held up arrive in a burst), samples are
//!   not recorded while the stream is *catching up*: until the smallest transit seen stops
//!   falling (it fell by less than [`SETTLE_DROP_MS`] over the last [`SETTLE_MS`] of local
//!   time; in a burst it falls by the burst's speed-up), or, after an outage, a frame arrives
//!   with a transit at or under the window's p95 transit from before the gap; at most one
//!   window. A burst would otherwise read as seconds of jitter and push the adaptive target up
//!   for nothing: the latency controller handles an outage with its stall penalty and a seek;
//! * old jitter is forgotten once it leaves the window.
//!
//! Cost: `on_arrival` is O(1) amortised (a ring buffer with eviction from the front);
//! `jitter_ms` is O(n) in the window (a copy and a selection, ~300 samples at 30 fps).

use std::collections::VecDeque;

/// Default window length, local milliseconds.
pub const DEFAULT_WINDOW_MS: f64 = 10_000.0;
/// Default bound on the number of samples (10 s of 60 fps video plus 50 audio frames/s fits).
pub const DEFAULT_MAX_SAMPLES: usize = 1200;

/// An arrival gap longer than this is an outage (see the module documentation).
pub const DEFAULT_OUTAGE_GAP_MS: f64 = 1000.0;
/// Catching up ends when the smallest transit fell by less than [`SETTLE_DROP_MS`] over this
/// much local time.
pub const SETTLE_MS: f64 = 500.0;
/// See [`SETTLE_MS`].
pub const SETTLE_DROP_MS: f64 = 50.0;

/// State while catching up after the start or an outage.
#[derive(Debug, Clone, Copy)]
struct CatchUp {
    /// After an outage: a transit at or under this ends catching up.
    level: Option<f64>,
    /// Catching up ends at this local time at the latest.
    until: f64,
    /// Smallest transit seen while catching up.
    run_min: f64,
    /// (local time, `run_min` then) of the last check.
    checkpoint: Option<(f64, f64)>,
}

/// Sliding-window arrival jitter estimator. See the module documentation.
#[derive(Debug, Clone)]
pub struct ArrivalJitter {
    window_ms: f64,
    max_samples: usize,
    /// `(local_ms, transit_ms)`, oldest first.
    samples: VecDeque<(f64, f64)>,
    last_local: Option<f64>,
    /// `Some` while catching up (samples not recorded).
    catch_up: Option<CatchUp>,
    skipped: u64,
}

impl Default for ArrivalJitter {
    fn default() -> Self {
        Self::new()
    }
}

impl ArrivalJitter {
    /// A 10 s window bounded to 1200 samples.
    pub fn new() -> Self {
        Self::with_window(DEFAULT_WINDOW_MS, DEFAULT_MAX_SAMPLES)
    }

    /// A window of `window_ms` local milliseconds and at most `max_samples` samples (≥ 1).
    pub fn with_window(window_ms: f64, max_samples: usize) -> Self {
        let max_samples = max_samples.max(1);
        Self {
            window_ms: if window_ms.is_finite() && window_ms > 0.0 {
                window_ms
            } else {
                DEFAULT_WINDOW_MS
            },
            max_samples,
            samples: VecDeque::with_capacity(max_samples.min(4096)),
            last_local: None,
            catch_up: None,
            skipped: 0,
        }
    }

    fn start_catch_up(&mut self, local_ms: f64, level: Option<f64>) {
        self.catch_up = Some(CatchUp {
            level,
            until: local_ms + self.window_ms,
            run_min: f64::INFINITY,
            checkpoint: None,
        });
    }

    /// Records one received frame: `local_ms` is the local (monotonic) arrival time,
    /// `media_ms` the frame's media timestamp. Non-finite inputs are ignored.
    pub fn on_arrival(&mut self, local_ms: f64, media_ms: f64) {
        if !local_ms.is_finite() || !media_ms.is_finite() {
            return;
        }
        let transit = local_ms - media_ms;
        match self.last_local {
            None => self.start_catch_up(local_ms, None),
            Some(last) if local_ms - last > DEFAULT_OUTAGE_GAP_MS => {
                let level = if self.samples.len() >= 2 {
                    Some(self.min_and_quantile(0.95).1)
                } else {
                    None
                };
                self.start_catch_up(local_ms, level);
            }
            Some(_) => {}
        }
        self.last_local = Some(local_ms);
        if let Some(c) = self.catch_up.as_mut() {
            c.run_min = c.run_min.min(transit);
            let settled = match c.checkpoint {
                None => {
                    c.checkpoint = Some((local_ms, c.run_min));
                    false
                }
                Some((t, m)) if local_ms - t >= SETTLE_MS => {
                    c.checkpoint = Some((local_ms, c.run_min));
                    m - c.run_min < SETTLE_DROP_MS
                }
                Some(_) => false,
            };
            let caught_up = c.level.is_some_and(|l| transit <= l);
            if !(settled || caught_up || local_ms >= c.until) {
                self.skipped += 1;
                self.evict(local_ms);
                return;
            }
            self.catch_up = None;
        }
        self.samples.push_back((local_ms, transit));
        self.evict(local_ms);
    }

    /// Samples not recorded because they arrived while catching up (start, outage burst).
    pub fn skipped_catching_up(&self) -> u64 {
        self.skipped
    }

    /// Drops samples older than the window (relative to `now_ms`). Optional: queries use the
    /// newest sample as "now"; call this if frames stopped arriving and old samples should go.
    pub fn expire(&mut self, now_ms: f64) {
        if now_ms.is_finite() {
            self.evict(now_ms);
        }
    }

    fn evict(&mut self, now_ms: f64) {
        while self.samples.len() > self.max_samples {
            self.samples.pop_front();
        }
        while let Some(&(t, _)) = self.samples.front() {
            if now_ms - t > self.window_ms {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// Forgets everything (on a discontinuity: the media time base changed).
    pub fn reset(&mut self) {
        self.samples.clear();
        self.last_local = None;
        self.catch_up = None;
    }

    /// Number of samples in the window.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when no sample is in the window.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// `p95(transit) − min(transit)` over the window, ms; 0 with fewer than 2 samples.
    pub fn jitter_ms(&self) -> f64 {
        self.spread_ms(0.95)
    }

    /// `quantile(transit, q) − min(transit)` (nearest rank, `q` clamped to 0..=1), ms; 0 with
    /// fewer than 2 samples. `spread_ms(1.0)` is max − min.
    pub fn spread_ms(&self, q: f64) -> f64 {
        if self.samples.len() < 2 {
            return 0.0;
        }
        let (min, qv) = self.min_and_quantile(q);
        (qv - min).max(0.0)
    }

    /// (min, nearest-rank quantile q) of the transits; requires a non-empty window.
    fn min_and_quantile(&self, q: f64) -> (f64, f64) {
        let q = if q.is_nan() { 0.95 } else { q };
        let mut v: Vec<f64> = self.samples.iter().map(|&(_, x)| x).collect();
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let qv = super::quantile::nearest_rank(&mut v, q).unwrap_or(min);
        (min, qv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny deterministic PRNG (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn next_f64(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
            (x >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    const FRAME: f64 = 1000.0 / 30.0;

    /// Feeds `n` frames at 30 fps; `extra(i)` is frame i's extra delay. The clocks are offset
    /// by 123 456 ms to show the offset does not matter.
    fn feed(j: &mut ArrivalJitter, start: usize, n: usize, mut extra: impl FnMut(usize) -> f64) {
        for i in start..start + n {
            let media = i as f64 * FRAME;
            j.on_arrival(123_456.0 + media + 40.0 + extra(i), media);
        }
    }

    #[test]
    fn constant_delay_is_zero() {
        let mut j = ArrivalJitter::new();
        feed(&mut j, 0, 600, |_| 0.0);
        assert!(j.jitter_ms().abs() < 1e-6, "{}", j.jitter_ms());
        // 10 s of 30 fps: the window holds about 300 samples, not 600.
        assert!(j.len() <= 302, "{}", j.len());
    }

    #[test]
    fn uniform_0_100_is_about_95() {
        let mut j = ArrivalJitter::new();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        feed(&mut j, 0, 900, |_| rng.next_f64() * 100.0);
        let v = j.jitter_ms();
        println!("uniform 0..100 ms extra delay: jitter_ms = {v:.1}");
        assert!((v - 95.0).abs() < 6.0, "{v}");
    }

    #[test]
    fn bursty_outliers_below_5_percent_are_not_in_p95() {
        // Every 30th frame 300 ms late: 3.3 % of samples, under the 5 % the p95 ignores.
        let mut j = ArrivalJitter::new();
        feed(&mut j, 0, 900, |i| if i % 30 == 0 { 300.0 } else { 0.0 });
        let p95 = j.jitter_ms();
        let max = j.spread_ms(1.0);
        println!("every 30th frame +300 ms: p95 jitter = {p95:.1}, max spread = {max:.1}");
        assert!(p95 < 1.0, "{p95}");
        assert!((max - 300.0).abs() < 1e-6, "{max}");

        // Every 10th frame late: 10 % > 5 %, shown in full.
        let mut j = ArrivalJitter::new();
        feed(&mut j, 0, 900, |i| if i % 10 == 0 { 300.0 } else { 0.0 });
        let p95 = j.jitter_ms();
        println!("every 10th frame +300 ms: p95 jitter = {p95:.1}");
        assert!((p95 - 300.0).abs() < 1e-6, "{p95}");
    }

    #[test]
    fn window_forgets_old_jitter() {
        let mut j = ArrivalJitter::new();
        let mut rng = Rng(42);
        feed(&mut j, 0, 300, |_| rng.next_f64() * 200.0);
        assert!(j.jitter_ms() > 150.0);
        // 11 s of clean arrivals push the noisy ones out of the 10 s window.
        feed(&mut j, 300, 330, |_| 0.0);
        assert!(j.jitter_ms() < 1e-6, "{}", j.jitter_ms());
    }

    #[test]
    fn expire_without_arrivals_and_reset() {
        let mut j = ArrivalJitter::new();
        feed(&mut j, 0, 60, |i| (i % 7) as f64 * 10.0);
        assert!(j.jitter_ms() > 0.0);
        j.expire(123_456.0 + 60.0 * FRAME + 20_000.0);
        assert!(j.is_empty());
        feed(&mut j, 0, 60, |i| (i % 7) as f64 * 10.0);
        j.reset();
        assert_eq!(j.jitter_ms(), 0.0);
        // Non-finite input is ignored.
        j.on_arrival(f64::NAN, 0.0);
        assert!(j.is_empty());
    }

    #[test]
    fn outage_burst_is_not_jitter() {
        let mut j = ArrivalJitter::new();
        let mut rng = Rng(7);
        feed(&mut j, 0, 150, |_| rng.next_f64() * 20.0);
        let before = j.jitter_ms();
        // 3 s outage: frames 150..240 all arrive at its end, then the stream goes on.
        let end = 123_456.0 + 240.0 * FRAME + 40.0;
        for i in 150..240 {
            j.on_arrival(end, i as f64 * FRAME);
        }
        feed(&mut j, 240, 150, |_| rng.next_f64() * 20.0);
        let after = j.jitter_ms();
        println!(
            "3 s outage then burst: jitter {before:.1} → {after:.1} ms, {} burst samples skipped",
            j.skipped_catching_up()
        );
        assert!(after < 25.0, "{after}");
        assert!(j.skipped_catching_up() >= 85);
        // A source that pauses for 2 s and resumes on time is not skipped (after the first
        // 0.5 s of the start).
        let mut j = ArrivalJitter::new();
        feed(&mut j, 0, 60, |_| 0.0);
        let skipped = j.skipped_catching_up();
        feed(&mut j, 120, 60, |_| 0.0);
        assert_eq!(j.skipped_catching_up(), skipped);
        assert_eq!(j.len(), 120 - skipped as usize);
    }

    #[test]
    fn join_backlog_is_not_jitter() {
        // The relay sends 2 s of old frames at once (GOP backlog), then the live stream with
        // 0..20 ms of jitter; audio (21.3 ms) interleaved with video (33.3 ms).
        let mut j = ArrivalJitter::new();
        let mut rng = Rng(99);
        let join = 123_456.0 + 2000.0 + 40.0;
        let mut frames: Vec<f64> = (0..300).map(|i| i as f64 * FRAME).collect();
        frames.extend((0..469).map(|i| i as f64 * 1024.0 / 48.0));
        frames.sort_by(|a, b| a.total_cmp(b));
        for &m in &frames {
            let live = 123_456.0 + m + 40.0 + rng.next_f64() * 20.0;
            j.on_arrival(live.max(join + m / 100.0), m);
        }
        let v = j.jitter_ms();
        println!(
            "2 s join backlog then live 0..20 ms jitter: jitter_ms = {v:.1}, {} samples skipped",
            j.skipped_catching_up()
        );
        assert!(v > 5.0 && v < 25.0, "{v}");
        assert!(j.skipped_catching_up() < 250);
    }

    #[test]
    fn sample_count_is_bounded() {
        let mut j = ArrivalJitter::with_window(1e12, 100);
        for i in 0..10_000 {
            j.on_arrival(i as f64, 0.0);
        }
        assert_eq!(j.len(), 100);
        // The last 100 transits are 9900..9999.
        assert!((j.spread_ms(1.0) - 99.0).abs() < 1e-9);
    }
}
