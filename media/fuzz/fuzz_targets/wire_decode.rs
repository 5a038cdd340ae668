//! Fuzz `lockstep_media::wire::decode`: arbitrary bytes never panic, and whatever decodes
//! re-encodes to something that decodes to the same message.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use lockstep_media::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = wire::decode(Bytes::copy_from_slice(data)) {
        let again = wire::decode(msg.to_bytes()).expect("re-encoded message must decode");
        assert_eq!(again, msg);
    }
});
