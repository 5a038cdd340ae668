//! Remux throughput, native: MB of FLV in per second through the demuxer and remuxer, in the
//! player's live mode (a fragment per frame) and the file mode (a fragment per GOP).
//!
//! `cargo bench -p lockstep-media --bench remux_throughput [-- PATH.flv]`
//! Without a path it makes a 20 s 1280x720 H.264 + AAC test stream with ffmpeg.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lockstep_media::flv::{Demuxer, Event};
use lockstep_media::remux::{RemuxEvent, RemuxOptions, Remuxer};

fn main() {
    let path = std::env::args()
        .skip(1)
        .find(|a| a.ends_with(".flv"))
        .unwrap_or_else(make_stream);
    let flv = Bytes::from(std::fs::read(&path).expect("read the FLV"));
    println!("input: {path}, {:.1} MB", flv.len() as f64 / 1e6);
    for (name, options) in [
        ("live (fragment per frame)", RemuxOptions::live()),
        ("file (fragment per GOP)", RemuxOptions::file(true, true)),
    ] {
        // Chunks of 64 KiB, as a socket would deliver them.
        let chunks: Vec<Bytes> = flv.chunks(64 * 1024).map(|c| flv.slice_ref(c)).collect();
        let mut runs = 0u32;
        let mut out_bytes = 0usize;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) || runs < 3 {
            out_bytes = remux(&chunks, options);
            runs += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        let mb = flv.len() as f64 * runs as f64 / 1e6;
        println!(
            "{name:28} {:8.0} MB/s of FLV in ({runs} runs, {:.1} MB out per run)",
            mb / secs,
            out_bytes as f64 / 1e6
        );
    }
}

fn remux(chunks: &[Bytes], options: RemuxOptions) -> usize {
    let mut demuxer = Demuxer::new();
    let mut remuxer = Remuxer::new(options);
    let mut out = 0usize;
    for chunk in chunks {
        demuxer.push(chunk.clone());
        while let Some(event) = demuxer.poll() {
            if let Ok(Event::Tag(tag)) = event {
                let _ = remuxer.push(tag.kind, tag.timestamp, &tag.body);
                while let Some(e) = remuxer.poll() {
                    if let RemuxEvent::Media(m) = e {
                        out += black_box(m.data).len();
                    }
                }
            }
        }
    }
    remuxer.flush();
    while let Some(e) = remuxer.poll() {
        if let RemuxEvent::Media(m) = e {
            out += m.data.len();
        }
    }
    out
}

fn make_stream() -> String {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("bench-720p-20s.flv");
    if !path.exists() {
        let ok = Command::new("ffmpeg")
            .args(["-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=1280x720:rate=30")
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "3M",
            ])
            .args(["-g", "30", "-c:a", "aac", "-b:a", "128k", "-f", "flv"])
            .arg(&path)
            .status()
            .expect("ffmpeg must be installed (tests/setup.sh)");
        assert!(ok.success(), "ffmpeg failed");
    }
    path.to_string_lossy().into_owned()
}
