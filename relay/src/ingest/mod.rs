//! Ingest: every way a live stream gets into a channel. Each source ends up as FLV tags
//! pushed into a [`crate::channel::Publisher`].
//!
//! - [`rtmp`]: RTMP publish (OBS, ffmpeg), through the `rml_rtmp` crate.
//! - [`http_push`]: `PUT`/`POST /ingest/{channel}?key=KEY` with an FLV body.
//! - [`pull`]: `--pull NAME=URL` from HTTP-FLV or RTMP, reconnecting with backoff.
//! - [`file`]: `--file NAME=PATH`, paced in real time by its timestamps.
//! - [`publisher`]: the publisher slot and helpers every source shares.
//! - [`flv_stream`]: FLV bytes (any chunking) to publisher tags, shared by push, pull and file.

pub mod file;
pub mod flv_stream;
pub mod http_push;
pub mod publisher;
pub mod pull;
pub mod rtmp;
