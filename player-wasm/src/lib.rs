//! # lockstep-player
//!
//! The Lockstep browser player, Rust compiled to WebAssembly. It receives the relay's frames
//! over WebSocket (docs/PROTOCOL.md), remuxes FLV to fragmented MP4 with the shared
//! `lockstep-media` crate (no JavaScript remuxer), feeds Media Source Extensions
//! (ManagedMediaSource where present), keeps latency on target with `playbackRate` and rare
//! seeks, syncs its clock with the relay and reports statistics.
//!
//! Layers, each replaceable and tested alone:
//! - [`session`]: the protocol session, sans-IO (messages in, sink actions out);
//! - [`control`]: latency controller and jitter estimate, plain Rust with simulated tests;
//! - `web` (wasm32 only): WebSocket transport, MSE sink, the player loop, the exported API.
//!
//! What it is not: a VOD player. Live only: no seek bar, no pause; volume is the only control
//! (in the `<lockstep-player>` element of the npm package).

pub mod control;
pub mod session;

#[cfg(target_arch = "wasm32")]
pub mod web;
