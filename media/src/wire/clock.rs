//! Clock synchronisation between player and relay, NTP-style (RFC 5905 section 8), from
//! [`Ping`](super::Ping) / [`Pong`](super::Pong) exchanges.
//!
//! The player stamps `t0` (its clock) into a Ping; the relay stamps `t1` on receipt and `t2`
//! on sending the Pong; the player stamps `t3` on receipt. Then
//!
//! ```text
//! offset = ((t1 - t0) + (t2 - t3)) / 2      relay clock minus player clock
//! rtt    = (t3 - t0) - (t2 - t1)            network round trip, relay time excluded
//! ```
//!
//! The offset of one sample is wrong by half the difference between the two one-way delays,
//! so at most `rtt / 2`. Queueing only adds delay, so the samples with the lowest RTT are the
//! best: [`ClockSync`] keeps a window of recent samples and uses the one with the lowest RTT
//! (NTP's clock filter). Pure arithmetic; the caller reads its own clock.

/// One ping/pong exchange, reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    /// Relay clock minus player clock, µs.
    pub offset_us: i64,
    /// Round-trip time excluding the relay's processing time, µs.
    pub rtt_us: i64,
}

impl ClockSample {
    /// The sample of one exchange: `t0`/`t3` player clock at ping send / pong receipt, `t1`/`t2`
    /// relay clock at ping receipt / pong send, all µs. Never overflows (results saturate).
    pub fn from_ping(t0: u64, t1: u64, t2: u64, t3: u64) -> Self {
        let (t0, t1, t2, t3) = (t0 as i128, t1 as i128, t2 as i128, t3 as i128);
        let sat = |v: i128| v.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        Self {
            offset_us: sat(((t1 - t0) + (t2 - t3)) / 2),
            rtt_us: sat((t3 - t0) - (t2 - t1)),
        }
    }
}

/// A windowed clock-offset estimator: the offset of the lowest-RTT sample among the last
/// `window` samples.
#[derive(Debug, Clone)]
pub struct ClockSync {
    window: usize,
    samples: Vec<ClockSample>,
    /// (offset, min rtt), recomputed on each sample.
    estimate: Option<(i64, i64)>,
}

impl Default for ClockSync {
    /// A window of 16 samples (32 s at one ping every 2 s).
    fn default() -> Self {
        Self::new(16)
    }
}

impl ClockSync {
    /// An estimator over the last `window` samples (at least 1).
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            samples: Vec::new(),
            estimate: None,
        }
    }

    /// Add a sample, dropping the oldest beyond the window. A sample with a negative RTT
    /// (a clock stepped during the exchange) is ignored.
    pub fn add_sample(&mut self, sample: ClockSample) {
        if sample.rtt_us < 0 {
            return;
        }
        if self.samples.len() >= self.window {
            self.samples.remove(0);
        }
        self.samples.push(sample);
        // NTP's clock filter: the exchange with the least round-trip time had the least
        // queueing, and so the least of the path asymmetry that two-way sync cannot see
        // (the offset error is at most half the difference between the two directions).
        // Averaging it with slower exchanges only adds their queueing. Ties: the newest.
        let best = self
            .samples
            .iter()
            .rev()
            .min_by_key(|s| s.rtt_us)
            .copied()
            .unwrap_or(sample);
        self.estimate = Some((best.offset_us, best.rtt_us));
    }

    /// Number of samples in the window.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample has been added yet.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Relay clock minus player clock, µs; `None` before the first sample.
    pub fn offset_us(&self) -> Option<i64> {
        self.estimate.map(|e| e.0)
    }

    /// The lowest RTT in the window, µs: the offset is uncertain by at most half of it.
    pub fn rtt_us(&self) -> Option<i64> {
        self.estimate.map(|e| e.1)
    }

    /// The relay's clock (Unix µs) at player-clock time `local_us`; `None` before the first
    /// sample. Saturates at 0 and `u64::MAX`.
    pub fn relay_now(&self, local_us: u64) -> Option<u64> {
        let offset = self.offset_us()?;
        Some(local_us.saturating_add_signed(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift noise in `0..max`.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, max: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % max
        }
        /// Mostly small, sometimes large queueing delay.
        fn jitter(&mut self) -> u64 {
            if self.below(5) == 0 {
                self.below(40_000)
            } else {
                self.below(1_000)
            }
        }
    }

    /// Simulate `n` exchanges; relay clock = player clock + `true_offset`.
    fn run(sync: &mut ClockSync, rng: &mut Rng, true_offset: i64, up: u64, down: u64, n: usize) {
        let mut local: u64 = 10_000_000;
        for _ in 0..n {
            let t0 = local;
            let arrive = t0 + up + rng.jitter();
            let t1 = arrive.saturating_add_signed(true_offset);
            let t2 = t1 + 30; // relay processing
            let t3 = arrive + 30 + down + rng.jitter();
            sync.add_sample(ClockSample::from_ping(t0, t1, t2, t3));
            local += 2_000_000;
        }
    }

    #[test]
    fn ntp_formulas() {
        // Player clock 1000 µs behind the relay; 100 µs each way; 10 µs in the relay.
        let s = ClockSample::from_ping(0, 1100, 1110, 210);
        assert_eq!(
            s,
            ClockSample {
                offset_us: 1000,
                rtt_us: 200
            }
        );
        // Asymmetric: 300 up, 100 down: error of (300 - 100) / 2 = 100.
        let s = ClockSample::from_ping(0, 1300, 1300, 400);
        assert_eq!(
            s,
            ClockSample {
                offset_us: 1100,
                rtt_us: 400
            }
        );
        // Extremes saturate instead of overflowing.
        let s = ClockSample::from_ping(0, u64::MAX, u64::MAX, 0);
        assert_eq!(s.offset_us, i64::MAX);
        let s = ClockSample::from_ping(u64::MAX, 0, 0, u64::MAX);
        assert_eq!(s.offset_us, i64::MIN);
    }

    #[test]
    fn empty() {
        let s = ClockSync::default();
        assert!(s.is_empty());
        assert_eq!(
            (s.offset_us(), s.rtt_us(), s.relay_now(5)),
            (None, None, None)
        );
    }

    #[test]
    fn symmetric_jitter_converges() {
        let truth = 1_700_000_000_000_000i64 - 10_000_000;
        let mut sync = ClockSync::default();
        let mut naive = ClockSync::new(1);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        run(&mut sync, &mut rng, truth, 5_000, 5_000, 16);
        let err = (sync.offset_us().unwrap() - truth).abs();
        assert!(err < 600, "error {err} µs");
        assert!(sync.rtt_us().unwrap() >= 10_000);
        // The mean of all samples is pulled by the jitter spikes; the estimator is not.
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut all = Vec::new();
        for _ in 0..16 {
            run(&mut naive, &mut rng, truth, 5_000, 5_000, 1);
            all.push(naive.offset_us().unwrap());
        }
        let mean = all.iter().sum::<i64>() / 16;
        assert!(err <= (mean - truth).abs());
        let now = sync.relay_now(1_000).unwrap();
        assert_eq!(now as i64, 1_000 + sync.offset_us().unwrap());
    }

    #[test]
    fn asymmetric_delay_error_is_half_the_difference() {
        let truth = -3_000_000i64; // player clock ahead of the relay
        let mut sync = ClockSync::default();
        let mut rng = Rng(12345);
        run(&mut sync, &mut rng, truth, 9_000, 1_000, 40);
        // One-way delays 9 ms up, 1 ms down: NTP cannot see the asymmetry and is off by
        // (9 - 1) / 2 = 4 ms, give or take the jitter. Never worse than rtt / 2.
        let err = sync.offset_us().unwrap() - truth;
        assert!((3_500..4_500).contains(&err), "error {err} µs");
        assert!(err <= sync.rtt_us().unwrap() / 2 + 1_000);
    }

    #[test]
    fn window_forgets_old_offset_and_ignores_negative_rtt() {
        let mut sync = ClockSync::new(8);
        let mut rng = Rng(7);
        run(&mut sync, &mut rng, 1_000_000, 2_000, 2_000, 8);
        run(&mut sync, &mut rng, 2_000_000, 2_000, 2_000, 8); // the relay clock stepped
        assert_eq!(sync.len(), 8);
        assert!((sync.offset_us().unwrap() - 2_000_000).abs() < 600);
        sync.add_sample(ClockSample {
            offset_us: 0,
            rtt_us: -1,
        });
        assert!((sync.offset_us().unwrap() - 2_000_000).abs() < 600);
        assert_eq!(sync.relay_now(u64::MAX), Some(u64::MAX));
    }
}
