//! H.264 / AVC: the `avcC` decoder configuration record and the sequence parameter set.
//!
//! - [`AvcConfig::parse`] reads an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 section
//!   5.3.3.1), which is what an FLV AVC sequence header and an MP4 `avcC` box carry.
//! - [`parse_sps`] reads a sequence parameter set NAL unit (ITU-T H.264 section 7.3.2.1.1) far
//!   enough to know the display size, bit depth, chroma format, sample aspect ratio and frame
//!   rate (VUI, Annex E.1.1, up to and including `timing_info`).

use bytes::Bytes;

use super::bits::{rbsp_from_nal, BitReader, ByteCursor};
use super::{CodecError, VideoInfo};

const WHAT_RECORD: &str = "AVCDecoderConfigurationRecord";
const WHAT_SPS: &str = "H.264 SPS";

/// Largest width or height accepted: MP4 sample entries store them as 16-bit integers.
const MAX_DIMENSION: u64 = 65535;

/// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 section 5.3.3.1), with the facts of its
/// first SPS.
///
/// `sps` and `pps` are zero-copy slices of `record` (each a whole NAL unit, header byte
/// included, without length prefix or start code).
#[derive(Debug, Clone, PartialEq)]
pub struct AvcConfig {
    /// The record exactly as received.
    pub record: Bytes,
    /// `AVCProfileIndication`.
    pub profile_idc: u8,
    /// `profile_compatibility`: the constraint_set flags byte of the SPS.
    pub profile_compatibility: u8,
    /// `AVCLevelIndication`.
    pub level_idc: u8,
    /// `lengthSizeMinusOne + 1`: 1, 2 or 4.
    pub nal_length_size: u8,
    /// Sequence parameter set NAL units.
    pub sps: Vec<Bytes>,
    /// Picture parameter set NAL units.
    pub pps: Vec<Bytes>,
    /// Picture facts from the first SPS.
    pub info: VideoInfo,
}

impl AvcConfig {
    /// Parses an AVCDecoderConfigurationRecord and the first SPS in it.
    ///
    /// Real-world tolerance:
    /// - The reserved bits (`111111` before `lengthSizeMinusOne`, `111` before
    ///   `numOfSequenceParameterSets`) are not checked: some muxers write them as zeros.
    /// - The High-profile trailer (`chroma_format`, bit depths, SPS extensions) is optional:
    ///   many encoders (FFmpeg among them for years) omit it, others write it for any profile,
    ///   some write it truncated. Whatever follows the PPS list is ignored.
    /// - Zero-length parameter set entries are skipped.
    /// - The profile and level bytes of the record are kept as written, even when they differ
    ///   from the SPS (seen from some hardware encoders): the codec string is built from them,
    ///   as browsers expect it to match the `avcC` box.
    pub fn parse(record: Bytes) -> Result<AvcConfig, CodecError> {
        let mut c = ByteCursor::new(&record, WHAT_RECORD);
        let version = c.u8()?;
        if version != 1 {
            // FFmpeg also treats anything but 1 as "not avcC" (usually Annex B data).
            return Err(CodecError::Invalid {
                what: WHAT_RECORD,
                field: "configurationVersion",
                offset: 0,
                detail: format!("{version}, expected 1"),
            });
        }
        let profile_idc = c.u8()?;
        let profile_compatibility = c.u8()?;
        let level_idc = c.u8()?;
        let length_size_byte = c.u8()?;
        let nal_length_size = (length_size_byte & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(CodecError::Invalid {
                what: WHAT_RECORD,
                field: "lengthSizeMinusOne",
                offset: 4,
                detail: "2 (3-byte NAL lengths are not allowed)".to_string(),
            });
        }
        let num_sps = c.u8()? & 0x1f;
        let mut sps_ranges = Vec::with_capacity(usize::from(num_sps));
        for _ in 0..num_sps {
            let len = c.u16()?;
            let r = c.take(usize::from(len))?;
            if !r.is_empty() {
                sps_ranges.push(r);
            }
        }
        let num_pps = c.u8()?;
        let mut pps_ranges = Vec::with_capacity(usize::from(num_pps));
        for _ in 0..num_pps {
            let len = c.u16()?;
            let r = c.take(usize::from(len))?;
            if !r.is_empty() {
                pps_ranges.push(r);
            }
        }
        let first = sps_ranges.first().cloned().ok_or(CodecError::Invalid {
            what: WHAT_RECORD,
            field: "numOfSequenceParameterSets",
            offset: 5,
            detail: "no sequence parameter set".to_string(),
        })?;
        let sps_bytes = record.get(first).ok_or(CodecError::Truncated {
            what: WHAT_RECORD,
            offset: record.len(),
        })?;
        let info = parse_sps(sps_bytes)?.info();
        let sps = sps_ranges.into_iter().map(|r| record.slice(r)).collect();
        let pps = pps_ranges.into_iter().map(|r| record.slice(r)).collect();
        Ok(AvcConfig {
            record,
            profile_idc,
            profile_compatibility,
            level_idc,
            nal_length_size,
            sps,
            pps,
            info,
        })
    }

    /// RFC 6381 codec string, `avc1.PPCCLL` in lowercase hex (such as `avc1.64001f`).
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.profile_compatibility, self.level_idc
        )
    }
}

/// Frame cropping offsets of an H.264 SPS (section 7.4.2.1.1), in crop units, not pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameCrop {
    pub left: u32,
    pub right: u32,
    pub top: u32,
    pub bottom: u32,
}

/// `timing_info` of the VUI (H.264 Annex E.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub num_units_in_tick: u32,
    pub time_scale: u32,
    pub fixed_frame_rate: bool,
}

/// Colour description of the VUI (H.264 Annex E.2.1, Tables E-3 to E-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColourDescription {
    pub colour_primaries: u8,
    pub transfer_characteristics: u8,
    pub matrix_coefficients: u8,
}

/// The start of the VUI parameters (H.264 Annex E.1.1), read up to and including
/// `timing_info`; the HRD parameters and bitstream restrictions that follow are not read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vui {
    pub aspect_ratio_idc: Option<u8>,
    /// Sample aspect ratio from Table E-1 or `Extended_SAR` (255); `None` when unspecified,
    /// reserved, or an extended ratio with a zero term.
    pub sample_aspect_ratio: Option<(u16, u16)>,
    pub overscan_appropriate: Option<bool>,
    pub video_format: Option<u8>,
    pub video_full_range: Option<bool>,
    pub colour_description: Option<ColourDescription>,
    /// `(chroma_sample_loc_type_top_field, chroma_sample_loc_type_bottom_field)`.
    pub chroma_sample_loc: Option<(u32, u32)>,
    pub timing: Option<Timing>,
    /// Set when the VUI could not be read to the end of `timing_info`. The fields before the
    /// failure are kept; the SPS is still usable (its picture size does not depend on the VUI).
    pub error: Option<CodecError>,
}

/// An H.264 sequence parameter set, ITU-T H.264 section 7.3.2.1.1 (semantics 7.4.2.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    pub profile_idc: u8,
    /// constraint_set0_flag (MSB) to constraint_set5_flag and the two reserved zero bits: the
    /// byte that `avcC` calls `profile_compatibility`.
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub seq_parameter_set_id: u32,
    /// 0 = monochrome, 1 = 4:2:0, 2 = 4:2:2, 3 = 4:4:4 (1 when not signalled).
    pub chroma_format_idc: u8,
    pub separate_colour_plane: bool,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub seq_scaling_matrix_present: bool,
    pub log2_max_frame_num: u8,
    pub pic_order_cnt_type: u8,
    pub max_num_ref_frames: u32,
    pub gaps_in_frame_num_allowed: bool,
    pub pic_width_in_mbs: u32,
    pub pic_height_in_map_units: u32,
    pub frame_mbs_only: bool,
    pub mb_adaptive_frame_field: bool,
    pub direct_8x8_inference: bool,
    pub frame_crop: Option<FrameCrop>,
    /// Display width in pixels, after cropping.
    pub width: u32,
    /// Display height in pixels (of a frame, both fields), after cropping.
    pub height: u32,
    pub vui: Option<Vui>,
}

impl Sps {
    /// Frame rate from the VUI timing info: `time_scale / (2 * num_units_in_tick)`, reduced.
    ///
    /// H.264 counts ticks in field periods: a frame lasts two ticks (Annex E.2.1, equation
    /// E-6 with `DeltaTfiDivisor` 2 for a frame), for progressive and interlaced streams alike
    /// (x264 writes 60000/1001 ticks for 29.97 fps interlaced, 120/1 for 60 fps progressive).
    /// `None` when absent, when either term is zero (some encoders write zeros), or when the
    /// reduced ratio does not fit in `u32`.
    pub fn frame_rate(&self) -> Option<(u32, u32)> {
        let t = self.vui.as_ref()?.timing?;
        reduced_ratio(
            u64::from(t.time_scale),
            u64::from(t.num_units_in_tick).saturating_mul(2),
        )
    }

    /// The picture facts the rest of Lockstep needs.
    pub fn info(&self) -> VideoInfo {
        VideoInfo {
            width: self.width,
            height: self.height,
            frame_rate: self.frame_rate(),
            sample_aspect_ratio: self.vui.as_ref().and_then(|v| v.sample_aspect_ratio),
            bit_depth: self.bit_depth_luma,
            chroma_format_idc: self.chroma_format_idc,
        }
    }
}

/// Profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices
/// (H.264 section 7.3.2.1.1).
fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Parses an H.264 sequence parameter set NAL unit (header byte included, emulation
/// prevention bytes still in place), ITU-T H.264 section 7.3.2.1.1.
///
/// Errors before the VUI are fatal. Errors inside the VUI are recorded in [`Vui::error`] and
/// leave the SPS usable: streams with a VUI cut short exist (some IP cameras), and the picture
/// size does not depend on it.
pub fn parse_sps(nal: &[u8]) -> Result<Sps, CodecError> {
    let rbsp = rbsp_from_nal(nal);
    let mut r = BitReader::new(&rbsp, WHAT_SPS);

    let forbidden_zero = r.read_bit()?;
    let _nal_ref_idc = r.read_bits(2)?;
    let nal_unit_type = r.read_bits(5)?;
    if forbidden_zero {
        return Err(r.invalid("forbidden_zero_bit", "set"));
    }
    if nal_unit_type != 7 {
        return Err(r.invalid(
            "nal_unit_type",
            format!("{nal_unit_type}, expected 7 (SPS)"),
        ));
    }

    let profile_idc = r.read_u8()?;
    let constraint_flags = r.read_u8()?;
    let level_idc = r.read_u8()?;
    let seq_parameter_set_id = r.read_ue_max("seq_parameter_set_id", 31)?;

    let mut chroma_format_idc = 1u8;
    let mut separate_colour_plane = false;
    let mut bit_depth_luma = 8u8;
    let mut bit_depth_chroma = 8u8;
    let mut seq_scaling_matrix_present = false;
    if has_chroma_info(profile_idc) {
        chroma_format_idc = r.read_ue_max("chroma_format_idc", 3)? as u8;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.read_bit()?;
        }
        bit_depth_luma = 8 + r.read_ue_max("bit_depth_luma_minus8", 6)? as u8;
        bit_depth_chroma = 8 + r.read_ue_max("bit_depth_chroma_minus8", 6)? as u8;
        let _qpprime_y_zero_transform_bypass = r.read_bit()?;
        seq_scaling_matrix_present = r.read_bit()?;
        if seq_scaling_matrix_present {
            let lists = if chroma_format_idc != 3 { 8 } else { 12 };
            for i in 0..lists {
                if r.read_bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    let log2_max_frame_num = 4 + r.read_ue_max("log2_max_frame_num_minus4", 12)? as u8;
    let pic_order_cnt_type = r.read_ue_max("pic_order_cnt_type", 2)? as u8;
    match pic_order_cnt_type {
        0 => {
            r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.read_bit()?;
            let _offset_for_non_ref_pic = r.read_se()?;
            let _offset_for_top_to_bottom_field = r.read_se()?;
            let n = r.read_ue_max("num_ref_frames_in_pic_order_cnt_cycle", 255)?;
            for _ in 0..n {
                let _offset_for_ref_frame = r.read_se()?;
            }
        }
        _ => {}
    }
    let max_num_ref_frames = r.read_ue()?;
    let gaps_in_frame_num_allowed = r.read_bit()?;
    let pic_width_in_mbs = r.read_ue()?.saturating_add(1);
    let pic_height_in_map_units = r.read_ue()?.saturating_add(1);
    let frame_mbs_only = r.read_bit()?;
    let mb_adaptive_frame_field = if frame_mbs_only { false } else { r.read_bit()? };
    let direct_8x8_inference = r.read_bit()?;
    let frame_crop = if r.read_bit()? {
        Some(FrameCrop {
            left: r.read_ue()?,
            right: r.read_ue()?,
            top: r.read_ue()?,
            bottom: r.read_ue()?,
        })
    } else {
        None
    };
    let crop_offset = r.byte_offset();
    let vui_parameters_present = r.read_bit()?;

    // Section 7.4.2.1.1, equations 7-19 to 7-22.
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
    let (crop_unit_x, crop_unit_y) = match chroma_array_type {
        0 => (1u64, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let coded_width = u64::from(pic_width_in_mbs) * 16;
    let coded_height = u64::from(pic_height_in_map_units) * field_factor * 16;
    let crop = frame_crop.unwrap_or_default();
    let crop_x = crop_unit_x * (u64::from(crop.left) + u64::from(crop.right));
    let crop_y = crop_unit_y * (u64::from(crop.top) + u64::from(crop.bottom));
    let invalid_at = |field: &'static str, detail: String| CodecError::Invalid {
        what: WHAT_SPS,
        field,
        offset: crop_offset,
        detail,
    };
    let width = coded_width
        .checked_sub(crop_x)
        .filter(|w| *w > 0)
        .ok_or_else(|| {
            invalid_at(
                "frame_crop_left_offset",
                format!("cropping {crop_x} of {coded_width} pixels wide"),
            )
        })?;
    let height = coded_height
        .checked_sub(crop_y)
        .filter(|h| *h > 0)
        .ok_or_else(|| {
            invalid_at(
                "frame_crop_top_offset",
                format!("cropping {crop_y} of {coded_height} pixels high"),
            )
        })?;
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(CodecError::Unsupported {
            what: WHAT_SPS,
            detail: format!("picture size {width}x{height} (at most {MAX_DIMENSION})"),
        });
    }

    let vui = if vui_parameters_present {
        let mut vui = Vui::default();
        if let Err(e) = parse_vui(&mut r, &mut vui) {
            vui.error = Some(e);
        }
        Some(vui)
    } else {
        None
    };

    Ok(Sps {
        profile_idc,
        constraint_flags,
        level_idc,
        seq_parameter_set_id,
        chroma_format_idc,
        separate_colour_plane,
        bit_depth_luma,
        bit_depth_chroma,
        seq_scaling_matrix_present,
        log2_max_frame_num,
        pic_order_cnt_type,
        max_num_ref_frames,
        gaps_in_frame_num_allowed,
        pic_width_in_mbs,
        pic_height_in_map_units,
        frame_mbs_only,
        mb_adaptive_frame_field,
        direct_8x8_inference,
        frame_crop,
        // Both are <= MAX_DIMENSION.
        width: width as u32,
        height: height as u32,
        vui,
    })
}

/// Skips a `scaling_list(sizeOfScalingList)` (H.264 section 7.3.2.1.1.1). The number of
/// `delta_scale` codes depends on their values: a `nextScale` of 0 ends the list early.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let mut last_scale: i32 = 8;
    let mut next_scale: i32 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta_scale = r.read_se_range("delta_scale", -128, 127)?;
            next_scale = (last_scale + delta_scale + 256).rem_euclid(256);
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Reads the VUI (H.264 Annex E.1.1) up to and including `timing_info`, filling `vui` as it
/// goes so that a failure keeps what was read.
fn parse_vui(r: &mut BitReader<'_>, vui: &mut Vui) -> Result<(), CodecError> {
    if r.read_bit()? {
        let idc = r.read_u8()?;
        vui.aspect_ratio_idc = Some(idc);
        vui.sample_aspect_ratio = if idc == 255 {
            let w = r.read_bits(16)? as u16;
            let h = r.read_bits(16)? as u16;
            (w != 0 && h != 0).then_some((w, h))
        } else {
            sample_aspect_ratio_from_idc(idc)
        };
    }
    if r.read_bit()? {
        vui.overscan_appropriate = Some(r.read_bit()?);
    }
    if r.read_bit()? {
        vui.video_format = Some(r.read_bits(3)? as u8);
        vui.video_full_range = Some(r.read_bit()?);
        if r.read_bit()? {
            vui.colour_description = Some(ColourDescription {
                colour_primaries: r.read_u8()?,
                transfer_characteristics: r.read_u8()?,
                matrix_coefficients: r.read_u8()?,
            });
        }
    }
    if r.read_bit()? {
        let top = r.read_ue_max("chroma_sample_loc_type_top_field", 5)?;
        let bottom = r.read_ue_max("chroma_sample_loc_type_bottom_field", 5)?;
        vui.chroma_sample_loc = Some((top, bottom));
    }
    if r.read_bit()? {
        vui.timing = Some(Timing {
            num_units_in_tick: r.read_bits(32)?,
            time_scale: r.read_bits(32)?,
            fixed_frame_rate: r.read_bit()?,
        });
    }
    Ok(())
}

/// Sample aspect ratio for `aspect_ratio_idc` 1..=16 (Table E-1 of both H.264 and H.265);
/// `None` for 0 (unspecified), 255 (`Extended_SAR`, read separately) and reserved values.
pub(crate) fn sample_aspect_ratio_from_idc(idc: u8) -> Option<(u16, u16)> {
    const TABLE: [(u16, u16); 16] = [
        (1, 1),
        (12, 11),
        (10, 11),
        (16, 11),
        (40, 33),
        (24, 11),
        (20, 11),
        (32, 11),
        (80, 33),
        (18, 11),
        (15, 11),
        (64, 33),
        (160, 99),
        (4, 3),
        (3, 2),
        (2, 1),
    ];
    TABLE.get(usize::from(idc).checked_sub(1)?).copied()
}

/// `num / den` reduced to lowest terms; `None` if either is zero or the result does not fit.
pub(crate) fn reduced_ratio(num: u64, den: u64) -> Option<(u32, u32)> {
    if num == 0 || den == 0 {
        return None;
    }
    let (mut a, mut b) = (num, den);
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    // a is the gcd, >= 1.
    let n = u32::try_from(num / a).ok()?;
    let d = u32::try_from(den / a).ok()?;
    Some((n, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HIGH: &[u8] = include_bytes!("../../testdata/ffmpeg-x264-high-854x480-60-avcC.bin");
    const BASELINE: &[u8] =
        include_bytes!("../../testdata/ffmpeg-x264-baseline-854x480-60-avcC.bin");
    const HIGH444_CQM: &[u8] =
        include_bytes!("../../testdata/ffmpeg-x264-high444-cqm-854x480-25-avcC.bin");
    const HIGH422_10_INTERLACED: &[u8] =
        include_bytes!("../../testdata/ffmpeg-x264-high422-10-interlaced-854x480-avcC.bin");

    /// An SPS written by `testdata/crafted-sps.py` (no encoder at hand writes SPS scaling
    /// matrices: x264 puts them in the PPS) and checked against FFmpeg: with this SPS spliced
    /// into an x264 stream, `ffmpeg -bsf:v trace_headers` reads every element as intended and
    /// ffprobe reports 1920x1080, SAR 4:3, 30000/1001 fps.
    const CRAFTED_SPS: &[u8] =
        include_bytes!("../../testdata/crafted-h264-sps-scaling-matrices-poc1-mbaff-1080p.bin");

    fn parse(bytes: &'static [u8]) -> AvcConfig {
        AvcConfig::parse(Bytes::from_static(bytes)).expect("parses")
    }

    #[test]
    fn x264_high_854x480_60() {
        // ffmpeg -f lavfi -i testsrc2=size=854x480:rate=60 -t 1 -c:v libx264 -profile:v high
        // ffprobe: profile=High level=31 854x480 yuv420p r_frame_rate=60/1
        let c = parse(HIGH);
        assert_eq!(c.codec_string(), "avc1.64001f");
        assert_eq!(
            (c.profile_idc, c.profile_compatibility, c.level_idc),
            (100, 0, 31)
        );
        assert_eq!(c.nal_length_size, 4);
        assert_eq!((c.sps.len(), c.pps.len()), (1, 1));
        assert_eq!(c.sps[0][0] & 0x1f, 7);
        assert_eq!(c.pps[0][0] & 0x1f, 8);
        // Zero-copy: the parameter sets point into the record.
        let rec = c.record.as_ptr() as usize;
        let sps = c.sps[0].as_ptr() as usize;
        assert!(sps > rec && sps < rec + c.record.len());
        assert_eq!(
            c.info,
            VideoInfo {
                width: 854,
                height: 480,
                frame_rate: Some((60, 1)),
                sample_aspect_ratio: Some((1, 1)),
                bit_depth: 8,
                chroma_format_idc: 1,
            }
        );
        let sps = parse_sps(&c.sps[0]).unwrap();
        // 854 = 54 MBs * 16 - 2 * 5: cropping in chroma units of 2 pixels.
        assert_eq!(sps.pic_width_in_mbs, 54);
        assert_eq!(sps.pic_height_in_map_units, 30);
        assert_eq!(
            sps.frame_crop,
            Some(FrameCrop {
                left: 0,
                right: 5,
                top: 0,
                bottom: 0
            })
        );
        assert!(sps.frame_mbs_only);
        assert_eq!(sps.pic_order_cnt_type, 0);
        let vui = sps.vui.unwrap();
        assert_eq!(vui.error, None);
        assert_eq!(
            vui.timing,
            Some(Timing {
                num_units_in_tick: 1,
                time_scale: 120,
                fixed_frame_rate: false
            })
        );
    }

    #[test]
    fn x264_baseline_854x480_60() {
        // ffprobe: profile=Constrained Baseline level=31
        let c = parse(BASELINE);
        assert_eq!(c.codec_string(), "avc1.42c01f");
        let sps = parse_sps(&c.sps[0]).unwrap();
        assert_eq!(sps.profile_idc, 66);
        assert_eq!(sps.constraint_flags, 0xc0);
        assert_eq!(sps.pic_order_cnt_type, 2);
        assert_eq!((c.info.width, c.info.height), (854, 480));
        assert_eq!(c.info.frame_rate, Some((60, 1)));
    }

    #[test]
    fn x264_high444() {
        // -profile:v high444 -pix_fmt yuv444p -x264-params cqm=jvt, 25 fps.
        // ffprobe: profile="High 4:4:4 Predictive" level=30 854x480 sar 1:1
        let c = parse(HIGH444_CQM);
        assert_eq!(c.codec_string(), "avc1.f4001e");
        let sps = parse_sps(&c.sps[0]).unwrap();
        assert_eq!(sps.profile_idc, 244);
        assert_eq!(sps.chroma_format_idc, 3);
        assert!(!sps.separate_colour_plane);
        // x264 sends its quantisation matrices in the PPS, not the SPS.
        assert!(!sps.seq_scaling_matrix_present);
        // 4:4:4 crops in single pixels: 864 - 10.
        assert_eq!(sps.frame_crop.map(|c| c.right), Some(10));
        assert_eq!(
            c.info,
            VideoInfo {
                width: 854,
                height: 480,
                frame_rate: Some((25, 1)),
                sample_aspect_ratio: Some((1, 1)),
                bit_depth: 8,
                chroma_format_idc: 3,
            }
        );
    }

    #[test]
    fn x264_high422_10bit_interlaced() {
        // -profile:v high422 -pix_fmt yuv422p10le -x264-params interlaced=1, 30000/1001 fps.
        // ffprobe: profile="High 4:2:2" level=31 854x480 field_order=tt r_frame_rate=30000/1001
        let c = parse(HIGH422_10_INTERLACED);
        assert_eq!(c.codec_string(), "avc1.7a001f");
        let sps = parse_sps(&c.sps[0]).unwrap();
        assert_eq!(sps.profile_idc, 122);
        assert!(!sps.frame_mbs_only);
        assert!(sps.mb_adaptive_frame_field);
        assert_eq!(sps.pic_height_in_map_units, 15);
        assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (10, 10));
        assert_eq!(
            c.info,
            VideoInfo {
                width: 854,
                height: 480,
                frame_rate: Some((30000, 1001)),
                sample_aspect_ratio: Some((1, 1)),
                bit_depth: 10,
                chroma_format_idc: 2,
            }
        );
    }

    #[test]
    fn crafted_sps_with_scaling_matrices_poc_type_1_and_mbaff() {
        let sps = parse_sps(CRAFTED_SPS).unwrap();
        assert_eq!(sps.profile_idc, 100);
        assert_eq!(sps.level_idc, 40);
        // Lists 0, 1 (nextScale 0 at once: default), 3 (ends early), 4, 6 and 7 present.
        assert!(sps.seq_scaling_matrix_present);
        assert_eq!(sps.pic_order_cnt_type, 1);
        assert!(!sps.frame_mbs_only);
        assert!(sps.mb_adaptive_frame_field);
        // 1088 coded lines, 4:2:0 field-coded: CropUnitY = 4, bottom offset 2.
        assert_eq!(
            sps.frame_crop,
            Some(FrameCrop {
                left: 0,
                right: 0,
                top: 0,
                bottom: 2
            })
        );
        let vui = sps.vui.clone().unwrap();
        assert_eq!(vui.error, None);
        assert_eq!(vui.aspect_ratio_idc, Some(255));
        assert_eq!(vui.video_format, Some(5));
        assert_eq!(vui.video_full_range, Some(true));
        assert_eq!(
            vui.colour_description,
            Some(ColourDescription {
                colour_primaries: 1,
                transfer_characteristics: 1,
                matrix_coefficients: 1
            })
        );
        assert_eq!(vui.chroma_sample_loc, Some((0, 0)));
        assert_eq!(
            sps.info(),
            VideoInfo {
                width: 1920,
                height: 1080,
                frame_rate: Some((30000, 1001)),
                sample_aspect_ratio: Some((4, 3)),
                bit_depth: 8,
                chroma_format_idc: 1,
            }
        );
        for n in 0..CRAFTED_SPS.len() {
            if let Ok(s) = parse_sps(&CRAFTED_SPS[..n]) {
                assert_eq!((s.width, s.height), (1920, 1080));
            }
        }
    }

    #[test]
    fn record_variants() {
        // Trailing High-profile chroma fields present (as MP4 muxers write them).
        let mut v = HIGH.to_vec();
        v.extend_from_slice(&[0xfd, 0xf8, 0xf8, 0x00]);
        let c = AvcConfig::parse(Bytes::from(v)).unwrap();
        assert_eq!((c.info.width, c.info.height), (854, 480));

        // 2-byte NAL lengths, zero reserved bits.
        let mut v = HIGH.to_vec();
        v[4] = 0x01;
        v[5] = 0x01;
        assert_eq!(AvcConfig::parse(Bytes::from(v)).unwrap().nal_length_size, 2);

        // 3-byte NAL lengths are not allowed.
        let mut v = HIGH.to_vec();
        v[4] = 0xfe;
        assert!(matches!(
            AvcConfig::parse(Bytes::from(v)),
            Err(CodecError::Invalid {
                field: "lengthSizeMinusOne",
                ..
            })
        ));

        // Wrong version (Annex B data, for instance).
        assert!(AvcConfig::parse(Bytes::from_static(&[0, 0, 0, 1, 0x67, 0x64])).is_err());

        // No SPS.
        assert!(matches!(
            AvcConfig::parse(Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0])),
            Err(CodecError::Invalid { .. })
        ));

        // The SPS entry holds a PPS.
        let mut v = HIGH.to_vec();
        v[8] = 0x68;
        assert!(AvcConfig::parse(Bytes::from(v)).is_err());
    }

    #[test]
    fn every_prefix_is_an_error_not_a_panic() {
        for rec in [HIGH, BASELINE, HIGH444_CQM, HIGH422_10_INTERLACED] {
            let full = AvcConfig::parse(Bytes::from_static(rec)).unwrap();
            for n in 0..rec.len() {
                let prefix = Bytes::copy_from_slice(&rec[..n]);
                // Only a prefix that drops nothing but the optional High-profile trailer may
                // parse, and then to the same thing.
                if let Ok(c) = AvcConfig::parse(prefix) {
                    assert_eq!(
                        (c.sps, c.pps, c.info),
                        (full.sps.clone(), full.pps.clone(), full.info)
                    );
                }
            }
            let sps = &full.sps[0];
            let mut saw_partial_vui = false;
            for n in 0..sps.len() {
                match parse_sps(&sps[..n]) {
                    Ok(s) => {
                        // Only the VUI may be cut short: the size is always right.
                        assert_eq!((s.width, s.height), (854, 480));
                        let err = s.vui.as_ref().and_then(|v| v.error.clone());
                        match err {
                            Some(CodecError::Truncated { .. }) => saw_partial_vui = true,
                            // Cut after timing_info: nothing we read is missing.
                            None => assert!(s.frame_rate().is_some()),
                            Some(e) => panic!("{e}"),
                        }
                    }
                    Err(e) => assert!(matches!(e, CodecError::Truncated { .. }), "{e}"),
                }
            }
            assert!(saw_partial_vui);
        }
    }

    #[test]
    fn truncated_sps_keeps_size_when_only_vui_is_missing() {
        let c = parse(HIGH);
        let sps = &c.sps[0];
        // Cut the SPS in the middle of the VUI timing info (time_scale is at bytes 19..=22).
        let cut = parse_sps(&sps[..sps.len() - 6]).unwrap();
        assert_eq!((cut.width, cut.height), (854, 480));
        assert_eq!(cut.frame_rate(), None);
        assert!(matches!(
            cut.vui.as_ref().and_then(|v| v.error.clone()),
            Some(CodecError::Truncated { .. })
        ));
        // Cut before the cropping: fatal.
        assert!(matches!(
            parse_sps(&sps[..8]),
            Err(CodecError::Truncated { .. })
        ));
    }

    #[test]
    fn garbage_does_not_panic() {
        // A fixed-seed xorshift generator: no dependency, reproducible.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut v: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 {
                // Keep the record and SPS headers plausible so parsing gets deep.
                if let Some(b) = v.get_mut(0) {
                    *b = 0x67;
                }
            }
            let _ = parse_sps(&v);
            // Mutate a real record.
            let mut rec = HIGH.to_vec();
            let at = (next() as usize) % rec.len();
            if let Some(b) = rec.get_mut(at) {
                *b = next() as u8;
            }
            let _ = AvcConfig::parse(Bytes::from(rec));
            if let Some(b) = v.get_mut(0) {
                *b = 1;
            }
            let _ = AvcConfig::parse(Bytes::from(v));
        }
    }

    #[test]
    fn extreme_values_are_rejected_without_overflow() {
        // profile 66, pic_width_in_mbs_minus1 = 2^32 - 2 (31 zero bits, 1, 31 ones + 0).
        let mut bits = String::from("01100111"); // NAL header
        bits += "01000010"; // profile 66
        bits += "00000000"; // constraint flags
        bits += "00011111"; // level 31
        bits += "1"; // sps id 0
        bits += "1"; // log2_max_frame_num_minus4 0
        bits += "011"; // poc type 2
        bits += "1"; // max_num_ref_frames 0
        bits += "0"; // gaps
        bits += &"0".repeat(31);
        bits += "1";
        bits += &"1".repeat(30);
        bits += "0"; // width_in_mbs_minus1 = 2^32 - 2
        bits += "1"; // height_in_map_units_minus1 = 0
        bits += "1"; // frame_mbs_only
        bits += "1"; // direct_8x8
        bits += "0"; // no crop
        bits += "0"; // no vui
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let bytes: Vec<u8> = bits
            .as_bytes()
            .chunks(8)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap())
            .collect();
        assert!(matches!(
            parse_sps(&bytes),
            Err(CodecError::Unsupported { .. })
        ));
    }

    #[test]
    fn helpers() {
        assert_eq!(reduced_ratio(120, 2), Some((60, 1)));
        assert_eq!(reduced_ratio(60000, 2002), Some((30000, 1001)));
        assert_eq!(reduced_ratio(0, 2), None);
        assert_eq!(reduced_ratio(5, 0), None);
        assert_eq!(
            reduced_ratio(u64::from(u32::MAX), 2 * u64::from(u32::MAX)),
            Some((1, 2))
        );
        assert_eq!(reduced_ratio(1, 2 * u64::from(u32::MAX)), None);
        assert_eq!(sample_aspect_ratio_from_idc(0), None);
        assert_eq!(sample_aspect_ratio_from_idc(1), Some((1, 1)));
        assert_eq!(sample_aspect_ratio_from_idc(16), Some((2, 1)));
        assert_eq!(sample_aspect_ratio_from_idc(17), None);
        assert_eq!(sample_aspect_ratio_from_idc(255), None);
    }
}
