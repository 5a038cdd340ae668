//! Channels: per-channel media state (configurations, GOP cache, epoch), the broadcast group
//! every viewer of the channel reads, the publisher slot, and the registry of channels.
//!
//! One lock per channel guards the media state; the publisher classifies and encodes each
//! tag under it and sends the resulting frames to the group before releasing it, and a
//! joining viewer takes its snapshot and subscribes under the same lock — so a viewer
//! sees every frame exactly once, in order, starting with what it needs to decode.

pub mod delay;
mod frame;
mod state;
mod timeline;
mod viewers;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use lockstep_media::flv::metadata::Metadata;
use lockstep_media::flv::TagKind;
use tokio::sync::{broadcast, watch};

pub use frame::{Frame, FrameKind};
use state::MediaState;
pub use state::{Classified, JoinSnapshot, SourceFacts};
pub use viewers::{ViewerInfo, ViewerKind, ViewerStats};

use crate::clock::now_us;

/// Messages a channel's broadcast ring holds; a viewer further behind than this has lost
/// frames and resumes at the next keyframe. About 10 s of a 30 fps stream with AAC.
pub const BROADCAST_CAPACITY: usize = 1024;

/// Why a publisher was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("wrong or missing publish key for channel {0:?}")]
    BadKey(String),
    #[error("channel {0:?} already has a live publisher")]
    Busy(String),
    #[error("invalid channel name {0:?}")]
    BadName(String),
}

/// A channel.
pub struct Channel {
    pub name: String,
    state: Mutex<MediaState>,
    tx: broadcast::Sender<Frame>,
    publisher: Mutex<Option<PublisherSlot>>,
    next_publisher: AtomicU64,
    pub viewers: viewers::ViewerSet,
    pub created: Instant,
    stats: Mutex<SourceStats>,
    auto_delay: Mutex<delay::AutoDelay>,
}

struct PublisherSlot {
    id: u64,
    peer: String,
    since: Instant,
    /// Set to true to tell the publisher's ingest loop it was replaced.
    stop: watch::Sender<bool>,
}

/// Ingest counters for bitrate / fps figures.
#[derive(Debug, Default, Clone)]
struct SourceStats {
    bytes: u64,
    video_frames: u64,
    audio_frames: u64,
    rejected: u64,
    /// (instant, bytes, video frames) at the last rate sample, and the rates then.
    last_sample: Option<(Instant, u64, u64)>,
    bitrate_kbps: f64,
    fps: f64,
}

/// What the API reports of a channel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChannelInfo {
    pub name: String,
    pub live: bool,
    pub publisher: Option<String>,
    pub uptime_s: f64,
    pub epoch: u32,
    #[serde(flatten)]
    pub source: SourceFacts,
    pub bitrate_kbps: f64,
    pub fps: f64,
    pub bytes_in: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub rejected_tags: u64,
    pub gop_frames: usize,
    pub gop_bytes: usize,
    pub viewers: usize,
    /// The shared playout delay D announced to viewers, ms (0 = unset).
    pub delay_ms: u32,
}

impl Channel {
    fn new(name: &str, delay_ms: u32) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let mut state = MediaState::new(name);
        state.delay_ms = delay_ms;
        Channel {
            name: name.to_string(),
            state: Mutex::new(state),
            tx,
            publisher: Mutex::new(None),
            next_publisher: AtomicU64::new(1),
            viewers: viewers::ViewerSet::default(),
            created: Instant::now(),
            stats: Mutex::new(SourceStats::default()),
            auto_delay: Mutex::new(delay::AutoDelay::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, MediaState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the broadcast group: the frames to send first, and the live receiver.
    pub fn join(&self) -> (JoinSnapshot, broadcast::Receiver<Frame>) {
        let state = self.state();
        let rx = self.tx.subscribe();
        (state.snapshot(), rx)
    }

    /// StreamInfo and configurations, for a viewer resuming at a keyframe after a skip.
    pub fn resync(&self) -> Vec<Frame> {
        self.state().resync()
    }

    /// Announces a new shared delay D (ms, 0 = unset) to every viewer.
    pub fn set_delay(&self, delay_ms: u32) {
        self.update(|state| state.set_delay(delay_ms, now_us()));
    }

    /// Re-chooses D from the viewers' fresh feedback (automatic mode).
    pub fn auto_delay(&self, now: Instant) {
        let requirements = self.viewers.fresh_requirements(delay::FRESH);
        let current = self.delay_ms();
        let chosen = lock(&self.auto_delay).choose(current, &requirements, now);
        if let Some(d) = chosen {
            tracing::info!(channel = %self.name, from = current, to = d, viewers = requirements.len(), "shared delay");
            self.set_delay(d);
        }
    }

    /// Is a publisher live?
    pub fn is_live(&self) -> bool {
        lock(&self.publisher).is_some()
    }

    /// Which tracks the channel carries, `(audio, video)`, from its configurations, frames
    /// and metadata: for the FLV header's flags. Before anything is known, both.
    pub fn tracks(&self) -> (bool, bool) {
        let s = self.state();
        let meta = s.metadata.as_ref();
        let audio =
            s.facts.audio_codec.is_some() || meta.is_some_and(|m| m.audio_codec_id.is_some());
        let video =
            s.facts.video_codec.is_some() || meta.is_some_and(|m| m.video_codec_id.is_some());
        if audio || video {
            (audio, video)
        } else {
            (true, true)
        }
    }

    /// The shared playout delay D announced in StreamInfo (ms, 0 = unset).
    pub fn delay_ms(&self) -> u32 {
        self.state().delay_ms
    }

    pub fn info(&self) -> ChannelInfo {
        let (epoch, source, gop) = {
            let s = self.state();
            (s.epoch, s.facts.clone(), s.gop_len())
        };
        let publisher = lock(&self.publisher)
            .as_ref()
            .map(|p| (p.peer.clone(), p.since));
        let stats = lock(&self.stats).clone();
        ChannelInfo {
            name: self.name.clone(),
            live: publisher.is_some(),
            uptime_s: publisher
                .as_ref()
                .map_or(0.0, |p| p.1.elapsed().as_secs_f64()),
            publisher: publisher.map(|p| p.0),
            epoch,
            source,
            bitrate_kbps: stats.bitrate_kbps,
            fps: stats.fps,
            bytes_in: stats.bytes,
            video_frames: stats.video_frames,
            audio_frames: stats.audio_frames,
            rejected_tags: stats.rejected,
            gop_frames: gop.0,
            gop_bytes: gop.1,
            viewers: self.viewers.len(),
            delay_ms: self.delay_ms(),
        }
    }

    /// Changes the media state and broadcasts the frames that result, under the state lock
    /// (so joiners never see a state without its frames or the reverse).
    fn update(&self, f: impl FnOnce(&mut MediaState) -> Vec<Frame>) {
        let mut state = self.state();
        let frames = f(&mut state);
        self.send_all(frames);
    }

    fn send_all(&self, frames: Vec<Frame>) {
        for f in frames {
            // An error only means nobody is subscribed right now.
            let _ = self.tx.send(f);
        }
    }

    fn update_rates(&self, bytes: usize, kind: TagKind, rejected: bool) {
        let mut s = lock(&self.stats);
        s.bytes += bytes as u64;
        match kind {
            TagKind::Video => s.video_frames += 1,
            TagKind::Audio => s.audio_frames += 1,
            TagKind::Script => {}
        }
        if rejected {
            s.rejected += 1;
        }
        let now = Instant::now();
        match s.last_sample {
            None => s.last_sample = Some((now, s.bytes, s.video_frames)),
            Some((t, b, v)) => {
                let dt = now.duration_since(t).as_secs_f64();
                if dt >= 1.0 {
                    s.bitrate_kbps = (s.bytes - b) as f64 * 8.0 / 1000.0 / dt;
                    s.fps = (s.video_frames - v) as f64 / dt;
                    s.last_sample = Some((now, s.bytes, s.video_frames));
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The right to publish on a channel, held by one ingest session. Dropping it ends the
/// stream (viewers get an End message and stay connected for the next publisher).
pub struct Publisher {
    channel: Arc<Channel>,
    id: u64,
    stop: watch::Receiver<bool>,
}

impl Publisher {
    pub fn channel(&self) -> &Arc<Channel> {
        &self.channel
    }

    /// True once another publisher took the channel over.
    pub fn replaced(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves when another publisher takes the channel over.
    pub async fn wait_replaced(&mut self) {
        let _ = self.stop.wait_for(|s| *s).await;
    }

    /// Forwards one FLV tag. Returns an error string (already counted) for a tag that could
    /// not be forwarded; the stream goes on.
    pub fn push_tag(&self, kind: TagKind, timestamp: u32, body: Bytes) -> Result<(), String> {
        if self.replaced() {
            return Err("publisher was replaced".into());
        }
        let len = body.len();
        let now = now_us();
        let mut state = self.channel.state();
        let result = match state.push_tag(kind, timestamp, body, now) {
            Classified::Frames(frames) => {
                self.channel.send_all(frames);
                Ok(())
            }
            Classified::Rejected(why) => Err(why),
        };
        drop(state);
        self.channel.update_rates(len, kind, result.is_err());
        result
    }

    /// Records `onMetaData` received outside the tag stream (RTMP data messages).
    pub fn set_metadata(&self, metadata: Metadata) {
        let body = metadata.to_script_body();
        let _ = self.push_tag(TagKind::Script, 0, Bytes::from(body));
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let mut slot = lock(&self.channel.publisher);
        if slot.as_ref().is_some_and(|p| p.id == self.id) {
            *slot = None;
            drop(slot);
            self.channel
                .update(|state| vec![state.end("publisher disconnected", now_us())]);
            tracing::info!(channel = %self.channel.name, "publisher left");
        }
    }
}

/// Publishing rules.
#[derive(Debug, Clone, Default)]
pub struct PublishPolicy {
    /// One key for every channel.
    pub key: Option<String>,
    /// Per-channel keys (take precedence over `key`).
    pub channel_keys: HashMap<String, String>,
    /// A second publisher replaces the first instead of being refused.
    pub takeover: bool,
    /// The shared playout delay D to announce (ms, 0 = unset).
    pub delay_ms: u32,
}

/// All channels of this relay.
#[derive(Default)]
pub struct Registry {
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    pub policy: PublishPolicy,
}

/// Channel names: 1 to 64 of `A-Z a-z 0-9 _ - .`, not starting with a dot.
pub fn valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl Registry {
    pub fn new(policy: PublishPolicy) -> Self {
        Registry {
            channels: Mutex::new(HashMap::new()),
            policy,
        }
    }

    /// The channel, created idle if it does not exist (viewers may wait for a publisher).
    pub fn channel(&self, name: &str) -> Option<Arc<Channel>> {
        if !valid_channel_name(name) {
            return None;
        }
        let mut map = lock(&self.channels);
        Some(
            map.entry(name.to_string())
                .or_insert_with(|| Arc::new(Channel::new(name, self.policy.delay_ms)))
                .clone(),
        )
    }

    /// The channel if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Channel>> {
        lock(&self.channels).get(name).cloned()
    }

    /// Every channel, sorted by name.
    pub fn list(&self) -> Vec<Arc<Channel>> {
        let mut v: Vec<_> = lock(&self.channels).values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The key publishing on `channel` requires: its own key, else the relay-wide one.
    pub fn expected_key(&self, channel: &str) -> Option<&String> {
        self.policy
            .channel_keys
            .get(channel)
            .or(self.policy.key.as_ref())
    }

    /// Checks a publish key against the policy.
    pub fn key_ok(&self, channel: &str, key: Option<&str>) -> bool {
        match self.expected_key(channel) {
            None => true,
            Some(k) => key.is_some_and(|given| constant_time_eq(given.as_bytes(), k.as_bytes())),
        }
    }

    /// Claims the publisher slot of `name` for `peer`.
    pub fn publish(
        &self,
        name: &str,
        key: Option<&str>,
        peer: &str,
    ) -> Result<Publisher, PublishError> {
        if !valid_channel_name(name) {
            return Err(PublishError::BadName(name.to_string()));
        }
        if !self.key_ok(name, key) {
            return Err(PublishError::BadKey(name.to_string()));
        }
        let channel = self
            .channel(name)
            .ok_or_else(|| PublishError::BadName(name.to_string()))?;
        let mut slot = lock(&channel.publisher);
        if let Some(old) = slot.as_ref() {
            if !self.policy.takeover {
                return Err(PublishError::Busy(name.to_string()));
            }
            tracing::info!(channel = name, old = %old.peer, new = peer, "publisher taken over");
            let _ = old.stop.send(true);
        }
        let id = channel.next_publisher.fetch_add(1, Ordering::Relaxed);
        let (stop_tx, stop_rx) = watch::channel(false);
        *slot = Some(PublisherSlot {
            id,
            peer: peer.to_string(),
            since: Instant::now(),
            stop: stop_tx,
        });
        drop(slot);
        channel.update(|state| state.new_publisher(now_us()));
        tracing::info!(channel = name, peer, "publisher live");
        Ok(Publisher {
            channel,
            id,
            stop: stop_rx,
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
