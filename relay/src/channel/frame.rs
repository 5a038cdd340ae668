//! What a channel broadcasts: wire messages encoded once, shared by every viewer.

use bytes::Bytes;

/// One wire message on a channel's broadcast group. `msg` is the complete encoded message
/// (`media::wire`); every viewer sends the same `Bytes` (a reference count, no copy).
#[derive(Debug, Clone)]
pub struct Frame {
    pub msg: Bytes,
    pub kind: FrameKind,
    /// Relay clock when the source frame was ingested (µs): for the relay-added delay.
    pub ingest_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A video keyframe: where a viewer that skipped may resume.
    Keyframe,
    /// Any other video or audio frame, or script data.
    Media,
    /// A codec configuration (sequence header).
    Config,
    /// A control message every viewer must see in order (StreamInfo, Discontinuity, End,
    /// Timeline).
    Control,
}

impl Frame {
    /// The FLV tag this frame carries, for HTTP-FLV output: (tag type, timestamp, body).
    pub fn flv_tag(&self) -> Option<(lockstep_media::flv::TagKind, u32, Bytes)> {
        use lockstep_media::flv::TagKind;
        if !matches!(
            self.kind,
            FrameKind::Keyframe | FrameKind::Media | FrameKind::Config
        ) {
            return None;
        }
        let m = &self.msg;
        if m.len() < lockstep_media::wire::MEDIA_HEADER_LEN {
            return None;
        }
        let kind = match m[0] >> 4 {
            1 => TagKind::Video,
            2 => TagKind::Audio,
            3 => TagKind::Script,
            _ => return None,
        };
        let ts = u32::from_be_bytes([m[1], m[2], m[3], m[4]]);
        Some((kind, ts, m.slice(lockstep_media::wire::MEDIA_HEADER_LEN..)))
    }
}
