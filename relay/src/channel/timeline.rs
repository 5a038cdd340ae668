//! The channel's timeline: the relay-clock time that a media timestamp stands for, sent to
//! viewers in Timeline messages (docs/PROTOCOL.md) and the reference of the shared delay D.
//!
//! A frame's own arrival time is a noisy reference: a keyframe takes longer to encode and to
//! send than the frames after it, so anchoring the timeline on each keyframe's arrival put it
//! a few milliseconds (more under load) later than the frames it governs, and every player's
//! idea of "how late is this frame" was off by that much, differently for each GOP. The
//! [`ArrivalLine`] is instead the stream's *earliest-arrival line*: over the last
//! [`WINDOW_US`] of frames, the least `arrival − timestamp`, so that a timestamp maps to the
//! time its frame would have arrived with the least delay recently seen. Every frame then
//! arrives at or after its mapped time, which also makes `arrival − mapped time` a one-way
//! delay that only ever errs upward (what the players' clock sync relies on). The window
//! follows drift between the publisher's clock and the relay's.

use std::collections::VecDeque;

/// How far back the minimum looks, µs of relay time.
pub const WINDOW_US: u64 = 3_000_000;

/// A sliding-window minimum of `arrival − timestamp`.
#[derive(Debug, Default, Clone)]
pub struct ArrivalLine {
    /// (arrival µs, arrival − timestamp µs), offsets increasing from front to back: the
    /// front is the window's minimum.
    window: VecDeque<(u64, i64)>,
    last_ts: Option<u32>,
}

impl ArrivalLine {
    /// A frame with timestamp `ts_ms` arrived at relay time `arrival_us`; returns the line's
    /// time for `ts_ms` (never later than `arrival_us`).
    pub fn observe(&mut self, ts_ms: u32, arrival_us: u64) -> u64 {
        // Timestamps that go back (a 32-bit wrap, a publisher's jump) start a new line.
        if self.last_ts.is_some_and(|last| ts_ms < last) {
            self.window.clear();
        }
        self.last_ts = Some(ts_ms);
        let ts_us = i64::from(ts_ms) * 1000;
        let offset = arrival_us as i64 - ts_us;
        while self.window.back().is_some_and(|&(_, o)| o >= offset) {
            self.window.pop_back();
        }
        self.window.push_back((arrival_us, offset));
        let from = arrival_us.saturating_sub(WINDOW_US);
        while self.window.front().is_some_and(|&(t, _)| t < from) {
            self.window.pop_front();
        }
        let min = self.window.front().map_or(offset, |&(_, o)| o);
        (ts_us + min).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_keyframes_do_not_move_the_line() {
        let mut line = ArrivalLine::default();
        let base = 1_000_000_000u64;
        for k in 0..90u32 {
            let ts = k * 33;
            // Keyframes (every 30th) arrive 12 ms after their timestamp, others 3 ms.
            let extra = if k % 30 == 0 { 12_000 } else { 3_000 };
            let arrival = base + u64::from(ts) * 1000 + extra;
            let mapped = line.observe(ts, arrival);
            assert!(mapped <= arrival);
            if k >= 30 {
                assert_eq!(mapped, base + u64::from(ts) * 1000 + 3_000, "frame {k}");
            }
        }
    }

    #[test]
    fn follows_a_slower_path_after_the_window() {
        let mut line = ArrivalLine::default();
        let base = 5_000_000_000u64;
        let mut mapped = 0;
        for k in 0..300u32 {
            let ts = k * 33;
            // The path gets 20 ms slower after 2 s.
            let delay = if k < 60 { 2_000 } else { 22_000 };
            mapped = line.observe(ts, base + u64::from(ts) * 1000 + delay);
        }
        assert_eq!(mapped, base + 299 * 33 * 1000 + 22_000);
    }

    #[test]
    fn timestamps_going_back_restart_it() {
        let mut line = ArrivalLine::default();
        line.observe(10_000, 1_000_000_000);
        assert_eq!(line.observe(0, 1_000_020_000), 1_000_020_000);
    }
}
