//! The Lockstep demo test source, as a library: the wall-clock barcode ([`barcode`]), the
//! moving test picture ([`picture`]) and the ffmpeg encoder child ([`encoder`]). The binary
//! `lockstep-test-source` (`src/main.rs`) paces frames into ffmpeg; other crates' tests use
//! [`barcode::decode`] to measure latency off decoded frames.

pub mod barcode;
pub mod encoder;
pub mod picture;
