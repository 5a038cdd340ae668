//! The incremental FLV demuxer: push bytes in chunks of any size, poll events out.
//!
//! Implements the FLV file structure of the FLV spec v10.1, Annex E: the file header (E.2),
//! then the body (E.3) as PreviousTagSize / tag pairs. Each PreviousTagSize is checked against
//! the tag before it. Tags of unknown types are skipped. Bodies are handed out as `Bytes`
//! slices of the pushed chunks without copying when a body lies within one chunk (the usual
//! case for HTTP and file input); a body split across chunks is joined once.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::metadata::{self, Metadata};
use super::tag::{Tag, TagKind, TAG_HEADER_LEN};

/// The FLV file header (E.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    pub version: u8,
    /// TypeFlagsAudio. Often wrong in the wild: never rely on it to decide which tracks exist.
    pub has_audio: bool,
    /// TypeFlagsVideo. Same caveat.
    pub has_video: bool,
    /// DataOffset: the header's length, 9 for FLV version 1.
    pub data_offset: u32,
}

/// What the demuxer yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Header(FlvHeader),
    Tag(Tag),
    /// Yielded right after a script [`Tag`] that carried a decodable `onMetaData`.
    Metadata(Box<Metadata>),
}

/// Malformed input. `offset` is the byte offset in the stream of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemuxError {
    #[error("not an FLV stream: signature {found:02x?} at byte {offset}, expected \"FLV\"")]
    Signature { found: [u8; 3], offset: u64 },
    #[error(
        "FLV header DataOffset {data_offset} at byte {offset} is smaller than the 9-byte header"
    )]
    DataOffset { data_offset: u32, offset: u64 },
    #[error(
        "PreviousTagSize {found} at byte {offset} does not match the previous tag ({expected})"
    )]
    PreviousTagSize {
        found: u32,
        expected: u32,
        offset: u64,
    },
    #[error("stream ends inside {what} starting at byte {offset}")]
    Truncated { what: &'static str, offset: u64 },
}

impl DemuxError {
    /// A fatal error leaves the demuxer failed (it yields the error again on every poll);
    /// a PreviousTagSize mismatch is reported and demuxing goes on with the next tag.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, DemuxError::PreviousTagSize { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the 9-byte file header.
    FileHeader,
    /// Skipping the rest of a header longer than 9 bytes.
    HeaderPadding(u32),
    /// Waiting for a 4-byte PreviousTagSize.
    PreviousTagSize,
    /// Waiting for an 11-byte tag header.
    TagHeader,
    /// Waiting for (or skipping) a tag body.
    TagBody(PendingTag),
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingTag {
    /// `None` for a tag type this demuxer skips.
    kind: Option<TagKind>,
    filtered: bool,
    size: u32,
    timestamp: u32,
    stream_id: u32,
    offset: u64,
}

/// The FLV demuxer. Sans-IO: [`Demuxer::push`] bytes, then [`Demuxer::poll`] until `None`.
#[derive(Debug)]
pub struct Demuxer {
    state: State,
    chunks: VecDeque<Bytes>,
    buffered: usize,
    /// Stream offset of the first buffered byte.
    offset: u64,
    /// The PreviousTagSize the next one must carry (0 right after the header).
    expected_previous: u32,
    pending_metadata: Option<Box<Metadata>>,
    failure: Option<DemuxError>,
}

impl Default for Demuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl Demuxer {
    /// A demuxer for a complete FLV stream, starting with the file header.
    pub fn new() -> Self {
        Demuxer {
            state: State::FileHeader,
            chunks: VecDeque::new(),
            buffered: 0,
            offset: 0,
            expected_previous: 0,
            pending_metadata: None,
            failure: None,
        }
    }

    /// Appends input. Empty chunks are ignored.
    pub fn push(&mut self, data: Bytes) {
        if data.is_empty() || self.state == State::Failed {
            return;
        }
        self.buffered += data.len();
        self.chunks.push_back(data);
    }

    /// Appends input from a borrowed slice (copies it).
    pub fn push_slice(&mut self, data: &[u8]) {
        self.push(Bytes::copy_from_slice(data));
    }

    /// Bytes consumed so far: the stream offset of the next unread byte.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// Bytes pushed but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Call at end of input: an error if the stream stopped inside a header or a tag.
    pub fn finish(&self) -> Result<(), DemuxError> {
        if let Some(e) = &self.failure {
            return Err(e.clone());
        }
        let what = match self.state {
            State::FileHeader if self.offset == 0 && self.buffered == 0 => return Ok(()),
            State::FileHeader | State::HeaderPadding(_) => "the FLV header",
            State::PreviousTagSize if self.buffered == 0 => return Ok(()),
            State::PreviousTagSize => "a PreviousTagSize",
            State::TagHeader if self.buffered == 0 => {
                // A stream cut right after a PreviousTagSize is complete.
                return Ok(());
            }
            State::TagHeader => "a tag header",
            State::TagBody(p) => {
                return Err(DemuxError::Truncated {
                    what: "a tag body",
                    offset: p.offset,
                })
            }
            State::Failed => return Ok(()),
        };
        Err(DemuxError::Truncated {
            what,
            offset: self.offset,
        })
    }

    /// The next event, `None` when more input is needed.
    pub fn poll(&mut self) -> Option<Result<Event, DemuxError>> {
        if let Some(m) = self.pending_metadata.take() {
            return Some(Ok(Event::Metadata(m)));
        }
        loop {
            match self.state {
                State::Failed => return self.failure.clone().map(Err),
                State::FileHeader => {
                    let h: [u8; 9] = self.peek()?;
                    let offset = self.offset;
                    if &h[..3] != b"FLV" {
                        return Some(Err(self.fail(DemuxError::Signature {
                            found: [h[0], h[1], h[2]],
                            offset,
                        })));
                    }
                    let data_offset = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
                    if data_offset < 9 {
                        return Some(Err(self.fail(DemuxError::DataOffset {
                            data_offset,
                            offset: offset + 5,
                        })));
                    }
                    self.skip(9);
                    self.state = State::HeaderPadding(data_offset - 9);
                    return Some(Ok(Event::Header(FlvHeader {
                        version: h[3],
                        has_audio: h[4] & 0x04 != 0,
                        has_video: h[4] & 0x01 != 0,
                        data_offset,
                    })));
                }
                State::HeaderPadding(0) => self.state = State::PreviousTagSize,
                State::HeaderPadding(n) => {
                    let step = n.min(self.buffered as u32);
                    if step == 0 {
                        return None;
                    }
                    self.skip(step as usize);
                    self.state = State::HeaderPadding(n - step);
                }
                State::PreviousTagSize => {
                    let b: [u8; 4] = self.peek()?;
                    let offset = self.offset;
                    self.skip(4);
                    self.state = State::TagHeader;
                    let found = u32::from_be_bytes(b);
                    if found != self.expected_previous {
                        return Some(Err(DemuxError::PreviousTagSize {
                            found,
                            expected: self.expected_previous,
                            offset,
                        }));
                    }
                }
                State::TagHeader => {
                    let h: [u8; TAG_HEADER_LEN] = self.peek()?;
                    let offset = self.offset;
                    self.skip(TAG_HEADER_LEN);
                    let size = u32::from_be_bytes([0, h[1], h[2], h[3]]);
                    self.state = State::TagBody(PendingTag {
                        kind: TagKind::from_type_id(h[0] & 0x1f),
                        filtered: h[0] & 0x20 != 0,
                        size,
                        timestamp: u32::from_be_bytes([h[7], h[4], h[5], h[6]]),
                        stream_id: u32::from_be_bytes([0, h[8], h[9], h[10]]),
                        offset,
                    });
                }
                State::TagBody(p) => {
                    if self.buffered < p.size as usize {
                        return None;
                    }
                    let body = self.take(p.size as usize);
                    self.expected_previous = p.size + TAG_HEADER_LEN as u32;
                    self.state = State::PreviousTagSize;
                    let Some(kind) = p.kind else { continue };
                    if kind == TagKind::Script && !p.filtered {
                        if let Ok(Some(m)) = metadata::parse_script_tag(&body) {
                            self.pending_metadata = Some(Box::new(m));
                        }
                    }
                    return Some(Ok(Event::Tag(Tag {
                        kind,
                        timestamp: p.timestamp,
                        stream_id: p.stream_id,
                        filtered: p.filtered,
                        body,
                        offset: p.offset,
                    })));
                }
            }
        }
    }

    fn fail(&mut self, e: DemuxError) -> DemuxError {
        self.state = State::Failed;
        self.chunks.clear();
        self.buffered = 0;
        self.failure = Some(e.clone());
        e
    }

    /// Copies the first `N` buffered bytes without consuming them; `None` if fewer are buffered.
    fn peek<const N: usize>(&self) -> Option<[u8; N]> {
        if self.buffered < N {
            return None;
        }
        let mut out = [0u8; N];
        let mut filled = 0;
        for chunk in &self.chunks {
            let n = (N - filled).min(chunk.len());
            out[filled..filled + n].copy_from_slice(&chunk[..n]);
            filled += n;
            if filled == N {
                break;
            }
        }
        Some(out)
    }

    /// Consumes `n` buffered bytes (`n <= self.buffered`).
    fn skip(&mut self, mut n: usize) {
        self.buffered -= n;
        self.offset += n as u64;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                let _ = front.split_to(n);
                n = 0;
            }
        }
    }

    /// Consumes and returns `n` buffered bytes (`n <= self.buffered`), zero-copy when they
    /// lie in the first chunk.
    fn take(&mut self, n: usize) -> Bytes {
        if let Some(front) = self.chunks.front_mut() {
            if front.len() >= n {
                let out = front.split_to(n);
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                self.buffered -= n;
                self.offset += n as u64;
                return out;
            }
        }
        let mut out = BytesMut::with_capacity(n);
        let mut left = n;
        while left > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let k = left.min(front.len());
            out.extend_from_slice(&front.split_to(k));
            if front.is_empty() {
                self.chunks.pop_front();
            }
            left -= k;
        }
        self.buffered -= n;
        self.offset += n as u64;
        out.freeze()
    }
}
