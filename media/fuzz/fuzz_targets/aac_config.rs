//! Fuzz target: `AudioSpecificConfig::parse` must never panic, and what it accepts is sane.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use lockstep_media::codec::aac::AudioSpecificConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = AudioSpecificConfig::parse(Bytes::copy_from_slice(data)) {
        assert!(c.sample_rate > 0);
        assert!(c.channels > 0);
        assert!(c.samples_per_frame() > 0);
        let _ = c.codec_string();
    }
});
