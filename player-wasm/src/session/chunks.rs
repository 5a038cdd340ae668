//! The WebCodecs path of the session: FLV tag bodies to decoder configurations and encoded
//! chunks, with no fMP4 in between. Configurations come from the sequence headers (AVC/HEVC
//! record, AAC AudioSpecificConfig, `OpusHead` as the decoder `description`) or, for MP3
//! (and Opus without a sequence start), from the first frame; chunk data is the payload as
//! received (length-prefixed NAL units, raw AAC, MPEG audio frames, Opus packets).

use bytes::Bytes;
use lockstep_media::codec::aac::AudioSpecificConfig;
use lockstep_media::codec::h264::AvcConfig;
use lockstep_media::codec::h265::HevcConfig;
use lockstep_media::codec::mp3::Mp3Header;
use lockstep_media::codec::opus::OpusHead;
use lockstep_media::codec::AudioConfig;
use lockstep_media::flv::audio::{AudioCodec, AudioPacket, AudioTagHeader};
use lockstep_media::flv::video::{VideoCodec, VideoPacket, VideoTagHeader};
use lockstep_media::remux::TrackType;

/// A decoder configuration (WebCodecs `VideoDecoderConfig` / `AudioDecoderConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderSetup {
    pub track: TrackType,
    /// WebCodecs codec string: `avc1.64001f`, `hvc1.1.6.L93.90`, `mp4a.40.2`, `mp3`, `opus`.
    pub codec: String,
    /// The `description`: avcC / hvcC record, AudioSpecificConfig or OpusHead; none for MP3.
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
        let err = |e: lockstep_media::codec::CodecError| e.to_string();
        let current = self.audio.as_ref().map_or("", |s| s.codec.as_str());
        let config = match (h.codec, h.packet) {
            (AudioCodec::Aac, AudioPacket::SequenceStart) => Some(AudioConfig::Aac(
                AudioSpecificConfig::parse(payload.clone()).map_err(err)?,
            )),
            (AudioCodec::Opus, AudioPacket::SequenceStart) => Some(AudioConfig::Opus(
                OpusHead::parse(payload.clone()).map_err(err)?,
            )),
            (AudioCodec::Mp3, AudioPacket::Coded) => {
                Some(AudioConfig::Mp3(Mp3Header::parse(&payload).map_err(err)?))
            }
            (AudioCodec::Opus, AudioPacket::Coded) if current != "opus" => {
                Some(AudioConfig::Opus(OpusHead::implied_by(&payload)))
            }
            _ => None,
        };
        if let Some(config) = config {
            let setup = DecoderSetup {
                track: TrackType::Audio,
                codec: config.codec_string(),
                description: config.record().cloned(),
                width: 0,
                height: 0,
                sample_rate: config.sample_rate(),
                channels: config.channels(),
            };
            if self.audio.as_ref() != Some(&setup) {
                self.audio = Some(setup.clone());
                out.push(Decodable::Configure(setup));
            }
        }
        let current = self.audio.as_ref().map_or("", |s| s.codec.as_str());
        let coded = h.packet == AudioPacket::Coded
            && match h.codec {
                AudioCodec::Aac => current.starts_with("mp4a"),
                AudioCodec::Mp3 => current == "mp3",
                AudioCodec::Opus => current == "opus",
                _ => false,
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn body(first: u8, payload: &[u8]) -> Bytes {
        let mut b = vec![first];
        b.extend_from_slice(b"Opus");
        b.extend_from_slice(payload);
        Bytes::from(b)
    }

    #[test]
    fn opus_head_configures_and_packets_become_chunks() {
        let head = OpusHead::implied_by(&[0xf4]).record;
        let mut m = ChunkMaker::default();
        let mut out = Vec::new();
        m.audio(0, &body(0x90, &head), &mut out).unwrap();
        let [Decodable::Configure(setup)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(setup.codec, "opus");
        assert_eq!(setup.description.as_deref(), Some(&head[..]));
        assert_eq!((setup.sample_rate, setup.channels), (48_000, 2));
        out.clear();
        // CELT 10 ms, stereo; the same head again changes nothing.
        m.audio(0, &body(0x90, &head), &mut out).unwrap();
        m.audio(30, &body(0x91, &[0xf4, 1, 2]), &mut out).unwrap();
        let [Decodable::Chunk(c)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!((c.pts_ms, &c.data[..]), (30.0, &[0xf4, 1, 2][..]));
    }

    #[test]
    fn opus_without_a_sequence_start_takes_the_packets_channels() {
        let mut m = ChunkMaker::default();
        let mut out = Vec::new();
        m.audio(10, &body(0x91, &[0xf0, 9]), &mut out).unwrap();
        let [Decodable::Configure(setup), Decodable::Chunk(_)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!((setup.codec.as_str(), setup.channels), ("opus", 1));
        // A broken head is an error, not a configuration.
        assert!(m.audio(0, &body(0x90, b"OpusHea"), &mut out).is_err());
    }
}
