//! Where the next decoded audio buffer starts on the `AudioContext` clock, and how fast it
//! plays (WebCodecs path).
//!
//! Buffers that start within [`BUTT_S`] of the end of the chain before them are butted
//! to it: a gap or an overlap of a few ms would click. Butting alone lets the chain sit up to
//! that far from where its audio is due (start-time error measured here: −5 to +9 ms, so the
//! reported A/V offset wandered by as much). So a butted buffer is also played very slightly
//! fast or slow (`AudioBufferSourceNode.playbackRate`, at most [`MAX_RATE_DEVIATION`], a
//! pitch change of about 5 cents, at the edge of what a trained ear hears on a pure tone) to
//! bring the chain's end back to its due time: a 10 ms error is gone in about 3 s of audio.
//! Farther than [`BUTT_S`] the chain restarts at the due time (once, after a gap in the stream
//! or a change of delay). A buffer that comes a little too late plays its rest on time rather
//! than being dropped.
//!
//! Times are seconds on the context clock. Pure arithmetic; no `web-sys`.

/// Buffers this close (s) to the chain's end are butted to it.
pub const BUTT_S: f64 = 0.015;
/// Most that one buffer's playback rate departs from 1 (0.3 %: ~5 cents).
pub const MAX_RATE_DEVIATION: f64 = 0.003;

/// Where one buffer goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Start time, s.
    pub when: f64,
    /// Where in the buffer to start, s (> 0: its late beginning is skipped).
    pub offset: f64,
    /// Playback rate.
    pub rate: f64,
    /// Where it ends (the chain's new end), s.
    pub end: f64,
}

/// A buffer of `dur` s of audio due to start at `ideal`, after a chain that ends at
/// `chain_end` (0 or anything far away: no chain), on a context that can start nothing
/// before `earliest`. `None`: the buffer is too late to play.
///
/// A buffer whose start is already past (the chain ran dry: it came late) plays its rest from
/// `earliest`, on time, skipping the part that is late. Dropping it left a gap of the whole
/// buffer (measured: audio frames arrive late in pairs, 1–3 pairs a second at the p99 arrival
/// the player allows for); starting it whole but late put the chain, and the sound against the
/// picture, that much behind for the seconds the steering takes to bring it back (A/V up to
/// +30 ms).
pub fn place(ideal: f64, chain_end: f64, dur: f64, earliest: f64) -> Option<Placement> {
    let dur = dur.max(0.0);
    let when = if (ideal - chain_end).abs() < BUTT_S {
        chain_end
    } else {
        ideal
    };
    if when < earliest {
        if ideal >= earliest {
            // The chain ran dry but this buffer is not late: it starts the chain afresh.
            return Some(Placement {
                when: ideal,
                offset: 0.0,
                rate: 1.0,
                end: ideal + dur,
            });
        }
        let skip = earliest - ideal;
        if skip >= dur || skip >= BUTT_S {
            return None;
        }
        return Some(Placement {
            when: earliest,
            offset: skip,
            rate: 1.0,
            end: ideal + dur,
        });
    }
    // > 0: the chain runs late. Playing at `rate` ends it dur·(1/rate − 1) earlier; that
    // would take the whole lateness back at rate = 1 / (1 − late / dur).
    let late = when - ideal;
    let rate = if late == 0.0 || dur == 0.0 {
        1.0
    } else {
        let x = (late / dur).clamp(-0.5, 0.5);
        (1.0 / (1.0 - x)).clamp(1.0 - MAX_RATE_DEVIATION, 1.0 + MAX_RATE_DEVIATION)
    };
    Some(Placement {
        when,
        offset: 0.0,
        rate,
        end: when + dur / rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_chain_plays_slightly_fast_until_it_is_on_time() {
        let dur = 0.010;
        // The chain ends 10 ms after the next buffer is due; each buffer is due 10 ms after
        // the last.
        let (mut ideal, mut end) = (100.0, 100.010);
        let mut seconds = 0.0;
        while end - ideal > 0.0001 {
            let p = place(ideal, end, dur, 0.0).unwrap();
            assert_eq!(p.when, end, "butted");
            assert!(p.rate > 1.0 && p.rate <= 1.0 + MAX_RATE_DEVIATION);
            end = p.end;
            ideal += dur;
            seconds += dur;
            assert!(
                seconds < 5.0,
                "not converged in 5 s: {} ms late",
                (end - ideal) * 1e3
            );
        }
        assert!(seconds > 2.0, "too fast to be inaudible: {seconds} s");
        // On time: rate 1.
        let p = place(ideal, ideal, dur, 0.0).unwrap();
        assert_eq!(p.rate, 1.0);
    }

    #[test]
    fn an_early_chain_plays_slightly_slow() {
        let p = place(10.0, 9.995, 0.021, 0.0).unwrap();
        assert_eq!(p.when, 9.995);
        assert!(p.rate < 1.0 && p.rate >= 1.0 - MAX_RATE_DEVIATION);
        assert!(p.end > 9.995 + 0.021);
    }

    #[test]
    fn far_from_the_chain_it_restarts_at_the_due_time() {
        assert_eq!(
            place(10.0, 9.98, 0.01, 0.0),
            Some(Placement {
                when: 10.0,
                offset: 0.0,
                rate: 1.0,
                end: 10.01
            })
        );
        assert_eq!(place(10.0, 0.0, 0.01, 0.0).unwrap().when, 10.0);
        assert_eq!(place(10.0, 9.999, 0.0, 0.0).unwrap().rate, 1.0);
    }

    #[test]
    fn a_late_buffer_plays_its_rest_on_time_a_buffer_all_late_is_dropped() {
        // The chain ran dry at 9.990; the buffer was due at 9.995; nothing before 10.000:
        // its first 5 ms are skipped, and it ends when it would have.
        let p = place(9.995, 9.990, 0.010, 10.0).unwrap();
        assert_eq!(p.when, 10.0);
        assert!((p.offset - 0.005).abs() < 1e-9);
        assert_eq!(p.rate, 1.0);
        assert!((p.end - 10.005).abs() < 1e-9);
        // Due 10 ms or more ago (its whole length): dropped.
        assert_eq!(place(9.989, 0.0, 0.010, 10.0), None);
        assert_eq!(
            place(9.980, 0.0, 0.021, 10.0),
            None,
            "past the butting distance"
        );
        // The chain ran dry, but this buffer is not yet due: it starts the chain afresh.
        let p = place(10.004, 9.995, 0.010, 10.0).unwrap();
        assert_eq!((p.when, p.offset, p.rate), (10.004, 0.0, 1.0));
    }
}
