//! The WebCodecs path of the session: FLV tag bodies to decoder configurations and encoded
//! chunks, with no fMP4 in between. Configurations come from the sequence headers (AVC/HEVC
//! record and AAC AudioSpecificConfig as the decoder `description`) or, for MP3, from the
//! first frame header; chunk data is the payload as received (length-prefixed NAL units,
//! raw AAC or MPEG audio frames).

use bytes::Bytes;
use lockstep_media::codec::aac::AudioSpecificConfig;
use lockstep_media::codec::h264::AvcConfig;
use lockstep_media::codec::h265::HevcConfig;
use lockstep_media::codec::mp3::Mp3Header;
use lockstep_media::flv::audio::{AudioCodec, AudioPacket, AudioTagHeader};
use lockstep_media::flv::video::{VideoCodec, VideoPacket, VideoTagHeader};
use lockstep_media::remux::TrackType;

/// A decoder configuration (WebCodecs `VideoDecoderConfig` / `AudioDecoderConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderSetup {
    pub track: TrackType,
    /// WebCodecs codec string: `avc1.64001f`, `hvc1.1.6.L93.90`, `mp4a.40.2`, `mp3`.
    pub codec: String,
    /// The `description`: avcC / hvcC record or AudioSpecificConfig; none for MP3.
    pub description: Option<Bytes>,
    pub width: u32,
    pub height: u32,
    pub sample_rate: u32,
    pub channels: u8,
}

/// An encoded frame for a decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub track: TrackType,
    pub key: bool,
    /// Presentation time on the epoch's media timeline, ms (FLV timestamp + composition time).
    pub pts_ms: f64,
    pub data: Bytes,
}

/// What a tag body becomes on the WebCodecs path.
#[derive(Debug, Clone, PartialEq)]
pub enum Decodable {
    Configure(DecoderSetup),
    Chunk(Chunk),
}

/// Turns FLV tag bodies into decoder work, remembering the last configurations (so MP3's
/// per-frame header only reconfigures when it changes).
#[derive(Debug, Default)]
pub struct ChunkMaker {
    video: Option<DecoderSetup>,
    audio: Option<DecoderSetup>,
}

impl ChunkMaker {
    pub fn reset(&mut self) {
        *self = ChunkMaker::default();
    }

    /// The current configuration of a track.
    pub fn setup(&self, track: TrackType) -> Option<&DecoderSetup> {
        match track {
            TrackType::Video => self.video.as_ref(),
            TrackType::Audio => self.audio.as_ref(),
        }
    }

    /// A video tag body at FLV time `ts`: at most a configuration and a chunk (in order).
    pub fn video(&mut self, ts: u32, body: &Bytes, out: &mut Vec<Decodable>) -> Result<(), String> {
        let h = VideoTagHeader::parse(body).map_err(|e| e.to_string())?;
        match h.packet {
            VideoPacket::SequenceStart => {
                let record = h.payload(body);
                let (codec, info) = match h.codec {
                    VideoCodec::Avc => {
                        let c = AvcConfig::parse(record.clone()).map_err(|e| e.to_string())?;
                        (c.codec_string(), c.info)
                    }
                    VideoCodec::Hevc => {
                        let c = HevcConfig::parse(record.clone()).map_err(|e| e.to_string())?;
                        (c.codec_string(), c.info)
                    }
                    other => return Err(format!("unsupported video codec {other:?}")),
                };
                let setup = DecoderSetup {
                    track: TrackType::Video,
                    codec,
                    description: Some(record),
                    width: info.width,
                    height: info.height,
                    sample_rate: 0,
                    channels: 0,
                };
                if self.video.as_ref() != Some(&setup) {
                    self.video = Some(setup.clone());
                    out.push(Decodable::Configure(setup));
                }
            }
            VideoPacket::CodedFrames { composition_time } => {
                let matching = matches!(
                    (&self.video, h.codec),
                    (Some(s), VideoCodec::Avc) if s.codec.starts_with("avc")
                ) || matches!(
                    (&self.video, h.codec),
                    (Some(s), VideoCodec::Hevc) if s.codec.starts_with("hvc")
                );
                let data = h.payload(body);
                if matching && !data.is_empty() {
                    out.push(Decodable::Chunk(Chunk {
                        track: TrackType::Video,
                        key: h.is_keyframe(),
                        pts_ms: ts as f64 + composition_time as f64,
                        data,
                    }));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// An audio tag body at FLV time `ts`.
    pub fn audio(&mut self, ts: u32, body: &Bytes, out: &mut Vec<Decodable>) -> Result<(), String> {
        let h = AudioTagHeader::parse(body).map_err(|e| e.to_string())?;
        let payload = h.payload(body);
        let setup = match (h.codec, h.packet) {
            (AudioCodec::Aac, AudioPacket::SequenceStart) => {
                let asc = AudioSpecificConfig::parse(payload.clone()).map_err(|e| e.to_string())?;
                Some(DecoderSetup {
                    track: TrackType::Audio,
                    codec: asc.codec_string(),
                    description: Some(asc.record.clone()),
                    width: 0,
                    height: 0,
                    sample_rate: asc.sample_rate,
                    channels: asc.channels,
                })
            }
            (AudioCodec::Mp3, AudioPacket::Coded) => {
                let m = Mp3Header::parse(&payload).map_err(|e| e.to_string())?;
                Some(DecoderSetup {
                    track: TrackType::Audio,
                    codec: "mp3".into(),
                    description: None,
                    width: 0,
                    height: 0,
                    sample_rate: m.sample_rate,
                    channels: m.channels,
                })
            }
            _ => None,
        };
        if let Some(setup) = setup {
            if self.audio.as_ref() != Some(&setup) {
                self.audio = Some(setup.clone());
                out.push(Decodable::Configure(setup));
            }
        }
        let coded = matches!(
            (h.codec, h.packet, &self.audio),
            (AudioCodec::Aac, AudioPacket::Coded, Some(s)) if s.codec.starts_with("mp4a")
        ) || matches!(
            (h.codec, h.packet, &self.audio),
            (AudioCodec::Mp3, AudioPacket::Coded, Some(s)) if s.codec == "mp3"
        );
        if coded && !payload.is_empty() {
            out.push(Decodable::Chunk(Chunk {
                track: TrackType::Audio,
                key: true,
                pts_ms: ts as f64,
                data: payload,
            }));
        }
        Ok(())
    }
}
