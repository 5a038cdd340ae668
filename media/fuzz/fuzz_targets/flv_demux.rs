//! Fuzzes the FLV demuxer: any bytes, pushed in any chunking, never panic, and the chunking
//! is invisible (the same events and the same `finish()` as one push of the whole input).
//!
//! Input layout: byte 0 = flags (bit 7: prepend a valid FLV file header so the fuzzer gets
//! past the signature; bits 0-2: how many chunk-size bytes follow, 1-8), then the chunk-size
//! bytes (each a chunk length, 0 = an empty push), then the stream.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use lockstep_media::flv::{Demuxer, Event};

const FLV_HEADER: &[u8] = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00";

/// Events in Debug form (metadata may hold NaN, which is not equal to itself).
fn run(stream: &Bytes, sizes: &[usize]) -> (Vec<String>, String) {
    let mut d = Demuxer::new();
    let mut events = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    let mut last_offset = None;
    'feed: while pos < stream.len() {
        let n = if sizes.is_empty() {
            stream.len()
        } else {
            sizes[i % sizes.len()].min(stream.len() - pos)
        };
        i += 1;
        d.push(stream.slice(pos..pos + n));
        pos += n;
        assert!(d.position() as usize <= pos);
        assert!(d.buffered() <= pos);
        while let Some(e) = d.poll() {
            if let Ok(Event::Tag(t)) = &e {
                // Tags come out in stream order, and their bodies fit in the input.
                assert!(last_offset.is_none_or(|o| t.offset > o));
                last_offset = Some(t.offset);
                assert!(t.offset as usize + 11 + t.body.len() <= stream.len());
                assert_eq!(
                    &t.body[..],
                    &stream[t.offset as usize + 11..][..t.body.len()]
                );
            }
            let fatal = matches!(&e, Err(e) if e.is_fatal());
            events.push(format!("{e:?}"));
            if fatal {
                // A failed demuxer keeps failing.
                assert_eq!(
                    format!("{:?}", d.poll()),
                    format!("Some({})", events.last().unwrap())
                );
                break 'feed;
            }
        }
    }
    let finish = format!("{:?}", d.finish());
    (events, finish)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(flags & 0x07) + 1;
    if rest.len() < n {
        return;
    }
    let (size_bytes, body) = rest.split_at(n);
    let sizes: Vec<usize> = size_bytes.iter().map(|&b| usize::from(b)).collect();
    let mut stream = Vec::with_capacity(body.len() + FLV_HEADER.len());
    if flags & 0x80 != 0 {
        stream.extend_from_slice(FLV_HEADER);
    }
    stream.extend_from_slice(body);
    let stream = Bytes::from(stream);

    let whole = run(&stream, &[]);
    // All-zero chunk sizes would never advance: one byte at a time then.
    let sizes = if sizes.iter().all(|&s| s == 0) {
        vec![1]
    } else {
        sizes
    };
    let chunked = run(&stream, &sizes);
    assert_eq!(whole, chunked);
});
