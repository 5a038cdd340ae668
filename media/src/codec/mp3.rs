//! MPEG audio frame header (ISO/IEC 11172-3 section 2.4.2.3; ISO/IEC 13818-3 section 2.4.2.3
//! for the MPEG-2 low sampling frequencies; and the non-ISO "MPEG 2.5" extension down to
//! 8 kHz). Covers layers I, II and III; in FLV only layer III (MP3) is used.
//!
//! The 4-byte header gives everything a muxer needs: rate, channels, samples per frame and the
//! frame's length in bytes.

use super::CodecError;

const WHAT: &str = "MPEG audio header";

/// MPEG audio version (the `ID` bit, plus the MPEG 2.5 extension of the sync word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MpegVersion {
    /// ISO/IEC 11172-3: 32, 44.1, 48 kHz.
    Mpeg1,
    /// ISO/IEC 13818-3 low sampling frequencies: 16, 22.05, 24 kHz.
    Mpeg2,
    /// Non-standard MPEG 2.5: 8, 11.025, 12 kHz.
    Mpeg25,
}

/// A parsed MPEG audio frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp3Header {
    pub version: MpegVersion,
    /// 1, 2 or 3.
    pub layer: u8,
    pub bitrate_kbps: u32,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// 1 for single channel mode, otherwise 2.
    pub channels: u8,
    /// PCM samples per channel in one frame: 384 (layer I), 1152 (layer II, and layer III in
    /// MPEG-1), 576 (layer III in MPEG-2 / 2.5).
    pub samples_per_frame: u32,
    /// Length of the whole frame in bytes, header and padding included.
    pub frame_length: usize,
    /// Whether the frame carries a padding slot.
    pub padding: bool,
}

/// Bit rates in kbit/s by `bitrate_index` 1..=14, for MPEG-1 layers I, II, III.
const BITRATES_V1: [[u32; 14]; 3] = [
    [
        32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
    ],
    [
        32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
    ],
    [
        32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ],
];
/// Bit rates for MPEG-2 / 2.5: layer I, then layers II and III (shared).
const BITRATES_V2: [[u32; 14]; 2] = [
    [
        32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ],
    [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
];

impl Mp3Header {
    /// Parses the frame header at the start of `data` (at least 4 bytes; the rest is ignored).
    pub fn parse(data: &[u8]) -> Result<Self, CodecError> {
        let &[b0, b1, b2, b3, ..] = data else {
            return Err(CodecError::Truncated {
                what: WHAT,
                offset: data.len(),
            });
        };
        if b0 != 0xff || b1 & 0xe0 != 0xe0 {
            return Err(invalid("syncword", 0, format!("{b0:02x} {b1:02x}")));
        }
        let version = match (b1 >> 3) & 0b11 {
            0b00 => MpegVersion::Mpeg25,
            0b10 => MpegVersion::Mpeg2,
            0b11 => MpegVersion::Mpeg1,
            _ => return Err(invalid("ID", 1, "reserved version".into())),
        };
        let layer = match (b1 >> 1) & 0b11 {
            0b11 => 1u8,
            0b10 => 2,
            0b01 => 3,
            _ => return Err(invalid("layer", 1, "reserved layer".into())),
        };
        let bitrate_index = b2 >> 4;
        let bitrate_kbps = match bitrate_index {
            0 => {
                return Err(CodecError::Unsupported {
                    what: WHAT,
                    detail: "free format bit rate".into(),
                })
            }
            15 => return Err(invalid("bitrate_index", 2, "forbidden index 15".into())),
            i => {
                let table = match (version, layer) {
                    (MpegVersion::Mpeg1, l) => BITRATES_V1.get(usize::from(l - 1)),
                    (_, 1) => BITRATES_V2.first(),
                    (_, _) => BITRATES_V2.get(1),
                };
                table
                    .and_then(|t| t.get(usize::from(i - 1)))
                    .copied()
                    .ok_or_else(|| invalid("bitrate_index", 2, format!("{i}")))?
            }
        };
        let base_rate = match (b2 >> 2) & 0b11 {
            0 => 44100,
            1 => 48000,
            2 => 32000,
            _ => return Err(invalid("sampling_frequency", 2, "reserved".into())),
        };
        let sample_rate = match version {
            MpegVersion::Mpeg1 => base_rate,
            MpegVersion::Mpeg2 => base_rate / 2,
            MpegVersion::Mpeg25 => base_rate / 4,
        };
        let padding = (b2 >> 1) & 1 == 1;
        let channels = if b3 >> 6 == 0b11 { 1 } else { 2 };
        if b3 & 0b11 == 0b10 {
            return Err(invalid("emphasis", 3, "reserved value".into()));
        }

        let samples_per_frame = match (layer, version) {
            (1, _) => 384,
            (2, _) | (3, MpegVersion::Mpeg1) => 1152,
            _ => 576,
        };
        // bits per frame = samples * bitrate / rate; layer I counts 4-byte slots.
        let bitrate = u64::from(bitrate_kbps) * 1000;
        let rate = u64::from(sample_rate);
        let frame_length = if layer == 1 {
            (12 * bitrate / rate + u64::from(padding)) * 4
        } else {
            u64::from(samples_per_frame) / 8 * bitrate / rate + u64::from(padding)
        };

        Ok(Mp3Header {
            version,
            layer,
            bitrate_kbps,
            sample_rate,
            channels,
            samples_per_frame,
            // At most 144 * 448000 / 8000 + 4 bytes: always fits.
            frame_length: usize::try_from(frame_length).unwrap_or(usize::MAX),
            padding,
        })
    }
}

fn invalid(field: &'static str, offset: usize, detail: String) -> CodecError {
    CodecError::invalid(WHAT, field, offset, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test data in media/testdata/, made with ffmpeg 5.1 (libmp3lame / mp2 encoders), e.g.
    // `ffmpeg -f lavfi -i sine=frequency=440:sample_rate=44100 -ac 2 -t 1 -c:a libmp3lame
    //  -ar 44100 -f flv out.flv`; `*.flvtag.bin` is the first audio tag body (FLV audio header
    // byte, then the frame), `*.frame.bin` the first frame of a raw `-f mp3` / `-f mp2` file.
    // The expected rate / channels / bit rate are what ffprobe reports for the source file.

    const STEREO_44100: &[u8] =
        include_bytes!("../../testdata/ffmpeg-libmp3lame-44100-stereo.flvtag.bin");
    const MONO_22050: &[u8] =
        include_bytes!("../../testdata/ffmpeg-libmp3lame-22050-mono.flvtag.bin");
    const MONO_11025: &[u8] =
        include_bytes!("../../testdata/ffmpeg-libmp3lame-11025-mono.flvtag.bin");
    const MONO_8000: &[u8] = include_bytes!("../../testdata/ffmpeg-libmp3lame-8000-mono.frame.bin");
    const MP2_48000: &[u8] = include_bytes!("../../testdata/ffmpeg-mp2-48000-stereo.frame.bin");

    #[test]
    fn libmp3lame_44100_stereo() {
        // FLV audio header 0x2f: MP3, 44 kHz, 16-bit, stereo.
        assert_eq!(STEREO_44100[0], 0x2f);
        let h = Mp3Header::parse(&STEREO_44100[1..]).unwrap();
        assert_eq!(h.version, MpegVersion::Mpeg1);
        assert_eq!(h.layer, 3);
        assert_eq!(h.bitrate_kbps, 128);
        assert_eq!(h.sample_rate, 44100);
        assert_eq!(h.channels, 2);
        assert_eq!(h.samples_per_frame, 1152);
        assert!(!h.padding);
        assert_eq!(h.frame_length, 417);
        assert_eq!(h.frame_length, STEREO_44100.len() - 1);
    }

    #[test]
    fn libmp3lame_22050_mono() {
        let h = Mp3Header::parse(&MONO_22050[1..]).unwrap();
        assert_eq!(h.version, MpegVersion::Mpeg2);
        assert_eq!(h.layer, 3);
        assert_eq!(h.sample_rate, 22050);
        assert_eq!(h.channels, 1);
        assert_eq!(h.bitrate_kbps, 32);
        assert_eq!(h.samples_per_frame, 576);
        assert_eq!(h.frame_length, MONO_22050.len() - 1);
    }

    #[test]
    fn libmp3lame_11025_mono() {
        let h = Mp3Header::parse(&MONO_11025[1..]).unwrap();
        assert_eq!(h.version, MpegVersion::Mpeg25);
        assert_eq!(h.sample_rate, 11025);
        assert_eq!(h.channels, 1);
        assert_eq!(h.bitrate_kbps, 16);
        assert_eq!(h.samples_per_frame, 576);
        assert_eq!(h.frame_length, MONO_11025.len() - 1);
    }

    #[test]
    fn libmp3lame_8000_mono() {
        let h = Mp3Header::parse(MONO_8000).unwrap();
        assert_eq!(h.version, MpegVersion::Mpeg25);
        assert_eq!(h.sample_rate, 8000);
        assert_eq!(h.channels, 1);
        assert_eq!(h.bitrate_kbps, 8);
        assert_eq!(h.samples_per_frame, 576);
        assert_eq!(h.frame_length, 72);
        assert_eq!(h.frame_length, MONO_8000.len());
    }

    #[test]
    fn mp2_48000_stereo() {
        let h = Mp3Header::parse(MP2_48000).unwrap();
        assert_eq!(h.version, MpegVersion::Mpeg1);
        assert_eq!(h.layer, 2);
        assert_eq!(h.sample_rate, 48000);
        assert_eq!(h.channels, 2);
        assert_eq!(h.bitrate_kbps, 384);
        assert_eq!(h.samples_per_frame, 1152);
        assert_eq!(h.frame_length, 1152);
        assert_eq!(h.frame_length, MP2_48000.len());
    }

    #[test]
    fn layer_one_and_padding() {
        // MPEG-1 layer I, 448 kbit/s, 32 kHz, padded: (12 * 448000 / 32000 + 1) * 4 = 676.
        let h = Mp3Header::parse(&[0xff, 0xff, 0xea, 0x00]).unwrap();
        assert_eq!((h.layer, h.bitrate_kbps, h.sample_rate), (1, 448, 32000));
        assert_eq!(h.samples_per_frame, 384);
        assert!(h.padding);
        assert_eq!(h.frame_length, 676);
        // MPEG-1 layer III 128k 44.1k padded: 418 bytes.
        let h = Mp3Header::parse(&[0xff, 0xfb, 0x92, 0x64]).unwrap();
        assert_eq!(h.frame_length, 418);
    }

    #[test]
    fn rejects_bad_headers() {
        let err = |d: &[u8]| Mp3Header::parse(d).unwrap_err();
        assert!(matches!(err(&[]), CodecError::Truncated { offset: 0, .. }));
        assert!(matches!(
            err(&[0xff, 0xfb, 0x90]),
            CodecError::Truncated { .. }
        ));
        assert!(matches!(
            err(&[0xfe, 0xfb, 0x90, 0x64]),
            CodecError::Invalid {
                field: "syncword",
                ..
            }
        ));
        // reserved version 01
        assert!(matches!(
            err(&[0xff, 0xeb, 0x90, 0x64]),
            CodecError::Invalid { field: "ID", .. }
        ));
        // reserved layer 00
        assert!(matches!(
            err(&[0xff, 0xf9, 0x90, 0x64]),
            CodecError::Invalid { field: "layer", .. }
        ));
        // free format
        assert!(matches!(
            err(&[0xff, 0xfb, 0x00, 0x64]),
            CodecError::Unsupported { .. }
        ));
        // bitrate index 15
        assert!(matches!(
            err(&[0xff, 0xfb, 0xf0, 0x64]),
            CodecError::Invalid {
                field: "bitrate_index",
                ..
            }
        ));
        // reserved sampling frequency
        assert!(matches!(
            err(&[0xff, 0xfb, 0x9c, 0x64]),
            CodecError::Invalid {
                field: "sampling_frequency",
                ..
            }
        ));
        // reserved emphasis
        assert!(matches!(
            err(&[0xff, 0xfb, 0x90, 0x66]),
            CodecError::Invalid {
                field: "emphasis",
                ..
            }
        ));
    }

    #[test]
    fn every_header_is_handled() {
        // Exhaustive over the bytes that carry fields: no panic, and sane results.
        for b1 in 0xe0..=0xffu8 {
            for b2 in 0..=255u8 {
                for b3 in [0x00u8, 0x44, 0xc0, 0xc2, 0xc3] {
                    if let Ok(h) = Mp3Header::parse(&[0xff, b1, b2, b3]) {
                        assert!(h.frame_length >= 4 && h.frame_length <= 2884, "{h:?}");
                        assert!((1..=2).contains(&h.channels));
                    }
                }
            }
        }
    }
}
