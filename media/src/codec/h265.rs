//! H.265 / HEVC: the `hvcC` decoder configuration record and the sequence parameter set.
//!
//! - [`HevcConfig::parse`] reads an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 section
//!   8.3.3.1), as carried by an Enhanced RTMP / FLV HEVC sequence header or an MP4 `hvcC` box.
//! - [`parse_sps`] reads a sequence parameter set NAL unit (ITU-T H.265 section 7.3.2.2): the
//!   picture size is always read; the rest, through the VUI timing info (Annex E.2.1), is read
//!   when it parses, and its failure does not lose the picture size.

use bytes::Bytes;

use super::bits::{rbsp_from_nal, BitReader, ByteCursor};
use super::h264::{reduced_ratio, sample_aspect_ratio_from_idc};
use super::{CodecError, VideoInfo};

const WHAT_RECORD: &str = "HEVCDecoderConfigurationRecord";
const WHAT_SPS: &str = "H.265 SPS";

/// Largest width or height accepted: MP4 sample entries store them as 16-bit integers.
const MAX_DIMENSION: u64 = 65535;

/// NAL unit types of the parameter sets (H.265 Table 7-1).
const NAL_VPS: u8 = 32;
const NAL_SPS: u8 = 33;
const NAL_PPS: u8 = 34;

/// Most entries a short-term reference picture set can hold (sps_max_dec_pic_buffering_minus1
/// is at most 15, so NumDeltaPocs is at most 16).
const MAX_RPS_ENTRIES: usize = 16;

/// An HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 section 8.3.3.1), with the facts of its
/// first SPS.
///
/// `vps`, `sps` and `pps` are zero-copy slices of `record` (each a whole NAL unit, 2-byte
/// header included). Arrays of other NAL unit types (SEI, for instance: x265 stores its
/// settings string there) stay in `record` and are otherwise ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct HevcConfig {
    /// The record exactly as received.
    pub record: Bytes,
    pub general_profile_space: u8,
    pub general_tier_flag: bool,
    pub general_profile_idc: u8,
    /// The 32 compatibility flags, flag 0 in the most significant bit (as stored).
    pub general_profile_compatibility_flags: u32,
    /// The 48 constraint indicator flags in the low 48 bits, first flag most significant.
    pub general_constraint_indicator_flags: u64,
    pub general_level_idc: u8,
    /// `chromaFormat` of the record (chroma_format_idc).
    pub chroma_format_idc: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    /// `avgFrameRate` in frames per 256 seconds; 0 when unspecified (as most muxers write it).
    pub avg_frame_rate: u16,
    /// `lengthSizeMinusOne + 1`: 1, 2 or 4.
    pub nal_length_size: u8,
    pub vps: Vec<Bytes>,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
    /// Picture facts from the first SPS.
    pub info: VideoInfo,
}

impl HevcConfig {
    /// Parses an HEVCDecoderConfigurationRecord and the first SPS in it.
    ///
    /// Real-world tolerance:
    /// - `configurationVersion` 0 is accepted: early muxers (pre-standard drafts of
    ///   14496-15, some FFmpeg and GPAC builds) wrote it. Data that starts with an Annex B start
    ///   code is rejected as such.
    /// - Reserved bits are not checked.
    /// - Zero-length NAL units in the arrays are skipped; bytes after the last array are
    ///   ignored.
    pub fn parse(record: Bytes) -> Result<HevcConfig, CodecError> {
        if record.starts_with(&[0, 0, 1]) || record.starts_with(&[0, 0, 0, 1]) {
            return Err(CodecError::Unsupported {
                what: WHAT_RECORD,
                detail: "Annex B byte stream instead of hvcC".to_string(),
            });
        }
        let mut c = ByteCursor::new(&record, WHAT_RECORD);
        let version = c.u8()?;
        if version > 1 {
            return Err(CodecError::Invalid {
                what: WHAT_RECORD,
                field: "configurationVersion",
                offset: 0,
                detail: format!("{version}, expected 1"),
            });
        }
        let b = c.u8()?;
        let general_profile_space = b >> 6;
        let general_tier_flag = (b >> 5) & 1 == 1;
        let general_profile_idc = b & 0x1f;
        let compat_hi = c.u16()?;
        let compat_lo = c.u16()?;
        let general_profile_compatibility_flags =
            (u32::from(compat_hi) << 16) | u32::from(compat_lo);
        let mut general_constraint_indicator_flags = 0u64;
        for _ in 0..6 {
            general_constraint_indicator_flags =
                (general_constraint_indicator_flags << 8) | u64::from(c.u8()?);
        }
        let general_level_idc = c.u8()?;
        let _min_spatial_segmentation_idc = c.u16()? & 0x0fff;
        let _parallelism_type = c.u8()? & 0x03;
        let chroma_format_idc = c.u8()? & 0x03;
        let bit_depth_luma = (c.u8()? & 0x07) + 8;
        let bit_depth_chroma = (c.u8()? & 0x07) + 8;
        let avg_frame_rate = c.u16()?;
        let flags = c.u8()?;
        let nal_length_size = (flags & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(c.invalid(
                "lengthSizeMinusOne",
                "2 (3-byte NAL lengths are not allowed)",
            ));
        }
        let num_arrays = c.u8()?;
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..num_arrays {
            let nal_unit_type = c.u8()? & 0x3f;
            let num_nalus = c.u16()?;
            for _ in 0..num_nalus {
                let len = c.u16()?;
                let r = c.take(usize::from(len))?;
                if r.is_empty() {
                    continue;
                }
                match nal_unit_type {
                    NAL_VPS => vps.push(r),
                    NAL_SPS => sps.push(r),
                    NAL_PPS => pps.push(r),
                    _ => {}
                }
            }
        }
        let first = sps.first().cloned().ok_or(CodecError::Invalid {
            what: WHAT_RECORD,
            field: "numOfArrays",
            offset: 22,
            detail: "no sequence parameter set".to_string(),
        })?;
        let sps_bytes = record.get(first).ok_or(CodecError::Truncated {
            what: WHAT_RECORD,
            offset: record.len(),
        })?;
        let info = parse_sps(sps_bytes)?.info();
        let slices = |v: Vec<std::ops::Range<usize>>| -> Vec<Bytes> {
            v.into_iter().map(|r| record.slice(r)).collect()
        };
        let (vps, sps, pps) = (slices(vps), slices(sps), slices(pps));
        Ok(HevcConfig {
            record,
            general_profile_space,
            general_tier_flag,
            general_profile_idc,
            general_profile_compatibility_flags,
            general_constraint_indicator_flags,
            general_level_idc,
            chroma_format_idc,
            bit_depth_luma,
            bit_depth_chroma,
            avg_frame_rate,
            nal_length_size,
            vps,
            sps,
            pps,
            info,
        })
    }

    /// Codec string of ISO/IEC 14496-15 Annex E.3 (used with RFC 6381), such as
    /// `hvc1.1.6.L93.B0`: sample entry, profile space letter (none, `A`, `B`, `C`) and
    /// profile_idc in decimal, the compatibility flags bit-reversed in hex without leading zeros,
    /// `L` (main tier) or `H` (high tier) and level_idc in decimal, then each constraint byte in
    /// hex, trailing zero bytes left out.
    ///
    /// Hex digits are uppercase and unpadded (`9E.8`, not `9e.08`), as in the Annex E examples
    /// and Apple's HLS authoring spec; browsers accept either.
    pub fn codec_string(&self) -> String {
        let space = match self.general_profile_space {
            0 => "",
            1 => "A",
            2 => "B",
            _ => "C",
        };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{}{}",
            self.general_profile_idc,
            self.general_profile_compatibility_flags.reverse_bits(),
            if self.general_tier_flag { 'H' } else { 'L' },
            self.general_level_idc,
        );
        let bytes: Vec<u8> = (0..6u32)
            .map(|i| (self.general_constraint_indicator_flags >> (40 - 8 * i)) as u8)
            .collect();
        let keep = bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
        for b in bytes.iter().take(keep) {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }
}

/// The general part of `profile_tier_level()` (H.265 section 7.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProfileTierLevel {
    pub general_profile_space: u8,
    pub general_tier_flag: bool,
    pub general_profile_idc: u8,
    pub general_profile_compatibility_flags: u32,
    /// The 48 bits from general_progressive_source_flag on, in the low bits of the `u64`.
    pub general_constraint_indicator_flags: u64,
    pub general_level_idc: u8,
}

/// A window of four offsets (conformance window, default display window), in chroma sample
/// units as coded (H.265 section 7.4.3.2.1 scales them by SubWidthC / SubHeightC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub left: u32,
    pub right: u32,
    pub top: u32,
    pub bottom: u32,
}

/// `vui_timing_info` of the H.265 VUI (Annex E.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub num_units_in_tick: u32,
    pub time_scale: u32,
    /// `vui_num_ticks_poc_diff_one_minus1 + 1` when `vui_poc_proportional_to_timing_flag`.
    pub num_ticks_poc_diff_one: Option<u64>,
}

/// The start of the H.265 VUI parameters (Annex E.2.1), read through `vui_timing_info`; the
/// HRD parameters and what follows are not read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vui {
    pub aspect_ratio_idc: Option<u8>,
    /// From Table E.1 or `EXTENDED_SAR` (255); `None` when unspecified, reserved, or an
    /// extended ratio with a zero term.
    pub sample_aspect_ratio: Option<(u16, u16)>,
    pub overscan_appropriate: Option<bool>,
    pub video_format: Option<u8>,
    pub video_full_range: Option<bool>,
    /// `(colour_primaries, transfer_characteristics, matrix_coeffs)`.
    pub colour_description: Option<(u8, u8, u8)>,
    /// `(chroma_sample_loc_type_top_field, chroma_sample_loc_type_bottom_field)`.
    pub chroma_sample_loc: Option<(u32, u32)>,
    pub neutral_chroma_indication: bool,
    /// Set when each picture is a field (then the "frame rate" below is a field rate).
    pub field_seq: bool,
    pub frame_field_info_present: bool,
    /// Not applied to [`Sps::width`] / [`Sps::height`] (FFmpeg ignores it by default too).
    pub default_display_window: Option<Window>,
    pub timing: Option<Timing>,
    /// Set when the VUI could not be read through the timing info; fields before the failure
    /// are kept.
    pub error: Option<CodecError>,
}

/// What an H.265 SPS says after the bit depths (H.265 section 7.3.2.2.1), through the VUI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpsTail {
    pub log2_max_pic_order_cnt_lsb: u8,
    /// `sps_max_dec_pic_buffering_minus1 + 1` for the highest sub-layer.
    pub max_dec_pic_buffering: u32,
    pub log2_min_luma_coding_block_size: u32,
    pub log2_diff_max_min_luma_coding_block_size: u32,
    pub scaling_list_enabled: bool,
    pub amp_enabled: bool,
    pub sample_adaptive_offset_enabled: bool,
    pub pcm_enabled: bool,
    pub num_short_term_ref_pic_sets: u32,
    pub long_term_ref_pics_present: bool,
    pub num_long_term_ref_pics_sps: u32,
    pub temporal_mvp_enabled: bool,
    pub strong_intra_smoothing_enabled: bool,
    pub vui: Option<Vui>,
}

/// An H.265 sequence parameter set, ITU-T H.265 section 7.3.2.2 (semantics 7.4.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    pub sps_video_parameter_set_id: u8,
    pub sps_max_sub_layers: u8,
    pub sps_temporal_id_nesting: bool,
    pub profile_tier_level: ProfileTierLevel,
    pub sps_seq_parameter_set_id: u32,
    pub chroma_format_idc: u8,
    pub separate_colour_plane: bool,
    pub pic_width_in_luma_samples: u32,
    pub pic_height_in_luma_samples: u32,
    pub conformance_window: Option<Window>,
    /// Display width in pixels, after the conformance window.
    pub width: u32,
    /// Display height in pixels, after the conformance window.
    pub height: u32,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    /// The rest of the SPS, or why it could not be read. The fields above do not depend on it.
    pub tail: Result<SpsTail, CodecError>,
}

impl Sps {
    /// The VUI, when the SPS has one and was read that far.
    pub fn vui(&self) -> Option<&Vui> {
        self.tail.as_ref().ok()?.vui.as_ref()
    }

    /// Frame rate `vui_time_scale / vui_num_units_in_tick`, reduced (Annex E.3.1: a tick is one
    /// picture period, unlike H.264 where it is a field period). `None` when not signalled, not
    /// reached, or either term is zero.
    pub fn frame_rate(&self) -> Option<(u32, u32)> {
        let t = self.vui()?.timing?;
        reduced_ratio(u64::from(t.time_scale), u64::from(t.num_units_in_tick))
    }

    /// The picture facts the rest of Lockstep needs.
    pub fn info(&self) -> VideoInfo {
        VideoInfo {
            width: self.width,
            height: self.height,
            frame_rate: self.frame_rate(),
            sample_aspect_ratio: self.vui().and_then(|v| v.sample_aspect_ratio),
            bit_depth: self.bit_depth_luma,
            chroma_format_idc: self.chroma_format_idc,
        }
    }
}

/// Parses an H.265 sequence parameter set NAL unit (2-byte header included, emulation
/// prevention bytes still in place), ITU-T H.265 section 7.3.2.2.
///
/// Errors up to the bit depths are fatal. Errors after them end up in [`Sps::tail`] (or, inside
/// the VUI, in [`Vui::error`]) and leave width, height, chroma format and bit depth usable.
pub fn parse_sps(nal: &[u8]) -> Result<Sps, CodecError> {
    let rbsp = rbsp_from_nal(nal);
    let mut r = BitReader::new(&rbsp, WHAT_SPS);

    // nal_unit_header(), section 7.3.1.2.
    let forbidden_zero = r.read_bit()?;
    let nal_unit_type = r.read_bits(6)?;
    let _nuh_layer_id = r.read_bits(6)?;
    let _nuh_temporal_id_plus1 = r.read_bits(3)?;
    if forbidden_zero {
        return Err(r.invalid("forbidden_zero_bit", "set"));
    }
    if nal_unit_type != u32::from(NAL_SPS) {
        return Err(r.invalid(
            "nal_unit_type",
            format!("{nal_unit_type}, expected 33 (SPS)"),
        ));
    }

    let sps_video_parameter_set_id = r.read_bits(4)? as u8;
    let max_sub_layers_minus1 = r.read_bits(3)? as u8;
    if max_sub_layers_minus1 > 6 {
        return Err(r.invalid("sps_max_sub_layers_minus1", "7 (at most 6)"));
    }
    let sps_temporal_id_nesting = r.read_bit()?;
    let profile_tier_level = parse_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let sps_seq_parameter_set_id = r.read_ue_max("sps_seq_parameter_set_id", 15)?;
    let chroma_format_idc = r.read_ue_max("chroma_format_idc", 3)? as u8;
    let separate_colour_plane = if chroma_format_idc == 3 {
        r.read_bit()?
    } else {
        false
    };
    let pic_width_in_luma_samples = r.read_ue()?;
    let pic_height_in_luma_samples = r.read_ue()?;
    let conformance_window = if r.read_bit()? {
        Some(Window {
            left: r.read_ue()?,
            right: r.read_ue()?,
            top: r.read_ue()?,
            bottom: r.read_ue()?,
        })
    } else {
        None
    };
    let window_offset = r.byte_offset();
    let bit_depth_luma = 8 + r.read_ue_max("bit_depth_luma_minus8", 8)? as u8;
    let bit_depth_chroma = 8 + r.read_ue_max("bit_depth_chroma_minus8", 8)? as u8;

    // Section 7.4.3.2.1 and Table 6-1: SubWidthC / SubHeightC are 1 for monochrome, 4:4:4 and
    // separate colour planes.
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_width_c, sub_height_c) = match chroma_array_type {
        1 => (2u64, 2u64),
        2 => (2, 1),
        _ => (1, 1),
    };
    let win = conformance_window.unwrap_or_default();
    let crop_x = sub_width_c * (u64::from(win.left) + u64::from(win.right));
    let crop_y = sub_height_c * (u64::from(win.top) + u64::from(win.bottom));
    let invalid_at = |field: &'static str, detail: String| CodecError::Invalid {
        what: WHAT_SPS,
        field,
        offset: window_offset,
        detail,
    };
    let width = u64::from(pic_width_in_luma_samples)
        .checked_sub(crop_x)
        .filter(|w| *w > 0)
        .ok_or_else(|| {
            invalid_at(
                "conf_win_left_offset",
                format!("window of {crop_x} in {pic_width_in_luma_samples} samples wide"),
            )
        })?;
    let height = u64::from(pic_height_in_luma_samples)
        .checked_sub(crop_y)
        .filter(|h| *h > 0)
        .ok_or_else(|| {
            invalid_at(
                "conf_win_top_offset",
                format!("window of {crop_y} in {pic_height_in_luma_samples} samples high"),
            )
        })?;
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(CodecError::Unsupported {
            what: WHAT_SPS,
            detail: format!("picture size {width}x{height} (at most {MAX_DIMENSION})"),
        });
    }

    let tail = parse_tail(&mut r, max_sub_layers_minus1);

    Ok(Sps {
        sps_video_parameter_set_id,
        sps_max_sub_layers: max_sub_layers_minus1 + 1,
        sps_temporal_id_nesting,
        profile_tier_level,
        sps_seq_parameter_set_id,
        chroma_format_idc,
        separate_colour_plane,
        pic_width_in_luma_samples,
        pic_height_in_luma_samples,
        conformance_window,
        // Both are <= MAX_DIMENSION.
        width: width as u32,
        height: height as u32,
        bit_depth_luma,
        bit_depth_chroma,
        tail,
    })
}

/// `profile_tier_level(1, maxNumSubLayersMinus1)`, H.265 section 7.3.3: the general part is
/// returned, the sub-layer parts are skipped.
fn parse_profile_tier_level(
    r: &mut BitReader<'_>,
    max_sub_layers_minus1: u8,
) -> Result<ProfileTierLevel, CodecError> {
    let general_profile_space = r.read_bits(2)? as u8;
    let general_tier_flag = r.read_bit()?;
    let general_profile_idc = r.read_bits(5)? as u8;
    let general_profile_compatibility_flags = r.read_bits(32)?;
    // progressive, interlaced, non_packed, frame_only, 43 bits of constraints / reserved, and
    // general_inbld_flag or reserved: 48 bits, as in hvcC.
    let hi = u64::from(r.read_bits(32)?);
    let lo = u64::from(r.read_bits(16)?);
    let general_constraint_indicator_flags = (hi << 16) | lo;
    let general_level_idc = r.read_u8()?;

    let n = usize::from(max_sub_layers_minus1);
    let mut profile_present = [false; 8];
    let mut level_present = [false; 8];
    for (p, l) in profile_present
        .iter_mut()
        .zip(level_present.iter_mut())
        .take(n)
    {
        *p = r.read_bit()?;
        *l = r.read_bit()?;
    }
    if n > 0 {
        // reserved_zero_2bits for i in maxNumSubLayersMinus1..8.
        r.skip(2 * (8 - n))?;
    }
    for (p, l) in profile_present.iter().zip(level_present.iter()).take(n) {
        if *p {
            // sub_layer profile_space(2) tier(1) profile_idc(5) compatibility(32)
            // progressive/interlaced/non_packed/frame_only(4) 43 bits, 1 bit.
            r.skip(88)?;
        }
        if *l {
            r.skip(8)?;
        }
    }
    Ok(ProfileTierLevel {
        general_profile_space,
        general_tier_flag,
        general_profile_idc,
        general_profile_compatibility_flags,
        general_constraint_indicator_flags,
        general_level_idc,
    })
}

/// The SPS from `log2_max_pic_order_cnt_lsb_minus4` through the VUI timing info.
fn parse_tail(r: &mut BitReader<'_>, max_sub_layers_minus1: u8) -> Result<SpsTail, CodecError> {
    let log2_max_pic_order_cnt_lsb =
        4 + r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? as u8;
    let ordering_info_present = r.read_bit()?;
    let first = if ordering_info_present {
        0
    } else {
        max_sub_layers_minus1
    };
    let mut max_dec_pic_buffering = 1;
    for _ in first..=max_sub_layers_minus1 {
        max_dec_pic_buffering = r.read_ue_max("sps_max_dec_pic_buffering_minus1", 15)? + 1;
        let _num_reorder_pics = r.read_ue_max("sps_max_num_reorder_pics", 15)?;
        let _max_latency_increase_plus1 = r.read_ue()?;
    }
    let log2_min_luma_coding_block_size =
        3 + r.read_ue_max("log2_min_luma_coding_block_size_minus3", 3)?;
    let log2_diff_max_min_luma_coding_block_size =
        r.read_ue_max("log2_diff_max_min_luma_coding_block_size", 3)?;
    let _log2_min_luma_transform_block_size_minus2 =
        r.read_ue_max("log2_min_luma_transform_block_size_minus2", 3)?;
    let _log2_diff_max_min_luma_transform_block_size =
        r.read_ue_max("log2_diff_max_min_luma_transform_block_size", 3)?;
    let _max_transform_hierarchy_depth_inter =
        r.read_ue_max("max_transform_hierarchy_depth_inter", 4)?;
    let _max_transform_hierarchy_depth_intra =
        r.read_ue_max("max_transform_hierarchy_depth_intra", 4)?;
    let scaling_list_enabled = r.read_bit()?;
    if scaling_list_enabled && r.read_bit()? {
        skip_scaling_list_data(r)?;
    }
    let amp_enabled = r.read_bit()?;
    let sample_adaptive_offset_enabled = r.read_bit()?;
    let pcm_enabled = r.read_bit()?;
    if pcm_enabled {
        let _pcm_sample_bit_depth_luma_minus1 = r.read_bits(4)?;
        let _pcm_sample_bit_depth_chroma_minus1 = r.read_bits(4)?;
        let _log2_min_pcm_luma_coding_block_size_minus3 =
            r.read_ue_max("log2_min_pcm_luma_coding_block_size_minus3", 2)?;
        let _log2_diff_max_min_pcm_luma_coding_block_size =
            r.read_ue_max("log2_diff_max_min_pcm_luma_coding_block_size", 2)?;
        let _pcm_loop_filter_disabled = r.read_bit()?;
    }
    let num_short_term_ref_pic_sets = r.read_ue_max("num_short_term_ref_pic_sets", 64)?;
    let mut sets: Vec<ShortTermRps> = Vec::new();
    for _ in 0..num_short_term_ref_pic_sets {
        let rps = parse_short_term_ref_pic_set(r, &sets)?;
        sets.push(rps);
    }
    let long_term_ref_pics_present = r.read_bit()?;
    let mut num_long_term_ref_pics_sps = 0;
    if long_term_ref_pics_present {
        num_long_term_ref_pics_sps = r.read_ue_max("num_long_term_ref_pics_sps", 32)?;
        for _ in 0..num_long_term_ref_pics_sps {
            // lt_ref_pic_poc_lsb_sps u(v) with v = log2_max_pic_order_cnt_lsb, then
            // used_by_curr_pic_lt_sps_flag.
            r.skip(usize::from(log2_max_pic_order_cnt_lsb) + 1)?;
        }
    }
    let temporal_mvp_enabled = r.read_bit()?;
    let strong_intra_smoothing_enabled = r.read_bit()?;
    let vui = if r.read_bit()? {
        let mut vui = Vui::default();
        if let Err(e) = parse_vui(r, &mut vui) {
            vui.error = Some(e);
        }
        Some(vui)
    } else {
        None
    };
    Ok(SpsTail {
        log2_max_pic_order_cnt_lsb,
        max_dec_pic_buffering,
        log2_min_luma_coding_block_size,
        log2_diff_max_min_luma_coding_block_size,
        scaling_list_enabled,
        amp_enabled,
        sample_adaptive_offset_enabled,
        pcm_enabled,
        num_short_term_ref_pic_sets,
        long_term_ref_pics_present,
        num_long_term_ref_pics_sps,
        temporal_mvp_enabled,
        strong_intra_smoothing_enabled,
        vui,
    })
}

/// Skips `scaling_list_data()`, H.265 section 7.3.4.
fn skip_scaling_list_data(r: &mut BitReader<'_>) -> Result<(), CodecError> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        let mut matrix_id = 0u32;
        while matrix_id < 6 {
            let pred_mode = r.read_bit()?;
            if !pred_mode {
                let max = if size_id == 3 {
                    matrix_id / 3
                } else {
                    matrix_id
                };
                r.read_ue_max("scaling_list_pred_matrix_id_delta", max)?;
            } else {
                let coef_num = 64.min(1u32 << (4 + (size_id << 1)));
                if size_id > 1 {
                    r.read_se_range("scaling_list_dc_coef_minus8", -7, 247)?;
                }
                for _ in 0..coef_num {
                    r.read_se_range("scaling_list_delta_coef", -128, 127)?;
                }
            }
            matrix_id += step;
        }
    }
    Ok(())
}

/// A short-term reference picture set as derived by H.265 section 7.4.8: the POC deltas of the
/// negative (S0) and positive (S1) pictures. Only the deltas matter here: later sets may be
/// predicted from this one, and how many flags they carry depends on NumDeltaPocs.
#[derive(Debug, Clone, Copy, Default)]
struct ShortTermRps {
    s0: [i32; MAX_RPS_ENTRIES],
    num_negative: usize,
    s1: [i32; MAX_RPS_ENTRIES],
    num_positive: usize,
}

impl ShortTermRps {
    fn num_delta_pocs(&self) -> usize {
        self.num_negative + self.num_positive
    }
    fn negatives(&self) -> &[i32] {
        self.s0.get(..self.num_negative).unwrap_or(&[])
    }
    fn positives(&self) -> &[i32] {
        self.s1.get(..self.num_positive).unwrap_or(&[])
    }
    fn push_negative(&mut self, r: &BitReader<'_>, v: i32) -> Result<(), CodecError> {
        let slot = self
            .s0
            .get_mut(self.num_negative)
            .ok_or_else(|| r.invalid("st_ref_pic_set", "more than 16 negative pictures"))?;
        *slot = v;
        self.num_negative += 1;
        Ok(())
    }
    fn push_positive(&mut self, r: &BitReader<'_>, v: i32) -> Result<(), CodecError> {
        let slot = self
            .s1
            .get_mut(self.num_positive)
            .ok_or_else(|| r.invalid("st_ref_pic_set", "more than 16 positive pictures"))?;
        *slot = v;
        self.num_positive += 1;
        Ok(())
    }
}

/// `st_ref_pic_set(stRpsIdx)` in an SPS (H.265 section 7.3.7), where `previous` holds the sets
/// `0..stRpsIdx`. With inter RPS prediction the set is derived from the one before it
/// (`delta_idx_minus1` is only present in slice headers, so RefRpsIdx = stRpsIdx - 1) by
/// equations 7-61 and 7-62.
fn parse_short_term_ref_pic_set(
    r: &mut BitReader<'_>,
    previous: &[ShortTermRps],
) -> Result<ShortTermRps, CodecError> {
    let mut out = ShortTermRps::default();
    let inter = match previous.last() {
        Some(_) => r.read_bit()?,
        None => false,
    };
    if let (true, Some(reference)) = (inter, previous.last()) {
        let sign = r.read_bit()?;
        let abs = r.read_ue_max("abs_delta_rps_minus1", (1 << 15) - 1)? as i32 + 1;
        let delta_rps = if sign { -abs } else { abs };
        // used_by_curr_pic_flag / use_delta_flag for j in 0..=NumDeltaPocs[RefRpsIdx].
        let n = reference.num_delta_pocs() + 1;
        let mut use_delta = [true; MAX_RPS_ENTRIES + 1];
        for flag in use_delta.iter_mut().take(n) {
            let used_by_curr_pic = r.read_bit()?;
            if !used_by_curr_pic {
                *flag = r.read_bit()?;
            }
        }
        let use_at = |j: usize| use_delta.get(j).copied().unwrap_or(false);
        let neg = reference.negatives();
        let pos = reference.positives();
        let nneg = reference.num_negative;
        let ndelta = reference.num_delta_pocs();
        // Equation 7-61.
        for (j, d) in pos.iter().enumerate().rev() {
            let dpoc = d.saturating_add(delta_rps);
            if dpoc < 0 && use_at(nneg + j) {
                out.push_negative(r, dpoc)?;
            }
        }
        if delta_rps < 0 && use_at(ndelta) {
            out.push_negative(r, delta_rps)?;
        }
        for (j, d) in neg.iter().enumerate() {
            let dpoc = d.saturating_add(delta_rps);
            if dpoc < 0 && use_at(j) {
                out.push_negative(r, dpoc)?;
            }
        }
        // Equation 7-62.
        for (j, d) in neg.iter().enumerate().rev() {
            let dpoc = d.saturating_add(delta_rps);
            if dpoc > 0 && use_at(j) {
                out.push_positive(r, dpoc)?;
            }
        }
        if delta_rps > 0 && use_at(ndelta) {
            out.push_positive(r, delta_rps)?;
        }
        for (j, d) in pos.iter().enumerate() {
            let dpoc = d.saturating_add(delta_rps);
            if dpoc > 0 && use_at(nneg + j) {
                out.push_positive(r, dpoc)?;
            }
        }
        if out.num_delta_pocs() > MAX_RPS_ENTRIES {
            return Err(r.invalid("st_ref_pic_set", "more than 16 pictures"));
        }
    } else {
        let max = MAX_RPS_ENTRIES as u32;
        let num_negative = r.read_ue_max("num_negative_pics", max)?;
        let num_positive = r.read_ue_max("num_positive_pics", max - num_negative)?;
        let mut poc: i32 = 0;
        for _ in 0..num_negative {
            let d = r.read_ue_max("delta_poc_s0_minus1", (1 << 15) - 1)? as i32 + 1;
            poc = poc.saturating_sub(d);
            out.push_negative(r, poc)?;
            let _used_by_curr_pic_s0 = r.read_bit()?;
        }
        poc = 0;
        for _ in 0..num_positive {
            let d = r.read_ue_max("delta_poc_s1_minus1", (1 << 15) - 1)? as i32 + 1;
            poc = poc.saturating_add(d);
            out.push_positive(r, poc)?;
            let _used_by_curr_pic_s1 = r.read_bit()?;
        }
    }
    Ok(out)
}

/// Reads the H.265 VUI (Annex E.2.1) through `vui_timing_info`, filling `vui` as it goes.
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
            vui.colour_description = Some((r.read_u8()?, r.read_u8()?, r.read_u8()?));
        }
    }
    if r.read_bit()? {
        let top = r.read_ue_max("chroma_sample_loc_type_top_field", 5)?;
        let bottom = r.read_ue_max("chroma_sample_loc_type_bottom_field", 5)?;
        vui.chroma_sample_loc = Some((top, bottom));
    }
    vui.neutral_chroma_indication = r.read_bit()?;
    vui.field_seq = r.read_bit()?;
    vui.frame_field_info_present = r.read_bit()?;
    // Quirk, as handled by FFmpeg: some early encoders omitted default_display_window_flag.
    // Then the next bits are vui_timing_info_present_flag (1) and the top of a small
    // vui_num_units_in_tick (20 zero bits). Read as a display window that would be a first
    // offset of at least 2^20 - 1, which no real stream has, so the pattern is unambiguous.
    let display_window_flag = if r.bits_left() >= 68 && r.peek_bits(21)? == 0x10_0000 {
        false
    } else {
        r.read_bit()?
    };
    if display_window_flag {
        vui.default_display_window = Some(Window {
            left: r.read_ue()?,
            right: r.read_ue()?,
            top: r.read_ue()?,
            bottom: r.read_ue()?,
        });
    }
    if r.read_bit()? {
        let num_units_in_tick = r.read_bits(32)?;
        let time_scale = r.read_bits(32)?;
        let num_ticks_poc_diff_one = if r.read_bit()? {
            Some(u64::from(r.read_ue()?) + 1)
        } else {
            None
        };
        vui.timing = Some(Timing {
            num_units_in_tick,
            time_scale,
            num_ticks_poc_diff_one,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN_720: &[u8] = include_bytes!("../../testdata/ffmpeg-x265-main-1280x720-30-hvcC.bin");
    const MAIN_480: &[u8] = include_bytes!("../../testdata/ffmpeg-x265-main-854x480-60-hvcC.bin");
    const MAIN10_480: &[u8] =
        include_bytes!("../../testdata/ffmpeg-x265-main10-854x480-25-hvcC.bin");
    const REXT444_480: &[u8] =
        include_bytes!("../../testdata/ffmpeg-x265-rext444-854x480-25-hvcC.bin");

    /// An SPS written by `testdata/crafted-sps.py` to exercise what x265 never writes in an
    /// SPS: three sub-layers with sub-layer profile / level, scaling_list_data with both
    /// prediction and explicit lists, PCM, five short-term RPSs of which three use inter RPS
    /// prediction (each from a predicted or explicit set), long-term pictures, an extended SAR
    /// and a default display window. Checked against FFmpeg: spliced into an x265 stream,
    /// `ffmpeg -bsf:v trace_headers` reads every element as intended and ffprobe reports
    /// 1920x1080, SAR 7:5, 24000/1001 fps.
    const CRAFTED_SPS: &[u8] =
        include_bytes!("../../testdata/crafted-hevc-sps-inter-rps-scaling-lists-1080p.bin");

    fn parse(bytes: &'static [u8]) -> HevcConfig {
        HevcConfig::parse(Bytes::from_static(bytes)).expect("parses")
    }

    #[test]
    fn x265_main_1280x720_30() {
        // ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -t 1 -c:v libx265 -tag:v hvc1
        // ffprobe: profile=Main level=93 1280x720 yuv420p r_frame_rate=30/1
        let c = parse(MAIN_720);
        // The canonical example is hvc1.1.6.L93.B0; x265 3.5 sets progressive_source and
        // frame_only_constraint but not non_packed_constraint, so its first constraint byte is
        // 0x90 (as in its hvcC bytes 90 00 00 00 00 00).
        assert_eq!(c.codec_string(), "hvc1.1.6.L93.90");
        assert_eq!(c.general_profile_idc, 1);
        assert_eq!(c.general_profile_compatibility_flags, 0x6000_0000);
        assert_eq!(c.general_constraint_indicator_flags, 0x9000_0000_0000);
        assert_eq!(c.general_level_idc, 93);
        assert!(!c.general_tier_flag);
        assert_eq!(
            (c.chroma_format_idc, c.bit_depth_luma, c.bit_depth_chroma),
            (1, 8, 8)
        );
        assert_eq!(c.nal_length_size, 4);
        assert_eq!((c.vps.len(), c.sps.len(), c.pps.len()), (1, 1, 1));
        assert_eq!(c.vps[0][0] >> 1, 32);
        assert_eq!(c.sps[0][0] >> 1, 33);
        assert_eq!(c.pps[0][0] >> 1, 34);
        assert_eq!(
            c.info,
            VideoInfo {
                width: 1280,
                height: 720,
                frame_rate: Some((30, 1)),
                sample_aspect_ratio: Some((1, 1)),
                bit_depth: 8,
                chroma_format_idc: 1,
            }
        );
        let sps = parse_sps(&c.sps[0]).unwrap();
        // The SPS profile_tier_level agrees with the record.
        assert_eq!(sps.profile_tier_level.general_profile_idc, 1);
        assert_eq!(
            sps.profile_tier_level.general_constraint_indicator_flags,
            c.general_constraint_indicator_flags
        );
        assert_eq!(sps.profile_tier_level.general_level_idc, 93);
        assert_eq!(sps.conformance_window, None);
        let tail = sps.tail.as_ref().unwrap();
        assert!(tail.sample_adaptive_offset_enabled);
        assert!(tail.temporal_mvp_enabled);
        assert!(tail.strong_intra_smoothing_enabled);
        assert!(!tail.amp_enabled);
        let vui = sps.vui().unwrap();
        assert_eq!(vui.error, None);
        assert_eq!(
            vui.timing,
            Some(Timing {
                num_units_in_tick: 1,
                time_scale: 30,
                num_ticks_poc_diff_one: None,
            })
        );
    }

    #[test]
    fn x265_main_854x480_60_needs_conformance_window() {
        // ffprobe: profile=Main level=93 854x480 r_frame_rate=60/1
        let c = parse(MAIN_480);
        assert_eq!(c.codec_string(), "hvc1.1.6.L93.90");
        let sps = parse_sps(&c.sps[0]).unwrap();
        assert_eq!(sps.pic_width_in_luma_samples, 856);
        assert_eq!(sps.conformance_window.map(|w| w.right), Some(1));
        assert_eq!((c.info.width, c.info.height), (854, 480));
        assert_eq!(c.info.frame_rate, Some((60, 1)));
    }

    #[test]
    fn x265_main10() {
        // -pix_fmt yuv420p10le, 25 fps. ffprobe: profile="Main 10" level=90
        let c = parse(MAIN10_480);
        assert_eq!(c.codec_string(), "hvc1.2.4.L90.90");
        assert_eq!((c.bit_depth_luma, c.bit_depth_chroma), (10, 10));
        assert_eq!(
            c.info,
            VideoInfo {
                width: 854,
                height: 480,
                frame_rate: Some((25, 1)),
                sample_aspect_ratio: Some((1, 1)),
                bit_depth: 10,
                chroma_format_idc: 1,
            }
        );
    }

    #[test]
    fn x265_rext_444() {
        // -pix_fmt yuv444p, 25 fps. ffprobe: profile=Rext level=90
        // Range extensions profile (4), compatibility flag 4, constraint bytes 9E 08 (the RExt
        // max_12bit / max_10bit / ... flags).
        let c = parse(REXT444_480);
        assert_eq!(c.codec_string(), "hvc1.4.10.L90.9E.8");
        assert_eq!(c.chroma_format_idc, 3);
        let sps = parse_sps(&c.sps[0]).unwrap();
        assert_eq!(sps.chroma_format_idc, 3);
        assert!(!sps.separate_colour_plane);
        // 4:4:4: the window is in luma samples (SubWidthC = 1).
        assert_eq!(sps.conformance_window.map(|w| w.right), Some(2));
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
    fn crafted_sps_inter_rps_scaling_lists_sub_layers() {
        let sps = parse_sps(CRAFTED_SPS).unwrap();
        assert_eq!(sps.sps_max_sub_layers, 3);
        assert_eq!(sps.profile_tier_level.general_level_idc, 93);
        assert_eq!(
            sps.profile_tier_level.general_constraint_indicator_flags >> 44,
            0b1011
        );
        assert_eq!(sps.pic_height_in_luma_samples, 1088);
        let tail = sps.tail.as_ref().unwrap();
        assert!(tail.scaling_list_enabled);
        assert!(tail.pcm_enabled);
        assert!(tail.amp_enabled);
        assert_eq!(tail.max_dec_pic_buffering, 5);
        assert_eq!(tail.num_short_term_ref_pic_sets, 5);
        assert!(tail.long_term_ref_pics_present);
        assert_eq!(tail.num_long_term_ref_pics_sps, 2);
        let vui = sps.vui().unwrap();
        assert_eq!(vui.error, None);
        assert_eq!(vui.aspect_ratio_idc, Some(255));
        assert_eq!(vui.colour_description, Some((1, 1, 1)));
        assert_eq!(vui.chroma_sample_loc, Some((1, 1)));
        assert_eq!(vui.default_display_window, Some(Window::default()));
        assert_eq!(
            vui.timing,
            Some(Timing {
                num_units_in_tick: 1001,
                time_scale: 24000,
                num_ticks_poc_diff_one: Some(1),
            })
        );
        assert_eq!(
            sps.info(),
            VideoInfo {
                width: 1920,
                height: 1080,
                frame_rate: Some((24000, 1001)),
                sample_aspect_ratio: Some((7, 5)),
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
    fn inter_rps_derivation() {
        // Sets 0 and 1 of the crafted SPS: {-1, -3 | +2} predicted with deltaRps = -1,
        // use_delta_flag = [1, 1, 1, 0] gives {-2, -4 | +1} (equations 7-61 and 7-62).
        let mut set0 = ShortTermRps::default();
        let dummy = BitReader::new(&[], "test");
        set0.push_negative(&dummy, -1).unwrap();
        set0.push_negative(&dummy, -3).unwrap();
        set0.push_positive(&dummy, 2).unwrap();
        // inter flag 1, sign 1, abs_delta_rps_minus1 ue 0 ("1"), then per entry
        // used_by_curr_pic_flag (and use_delta_flag when unused): 1 | 0 1 | 1 | 0 0.
        let bits = [0b1111_0110, 0b0000_0000];
        let mut r = BitReader::new(&bits, "test");
        let set1 = parse_short_term_ref_pic_set(&mut r, &[set0]).unwrap();
        assert_eq!(set1.negatives(), &[-2, -4]);
        assert_eq!(set1.positives(), &[1]);
        assert_eq!(r.bit_position(), 9);
    }

    #[test]
    fn codec_string_forms() {
        let mut c = parse(MAIN_720);
        c.general_constraint_indicator_flags = 0xb000_0000_0000;
        assert_eq!(c.codec_string(), "hvc1.1.6.L93.B0");
        // Annex E examples: hev1.A4.41.H120.B0.23 uses profile space 1.
        c.general_profile_space = 1;
        c.general_profile_idc = 4;
        c.general_profile_compatibility_flags = 0x8200_0000; // flags 0 and 6
        c.general_tier_flag = true;
        c.general_level_idc = 120;
        c.general_constraint_indicator_flags = 0xb023_0000_0000;
        assert_eq!(c.codec_string(), "hvc1.A4.41.H120.B0.23");
        c.general_constraint_indicator_flags = 0;
        c.general_profile_compatibility_flags = 0;
        assert_eq!(c.codec_string(), "hvc1.A4.0.H120");
        c.general_constraint_indicator_flags = 0x0000_0000_0001;
        assert_eq!(c.codec_string(), "hvc1.A4.0.H120.0.0.0.0.0.1");
    }

    #[test]
    fn record_variants() {
        // configurationVersion 0 (early muxers) is tolerated.
        let mut v = MAIN_720.to_vec();
        v[0] = 0;
        assert_eq!(HevcConfig::parse(Bytes::from(v)).unwrap().info.width, 1280);
        // Annex B is refused.
        assert!(matches!(
            HevcConfig::parse(Bytes::from_static(&[0, 0, 0, 1, 0x40, 0x01])),
            Err(CodecError::Unsupported { .. })
        ));
        // 3-byte lengths are invalid.
        let mut v = MAIN_720.to_vec();
        v[21] = (v[21] & !3) | 2;
        assert!(matches!(
            HevcConfig::parse(Bytes::from(v)),
            Err(CodecError::Invalid {
                field: "lengthSizeMinusOne",
                ..
            })
        ));
        // No arrays, so no SPS.
        let mut v = MAIN_720[..23].to_vec();
        v[22] = 0;
        assert!(matches!(
            HevcConfig::parse(Bytes::from(v)),
            Err(CodecError::Invalid { .. })
        ));
    }

    #[test]
    fn every_prefix_is_an_error_not_a_panic() {
        for rec in [MAIN_720, MAIN_480, MAIN10_480, REXT444_480] {
            let full = HevcConfig::parse(Bytes::from_static(rec)).unwrap();
            for n in 0..rec.len() {
                assert!(HevcConfig::parse(Bytes::copy_from_slice(&rec[..n])).is_err());
            }
            let sps = &full.sps[0];
            let mut saw_size_without_rate = false;
            for n in 0..sps.len() {
                match parse_sps(&sps[..n]) {
                    Ok(s) => {
                        // Once the window is read, the picture size is right however little
                        // of the rest is there.
                        assert_eq!((s.width, s.height), (full.info.width, full.info.height));
                        if s.frame_rate().is_none() {
                            saw_size_without_rate = true;
                        }
                    }
                    Err(e) => assert!(matches!(e, CodecError::Truncated { .. }), "{e}"),
                }
            }
            assert!(saw_size_without_rate);
        }
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let sps = parse(MAIN_480).sps[0].clone();
        for i in 0..20_000 {
            let len = (next() % 96) as usize;
            let mut v: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 {
                if let Some(b) = v.get_mut(0) {
                    *b = 0x42;
                }
                if let Some(b) = v.get_mut(1) {
                    *b = 0x01;
                }
            }
            let _ = parse_sps(&v);
            // Flip bits of a real SPS after its header so parsing goes deep.
            let mut s = sps.to_vec();
            let at = 2 + (next() as usize) % (s.len() - 2);
            if let Some(b) = s.get_mut(at) {
                *b ^= 1 << (next() % 8);
            }
            let _ = parse_sps(&s);
            let mut rec = MAIN_720.to_vec();
            let at = (next() as usize) % rec.len();
            if let Some(b) = rec.get_mut(at) {
                *b = next() as u8;
            }
            let _ = HevcConfig::parse(Bytes::from(rec));
            let _ = HevcConfig::parse(Bytes::from(v));
        }
    }
}
