//! The header at the start of an FLV audio tag body: AUDIODATA (FLV spec v10.1 E.4.2.1) with
//! the AACAUDIODATA packet type, and Enhanced RTMP v2's ExAudioTagHeader (FourCC codecs).

use bytes::Bytes;

pub use super::video::TagHeaderError;

/// The audio codec of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// SoundFormat 10.
    Aac,
    /// SoundFormat 2, or 14 (MP3 8 kHz).
    Mp3,
    /// Enhanced RTMP FourCC `Opus`.
    Opus,
    /// Another SoundFormat (PCM, Nellymoser, G.711, Speex...).
    Legacy(u8),
    /// Another Enhanced RTMP FourCC.
    FourCc([u8; 4]),
}

impl AudioCodec {
    /// The SoundFormat carried in stream-info messages (9 for an Enhanced RTMP FourCC).
    pub fn legacy_id(self) -> u8 {
        match self {
            AudioCodec::Aac => 10,
            AudioCodec::Mp3 => 2,
            AudioCodec::Legacy(id) => id,
            AudioCodec::Opus | AudioCodec::FourCc(_) => 9,
        }
    }
}

/// What an audio tag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioPacket {
    /// AACPacketType 0 / AudioPacketType SequenceStart: the AudioSpecificConfig.
    SequenceStart,
    /// A coded frame (AAC raw data block, MP3 frame...).
    Coded,
    /// AudioPacketType SequenceEnd.
    SequenceEnd,
    /// An Enhanced RTMP packet type this crate does not interpret.
    Other(u8),
}

/// The parsed header of an audio tag body; the payload follows at `header_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTagHeader {
    pub codec: AudioCodec,
    pub packet: AudioPacket,
    /// SoundRate as signalled (5.5, 11, 22, 44 kHz). Unreliable: AAC is always "44 kHz"; the
    /// codec configuration has the real rate.
    pub sound_rate_index: u8,
    /// SoundSize: 16-bit samples.
    pub sixteen_bit: bool,
    /// SoundType: stereo. Same caveat as the rate.
    pub stereo: bool,
    pub header_len: usize,
}

impl AudioTagHeader {
    /// Reads the header of an FLV audio tag body.
    pub fn parse(body: &[u8]) -> Result<Self, TagHeaderError> {
        const WHAT: &str = "audio";
        let &first = body.first().ok_or(TagHeaderError::Empty { what: WHAT })?;
        let format = first >> 4;
        let mut h = AudioTagHeader {
            codec: AudioCodec::Legacy(format),
            packet: AudioPacket::Coded,
            sound_rate_index: (first >> 2) & 0x03,
            sixteen_bit: first & 0x02 != 0,
            stereo: first & 0x01 != 0,
            header_len: 1,
        };
        match format {
            10 => {
                let &packet_type = body.get(1).ok_or(TagHeaderError::Truncated {
                    what: WHAT,
                    len: body.len(),
                    need: 2,
                })?;
                h.codec = AudioCodec::Aac;
                h.packet = match packet_type {
                    0 => AudioPacket::SequenceStart,
                    1 => AudioPacket::Coded,
                    other => AudioPacket::Other(other),
                };
                h.header_len = 2;
            }
            2 | 14 => h.codec = AudioCodec::Mp3,
            9 => {
                // ExAudioTagHeader: SoundFormat 9, AudioPacketType(4), then a FourCC.
                if body.len() < 5 {
                    return Err(TagHeaderError::Truncated {
                        what: WHAT,
                        len: body.len(),
                        need: 5,
                    });
                }
                let fourcc = [body[1], body[2], body[3], body[4]];
                h.codec = match &fourcc {
                    b"Opus" => AudioCodec::Opus,
                    b"mp4a" => AudioCodec::Aac,
                    b".mp3" => AudioCodec::Mp3,
                    _ => AudioCodec::FourCc(fourcc),
                };
                h.packet = match first & 0x0f {
                    0 => AudioPacket::SequenceStart,
                    1 => AudioPacket::Coded,
                    2 => AudioPacket::SequenceEnd,
                    other => AudioPacket::Other(other),
                };
                h.header_len = 5;
            }
            _ => {}
        }
        Ok(h)
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
    fn aac_sequence_header_and_raw() {
        let h = AudioTagHeader::parse(&[0xaf, 0x00, 0x12, 0x10]).unwrap();
        assert_eq!(h.codec, AudioCodec::Aac);
        assert_eq!(h.packet, AudioPacket::SequenceStart);
        assert_eq!(h.header_len, 2);
        let h = AudioTagHeader::parse(&[0xaf, 0x01, 0x21]).unwrap();
        assert_eq!(h.packet, AudioPacket::Coded);
        assert!(AudioTagHeader::parse(&[0xaf]).is_err());
    }

    #[test]
    fn mp3_has_a_one_byte_header() {
        let h = AudioTagHeader::parse(&[0x2f, 0xff, 0xfb]).unwrap();
        assert_eq!(h.codec, AudioCodec::Mp3);
        assert_eq!(h.header_len, 1);
        assert!(h.stereo);
    }

    #[test]
    fn enhanced_opus() {
        let h = AudioTagHeader::parse(b"\x90Opus\x01").unwrap();
        assert_eq!(h.codec, AudioCodec::Opus);
        assert_eq!(h.packet, AudioPacket::SequenceStart);
        assert!(AudioTagHeader::parse(b"\x91Op").is_err());
        assert!(AudioTagHeader::parse(&[]).is_err());
    }
}
