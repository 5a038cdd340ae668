//! Box-writing helpers shared by the init segment and fragment writers.
//!
//! ISO/IEC 14496-12 §4.2 defines a box as a 32-bit big-endian size (covering the whole box,
//! header included), a four-character type, then the payload; a *full box* adds an 8-bit version
//! and 24-bit flags. [`write_box!`] writes the header with a placeholder size, runs the body
//! (which appends the payload and any child boxes to the same buffer) and then patches the size.
//! Everything appends to a caller-owned `Vec<u8>`, so one buffer can be reused across segments.

use bytes::BufMut;

/// Appends one box: `write_box!(out, b"moov", { ...children... })`.
///
/// `$out` must be a place of type `Vec<u8>` (or `&mut Vec<u8>`); the body appends the payload.
macro_rules! write_box {
    ($out:expr, $fourcc:expr, $body:block) => {{
        let start = $crate::fmp4::writer::begin_box(&mut *$out, $fourcc);
        $body
        $crate::fmp4::writer::end_box(&mut *$out, start);
    }};
}
pub(crate) use write_box;

/// Writes a box header with a zero size placeholder; returns the box start for [`end_box`].
pub(crate) fn begin_box(out: &mut Vec<u8>, fourcc: &[u8; 4]) -> usize {
    let start = out.len();
    out.put_u32(0); // size, patched by end_box
    out.extend_from_slice(fourcc); // type
    start
}

/// Patches the 32-bit size of the box begun at `start` to cover everything appended since.
///
/// Boxes written through this helper are headers and sample tables, far below 4 GiB; a size
/// that does not fit saturates rather than panicking (`mdat` is written separately and uses
/// the 64-bit `largesize` form when needed).
pub(crate) fn end_box(out: &mut [u8], start: usize) {
    let size = out.len().saturating_sub(start);
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    if let Some(slot) = out.get_mut(start..start + 4) {
        slot.copy_from_slice(&size.to_be_bytes());
    }
}

/// Writes the version and flags of a full box (ISO/IEC 14496-12 §4.2).
pub(crate) fn full_box(out: &mut Vec<u8>, version: u8, flags: u32) {
    out.put_u8(version); // version
    out.put_uint(u64::from(flags & 0x00ff_ffff), 3); // flags (24 bits)
}

/// The unity transformation matrix used by `mvhd` and `tkhd` (ISO/IEC 14496-12 §8.2.2, §8.3.2).
pub(crate) fn unity_matrix(out: &mut Vec<u8>) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        out.put_u32(v); // matrix: {a, b, u, c, d, v, x, y, w}
    }
}

/// Clamps a pixel dimension to the 16-bit field of a visual sample entry.
pub(crate) fn u16_sat(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_sizes_are_patched() {
        let mut out = vec![0xAA]; // pre-existing content is kept
        write_box!(&mut out, b"outr", {
            out.put_u8(1);
            write_box!(&mut out, b"innr", {
                full_box(&mut out, 1, 0x020000);
            });
        });
        assert_eq!(
            out,
            [
                0xAA, 0, 0, 0, 21, b'o', b'u', b't', b'r', 1, 0, 0, 0, 12, b'i', b'n', b'n', b'r',
                1, 2, 0, 0
            ]
        );
    }
}
