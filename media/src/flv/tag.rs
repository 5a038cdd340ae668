//! A demuxed FLV tag (FLV spec v10.1 section E.4.1): its kind, full 32-bit timestamp and body.

use bytes::Bytes;

/// The tag type field, lower five bits of the first tag header byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagKind {
    /// TagType 8.
    Audio,
    /// TagType 9.
    Video,
    /// TagType 18: AMF0 script data such as `onMetaData`.
    Script,
}

impl TagKind {
    /// The TagType value for this kind.
    pub fn type_id(self) -> u8 {
        match self {
            TagKind::Audio => 8,
            TagKind::Video => 9,
            TagKind::Script => 18,
        }
    }

    /// The kind for a TagType value, `None` for types this demuxer skips.
    pub fn from_type_id(id: u8) -> Option<Self> {
        match id {
            8 => Some(TagKind::Audio),
            9 => Some(TagKind::Video),
            18 => Some(TagKind::Script),
            _ => None,
        }
    }
}

/// One FLV tag. `body` is the tag's data (after the 11-byte tag header) as a zero-copy slice
/// of the bytes given to the demuxer whenever the body arrived in one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub kind: TagKind,
    /// Milliseconds: the 24-bit Timestamp with TimestampExtended as its upper 8 bits.
    pub timestamp: u32,
    /// StreamID, always 0 in conforming files; kept for diagnostics.
    pub stream_id: u32,
    /// The Filter bit: the body is encrypted or otherwise pre-processed.
    pub filtered: bool,
    pub body: Bytes,
    /// Byte offset of the tag header in the demuxed stream.
    pub offset: u64,
}

/// Size of the tag header that precedes every tag body.
pub const TAG_HEADER_LEN: usize = 11;

impl Tag {
    /// Writes this tag as FLV: the 11-byte tag header, the body and the trailing
    /// PreviousTagSize. Used by the relay's HTTP-FLV output and by tests.
    pub fn write_flv(&self, out: &mut Vec<u8>) {
        write_tag(out, self.kind, self.timestamp, &self.body);
    }
}

/// Writes one FLV tag (header, body, PreviousTagSize). Bodies longer than the 24-bit
/// DataSize allows are not representable in FLV; callers never produce them (RTMP
/// messages share the same 24-bit limit), and such a body is truncated here rather than
/// writing a corrupt size.
pub fn write_tag(out: &mut Vec<u8>, kind: TagKind, timestamp: u32, body: &[u8]) {
    let body = &body[..body.len().min(0xFF_FFFF)];
    let size = body.len() as u32;
    out.reserve(TAG_HEADER_LEN + body.len() + 4);
    out.push(kind.type_id()); // Reserved(2) Filter(1) TagType(5)
    out.extend_from_slice(&size.to_be_bytes()[1..]); // DataSize UI24
    out.extend_from_slice(&timestamp.to_be_bytes()[1..]); // Timestamp UI24 (lower bits)
    out.push((timestamp >> 24) as u8); // TimestampExtended UI8
    out.extend_from_slice(&[0, 0, 0]); // StreamID UI24, always 0
    out.extend_from_slice(body);
    out.extend_from_slice(&(size + TAG_HEADER_LEN as u32).to_be_bytes()); // PreviousTagSize
}

/// Writes the 9-byte FLV file header (E.2) and PreviousTagSize0.
pub fn write_file_header(out: &mut Vec<u8>, has_audio: bool, has_video: bool) {
    out.extend_from_slice(b"FLV"); // Signature
    out.push(1); // Version
    out.push(((has_audio as u8) << 2) | has_video as u8); // TypeFlagsAudio, TypeFlagsVideo
    out.extend_from_slice(&9u32.to_be_bytes()); // DataOffset
    out.extend_from_slice(&0u32.to_be_bytes()); // PreviousTagSize0
}
