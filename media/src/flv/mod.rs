//! FLV: the container RTMP and HTTP-FLV carry (Adobe Flash Video File Format Specification
//! v10.1, Annex E; Enhanced RTMP v1/v2 for FourCC video codecs).
//!
//! - [`demux`]: the incremental demuxer, bytes in (any chunking), [`demux::Event`]s out.
//! - [`tag`]: a demuxed tag: kind, 32-bit timestamp, body as a zero-copy `Bytes`.
//! - [`video`] / [`audio`]: the headers at the start of a tag body (codec, frame type,
//!   packet type, composition time), legacy and Enhanced RTMP.
//! - [`amf0`] / [`metadata`]: script data and the typed `onMetaData`.
//!
//! Nothing here interprets codec payloads beyond their FLV headers: see [`crate::codec`].

pub mod amf0;
pub mod audio;
pub mod demux;
pub mod metadata;
pub mod tag;
pub mod video;

pub use demux::{DemuxError, Demuxer, Event, FlvHeader};
pub use tag::{Tag, TagKind};
