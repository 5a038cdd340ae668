//! FLV tags in, fragmented MP4 out: the path from what the relay forwards to what MSE plays
//! (and, later, what the relay's LL-HLS serves).
//!
//! [`Remuxer`] is sans-IO: [`Remuxer::push`] a tag (kind, FLV timestamp, body), then
//! [`Remuxer::poll`] [`RemuxEvent`]s: init segments when codec configurations arrive or change,
//! media segments, and discontinuities. Two layouts:
//!
//! - [`Layout::PerTrack`]: one init segment and one fragment stream per track, for one MSE
//!   SourceBuffer per track (what the player does: it creates its SourceBuffers from the
//!   stream-info message, so audio-only and video-only streams start at once). MP3 can be
//!   passed through raw for an `audio/mpeg` SourceBuffer, as Chromium requires.
//! - [`Layout::Combined`]: one init segment with every expected track, for a single file
//!   (the `flv2mp4` example) or a single HLS rendition.
//!
//! [`FragmentMode::PerFrame`] writes each frame as soon as it arrives (the lowest latency:
//! a video frame's duration is estimated from the previous one; the next fragment's
//! `tfdt` is exact, so nothing accumulates). [`FragmentMode::Grouped`] holds samples until
//! the next video keyframe or a duration limit, so every duration is exact.

mod file;
mod timeline;
mod track;

use std::collections::VecDeque;

use bytes::Bytes;

pub use file::{flv_to_mp4, FileRemux};
pub use timeline::{DiscontinuityReason, Timeline, TimelineLimits};
use track::{Queued, Track};
pub use track::{TrackConfig, TrackType};

use crate::codec::aac::AudioSpecificConfig;
use crate::codec::h264::AvcConfig;
use crate::codec::h265::HevcConfig;
use crate::codec::mp3::Mp3Header;
use crate::codec::opus::{self, OpusHead};
use crate::codec::{AudioConfig, CodecError, VideoConfig};
use crate::flv::audio::{AudioCodec, AudioPacket, AudioTagHeader};
use crate::flv::video::{TagHeaderError, VideoCodec, VideoPacket, VideoTagHeader};
use crate::flv::TagKind;
use crate::fmp4::{self, TrackRun};

/// How init segments and fragments are grouped by track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One init segment and fragment stream per track.
    PerTrack,
    /// One init segment holding the expected tracks; it is written once all of them have
    /// a configuration (or at [`Remuxer::flush`]).
    Combined { video: bool, audio: bool },
}

/// When fragments are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentMode {
    /// Each frame in its own fragment, as soon as it arrives.
    PerFrame,
    /// Fragments start at video keyframes and last at most `max_ms`.
    Grouped { max_ms: u32 },
}

/// What to do with MP3 audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mp3Output {
    /// In MP4 (`mp4a`, objectTypeIndication 0x6B), as ffmpeg writes it.
    InMp4,
    /// Raw MPEG audio frames for an `audio/mpeg` SourceBuffer (Chromium does not play MP3
    /// in MP4 through MSE). Only with [`Layout::PerTrack`].
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemuxOptions {
    pub layout: Layout,
    pub fragment: FragmentMode,
    pub mp3: Mp3Output,
    pub limits: TimelineLimits,
}

impl RemuxOptions {
    /// What the MSE player uses: a SourceBuffer per track, a fragment per frame.
    pub fn live() -> Self {
        RemuxOptions {
            layout: Layout::PerTrack,
            fragment: FragmentMode::PerFrame,
            mp3: Mp3Output::Raw,
            limits: TimelineLimits::default(),
        }
    }

    /// One MP4 file with exact durations, fragments of at most a GOP or `max_ms`.
    pub fn file(video: bool, audio: bool) -> Self {
        RemuxOptions {
            layout: Layout::Combined { video, audio },
            fragment: FragmentMode::Grouped { max_ms: 2000 },
            mp3: Mp3Output::InMp4,
            limits: TimelineLimits::default(),
        }
    }
}

/// An initialization segment. For raw MP3 `data` is empty (an `audio/mpeg` SourceBuffer
/// needs none) and `mime` is `audio/mpeg`.
#[derive(Debug, Clone, PartialEq)]
pub struct InitSegment {
    /// The tracks it describes.
    pub tracks: Vec<TrackType>,
    pub data: Bytes,
    /// The MIME type with codecs to give `MediaSource.isTypeSupported` / `addSourceBuffer`.
    pub mime: String,
}

/// A media segment: one `moof`+`mdat`, or raw MP3 frames.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSegment {
    /// The single track it holds, `None` for a combined fragment.
    pub track: Option<TrackType>,
    pub data: Bytes,
    /// Earliest decode time in output milliseconds (= MSE seconds × 1000).
    pub start_ms: f64,
    /// End of the last sample, in output milliseconds.
    pub end_ms: f64,
    /// Starts with a sync sample (video keyframe).
    pub keyframe: bool,
    pub samples: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RemuxEvent {
    Init(InitSegment),
    Media(MediaSegment),
    /// The timeline was re-based at output time `at_ms` (see [`Timeline`]).
    Discontinuity {
        reason: DiscontinuityReason,
        at_ms: i64,
    },
}

/// A tag that could not be remuxed; it was skipped and the stream goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemuxError {
    #[error("{kind:?} tag at {timestamp} ms: {source}")]
    Header {
        kind: TagKind,
        timestamp: u32,
        source: TagHeaderError,
    },
    #[error("{kind:?} tag at {timestamp} ms: bad codec configuration: {source}")]
    Config {
        kind: TagKind,
        timestamp: u32,
        source: CodecError,
    },
    #[error("{kind:?} tag at {timestamp} ms: unsupported codec {codec}")]
    Unsupported {
        kind: TagKind,
        timestamp: u32,
        codec: String,
    },
}

/// The remuxer: see the module doc.
#[derive(Debug)]
pub struct Remuxer {
    options: RemuxOptions,
    timeline: Timeline,
    video: Track,
    audio: Track,
    sequence: u32,
    events: VecDeque<RemuxEvent>,
    /// Combined layout: the one init segment is out.
    combined_init_sent: bool,
}

impl Remuxer {
    pub fn new(options: RemuxOptions) -> Self {
        Remuxer {
            timeline: Timeline::new(options.limits),
            options,
            video: Track::new(TrackType::Video),
            audio: Track::new(TrackType::Audio),
            sequence: 0,
            events: VecDeque::new(),
            combined_init_sent: false,
        }
    }

    /// The next event, `None` when the remuxer needs more input.
    pub fn poll(&mut self) -> Option<RemuxEvent> {
        self.events.pop_front()
    }

    /// The current configuration of a track.
    pub fn config(&self, track: TrackType) -> Option<&TrackConfig> {
        self.track(track).config.as_ref()
    }

    /// Output milliseconds minus FLV milliseconds on the current timeline.
    pub fn timeline_shift_ms(&self) -> i64 {
        self.timeline.shift_ms()
    }

    /// Starts a new timeline at the next tag (the relay announced a new epoch): writes out
    /// what is queued and re-bases the timestamps that follow so they continue the output.
    pub fn reset_timeline(&mut self) {
        self.flush_queues(true);
        self.timeline.reset();
    }

    /// Feeds one FLV tag. A tag that cannot be used is skipped with an error; the remuxer
    /// stays usable.
    pub fn push(&mut self, kind: TagKind, timestamp: u32, body: &Bytes) -> Result<(), RemuxError> {
        match kind {
            TagKind::Video => self.push_video(timestamp, body),
            TagKind::Audio => self.push_audio(timestamp, body),
            TagKind::Script => Ok(()),
        }
    }

    /// End of input: writes every queued sample (estimating the last durations) and, in the
    /// combined layout, the init segment if some expected track never appeared.
    pub fn flush(&mut self) {
        if matches!(self.options.layout, Layout::Combined { .. }) && !self.combined_init_sent {
            self.emit_combined_init();
        }
        self.flush_queues(true);
    }

    fn track(&self, t: TrackType) -> &Track {
        match t {
            TrackType::Video => &self.video,
            TrackType::Audio => &self.audio,
        }
    }

    fn track_mut(&mut self, t: TrackType) -> &mut Track {
        match t {
            TrackType::Video => &mut self.video,
            TrackType::Audio => &mut self.audio,
        }
    }

    fn push_video(&mut self, timestamp: u32, body: &Bytes) -> Result<(), RemuxError> {
        let kind = TagKind::Video;
        let h = VideoTagHeader::parse(body).map_err(|source| RemuxError::Header {
            kind,
            timestamp,
            source,
        })?;
        match h.packet {
            VideoPacket::SequenceStart => {
                let record = h.payload(body);
                let config = match h.codec {
                    VideoCodec::Avc => AvcConfig::parse(record).map(VideoConfig::Avc),
                    VideoCodec::Hevc => HevcConfig::parse(record).map(VideoConfig::Hevc),
                    other => return Err(unsupported_video(timestamp, other)),
                }
                .map_err(|source| RemuxError::Config {
                    kind,
                    timestamp,
                    source,
                })?;
                self.set_config(TrackType::Video, TrackConfig::Video(config));
                Ok(())
            }
            VideoPacket::CodedFrames { composition_time } => {
                if !matches!(h.codec, VideoCodec::Avc | VideoCodec::Hevc) {
                    return Err(unsupported_video(timestamp, h.codec));
                }
                let configured = matches!(
                    (h.codec, &self.video.config),
                    (
                        VideoCodec::Avc,
                        Some(TrackConfig::Video(VideoConfig::Avc(_)))
                    ) | (
                        VideoCodec::Hevc,
                        Some(TrackConfig::Video(VideoConfig::Hevc(_)))
                    )
                );
                if !configured {
                    // Nothing decodable before a configuration of this codec.
                    return Ok(());
                }
                let key = h.is_keyframe();
                if self.video.waiting_for_key && !key {
                    return Ok(());
                }
                self.video.waiting_for_key = false;
                let data = h.payload(body);
                if data.is_empty() {
                    return Ok(());
                }
                let ms = self.map_time(timestamp);
                let dts = self.video.ticks(ms);
                self.add_sample(
                    TrackType::Video,
                    Queued {
                        dts,
                        composition_offset: composition_time.saturating_mul(90),
                        sync: key,
                        duration: None,
                        data,
                    },
                );
                Ok(())
            }
            VideoPacket::Raw => Err(unsupported_video(timestamp, h.codec)),
            VideoPacket::SequenceEnd | VideoPacket::Metadata | VideoPacket::Other(_) => Ok(()),
        }
    }

    fn push_audio(&mut self, timestamp: u32, body: &Bytes) -> Result<(), RemuxError> {
        let kind = TagKind::Audio;
        let h = AudioTagHeader::parse(body).map_err(|source| RemuxError::Header {
            kind,
            timestamp,
            source,
        })?;
        let payload = h.payload(body);
        match (h.codec, h.packet) {
            (AudioCodec::Aac, AudioPacket::SequenceStart) => {
                let asc =
                    AudioSpecificConfig::parse(payload).map_err(|source| RemuxError::Config {
                        kind,
                        timestamp,
                        source,
                    })?;
                self.set_config(TrackType::Audio, TrackConfig::Audio(AudioConfig::Aac(asc)));
                Ok(())
            }
            (AudioCodec::Aac, AudioPacket::Coded) => {
                let configured = matches!(
                    self.audio.config,
                    Some(TrackConfig::Audio(AudioConfig::Aac(_)))
                );
                if !configured || payload.is_empty() {
                    return Ok(());
                }
                self.add_audio_frame(timestamp, payload);
                Ok(())
            }
            (AudioCodec::Mp3, AudioPacket::Coded) => {
                let header = Mp3Header::parse(&payload).map_err(|source| RemuxError::Config {
                    kind,
                    timestamp,
                    source,
                })?;
                let config = TrackConfig::Audio(AudioConfig::Mp3(header));
                // MP3 has no sequence header: every frame carries its parameters. A new
                // configuration only when rate, channels or frame size change.
                let changed = match &self.audio.config {
                    Some(TrackConfig::Audio(AudioConfig::Mp3(old))) => {
                        old.sample_rate != header.sample_rate
                            || old.channels != header.channels
                            || old.samples_per_frame != header.samples_per_frame
                    }
                    _ => true,
                };
                if changed {
                    self.set_config(TrackType::Audio, config);
                }
                self.add_audio_frame(timestamp, payload);
                Ok(())
            }
            (AudioCodec::Opus, AudioPacket::SequenceStart) => {
                let head = OpusHead::parse(payload).map_err(|source| RemuxError::Config {
                    kind,
                    timestamp,
                    source,
                })?;
                self.set_config(
                    TrackType::Audio,
                    TrackConfig::Audio(AudioConfig::Opus(head)),
                );
                Ok(())
            }
            (AudioCodec::Opus, AudioPacket::Coded) => {
                if opus::packet_samples(&payload).is_none() {
                    return Ok(());
                }
                if !matches!(
                    self.audio.config,
                    Some(TrackConfig::Audio(AudioConfig::Opus(_)))
                ) {
                    let head = OpusHead::implied_by(&payload);
                    self.set_config(
                        TrackType::Audio,
                        TrackConfig::Audio(AudioConfig::Opus(head)),
                    );
                }
                self.add_audio_frame(timestamp, payload);
                Ok(())
            }
            (AudioCodec::Aac | AudioCodec::Mp3 | AudioCodec::Opus, _) => Ok(()),
            (codec, _) => Err(RemuxError::Unsupported {
                kind,
                timestamp,
                codec: format!("{codec:?}"),
            }),
        }
    }

    fn add_audio_frame(&mut self, timestamp: u32, data: Bytes) {
        let ms = self.map_time(timestamp);
        let dts = self.audio.audio_dts(ms);
        self.add_sample(
            TrackType::Audio,
            Queued {
                dts,
                composition_offset: 0,
                sync: true,
                duration: None,
                data,
            },
        );
    }

    fn map_time(&mut self, timestamp: u32) -> i64 {
        let (ms, reason) = self.timeline.map(timestamp);
        if let Some(reason) = reason {
            // Everything before the jump goes out on the old timeline first.
            self.flush_queues(true);
            self.events
                .push_back(RemuxEvent::Discontinuity { reason, at_ms: ms });
        }
        ms
    }

    fn set_config(&mut self, t: TrackType, config: TrackConfig) {
        if self.track(t).config.as_ref() == Some(&config) {
            return;
        }
        // Samples of the old configuration go out before the new init segment.
        self.flush_queues(true);
        let track = self.track_mut(t);
        let had_config = track.config.is_some();
        track.config = Some(config);
        track.init_sent = false;
        track.last_duration = None;
        if t == TrackType::Video {
            track.waiting_for_key = true;
        }
        match self.options.layout {
            Layout::PerTrack => self.emit_track_init(t),
            Layout::Combined { video, audio } => {
                let ready = (!video || self.video.config.is_some())
                    && (!audio || self.audio.config.is_some());
                if ready && (!self.combined_init_sent || had_config) {
                    self.emit_combined_init();
                }
            }
        }
    }

    fn emit_track_init(&mut self, t: TrackType) {
        let track = self.track_mut(t);
        let Some(config) = track.config.clone() else {
            return;
        };
        track.init_sent = true;
        let raw_mp3 = self.options.mp3 == Mp3Output::Raw
            && matches!(config, TrackConfig::Audio(AudioConfig::Mp3(_)));
        let (data, mime) = if raw_mp3 {
            (Bytes::new(), "audio/mpeg".to_string())
        } else {
            let mut out = Vec::new();
            fmp4::write_init_segment(&[config.spec(t.track_id())], &mut out);
            let base = if t == TrackType::Video {
                "video"
            } else {
                "audio"
            };
            let mime = format!("{base}/mp4; codecs=\"{}\"", config.codec_string());
            (Bytes::from(out), mime)
        };
        self.events.push_back(RemuxEvent::Init(InitSegment {
            tracks: vec![t],
            data,
            mime,
        }));
    }

    fn emit_combined_init(&mut self) {
        let mut specs = Vec::new();
        let mut codecs = Vec::new();
        let mut tracks = Vec::new();
        for t in [TrackType::Video, TrackType::Audio] {
            let track = self.track_mut(t);
            if let Some(config) = &track.config {
                specs.push(config.spec(t.track_id()));
                codecs.push(config.codec_string());
                tracks.push(t);
                track.init_sent = true;
            }
        }
        if specs.is_empty() {
            return;
        }
        self.combined_init_sent = true;
        let base = if tracks.contains(&TrackType::Video) {
            "video"
        } else {
            "audio"
        };
        let mut out = Vec::new();
        fmp4::write_init_segment(&specs, &mut out);
        self.events.push_back(RemuxEvent::Init(InitSegment {
            tracks,
            data: Bytes::from(out),
            mime: format!("{base}/mp4; codecs=\"{}\"", codecs.join(",")),
        }));
    }

    fn add_sample(&mut self, t: TrackType, sample: Queued) {
        let key = sample.sync && t == TrackType::Video;
        let dts = sample.dts;
        // Grouped: a keyframe (or a full fragment) closes the fragment before it.
        if let FragmentMode::Grouped { max_ms } = self.options.fragment {
            let track = self.track(t);
            let too_long = track.queue.first().is_some_and(|first| {
                dts.saturating_sub(first.dts) * 1000 >= max_ms as u64 * track.timescale() as u64
            });
            if key || too_long {
                self.settle_last(t, dts);
                self.flush_queues(false);
            }
        }
        let track = self.track_mut(t);
        track.enqueue(sample);
        let end = track.last_dts.unwrap_or(0) + track.estimated_duration() as u64;
        let end_ms = (end.saturating_mul(1000) / track.timescale() as u64) as i64;
        self.timeline.extend_to(end_ms);
        if self.options.fragment == FragmentMode::PerFrame {
            self.flush_queues(true);
        }
    }

    /// Gives the last queued sample of `t` its duration up to `next_dts`.
    fn settle_last(&mut self, t: TrackType, next_dts: u64) {
        let track = self.track_mut(t);
        if let Some(last) = track.queue.last_mut() {
            if last.duration.is_none() && next_dts > last.dts {
                last.duration = Some((next_dts - last.dts).min(u32::MAX as u64) as u32);
            }
        }
    }

    /// Writes queued samples. With `all`, samples whose duration is not settled get the
    /// estimate; without, they stay queued.
    fn flush_queues(&mut self, all: bool) {
        match self.options.layout {
            Layout::PerTrack => {
                for t in [TrackType::Video, TrackType::Audio] {
                    if self.track(t).init_sent {
                        self.write_fragment(&[t], all);
                    }
                }
            }
            Layout::Combined { .. } => {
                if self.combined_init_sent {
                    self.write_fragment(&[TrackType::Video, TrackType::Audio], all);
                }
            }
        }
    }

    fn write_fragment(&mut self, tracks: &[TrackType], all: bool) {
        struct Run {
            t: TrackType,
            base: u64,
            samples: Vec<fmp4::Sample>,
            data: Vec<Bytes>,
        }
        let mut runs: Vec<Run> = Vec::new();
        let mut start_ms = f64::INFINITY;
        let mut end_ms = f64::NEG_INFINITY;
        let mut keyframe = false;
        let mut count = 0u32;
        let raw_mp3 = self.options.mp3 == Mp3Output::Raw
            && matches!(
                self.audio.config,
                Some(TrackConfig::Audio(AudioConfig::Mp3(_)))
            );
        for &t in tracks {
            let track = self.track_mut(t);
            if !track.init_sent || track.queue.is_empty() {
                continue;
            }
            let estimate = track.estimated_duration();
            let take = if all {
                track.queue.len()
            } else {
                track
                    .queue
                    .iter()
                    .position(|q| q.duration.is_none())
                    .unwrap_or(track.queue.len())
            };
            if take == 0 {
                continue;
            }
            let scale = track.timescale() as f64 / 1000.0;
            let taken: Vec<Queued> = track.queue.drain(..take).collect();
            let base = taken[0].dts;
            let mut samples = Vec::with_capacity(taken.len());
            let mut data = Vec::with_capacity(taken.len());
            let mut end = base;
            for q in taken {
                let d = q.duration.unwrap_or(estimate);
                end = q.dts + d as u64;
                samples.push(q.sample(d));
                data.push(q.data);
            }
            if t == TrackType::Video && samples.first().is_some_and(|s| s.sync) {
                keyframe = true;
            }
            start_ms = start_ms.min(base as f64 / scale);
            end_ms = end_ms.max(end as f64 / scale);
            count += samples.len() as u32;
            runs.push(Run {
                t,
                base,
                samples,
                data,
            });
        }
        if runs.is_empty() {
            return;
        }
        let track = if tracks.len() == 1 {
            Some(tracks[0])
        } else {
            None
        };
        let data = if raw_mp3 && track == Some(TrackType::Audio) {
            let mut out = Vec::new();
            for d in runs.iter().flat_map(|r| r.data.iter()) {
                out.extend_from_slice(d);
            }
            Bytes::from(out)
        } else {
            self.sequence = self.sequence.wrapping_add(1);
            let track_runs: Vec<TrackRun> = runs
                .iter()
                .map(|r| TrackRun {
                    track_id: r.t.track_id(),
                    base_decode_time: r.base,
                    samples: &r.samples,
                    data: &r.data,
                })
                .collect();
            // Sized up front (payload, plus moof: ~100 bytes per run and 16 per sample) so
            // it does not reallocate; the vector becomes the segment's Bytes without a copy.
            let payload: usize = runs.iter().flat_map(|r| &r.data).map(|d| d.len()).sum();
            let mut out = Vec::with_capacity(payload + 64 + 112 * runs.len() + 16 * count as usize);
            fmp4::write_fragment(self.sequence, &track_runs, &mut out);
            Bytes::from(out)
        };
        self.events.push_back(RemuxEvent::Media(MediaSegment {
            track,
            data,
            start_ms,
            end_ms,
            keyframe,
            samples: count,
        }));
    }
}

fn unsupported_video(timestamp: u32, codec: VideoCodec) -> RemuxError {
    RemuxError::Unsupported {
        kind: TagKind::Video,
        timestamp,
        codec: match codec.fourcc() {
            Some(f) => String::from_utf8_lossy(&f).into_owned(),
            None => format!("FLV codec id {}", codec.legacy_id()),
        },
    }
}
