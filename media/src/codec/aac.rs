//! AAC `AudioSpecificConfig` (ISO/IEC 14496-3 section 1.6.2.1), as carried in an FLV AAC
//! sequence header (`AACPacketType` 0) and in the `esds` box of MP4.
//!
//! Parsed: audio object type with the escape (1.6.2.1, `GetAudioObjectType`), sampling
//! frequency index with the explicit 24-bit frequency, channel configuration (table 1.19, and the
//! `program_config_element` of 4.4.1.1 when it is 0), explicit hierarchical SBR / PS signalling
//! (object types 5 and 29), `GASpecificConfig` (4.4.1) `frameLengthFlag`, and the
//! backward-compatible sync extensions 0x2b7 (SBR) and 0x548 (PS) at the end of the config.

use bytes::Bytes;

use super::CodecError;

const WHAT: &str = "AudioSpecificConfig";

/// Sampling frequencies by `samplingFrequencyIndex` (ISO/IEC 14496-3 table 1.18); 13 and 14
/// are reserved and 15 means an explicit 24-bit frequency follows.
const SAMPLING_FREQUENCIES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Most bits the config may take; far more than any real config (a PCE comment is at most 255
/// bytes). Only guards the arithmetic, the reader itself never reads past the record.
const MAX_RECORD_BYTES: usize = 1 << 16;

/// An AudioSpecificConfig as in ISO/IEC 14496-3 section 1.6.2.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// The config exactly as received (the `esds` DecoderSpecificInfo payload).
    pub record: Bytes,
    /// The first signalled audio object type: 2 for AAC LC, 5 for HE-AAC (explicit SBR),
    /// 29 for HE-AACv2 (explicit SBR + PS). With backward-compatible (sync extension)
    /// signalling this stays the core type, 2.
    pub object_type: u8,
    /// `samplingFrequencyIndex` of the core, `None` when an explicit frequency was given.
    pub sampling_frequency_index: Option<u8>,
    /// Output sample rate in Hz: the SBR extension rate when SBR is signalled with a higher
    /// rate than the core, otherwise the core rate.
    pub sample_rate: u32,
    /// `channelConfiguration` as signalled (0 = described by a program config element).
    pub channel_configuration: u8,
    /// Output channel count. With parametric stereo signalled, a mono core decodes to 2.
    pub channels: u8,
    /// PCM samples per channel in one access unit, at [`AudioSpecificConfig::sample_rate`]:
    /// 1024 or 960 for AAC (2048 / 1920 when SBR doubles the rate), 512 / 480 for AAC LD.
    pub frame_length: u32,
    /// Whether SBR is present: `Some` when signalled (explicitly or by a sync extension),
    /// `None` when the config does not say (implicit signalling is still possible).
    pub sbr: Option<bool>,
    /// Whether parametric stereo is present, `None` when not signalled.
    pub ps: Option<bool>,
    /// With explicit hierarchical signalling (object type 5 or 29), the underlying core object
    /// type read after the extension sampling frequency (normally 2, AAC LC). `None` otherwise;
    /// the core type is then [`AudioSpecificConfig::object_type`].
    pub extension_object_type: Option<u8>,
    /// The SBR extension sampling frequency in Hz, when SBR is signalled as present.
    pub extension_sample_rate: Option<u32>,
}

impl AudioSpecificConfig {
    /// Parses an AudioSpecificConfig. Never panics; errors say which field and byte failed.
    pub fn parse(record: Bytes) -> Result<Self, CodecError> {
        if record.len() > MAX_RECORD_BYTES {
            return Err(CodecError::Unsupported {
                what: WHAT,
                detail: format!("config of {} bytes", record.len()),
            });
        }
        let mut r = BitReader::new(&record);

        let object_type = read_object_type(&mut r)?;
        if object_type == 0 {
            return Err(invalid(&r, "audioObjectType", "0 (null object)".into()));
        }
        let (sampling_frequency_index, core_rate) = read_sampling_frequency(&mut r)?;
        let channel_configuration = r.read(4)? as u8;

        let mut sbr = None;
        let mut ps = None;
        let mut extension_object_type = None;
        let mut extension_sample_rate = None;
        let mut core_type = object_type;
        if object_type == 5 || object_type == 29 {
            sbr = Some(true);
            if object_type == 29 {
                ps = Some(true);
            }
            let (_, ext_rate) = read_sampling_frequency(&mut r)?;
            extension_sample_rate = Some(ext_rate);
            core_type = read_object_type(&mut r)?;
            extension_object_type = Some(core_type);
            if core_type == 22 {
                // extensionChannelConfiguration (ER BSAC only).
                r.read(4)?;
            }
        }

        let ga = match core_type {
            1 | 2 | 3 | 4 | 6 | 7 | 17 | 19 | 20 | 21 | 22 | 23 => {
                read_ga_specific_config(&mut r, core_type, channel_configuration)?
            }
            other => {
                return Err(CodecError::Unsupported {
                    what: WHAT,
                    detail: format!("audio object type {other}"),
                })
            }
        };

        let channels = match channel_configuration {
            0 => ga.pce_channels.ok_or_else(|| {
                invalid(
                    &r,
                    "program_config_element",
                    "channel configuration 0 without channels".into(),
                )
            })?,
            1..=6 => channel_configuration,
            7 | 12 | 14 => 8,
            11 => 7,
            13 => 24,
            other => {
                return Err(CodecError::Unsupported {
                    what: WHAT,
                    detail: format!("channel configuration {other}"),
                })
            }
        };

        // epConfig for the error resilient object types.
        if matches!(core_type, 17 | 19..=27 | 39) {
            r.read(2)?;
        }

        // Backward-compatible signalling: a sync extension after the core config.
        if extension_object_type.is_none() && r.remaining() >= 16 {
            parse_sync_extension(&mut r, &mut sbr, &mut ps, &mut extension_sample_rate)?;
        }

        let mut sample_rate = core_rate;
        let mut frame_length = ga.frame_length;
        if sbr == Some(true) {
            if let Some(ext) = extension_sample_rate {
                if ext > core_rate {
                    sample_rate = ext;
                    frame_length = frame_length.saturating_mul(2);
                }
            }
        }
        let channels = if ps == Some(true) && channels == 1 {
            2
        } else {
            channels
        };

        Ok(AudioSpecificConfig {
            record,
            object_type,
            sampling_frequency_index,
            sample_rate,
            channel_configuration,
            channels,
            frame_length,
            sbr,
            ps,
            extension_object_type,
            extension_sample_rate,
        })
    }

    /// RFC 6381 codec string `mp4a.40.N`, N being the signalled object type
    /// (2 = AAC LC, 5 = HE-AAC, 29 = HE-AACv2).
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// PCM samples per channel in one access unit at [`AudioSpecificConfig::sample_rate`]
    /// (the same as [`AudioSpecificConfig::frame_length`]).
    pub fn samples_per_frame(&self) -> u32 {
        self.frame_length
    }
}

struct GaConfig {
    frame_length: u32,
    pce_channels: Option<u8>,
}

/// `GASpecificConfig` (ISO/IEC 14496-3 4.4.1): returns the core frame length and, when the
/// channel configuration is 0, the channel count of the program config element.
fn read_ga_specific_config(
    r: &mut BitReader<'_>,
    object_type: u8,
    channel_configuration: u8,
) -> Result<GaConfig, CodecError> {
    let frame_length_flag = r.read(1)? == 1;
    let depends_on_core_coder = r.read(1)? == 1;
    if depends_on_core_coder {
        r.read(14)?; // coreCoderDelay
    }
    let extension_flag = r.read(1)? == 1;
    let pce_channels = if channel_configuration == 0 {
        Some(read_program_config_element(r)?)
    } else {
        None
    };
    if object_type == 6 || object_type == 20 {
        r.read(3)?; // layerNr
    }
    if extension_flag {
        if object_type == 22 {
            r.read(5)?; // numOfSubFrame
            r.read(11)?; // layer_length
        }
        if matches!(object_type, 17 | 19 | 20 | 23) {
            r.read(3)?; // aacSection/Scalefactor/SpectralDataResilienceFlag
        }
        r.read(1)?; // extensionFlag3
    }
    let frame_length = match (object_type, frame_length_flag) {
        (23, false) => 512,
        (23, true) => 480,
        (_, false) => 1024,
        (_, true) => 960,
    };
    Ok(GaConfig {
        frame_length,
        pce_channels,
    })
}

/// `program_config_element` (ISO/IEC 14496-3 4.4.1.1, table 4.2): the channel count.
fn read_program_config_element(r: &mut BitReader<'_>) -> Result<u8, CodecError> {
    r.read(4)?; // element_instance_tag
    r.read(2)?; // object_type
    r.read(4)?; // sampling_frequency_index
    let front = r.read(4)?;
    let side = r.read(4)?;
    let back = r.read(4)?;
    let lfe = r.read(2)?;
    let assoc = r.read(3)?;
    let cc = r.read(4)?;
    if r.read(1)? == 1 {
        r.read(4)?; // mono_mixdown_element_number
    }
    if r.read(1)? == 1 {
        r.read(4)?; // stereo_mixdown_element_number
    }
    if r.read(1)? == 1 {
        r.read(3)?; // matrix_mixdown_idx, pseudo_surround_enable
    }
    let mut channels: u32 = 0;
    for _ in 0..(front + side + back) {
        let is_cpe = r.read(1)? == 1;
        r.read(4)?; // element_tag_select
        channels += if is_cpe { 2 } else { 1 };
    }
    for _ in 0..lfe {
        r.read(4)?;
        channels += 1;
    }
    for _ in 0..assoc {
        r.read(4)?;
    }
    for _ in 0..cc {
        r.read(5)?; // cc_element_is_ind_sw, valid_cc_element_tag_select
    }
    r.byte_align();
    let comment_bytes = r.read(8)?;
    r.skip(comment_bytes as usize * 8)?;
    if channels == 0 {
        return Err(invalid(
            r,
            "program_config_element",
            "no channel elements".into(),
        ));
    }
    // At most 45 elements of 2 channels plus 3 LFE: always fits.
    Ok(u8::try_from(channels).unwrap_or(u8::MAX))
}

/// The sync extensions of ISO/IEC 14496-3 1.6.2.1 (backward-compatible SBR / PS signalling).
/// Bits that are not a recognised sync extension are ignored (padding, unknown data).
fn parse_sync_extension(
    r: &mut BitReader<'_>,
    sbr: &mut Option<bool>,
    ps: &mut Option<bool>,
    extension_sample_rate: &mut Option<u32>,
) -> Result<(), CodecError> {
    if r.read(11)? != 0x2b7 {
        return Ok(());
    }
    let ext_type = read_object_type(r)?;
    if ext_type == 5 {
        let present = r.read(1)? == 1;
        *sbr = Some(present);
        if present {
            let (_, rate) = read_sampling_frequency(r)?;
            *extension_sample_rate = Some(rate);
            if r.remaining() >= 12 && r.read(11)? == 0x548 {
                *ps = Some(r.read(1)? == 1);
            }
        }
    }
    Ok(())
}

/// `GetAudioObjectType()`: 5 bits, 31 escapes to 32 + 6 more bits.
fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, CodecError> {
    let t = r.read(5)? as u8;
    if t == 31 {
        Ok(32 + r.read(6)? as u8)
    } else {
        Ok(t)
    }
}

/// `samplingFrequencyIndex` and, for index 15, the explicit 24-bit `samplingFrequency`.
fn read_sampling_frequency(r: &mut BitReader<'_>) -> Result<(Option<u8>, u32), CodecError> {
    let offset = r.byte_offset();
    let index = r.read(4)? as u8;
    if index == 15 {
        let rate = r.read(24)?;
        if rate == 0 {
            return Err(CodecError::Invalid {
                what: WHAT,
                field: "samplingFrequency",
                offset,
                detail: "explicit frequency 0".into(),
            });
        }
        return Ok((None, rate));
    }
    match SAMPLING_FREQUENCIES.get(usize::from(index)) {
        Some(&rate) => Ok((Some(index), rate)),
        None => Err(CodecError::Invalid {
            what: WHAT,
            field: "samplingFrequencyIndex",
            offset,
            detail: format!("reserved index {index}"),
        }),
    }
}

fn invalid(r: &BitReader<'_>, field: &'static str, detail: String) -> CodecError {
    CodecError::Invalid {
        what: WHAT,
        field,
        offset: r.byte_offset(),
        detail,
    }
}

/// MSB-first bit reader over a byte slice that reports truncation instead of panicking.
struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits; never more than `data.len() * 8`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn total_bits(&self) -> usize {
        self.data.len().saturating_mul(8)
    }

    fn remaining(&self) -> usize {
        self.total_bits().saturating_sub(self.pos)
    }

    fn byte_offset(&self) -> usize {
        self.pos / 8
    }

    fn truncated(&self) -> CodecError {
        CodecError::Truncated {
            what: WHAT,
            offset: self.data.len(),
        }
    }

    /// Reads `n` (at most 32) bits.
    fn read(&mut self, n: u32) -> Result<u32, CodecError> {
        debug_assert!(n <= 32);
        if n as usize > self.remaining() {
            return Err(self.truncated());
        }
        let mut value: u32 = 0;
        for _ in 0..n {
            let byte = self.data.get(self.pos / 8).copied().unwrap_or(0);
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            value = (value << 1) | u32::from(bit);
            self.pos += 1;
        }
        Ok(value)
    }

    fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        if n > self.remaining() {
            return Err(self.truncated());
        }
        self.pos += n;
        Ok(())
    }

    /// Advances to the next byte boundary (relative to the start of the config).
    fn byte_align(&mut self) {
        let misalign = self.pos % 8;
        if misalign != 0 {
            self.pos = (self.pos + 8 - misalign).min(self.total_bits());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<AudioSpecificConfig, CodecError> {
        AudioSpecificConfig::parse(Bytes::copy_from_slice(bytes))
    }

    // The following configs are the FLV AAC sequence header bodies (after `af 00`) written by
    // `ffmpeg -f lavfi -i sine=frequency=440:sample_rate=R -ac C -t 1 -c:a aac -f flv out.flv`
    // (ffmpeg 5.1, native aac encoder). ffprobe reports the rate and channel count in the name.
    // ffmpeg appends a 0x2b7 sync extension saying "no SBR".

    #[test]
    fn ffmpeg_lc_44100_stereo() {
        let c = parse(&[0x12, 0x10, 0x56, 0xe5, 0x00]).unwrap();
        assert_eq!(c.object_type, 2);
        assert_eq!(c.sampling_frequency_index, Some(4));
        assert_eq!(c.sample_rate, 44100);
        assert_eq!(c.channel_configuration, 2);
        assert_eq!(c.channels, 2);
        assert_eq!(c.frame_length, 1024);
        assert_eq!(c.samples_per_frame(), 1024);
        assert_eq!(c.sbr, Some(false));
        assert_eq!(c.ps, None);
        assert_eq!(c.extension_object_type, None);
        assert_eq!(c.extension_sample_rate, None);
        assert_eq!(c.codec_string(), "mp4a.40.2");
        assert_eq!(&c.record[..], &[0x12, 0x10, 0x56, 0xe5, 0x00]);
    }

    #[test]
    fn ffmpeg_lc_48000_mono() {
        let c = parse(&[0x11, 0x88, 0x56, 0xe5, 0x00]).unwrap();
        assert_eq!(
            (c.sample_rate, c.channels, c.frame_length),
            (48000, 1, 1024)
        );
        assert_eq!(c.sampling_frequency_index, Some(3));
        assert_eq!(c.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn ffmpeg_lc_22050_stereo() {
        let c = parse(&[0x13, 0x90, 0x56, 0xe5, 0x00]).unwrap();
        assert_eq!(
            (c.sample_rate, c.channels, c.frame_length),
            (22050, 2, 1024)
        );
        assert_eq!(c.sampling_frequency_index, Some(7));
    }

    #[test]
    fn two_byte_lc_without_extension() {
        let c = parse(&[0x12, 0x10]).unwrap();
        assert_eq!((c.sample_rate, c.channels, c.sbr), (44100, 2, None));
    }

    #[test]
    fn explicit_frequency() {
        // object type 2 | index 15 | 24-bit 44100 (0x00ac44) | channels 2 | GA 000
        // 00010 1111 000000001010110001000100 0010 000 -> pad to bytes.
        let c = parse(&[0x17, 0x80, 0x56, 0x22, 0x10, 0x00]).unwrap();
        assert_eq!(c.sampling_frequency_index, None);
        assert_eq!(c.sample_rate, 44100);
        assert_eq!(c.channels, 2);
        assert_eq!(c.frame_length, 1024);
        // An unusual explicit rate, 8000 Hz mono.
        let c = parse(&bits_to_bytes(
            "00010 1111 000000000001111101000000 0001 000",
        ))
        .unwrap();
        assert_eq!((c.sample_rate, c.channels), (8000, 1));
    }

    // The hand-made HE-AAC configs below were checked by splicing them into the sequence header
    // of the 22050 Hz ffmpeg FLV: ffprobe then reports 44100 Hz / 2 channels for HE-AAC and
    // 48000 Hz / 2 channels for HE-AACv2, as asserted here.

    #[test]
    fn he_aac_explicit() {
        // 00101 (5) 0111 (22050) 0010 (2 ch) 0100 (ext 44100) 00010 (LC) 000 (GA)
        let c = parse(&[0x2b, 0x92, 0x08, 0x00]).unwrap();
        assert_eq!(c.object_type, 5);
        assert_eq!(c.sampling_frequency_index, Some(7));
        assert_eq!(c.sbr, Some(true));
        assert_eq!(c.ps, None);
        assert_eq!(c.extension_object_type, Some(2));
        assert_eq!(c.extension_sample_rate, Some(44100));
        assert_eq!(c.sample_rate, 44100);
        assert_eq!(c.channels, 2);
        assert_eq!(c.frame_length, 2048);
        assert_eq!(c.codec_string(), "mp4a.40.5");
    }

    #[test]
    fn he_aac_v2_explicit() {
        // 11101 (29) 0110 (24000) 0001 (mono) 0011 (ext 48000) 00010 (LC) 000
        // 11101011 00001001 10001000 00000000
        let c = parse(&[0xeb, 0x09, 0x88, 0x00]).unwrap();
        assert_eq!(c.object_type, 29);
        assert_eq!((c.sbr, c.ps), (Some(true), Some(true)));
        assert_eq!(c.sample_rate, 48000);
        assert_eq!(c.channel_configuration, 1);
        assert_eq!(c.channels, 2);
        assert_eq!(c.frame_length, 2048);
        assert_eq!(c.codec_string(), "mp4a.40.29");
    }

    #[test]
    fn he_aac_backward_compatible_sync_extension() {
        // LC 22050 stereo (0x13 0x90), then sync extension 0x2b7, SBR present at 44100, and
        // sync extension 0x548 with PS present.
        let mut bits = String::from("0001001110010000");
        bits += "01010110111"; // 0x2b7
        bits += "00101"; // SBR
        bits += "1"; // sbrPresentFlag
        bits += "0100"; // 44100
        bits += "10101001000"; // 0x548
        bits += "1"; // psPresentFlag
        let bytes = bits_to_bytes(&bits);
        let c = parse(&bytes).unwrap();
        assert_eq!(c.object_type, 2);
        assert_eq!(c.sbr, Some(true));
        assert_eq!(c.ps, Some(true));
        assert_eq!(c.extension_sample_rate, Some(44100));
        assert_eq!(c.sample_rate, 44100);
        assert_eq!(c.frame_length, 2048);
        assert_eq!(c.channels, 2);
        assert_eq!(c.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn frame_length_960() {
        // 00010 0100 0010 1 0 0
        let c = parse(&[0x12, 0x14]).unwrap();
        assert_eq!(c.frame_length, 960);
    }

    #[test]
    fn escaped_object_type() {
        // 11111 000000 (32 + 0 = 32, layer-1, not AAC) -> unsupported
        let e = parse(&[0xf8, 0x00, 0x00, 0x00]).unwrap_err();
        assert!(matches!(e, CodecError::Unsupported { .. }), "{e:?}");
    }

    #[test]
    fn channel_configurations() {
        for (cfg, ch) in [
            (1u8, 1u8),
            (2, 2),
            (3, 3),
            (4, 4),
            (5, 5),
            (6, 6),
            (7, 8),
            (11, 7),
        ] {
            let bits = format!("00010 0100 {cfg:04b} 000").replace(' ', "");
            let c = parse(&bits_to_bytes(&bits)).unwrap();
            assert_eq!(c.channels, ch, "config {cfg}");
        }
        for cfg in [12u8, 14] {
            let bits = format!("00010 0100 {cfg:04b} 000").replace(' ', "");
            assert_eq!(parse(&bits_to_bytes(&bits)).unwrap().channels, 8);
        }
        for cfg in [8u8, 9, 10, 15] {
            let bits = format!("00010 0100 {cfg:04b} 000").replace(' ', "");
            assert!(matches!(
                parse(&bits_to_bytes(&bits)),
                Err(CodecError::Unsupported { .. })
            ));
        }
    }

    #[test]
    fn program_config_element() {
        // LC 48000 channel config 0, GA 000, then PCE describing 5.1:
        // tag 0000, object 01, sf 0011, front 0010 (C + L/R), side 0000, back 0001, lfe 01,
        // assoc 000, cc 0000, 3 mixdown flags 000,
        // front: 0 0000 (SCE), 1 0001 (CPE); back: 1 0010 (CPE); lfe: 0000
        // byte align, comment bytes 00000000
        let mut bits = String::from("00010 0011 0000 000");
        bits += "0000 01 0011 0010 0000 0001 01 000 0000 000";
        bits += "0 0000 1 0001 1 0010 0000";
        let bits = bits.replace(' ', "");
        let mut bytes = bits_to_bytes(&bits);
        bytes.push(0); // comment_field_bytes
        let c = parse(&bytes).unwrap();
        assert_eq!(c.channel_configuration, 0);
        assert_eq!(c.channels, 6);
        assert_eq!(c.sample_rate, 48000);
    }

    #[test]
    fn errors() {
        assert!(matches!(parse(&[]), Err(CodecError::Truncated { .. })));
        assert!(matches!(parse(&[0x12]), Err(CodecError::Truncated { .. })));
        // reserved sampling index 13
        assert!(matches!(
            parse(&[0x16, 0x90]),
            Err(CodecError::Invalid {
                field: "samplingFrequencyIndex",
                ..
            })
        ));
        // object type 0
        assert!(matches!(
            parse(&[0x00, 0x00]),
            Err(CodecError::Invalid { .. })
        ));
        // explicit frequency 0
        assert!(matches!(
            parse(&[0x17, 0x80, 0x00, 0x00, 0x10, 0x00]),
            Err(CodecError::Invalid { .. })
        ));
    }

    #[test]
    fn truncated_prefixes_never_panic() {
        let full = [0x2b, 0x92, 0x08, 0x00];
        for n in 0..full.len() {
            let _ = parse(&full[..n]);
        }
        // Every 2-byte and many 3-byte inputs.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = parse(&[a, b]);
                let _ = parse(&[a, b, a ^ b]);
            }
        }
    }

    fn bits_to_bytes(bits: &str) -> Vec<u8> {
        let bits: Vec<u8> = bits.bytes().filter(|b| *b == b'0' || *b == b'1').collect();
        bits.chunks(8)
            .map(|chunk| {
                let mut v = 0u8;
                for i in 0..8 {
                    v = (v << 1) | u8::from(chunk.get(i) == Some(&b'1'));
                }
                v
            })
            .collect()
    }
}
