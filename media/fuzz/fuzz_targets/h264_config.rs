//! Fuzzes the H.264 `avcC` record parser and the SPS parser: neither may panic, and a parsed
//! record's picture size must be sane.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use lockstep_media::codec::h264::{parse_sps, AvcConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok(sps) = parse_sps(data) {
        let info = sps.info();
        assert!(info.width > 0 && info.height > 0);
        assert!(info.width <= 65535 && info.height <= 65535);
    }
    // The same bytes as an SPS NAL (header forced to type 7) to get past the header check.
    if let Some(rest) = data.get(1..) {
        let mut nal = Vec::with_capacity(data.len());
        nal.push(0x67);
        nal.extend_from_slice(rest);
        let _ = parse_sps(&nal);
    }
    if let Ok(config) = AvcConfig::parse(Bytes::copy_from_slice(data)) {
        assert!(matches!(config.nal_length_size, 1 | 2 | 4));
        assert!(!config.sps.is_empty());
        let _ = config.codec_string();
    }
});
