//! The browser side of the player (web-sys): transport, MSE sink, WebCodecs sink, the player
//! that wires them to the session and controller, and the exported JavaScript API.

pub mod api;
pub mod listener;
pub mod mse;
pub mod options;
pub mod player;
pub mod socket;
pub mod webcodecs;
