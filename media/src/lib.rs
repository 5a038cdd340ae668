//! # lockstep-media
//!
//! The one implementation of Lockstep's media formats, shared by the relay (native) and the
//! browser player (wasm32):
//!
//! - [`flv`]: an incremental FLV demuxer (bytes in, header / tags / metadata out), FLV audio and
//!   video tag headers including Enhanced RTMP, and AMF0 script data (`onMetaData`).
//! - [`codec`]: codec configuration parsers (H.264, H.265, AAC, MP3) and RFC 6381 codec strings.
//! - [`fmp4`]: a fragmented MP4 writer (init segments, `moof`+`mdat` fragments).
//! - [`remux`]: FLV tags to fMP4 tracks: timelines, sample durations, discontinuities.
//! - [`wire`]: the Lockstep WebSocket wire protocol (docs/PROTOCOL.md), encode and decode.
//!
//! What it is not: it does no IO, owns no sockets, reads no clocks and spawns nothing. Callers
//! push bytes (and, where time matters, timestamps they read themselves) and get values back.
//! No input, however malformed, makes it panic: errors are typed and say where they happened.

pub mod codec;
pub mod flv;
pub mod fmp4;
pub mod remux;
pub mod wire;
