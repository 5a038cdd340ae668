//! The Lockstep demo test source, as a library: the wall-clock barcode ([`barcode`]), the
//! moving test picture ([`picture`]), the tone ([`tone`]), the two ffmpeg encoder children
//! ([`encoder`]), Ogg Opus packets made into Enhanced RTMP audio tags ([`ogg_opus`]), the
//! timestamp mapping that puts both tracks on one timeline ([`retime`]),
//! the RTMP / HTTP publisher ([`publish`]) and the worker threads that connect them
//! ([`workers`]). The binary `lockstep-test-source` (`src/main.rs`) paces frames into the
//! encoders; other crates' tests use [`barcode::decode`] to measure latency off decoded
//! frames.

pub mod barcode;
pub mod encoder;
pub mod ogg_opus;
pub mod picture;
pub mod publish;
pub mod retime;
pub mod tone;
pub mod workers;
