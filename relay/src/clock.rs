//! The relay's clock: Unix-epoch microseconds, the time base of every timestamp the relay
//! sends (Hello, Timeline, Pong) and of the players' synced clocks.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
