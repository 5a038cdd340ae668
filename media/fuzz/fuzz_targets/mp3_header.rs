//! Fuzz target: `Mp3Header::parse` must never panic, and what it accepts is sane.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep_media::codec::mp3::Mp3Header;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Mp3Header::parse(data) {
        assert!(h.frame_length >= 4);
        assert!(h.sample_rate > 0 && h.samples_per_frame > 0);
        assert!(h.channels == 1 || h.channels == 2);
    }
});
