//! Codec configuration records and the facts a muxer or player needs from them.
//!
//! One file per codec ([`h264`], [`h265`], [`aac`], [`mp3`], [`opus`]); [`bits`] is the bit reader with
//! Exp-Golomb codes and emulation-prevention removal that the H.26x parameter-set parsers share.
//! This module only reads configurations; it never decodes pictures or audio.

pub mod aac;
pub mod bits;
pub mod h264;
pub mod h265;
pub mod mp3;
pub mod opus;

use bytes::Bytes;

/// Why a codec configuration could not be used. `offset` is a byte offset into the structure
/// being parsed (for parameter sets: into the RBSP, after emulation prevention removal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{what}: truncated at byte {offset}")]
    Truncated { what: &'static str, offset: usize },
    #[error("{what}: invalid {field} at byte {offset}: {detail}")]
    Invalid {
        what: &'static str,
        field: &'static str,
        offset: usize,
        detail: String,
    },
    #[error("{what}: unsupported {detail}")]
    Unsupported { what: &'static str, detail: String },
}

impl CodecError {
    /// An [`CodecError::Invalid`] of `what` (the structure) at byte `offset`.
    pub(crate) fn invalid(
        what: &'static str,
        field: &'static str,
        offset: usize,
        detail: String,
    ) -> Self {
        CodecError::Invalid {
            what,
            field,
            offset,
            detail,
        }
    }
}

/// A video decoder configuration, as carried in an FLV sequence header.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoConfig {
    Avc(h264::AvcConfig),
    Hevc(h265::HevcConfig),
}

impl VideoConfig {
    /// RFC 6381 codec string for MSE / WebCodecs, such as `avc1.64001f` or `hvc1.1.6.L93.B0`.
    pub fn codec_string(&self) -> String {
        match self {
            VideoConfig::Avc(c) => c.codec_string(),
            VideoConfig::Hevc(c) => c.codec_string(),
        }
    }
    /// The configuration record exactly as received (`avcC` / `hvcC` box payload).
    pub fn record(&self) -> &Bytes {
        match self {
            VideoConfig::Avc(c) => &c.record,
            VideoConfig::Hevc(c) => &c.record,
        }
    }
    /// Picture facts from the first SPS.
    pub fn info(&self) -> &VideoInfo {
        match self {
            VideoConfig::Avc(c) => &c.info,
            VideoConfig::Hevc(c) => &c.info,
        }
    }
    /// Length in bytes of the NAL unit length prefix in samples (1, 2 or 4).
    pub fn nal_length_size(&self) -> u8 {
        match self {
            VideoConfig::Avc(c) => c.nal_length_size,
            VideoConfig::Hevc(c) => c.nal_length_size,
        }
    }
}

/// Picture facts read from a sequence parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct VideoInfo {
    /// Display width in pixels, after cropping.
    pub width: u32,
    /// Display height in pixels, after cropping.
    pub height: u32,
    /// Frame rate as (numerator, denominator) frames per second, when the VUI signals it.
    pub frame_rate: Option<(u32, u32)>,
    /// Sample aspect ratio (h, v) when signalled.
    pub sample_aspect_ratio: Option<(u16, u16)>,
    /// Bit depth of luma samples.
    pub bit_depth: u8,
    /// chroma_format_idc (1 = 4:2:0).
    pub chroma_format_idc: u8,
}

/// An audio decoder configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioConfig {
    Aac(aac::AudioSpecificConfig),
    Mp3(mp3::Mp3Header),
    Opus(opus::OpusHead),
}

impl AudioConfig {
    /// Codec string: `mp4a.40.N` for AAC; `mp3` for MP3 (WebCodecs name); `opus` (the
    /// WebCodecs name and the RFC 6381 name of Opus in MP4). MP3 is played by MSE as
    /// `audio/mpeg` (see [`AudioConfig::mse_mime`]).
    pub fn codec_string(&self) -> String {
        match self {
            AudioConfig::Aac(c) => c.codec_string(),
            AudioConfig::Mp3(_) => "mp3".to_string(),
            AudioConfig::Opus(_) => "opus".to_string(),
        }
    }
    /// The MIME type to give MSE: `audio/mp4; codecs="mp4a.40.2"` (or `"opus"`) in fMP4, and
    /// `audio/mpeg` for MP3, which Chromium only plays as raw MPEG audio frames.
    pub fn mse_mime(&self) -> String {
        match self {
            AudioConfig::Mp3(_) => "audio/mpeg".to_string(),
            _ => format!("audio/mp4; codecs=\"{}\"", self.codec_string()),
        }
    }
    /// The configuration record as received (AudioSpecificConfig, `OpusHead`): the WebCodecs
    /// `description`; none for MP3, whose frames carry their parameters.
    pub fn record(&self) -> Option<&Bytes> {
        match self {
            AudioConfig::Aac(c) => Some(&c.record),
            AudioConfig::Mp3(_) => None,
            AudioConfig::Opus(h) => Some(&h.record),
        }
    }
    pub fn sample_rate(&self) -> u32 {
        match self {
            AudioConfig::Aac(c) => c.sample_rate,
            AudioConfig::Mp3(h) => h.sample_rate,
            AudioConfig::Opus(_) => opus::SAMPLE_RATE,
        }
    }
    pub fn channels(&self) -> u8 {
        match self {
            AudioConfig::Aac(c) => c.channels,
            AudioConfig::Mp3(h) => h.channels,
            AudioConfig::Opus(h) => h.channels,
        }
    }
    /// PCM samples (per channel, at [`AudioConfig::sample_rate`]) in one coded frame; for
    /// Opus, whose packets vary, the common 20 ms (see [`AudioConfig::frame_samples`]).
    pub fn samples_per_frame(&self) -> u32 {
        match self {
            AudioConfig::Aac(c) => c.frame_length,
            AudioConfig::Mp3(h) => h.samples_per_frame,
            AudioConfig::Opus(_) => 960,
        }
    }
    /// PCM samples in the coded frame `data`: its TOC for Opus, the fixed frame length
    /// otherwise.
    pub fn frame_samples(&self, data: &[u8]) -> u32 {
        match self {
            AudioConfig::Opus(_) => opus::packet_samples(data).unwrap_or(960),
            _ => self.samples_per_frame(),
        }
    }
}
