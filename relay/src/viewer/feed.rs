//! A viewer's view of its channel's broadcast group: the join snapshot first, then live
//! frames, with the slow-viewer rule applied.
//!
//! The broadcast ring is shared by all viewers of a channel, so a viewer that cannot keep up
//! costs nothing but its position in the ring. When it falls too far behind (it lagged past
//! the ring's end, or its backlog exceeds [`MAX_BACKLOG`]), it skips: media is dropped up to
//! the next keyframe, where it resumes with the stream-info and configurations in force at that
//! keyframe and a `Skipped` notice. Control messages (epoch changes, end of stream) are never dropped.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::channel::{Channel, Frame, FrameKind};

/// Queued messages past which a viewer skips to the next keyframe (about 3 s of 30 fps video
/// with AAC audio).
pub const MAX_BACKLOG: usize = 240;

/// What to send next.
#[derive(Debug)]
pub enum Item {
    /// A live frame, just broadcast.
    Frame(Frame),
    /// A frame from the channel's cache (join snapshot, resync after a skip).
    Cached(Frame),
    /// Frames were dropped for this viewer; tell it.
    Skipped { frames: u32, bytes: u32 },
}

pub struct Feed {
    channel: Arc<Channel>,
    pending: VecDeque<Item>,
    rx: broadcast::Receiver<Frame>,
    skip: Option<Skip>,
    /// The channel's epoch when this feed joined.
    epoch: u32,
    /// The latest StreamInfo and configurations at this viewer's position in the stream
    /// (which may be behind the channel's): what it needs again when it resumes after a skip.
    resync: Resync,
}

#[derive(Debug, Default)]
struct Resync {
    info: Option<Frame>,
    video: Option<Frame>,
    audio: Option<Frame>,
}

impl Resync {
    fn see(&mut self, frame: &Frame) {
        use lockstep_media::wire::types;
        match (frame.kind, frame.msg().first().copied()) {
            (FrameKind::Control, Some(types::STREAM_INFO)) => self.info = Some(frame.clone()),
            (FrameKind::Control, Some(types::DISCONTINUITY)) => *self = Resync::default(),
            (FrameKind::Config, Some(b)) if b >> 4 == 1 => self.video = Some(frame.clone()),
            (FrameKind::Config, Some(b)) if b >> 4 == 2 => self.audio = Some(frame.clone()),
            _ => {}
        }
    }

    fn frames(&self) -> impl Iterator<Item = Frame> + '_ {
        [&self.info, &self.video, &self.audio]
            .into_iter()
            .flatten()
            .cloned()
    }
}

#[derive(Debug, Default)]
struct Skip {
    frames: u64,
    bytes: u64,
    /// The latest Timeline seen while skipping: it goes out right before the keyframe.
    timeline: Option<Frame>,
    /// Frames were lost from the ring (lagged): the viewer's own StreamInfo and
    /// configurations may be stale, use the channel's.
    lagged: bool,
}

impl Feed {
    /// Joins `channel`: the snapshot is queued first.
    pub fn join(channel: Arc<Channel>) -> (Self, bool) {
        let (snapshot, rx) = channel.join();
        let live = snapshot.live;
        let epoch = snapshot.epoch;
        let mut resync = Resync::default();
        snapshot.frames.iter().for_each(|f| resync.see(f));
        let pending = snapshot.frames.into_iter().map(Item::Cached).collect();
        (
            Feed {
                channel,
                pending,
                rx,
                skip: None,
                epoch,
                resync,
            },
            live,
        )
    }

    /// The channel's epoch when this feed joined (the last one if the channel was idle).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The next item, waiting for one. `None` when the channel is gone.
    pub async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            match self.rx.recv().await {
                Ok(frame) => self.accept(frame),
                Err(RecvError::Lagged(n)) => self.start_skip(n),
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// The next item if one is ready now (to batch what is already queued).
    pub fn try_next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            match self.rx.try_recv() {
                Ok(frame) => self.accept(frame),
                Err(TryRecvError::Lagged(n)) => self.start_skip(n),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
    }

    fn start_skip(&mut self, lost: u64) {
        let skip = self.skip.get_or_insert_with(Skip::default);
        skip.frames += lost;
        skip.lagged = true;
    }

    fn accept(&mut self, frame: Frame) {
        self.resync.see(&frame);
        if self.skip.is_none() && self.rx.len() > MAX_BACKLOG {
            self.skip = Some(Skip::default());
        }
        let Some(skip) = self.skip.as_mut() else {
            self.pending.push_back(Item::Frame(frame));
            return;
        };
        match frame.kind {
            // A keyframe still deep in the backlog is skipped too: resume at the newest one
            // reachable, with one Skipped notice, not at every GOP on the way.
            FrameKind::Keyframe if self.rx.len() > MAX_BACKLOG / 2 => {
                skip.frames += 1;
                skip.bytes += frame.len() as u64;
            }
            FrameKind::Keyframe => {
                let skip = self.skip.take().unwrap_or_default();
                // StreamInfo and configurations as of this keyframe's place in the stream:
                // the channel's current ones may belong to later frames (or a later epoch).
                let resync: Vec<Frame> = if skip.lagged {
                    let frames = self.channel.resync();
                    self.resync = Resync::default();
                    frames.iter().for_each(|f| self.resync.see(f));
                    frames
                } else {
                    self.resync.frames().collect()
                };
                for f in resync {
                    self.pending.push_back(Item::Cached(f));
                }
                self.pending.push_back(Item::Skipped {
                    frames: skip.frames.min(u32::MAX as u64) as u32,
                    bytes: skip.bytes.min(u32::MAX as u64) as u32,
                });
                if let Some(t) = skip.timeline {
                    self.pending.push_back(Item::Frame(t));
                }
                self.pending.push_back(Item::Frame(frame));
            }
            FrameKind::Control if is_timeline(&frame) => skip.timeline = Some(frame),
            FrameKind::Control => self.pending.push_back(Item::Frame(frame)),
            FrameKind::Media | FrameKind::Config => {
                skip.frames += 1;
                skip.bytes += frame.len() as u64;
            }
        }
    }

    /// Messages waiting in the ring for this viewer.
    pub fn backlog(&self) -> usize {
        self.rx.len() + self.pending.len()
    }
}

fn is_timeline(frame: &Frame) -> bool {
    frame.msg().first() == Some(&lockstep_media::wire::types::TIMELINE)
}
