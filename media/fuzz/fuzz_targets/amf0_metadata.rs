//! Fuzz target: AMF0 decoding and `onMetaData` parsing must never panic, and anything decoded
//! re-encodes into AMF0 that decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep_media::flv::{amf0, metadata};

fuzz_target!(|data: &[u8]| {
    if let Ok(values) = amf0::decode_all(data) {
        let mut out = Vec::new();
        for v in &values {
            amf0::encode_value(&mut out, v);
        }
        let again = amf0::decode_all(&out).expect("re-encoded AMF0 decodes");
        assert_eq!(again.len(), values.len());
    }
    if let Ok(Some(m)) = metadata::parse_script_tag(data) {
        let body = m.to_script_body();
        let back = metadata::parse_script_tag(&body).expect("re-encoded metadata parses");
        assert!(back.is_some());
    }
});
