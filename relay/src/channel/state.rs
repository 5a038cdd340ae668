//! A channel's media state: the codec configurations, the GOP cache from the last keyframe,
//! the epoch and the stream-info a joining viewer needs — everything reconstructible from
//! the stream itself, nothing from a database.
//!
//! The publisher feeds tags in; each is classified (keyframe, configuration, frame) by its
//! FLV header only, encoded once as a wire message, kept if a joiner will need it, and
//! returned as [`Frame`]s to broadcast.

use super::timeline::ArrivalLine;
use bytes::Bytes;
use lockstep_media::codec::aac::AudioSpecificConfig;
use lockstep_media::codec::h264::AvcConfig;
use lockstep_media::codec::h265::HevcConfig;
use lockstep_media::codec::mp3::Mp3Header;
use lockstep_media::codec::opus::{self, OpusHead};
use lockstep_media::codec::AudioConfig;
use lockstep_media::flv::audio::{AudioCodec, AudioPacket, AudioTagHeader};
use lockstep_media::flv::metadata::Metadata;
use lockstep_media::flv::video::{VideoCodec, VideoPacket, VideoTagHeader};
use lockstep_media::flv::TagKind;
use lockstep_media::wire::{self, MediaFlags, MediaKind, Message, TrackParams};

use super::frame::{Frame, FrameKind};

/// Most bytes a GOP cache holds; a stream with keyframes further apart than this keeps only
/// its newest frames from the last keyframe (a joiner then waits for the next keyframe).
pub const MAX_GOP_BYTES: usize = 32 << 20;
/// A backward timestamp step larger than this starts a new epoch.
const MAX_BACKWARD_MS: u32 = 1000;

/// What a tag was, once classified.
#[derive(Debug)]
pub enum Classified {
    Frames(Vec<Frame>),
    /// The tag cannot be forwarded (malformed header): skipped, with why.
    Rejected(String),
}

/// Facts about the current source, for the API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceFacts {
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    pub audio_sample_rate: Option<u32>,
    pub audio_channels: Option<u8>,
}

#[derive(Debug, Default)]
pub struct MediaState {
    pub epoch: u32,
    pub metadata: Option<Metadata>,
    /// The onMetaData script tag as a wire message.
    metadata_msg: Option<Frame>,
    video_config: Option<Frame>,
    audio_config: Option<Frame>,
    video_track: Option<wire::Track>,
    audio_track: Option<wire::Track>,
    pub facts: SourceFacts,
    /// The current StreamInfo message; `None` until the first media frame of the epoch.
    stream_info: Option<Frame>,
    /// Timeline message of the first keyframe in the GOP cache.
    gop_timeline: Option<Frame>,
    gop: Vec<Frame>,
    gop_bytes: usize,
    last_ts: Option<u32>,
    /// The timeline's reference: the earliest-arrival line of the frames that carry it
    /// (video, or audio on an audio-only channel).
    line: ArrivalLine,
    pub delay_ms: u32,
    pub channel: String,
}

/// A snapshot for a joining viewer: in order, what it must receive before live frames.
pub struct JoinSnapshot {
    pub frames: Vec<Frame>,
    pub live: bool,
    /// The channel's current epoch (the last one when idle), for an idle StreamInfo.
    pub epoch: u32,
}

impl MediaState {
    pub fn new(channel: &str) -> Self {
        MediaState {
            channel: channel.to_string(),
            ..Default::default()
        }
    }

    /// A new publisher: everything from the previous one is dropped, a new epoch begins.
    /// Returns the Discontinuity to broadcast when there was a previous epoch.
    pub fn new_publisher(&mut self, now_us: u64) -> Vec<Frame> {
        let had = self.epoch > 0;
        let delay = self.delay_ms;
        let channel = std::mem::take(&mut self.channel);
        let epoch = self.epoch + 1;
        *self = MediaState {
            channel,
            delay_ms: delay,
            epoch,
            ..Default::default()
        };
        if had {
            vec![self.discontinuity(wire::reason::PUBLISHER_RESTART, now_us)]
        } else {
            Vec::new()
        }
    }

    /// The publisher left: the End message to broadcast.
    pub fn end(&mut self, reason: &str, now_us: u64) -> Frame {
        self.stream_info = None;
        self.gop.clear();
        self.gop_bytes = 0;
        self.gop_timeline = None;
        control(
            Message::End(wire::End {
                reason: reason.to_string(),
            }),
            now_us,
        )
    }

    /// A new shared delay D: joiners get it in StreamInfo, and connected viewers get a new
    /// StreamInfo now if the stream is live.
    pub fn set_delay(&mut self, delay_ms: u32, now_us: u64) -> Vec<Frame> {
        let mut out = Vec::new();
        if self.delay_ms != delay_ms {
            self.delay_ms = delay_ms;
            if self.stream_info.is_some() {
                self.refresh_stream_info(now_us, &mut out);
            }
        }
        out
    }

    /// What a joining viewer gets before live frames: StreamInfo, metadata, configurations,
    /// the Timeline of the cached GOP and the GOP itself.
    pub fn snapshot(&self) -> JoinSnapshot {
        let Some(info) = &self.stream_info else {
            return JoinSnapshot {
                frames: Vec::new(),
                live: false,
                epoch: self.epoch,
            };
        };
        let mut frames = vec![info.clone()];
        frames.extend(self.metadata_msg.iter().cloned());
        frames.extend(self.video_config.iter().cloned());
        frames.extend(self.audio_config.iter().cloned());
        if let Some(t) = &self.gop_timeline {
            frames.push(t.clone());
            frames.extend(self.gop.iter().cloned());
        }
        JoinSnapshot {
            frames,
            live: true,
            epoch: self.epoch,
        }
    }

    /// The current configurations and StreamInfo, for a viewer resuming after a skip.
    pub fn resync(&self) -> Vec<Frame> {
        let mut frames: Vec<Frame> = self.stream_info.iter().cloned().collect();
        frames.extend(self.video_config.iter().cloned());
        frames.extend(self.audio_config.iter().cloned());
        frames
    }

    pub fn gop_len(&self) -> (usize, usize) {
        (self.gop.len(), self.gop_bytes)
    }

    /// Classifies one tag from the publisher and returns the frames to broadcast, in order.
    pub fn push_tag(&mut self, kind: TagKind, ts: u32, body: Bytes, now_us: u64) -> Classified {
        let mut out = Vec::new();
        // A large backward jump (a timestamp reset without a reconnect) starts a new epoch.
        if kind != TagKind::Script {
            if let Some(last) = self.last_ts {
                if last.wrapping_sub(ts) < u32::MAX / 2 && last - ts > MAX_BACKWARD_MS {
                    self.epoch += 1;
                    out.push(self.discontinuity(wire::reason::TIMESTAMP_BACK, now_us));
                    self.stream_info = None;
                    self.gop.clear();
                    self.gop_bytes = 0;
                    self.gop_timeline = None;
                    self.last_ts = None;
                }
            }
        }
        let classified = match kind {
            TagKind::Video => self.video(ts, body, now_us, &mut out),
            TagKind::Audio => self.audio(ts, body, now_us, &mut out),
            TagKind::Script => {
                self.script(ts, body, now_us, &mut out);
                Ok(())
            }
        };
        match classified {
            Ok(()) => Classified::Frames(out),
            Err(why) if out.is_empty() => Classified::Rejected(why),
            Err(_) => Classified::Frames(out),
        }
    }

    fn script(&mut self, ts: u32, body: Bytes, now_us: u64, out: &mut Vec<Frame>) {
        let Ok(Some(meta)) = lockstep_media::flv::metadata::parse_script_tag(&body) else {
            // Other script data (cue points, captions) is forwarded as is.
            out.push(media(
                MediaKind::Script,
                MediaFlags::NONE,
                ts,
                &body,
                now_us,
                FrameKind::Media,
            ));
            return;
        };
        if self.facts.frame_rate.is_none() {
            self.facts.frame_rate = meta.frame_rate;
        }
        // Re-encode as a plain onMetaData (RTMP publishers wrap it in @setDataFrame).
        let body = meta.to_script_body();
        let frame = media(
            MediaKind::Script,
            MediaFlags::NONE,
            ts,
            &body,
            now_us,
            FrameKind::Config,
        );
        self.metadata = Some(meta);
        self.metadata_msg = Some(frame.clone());
        if self.stream_info.is_some() {
            out.push(frame);
        }
    }

    fn video(
        &mut self,
        ts: u32,
        body: Bytes,
        now_us: u64,
        out: &mut Vec<Frame>,
    ) -> Result<(), String> {
        let h = VideoTagHeader::parse(&body).map_err(|e| e.to_string())?;
        match h.packet {
            VideoPacket::SequenceStart => {
                let record = h.payload(&body);
                let (codec, info) = match h.codec {
                    VideoCodec::Avc => {
                        let c = AvcConfig::parse(record).map_err(|e| e.to_string())?;
                        (c.codec_string(), c.info)
                    }
                    VideoCodec::Hevc => {
                        let c = HevcConfig::parse(record).map_err(|e| e.to_string())?;
                        (c.codec_string(), c.info)
                    }
                    other => return Err(format!("unsupported video codec {other:?}")),
                };
                let track = wire::Track {
                    codec_id: h.codec.legacy_id(),
                    fourcc: if h.enhanced {
                        h.codec.fourcc().unwrap_or([0; 4])
                    } else {
                        [0; 4]
                    },
                    codec: codec.clone(),
                    params: TrackParams::Video {
                        width: info.width.min(u16::MAX as u32) as u16,
                        height: info.height.min(u16::MAX as u32) as u16,
                    },
                };
                self.facts.video_codec = Some(codec);
                self.facts.width = Some(info.width);
                self.facts.height = Some(info.height);
                if let Some((n, d)) = info.frame_rate {
                    if d > 0 {
                        self.facts.frame_rate = Some(n as f64 / d as f64);
                    }
                }
                let frame = media(
                    MediaKind::Video,
                    MediaFlags::CONFIG,
                    ts,
                    &body,
                    now_us,
                    FrameKind::Config,
                );
                let same = self
                    .video_config
                    .as_ref()
                    .is_some_and(|f| f.msg()[wire::MEDIA_HEADER_LEN..] == body[..]);
                self.video_config = Some(frame.clone());
                let changed_track = self.video_track.as_ref() != Some(&track);
                self.video_track = Some(track);
                if !same && self.stream_info.is_some() {
                    if changed_track {
                        self.refresh_stream_info(now_us, out);
                    }
                    out.push(frame);
                }
                Ok(())
            }
            VideoPacket::CodedFrames { .. } | VideoPacket::Raw => {
                let key = h.is_keyframe();
                if self.stream_info.is_none() {
                    if self.video_config.is_none() || !key {
                        return Ok(()); // undecodable until a configuration and a keyframe
                    }
                    self.announce(now_us, out);
                }
                self.last_ts = Some(ts);
                let flags = if key {
                    MediaFlags::KEYFRAME
                } else {
                    MediaFlags::NONE
                };
                let kind = if key {
                    FrameKind::Keyframe
                } else {
                    FrameKind::Media
                };
                let frame = media(MediaKind::Video, flags, ts, &body, now_us, kind);
                let line_us = self.line.observe(ts, now_us);
                if key {
                    let timeline = self.timeline(ts, line_us, now_us);
                    self.gop.clear();
                    self.gop_bytes = 0;
                    self.gop_timeline = Some(timeline.clone());
                    out.push(timeline);
                }
                self.cache(&frame);
                out.push(frame);
                Ok(())
            }
            VideoPacket::SequenceEnd => {
                let frame = media(
                    MediaKind::Video,
                    MediaFlags::END_OF_SEQUENCE,
                    ts,
                    &body,
                    now_us,
                    FrameKind::Media,
                );
                out.push(frame);
                Ok(())
            }
            VideoPacket::Metadata | VideoPacket::Other(_) => Ok(()),
        }
    }

    fn audio(
        &mut self,
        ts: u32,
        body: Bytes,
        now_us: u64,
        out: &mut Vec<Frame>,
    ) -> Result<(), String> {
        let h = AudioTagHeader::parse(&body).map_err(|e| e.to_string())?;
        match (h.codec, h.packet) {
            (AudioCodec::Aac | AudioCodec::Opus, AudioPacket::SequenceStart) => {
                let config = if h.codec == AudioCodec::Opus {
                    AudioConfig::Opus(OpusHead::parse(h.payload(&body)).map_err(|e| e.to_string())?)
                } else {
                    AudioConfig::Aac(
                        AudioSpecificConfig::parse(h.payload(&body)).map_err(|e| e.to_string())?,
                    )
                };
                let track = audio_track(h.codec, &config);
                let frame = media(
                    MediaKind::Audio,
                    MediaFlags::CONFIG,
                    ts,
                    &body,
                    now_us,
                    FrameKind::Config,
                );
                let same = self
                    .audio_config
                    .as_ref()
                    .is_some_and(|f| f.msg()[wire::MEDIA_HEADER_LEN..] == body[..]);
                self.audio_config = Some(frame.clone());
                self.set_audio_track(track, now_us, out);
                if !same && self.stream_info.is_some() {
                    out.push(frame);
                }
                Ok(())
            }
            (AudioCodec::Aac | AudioCodec::Mp3 | AudioCodec::Opus, AudioPacket::Coded) => {
                let payload = h.payload(&body);
                if h.codec == AudioCodec::Mp3 {
                    let mp3 = Mp3Header::parse(&payload).map_err(|e| e.to_string())?;
                    self.set_audio_track(audio_track(h.codec, &AudioConfig::Mp3(mp3)), now_us, out);
                } else if h.codec == AudioCodec::Opus {
                    if opus::packet_samples(&payload).is_none() {
                        return Err("Opus packet with an invalid TOC".to_string());
                    }
                    if self.audio_config.is_none() {
                        let head = OpusHead::implied_by(&payload);
                        self.set_audio_track(
                            audio_track(h.codec, &AudioConfig::Opus(head)),
                            now_us,
                            out,
                        );
                    }
                } else if self.audio_config.is_none() {
                    return Ok(()); // AAC frames before the AudioSpecificConfig
                }
                if self.stream_info.is_none() {
                    // Audio alone starts the stream only when there is no video to wait for.
                    if self.video_config.is_some() {
                        return Ok(());
                    }
                    self.announce(now_us, out);
                }
                self.last_ts = Some(ts);
                // Without video every audio frame is where a skipping viewer may resume.
                let kind = if self.video_track.is_none() {
                    FrameKind::Keyframe
                } else {
                    FrameKind::Media
                };
                let frame = media(
                    MediaKind::Audio,
                    MediaFlags::KEYFRAME,
                    ts,
                    &body,
                    now_us,
                    kind,
                );
                if self.video_track.is_none() {
                    let line_us = self.line.observe(ts, now_us);
                    // Audio only: every frame is a random access point; keep ~1 s.
                    if self.gop_timeline.is_none() || self.gop.len() >= 48 {
                        self.gop.clear();
                        self.gop_bytes = 0;
                        let timeline = self.timeline(ts, line_us, now_us);
                        self.gop_timeline = Some(timeline.clone());
                        out.push(timeline);
                    }
                }
                self.cache(&frame);
                out.push(frame);
                Ok(())
            }
            (AudioCodec::Aac | AudioCodec::Mp3 | AudioCodec::Opus, _) => Ok(()),
            (other, _) => Err(format!("unsupported audio codec {other:?}")),
        }
    }

    fn set_audio_track(&mut self, track: wire::Track, now_us: u64, out: &mut Vec<Frame>) {
        if self.audio_track.as_ref() == Some(&track) {
            return;
        }
        if let TrackParams::Audio {
            sample_rate,
            channels,
        } = track.params
        {
            self.facts.audio_sample_rate = Some(sample_rate);
            self.facts.audio_channels = Some(channels);
        }
        self.facts.audio_codec = Some(track.codec.clone());
        self.audio_track = Some(track);
        if self.stream_info.is_some() {
            self.refresh_stream_info(now_us, out);
        }
    }

    fn cache(&mut self, frame: &Frame) {
        if self.gop_timeline.is_none() {
            return;
        }
        self.gop_bytes += frame.len();
        self.gop.push(frame.clone());
        if self.gop_bytes > MAX_GOP_BYTES {
            // Too long a GOP to cache: joiners wait for the next keyframe.
            self.gop.clear();
            self.gop_bytes = 0;
            self.gop_timeline = None;
        }
    }

    /// The first media frame of the epoch: StreamInfo, metadata and configurations go out.
    fn announce(&mut self, now_us: u64, out: &mut Vec<Frame>) {
        self.refresh_stream_info(now_us, out);
        out.extend(self.metadata_msg.iter().cloned());
        out.extend(self.video_config.iter().cloned());
        out.extend(self.audio_config.iter().cloned());
    }

    fn refresh_stream_info(&mut self, now_us: u64, out: &mut Vec<Frame>) {
        let info = Message::StreamInfo(wire::StreamInfo {
            epoch: self.epoch,
            flags: wire::STREAM_LIVE,
            delay_ms: self.delay_ms,
            channel: self.channel.clone(),
            tracks: self
                .video_track
                .iter()
                .chain(self.audio_track.iter())
                .cloned()
                .collect(),
        });
        let frame = control(info, now_us);
        self.stream_info = Some(frame.clone());
        out.push(frame);
    }

    /// The Timeline message pinning `ts` to relay time `line_us` (its [`ArrivalLine`] time).
    fn timeline(&self, ts: u32, line_us: u64, now_us: u64) -> Frame {
        control(
            Message::Timeline(wire::Timeline {
                epoch: self.epoch,
                timestamp_ms: ts,
                relay_us: line_us,
            }),
            now_us,
        )
    }

    fn discontinuity(&self, reason: u8, now_us: u64) -> Frame {
        control(
            Message::Discontinuity(wire::Discontinuity {
                epoch: self.epoch,
                reason,
            }),
            now_us,
        )
    }
}

fn media(
    kind: MediaKind,
    flags: MediaFlags,
    ts: u32,
    body: &[u8],
    now_us: u64,
    fk: FrameKind,
) -> Frame {
    Frame::media(kind, flags, ts, body, fk, now_us)
}

fn control(msg: Message, now_us: u64) -> Frame {
    Frame::control(&msg, now_us)
}

/// The stream-info track of an audio configuration (`codec` as the tag header named it).
fn audio_track(codec: AudioCodec, config: &AudioConfig) -> wire::Track {
    wire::Track {
        codec_id: codec.legacy_id(),
        fourcc: if codec == AudioCodec::Opus {
            *b"Opus"
        } else {
            [0; 4]
        },
        codec: config.codec_string(),
        params: TrackParams::Audio {
            sample_rate: config.sample_rate(),
            channels: config.channels(),
        },
    }
}
