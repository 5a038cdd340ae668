//! Fragmented MP4 (ISO/IEC 14496-12 ISOBMFF, "fMP4"): the writer the remuxer uses and a small
//! reader the tests and the browser player use to check what they are about to feed.
//!
//! - [`write_init_segment`] ([`init`]): `ftyp` + `moov` with one `trak` per [`TrackSpec`] and an
//!   `mvex`/`trex` per track, no samples.
//! - [`write_fragment`] ([`fragment`]): `moof` (one `traf` per [`TrackRun`]) followed by a single
//!   `mdat` holding every run's payload in order.
//! - [`parse_init`] / [`parse_fragment`] ([`reader`]): a panic-free parser of those structures
//!   (and of fragments written by other muxers, such as ffmpeg's), returning owned summaries.
//!
//! Codecs: H.264 (`avc1` + `avcC`, ISO/IEC 14496-15 §5), H.265 (`hvc1` + `hvcC`, ISO/IEC
//! 14496-15 §8), AAC and MP3 (`mp4a` + `esds`, ISO/IEC 14496-14 §5.6 / 14496-1 §7.2.6).
//!
//! Writers append to a caller-owned `Vec<u8>` so one buffer can be reused; they never panic
//! and allocate nothing per sample.

pub mod fragment;
pub mod init;
pub mod reader;
pub(crate) mod writer;

#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use fragment::write_fragment;
pub use init::write_init_segment;
pub use reader::{
    boxes, parse_fragment, parse_init, BoxHeader, Boxes, ParsedFragment, ParsedInit, ParsedSample,
    ParsedTrack, ParsedTraf,
};

/// `sample_flags` (ISO/IEC 14496-12 §8.8.3.1) of a sync sample: `sample_depends_on` = 2 (does
/// not depend on others), `sample_is_non_sync_sample` = 0.
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: `sample_depends_on` = 1 (depends on others),
/// `sample_is_non_sync_sample` = 1.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;
/// The `sample_is_non_sync_sample` bit of `sample_flags`.
pub const SAMPLE_IS_NON_SYNC: u32 = 0x0001_0000;

/// One track of an init segment: a `trak` box (ISO/IEC 14496-12 §8.3.1) and its `trex`
/// (§8.8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSpec {
    /// `track_ID`, nonzero and unique within the segment; fragments refer to it.
    pub id: u32,
    /// Media timescale (`mdhd`, ticks per second) of every time in this track's fragments.
    pub timescale: u32,
    pub kind: TrackKind,
}

/// What a track carries; selects the handler, media header and sample entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackKind {
    /// `vide` handler, `vmhd`, a visual sample entry. `width`/`height` are display pixels,
    /// written 16.16 in `tkhd` and 16-bit in the sample entry (saturating at 65535).
    Video {
        width: u32,
        height: u32,
        entry: VideoEntry,
    },
    /// `soun` handler, `smhd`, an audio sample entry.
    Audio {
        channels: u8,
        sample_rate: u32,
        entry: AudioEntry,
    },
}

/// A visual sample entry (ISO/IEC 14496-12 §12.1.3) and its decoder configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoEntry {
    /// `avc1` with an `avcC` box whose payload is `record`, the AVCDecoderConfigurationRecord
    /// (ISO/IEC 14496-15 §5.3.3). Samples are length-prefixed NAL units.
    Avc { record: Bytes },
    /// `hvc1` with an `hvcC` box whose payload is `record`, the HEVCDecoderConfigurationRecord
    /// (ISO/IEC 14496-15 §8.3.3). Parameter sets must be in the record (`hvc1`, not `hev1`).
    Hevc { record: Bytes },
}

/// An audio sample entry (ISO/IEC 14496-12 §12.2.3) with its decoder configuration: an `esds`
/// box (ISO/IEC 14496-14 §5.6) for MPEG audio, `dOps` for Opus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioEntry {
    /// `objectTypeIndication` 0x40 (MPEG-4 Audio); `asc` is the AudioSpecificConfig written as
    /// the DecoderSpecificInfo. Samples are raw AAC frames (no ADTS header).
    Aac { asc: Bytes },
    /// `objectTypeIndication` 0x6B (MPEG-1 Audio, which covers MPEG-2/2.5 layer III in
    /// practice), no DecoderSpecificInfo. Samples are whole MP3 frames, headers included.
    Mp3,
    /// An `Opus` sample entry with a `dOps` box ("Encapsulation of Opus in ISO Base Media File
    /// Format" section 4.3), from the stream's `OpusHead`. Samples are Opus packets; the
    /// track's timescale must be 48000.
    Opus { head: crate::codec::opus::OpusHead },
}

/// One sample's `trun` entry (ISO/IEC 14496-12 §8.8.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    /// Decode duration in the track's timescale.
    pub duration: u32,
    /// Payload size in bytes.
    pub size: u32,
    /// Presentation time minus decode time, in the track's timescale (may be negative:
    /// `trun` version 1).
    pub composition_offset: i32,
    /// Sync sample (key frame). Audio samples should all be sync.
    pub sync: bool,
}

/// One track's run in a fragment: a `traf` (ISO/IEC 14496-12 §8.8.6) with `tfhd` (§8.8.7),
/// `tfdt` (§8.8.12) and one `trun` (§8.8.8).
#[derive(Debug, Clone, Copy)]
pub struct TrackRun<'a> {
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale (`tfdt` version 1, 64-bit).
    pub base_decode_time: u64,
    pub samples: &'a [Sample],
    /// Sample payloads, concatenated into the `mdat` in order: one `Bytes` per sample or any
    /// split whose total length equals the sum of the samples' sizes.
    pub data: &'a [Bytes],
}

/// Why an MP4 structure could not be read. `offset` is a byte offset into the buffer given to
/// the parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mp4Error {
    /// A box or field runs past the end of its container (or of the buffer).
    #[error("{what}: truncated at byte {offset}")]
    Truncated { what: &'static str, offset: usize },
    /// A field has a value the format does not allow, or that contradicts another field.
    #[error("{what}: invalid at byte {offset}: {detail}")]
    Invalid {
        what: &'static str,
        offset: usize,
        detail: String,
    },
    /// A mandatory box is absent from its container (which starts at `offset`).
    #[error("{what}: missing box {missing} in container at byte {offset}")]
    Missing {
        what: &'static str,
        missing: &'static str,
        offset: usize,
    },
}
