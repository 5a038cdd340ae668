//! The channel's shared playout delay D: every viewer presents the frame ingested at relay
//! time T at T + D on its synced clock, so all of them show the same frame together.
//!
//! D is fixed when configured (`--delay-ms`); otherwise the relay chooses it from what its
//! viewers report they can hold (Feedback `target_ms`: arrival p95 plus presentation needs,
//! and jitter/stall allowances), so that every healthy viewer keeps up:
//!
//! - healthy viewers are those that reported within [`FRESH`] and can hold at most
//!   [`MAX_AUTO_MS`]; a viewer needing more plays as close as it can and reports its sync
//!   error (one bad path must not drag everyone seconds behind);
//! - D = the largest healthy requirement, rounded up to [`STEP_MS`], at least [`MIN_MS`];
//! - D rises once a higher requirement has held for [`RAISE_AFTER`] (one bad second of a
//!   busy viewer does not move everyone); it falls only after the lower value has held for
//!   [`LOWER_AFTER`] (a viewer that briefly recovered does not cause a seesaw).

use std::time::{Duration, Instant};

/// Feedback older than this is ignored.
pub const FRESH: Duration = Duration::from_secs(3);
/// Requirements above this do not raise D.
pub const MAX_AUTO_MS: u32 = 1500;
/// D never goes below this.
pub const MIN_MS: u32 = 20;
/// D is a multiple of this.
pub const STEP_MS: u32 = 5;
/// How long a lower requirement must hold before D falls.
pub const LOWER_AFTER: Duration = Duration::from_secs(10);
/// How long a higher requirement must hold before D rises (except from unset).
pub const RAISE_AFTER: Duration = Duration::from_secs(2);

/// The automatic delay chooser of one channel.
#[derive(Debug, Default)]
pub struct AutoDelay {
    /// Since when the requirement has been below the current D.
    lower_since: Option<Instant>,
    /// Since when the requirement has been above the current D.
    higher_since: Option<Instant>,
}

impl AutoDelay {
    /// The delay to announce, given the current one and the viewers' fresh requirements;
    /// `None` to keep the current one.
    pub fn choose(&mut self, current: u32, requirements: &[u32], now: Instant) -> Option<u32> {
        let need = requirements
            .iter()
            .copied()
            .filter(|&r| r > 0 && r <= MAX_AUTO_MS)
            .max()?;
        let wanted = need.max(MIN_MS).div_ceil(STEP_MS) * STEP_MS;
        if current == 0 {
            return Some(wanted);
        }
        if wanted > current {
            self.lower_since = None;
            let since = *self.higher_since.get_or_insert(now);
            if now.duration_since(since) >= RAISE_AFTER {
                self.higher_since = None;
                return Some(wanted);
            }
            return None;
        }
        self.higher_since = None;
        if wanted == current {
            self.lower_since = None;
            return None;
        }
        let since = *self.lower_since.get_or_insert(now);
        if now.duration_since(since) >= LOWER_AFTER {
            self.lower_since = None;
            return Some(wanted);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rises_after_holding_and_falls_after_holding_longer() {
        let t0 = Instant::now();
        let mut a = AutoDelay::default();
        assert_eq!(a.choose(0, &[87, 120, 101], t0), Some(120));
        assert_eq!(a.choose(120, &[87, 131], t0), None);
        assert_eq!(a.choose(120, &[87, 131], t0 + Duration::from_secs(1)), None);
        // A one-second spike is forgotten...
        assert_eq!(a.choose(120, &[90], t0 + Duration::from_millis(1500)), None);
        assert_eq!(a.choose(120, &[131], t0 + Duration::from_secs(2)), None);
        // ...a requirement that holds is not.
        assert_eq!(
            a.choose(120, &[131], t0 + Duration::from_secs(4)),
            Some(135)
        );
        assert_eq!(a.choose(135, &[90, 96], t0), None);
        assert_eq!(a.choose(135, &[90, 96], t0 + Duration::from_secs(5)), None);
        assert_eq!(
            a.choose(135, &[90, 96], t0 + Duration::from_secs(10)),
            Some(100)
        );
    }

    #[test]
    fn a_brief_recovery_does_not_lower_it() {
        let t0 = Instant::now();
        let mut a = AutoDelay::default();
        assert_eq!(a.choose(200, &[100], t0), None);
        assert_eq!(a.choose(200, &[200], t0 + Duration::from_secs(6)), None);
        assert_eq!(a.choose(200, &[100], t0 + Duration::from_secs(12)), None);
    }

    #[test]
    fn hopeless_viewers_and_no_viewers_do_not_move_it() {
        let t0 = Instant::now();
        let mut a = AutoDelay::default();
        assert_eq!(a.choose(120, &[5000], t0), None);
        assert_eq!(a.choose(120, &[], t0), None);
        assert_eq!(a.choose(0, &[12], t0), Some(MIN_MS));
    }
}
