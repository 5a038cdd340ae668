//! Playback control logic of the player: plain Rust, no `web-sys`, driven by explicit clocks
//! so it can be unit-tested natively with simulated time.
//!
//! * [`audio_chain`]: where a decoded audio buffer starts and how fast it plays (WebCodecs), so
//!   the chain of buffers stays on its due time without clicks.
//! * [`audio_lag`]: [`audio_lag::AudioLag`], how far audio may trail the video (WebCodecs) when
//!   it cannot arrive in time for the shared delay.
//! * [`arrival`]: [`arrival::ArrivalLatency`], how late frames arrive (level, not spread).
//! * [`decode_time`]: [`decode_time::DecodeTimes`], how long a WebCodecs decoder takes.
//! * [`display_delay`]: [`display_delay::DisplayDelay`], from writing a frame (WebCodecs) to
//!   its display (the write-ahead before the refresh grid is known).
//! * [`quantile`]: nearest-rank quantiles of sample windows.
//! * [`refresh`]: [`refresh::RefreshClock`], the display's refresh grid: which refresh a
//!   video frame (WebCodecs) is for and when to write it.
//! * [`frame_callback`]: reading the `<video>`'s frame callbacks (display estimate, which
//!   written frame).
//! * [`jitter`]: [`jitter::ArrivalJitter`], sliding-window arrival jitter of received frames.
//! * [`latency`]: [`latency::LatencyController`], keeps the player's latency at the channel's
//!   shared delay with small `playbackRate` changes and, for large gaps, seeks.
//!
//! See `docs/LATENCY.md` for the algorithm, its parameters and the simulation results.

pub mod arrival;
pub mod audio_chain;
pub mod audio_lag;
pub mod decode_time;
pub mod display_delay;
pub mod frame_callback;
pub mod jitter;
pub mod latency;
pub mod quantile;
pub mod refresh;
