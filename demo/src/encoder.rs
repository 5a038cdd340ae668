//! The ffmpeg children that encode the test source, one per track, each writing to its stdout
//! with every packet flushed as soon as it is muxed:
//!
//! - video: raw `yuv420p` frames on stdin at the configured size and rate (paced by the
//!   caller) → H.264 from libx264 `ultrafast` / `zerolatency` (no lookahead, no frame
//!   threading: a frame in, a frame out) at a constant bitrate with a fixed GOP (`-g` =
//!   `-keyint_min`, no scene-cut keyframes) and no B-frames by default, in FLV;
//! - audio, `--audio-codec aac`: `s16le` stereo 48 kHz on stdin (the
//!   tone, paced by the caller) → AAC 128 kbit/s in FLV. AAC's 1024-sample frames and priming
//!   hand each packet over ~70 ms after its first sample was due, ~68 ms after the video of
//!   the same time;
//! - audio, `--audio-codec opus` (the default): the same samples as a streaming float WAV → Opus from
//!   libopus in low-delay mode (CELT only, 2.5 ms lookahead) with 10 ms frames, 128 kbit/s,
//!   in Ogg (ffmpeg 5.1 cannot write Opus in FLV: [`crate::ogg_opus`] makes the Enhanced
//!   RTMP tags). WAV rather than raw input because ffmpeg's raw demuxer reads 1024-sample
//!   blocks (21.3 ms), which would hold a 10 ms frame back by up to a block; the WAV demuxer
//!   with `-max_size` 3840 hands over each 10 ms chunk as it comes (`-ignore_length 1`: the
//!   header's sizes are "unknown"; float because for 16-bit PCM the demuxer first reads
//!   64 KiB looking for S/PDIF data, which held the first packets back ~350 ms).
//!   `-page_duration 1` (1 µs) puts every packet on a page of its own, flushed at once: a
//!   packet leaves ~10 ms after its last sample went in, ~22 ms after its first was due.
//!
//! Why two: one ffmpeg with both inputs sends a video packet only once the audio encoder has
//! output packets up to the same time (its transcoding loop serves the stream that is
//! furthest behind, and the FLV muxer interleaves by time), so every frame waited for the AAC
//! encoder's frame and delay and the input polling: ~110 ms measured here, against ~3 ms for
//! video alone. Apart, each track leaves as soon as it is encoded and the test source
//! interleaves them in arrival order (`publish`), as a live encoder should.

use std::fmt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::tone::ToneInput;

/// Frame size, `WxH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub width: usize,
    pub height: usize,
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (w, h) = s
            .split_once(['x', 'X'])
            .ok_or_else(|| format!("expected WIDTHxHEIGHT, got {s:?}"))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad size {s:?}"))
        };
        let size = Size {
            width: parse(w)?,
            height: parse(h)?,
        };
        if size.width == 0 || size.height == 0 || size.width % 2 != 0 || size.height % 2 != 0 {
            return Err(format!("{s}: width and height must be even and non-zero"));
        }
        if size.width > 7680 || size.height > 4320 {
            return Err(format!("{s}: larger than 7680x4320"));
        }
        Ok(size)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// A bitrate in bit/s, written `2M`, `2.5M`, `800k` or `2000000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bitrate(pub u64);

impl FromStr for Bitrate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (num, mult) = match t.chars().last() {
            Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
            Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
            _ => (t, 1.0),
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("bad bitrate {s:?} (try 2M or 800k)"))?;
        let bps = (v * mult).round();
        if !(10e3..=100e6).contains(&bps) {
            return Err(format!("bitrate {s} out of range (10k to 100M)"));
        }
        Ok(Bitrate(bps as u64))
    }
}

impl fmt::Display for Bitrate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the video encoder is told.
#[derive(Clone, Debug)]
pub struct Config {
    pub size: Size,
    pub fps: u32,
    pub bitrate: Bitrate,
    /// Keyframe interval in frames.
    pub gop_frames: u32,
    pub bframes: u32,
}

/// The audio track's codec (`--audio-codec`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AudioCodec {
    /// AAC in FLV (ffmpeg's native encoder): a packet is out ~70 ms after its first sample
    /// (1024-sample frames and priming)
    Aac,
    /// Opus with 10 ms frames (libopus, low delay) as Enhanced RTMP v2 audio, FourCC Opus: a
    /// packet is out ~22 ms after its first sample
    #[default]
    Opus,
}

impl AudioCodec {
    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::Aac => "AAC",
            AudioCodec::Opus => "Opus",
        }
    }
}

/// Bitrate of the audio track, kbit/s.
pub const AUDIO_KBPS: u32 = 128;

/// Arguments shared by both encoders: quiet, and no probing of the raw input (its format is
/// given; waiting to analyse it would hold the first packets back).
const COMMON: &str =
    "-hide_banner -nostdin -nostats -loglevel warning -probesize 32 -analyzeduration 0";

/// FLV on stdout, each packet written as soon as it is muxed.
const FLV_OUT: &str =
    "-flush_packets 1 -muxdelay 0 -muxpreload 0 -flvflags no_duration_filesize -f flv pipe:1";

/// Ogg on stdout, one page per packet (a page lasts at most 1 µs), each written at once.
const OGG_OUT: &str = "-flush_packets 1 -page_duration 1 -f ogg pipe:1";

fn split_args(a: &mut Vec<String>, args: &str) {
    a.extend(args.split_whitespace().map(str::to_string));
}

/// The video encoder's command line (without the program name).
pub fn video_args(cfg: &Config) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    split_args(&mut a, COMMON);
    split_args(
        &mut a,
        &format!(
            "-f rawvideo -pix_fmt yuv420p -video_size {} -framerate {} -i pipe:0",
            cfg.size, cfg.fps
        ),
    );
    // H.264 for low latency: no lookahead, no frame threads, CBR with a one-second buffer,
    // a keyframe exactly every GOP, no scene-cut keyframes.
    split_args(
        &mut a,
        "-map 0:v -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p",
    );
    let rate = cfg.bitrate;
    split_args(
        &mut a,
        &format!("-b:v {rate} -maxrate {rate} -bufsize {rate}"),
    );
    let gop = cfg.gop_frames;
    split_args(
        &mut a,
        &format!(
            "-g {gop} -keyint_min {gop} -sc_threshold 0 -bf {}",
            cfg.bframes
        ),
    );
    split_args(&mut a, &format!("-an {FLV_OUT}"));
    a
}

/// The audio encoder's command line: [`crate::tone`]'s samples in (after
/// [`audio_input`]'s header), `codec` out: AAC in FLV, or Opus in Ogg.
pub fn audio_args(codec: AudioCodec) -> Vec<String> {
    use crate::tone::{CHANNELS, SAMPLE_RATE};
    let mut a: Vec<String> = Vec::new();
    split_args(&mut a, COMMON);
    match codec {
        AudioCodec::Aac => {
            let layout = if CHANNELS == 2 { "stereo" } else { "mono" };
            split_args(
                &mut a,
                &format!("-f s16le -ar {SAMPLE_RATE} -ch_layout {layout} -i pipe:0"),
            );
            split_args(
                &mut a,
                &format!("-map 0:a -c:a aac -b:a {AUDIO_KBPS}k -vn {FLV_OUT}"),
            );
        }
        AudioCodec::Opus => {
            // One input packet per 10 ms chunk, as written (see the module comment).
            split_args(
                &mut a,
                &format!(
                    "-f wav -ignore_length 1 -max_size {} -i pipe:0",
                    ToneInput::WavF32.chunk_bytes()
                ),
            );
            split_args(
                &mut a,
                &format!(
                    "-map 0:a -c:a libopus -application lowdelay -frame_duration 10 -b:a {AUDIO_KBPS}k -vn {OGG_OUT}"
                ),
            );
        }
    }
    a
}

/// How the tone reaches the audio encoder: raw `s16le` for AAC, float WAV for Opus.
pub fn audio_input(codec: AudioCodec) -> ToneInput {
    match codec {
        AudioCodec::Aac => ToneInput::RawS16,
        AudioCodec::Opus => ToneInput::WavF32,
    }
}

/// Starts ffmpeg with `args`, stdin and stdout piped, stderr inherited. On Linux ffmpeg gets
/// SIGTERM if this process dies.
pub fn spawn(args: &[String]) -> std::io::Result<Child> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.spawn()
}

/// Waits up to `limit` for `child` to exit.
fn wait_for(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asks ffmpeg to finish (SIGTERM: it writes its trailer and exits), waiting up to `grace`
/// before killing it. Returns its exit status.
pub fn stop(child: &mut Child, grace: Duration) -> std::io::Result<ExitStatus> {
    drop(child.stdin.take());
    // After a Ctrl-C in a terminal ffmpeg has had the SIGINT too and is finishing: a second
    // signal would make it abandon its output, so give it a moment first.
    if let Some(status) = wait_for(child, Duration::from_millis(300))? {
        return Ok(status);
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: plain syscall on our own, not yet reaped, child.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    if let Some(status) = wait_for(child, grace)? {
        return Ok(status);
    }
    child.kill()?;
    child.wait()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            size: "640x360".parse().unwrap(),
            fps: 30,
            bitrate: "2M".parse().unwrap(),
            gop_frames: 30,
            bframes: 0,
        }
    }

    fn has(args: &[String], pair: &[&str]) -> bool {
        args.windows(pair.len()).any(|w| w == pair)
    }

    #[test]
    fn parses_options() {
        assert_eq!(
            "1280x720".parse::<Size>(),
            Ok(Size {
                width: 1280,
                height: 720
            })
        );
        assert!("641x360".parse::<Size>().is_err());
        assert!("640".parse::<Size>().is_err());
        assert_eq!("2M".parse::<Bitrate>(), Ok(Bitrate(2_000_000)));
        assert_eq!("2.5m".parse::<Bitrate>(), Ok(Bitrate(2_500_000)));
        assert_eq!("800k".parse::<Bitrate>(), Ok(Bitrate(800_000)));
        assert_eq!("500000".parse::<Bitrate>(), Ok(Bitrate(500_000)));
        assert!("fast".parse::<Bitrate>().is_err());
        assert!("1".parse::<Bitrate>().is_err());
    }

    #[test]
    fn video_command_line() {
        let a = video_args(&cfg());
        assert!(has(
            &a,
            &["-video_size", "640x360", "-framerate", "30", "-i", "pipe:0"]
        ));
        assert!(has(&a, &["-preset", "ultrafast", "-tune", "zerolatency"]));
        assert!(has(
            &a,
            &[
                "-g",
                "30",
                "-keyint_min",
                "30",
                "-sc_threshold",
                "0",
                "-bf",
                "0"
            ]
        ));
        assert!(has(&a, &["-b:v", "2000000"]));
        assert!(has(&a, &["-flush_packets", "1"]));
        assert!(has(&a, &["-an"]));
        assert!(has(&a, &["-f", "flv", "pipe:1"]));
    }

    #[test]
    fn audio_command_line() {
        let a = audio_args(AudioCodec::Aac);
        assert!(has(
            &a,
            &[
                "-f",
                "s16le",
                "-ar",
                "48000",
                "-ch_layout",
                "stereo",
                "-i",
                "pipe:0"
            ]
        ));
        assert!(has(&a, &["-c:a", "aac", "-b:a", "128k"]));
        assert!(has(&a, &["-f", "flv", "pipe:1"]));
        assert!(!a.iter().any(|s| s == "libx264"));
    }

    #[test]
    fn aac_command_line_is_unchanged() {
        assert_eq!(
            audio_args(AudioCodec::Aac).join(" "),
            "-hide_banner -nostdin -nostats -loglevel warning -probesize 32 -analyzeduration 0 \
             -f s16le -ar 48000 -ch_layout stereo -i pipe:0 -map 0:a -c:a aac -b:a 128k -vn \
             -flush_packets 1 -muxdelay 0 -muxpreload 0 -flvflags no_duration_filesize -f flv pipe:1"
        );
        assert_eq!(audio_input(AudioCodec::Aac), ToneInput::RawS16);
    }

    #[test]
    fn opus_command_line() {
        let a = audio_args(AudioCodec::Opus);
        assert!(has(&a, &["-probesize", "32", "-analyzeduration", "0"]));
        assert!(has(
            &a,
            &[
                "-f",
                "wav",
                "-ignore_length",
                "1",
                "-max_size",
                "3840",
                "-i",
                "pipe:0"
            ]
        ));
        assert!(has(
            &a,
            &[
                "-c:a",
                "libopus",
                "-application",
                "lowdelay",
                "-frame_duration",
                "10",
                "-b:a",
                "128k"
            ]
        ));
        assert!(has(
            &a,
            &[
                "-flush_packets",
                "1",
                "-page_duration",
                "1",
                "-f",
                "ogg",
                "pipe:1"
            ]
        ));
        assert!(!a.iter().any(|s| s == "s16le" || s == "flv" || s == "aac"));
        assert_eq!(audio_input(AudioCodec::Opus), ToneInput::WavF32);
    }
}
