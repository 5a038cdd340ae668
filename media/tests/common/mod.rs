//! Test support: FLV files made by ffmpeg at test time, and ffprobe read-outs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh directory for one test's files, under the target directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Runs ffmpeg with `args` (after `-y -v error`), panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-v", "error"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed (run tests/setup.sh)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 2 s 320x240 30 fps H.264 + 44.1 kHz AAC FLV made by ffmpeg, with `video_args` for the
/// encoder (profile, B-frames, GOP); `name` names its scratch directory.
pub fn make_av_flv(name: &str, video_args: &[&str]) -> bytes::Bytes {
    let dir = scratch_dir(name);
    let path = dir.join("src.flv");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "2",
        "-c:v",
        "libx264",
    ];
    args.extend_from_slice(video_args);
    args.extend([
        "-c:a",
        "aac",
        "-f",
        "flv",
        path.to_str().expect("utf-8 path"),
    ]);
    ffmpeg(&args);
    bytes::Bytes::from(std::fs::read(&path).expect("read the FLV"))
}

/// One packet as ffprobe reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub stream: String,
    pub pts_ms: f64,
    pub dts_ms: f64,
    pub key: bool,
    pub size: usize,
}

/// Stream facts as ffprobe reports them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamInfo {
    pub codec_type: String,
    pub codec_name: String,
    pub profile: String,
    pub width: String,
    pub height: String,
    pub sample_rate: String,
    pub channels: String,
}

fn ffprobe(path: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "compact=p=0:nk=0"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe must be installed (run tests/setup.sh)");
    assert!(
        out.status.success(),
        "ffprobe {path:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fields(line: &str) -> impl Iterator<Item = (&str, &str)> {
    line.split('|').filter_map(|kv| kv.split_once('='))
}

pub fn packets(path: &Path) -> Vec<Packet> {
    let text = ffprobe(
        path,
        &[
            "-show_entries",
            "packet=codec_type,pts_time,dts_time,flags,size",
        ],
    );
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut p = Packet {
                stream: String::new(),
                pts_ms: f64::NAN,
                dts_ms: f64::NAN,
                key: false,
                size: 0,
            };
            for (k, v) in fields(line) {
                match k {
                    "codec_type" => p.stream = v.to_string(),
                    "pts_time" => p.pts_ms = v.parse::<f64>().unwrap_or(f64::NAN) * 1000.0,
                    "dts_time" => p.dts_ms = v.parse::<f64>().unwrap_or(f64::NAN) * 1000.0,
                    "flags" => p.key = v.starts_with('K'),
                    "size" => p.size = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
            p
        })
        .collect()
}

pub fn streams(path: &Path) -> Vec<StreamInfo> {
    let text = ffprobe(
        path,
        &[
            "-show_entries",
            "stream=codec_type,codec_name,profile,width,height,sample_rate,channels",
        ],
    );
    let mut out: Vec<StreamInfo> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut s = StreamInfo::default();
            for (k, v) in fields(line) {
                let v = v.to_string();
                match k {
                    "codec_type" => s.codec_type = v,
                    "codec_name" => s.codec_name = v,
                    "profile" => s.profile = v,
                    "width" => s.width = v,
                    "height" => s.height = v,
                    "sample_rate" => s.sample_rate = v,
                    "channels" => s.channels = v,
                    _ => {}
                }
            }
            s
        })
        .collect();
    out.sort_by(|a, b| b.codec_type.cmp(&a.codec_type));
    out
}

/// What `ffmpeg -v error -i PATH -f null -` prints: decode errors, if any.
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg must be installed");
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        s.push_str(&format!("\n(exit status {})", out.status));
    }
    s
}
