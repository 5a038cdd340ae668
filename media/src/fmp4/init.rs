//! The init segment: `ftyp` + `moov` (ISO/IEC 14496-12 §4.3, §8.2.1), describing every track
//! with empty sample tables and an `mvex` that announces movie fragments (§8.8.1).
//!
//! Layout written by [`write_init_segment`]:
//!
//! ```text
//! ftyp
//! moov
//!   mvhd
//!   trak (per track)
//!     tkhd
//!     mdia
//!       mdhd
//!       hdlr
//!       minf
//!         vmhd | smhd
//!         dinf > dref > url
//!         stbl > stsd > (avc1 > avcC | hvc1 > hvcC | mp4a > esds | Opus > dOps), stts, stsc, stsz, stco
//!   mvex
//!     trex (per track)
//! ```

use bytes::BufMut;

use super::writer::{full_box, u16_sat, unity_matrix, write_box};
use super::{AudioEntry, TrackKind, TrackSpec, VideoEntry};

/// Movie timescale written in `mvhd` (the movie duration is 0, so it only matters to tools).
pub const MOVIE_TIMESCALE: u32 = 1000;

/// `language` of `mdhd`: "und" as three 5-bit letters (each minus 0x60) after a pad bit.
const LANGUAGE_UND: u16 =
    ((b'u' as u16 - 0x60) << 10) | ((b'n' as u16 - 0x60) << 5) | (b'd' as u16 - 0x60);

/// Appends an init segment describing `tracks` to `out`.
///
/// Tracks are written in the order given. An empty `tracks` yields a valid but useless
/// `ftyp` + `moov` with no `trak`. Track ids are not checked for uniqueness.
pub fn write_init_segment(tracks: &[TrackSpec], out: &mut Vec<u8>) {
    write_ftyp(out);
    write_box!(out, b"moov", {
        write_mvhd(tracks, out);
        for track in tracks {
            write_trak(track, out);
        }
        write_box!(out, b"mvex", {
            for track in tracks {
                write_trex(track, out);
            }
        });
    });
}

/// File type box, ISO/IEC 14496-12 §4.3. `iso6` covers `tfdt` and version-1 `trun` with
/// signed composition offsets.
fn write_ftyp(out: &mut Vec<u8>) {
    write_box!(out, b"ftyp", {
        out.extend_from_slice(b"iso6"); // major_brand
        out.put_u32(0); // minor_version
        out.extend_from_slice(b"iso6"); // compatible_brands[0]
        out.extend_from_slice(b"isom"); // compatible_brands[1]
        out.extend_from_slice(b"mp41"); // compatible_brands[2]
        out.extend_from_slice(b"dash"); // compatible_brands[3]
    });
}

/// Movie header box, ISO/IEC 14496-12 §8.2.2 (version 0).
fn write_mvhd(tracks: &[TrackSpec], out: &mut Vec<u8>) {
    let next_track_id = tracks
        .iter()
        .map(|t| t.id)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    write_box!(out, b"mvhd", {
        full_box(out, 0, 0);
        out.put_u32(0); // creation_time
        out.put_u32(0); // modification_time
        out.put_u32(MOVIE_TIMESCALE); // timescale
        out.put_u32(0); // duration (unknown / fragmented)
        out.put_u32(0x0001_0000); // rate, 1.0 as 16.16
        out.put_u16(0x0100); // volume, 1.0 as 8.8
        out.put_u16(0); // reserved
        out.put_u64(0); // reserved[2]
        unity_matrix(out); // matrix
        out.put_bytes(0, 24); // pre_defined[6]
        out.put_u32(next_track_id); // next_track_ID
    });
}

/// Track box, ISO/IEC 14496-12 §8.3.1.
fn write_trak(track: &TrackSpec, out: &mut Vec<u8>) {
    write_box!(out, b"trak", {
        write_tkhd(track, out);
        write_box!(out, b"mdia", {
            write_mdhd(track, out);
            write_hdlr(&track.kind, out);
            write_box!(out, b"minf", {
                match track.kind {
                    TrackKind::Video { .. } => write_box!(out, b"vmhd", {
                        full_box(out, 0, 1); // flags: 1 (required by §12.1.2)
                        out.put_u16(0); // graphicsmode: copy
                        out.put_bytes(0, 6); // opcolor[3]
                    }),
                    TrackKind::Audio { .. } => write_box!(out, b"smhd", {
                        full_box(out, 0, 0);
                        out.put_u16(0); // balance, 0.0 as 8.8
                        out.put_u16(0); // reserved
                    }),
                }
                write_dinf(out);
                write_stbl(&track.kind, out);
            });
        });
    });
}

/// Track header box, ISO/IEC 14496-12 §8.3.2 (version 0).
fn write_tkhd(track: &TrackSpec, out: &mut Vec<u8>) {
    let (volume, width, height) = match track.kind {
        TrackKind::Video { width, height, .. } => (0, width, height),
        TrackKind::Audio { .. } => (0x0100, 0, 0),
    };
    write_box!(out, b"tkhd", {
        full_box(out, 0, 0x000003); // flags: track_enabled | track_in_movie
        out.put_u32(0); // creation_time
        out.put_u32(0); // modification_time
        out.put_u32(track.id); // track_ID
        out.put_u32(0); // reserved
        out.put_u32(0); // duration (unknown / fragmented)
        out.put_u64(0); // reserved[2]
        out.put_u16(0); // layer
        out.put_u16(0); // alternate_group
        out.put_u16(volume); // volume, 8.8: 1.0 for audio, 0 otherwise
        out.put_u16(0); // reserved
        unity_matrix(out); // matrix
        out.put_u32(u32::from(u16_sat(width)) << 16); // width, 16.16
        out.put_u32(u32::from(u16_sat(height)) << 16); // height, 16.16
    });
}

/// Media header box, ISO/IEC 14496-12 §8.4.2 (version 0).
fn write_mdhd(track: &TrackSpec, out: &mut Vec<u8>) {
    write_box!(out, b"mdhd", {
        full_box(out, 0, 0);
        out.put_u32(0); // creation_time
        out.put_u32(0); // modification_time
        out.put_u32(track.timescale); // timescale
        out.put_u32(0); // duration (unknown / fragmented)
        out.put_u16(LANGUAGE_UND); // pad(1) + language(15): "und"
        out.put_u16(0); // pre_defined
    });
}

/// Handler reference box, ISO/IEC 14496-12 §8.4.3.
fn write_hdlr(kind: &TrackKind, out: &mut Vec<u8>) {
    let (handler, name): (&[u8; 4], &[u8]) = match kind {
        TrackKind::Video { .. } => (b"vide", b"VideoHandler\0"),
        TrackKind::Audio { .. } => (b"soun", b"SoundHandler\0"),
    };
    write_box!(out, b"hdlr", {
        full_box(out, 0, 0);
        out.put_u32(0); // pre_defined
        out.extend_from_slice(handler); // handler_type
        out.put_bytes(0, 12); // reserved[3]
        out.extend_from_slice(name); // name, null-terminated UTF-8
    });
}

/// Data information box with a self-contained data reference, ISO/IEC 14496-12 §8.7.1-§8.7.2.
fn write_dinf(out: &mut Vec<u8>) {
    write_box!(out, b"dinf", {
        write_box!(out, b"dref", {
            full_box(out, 0, 0);
            out.put_u32(1); // entry_count
            write_box!(out, b"url ", {
                full_box(out, 0, 1); // flags: 1 = media data is in this file
            });
        });
    });
}

/// Sample table box with one sample description and empty tables, ISO/IEC 14496-12 §8.5.1
/// (the samples themselves are in movie fragments).
fn write_stbl(kind: &TrackKind, out: &mut Vec<u8>) {
    write_box!(out, b"stbl", {
        write_box!(out, b"stsd", {
            full_box(out, 0, 0);
            out.put_u32(1); // entry_count
            match kind {
                TrackKind::Video {
                    width,
                    height,
                    entry,
                } => write_visual_entry(*width, *height, entry, out),
                TrackKind::Audio {
                    channels,
                    sample_rate,
                    entry,
                } => write_audio_entry(*channels, *sample_rate, entry, out),
            }
        });
        write_box!(out, b"stts", {
            full_box(out, 0, 0);
            out.put_u32(0); // entry_count
        });
        write_box!(out, b"stsc", {
            full_box(out, 0, 0);
            out.put_u32(0); // entry_count
        });
        write_box!(out, b"stsz", {
            full_box(out, 0, 0);
            out.put_u32(0); // sample_size
            out.put_u32(0); // sample_count
        });
        write_box!(out, b"stco", {
            full_box(out, 0, 0);
            out.put_u32(0); // entry_count
        });
    });
}

/// Visual sample entry, ISO/IEC 14496-12 §12.1.3, with the configuration box of ISO/IEC
/// 14496-15 §5.4.2 (`avc1`/`avcC`) or §8.4.1 (`hvc1`/`hvcC`).
fn write_visual_entry(width: u32, height: u32, entry: &VideoEntry, out: &mut Vec<u8>) {
    let (fourcc, config_fourcc, record) = match entry {
        VideoEntry::Avc { record } => (b"avc1", b"avcC", record),
        VideoEntry::Hevc { record } => (b"hvc1", b"hvcC", record),
    };
    write_box!(out, fourcc, {
        out.put_bytes(0, 6); // SampleEntry reserved[6]
        out.put_u16(1); // data_reference_index
        out.put_u16(0); // pre_defined
        out.put_u16(0); // reserved
        out.put_bytes(0, 12); // pre_defined[3]
        out.put_u16(u16_sat(width)); // width
        out.put_u16(u16_sat(height)); // height
        out.put_u32(0x0048_0000); // horizresolution, 72 dpi as 16.16
        out.put_u32(0x0048_0000); // vertresolution, 72 dpi as 16.16
        out.put_u32(0); // reserved
        out.put_u16(1); // frame_count
        out.put_bytes(0, 32); // compressorname: empty Pascal string, padded
        out.put_u16(0x0018); // depth: colour, no alpha
        out.put_i16(-1); // pre_defined
        write_box!(out, config_fourcc, {
            out.extend_from_slice(record); // decoder configuration record
        });
    });
}

/// Audio sample entry `mp4a`, ISO/IEC 14496-12 §12.2.3 / ISO/IEC 14496-14 §5.6.
fn write_audio_entry(channels: u8, sample_rate: u32, entry: &AudioEntry, out: &mut Vec<u8>) {
    // The 16.16 field cannot hold 65536 Hz and up; like ffmpeg, write 0 there (decoders take
    // the real rate from the AudioSpecificConfig).
    let rate_16_16 = if sample_rate < 0x1_0000 {
        sample_rate << 16
    } else {
        0
    };
    let kind = match entry {
        AudioEntry::Opus { .. } => b"Opus",
        _ => b"mp4a",
    };
    write_box!(out, kind, {
        out.put_bytes(0, 6); // SampleEntry reserved[6]
        out.put_u16(1); // data_reference_index
        out.put_u64(0); // reserved[2] (version / revision / vendor in QuickTime)
        out.put_u16(u16::from(channels)); // channelcount
        out.put_u16(16); // samplesize
        out.put_u16(0); // pre_defined
        out.put_u16(0); // reserved
        out.put_u32(rate_16_16); // samplerate, 16.16
        match entry {
            AudioEntry::Aac { asc } => write_esds(0x40, Some(asc), out),
            AudioEntry::Mp3 => write_esds(0x6b, None, out),
            AudioEntry::Opus { head } => write_dops(head, out),
        }
    });
}

/// Opus specific box, "Encapsulation of Opus in ISO Base Media File Format" §4.3.2: the
/// `OpusHead` fields after the magic and version, big-endian where the header is little-endian.
fn write_dops(head: &crate::codec::opus::OpusHead, out: &mut Vec<u8>) {
    write_box!(out, b"dOps", {
        out.put_u8(0); // Version
        out.put_u8(head.channels); // OutputChannelCount
        out.put_u16(head.pre_skip); // PreSkip
        out.put_u32(head.input_sample_rate); // InputSampleRate
        out.put_i16(head.output_gain); // OutputGain
        out.put_u8(head.mapping_family); // ChannelMappingFamily
                                         // StreamCount, CoupledCount, ChannelMapping[OutputChannelCount] when the family is not 0
        out.extend_from_slice(&head.mapping);
    });
}

/// Track extends box, ISO/IEC 14496-12 §8.8.3: the defaults for this track's fragments.
fn write_trex(track: &TrackSpec, out: &mut Vec<u8>) {
    write_box!(out, b"trex", {
        full_box(out, 0, 0);
        out.put_u32(track.id); // track_ID
        out.put_u32(1); // default_sample_description_index
        out.put_u32(0); // default_sample_duration
        out.put_u32(0); // default_sample_size
        out.put_u32(0); // default_sample_flags
    });
}

/// Largest length the 4-byte expandable form of ISO/IEC 14496-1 §8.3.3 can express.
const MAX_DESCRIPTOR_LEN: usize = 0x0fff_ffff;

/// Bytes that [`put_descriptor_header`] writes for a descriptor of payload length `len`.
fn descriptor_header_len(len: usize) -> usize {
    match len.min(MAX_DESCRIPTOR_LEN) {
        0..=0x7f => 2,
        0x80..=0x3fff => 3,
        0x4000..=0x1f_ffff => 4,
        _ => 5,
    }
}

/// Writes a descriptor tag and its size in the expandable form (ISO/IEC 14496-1 §8.3.3): 7 bits
/// per byte, high bit set on all but the last. Lengths beyond 2^28 - 1 saturate.
fn put_descriptor_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    let len = len.min(MAX_DESCRIPTOR_LEN) as u32;
    out.put_u8(tag); // tag
    let n = descriptor_header_len(len as usize) - 1;
    for i in (0..n).rev() {
        let more = if i > 0 { 0x80 } else { 0 };
        out.put_u8(more | ((len >> (7 * i)) & 0x7f) as u8); // sizeOfInstance, expandable
    }
}

/// Elementary stream descriptor box, ISO/IEC 14496-14 §5.6, holding an ES_Descriptor
/// (ISO/IEC 14496-1 §7.2.6.5) > DecoderConfigDescriptor (§7.2.6.6) > DecoderSpecificInfo
/// (§7.2.6.7), plus an SLConfigDescriptor (§7.3.2.3.1). `object_type`: 0x40 MPEG-4 audio
/// (with the AudioSpecificConfig as `dsi`), 0x6B MPEG-1 audio (none).
fn write_esds(object_type: u8, dsi: Option<&[u8]>, out: &mut Vec<u8>) {
    let dsi_total = dsi.map_or(0, |d| descriptor_header_len(d.len()) + d.len());
    let dcd_len = 13 + dsi_total;
    let sl_total = 3;
    let es_len = 3 + descriptor_header_len(dcd_len) + dcd_len + sl_total;
    write_box!(out, b"esds", {
        full_box(out, 0, 0);
        put_descriptor_header(out, 0x03, es_len); // ES_DescrTag
        out.put_u16(0); // ES_ID (0 in MP4 files, ISO/IEC 14496-14 §3.1.2)
        out.put_u8(0); // streamDependenceFlag | URL_Flag | OCRstreamFlag | streamPriority
        put_descriptor_header(out, 0x04, dcd_len); // DecoderConfigDescrTag
        out.put_u8(object_type); // objectTypeIndication: 0x40 MPEG-4 audio, 0x6B MPEG-1 audio
        out.put_u8((0x05 << 2) | 0x01); // streamType 5 (audio) << 2 | upStream 0 | reserved 1
        out.put_uint(0, 3); // bufferSizeDB (unknown)
        out.put_u32(0); // maxBitrate (unknown)
        out.put_u32(0); // avgBitrate (unknown / variable)
        if let Some(dsi) = dsi {
            put_descriptor_header(out, 0x05, dsi.len()); // DecSpecificInfoTag
            out.extend_from_slice(dsi); // AudioSpecificConfig
        }
        put_descriptor_header(out, 0x06, 1); // SLConfigDescrTag
        out.put_u8(0x02); // predefined: 2 = reserved for use in MP4 files
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_sizes_use_the_shortest_expandable_form() {
        let cases: [(usize, &[u8]); 5] = [
            (0, &[5, 0]),
            (0x7f, &[5, 0x7f]),
            (0x80, &[5, 0x81, 0x00]),
            (0x3fff, &[5, 0xff, 0x7f]),
            (0x4000, &[5, 0x81, 0x80, 0x00]),
        ];
        for (len, want) in cases {
            let mut out = Vec::new();
            put_descriptor_header(&mut out, 5, len);
            assert_eq!(out, want, "len {len}");
            assert_eq!(descriptor_header_len(len), want.len());
        }
        let mut out = Vec::new();
        put_descriptor_header(&mut out, 5, usize::MAX);
        assert_eq!(out, [5, 0xff, 0xff, 0xff, 0x7f]);
    }

    #[test]
    fn esds_for_aac_matches_the_descriptor_layout() {
        let mut out = Vec::new();
        write_esds(0x40, Some(&[0x12, 0x10]), &mut out);
        #[rustfmt::skip]
        let want: &[u8] = &[
            0, 0, 0, 39, b'e', b's', b'd', b's', 0, 0, 0, 0,
            3, 25, 0, 0, 0,
            4, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            5, 2, 0x12, 0x10,
            6, 1, 2,
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn language_und() {
        assert_eq!(LANGUAGE_UND, 0x55c4);
    }
}
