//! One output track of the remuxer: its configuration, its decode-time clock and the samples
//! waiting to be written.
//!
//! Video decode times are FLV milliseconds × 90 on a 90 kHz timescale (exact, no rounding).
//! Audio decode times count samples on the audio sample rate: each AAC frame lasts exactly
//! 1024 (or 960) samples, each MP3 frame 1152 (or 576), each Opus packet what its TOC byte
//! says (on Opus's 48 kHz), so hours of audio never drift;
//! the clock re-synchronises to the FLV timestamps only when they disagree by more than a
//! frame (a gap in the source, or a source whose clock is not its sample clock).

use bytes::Bytes;

use crate::codec::{AudioConfig, VideoConfig};
use crate::fmp4::{AudioEntry, Sample, TrackKind, TrackSpec, VideoEntry};

/// The two tracks an FLV stream can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackType {
    Video,
    Audio,
}

impl TrackType {
    /// The track id used in every init segment and fragment.
    pub fn track_id(self) -> u32 {
        match self {
            TrackType::Video => 1,
            TrackType::Audio => 2,
        }
    }
}

/// The codec configuration a track was set up with.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackConfig {
    Video(VideoConfig),
    Audio(AudioConfig),
}

impl TrackConfig {
    pub fn codec_string(&self) -> String {
        match self {
            TrackConfig::Video(v) => v.codec_string(),
            TrackConfig::Audio(AudioConfig::Mp3(_)) => "mp4a.6b".to_string(),
            TrackConfig::Audio(a) => a.codec_string(),
        }
    }

    pub fn timescale(&self) -> u32 {
        match self {
            TrackConfig::Video(_) => 90_000,
            TrackConfig::Audio(a) => a.sample_rate().max(1),
        }
    }

    pub fn spec(&self, id: u32) -> TrackSpec {
        let kind = match self {
            TrackConfig::Video(v) => TrackKind::Video {
                width: v.info().width,
                height: v.info().height,
                entry: match v {
                    VideoConfig::Avc(c) => VideoEntry::Avc {
                        record: c.record.clone(),
                    },
                    VideoConfig::Hevc(c) => VideoEntry::Hevc {
                        record: c.record.clone(),
                    },
                },
            },
            TrackConfig::Audio(a) => TrackKind::Audio {
                channels: a.channels(),
                sample_rate: a.sample_rate(),
                entry: match a {
                    AudioConfig::Aac(c) => AudioEntry::Aac {
                        asc: c.record.clone(),
                    },
                    AudioConfig::Mp3(_) => AudioEntry::Mp3,
                    AudioConfig::Opus(head) => AudioEntry::Opus { head: head.clone() },
                },
            },
        };
        TrackSpec {
            id,
            timescale: self.timescale(),
            kind,
        }
    }
}

/// A sample waiting to be written; `duration` is `None` until the next sample (or an
/// estimate at a flush) settles it.
#[derive(Debug, Clone)]
pub struct Queued {
    pub dts: u64,
    pub composition_offset: i32,
    pub sync: bool,
    pub duration: Option<u32>,
    pub data: Bytes,
}

impl Queued {
    pub fn sample(&self, duration: u32) -> Sample {
        Sample {
            duration,
            size: self.data.len() as u32,
            composition_offset: self.composition_offset,
            sync: self.sync,
        }
    }
}

/// Per-track state.
#[derive(Debug)]
pub struct Track {
    pub kind: TrackType,
    pub config: Option<TrackConfig>,
    /// An init segment for the current configuration has been emitted.
    pub init_sent: bool,
    /// Samples not yet written out.
    pub queue: Vec<Queued>,
    /// Decode time of the last accepted sample, in the track timescale.
    pub last_dts: Option<u64>,
    /// The last settled sample duration: the estimate for a sample written before its
    /// successor is known.
    pub last_duration: Option<u32>,
    /// Video: drop frames until a keyframe (after start or a configuration change).
    pub waiting_for_key: bool,
}

/// Longest queue a track keeps while waiting for an init segment (configuration of another
/// track); older samples are dropped past it.
pub const MAX_QUEUED: usize = 2048;

impl Track {
    pub fn new(kind: TrackType) -> Self {
        Track {
            kind,
            config: None,
            init_sent: false,
            queue: Vec::new(),
            last_dts: None,
            last_duration: None,
            waiting_for_key: kind == TrackType::Video,
        }
    }

    pub fn timescale(&self) -> u32 {
        self.config.as_ref().map_or(1000, TrackConfig::timescale)
    }

    /// Converts output milliseconds to this track's timescale.
    pub fn ticks(&self, ms: i64) -> u64 {
        (ms.max(0) as u64).saturating_mul(self.timescale() as u64) / 1000
    }

    /// Duration to give a sample whose successor is unknown.
    pub fn estimated_duration(&self) -> u32 {
        if let Some(d) = self.last_duration {
            return d;
        }
        match &self.config {
            Some(TrackConfig::Audio(a)) => a.samples_per_frame(),
            Some(TrackConfig::Video(v)) => match v.info().frame_rate {
                Some((num, den)) if num > 0 => {
                    ((90_000u64 * den as u64) / num as u64).clamp(1, 90_000) as u32
                }
                _ => 3000,
            },
            None => 1,
        }
    }

    /// The decode time for an audio frame at `ms`: the sample clock, unless it disagrees
    /// with the timestamp by more than one frame.
    pub fn audio_dts(&self, ms: i64) -> u64 {
        let from_ts = self.ticks(ms);
        let frame = self.estimated_duration() as u64;
        match self.last_dts {
            Some(last) => {
                let expected = last + frame;
                if from_ts.abs_diff(expected) > frame {
                    from_ts
                } else {
                    expected
                }
            }
            None => from_ts,
        }
    }

    /// Accepts a sample at `dts` (forced monotonic), settling the previous sample's duration.
    pub fn enqueue(&mut self, mut sample: Queued) {
        if let Some(last) = self.last_dts {
            if sample.dts <= last {
                sample.dts = last + 1;
            }
            let delta = (sample.dts - last).min(u32::MAX as u64) as u32;
            if let Some(prev) = self.queue.last_mut() {
                if prev.duration.is_none() {
                    prev.duration = Some(delta);
                }
            }
            if self.kind == TrackType::Video {
                self.last_duration = Some(delta);
            }
        }
        if let (TrackType::Audio, Some(TrackConfig::Audio(a))) = (self.kind, &self.config) {
            let samples = a.frame_samples(&sample.data);
            sample.duration = Some(samples);
            self.last_duration = Some(samples);
        }
        self.last_dts = Some(sample.dts);
        self.queue.push(sample);
        if !self.init_sent && self.queue.len() > MAX_QUEUED {
            self.queue.remove(0);
        }
    }
}
