//! Whole-file remuxing: a complete FLV in memory to one fragmented MP4, for the `flv2mp4`
//! example, tests and tools. Streams go through [`super::Remuxer`] directly.

use bytes::Bytes;

use super::{RemuxError, RemuxEvent, RemuxOptions, Remuxer};
use crate::flv::{DemuxError, Demuxer, Event, TagKind};

/// The result of [`flv_to_mp4`].
#[derive(Debug, Default)]
pub struct FileRemux {
    /// The MP4: init segment, then every fragment.
    pub mp4: Vec<u8>,
    pub tags: usize,
    pub fragments: usize,
    /// Tags that could not be remuxed (and were left out), with why.
    pub skipped: Vec<RemuxError>,
    /// Non-fatal demuxing problems (PreviousTagSize mismatches).
    pub warnings: Vec<DemuxError>,
    /// Output times at which the timeline was re-based.
    pub discontinuities: Vec<i64>,
}

/// Remuxes a complete FLV file. The tracks are those that have tags: the FLV header's
/// flags are too often wrong to trust.
pub fn flv_to_mp4(flv: Bytes) -> Result<FileRemux, DemuxError> {
    let mut demuxer = Demuxer::new();
    demuxer.push(flv);
    let mut tags = Vec::new();
    let mut result = FileRemux::default();
    while let Some(event) = demuxer.poll() {
        match event {
            Ok(Event::Tag(tag)) => tags.push(tag),
            Ok(_) => {}
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => result.warnings.push(e),
        }
    }
    demuxer.finish()?;
    let video = tags.iter().any(|t| t.kind == TagKind::Video);
    let audio = tags.iter().any(|t| t.kind == TagKind::Audio);
    let mut remuxer = Remuxer::new(RemuxOptions::file(video, audio));
    result.tags = tags.len();
    for tag in &tags {
        if let Err(e) = remuxer.push(tag.kind, tag.timestamp, &tag.body) {
            result.skipped.push(e);
        }
        drain(&mut remuxer, &mut result);
    }
    remuxer.flush();
    drain(&mut remuxer, &mut result);
    Ok(result)
}

fn drain(remuxer: &mut Remuxer, result: &mut FileRemux) {
    while let Some(event) = remuxer.poll() {
        match event {
            RemuxEvent::Init(init) => result.mp4.extend_from_slice(&init.data),
            RemuxEvent::Media(media) => {
                result.fragments += 1;
                result.mp4.extend_from_slice(&media.data);
            }
            RemuxEvent::Discontinuity { at_ms, .. } => result.discontinuities.push(at_ms),
        }
    }
}
