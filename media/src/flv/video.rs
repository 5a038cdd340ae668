//! The header at the start of an FLV video tag body: legacy VIDEODATA (FLV spec v10.1 E.4.3.1,
//! with the AVCVIDEOPACKET header, and codec id 12 for HEVC as used by Chinese CDNs and
//! ffmpeg forks) and Enhanced RTMP's ExVideoTagHeader (FourCC codecs, Enhanced RTMP v1 and v2).

use bytes::Bytes;

/// Why a tag body's header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagHeaderError {
    #[error("{what} tag body is empty")]
    Empty { what: &'static str },
    #[error("{what} tag body of {len} bytes is shorter than its {need}-byte header")]
    Truncated {
        what: &'static str,
        len: usize,
        need: usize,
    },
}

/// FrameType, the upper bits of the first video byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// 1: a keyframe (for AVC/HEVC, an IDR/IRAP picture or a sequence header).
    Key,
    /// 2: an inter frame.
    Inter,
    /// 3: a disposable inter frame (H.263 only).
    DisposableInter,
    /// 4: a generated keyframe (server use only).
    Generated,
    /// 5: a video info / command frame, no picture.
    Command,
    /// Reserved values.
    Reserved(u8),
}

impl FrameType {
    fn from_bits(v: u8) -> Self {
        match v {
            1 => FrameType::Key,
            2 => FrameType::Inter,
            3 => FrameType::DisposableInter,
            4 => FrameType::Generated,
            5 => FrameType::Command,
            v => FrameType::Reserved(v),
        }
    }
}

/// The video codec of a tag, from the legacy CodecID or the Enhanced RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// CodecID 7 or FourCC `avc1`.
    Avc,
    /// CodecID 12 (legacy extension) or FourCC `hvc1`.
    Hevc,
    /// FourCC `av01`.
    Av1,
    /// FourCC `vp09`.
    Vp9,
    /// Another legacy CodecID (Sorenson H.263, screen video, VP6...).
    Legacy(u8),
    /// Another FourCC.
    FourCc([u8; 4]),
}

impl VideoCodec {
    /// The identifier carried in stream-info messages: the legacy id, or 0 with a FourCC.
    pub fn legacy_id(self) -> u8 {
        match self {
            VideoCodec::Avc => 7,
            VideoCodec::Hevc => 12,
            VideoCodec::Legacy(id) => id,
            _ => 0,
        }
    }
    /// The Enhanced RTMP FourCC for this codec, when it has one.
    pub fn fourcc(self) -> Option<[u8; 4]> {
        match self {
            VideoCodec::Avc => Some(*b"avc1"),
            VideoCodec::Hevc => Some(*b"hvc1"),
            VideoCodec::Av1 => Some(*b"av01"),
            VideoCodec::Vp9 => Some(*b"vp09"),
            VideoCodec::FourCc(f) => Some(f),
            VideoCodec::Legacy(_) => None,
        }
    }
}

/// What a video tag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPacket {
    /// AVCPacketType 0 / PacketTypeSequenceStart: the decoder configuration record.
    SequenceStart,
    /// AVCPacketType 1 / PacketTypeCodedFrames(X): coded pictures; `composition_time` is the
    /// signed PTS − DTS in milliseconds (0 for CodedFramesX).
    CodedFrames { composition_time: i32 },
    /// AVCPacketType 2 / PacketTypeSequenceEnd.
    SequenceEnd,
    /// Enhanced RTMP PacketTypeMetadata (HDR metadata as AMF).
    Metadata,
    /// A legacy codec's payload (no packet type).
    Raw,
    /// A packet type this crate does not interpret (MPEG-2 TS sequence start, multitrack,
    /// ModEx, reserved values); forwarded untouched.
    Other(u8),
}

/// The parsed header of a video tag body; the payload follows at `header_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTagHeader {
    pub frame_type: FrameType,
    pub codec: VideoCodec,
    pub packet: VideoPacket,
    /// True for an Enhanced RTMP ExVideoTagHeader.
    pub enhanced: bool,
    /// Bytes of header before the payload (configuration record or NAL units).
    pub header_len: usize,
}

impl VideoTagHeader {
    /// Reads the header of an FLV video tag body.
    pub fn parse(body: &[u8]) -> Result<Self, TagHeaderError> {
        const WHAT: &str = "video";
        let &first = body.first().ok_or(TagHeaderError::Empty { what: WHAT })?;
        let need = |n: usize| {
            if body.len() < n {
                Err(TagHeaderError::Truncated {
                    what: WHAT,
                    len: body.len(),
                    need: n,
                })
            } else {
                Ok(())
            }
        };
        let si24 = |b: &[u8]| (u32::from_be_bytes([b[0], b[1], b[2], 0]) as i32) >> 8;
        if first & 0x80 != 0 {
            // ExVideoTagHeader: IsExHeader(1) FrameType(3) PacketType(4) then a FourCC.
            let frame_type = FrameType::from_bits((first >> 4) & 0x07);
            let packet_type = first & 0x0f;
            if frame_type == FrameType::Command && packet_type != 4 {
                // A command frame carries one byte (VideoCommand) and no FourCC.
                return Ok(VideoTagHeader {
                    frame_type,
                    codec: VideoCodec::FourCc([0; 4]),
                    packet: VideoPacket::Other(packet_type),
                    enhanced: true,
                    header_len: 1,
                });
            }
            need(5)?;
            let fourcc = [body[1], body[2], body[3], body[4]];
            let codec = match &fourcc {
                b"avc1" => VideoCodec::Avc,
                b"hvc1" => VideoCodec::Hevc,
                b"av01" => VideoCodec::Av1,
                b"vp09" => VideoCodec::Vp9,
                _ => VideoCodec::FourCc(fourcc),
            };
            let (packet, header_len) = match packet_type {
                0 => (VideoPacket::SequenceStart, 5),
                1 if matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) => {
                    need(8)?;
                    let composition_time = si24(&body[5..8]);
                    (VideoPacket::CodedFrames { composition_time }, 8)
                }
                1 | 3 => (
                    VideoPacket::CodedFrames {
                        composition_time: 0,
                    },
                    5,
                ),
                2 => (VideoPacket::SequenceEnd, 5),
                4 => (VideoPacket::Metadata, 5),
                other => (VideoPacket::Other(other), 5),
            };
            return Ok(VideoTagHeader {
                frame_type,
                codec,
                packet,
                enhanced: true,
                header_len,
            });
        }
        let frame_type = FrameType::from_bits(first >> 4);
        let codec = match first & 0x0f {
            7 => VideoCodec::Avc,
            12 => VideoCodec::Hevc,
            id => VideoCodec::Legacy(id),
        };
        if !matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
            return Ok(VideoTagHeader {
                frame_type,
                codec,
                packet: VideoPacket::Raw,
                enhanced: false,
                header_len: 1,
            });
        }
        if frame_type == FrameType::Command {
            return Ok(VideoTagHeader {
                frame_type,
                codec,
                packet: VideoPacket::Other(body.get(1).copied().unwrap_or(0)),
                enhanced: false,
                header_len: body.len().min(2),
            });
        }
        // AVCVIDEOPACKET: AVCPacketType(8) CompositionTime(SI24).
        need(5)?;
        let packet = match body[1] {
            0 => VideoPacket::SequenceStart,
            1 => VideoPacket::CodedFrames {
                composition_time: si24(&body[2..5]),
            },
            2 => VideoPacket::SequenceEnd,
            other => VideoPacket::Other(other),
        };
        Ok(VideoTagHeader {
            frame_type,
            codec,
            packet,
            enhanced: false,
            header_len: 5,
        })
    }

    /// True for a coded keyframe (not a sequence header or command).
    pub fn is_keyframe(&self) -> bool {
        matches!(self.frame_type, FrameType::Key | FrameType::Generated)
            && matches!(
                self.packet,
                VideoPacket::CodedFrames { .. } | VideoPacket::Raw
            )
    }

    /// The payload after the header, as a zero-copy slice of `body`.
    pub fn payload(&self, body: &Bytes) -> Bytes {
        body.slice(self.header_len.min(body.len())..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_avc_coded_frame_with_negative_composition_time() {
        let body = [0x27, 0x01, 0xff, 0xff, 0xdf, 0, 0, 0, 1, 0x41];
        let h = VideoTagHeader::parse(&body).unwrap();
        assert_eq!(h.frame_type, FrameType::Inter);
        assert_eq!(h.codec, VideoCodec::Avc);
        assert_eq!(
            h.packet,
            VideoPacket::CodedFrames {
                composition_time: -33
            }
        );
        assert_eq!(h.header_len, 5);
        assert!(!h.is_keyframe());
    }

    #[test]
    fn legacy_avc_sequence_header_is_not_a_keyframe() {
        let h = VideoTagHeader::parse(&[0x17, 0x00, 0, 0, 0, 1, 0x64]).unwrap();
        assert_eq!(h.packet, VideoPacket::SequenceStart);
        assert!(!h.is_keyframe());
        let h = VideoTagHeader::parse(&[0x17, 0x01, 0, 0, 66, 0, 0, 0, 1]).unwrap();
        assert!(h.is_keyframe());
        assert_eq!(
            h.packet,
            VideoPacket::CodedFrames {
                composition_time: 66
            }
        );
    }

    #[test]
    fn legacy_hevc_codec_id_12() {
        let h = VideoTagHeader::parse(&[0x1c, 0x00, 0, 0, 0, 1]).unwrap();
        assert_eq!(h.codec, VideoCodec::Hevc);
        assert_eq!(h.packet, VideoPacket::SequenceStart);
    }

    #[test]
    fn enhanced_hevc_packet_types() {
        // SequenceStart
        let h = VideoTagHeader::parse(b"\x90hvc1\x01").unwrap();
        assert!(h.enhanced);
        assert_eq!(h.codec, VideoCodec::Hevc);
        assert_eq!(h.packet, VideoPacket::SequenceStart);
        assert_eq!(h.header_len, 5);
        // CodedFrames with SI24 composition time
        let h = VideoTagHeader::parse(b"\x91hvc1\x00\x00\x21\x00").unwrap();
        assert_eq!(
            h.packet,
            VideoPacket::CodedFrames {
                composition_time: 33
            }
        );
        assert_eq!(h.header_len, 8);
        assert!(h.is_keyframe());
        // CodedFramesX: no composition time
        let h = VideoTagHeader::parse(b"\xa3hvc1\x00").unwrap();
        assert_eq!(h.frame_type, FrameType::Inter);
        assert_eq!(
            h.packet,
            VideoPacket::CodedFrames {
                composition_time: 0
            }
        );
        assert_eq!(h.header_len, 5);
        // SequenceEnd
        let h = VideoTagHeader::parse(b"\x92hvc1").unwrap();
        assert_eq!(h.packet, VideoPacket::SequenceEnd);
    }

    #[test]
    fn short_bodies_are_errors_not_panics() {
        assert!(VideoTagHeader::parse(&[]).is_err());
        for body in [&[0x17u8][..], &[0x17, 0], &[0x90, b'h'], b"\x91hvc1\x00"] {
            assert!(VideoTagHeader::parse(body).is_err(), "{body:?}");
        }
    }
}
