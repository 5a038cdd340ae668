//! Refresh-aligned presentation for the WebCodecs path: which display refresh a video frame
//! is for, and when to write it to the `MediaStreamTrackGenerator` so that it makes that
//! refresh.
//!
//! A frame is due on the glass at ingest + D (on the synced clock). The display only changes
//! at refreshes, so the best it can do is the refresh nearest that instant. Viewers on one
//! display then pick the same refresh for the same frame, which a fixed write-ahead (the
//! median write → display time, [`super::display_delay`]) does not: it lands a frame on
//! whichever refresh follows its write, one refresh apart between viewers whose estimates
//! differ by a few ms.
//!
//! What Chromium does with a written frame (measured: docs/WEBCODECS.md, "Frame-exact
//! presentation"): a frame written at `w` shows `depth` refreshes after the first refresh at
//! or after `w`, `next_refresh(w) + depth·P` (P the refresh period). The depth is one on a
//! quiet page; it is learnt from the frame callbacks (the median of the recent frames'). To
//! show on refresh `V` a frame must be written in `(V − (depth+1)·P, V − depth·P]`; we write
//! at `V − depth·P − margin`, as late as is safe. The margin covers the timer's lateness and
//! starts at [`START_MARGIN_MS`]; each frame written too late for its refresh raises it by
//! [`MISS_STEP_MS`], and [`HITS_TO_LOWER`] frames in a row that were not lower it by
//! [`LOWER_STEP_MS`]. On a busy page the depth itself wavers between frames (0 or 1 refresh
//! here, as the compositor runs late or on time); the median is the better bet, and the
//! frames on the other side land a refresh off.
//!
//! The grid: the period from `requestAnimationFrame` timestamps (the median of recent
//! intervals, so a skipped refresh does not count), the phase from the latest
//! `expectedDisplayTime` (a refresh instant). Pure arithmetic on performance.now() ms; no
//! `web-sys`.

use std::collections::VecDeque;

use super::frame_callback::{has_estimate, shown_write};
use super::quantile::nearest_rank;

/// rAF intervals kept for the period.
const INTERVALS: usize = 31;
/// rAF intervals outside this range (ms) are not one refresh (a stall, or a 500 Hz panel).
const PLAUSIBLE_PERIOD_MS: std::ops::RangeInclusive<f64> = 2.0..=50.0;
/// The anchor is trusted for this long (ms) after it was seen; then the grid is unknown.
const ANCHOR_MAX_AGE_MS: f64 = 2000.0;
/// Starting write margin before the write deadline, ms.
pub const START_MARGIN_MS: f64 = 2.0;
/// A frame written too late for its refresh raises the margin by this much, ms.
pub const MISS_STEP_MS: f64 = 1.0;
/// Frames in a row written in time before the margin is lowered.
pub const HITS_TO_LOWER: u32 = 150;
/// How much a run of hits lowers the margin, ms.
pub const LOWER_STEP_MS: f64 = 0.25;
/// The margin's range, ms.
const MARGIN_RANGE_MS: std::ops::RangeInclusive<f64> = 0.5..=12.0;
/// Writes awaiting their frame callback.
const PENDING: usize = 16;
/// Depth samples kept (frames).
const DEPTHS: usize = 31;
/// The depth before any is measured, and its most (refreshes).
const START_DEPTH: u32 = 1;
const MAX_DEPTH: u32 = 4;

/// A write whose refresh is not yet known.
#[derive(Debug, Clone, Copy)]
struct Pending {
    written_at: f64,
    /// The frame's media time, ms.
    pts: f64,
    target: f64,
    /// The depth it was planned with.
    depth: u32,
    /// Decoded in time for its write time (else landing late says nothing of the margin).
    ready: bool,
}

/// The display's refresh grid and the write margin that makes a target refresh.
#[derive(Debug, Clone)]
pub struct RefreshClock {
    last_frame: Option<f64>,
    intervals: VecDeque<f64>,
    period: Option<f64>,
    /// A refresh instant and when it was learnt (both performance.now() ms).
    anchor: Option<(f64, f64)>,
    margin_ms: f64,
    hits: u32,
    misses: u64,
    pending: VecDeque<Pending>,
    depths: VecDeque<u32>,
    depth: u32,
}

impl Default for RefreshClock {
    fn default() -> Self {
        Self {
            last_frame: None,
            intervals: VecDeque::new(),
            period: None,
            anchor: None,
            margin_ms: START_MARGIN_MS,
            hits: 0,
            misses: 0,
            pending: VecDeque::new(),
            depths: VecDeque::new(),
            depth: START_DEPTH,
        }
    }
}

impl RefreshClock {
    /// A `requestAnimationFrame` callback with timestamp `t`.
    pub fn on_animation_frame(&mut self, t: f64) {
        if !t.is_finite() {
            return;
        }
        if let Some(last) = self.last_frame {
            let d = t - last;
            if PLAUSIBLE_PERIOD_MS.contains(&d) {
                if self.intervals.len() >= INTERVALS {
                    self.intervals.pop_front();
                }
                self.intervals.push_back(d);
                let mut v: Vec<f64> = self.intervals.iter().copied().collect();
                self.period = nearest_rank(&mut v, 0.5);
            }
        }
        self.last_frame = Some(t);
    }

    /// A frame callback: the frame at media time `media_ms` (when the browser says), set for
    /// composition at `presented`, is expected on the glass at `expected` (a refresh
    /// instant), learnt at `now`. A callback without a display estimate (`expected` not
    /// after `presented`) says nothing about the grid.
    pub fn on_displayed(&mut self, presented: f64, expected: f64, media_ms: Option<f64>, now: f64) {
        if !now.is_finite() || !has_estimate(presented, expected) {
            return;
        }
        self.anchor = Some((expected, now));
        let Some(i) = shown_write(
            self.pending.iter().map(|p| (p.written_at, p.pts)),
            presented,
            media_ms,
        ) else {
            return;
        };
        let p = self.pending[i];
        self.pending.drain(..=i);
        let Some(period) = self.period else { return };
        // Refreshes from the first one at or after the write to the display.
        let depth = (((expected - p.written_at) / period).floor().max(0.0) as u32).min(MAX_DEPTH);
        if self.depths.len() >= DEPTHS {
            self.depths.pop_front();
        }
        self.depths.push_back(depth);
        let mut v: Vec<f64> = self.depths.iter().map(|&d| d as f64).collect();
        self.depth = nearest_rank(&mut v, 0.5).map_or(START_DEPTH, |d| d as u32);
        let late = expected > p.target + period / 2.0;
        if late || expected < p.target - period / 2.0 {
            self.misses += 1;
        }
        if late && depth <= p.depth && p.ready {
            // Written after the deadline it was planned for: the margin was too small.
            self.hits = 0;
            self.margin_ms = (self.margin_ms + MISS_STEP_MS).min(*MARGIN_RANGE_MS.end());
        } else {
            // On its refresh, off it because the pipeline's depth changed (which the depth
            // learns), or late because the frame itself was: the margin held.
            self.hits += 1;
            if self.hits >= HITS_TO_LOWER {
                self.hits = 0;
                self.margin_ms = (self.margin_ms - LOWER_STEP_MS).max(*MARGIN_RANGE_MS.start());
            }
        }
    }

    /// The refresh period, ms, once measured.
    pub fn period_ms(&self) -> Option<f64> {
        self.period
    }

    /// The current write margin, ms.
    pub fn margin_ms(&self) -> f64 {
        self.margin_ms
    }

    /// Frames that landed off their refresh (late, or early when the pipeline got shallower).
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Refreshes from the first one after a write to the frame's display.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// The grid (period, a refresh instant) at `now`, if it is known and fresh.
    fn grid(&self, now: f64) -> Option<(f64, f64)> {
        let period = self.period?;
        let (at, learnt) = self.anchor?;
        (now - learnt <= ANCHOR_MAX_AGE_MS).then_some((period, at))
    }

    /// The refresh nearest `due`, and when to write a frame for it (both ms); `None` while
    /// the grid is unknown.
    pub fn plan(&self, due: f64, now: f64) -> Option<Plan> {
        let (period, at) = self.grid(now)?;
        let target = at + ((due - at) / period).round() * period;
        Some(Plan {
            target,
            write_at: target - self.depth as f64 * period - self.margin_ms,
            depth: self.depth,
        })
    }

    /// The grid's period and how long after a refresh the instant `t` falls (in `[0,
    /// period)`), ms; `None` while the grid is unknown. What the relay aligns D with.
    pub fn phase(&self, t: f64, now: f64) -> Option<(f64, f64)> {
        let (period, at) = self.grid(now)?;
        // Not `rem_euclid`: f64 `%` pulls `fmod` into the wasm (1.6 KB gzipped).
        let cycles = (t - at) / period;
        t.is_finite().then(|| {
            (
                period,
                ((cycles - cycles.floor()) * period).clamp(0.0, period),
            )
        })
    }

    /// The refresh a frame written at `now` is shown on, if the grid is known.
    pub fn landing(&self, now: f64) -> Option<f64> {
        let (period, at) = self.grid(now)?;
        // The first refresh at or after `now`, then `depth` more.
        Some(at + (((now - at) / period).ceil() + self.depth as f64) * period)
    }

    /// How long before its due time a frame must be decoded to be written for its refresh,
    /// ms: depth refreshes and the margin. That holds when the refresh nearest the due time is
    /// not before it; when it is (by up to half a refresh), a frame not decoded in time for it
    /// lands one refresh later. D does not pay half a refresh for every frame to spare those:
    /// most frames are decoded well before the p95 the floor allows for.
    pub fn lead_ms(&self) -> Option<f64> {
        self.period.map(|p| p * self.depth as f64 + self.margin_ms)
    }

    /// The frame at media time `pts` (ms) was written at `now` as planned by `plan`; `ready`:
    /// it was decoded before its planned write time.
    pub fn on_write(&mut self, now: f64, plan: Plan, pts: f64, ready: bool) {
        if self.pending.len() >= PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            written_at: now,
            pts,
            target: plan.target,
            depth: plan.depth,
            ready,
        });
    }

    /// Forgets the grid and pending writes (a new stream); keeps the margin learnt.
    pub fn reset(&mut self) {
        self.anchor = None;
        self.pending.clear();
    }
}

/// When to write a frame, and the refresh it is for (performance.now() ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub target: f64,
    pub write_at: f64,
    /// The pipeline depth it assumes (refreshes).
    pub depth: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: f64 = 1000.0 / 60.0;

    /// A display at 60 Hz whose refreshes are at `PHASE + k·P`, and Chromium's rule: a frame
    /// written at `w` shows one refresh after the next.
    const PHASE: f64 = 3.0;
    fn next_refresh(w: f64) -> f64 {
        PHASE + ((w - PHASE) / P).ceil() * P
    }

    fn learnt() -> RefreshClock {
        let mut r = RefreshClock::default();
        for k in 0..40 {
            r.on_animation_frame(PHASE + k as f64 * P - 4.0);
        }
        r.on_displayed(
            PHASE + 38.0 * P - 25.0,
            PHASE + 38.0 * P,
            None,
            PHASE + 39.0 * P,
        );
        r
    }

    #[test]
    fn period_is_the_median_interval() {
        let mut r = RefreshClock::default();
        assert_eq!(r.period_ms(), None);
        let mut t = 100.0;
        for k in 0..40 {
            // Every 7th refresh is skipped (the main thread was busy).
            t += if k % 7 == 0 { 2.0 * P } else { P };
            r.on_animation_frame(t);
        }
        assert!((r.period_ms().unwrap() - P).abs() < 1e-9);
        r.on_animation_frame(t + 5000.0); // a stall: ignored
        assert!((r.period_ms().unwrap() - P).abs() < 1e-9);
    }

    #[test]
    fn plans_the_nearest_refresh_and_writes_one_period_and_the_margin_before_it() {
        let r = learnt();
        let now = PHASE + 39.0 * P;
        let due = PHASE + 45.0 * P + 0.4 * P; // nearer to refresh 45
        let plan = r.plan(due, now).unwrap();
        assert!((plan.target - (PHASE + 45.0 * P)).abs() < 1e-6);
        assert!((plan.write_at - (plan.target - P - START_MARGIN_MS)).abs() < 1e-6);
        let due = PHASE + 45.0 * P + 0.6 * P; // nearer to refresh 46
        assert!((r.plan(due, now).unwrap().target - (PHASE + 46.0 * P)).abs() < 1e-6);
        // Written at its time, it shows on its refresh.
        assert!((next_refresh(plan.write_at) + P - plan.target).abs() < 1e-6);
        assert!((r.landing(plan.write_at).unwrap() - plan.target).abs() < 1e-6);
        assert!((r.lead_ms().unwrap() - (P + START_MARGIN_MS)).abs() < 1e-9);
    }

    #[test]
    fn no_plan_without_a_grid_or_with_a_stale_one() {
        let mut r = RefreshClock::default();
        assert_eq!(r.plan(100.0, 0.0), None);
        for k in 0..5 {
            r.on_animation_frame(k as f64 * P);
        }
        assert_eq!(r.plan(100.0, 0.0), None); // no refresh instant yet
                                              // A callback with no display estimate is not one.
        r.on_displayed(50.0, 50.2, None, 60.0);
        assert_eq!(r.plan(100.0, 60.0), None);
        r.on_displayed(50.0, 75.0, None, 60.0);
        assert!(r.plan(100.0, 60.0).is_some());
        assert_eq!(r.plan(100.0, 60.0 + ANCHOR_MAX_AGE_MS + 1.0), None);
        r.reset();
        assert_eq!(r.plan(100.0, 60.0), None);
    }

    #[test]
    fn misses_raise_the_margin_and_a_run_of_hits_lowers_it() {
        let mut r = learnt();
        let mut now = PHASE + 39.0 * P;
        // A timer that fires 3.5 ms late: frames miss until the margin covers it.
        let mut margins = Vec::new();
        for k in 0..20 {
            let due = PHASE + (45.0 + 2.0 * k as f64) * P;
            let plan = r.plan(due, now).unwrap();
            let w = plan.write_at + 3.5;
            r.on_write(w, plan, k as f64, true);
            let shown = next_refresh(w) + P;
            now = shown;
            r.on_displayed(w + 0.3, shown, Some(k as f64), now);
            margins.push(r.margin_ms());
        }
        assert_eq!(r.misses(), 2, "{margins:?}");
        assert!((r.margin_ms() - (START_MARGIN_MS + 2.0 * MISS_STEP_MS)).abs() < 1e-9);
        // On time from then on: after HITS_TO_LOWER in a row the margin comes down a step.
        for k in 0..HITS_TO_LOWER as usize {
            let due = PHASE + (100.0 + 2.0 * k as f64) * P;
            let plan = r.plan(due, now).unwrap();
            r.on_write(plan.write_at, plan, k as f64, true);
            let shown = next_refresh(plan.write_at) + P;
            now = shown;
            // No media time: paired by presentation time.
            r.on_displayed(plan.write_at + 0.3, shown, None, now);
        }
        assert_eq!(r.misses(), 2);
        assert!((r.margin_ms() - (START_MARGIN_MS + 2.0 - LOWER_STEP_MS)).abs() < 1e-9);
    }

    #[test]
    fn a_frame_decoded_late_does_not_raise_the_margin() {
        let mut r = learnt();
        let now = PHASE + 39.0 * P;
        let plan = r.plan(PHASE + 45.0 * P, now).unwrap();
        // Decoded 5 ms after its write time: written then, it lands a refresh late.
        let w = plan.write_at + 5.0;
        r.on_write(w, plan, 1.0, false);
        let shown = next_refresh(w) + P;
        assert!(shown > plan.target);
        r.on_displayed(w + 0.3, shown, Some(1.0), shown);
        assert_eq!(r.misses(), 1);
        assert!((r.margin_ms() - START_MARGIN_MS).abs() < 1e-9);
    }

    #[test]
    fn a_deeper_pipeline_is_learnt_without_raising_the_margin() {
        let mut r = learnt();
        let mut now = PHASE + 39.0 * P;
        let mut late = 0;
        // A busy page: frames show two refreshes after the next one.
        for k in 0..40 {
            let due = PHASE + (45.0 + 2.0 * k as f64) * P;
            let plan = r.plan(due, now).unwrap();
            r.on_write(plan.write_at, plan, k as f64, true);
            let shown = next_refresh(plan.write_at) + 2.0 * P;
            if shown > plan.target + 1.0 {
                late += 1;
            }
            now = shown;
            // Presented late (a busy compositor), after the next frame was written: paired by
            // media time all the same.
            r.on_write(plan.write_at + 2.0 * P, plan, k as f64 + 0.5, true);
            r.on_displayed(plan.write_at + 2.0 * P + 1.0, shown, Some(k as f64), now);
        }
        assert_eq!(r.depth(), 2);
        // Until the median of the depths turned: then every frame on its refresh.
        assert!(late <= DEPTHS / 2 + 1, "{late}");
        assert!((r.margin_ms() - START_MARGIN_MS).abs() < 1e-9);
        assert!((r.lead_ms().unwrap() - (2.0 * P + START_MARGIN_MS)).abs() < 1e-9);
        let plan = r.plan(PHASE + 200.0 * P, now).unwrap();
        assert!((next_refresh(plan.write_at) + 2.0 * P - plan.target).abs() < 1e-6);
        assert!((r.landing(plan.write_at).unwrap() - plan.target).abs() < 1e-6);
    }

    #[test]
    fn two_viewers_with_different_clocks_pick_the_same_refresh() {
        // Their due times for one frame differ by their clock-sync errors (±2 ms); their
        // write times differ as well; the refresh is the same.
        let a = learnt();
        let now = PHASE + 39.0 * P;
        for k in 0..50 {
            let due = PHASE + 45.0 * P + (k as f64 / 50.0 - 0.5) * (P - 5.0);
            let ta = a.plan(due - 2.0, now).unwrap().target;
            let tb = a.plan(due + 2.0, now).unwrap().target;
            assert_eq!(ta, tb, "due {due}");
        }
    }

    #[test]
    fn the_phase_of_an_instant_on_the_grid() {
        assert_eq!(RefreshClock::default().phase(10.0, 0.0), None);
        let c = learnt();
        let now = PHASE + 39.0 * P;
        let (period, phase) = c.phase(PHASE + 42.0 * P + 4.0, now).unwrap();
        assert!((period - P).abs() < 1e-9);
        assert!((phase - 4.0).abs() < 1e-9, "{phase}");
        let (_, before) = c.phase(PHASE + 38.0 * P - 1.0, now).unwrap();
        assert!((before - (P - 1.0)).abs() < 1e-9, "{before}");
    }
}
