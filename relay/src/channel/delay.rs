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
//! - D = the largest healthy requirement, at least [`MIN_MS`], rounded up to [`STEP_MS`] —
//!   or, when viewers report where the frames fall on their display's refresh grid (Feedback
//!   1.4, WebCodecs viewers), raised to the first whole ms at which the frames are due clear of
//!   the middle between two refreshes for as many of them as can be ([`aligned`]): a frame due
//!   there lands on either refresh, and viewers whose clocks differ by a millisecond pick
//!   different ones — one refresh of skew between viewers of one display;
//! - D rises once a higher requirement has held for [`RAISE_AFTER`] (one bad second of a
//!   busy viewer does not move everyone); it falls only after the lower value has held for
//!   [`LOWER_AFTER`] (a viewer that briefly recovered does not cause a seesaw).

use std::time::{Duration, Instant};

use lockstep_media::wire::RefreshPhase;

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
/// How far from the middle between two refreshes a frame must be due, µs (at most a quarter
/// of the period): what a viewer's clock error, the source's whole-ms timestamps (±0.3 ms at
/// 30 fps) and the phase's age may move it by without changing the refresh it lands on.
pub const CLEAR_OF_MIDDLE_US: u32 = 3_000;
/// Refresh periods taken from viewers, µs (500 Hz to 20 Hz); others are ignored (they would
/// also make the search for an aligned D as long as they are).
pub const PLAUSIBLE_PERIOD_US: std::ops::RangeInclusive<u32> = 2_000..=50_000;

/// One viewer's say in D, from its fresh feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// The lowest latency it can hold, ms.
    pub target_ms: u32,
    /// Where the frames fall on its display's refresh grid, if it knows.
    pub refresh: Option<RefreshPhase>,
}

/// Whether frames due `delay_ms` after ingest are clear of the middle between two refreshes
/// of the display `r`.
fn is_clear(r: &RefreshPhase, delay_ms: u32) -> bool {
    let half = i64::from(r.period_us / 2);
    let margin = i64::from(CLEAR_OF_MIDDLE_US.min(r.period_us / 4));
    r.due_from_nearest_us(u64::from(delay_ms) * 1000).abs() <= half - margin
}

/// How many of the `grids` frames due `delay_ms` after ingest are clear on.
fn clear_count(grids: &[RefreshPhase], delay_ms: u32) -> usize {
    grids.iter().filter(|r| is_clear(r, delay_ms)).count()
}

/// The least D ≥ `need` (whole ms, within one longest period above it) at which the frames
/// are due clear of the middle between refreshes on the most of the displays `grids`; `None`
/// without grids.
pub fn aligned(need: u32, grids: &[RefreshPhase]) -> Option<u32> {
    let longest_ms = grids.iter().map(|r| r.period_us.div_ceil(1000)).max()?;
    let mut best = (0, need);
    for d in need..=need.saturating_add(longest_ms) {
        let n = clear_count(grids, d);
        if n > best.0 {
            best = (n, d);
        }
        if n == grids.len() {
            break;
        }
    }
    Some(best.1)
}

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
    pub fn choose(
        &mut self,
        current: u32,
        requirements: &[Requirement],
        now: Instant,
    ) -> Option<u32> {
        let healthy = || {
            requirements
                .iter()
                .filter(|r| r.target_ms > 0 && r.target_ms <= MAX_AUTO_MS)
        };
        let need = healthy().map(|r| r.target_ms).max()?.max(MIN_MS);
        let grids: Vec<RefreshPhase> = healthy()
            .filter_map(|r| r.refresh)
            .filter(|g| PLAUSIBLE_PERIOD_US.contains(&g.period_us))
            .collect();
        let mut wanted = match aligned(need, &grids) {
            Some(d) => d,
            None => need.div_ceil(STEP_MS) * STEP_MS,
        };
        if current == 0 {
            return Some(wanted);
        }
        let (clear_now, clear_wanted) = (clear_count(&grids, current), clear_count(&grids, wanted));
        // A current D that is enough, clear on as many displays and less than a step above
        // what is wanted stays: no change for a millisecond.
        if !grids.is_empty()
            && (need..wanted + STEP_MS).contains(&current)
            && clear_now >= clear_wanted
        {
            wanted = current;
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
        // Lower: after a lower requirement held a while, or, when the current D has frames
        // due near the middle between refreshes where the lower one does not, as soon as a
        // rise would be made.
        let hold = if clear_now < clear_wanted {
            RAISE_AFTER
        } else {
            LOWER_AFTER
        };
        let since = *self.lower_since.get_or_insert(now);
        if now.duration_since(since) >= hold {
            self.lower_since = None;
            return Some(wanted);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Viewers needing `targets`, all with the refresh grid `refresh`.
    fn with_grid(targets: &[u32], refresh: Option<RefreshPhase>) -> Vec<Requirement> {
        targets
            .iter()
            .map(|&target_ms| Requirement { target_ms, refresh })
            .collect()
    }

    /// Requirements without refresh grids (MSE viewers, 1.1–1.3 players).
    fn reqs(targets: &[u32]) -> Vec<Requirement> {
        with_grid(targets, None)
    }

    #[test]
    fn rises_after_holding_and_falls_after_holding_longer() {
        let t0 = Instant::now();
        let mut a = AutoDelay::default();
        assert_eq!(a.choose(0, &reqs(&[87, 120, 101]), t0), Some(120));
        assert_eq!(a.choose(120, &reqs(&[87, 131]), t0), None);
        assert_eq!(
            a.choose(120, &reqs(&[87, 131]), t0 + Duration::from_secs(1)),
            None
        );
        // A one-second spike is forgotten...
        assert_eq!(
            a.choose(120, &reqs(&[90]), t0 + Duration::from_millis(1500)),
            None
        );
        assert_eq!(
            a.choose(120, &reqs(&[131]), t0 + Duration::from_secs(2)),
            None
        );
        // ...a requirement that holds is not.
        assert_eq!(
            a.choose(120, &reqs(&[131]), t0 + Duration::from_secs(4)),
            Some(135)
        );
        assert_eq!(a.choose(135, &reqs(&[90, 96]), t0), None);
        assert_eq!(
            a.choose(135, &reqs(&[90, 96]), t0 + Duration::from_secs(5)),
            None
        );
        assert_eq!(
            a.choose(135, &reqs(&[90, 96]), t0 + Duration::from_secs(10)),
            Some(100)
        );
    }

    #[test]
    fn a_brief_recovery_does_not_lower_it() {
        let t0 = Instant::now();
        let mut a = AutoDelay::default();
        assert_eq!(a.choose(200, &reqs(&[100]), t0), None);
        assert_eq!(
            a.choose(200, &reqs(&[200]), t0 + Duration::from_secs(6)),
            None
        );
        assert_eq!(
            a.choose(200, &reqs(&[100]), t0 + Duration::from_secs(12)),
            None
        );
    }

    #[test]
    fn hopeless_viewers_and_no_viewers_do_not_move_it() {
        let t0 = Instant::now();
        let mut a = AutoDelay::default();
        assert_eq!(a.choose(120, &reqs(&[5000]), t0), None);
        assert_eq!(a.choose(120, &reqs(&[]), t0), None);
        assert_eq!(a.choose(0, &reqs(&[12]), t0), Some(MIN_MS));
    }

    /// Viewers of one 60 Hz display at whose refreshes ingest times fall `phase_us` after.
    fn one_display(targets: &[u32], phase_us: u32) -> Vec<Requirement> {
        with_grid(targets, RefreshPhase::new(16_667, phase_us))
    }

    #[test]
    fn d_is_put_clear_of_the_middle_between_refreshes() {
        let t0 = Instant::now();
        let mut a = AutoDelay::default();
        // At D = 180 the frames are due (2 + 180) mod 16.667 = 15.3 ms after a refresh,
        // 1.3 ms before the next one: clear. At 174 they are due 9.3 ms after one, 1 ms past
        // the middle; the first D that is 3 ms clear of it is 177 (4.3 ms before the next).
        assert_eq!(a.choose(0, &one_display(&[180, 60], 2_000), t0), Some(180));
        assert_eq!(a.choose(0, &one_display(&[174, 60], 2_000), t0), Some(177));
        // Without a grid: the old rounding to 5 ms.
        assert_eq!(a.choose(0, &reqs(&[174, 60]), t0), Some(175));
        let r = RefreshPhase::new(16_667, 2_000).unwrap();
        assert!(!is_clear(&r, 174) && !is_clear(&r, 176) && is_clear(&r, 177));
    }

    #[test]
    fn the_most_displays_win() {
        let grids = |v: &[Requirement]| v.iter().filter_map(|r| r.refresh).collect::<Vec<_>>();
        // Two displays half a period apart: their clear spans overlap (each is 64 % of the
        // period), at 104.
        let mut two = one_display(&[100, 100, 100], 0);
        two.extend(one_display(&[100], 8_333));
        assert_eq!(aligned(100, &grids(&two)), Some(104));
        // Three a third apart cannot all be clear: the one with three viewers and one other.
        let mut three = one_display(&[100, 100, 100], 0);
        three.extend(one_display(&[100], 5_556));
        three.extend(one_display(&[100], 11_111));
        let g = grids(&three);
        let d = aligned(100, &g).unwrap();
        assert!((100..=117).contains(&d), "{d}");
        assert_eq!(clear_count(&g, d), 4, "{d}");
        assert!(is_clear(&g[0], d));
        assert!((100..d).all(|e| clear_count(&g, e) < 4));
    }

    #[test]
    fn a_d_gone_unclear_moves_soon_and_odd_periods_are_ignored() {
        let t0 = Instant::now();
        let mut a = AutoDelay::default();
        // 176 is enough for 170 but 3 ms from the middle less 4 µs; 170 itself is clear (due
        // 5.3 ms after a refresh): D moves after 2 s, not 10.
        let r = RefreshPhase::new(16_667, 2_000).unwrap();
        assert!(!is_clear(&r, 176) && is_clear(&r, 170));
        assert_eq!(a.choose(176, &one_display(&[170], 2_000), t0), None);
        assert_eq!(
            a.choose(176, &one_display(&[170], 2_000), t0 + RAISE_AFTER),
            Some(170)
        );
        // A period of an hour is not a display: the 5 ms rounding, and no hour-long search.
        let odd = [Requirement {
            target_ms: 171,
            refresh: RefreshPhase::new(3_600_000_000, 5),
        }];
        assert_eq!(AutoDelay::default().choose(0, &odd, t0), Some(175));
    }

    #[test]
    fn a_clear_d_stays_and_a_rise_is_clear() {
        let t0 = Instant::now();
        let mut a = AutoDelay::default();
        // Current 181 is enough and clear; the least clear D is 178: no change for 3 ms.
        assert_eq!(a.choose(181, &one_display(&[178], 2_000), t0), None);
        assert_eq!(
            a.choose(181, &one_display(&[178], 2_000), t0 + LOWER_AFTER),
            None
        );
        // A requirement over D raises it, to a clear value: 190 and 192 are not, 193 is.
        assert_eq!(a.choose(181, &one_display(&[190], 2_000), t0), None);
        assert_eq!(
            a.choose(181, &one_display(&[190], 2_000), t0 + RAISE_AFTER),
            Some(193)
        );
    }
}
