//! WebSocket (RFC 6455) for viewers, written for the fan-out: every server-to-client frame
//! is unmasked, so a frame's bytes do not depend on who receives it. The relay frames each
//! wire message once ([`codec::server_frame`]), keeps the framed bytes in the broadcast
//! ([`crate::channel::Frame`]), and every viewer writes those same `Bytes` with vectored
//! writes: no per-viewer copy, no per-viewer write buffer. The client side is small (a
//! player sends pings, feedback and close), parsed by [`codec::ClientFrames`].
//!
//! - [`codec`]: frame encoding (server) and decoding (client, masked), sans-IO.
//! - [`handshake`]: the HTTP upgrade (RFC 6455 §4.2), on top of axum/hyper.
//! - [`conn`]: the two halves of an upgraded connection: a frame reader and a vectored
//!   frame writer.

pub mod codec;
pub mod conn;
pub mod handshake;
