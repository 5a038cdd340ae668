//! Reading the `<video>`'s frame callbacks (`requestVideoFrameCallback` metadata) for the
//! WebCodecs path, shared by [`super::display_delay`] and [`super::refresh`]: whether a
//! callback carries a display estimate at all, and which written frame it shows.

/// A callback whose `expectedDisplayTime` is less than this after its `presentationTime`
/// (ms) carries no display estimate: Chromium's MediaStream compositor, rendering without its
/// render algorithm (seen with the CPU saturated), reports the moment the frame was set.
pub const MIN_ESTIMATE_MS: f64 = 1.0;

/// Whether a callback (`presented`, `expected`, performance.now() ms) carries a display
/// estimate.
pub fn has_estimate(presented: f64, expected: f64) -> bool {
    presented.is_finite() && expected.is_finite() && expected - presented >= MIN_ESTIMATE_MS
}

/// Which of `writes` ((written at, media time), oldest first) a frame callback shows: the one
/// with its media time when the browser reports it (Chromium does), else the latest written at
/// or before its presentation time.
pub fn shown_write(
    writes: impl DoubleEndedIterator<Item = (f64, f64)> + ExactSizeIterator,
    presented: f64,
    media_ms: Option<f64>,
) -> Option<usize> {
    let mut writes = writes;
    match media_ms {
        Some(m) if m.is_finite() => writes.position(|(_, pts)| (pts - m).abs() < 0.5),
        _ => writes.rposition(|(at, _)| at <= presented + 0.5),
    }
}
