//! Clock synchronisation between player and relay, NTP-style (RFC 5905 section 8), from
//! [`Ping`](super::Ping) / [`Pong`](super::Pong) exchanges, helped by the media itself.
//!
//! The player stamps `t0` (its clock) into a Ping; the relay stamps `t1` on receipt and `t2`
//! on sending the Pong; the player stamps `t3` on receipt. With θ = relay clock − player clock
//! and `d↑`, `d↓` the one-way delays,
//!
//! ```text
//! up   = t1 - t0 = d↑ + θ          down = t3 - t2 = d↓ - θ
//! offset = (up - down) / 2         rtt = up + down
//! ```
//!
//! One exchange's offset is wrong by half the difference between its two one-way delays.
//! Queueing only adds delay, so each direction's *smallest* delay over a window is the
//! closest to its propagation delay: [`ClockSync`] takes the minimum of `up` and the minimum
//! of `down` separately (the per-direction minimum filter), which beats the single
//! lowest-RTT exchange whenever the two directions queue at different times, and it takes
//! more `down` samples from the media: the relay forwards each frame as it arrives, and its
//! timeline maps a timestamp to the earliest time that frame could have arrived (never later
//! than it did: relay/src/channel/timeline.rs), so a frame's `arrival − mapped time` is one
//! more `down` sample that can only overstate the delay ([`ClockSync::add_one_way`]): thirty
//! a second instead of one Pong every two seconds. That matters on a path where the media
//! queues: a Pong waits behind video in the same queue, and among thousands of frames a few
//! find it nearly empty.
//!
//! What no two-way method can see is a *constant* difference between the directions (a path
//! 50 ms slower one way than the other): the estimate is then off by half of it. Pure
//! arithmetic; the caller reads its own clock.

use std::collections::VecDeque;

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

impl ClockSample {
    /// `t1 − t0`: the up delay plus the offset, µs.
    fn up_us(&self) -> i64 {
        self.offset_us.saturating_add(self.rtt_us / 2)
    }

    /// `t3 − t2`: the down delay less the offset, µs.
    fn down_us(&self) -> i64 {
        (self.rtt_us / 2).saturating_sub(self.offset_us)
    }
}

/// How long one-way samples count, µs of the player's clock (about the exchange window).
pub const ONE_WAY_WINDOW_US: u64 = 30_000_000;

/// A windowed clock-offset estimator: per-direction minimum delays over the last `window`
/// exchanges and [`ONE_WAY_WINDOW_US`] of one-way samples (see the module documentation).
#[derive(Debug, Clone)]
pub struct ClockSync {
    window: usize,
    samples: Vec<ClockSample>,
    /// One-way `down` samples (player time, `arrival − sent`), a monotonic deque: values
    /// increase from front to back, so the front is the window's minimum.
    one_way: VecDeque<(u64, i64)>,
    /// (offset, min rtt), recomputed on each sample.
    estimate: Option<(i64, i64)>,
    /// The minima behind the estimate: (`up`, `down`), µs.
    minima: Option<(i64, i64)>,
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
            one_way: VecDeque::new(),
            estimate: None,
            minima: None,
        }
    }

    /// A message sent by the relay at relay time `sent_us` (or later) arrived at player time
    /// `local_us`: a `down` sample. Its value only ever overstates the delay, which the
    /// minimum ignores.
    pub fn add_one_way(&mut self, local_us: u64, sent_us: u64) {
        let v =
            (local_us as i128 - sent_us as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        while self.one_way.back().is_some_and(|&(_, b)| b >= v) {
            self.one_way.pop_back();
        }
        self.one_way.push_back((local_us, v));
        self.evict(local_us);
        self.update();
    }

    /// Drops one-way samples older than the window before `now_us`.
    fn evict(&mut self, now_us: u64) {
        let from = now_us.saturating_sub(ONE_WAY_WINDOW_US);
        while self.one_way.front().is_some_and(|&(t, _)| t < from) {
            self.one_way.pop_front();
        }
    }

    fn update(&mut self) {
        let Some(min_rtt) = self.samples.iter().map(|s| s.rtt_us).min() else {
            return;
        };
        let up = self
            .samples
            .iter()
            .map(ClockSample::up_us)
            .min()
            .unwrap_or(0);
        let down = self
            .samples
            .iter()
            .map(ClockSample::down_us)
            .chain(self.one_way.front().map(|&(_, v)| v))
            .min()
            .unwrap_or(0)
            // Both delays are ≥ 0, so θ ≤ up: a `down` below −up is a bad stamp.
            .max(up.saturating_neg());
        let offset = ((up as i128 - down as i128) / 2) as i64;
        self.estimate = Some((offset, min_rtt));
        self.minima = Some((up, down));
    }

    /// Add an exchange, dropping the oldest beyond the window. A sample with a negative RTT
    /// (a clock stepped during the exchange) is ignored.
    pub fn add_sample(&mut self, sample: ClockSample) {
        if sample.rtt_us < 0 {
            return;
        }
        if self.samples.len() >= self.window {
            self.samples.remove(0);
        }
        self.samples.push(sample);
        self.update();
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

    /// The per-direction minima behind the offset, (`t1 − t0`, `t3 − t2` or one-way), µs:
    /// with clocks that agree, the least up and down delays seen.
    pub fn minima_us(&self) -> Option<(i64, i64)> {
        self.minima
    }

    /// The lowest RTT in the window, µs.
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

    /// A jittery path on which the media queues: every message down (media at ~77 a second,
    /// Pongs among them) is held 50–150 ms but never overtakes the one before, so the dense
    /// down direction nearly always waits for a slow one; the sparse Pings up just take
    /// their own 50–150 ms. The lowest-RTT exchange then has a down delay far above its up
    /// delay; per-direction minima over the media get within a few ms.
    #[test]
    fn media_samples_remove_the_queueing_asymmetry() {
        let truth = 250_000i64; // relay 0.25 s ahead
        let mut rng = Rng(0xDEAD_BEEF);
        let mut u = |lo: u64, hi: u64| lo + rng.below(hi - lo);
        let mut with_media = ClockSync::default();
        let mut exchanges_only = ClockSync::default();
        // NTP's classic clock filter: the offset of the lowest-RTT exchange.
        let mut lowest_rtt: Option<ClockSample> = None;
        let relay = |local: u64| local.saturating_add_signed(truth);
        let (mut local, mut released) = (10_000_000u64, 0u64);
        let mut next_ping = local;
        for _ in 0..(30 * 77) {
            local += 13_000;
            // A frame sent now by the relay, released in order.
            let at = (local + u(50_000, 150_000)).max(released);
            released = at;
            with_media.add_one_way(at, relay(local));
            if local >= next_ping {
                next_ping += 2_000_000;
                // A Ping sent now; its Pong leaves the relay on arrival and queues down.
                let t0 = local;
                let t1 = relay(t0 + u(50_000, 150_000));
                let pong_sent = t0 + (t1 - relay(t0));
                let t3 = (pong_sent + u(50_000, 150_000)).max(released);
                released = t3;
                let s = ClockSample::from_ping(t0, t1, t1, t3);
                with_media.add_sample(s);
                exchanges_only.add_sample(s);
                if lowest_rtt.is_none_or(|b| s.rtt_us < b.rtt_us) {
                    lowest_rtt = Some(s);
                }
            }
        }
        let err = |s: &ClockSync| s.offset_us().unwrap() - truth;
        let classic = lowest_rtt.unwrap().offset_us - truth;
        for e in [err(&with_media), err(&exchanges_only)] {
            assert!(e.abs() < classic.abs(), "{e} µs vs lowest-RTT {classic} µs");
        }
        assert!(
            err(&with_media).abs() < 8_000,
            "with media: {} µs",
            err(&with_media)
        );
    }

    #[test]
    fn one_way_samples_are_bounded_and_expire() {
        let mut sync = ClockSync::default();
        sync.add_one_way(5_000, 3_000); // before any exchange: no estimate yet
        assert_eq!(sync.offset_us(), None);
        // 1 ms each way, offset 0.
        sync.add_sample(ClockSample::from_ping(10_000, 11_000, 11_000, 12_000));
        assert_eq!(sync.offset_us(), Some(0));
        // A stamp that would make the down delay negative beyond the up one is clamped:
        // the offset never exceeds the smallest `up` (1 ms).
        sync.add_one_way(20_000, 500_000);
        assert_eq!(sync.offset_us(), Some(1_000));
        // Once it leaves the window, the exchanges decide again.
        sync.add_one_way(20_001 + ONE_WAY_WINDOW_US, 15_000 + ONE_WAY_WINDOW_US);
        assert_eq!(sync.offset_us(), Some(0));
    }
}
