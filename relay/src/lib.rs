//! # lockstep-relay
//!
//! The Lockstep live relay: takes a live stream in (RTMP, FLV over HTTP push or pull, a file),
//! keeps per channel the codec configurations and a GOP cache, and fans each FLV tag out to
//! every viewer as one shared wire message (`lockstep_media::wire`) over WebSocket, and as
//! HTTP-FLV. It answers clock-sync pings (on the media connection and on `/clock`), collects
//! viewer feedback and publishes statistics.
//!
//! What it is not: a transcoder or remuxer. It parses FLV only as far as codec
//! configurations, keyframes and timestamps, and never builds MP4 for WebSocket viewers; its
//! per-frame work does not grow with viewers beyond a reference count and a queue position.
//!
//! Layout: [`channel`] (state, GOP cache, broadcast group, publisher slot), [`ingest`]
//! (sources), [`viewer`] (WebSocket, clock-sync and HTTP-FLV egress), [`http`] (router, API),
//! [`server`] (start/stop), [`config`] (CLI and TOML), [`websocket`] (RFC 6455 framing
//! for the fan-out: each frame framed once, written to every viewer as the same bytes).

pub mod app;
pub mod channel;
pub mod clock;
pub mod config;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod server;
pub mod viewer;
pub mod websocket;
