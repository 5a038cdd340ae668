//! FLV files made by ffmpeg, remuxed by `flv_to_mp4`, checked with ffprobe and ffmpeg: the
//! same packets (count, PTS, DTS, keyframes) and codec parameters on both sides, and an MP4
//! that decodes without a single error.

mod common;

use std::path::Path;

use common::{decode_errors, ffmpeg, packets, scratch_dir, streams, Packet};
use lockstep_media::remux::flv_to_mp4;

const VIDEO_320: &str = "testsrc2=size=320x240:rate=30";
const TONE_44K: &str = "sine=frequency=440:sample_rate=44100";

/// Makes `name.flv` with ffmpeg (`inputs` are lavfi graphs), remuxes it, and compares.
fn check(name: &str, inputs: &[&str], codec_args: &[&str]) {
    let dir = scratch_dir(name);
    let flv = dir.join(format!("{name}.flv"));
    let mp4 = dir.join(format!("{name}.mp4"));
    let mut args: Vec<&str> = Vec::new();
    for input in inputs {
        args.extend(["-f", "lavfi", "-i", input]);
    }
    args.extend(["-t", "3"]);
    args.extend(codec_args);
    args.extend(["-f", "flv"]);
    let flv_str = flv.to_str().unwrap();
    args.push(flv_str);
    ffmpeg(&args);

    let result = flv_to_mp4(std::fs::read(&flv).unwrap().into()).expect("remux");
    assert!(
        result.skipped.is_empty(),
        "skipped tags: {:?}",
        result.skipped
    );
    assert!(
        result.warnings.is_empty(),
        "warnings: {:?}",
        result.warnings
    );
    std::fs::write(&mp4, &result.mp4).unwrap();

    compare_streams(&flv, &mp4);
    compare_packets(&flv, &mp4);
    let errors = decode_errors(&mp4);
    assert!(
        errors.trim().is_empty(),
        "{name}: ffmpeg decode errors: {errors}"
    );
}

fn compare_streams(flv: &Path, mp4: &Path) {
    let (a, b) = (streams(flv), streams(mp4));
    assert_eq!(a.len(), b.len(), "stream count: {a:?} vs {b:?}");
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.codec_type, b.codec_type);
        assert_eq!(a.codec_name, b.codec_name, "{a:?} vs {b:?}");
        if a.codec_type == "video" {
            assert_eq!((&a.width, &a.height), (&b.width, &b.height));
            assert_eq!(a.profile, b.profile);
        } else {
            assert_eq!(a.sample_rate, b.sample_rate);
            assert_eq!(a.channels, b.channels);
        }
    }
}

/// Packets of one kind, with times relative to the file's earliest DTS (so the offset
/// between audio and video is part of what is compared), in decode order.
fn relative(all: &[Packet], kind: &str) -> Vec<Packet> {
    let start = all
        .iter()
        .map(|p| p.dts_ms)
        .filter(|d| d.is_finite())
        .fold(f64::INFINITY, f64::min);
    let mut v: Vec<Packet> = all
        .iter()
        .filter(|p| p.stream == kind)
        .map(|p| Packet {
            pts_ms: p.pts_ms - start,
            dts_ms: p.dts_ms - start,
            ..p.clone()
        })
        .collect();
    v.sort_by(|a, b| a.dts_ms.total_cmp(&b.dts_ms));
    v
}

fn compare_packets(flv: &Path, mp4: &Path) {
    let (src, out) = (packets(flv), packets(mp4));
    let kinds_with_packets = ["video", "audio"]
        .iter()
        .filter(|k| src.iter().any(|p| p.stream == **k))
        .count();
    assert!(kinds_with_packets > 0, "ffprobe saw no packets in {flv:?}");
    assert_eq!(
        kinds_with_packets,
        streams(flv).len(),
        "a stream without packets"
    );
    for kind in ["video", "audio"] {
        let (a, b) = (relative(&src, kind), relative(&out, kind));
        assert_eq!(a.len(), b.len(), "{kind} packet count");
        for (i, (a, b)) in a.iter().zip(&b).enumerate() {
            assert!(
                (a.dts_ms - b.dts_ms).abs() <= 1.0,
                "{kind} packet {i}: dts {} vs {}",
                a.dts_ms,
                b.dts_ms
            );
            assert!(
                (a.pts_ms - b.pts_ms).abs() <= 1.0,
                "{kind} packet {i}: pts {} vs {}",
                a.pts_ms,
                b.pts_ms
            );
            assert_eq!(a.key, b.key, "{kind} packet {i}: keyframe flag");
            // FLV packets include the tag-body header (1-5 bytes); MP4 samples do not.
            assert!(
                a.size >= b.size && a.size - b.size <= 5,
                "{kind} packet {i}: size {} vs {}",
                a.size,
                b.size
            );
        }
    }
}

#[test]
fn h264_baseline_with_aac() {
    check(
        "baseline_aac",
        &[VIDEO_320, TONE_44K],
        &[
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-g",
            "30",
            "-c:a",
            "aac",
        ],
    );
}

#[test]
fn h264_high_with_b_frames_and_aac_48k_mono() {
    check(
        "high_bframes",
        &[VIDEO_320, "sine=frequency=300:sample_rate=48000"],
        &[
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-bf",
            "3",
            "-g",
            "45",
            "-c:a",
            "aac",
            "-ac",
            "1",
        ],
    );
}

#[test]
fn h264_with_mp3() {
    check(
        "mp3",
        &[VIDEO_320, TONE_44K],
        &[
            "-c:v",
            "libx264",
            "-g",
            "30",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
        ],
    );
}

#[test]
fn video_only() {
    check("video_only", &[VIDEO_320], &["-c:v", "libx264", "-g", "30"]);
}

#[test]
fn audio_only() {
    check("audio_only", &[TONE_44K], &["-c:a", "aac"]);
}

#[test]
fn non_zero_start_timestamp() {
    check(
        "offset_start",
        &[VIDEO_320, TONE_44K],
        &[
            "-c:v",
            "libx264",
            "-bf",
            "2",
            "-c:a",
            "aac",
            "-output_ts_offset",
            "7.5",
        ],
    );
}

#[test]
fn sixty_fps_odd_size() {
    check(
        "60fps_854x480",
        &["testsrc2=size=854x480:rate=60"],
        &["-c:v", "libx264", "-preset", "ultrafast", "-g", "60"],
    );
}
