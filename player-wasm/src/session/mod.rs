//! The player's protocol session, sans-IO: wire messages from the relay in, [`Action`]s for
//! the media sink out. No web-sys here: it runs in native unit tests.
//!
//! - [`Session::on_message`] decodes one WebSocket message (docs/PROTOCOL.md), follows the
//!   stream (StreamInfo, epochs, configurations, skips, end) and remuxes media with the
//!   shared `lockstep_media` remuxer (one fMP4 fragment per frame, a SourceBuffer per track).
//! - [`anchors`] maps the media timeline to relay ingest time from Timeline messages, which
//!   is what makes latency measurable and playout synchronisable.
//! - Clock sync uses `lockstep_media::wire::ClockSync` fed by Pong messages, from the media
//!   connection or from the relay's clock-sync connection ([`clock_url`],
//!   [`Session::on_clock_message`]).

pub mod anchors;
pub mod chunks;

use std::collections::VecDeque;

use bytes::Bytes;
use lockstep_media::flv::TagKind;
use lockstep_media::remux::{RemuxEvent, RemuxOptions, Remuxer, TrackType};
use lockstep_media::wire::{self, ClockSample, ClockSync, MediaKind, Message, TrackParams};

pub use anchors::Anchors;
pub use chunks::{Chunk, DecoderSetup};
use chunks::{ChunkMaker, Decodable};

/// What the media sink must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create one SourceBuffer per track, with these MIME types (from StreamInfo, before any
    /// media: Chromium cannot add a SourceBuffer once another has data). Replaces any
    /// previous set: the sink tears down its MediaSource when the set differs.
    SetupTracks(Vec<TrackSetup>),
    /// Append to a track's SourceBuffer (init segments included).
    Append(Append),
    /// A new epoch: the timeline continues (the remuxer re-bases it), but buffered data of
    /// the old epoch ahead of the playhead is stale.
    Discontinuity { epoch: u32, reason: u8 },
    /// The relay skipped frames for us (we were too slow): there is a hole to jump.
    Skipped { frames: u32 },
    /// The shared playout delay D announced by the relay changed (ms, 0 = unset).
    Delay(u32),
    /// The publisher left; the connection stays open for the next one.
    Ended(String),
    /// The relay reported an error.
    RelayError { code: u16, message: String },
    /// WebCodecs path: (re)configure a track's decoder.
    Configure(DecoderSetup),
    /// WebCodecs path: an encoded frame to decode.
    Decode(Chunk),
}

/// Which presentation path the session feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// fMP4 fragments for Media Source Extensions ([`Action::Append`]).
    Mse,
    /// Decoder configurations and encoded chunks for WebCodecs ([`Action::Configure`],
    /// [`Action::Decode`]).
    WebCodecs,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrackSetup {
    pub track: TrackType,
    /// The MIME type with codecs for `isTypeSupported` / `addSourceBuffer`.
    pub mime: String,
    /// The RFC 6381 codec string as announced.
    pub codec: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Append {
    pub track: TrackType,
    pub data: Bytes,
    pub init: bool,
    /// Media time range in ms (MSE time × 1000); 0..0 for init segments.
    pub start_ms: f64,
    pub end_ms: f64,
    pub keyframe: bool,
}

/// Malformed input from the relay: the connection should be closed with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Counters for feedback and statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionStats {
    pub bytes_received: u64,
    pub messages: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub frames_skipped_by_relay: u64,
    pub remux_errors: u64,
    pub epoch: u32,
}

/// The protocol session of one connection (and across reconnects: call
/// [`Session::on_reconnect`]).
pub struct Session {
    sink: SinkKind,
    remuxer: Remuxer,
    chunks: ChunkMaker,
    tracks: Vec<TrackSetup>,
    epoch: Option<u32>,
    delay_ms: u32,
    pub clock: ClockSync,
    pub anchors: Anchors,
    pub stats: SessionStats,
    actions: VecDeque<Action>,
    /// Media timestamp of a Timeline waiting for its frame, with the ingest time.
    pending_timeline: Option<(u32, u64)>,
    /// Last media end time appended per kind, ms.
    pub media_end_ms: f64,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        Self::with_sink(SinkKind::Mse)
    }

    /// A session feeding the given presentation path.
    pub fn with_sink(sink: SinkKind) -> Self {
        Session {
            sink,
            remuxer: Remuxer::new(RemuxOptions::live()),
            chunks: ChunkMaker::default(),
            tracks: Vec::new(),
            epoch: None,
            delay_ms: 0,
            clock: ClockSync::new(CLOCK_WINDOW),
            anchors: Anchors::default(),
            stats: SessionStats::default(),
            actions: VecDeque::new(),
            pending_timeline: None,
            media_end_ms: 0.0,
        }
    }

    /// The next action for the sink.
    pub fn poll(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The tracks as last announced.
    pub fn tracks(&self) -> &[TrackSetup] {
        &self.tracks
    }

    /// A new connection after a drop: the relay will send Hello, StreamInfo and a snapshot
    /// again. The remuxer's timeline is re-based at the first frame so playback continues.
    pub fn on_reconnect(&mut self) {
        self.remuxer.reset_timeline();
        self.pending_timeline = None;
        self.drain_remuxer();
    }

    /// A Pong arrived at local time `t3_us` (the same clock the Ping's t0 was read from).
    fn on_pong(&mut self, p: wire::Pong, t3_us: u64) {
        self.clock
            .add_sample(ClockSample::from_ping(p.t0, p.t1, p.t2, t3_us));
    }

    /// One binary WebSocket message from the relay, received at local time `now_us`.
    pub fn on_message(&mut self, data: Bytes, now_us: u64) -> Result<(), ProtocolError> {
        self.stats.bytes_received += data.len() as u64;
        self.stats.messages += 1;
        let msg = wire::decode(data).map_err(|e| ProtocolError(e.to_string()))?;
        match msg {
            Message::Hello(h) => {
                if h.version != wire::VERSION {
                    return Err(ProtocolError(format!(
                        "relay speaks protocol version {}, this player {}",
                        h.version,
                        wire::VERSION
                    )));
                }
            }
            Message::StreamInfo(info) => self.on_stream_info(info),
            Message::Timeline(t) => {
                if Some(t.epoch) == self.epoch {
                    self.pending_timeline = Some((t.timestamp_ms, t.relay_us));
                }
            }
            Message::Media(m) => self.on_media(m, now_us),
            Message::Pong(p) => self.on_pong(p, now_us),
            Message::Skipped(s) => {
                self.stats.frames_skipped_by_relay += s.frames as u64;
                self.actions.push_back(Action::Skipped { frames: s.frames });
            }
            Message::Discontinuity(d) => {
                if self.sink == SinkKind::WebCodecs {
                    self.anchors.clear();
                }
                self.remuxer.reset_timeline();
                self.drain_remuxer();
                self.pending_timeline = None;
                self.epoch = Some(d.epoch);
                self.stats.epoch = d.epoch;
                self.actions.push_back(Action::Discontinuity {
                    epoch: d.epoch,
                    reason: d.reason,
                });
            }
            Message::End(e) => self.actions.push_back(Action::Ended(e.reason)),
            Message::Error(e) => self.actions.push_back(Action::RelayError {
                code: e.code,
                message: e.message,
            }),
            // Player-to-relay messages echoed back, or unknown kinds: ignored.
            Message::Ping(_)
            | Message::Feedback(_)
            | Message::Subscribe(_)
            | Message::Unknown { .. } => {}
        }
        Ok(())
    }

    fn on_stream_info(&mut self, info: wire::StreamInfo) {
        if info.delay_ms != self.delay_ms {
            self.delay_ms = info.delay_ms;
            self.actions.push_back(Action::Delay(info.delay_ms));
        }
        if info.flags & wire::STREAM_LIVE == 0 {
            return; // idle channel: wait for a publisher
        }
        if self.epoch.is_some_and(|e| e != info.epoch) {
            // A new epoch announced without a Discontinuity (we joined across one).
            self.remuxer.reset_timeline();
            self.drain_remuxer();
        }
        self.epoch = Some(info.epoch);
        self.stats.epoch = info.epoch;
        let tracks: Vec<TrackSetup> = info
            .tracks
            .iter()
            .map(|t| match t.params {
                TrackParams::Video { .. } => TrackSetup {
                    track: TrackType::Video,
                    mime: format!("video/mp4; codecs=\"{}\"", t.codec),
                    codec: t.codec.clone(),
                },
                TrackParams::Audio { .. } => TrackSetup {
                    track: TrackType::Audio,
                    mime: if t.codec == "mp3" {
                        "audio/mpeg".to_string()
                    } else {
                        format!("audio/mp4; codecs=\"{}\"", t.codec)
                    },
                    codec: t.codec.clone(),
                },
            })
            .collect();
        if tracks != self.tracks {
            self.tracks = tracks.clone();
            self.actions.push_back(Action::SetupTracks(tracks));
        }
    }

    fn on_media(&mut self, m: wire::Media, now_us: u64) {
        let kind = match m.kind {
            MediaKind::Video => {
                self.stats.video_frames += 1;
                TagKind::Video
            }
            MediaKind::Audio => {
                self.stats.audio_frames += 1;
                TagKind::Audio
            }
            MediaKind::Script => TagKind::Script,
        };
        if self.tracks.is_empty() {
            return; // no StreamInfo yet: nothing to play it with
        }
        let anchor_ts = match self.pending_timeline {
            Some((ts, ingest)) if ts == m.timestamp_ms && kind != TagKind::Script => {
                self.pending_timeline = None;
                Some(ingest)
            }
            _ => None,
        };
        if self.sink == SinkKind::WebCodecs {
            // Media time is the epoch's FLV time (a new epoch's anchors replace the old ones).
            if let Some(ingest_us) = anchor_ts {
                self.anchors.add(m.timestamp_ms as f64, ingest_us);
            }
            if kind == TagKind::Video {
                self.note_arrival(m.timestamp_ms as f64, now_us);
            }
            let mut out = Vec::new();
            let result = match kind {
                TagKind::Video => self.chunks.video(m.timestamp_ms, &m.body, &mut out),
                TagKind::Audio => self.chunks.audio(m.timestamp_ms, &m.body, &mut out),
                TagKind::Script => Ok(()),
            };
            if result.is_err() {
                self.stats.remux_errors += 1;
            }
            for d in out {
                self.actions.push_back(match d {
                    Decodable::Configure(s) => Action::Configure(s),
                    Decodable::Chunk(c) => {
                        self.media_end_ms = self.media_end_ms.max(c.pts_ms);
                        Action::Decode(c)
                    }
                });
            }
            return;
        }
        if self.remuxer.push(kind, m.timestamp_ms, &m.body).is_err() {
            self.stats.remux_errors += 1;
        }
        // The output time of this frame is the relay's FLV time plus the remuxer's shift.
        let media_ms = m.timestamp_ms as f64 + self.remuxer.timeline_shift_ms() as f64;
        if let Some(ingest_us) = anchor_ts {
            self.anchors.add(media_ms, ingest_us);
        }
        if kind == TagKind::Video {
            self.note_arrival(media_ms, now_us);
        }
        self.drain_remuxer();
    }

    /// A video frame at media time `media_ms` arrived at local time `local_us`. The relay
    /// forwards frames as they arrive and its timeline maps each timestamp to the earliest
    /// time its frame could have arrived (relay/src/channel/timeline.rs), so `arrival −
    /// mapped time` is a one-way delay sample that only errs upward
    /// (media/src/wire/clock.rs).
    fn note_arrival(&mut self, media_ms: f64, local_us: u64) {
        if let Some(sent_us) = self.anchors.ingest_us(media_ms) {
            if sent_us.is_finite() && sent_us >= 0.0 {
                self.clock.add_one_way(local_us, sent_us as u64);
            }
        }
    }

    /// The presentation path this session feeds.
    pub fn sink(&self) -> SinkKind {
        self.sink
    }

    /// Switches the presentation path (e.g. WebCodecs failed: fall back to MSE). The next
    /// configurations and keyframe set the new path up; the relay resends them on reconnect,
    /// so the caller reconnects after switching.
    pub fn switch_sink(&mut self, sink: SinkKind) {
        self.sink = sink;
        self.chunks.reset();
        self.remuxer = Remuxer::new(RemuxOptions::live());
        self.tracks.clear();
        self.epoch = None;
        self.anchors.clear();
        self.pending_timeline = None;
        self.actions.clear();
    }

    fn drain_remuxer(&mut self) {
        while let Some(event) = self.remuxer.poll() {
            match event {
                RemuxEvent::Init(init) => {
                    let Some(&track) = init.tracks.first() else {
                        continue;
                    };
                    if init.data.is_empty() {
                        continue; // raw MP3: an audio/mpeg SourceBuffer needs no init segment
                    }
                    self.actions.push_back(Action::Append(Append {
                        track,
                        data: init.data,
                        init: true,
                        start_ms: 0.0,
                        end_ms: 0.0,
                        keyframe: false,
                    }));
                }
                RemuxEvent::Media(seg) => {
                    let Some(track) = seg.track else { continue };
                    self.media_end_ms = self.media_end_ms.max(seg.end_ms);
                    self.actions.push_back(Action::Append(Append {
                        track,
                        data: seg.data,
                        init: false,
                        start_ms: seg.start_ms,
                        end_ms: seg.end_ms,
                        keyframe: seg.keyframe,
                    }));
                }
                RemuxEvent::Discontinuity { .. } => {}
            }
        }
    }

    /// Relay time now (µs) from the local clock, once clock sync has a sample.
    pub fn relay_now_us(&self, local_us: u64) -> Option<u64> {
        self.clock.relay_now(local_us)
    }

    /// Latency of the frame at media time `media_ms` (e.g. `currentTime × 1000`): relay now
    /// minus its ingest time, in ms.
    pub fn latency_ms(&self, media_ms: f64, local_us: u64) -> Option<f64> {
        let now = self.relay_now_us(local_us)? as f64;
        let ingest = self.anchors.ingest_us(media_ms)?;
        Some((now - ingest) / 1000.0)
    }

    /// How late a frame with relay timestamp `ts_ms` (current epoch) arrived: relay now minus
    /// its ingest time, ms.
    pub fn arrival_latency_ms(&self, ts_ms: u32, local_us: u64) -> Option<f64> {
        let media_ms = ts_ms as f64 + self.remuxer.timeline_shift_ms() as f64;
        self.latency_ms(media_ms, local_us)
    }

    /// The media time (ms) that should be on screen now to present every frame at its
    /// ingest time + `delay_ms` on the synced clock.
    pub fn target_media_ms(&self, delay_ms: f64, local_us: u64) -> Option<f64> {
        let now = self.relay_now_us(local_us)? as f64;
        self.anchors.media_ms(now - delay_ms * 1000.0)
    }

    /// One binary message on the clock-sync connection, received at local time `now_us`:
    /// a Pong feeds the clock; anything else is not for this connection and is ignored.
    pub fn on_clock_message(&mut self, data: Bytes, now_us: u64) -> Result<(), ProtocolError> {
        if let Message::Pong(p) = wire::decode(data).map_err(|e| ProtocolError(e.to_string()))? {
            self.on_pong(p, now_us);
        }
        Ok(())
    }

    /// A Ping to send now (local clock µs).
    pub fn ping(now_us: u64) -> Bytes {
        Message::Ping(wire::Ping { t0: now_us }).to_bytes()
    }

    /// The shared delay D announced by the relay (ms, 0 = unset).
    pub fn announced_delay_ms(&self) -> u32 {
        self.delay_ms
    }
}

/// Clock-sync exchanges the estimate looks back over: 30 s at the player's ping every 200 ms.
pub const CLOCK_WINDOW: usize = 150;

/// The relay's clock-sync endpoint (docs/PROTOCOL.md) beside the media endpoint `ws_url`
/// (`…/ws/NAME[?query]` → `…/clock`, keeping any path prefix of a reverse proxy); `None` when
/// the URL does not end in `/ws/NAME`.
pub fn clock_url(ws_url: &str) -> Option<String> {
    let end = ws_url.find(['?', '#']).unwrap_or(ws_url.len());
    let path = &ws_url[..end];
    let at = path.rfind("/ws/")?;
    let name = &path[at + 4..];
    if name.is_empty() || name.contains('/') || !path[..at].contains("://") {
        return None;
    }
    Some(format!("{}/clock", &path[..at]))
}

#[cfg(test)]
mod tests;
