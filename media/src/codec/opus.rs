//! Opus: the identification header (`OpusHead`, RFC 7845 section 5.1), which Enhanced RTMP v2
//! carries as the audio sequence start, and the packet duration read from a packet's TOC byte
//! (RFC 6716 section 3.1). Opus always decodes at 48 kHz: every duration here counts 48 kHz
//! samples, whatever rate the encoder's input had.

use bytes::Bytes;

use super::CodecError;

const WHAT: &str = "OpusHead";

/// Opus's decoding rate: the timescale of every Opus track.
pub const SAMPLE_RATE: u32 = 48_000;

/// An Opus identification header as in RFC 7845 section 5.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusHead {
    /// Output channel count (1..=255).
    pub channels: u8,
    /// Samples (at 48 kHz) to discard from the decoder's output at the start of the stream.
    pub pre_skip: u16,
    /// The encoder's input rate, for information only (0: unspecified).
    pub input_sample_rate: u32,
    /// Gain to apply, Q7.8 dB.
    pub output_gain: i16,
    /// Channel mapping family; for families other than 0, `mapping` is the stream count,
    /// coupled count and channel mapping table, as in the header.
    pub mapping_family: u8,
    pub mapping: Bytes,
    /// The header as received (the WebCodecs `description`).
    pub record: Bytes,
}

impl OpusHead {
    /// Parses an `OpusHead` packet.
    pub fn parse(record: Bytes) -> Result<Self, CodecError> {
        let b = &record[..];
        if b.len() < 19 {
            return Err(CodecError::Truncated {
                what: WHAT,
                offset: b.len(),
            });
        }
        if &b[..8] != b"OpusHead" {
            return Err(invalid("magic", 0, format!("{:02x?}", &b[..8])));
        }
        // Major version 0 (upper four bits) is the only one defined; minor versions are
        // backwards compatible.
        if b[8] >> 4 != 0 {
            return Err(CodecError::Unsupported {
                what: WHAT,
                detail: format!("version {}", b[8]),
            });
        }
        let channels = b[9];
        if channels == 0 {
            return Err(invalid("channel count", 9, "0".into()));
        }
        let mapping_family = b[18];
        let mapping = if mapping_family == 0 {
            if channels > 2 {
                return Err(invalid(
                    "channel count",
                    9,
                    format!("{channels} with mapping family 0"),
                ));
            }
            Bytes::new()
        } else {
            let need = 21 + usize::from(channels);
            if b.len() < need {
                return Err(CodecError::Truncated {
                    what: WHAT,
                    offset: b.len(),
                });
            }
            record.slice(19..need)
        };
        Ok(OpusHead {
            channels,
            pre_skip: u16::from_le_bytes([b[10], b[11]]),
            input_sample_rate: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
            output_gain: i16::from_le_bytes([b[16], b[17]]),
            mapping_family,
            mapping,
            record,
        })
    }

    /// The header a stream without a sequence start (optional for Opus) implies from one of
    /// its packets: mono or stereo as the packet's TOC says, no pre-skip, mapping family 0.
    pub fn implied_by(packet: &[u8]) -> Self {
        let channels = 1 + u8::from(packet_stereo(packet));
        let mut b = b"OpusHead".to_vec();
        b.extend_from_slice(&[1, channels, 0, 0]);
        b.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
        b.extend_from_slice(&[0, 0, 0]);
        OpusHead {
            channels,
            pre_skip: 0,
            input_sample_rate: SAMPLE_RATE,
            output_gain: 0,
            mapping_family: 0,
            mapping: Bytes::new(),
            record: Bytes::from(b),
        }
    }
}

/// The number of 48 kHz samples in an Opus packet, from its TOC byte (and, for code 3, the
/// frame count byte): RFC 6716 section 3.1. `None` for an empty or malformed packet.
pub fn packet_samples(packet: &[u8]) -> Option<u32> {
    let &toc = packet.first()?;
    let config = toc >> 3;
    // Frame sizes in units of 2.5 ms (120 samples): SILK-only 10/20/40/60 ms, hybrid 10/20 ms,
    // CELT-only 2.5/5/10/20 ms.
    let units = match config {
        0..=11 => [4, 8, 16, 24][usize::from(config & 3)],
        12..=15 => [4, 8][usize::from(config & 1)],
        _ => [1, 2, 4, 8][usize::from(config & 3)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(packet.get(1)? & 0x3f),
    };
    let samples = units * 120 * frames;
    // A packet lasts at most 120 ms.
    (frames > 0 && samples <= 5760).then_some(samples)
}

/// Whether the packet's TOC says stereo.
fn packet_stereo(packet: &[u8]) -> bool {
    packet.first().is_some_and(|toc| toc & 0x04 != 0)
}

fn invalid(field: &'static str, offset: usize, detail: String) -> CodecError {
    CodecError::invalid(WHAT, field, offset, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpusHead ffmpeg 5.1's libopus wrapper writes for 48 kHz stereo, `-application
    /// lowdelay`.
    const FFMPEG_HEAD: &[u8] = &[
        b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', // magic
        1,    // version
        2,    // channels
        0x78, 0x00, // pre-skip 120
        0x80, 0xbb, 0x00, 0x00, // input rate 48000
        0x00, 0x00, // gain
        0,    // mapping family
    ];

    #[test]
    fn parses_a_stereo_head() {
        let h = OpusHead::parse(Bytes::from_static(FFMPEG_HEAD)).unwrap();
        assert_eq!(h.channels, 2);
        assert_eq!(h.pre_skip, 120);
        assert_eq!(h.input_sample_rate, 48_000);
        assert_eq!(h.mapping_family, 0);
        assert!(h.mapping.is_empty());
        assert_eq!(&h.record[..], FFMPEG_HEAD);
    }

    #[test]
    fn rejects_bad_heads() {
        assert!(OpusHead::parse(Bytes::from_static(&FFMPEG_HEAD[..18])).is_err());
        let mut bad = FFMPEG_HEAD.to_vec();
        bad[0] = b'X';
        assert!(OpusHead::parse(Bytes::from(bad)).is_err());
        let mut v = FFMPEG_HEAD.to_vec();
        v[8] = 0x10;
        assert!(matches!(
            OpusHead::parse(Bytes::from(v)),
            Err(CodecError::Unsupported { .. })
        ));
        let mut six = FFMPEG_HEAD.to_vec();
        six[9] = 6;
        assert!(
            OpusHead::parse(Bytes::from(six.clone())).is_err(),
            "6 ch, family 0"
        );
        six[18] = 1;
        assert!(
            OpusHead::parse(Bytes::from(six.clone())).is_err(),
            "no table"
        );
        six.extend_from_slice(&[4, 2, 0, 4, 1, 2, 3, 5]);
        let h = OpusHead::parse(Bytes::from(six)).unwrap();
        assert_eq!(h.mapping.len(), 8);
    }

    #[test]
    fn implied_head_round_trips() {
        let h = OpusHead::implied_by(&[0x04]);
        assert_eq!(h.channels, 2);
        assert_eq!(OpusHead::implied_by(&[0x00]).channels, 1);
        assert_eq!(OpusHead::parse(h.record.clone()).unwrap(), h);
    }

    #[test]
    fn packet_durations() {
        // CELT-only 10 ms, one frame (config 30, code 0), stereo.
        assert_eq!(packet_samples(&[(30 << 3) | 0x04]), Some(480));
        assert!(packet_stereo(&[(30 << 3) | 0x04]));
        // CELT 2.5 ms, two frames.
        assert_eq!(packet_samples(&[(16 << 3) | 1]), Some(240));
        // SILK 60 ms, code 3 with 2 frames: 120 ms.
        assert_eq!(packet_samples(&[(3 << 3) | 3, 2]), Some(5760));
        // Hybrid 20 ms, code 3, 3 frames would be 60 ms.
        assert_eq!(packet_samples(&[(13 << 3) | 3, 3]), Some(2880));
        // Over 120 ms, zero frames, truncated, empty.
        assert_eq!(packet_samples(&[(3 << 3) | 3, 3]), None);
        assert_eq!(packet_samples(&[(3 << 3) | 3, 0]), None);
        assert_eq!(packet_samples(&[(3 << 3) | 3]), None);
        assert_eq!(packet_samples(&[]), None);
    }
}
