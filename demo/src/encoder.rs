//! The ffmpeg child that encodes and publishes the test source.
//!
//! Raw `yuv420p` frames arrive on ffmpeg's stdin at the configured size and rate (paced by
//! the caller); a `sine` tone with a beep once a second (`beep_factor`, lined up with the
//! picture's flash) comes from lavfi, paced by `-re`. Video is H.264 from libx264
//! `ultrafast` / `zerolatency` (no lookahead, no frame threading: a frame in, a frame out) at
//! a constant bitrate with a fixed GOP (`-g` = `-keyint_min`, no scene-cut keyframes) and no
//! B-frames by default; audio AAC 128 kbit/s. The FLV output goes to an RTMP URL or is `PUT`
//! to the relay's HTTP ingest, flushed packet by packet with no muxing delay.

use std::fmt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

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

/// Where the FLV stream goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// `rtmp://HOST:PORT/live/NAME?key=KEY`
    Rtmp(String),
    /// `http://HOST:PORT/ingest/NAME?key=KEY`, sent with `PUT`.
    Http(String),
}

impl FromStr for Output {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("rtmp://") || lower.starts_with("rtmps://") {
            Ok(Output::Rtmp(s.to_string()))
        } else if lower.starts_with("http://") || lower.starts_with("https://") {
            Ok(Output::Http(s.to_string()))
        } else {
            Err(format!(
                "{s:?}: expected rtmp://HOST:1935/live/NAME?key=KEY or http://HOST:8080/ingest/NAME?key=KEY"
            ))
        }
    }
}

impl Output {
    /// The URL with any `key=` value hidden, for messages.
    pub fn redacted(&self) -> String {
        let (Output::Rtmp(url) | Output::Http(url)) = self;
        match url.find("key=") {
            Some(i) => {
                let end = url[i..].find('&').map_or(url.len(), |j| i + j);
                format!("{}key=***{}", &url[..i], &url[end..])
            }
            None => url.clone(),
        }
    }
}

/// What ffmpeg is told.
#[derive(Clone, Debug)]
pub struct Config {
    pub size: Size,
    pub fps: u32,
    pub bitrate: Bitrate,
    /// Keyframe interval in frames.
    pub gop_frames: u32,
    pub bframes: u32,
    /// Tone frequency in Hz; `None`: no audio track.
    pub tone_hz: Option<u32>,
    pub output: Output,
}

/// The ffmpeg command line for `cfg` (without the program name).
pub fn ffmpeg_args(cfg: &Config) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    // Whitespace-separated arguments (none of the generated values holds a space).
    let mut push = |args: &str| a.extend(args.split_whitespace().map(str::to_string));
    push("-hide_banner -nostdin -nostats -loglevel warning");
    // Video: raw frames on stdin, paced by the caller, each read as it arrives. No analysis
    // beyond the first frame (`-fflags nobuffer` here would throw that frame away).
    push("-probesize 32 -analyzeduration 0");
    push(&format!(
        "-f rawvideo -pix_fmt yuv420p -video_size {} -framerate {} -i pipe:0",
        cfg.size, cfg.fps
    ));
    if let Some(hz) = cfg.tone_hz {
        // A tone with a beep (twice the pitch, 40 ms) at the start of every second, read in
        // real time.
        push(&format!(
            "-re -fflags nobuffer -f lavfi -i sine=frequency={hz}:beep_factor=2:sample_rate=48000"
        ));
        push("-map 0:v -map 1:a");
    } else {
        push("-map 0:v");
    }
    // H.264 for low latency: no lookahead, no frame threads, CBR with a one-second buffer,
    // a keyframe exactly every GOP, no scene-cut keyframes.
    push("-c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p");
    let rate = cfg.bitrate;
    push(&format!("-b:v {rate} -maxrate {rate} -bufsize {rate}"));
    let gop = cfg.gop_frames;
    push(&format!(
        "-g {gop} -keyint_min {gop} -sc_threshold 0 -bf {}",
        cfg.bframes
    ));
    if cfg.tone_hz.is_some() {
        push("-c:a aac -b:a 128k -ar 48000 -ac 2");
    } else {
        push("-an");
    }
    // Write every packet as soon as it is muxed. Interleaving by timestamp would hold each
    // video packet until an audio packet with a later timestamp exists, i.e. for the AAC
    // encoder's delay (~45 ms measured): a 1 µs limit lets a packet go as soon as any other
    // packet follows it. The relay and players take each track's timestamps as they come.
    push("-flush_packets 1 -muxdelay 0 -muxpreload 0 -max_interleave_delta 1");
    push("-flvflags no_duration_filesize -f flv");
    // No Nagle delay on the publishing connection (RTMP, and the TCP under HTTP).
    push("-tcp_nodelay 1");
    match &cfg.output {
        Output::Rtmp(url) => a.push(url.clone()),
        Output::Http(url) => a.extend(["-method".into(), "PUT".into(), url.clone()]),
    }
    a
}

/// Starts ffmpeg for `cfg` with stdin piped (write frames to `child.stdin`), stdout
/// discarded and stderr inherited. On Linux ffmpeg gets SIGTERM if this process dies.
pub fn spawn(cfg: &Config) -> std::io::Result<Child> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(ffmpeg_args(cfg))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
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

    fn cfg(output: &str, tone: Option<u32>) -> Config {
        Config {
            size: "640x360".parse().unwrap(),
            fps: 30,
            bitrate: "2M".parse().unwrap(),
            gop_frames: 30,
            bframes: 0,
            tone_hz: tone,
            output: output.parse().unwrap(),
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
        assert!("ftp://x".parse::<Output>().is_err());
    }

    #[test]
    fn redacts_keys() {
        let o: Output = "rtmp://h:1935/live/demo?key=secret".parse().unwrap();
        assert_eq!(o.redacted(), "rtmp://h:1935/live/demo?key=***");
        let o: Output = "http://h/ingest/x?key=s&a=b".parse().unwrap();
        assert_eq!(o.redacted(), "http://h/ingest/x?key=***&a=b");
    }

    #[test]
    fn rtmp_command_line() {
        let a = ffmpeg_args(&cfg("rtmp://127.0.0.1:1935/live/demo?key=k", Some(440)));
        assert!(has(
            &a,
            &["-video_size", "640x360", "-framerate", "30", "-i", "pipe:0"]
        ));
        assert!(a.contains(&"sine=frequency=440:beep_factor=2:sample_rate=48000".to_string()));
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
        assert!(has(&a, &["-c:a", "aac", "-b:a", "128k"]));
        assert!(has(&a, &["-flush_packets", "1"]));
        assert!(has(&a, &["-tcp_nodelay", "1"]));
        assert!(has(&a, &["-f", "flv", "-tcp_nodelay", "1"]));
        assert_eq!(a.last().unwrap(), "rtmp://127.0.0.1:1935/live/demo?key=k");
        assert!(!a.contains(&"-method".to_string()));
    }

    #[test]
    fn http_command_line_without_audio() {
        let a = ffmpeg_args(&cfg("http://127.0.0.1:8080/ingest/demo?key=k", None));
        assert!(has(
            &a,
            &["-method", "PUT", "http://127.0.0.1:8080/ingest/demo?key=k"]
        ));
        assert!(a.contains(&"-an".to_string()));
        assert!(!a.iter().any(|s| s.starts_with("sine=")));
    }
}
