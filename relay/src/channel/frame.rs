//! What a channel broadcasts: wire messages encoded once, already framed as WebSocket
//! frames, shared by every viewer.

use bytes::Bytes;
use lockstep_media::flv::TagKind;
use lockstep_media::wire::{self, MediaFlags, MediaKind, Message};

use crate::websocket::codec::{self, opcode};

/// One wire message on a channel's broadcast group, stored as a complete unmasked binary
/// WebSocket frame (RFC 6455 §5.2 header, then the message): every WebSocket viewer writes
/// these same bytes (a reference count, no copy); [`Frame::msg`] is the message alone.
#[derive(Debug, Clone)]
pub struct Frame {
    ws: Bytes,
    header_len: u8,
    pub kind: FrameKind,
    /// Relay clock when the source frame was ingested (µs): for the relay-added delay.
    pub ingest_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A video keyframe (or, without video, any audio frame): where a viewer that skipped
    /// may resume.
    Keyframe,
    /// Any other video or audio frame, or script data.
    Media,
    /// A codec configuration (sequence header) or metadata.
    Config,
    /// A control message every viewer must see in order (StreamInfo, Discontinuity, End,
    /// Timeline).
    Control,
}

impl Frame {
    /// A media message (5-byte header + FLV tag body), framed in one allocation.
    pub fn media(
        kind: MediaKind,
        flags: MediaFlags,
        ts: u32,
        body: &[u8],
        frame_kind: FrameKind,
        ingest_us: u64,
    ) -> Frame {
        let len = wire::MEDIA_HEADER_LEN + body.len();
        let mut out = Vec::with_capacity(codec::header_len(len) + len);
        codec::write_header(&mut out, opcode::BINARY, len);
        let header_len = out.len() as u8;
        out.extend_from_slice(&wire::media_header(kind, flags, ts));
        out.extend_from_slice(body);
        Frame {
            ws: out.into(),
            header_len,
            kind: frame_kind,
            ingest_us,
        }
    }

    /// A control message.
    pub fn control(msg: &Message, ingest_us: u64) -> Frame {
        let mut m = Vec::new();
        wire::encode(msg, &mut m);
        Frame {
            header_len: codec::header_len(m.len()) as u8,
            ws: codec::server_frame(opcode::BINARY, &m),
            kind: FrameKind::Control,
            ingest_us,
        }
    }

    /// The complete WebSocket frame.
    pub fn ws_frame(&self) -> &Bytes {
        &self.ws
    }

    /// The wire message (without the WebSocket header).
    pub fn msg(&self) -> &[u8] {
        &self.ws[self.header_len as usize..]
    }

    /// Size of the wire message.
    pub fn len(&self) -> usize {
        self.ws.len() - self.header_len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The FLV tag this frame carries, for HTTP-FLV output: (tag type, timestamp, body as a
    /// slice of the shared bytes).
    pub fn flv_tag(&self) -> Option<(TagKind, u32, Bytes)> {
        if !matches!(
            self.kind,
            FrameKind::Keyframe | FrameKind::Media | FrameKind::Config
        ) {
            return None;
        }
        let m = self.msg();
        if m.len() < wire::MEDIA_HEADER_LEN {
            return None;
        }
        let kind = match m[0] >> 4 {
            1 => TagKind::Video,
            2 => TagKind::Audio,
            3 => TagKind::Script,
            _ => return None,
        };
        let ts = u32::from_be_bytes([m[1], m[2], m[3], m[4]]);
        let start = self.header_len as usize + wire::MEDIA_HEADER_LEN;
        Some((kind, ts, self.ws.slice(start..)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_bytes_are_a_websocket_frame_around_the_wire_message() {
        for body_len in [10usize, 200, 70_000] {
            let body = vec![0x17u8; body_len];
            let f = Frame::media(
                MediaKind::Video,
                MediaFlags::KEYFRAME,
                1234,
                &body,
                FrameKind::Keyframe,
                0,
            );
            let ws = f.ws_frame();
            assert_eq!(ws[0], 0x82);
            assert_eq!(ws.len(), codec::header_len(5 + body_len) + 5 + body_len);
            let msg = Bytes::copy_from_slice(f.msg());
            let Ok(Message::Media(m)) = wire::decode(msg) else {
                panic!()
            };
            assert_eq!((m.timestamp_ms, m.body.len()), (1234, body_len));
            let (kind, ts, tag) = f.flv_tag().unwrap();
            assert_eq!((kind, ts, tag.len()), (TagKind::Video, 1234, body_len));
        }
        let c = Frame::control(
            &Message::End(wire::End {
                reason: "bye".into(),
            }),
            0,
        );
        assert_eq!(
            wire::decode(Bytes::copy_from_slice(c.msg())),
            Ok(Message::End(wire::End {
                reason: "bye".into()
            }))
        );
        assert!(c.flv_tag().is_none());
    }
}
