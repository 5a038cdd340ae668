//! The stream timeline: FLV millisecond timestamps to one continuous, monotonic output
//! timeline shared by all tracks.
//!
//! FLV timestamps are 32-bit milliseconds: they wrap after 49.7 days, and in live streams
//! they jump (a publisher restarts from 0, an encoder skips ahead). The timeline unwraps the
//! 32-bit wrap silently, and turns any other jump larger than the tolerance into a
//! *discontinuity*: a new shift that lands the jumped sample right after the last one, so the
//! output never goes backwards and never has holes. Shifts are whole milliseconds, so a
//! sample's output time is its FLV time plus an integer: no rounding accumulates.

/// Why the timeline was re-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscontinuityReason {
    /// A timestamp earlier than the last one by more than the tolerance.
    Backward,
    /// A timestamp later than the last one by more than the maximum gap.
    Forward,
    /// Requested by the caller (a new epoch announced by the relay).
    Reset,
}

/// How large a jump is tolerated before the timeline is re-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineLimits {
    /// Backward steps up to this many ms are treated as jitter (the sample is clamped).
    pub max_backward_ms: i64,
    /// Forward gaps up to this many ms are kept as real gaps.
    pub max_forward_ms: i64,
}

impl Default for TimelineLimits {
    fn default() -> Self {
        TimelineLimits {
            max_backward_ms: 1_000,
            max_forward_ms: 10_000,
        }
    }
}

/// A re-based timeline: see the module doc.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    limits: TimelineLimits,
    /// Unwrapped value of the last timestamp seen (before the shift).
    last_unwrapped: Option<i64>,
    /// Added to unwrapped timestamps to get output milliseconds.
    shift: i64,
    /// Latest output end time (ms) over all tracks, where a re-based timeline continues.
    end_ms: i64,
    /// Set by [`Timeline::reset`]: the next timestamp starts a new base.
    rebase_pending: bool,
}

const WRAP: i64 = 1 << 32;

impl Timeline {
    pub fn new(limits: TimelineLimits) -> Self {
        Timeline {
            limits,
            ..Default::default()
        }
    }

    /// Maps an FLV timestamp to output milliseconds, reporting a discontinuity when the
    /// timeline had to be re-based for it.
    pub fn map(&mut self, ts: u32) -> (i64, Option<DiscontinuityReason>) {
        let ts = ts as i64;
        let Some(last) = self.last_unwrapped else {
            self.last_unwrapped = Some(ts);
            self.rebase_pending = false;
            return (ts + self.shift, None);
        };
        // Choose the unwrapped value nearest to the last one: handles the 2^32 wrap both ways
        // (a late sample from before the wrap as well as the first after it).
        let base = last - last.rem_euclid(WRAP);
        let unwrapped = [base - WRAP + ts, base + ts, base + WRAP + ts]
            .into_iter()
            .min_by_key(|c| (c - last).abs())
            .unwrap_or(base + ts);
        let step = unwrapped - last;
        let reason = if self.rebase_pending {
            Some(DiscontinuityReason::Reset)
        } else if step < -self.limits.max_backward_ms {
            Some(DiscontinuityReason::Backward)
        } else if step > self.limits.max_forward_ms {
            Some(DiscontinuityReason::Forward)
        } else {
            None
        };
        if reason.is_some() {
            self.shift = self.end_ms - unwrapped;
            self.rebase_pending = false;
        }
        // Keep the reference monotonic so interleaved tracks (whose timestamps are not in
        // order with each other) do not drag it back and forth.
        if unwrapped > last || reason.is_some() {
            self.last_unwrapped = Some(unwrapped);
        }
        (unwrapped + self.shift, reason)
    }

    /// Records that a track's output reaches `end_ms`: a re-based timeline continues there.
    pub fn extend_to(&mut self, end_ms: i64) {
        self.end_ms = self.end_ms.max(end_ms);
    }

    /// The next timestamp starts a new base (it will map to the current end).
    pub fn reset(&mut self) {
        if self.last_unwrapped.is_some() {
            self.rebase_pending = true;
        }
    }

    /// Output milliseconds minus FLV milliseconds for the current base.
    pub fn shift_ms(&self) -> i64 {
        self.shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_stream_is_unchanged() {
        let mut t = Timeline::default();
        for ts in [5000u32, 5033, 5020, 5066] {
            assert_eq!(t.map(ts), (ts as i64, None));
        }
    }

    #[test]
    fn the_32_bit_wrap_is_not_a_discontinuity() {
        let mut t = Timeline::default();
        let near = u32::MAX - 20;
        assert_eq!(t.map(near), (near as i64, None));
        assert_eq!(t.map(12), (WRAP + 12, None));
        // A late sample from before the wrap still maps before it.
        assert_eq!(t.map(u32::MAX - 5), ((u32::MAX - 5) as i64, None));
        assert_eq!(t.map(45), (WRAP + 45, None));
    }

    #[test]
    fn publisher_restart_continues_after_the_end() {
        let mut t = Timeline::default();
        t.map(60_000);
        t.extend_to(60_033);
        let (ms, reason) = t.map(0);
        assert_eq!(reason, Some(DiscontinuityReason::Backward));
        assert_eq!(ms, 60_033);
        assert_eq!(t.map(33), (60_066, None));
    }

    #[test]
    fn large_forward_jump_is_closed_up() {
        let mut t = Timeline::default();
        t.map(1000);
        t.extend_to(1033);
        let (ms, reason) = t.map(1_000_000);
        assert_eq!(reason, Some(DiscontinuityReason::Forward));
        assert_eq!(ms, 1033);
    }

    #[test]
    fn reset_rebases_the_next_timestamp() {
        let mut t = Timeline::default();
        t.map(100);
        t.extend_to(140);
        t.reset();
        assert_eq!(t.map(110), (140, Some(DiscontinuityReason::Reset)));
    }
}
