//! Media fragments: `moof` + `mdat` (ISO/IEC 14496-12 §8.8.4, §8.1.1).
//!
//! Layout written by [`write_fragment`]:
//!
//! ```text
//! moof
//!   mfhd                       sequence_number
//!   traf (per run)
//!     tfhd                     default-base-is-moof, track_ID
//!     tfdt  (version 1)        64-bit baseMediaDecodeTime
//!     trun  (version 1)        data_offset + per-sample duration, size, flags, signed CTO
//! mdat                         run 0's data, run 1's data, ...
//! ```
//!
//! Every `trun.data_offset` is relative to the first byte of the `moof` (the
//! `default-base-is-moof` flag) and points at that run's first byte in the `mdat`. The `moof`
//! size is computed before writing, so the offsets are written directly, not patched.

use bytes::{BufMut, Bytes};

use super::writer::{full_box, write_box};
use super::{TrackRun, NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS};

/// `tfhd` flag: the base data offset of each run is the start of the enclosing `moof`.
pub const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags: data-offset-present.
pub const TRUN_DATA_OFFSET: u32 = 0x000001;
/// `trun` flags: first-sample-flags-present.
pub const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x000004;
/// `trun` flags: sample-duration-present.
pub const TRUN_SAMPLE_DURATION: u32 = 0x000100;
/// `trun` flags: sample-size-present.
pub const TRUN_SAMPLE_SIZE: u32 = 0x000200;
/// `trun` flags: sample-flags-present.
pub const TRUN_SAMPLE_FLAGS: u32 = 0x000400;
/// `trun` flags: sample-composition-time-offsets-present.
pub const TRUN_SAMPLE_CTO: u32 = 0x000800;

/// Bytes of `mfhd`: header 8 + version/flags 4 + sequence_number 4.
const MFHD_LEN: u64 = 16;
/// Bytes of a `traf` besides its per-sample `trun` entries: `traf` header 8, `tfhd` 16
/// (8 + 4 + track_ID 4), `tfdt` 20 (8 + 4 + 64-bit time 8), `trun` 20 (8 + 4 + sample_count 4 +
/// data_offset 4).
const TRAF_FIXED_LEN: u64 = 8 + 16 + 20 + 20;
/// Bytes per sample in `trun`: duration, size, flags and composition offset, 4 each.
const TRUN_ENTRY_LEN: u64 = 16;

/// Appends a `moof` + `mdat` for `runs` to `out`.
///
/// - Runs with no samples are skipped (their `data` too); if no run has samples, nothing is
///   written, not even an empty `mdat`.
/// - Each run's `data` is copied into the `mdat` as given. Its total should equal the sum of
///   its samples' sizes; if it does not, the `trun` offsets still point at the start of each
///   run's data but the sample boundaries will be wrong (the reader reports this).
/// - Sample flags: `sync` gives [`SYNC_SAMPLE_FLAGS`], otherwise [`NON_SYNC_SAMPLE_FLAGS`].
/// - An `mdat` larger than 4 GiB uses the 64-bit `largesize` form; `trun.data_offset` is a
///   signed 32-bit field, so offsets past 2 GiB saturate (keep fragments far smaller).
pub fn write_fragment(sequence_number: u32, runs: &[TrackRun], out: &mut Vec<u8>) {
    let written = || runs.iter().filter(|r| !r.samples.is_empty());
    if written().next().is_none() {
        return;
    }

    let moof_len = 8
        + MFHD_LEN
        + written()
            .map(|r| TRAF_FIXED_LEN + TRUN_ENTRY_LEN * r.samples.len() as u64)
            .sum::<u64>();
    let total: u64 = written().map(|r| data_len(r.data)).sum();
    let mdat_header_len: u64 = if total + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    };

    let mut data_offset = moof_len + mdat_header_len;
    write_box!(out, b"moof", {
        write_box!(out, b"mfhd", {
            full_box(out, 0, 0);
            out.put_u32(sequence_number); // sequence_number
        });
        for run in written() {
            write_traf(run, data_offset, out);
            data_offset += data_len(run.data);
        }
    });

    // Media data box, ISO/IEC 14496-12 §8.1.1.
    if mdat_header_len == 16 {
        out.put_u32(1); // size: 1 = see largesize
        out.extend_from_slice(b"mdat"); // type
        out.put_u64(total + 16); // largesize
    } else {
        out.put_u32((total + 8) as u32); // size
        out.extend_from_slice(b"mdat"); // type
    }
    let _ = out.try_reserve(usize::try_from(total).unwrap_or(0));
    for run in written() {
        for chunk in run.data {
            out.extend_from_slice(chunk); // sample data
        }
    }
}

fn data_len(data: &[Bytes]) -> u64 {
    data.iter().map(|b| b.len() as u64).sum()
}

/// Track fragment box, ISO/IEC 14496-12 §8.8.6, with its `tfhd` (§8.8.7), `tfdt` (§8.8.12)
/// and one `trun` (§8.8.8). `data_offset` is the run's data position relative to the `moof`.
fn write_traf(run: &TrackRun, data_offset: u64, out: &mut Vec<u8>) {
    write_box!(out, b"traf", {
        write_box!(out, b"tfhd", {
            full_box(out, 0, TFHD_DEFAULT_BASE_IS_MOOF); // flags: default-base-is-moof
            out.put_u32(run.track_id); // track_ID
        });
        write_box!(out, b"tfdt", {
            full_box(out, 1, 0); // version 1: 64-bit time
            out.put_u64(run.base_decode_time); // baseMediaDecodeTime
        });
        write_box!(out, b"trun", {
            let flags = TRUN_DATA_OFFSET
                | TRUN_SAMPLE_DURATION
                | TRUN_SAMPLE_SIZE
                | TRUN_SAMPLE_FLAGS
                | TRUN_SAMPLE_CTO;
            full_box(out, 1, flags); // version 1: signed composition offsets
            out.put_u32(u32::try_from(run.samples.len()).unwrap_or(u32::MAX)); // sample_count
            out.put_i32(i32::try_from(data_offset).unwrap_or(i32::MAX)); // data_offset
            let _ = out.try_reserve(run.samples.len().saturating_mul(TRUN_ENTRY_LEN as usize));
            for s in run.samples {
                out.put_u32(s.duration); // sample_duration
                out.put_u32(s.size); // sample_size
                out.put_u32(if s.sync {
                    SYNC_SAMPLE_FLAGS
                } else {
                    NON_SYNC_SAMPLE_FLAGS
                }); // sample_flags
                out.put_i32(s.composition_offset); // sample_composition_time_offset
            }
        });
    });
}
