//! Fuzzes the remuxer with arbitrary FLV tags: no panic, and everything it writes reads back
//! with the crate's fMP4 reader.
//!
//! Input layout: a sequence of tags, each `kind` (1 byte: 0 audio, 1 video, 2 script, mod 3),
//! `timestamp` (4 bytes BE), `length` (2 bytes BE), then `length` body bytes (fewer if the
//! input ends). Bit 7 of a kind byte asks for a timeline reset before that tag.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use lockstep_media::flv::TagKind;
use lockstep_media::fmp4::{parse_fragment, parse_init};
use lockstep_media::remux::{RemuxEvent, RemuxOptions, Remuxer, TrackType};

struct FuzzTag {
    kind: TagKind,
    timestamp: u32,
    reset: bool,
    body: Bytes,
}

fn tags(mut data: &[u8]) -> Vec<FuzzTag> {
    let mut out = Vec::new();
    while data.len() >= 7 {
        let kind = match data[0] % 3 {
            0 => TagKind::Audio,
            1 => TagKind::Video,
            _ => TagKind::Script,
        };
        let reset = data[0] & 0x80 != 0;
        let timestamp = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
        let len = usize::from(u16::from_be_bytes([data[5], data[6]]));
        data = &data[7..];
        let len = len.min(data.len());
        out.push(FuzzTag {
            kind,
            timestamp,
            reset,
            body: Bytes::copy_from_slice(&data[..len]),
        });
        data = &data[len..];
    }
    out
}

/// Checks one event; `raw_audio` tracks whether the audio track is raw MP3 (`audio/mpeg`).
fn check(event: RemuxEvent, raw_audio: &mut bool) {
    match event {
        RemuxEvent::Init(init) => {
            if init.tracks == [TrackType::Audio] {
                *raw_audio = init.mime == "audio/mpeg";
            }
            if init.mime == "audio/mpeg" {
                assert!(init.data.is_empty());
            } else {
                let parsed = parse_init(&init.data).expect("init segment reads back");
                assert_eq!(parsed.tracks.len(), init.tracks.len());
            }
        }
        RemuxEvent::Media(m) => {
            assert!(m.start_ms <= m.end_ms, "{} > {}", m.start_ms, m.end_ms);
            if !(*raw_audio && m.track == Some(TrackType::Audio)) {
                let f = parse_fragment(&m.data).expect("fragment reads back");
                let n: usize = f.trafs.iter().map(|t| t.samples.len()).sum();
                assert_eq!(n, m.samples as usize);
            }
        }
        RemuxEvent::Discontinuity { .. } => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let tags = tags(data);
    for options in [
        RemuxOptions::live(),
        RemuxOptions::file(true, true),
        RemuxOptions::file(false, true),
    ] {
        let mut r = Remuxer::new(options);
        let mut raw_audio = false;
        for t in &tags {
            if t.reset {
                r.reset_timeline();
            }
            let _ = r.push(t.kind, t.timestamp, &t.body);
            while let Some(e) = r.poll() {
                check(e, &mut raw_audio);
            }
        }
        r.flush();
        while let Some(e) = r.poll() {
            check(e, &mut raw_audio);
        }
    }
});
