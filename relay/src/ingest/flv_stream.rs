//! FLV bytes in chunks of any size to tags on a publisher: the part HTTP push, HTTP pull and
//! file ingest share.

use bytes::Bytes;
use lockstep_media::flv::{DemuxError, Demuxer, Event};

use crate::channel::Publisher;

/// Why an FLV ingest stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum FlvIngestError {
    #[error("malformed FLV: {0}")]
    Demux(#[from] DemuxError),
    #[error("another publisher took the channel over")]
    Replaced,
}

/// Feeds FLV bytes to a publisher, tag by tag.
pub struct FlvIngest {
    demuxer: Demuxer,
    pub tags: u64,
    pub rejected: u64,
}

impl Default for FlvIngest {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvIngest {
    pub fn new() -> Self {
        FlvIngest {
            demuxer: Demuxer::new(),
            tags: 0,
            rejected: 0,
        }
    }

    /// Pushes one chunk; every complete tag goes to `publisher` at once (nothing is held back
    /// to batch). A fatal demux error ends the stream; a bad tag is logged and skipped.
    pub fn push(&mut self, chunk: Bytes, publisher: &Publisher) -> Result<(), FlvIngestError> {
        self.demuxer.push(chunk);
        while let Some(event) = self.demuxer.poll() {
            match event {
                Ok(Event::Tag(tag)) => {
                    self.tags += 1;
                    if publisher.replaced() {
                        return Err(FlvIngestError::Replaced);
                    }
                    if let Err(why) = publisher.push_tag(tag.kind, tag.timestamp, tag.body) {
                        self.rejected += 1;
                        tracing::warn!(channel = %publisher.channel().name, offset = tag.offset, "tag skipped: {why}");
                    }
                }
                Ok(Event::Header(_) | Event::Metadata(_)) => {}
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(channel = %publisher.channel().name, "{e}");
                }
            }
        }
        Ok(())
    }

    /// The stream ended: an error if it stopped inside a tag.
    pub fn finish(&self) -> Result<(), FlvIngestError> {
        Ok(self.demuxer.finish()?)
    }
}
