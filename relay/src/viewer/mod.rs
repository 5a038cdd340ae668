//! Viewer egress: the WebSocket endpoint of the Lockstep protocol ([`ws`]), its clock-sync
//! companion ([`clock`]), the shared per-viewer feed with the slow-viewer rule ([`feed`]), and
//! HTTP-FLV output ([`flv`]).

pub mod clock;
pub mod feed;
pub mod flv;
pub mod ws;
