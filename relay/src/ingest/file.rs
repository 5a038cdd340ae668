//! File ingest, `--file NAME=PATH [--loop]`: an FLV file played on a channel in real time.
//!
//! The file is read and demuxed once (tag bodies stay zero-copy slices of the one buffer, so
//! this suits files that fit in memory), then each tag is published when its time comes:
//! `start + (timestamp − first timestamp)`. With `--loop` the file starts over, timestamps
//! continuing from the last one plus one frame duration, so viewers see one continuous
//! stream; the end-of-sequence tag and the script data are only sent where they make sense
//! (not between loops). A channel that is busy is retried every few seconds; a file that
//! cannot be read or is not FLV stops this source with an error line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use lockstep_media::flv::video::{VideoPacket, VideoTagHeader};
use lockstep_media::flv::{DemuxError, Demuxer, Event, Tag, TagKind};
use tokio::sync::watch;
use tokio::time::Instant;

use super::publisher::{configured_key, stopped, LivePublisher};
use crate::app::AppState;
use crate::channel::PublishError;

/// How long to wait before trying a busy channel again.
const BUSY_RETRY: Duration = Duration::from_secs(5);

/// Frame duration assumed when the file does not tell (ms).
const DEFAULT_FRAME_MS: u64 = 33;

/// Why a file cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Demux { path: PathBuf, source: DemuxError },
    #[error("{0}: no audio or video tags")]
    Empty(PathBuf),
}

/// Plays `path` on channel `name` until it ends (or forever with `looping`), or shutdown.
pub async fn run(
    name: String,
    path: PathBuf,
    looping: bool,
    app: AppState,
    mut shutdown: watch::Receiver<bool>,
) {
    let tags = match load(&path).await {
        Ok(tags) => tags,
        Err(e) => {
            tracing::error!(channel = %name, "file source disabled: {e}");
            return;
        }
    };
    let key = configured_key(&app, &name);
    let peer = format!("file:{}", path.display());
    let mut live = loop {
        match LivePublisher::claim(&app, &name, key.as_deref(), &peer) {
            Ok(live) => break live,
            Err(e @ PublishError::Busy(_)) => {
                tracing::warn!(channel = %name, %peer, "file source waiting: {e}");
                tokio::select! {
                    _ = stopped(&mut shutdown) => return,
                    _ = tokio::time::sleep(BUSY_RETRY) => {}
                }
            }
            Err(e) => {
                tracing::error!(channel = %name, %peer, "file source disabled: {e}");
                return;
            }
        }
    };
    tracing::info!(channel = %name, %peer, tags = tags.len(), looping, "file source playing");

    let timeline = Timeline::of(&tags);
    let start = Instant::now();
    // Output timestamp of the first tag of the current pass.
    let mut base = u64::from(timeline.first);
    for pass in 0u64.. {
        for tag in &tags {
            if (looping && is_sequence_end(tag)) || (pass > 0 && tag.kind == TagKind::Script) {
                continue;
            }
            let ts = base + u64::from(tag.timestamp.saturating_sub(timeline.first));
            let due = start + Duration::from_millis(ts - u64::from(timeline.first));
            tokio::select! {
                _ = stopped(&mut shutdown) => return,
                _ = live.publisher.wait_replaced() => {
                    tracing::info!(channel = %name, %peer, "file source stopped: another publisher took the channel over");
                    return;
                }
                _ = tokio::time::sleep_until(due) => {}
            }
            // FLV timestamps are 32-bit milliseconds: wrapping after 49 days is what FLV does.
            if let Err(why) = live.push(tag.kind, ts as u32, tag.body.clone()) {
                tracing::debug!(channel = %name, %peer, offset = tag.offset, "file tag skipped: {why}");
            }
        }
        if !looping {
            break;
        }
        base += timeline.span + timeline.frame;
        tracing::debug!(channel = %name, %peer, pass, "file source looping");
    }
    tracing::info!(channel = %name, %peer, "file source ended");
}

/// Reads and demuxes the whole file.
async fn load(path: &Path) -> Result<Vec<Tag>, FileError> {
    let data = tokio::fs::read(path)
        .await
        .map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let demux_err = |source| FileError::Demux {
        path: path.to_path_buf(),
        source,
    };
    let mut demuxer = Demuxer::new();
    demuxer.push(Bytes::from(data));
    let mut tags = Vec::new();
    while let Some(event) = demuxer.poll() {
        match event {
            Ok(Event::Tag(tag)) => tags.push(tag),
            Ok(_) => {}
            Err(e) if e.is_fatal() => return Err(demux_err(e)),
            Err(e) => tracing::warn!(path = %path.display(), "{e}"),
        }
    }
    if let Err(e) = demuxer.finish() {
        // A file cut short (still being written, copied in part): play what is whole.
        tracing::warn!(path = %path.display(), "{e}; playing the complete tags");
    }
    if !tags.iter().any(|t| t.kind != TagKind::Script) {
        return Err(FileError::Empty(path.to_path_buf()));
    }
    Ok(tags)
}

/// The timing facts of a file.
struct Timeline {
    /// Smallest timestamp (ms).
    first: u32,
    /// Largest minus smallest timestamp (ms).
    span: u64,
    /// Typical video frame duration (ms): the median positive step between video tags.
    frame: u64,
}

impl Timeline {
    fn of(tags: &[Tag]) -> Self {
        let first = tags.iter().map(|t| t.timestamp).min().unwrap_or(0);
        let last = tags.iter().map(|t| t.timestamp).max().unwrap_or(0);
        let video: Vec<u32> = tags
            .iter()
            .filter(|t| t.kind == TagKind::Video && !is_sequence_end(t))
            .map(|t| t.timestamp)
            .collect();
        let mut steps: Vec<u64> = video
            .windows(2)
            .filter(|w| w[1] > w[0])
            .map(|w| u64::from(w[1] - w[0]))
            .collect();
        steps.sort_unstable();
        let frame = steps
            .get(steps.len() / 2)
            .copied()
            .unwrap_or(DEFAULT_FRAME_MS);
        Timeline {
            first,
            span: u64::from(last - first),
            frame,
        }
    }
}

/// An AVC / HEVC end-of-sequence tag: it would make decoders flush between loops.
fn is_sequence_end(tag: &Tag) -> bool {
    tag.kind == TagKind::Video
        && VideoTagHeader::parse(&tag.body).is_ok_and(|h| h.packet == VideoPacket::SequenceEnd)
}
