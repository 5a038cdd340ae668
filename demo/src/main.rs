//! `lockstep-test-source`: a live test stream for measuring glass-to-glass latency.
//!
//! Renders a moving picture, burns the Unix time (ms) at which each frame is handed to the
//! encoder into it as a barcode (docs/BARCODE.md), and feeds the frames to an ffmpeg child
//! that encodes them for low latency and publishes to a relay over RTMP or HTTP `PUT`.
//!
//! The pacing loop runs on an absolute schedule (frame `k` is due at `start + k / fps`, so
//! there is no drift). Frames go to a writer thread over a rendezvous channel: a frame is
//! handed over only when the writer is idle, and is stamped at that moment, just before its
//! write starts; when ffmpeg has not taken the previous frame within half a period of the
//! slot, the frame is dropped (and counted) rather than delaying the ones after it. The source stops cleanly on SIGINT / SIGTERM, at `--duration`, or when
//! ffmpeg exits, and says which.
//!
//! `--read FILE` instead decodes the barcode of every raw `yuv420p` frame in FILE (`-` for
//! stdin), e.g. `ffmpeg -i http://HOST/live/NAME.flv -frames:v 1 -f rawvideo -pix_fmt yuv420p -`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;
use lockstep_demo::barcode;
use lockstep_demo::encoder::{self, Bitrate, Config, Output, Size};
use lockstep_demo::picture::{Picture, I420};

/// Publish a live test stream (moving picture, wall-clock barcode, beeping tone) to a
/// Lockstep relay, encoded by ffmpeg for low latency.
#[derive(Parser, Debug)]
#[command(name = "lockstep-test-source", version)]
struct Cli {
    /// Where to publish: rtmp://HOST:1935/live/NAME?key=KEY or
    /// http://HOST:8080/ingest/NAME?key=KEY
    #[arg(long, required_unless_present = "read")]
    url: Option<Output>,
    /// Frame size WIDTHxHEIGHT (the barcode needs width ≥ 23·floor(height/15): 16:9 is fine)
    #[arg(long, default_value = "640x360")]
    size: Size,
    /// Frames per second
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=120))]
    fps: u32,
    /// Video bitrate (CBR), e.g. 2M, 800k
    #[arg(long, default_value = "2M")]
    bitrate: Bitrate,
    /// Keyframe interval in seconds
    #[arg(long, default_value_t = 1.0)]
    gop_seconds: f64,
    /// B-frames (0 for the least latency)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=16))]
    bframes: u32,
    /// No audio track
    #[arg(long)]
    no_audio: bool,
    /// Tone frequency in Hz (with a beep at twice the pitch at the start of every second)
    #[arg(long, default_value_t = 440, value_parser = clap::value_parser!(u32).range(20..=20000))]
    tone: u32,
    /// Stop after this many seconds (0: run until stopped)
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Instead of publishing, read the barcodes of the raw yuv420p frames (of --size) in
    /// FILE ("-": stdin) and print each time and its age
    #[arg(long, value_name = "FILE", conflicts_with = "url")]
    read: Option<PathBuf>,
}

/// The signal that asked us to stop (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Why the source stopped.
enum Stop {
    Signal(i32),
    Duration,
    FfmpegExited(ExitStatus),
    WriteFailed(std::io::Error),
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn main() -> ExitCode {
    match run_cli(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lockstep-test-source: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli(cli: Cli) -> Result<()> {
    let (w, h) = (cli.size.width, cli.size.height);
    if !barcode::fits(w, h) {
        bail!(
            "--size {}: too small or too narrow for the barcode (needs width ≥ 23·floor(height/15), height ≥ 30; e.g. 640x360, 1280x720)",
            cli.size
        );
    }
    if let Some(path) = &cli.read {
        return read_barcodes(path, w, h);
    }
    if !(cli.gop_seconds > 0.0 && cli.gop_seconds <= 60.0) {
        bail!("--gop-seconds must be in (0, 60]");
    }
    if !(cli.duration >= 0.0 && cli.duration.is_finite()) {
        bail!("--duration must be ≥ 0");
    }
    let output = cli.url.clone().context("--url is required")?;
    let config = Config {
        size: cli.size,
        fps: cli.fps,
        bitrate: cli.bitrate,
        gop_frames: ((cli.gop_seconds * f64::from(cli.fps)).round() as u32).max(1),
        bframes: cli.bframes,
        tone_hz: (!cli.no_audio).then_some(cli.tone),
        output,
    };

    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches an atomic, which is async-signal-safe.
        unsafe {
            signal_hook_registry::register(sig, move || {
                // Keep the first: Ctrl-C reaches us, then the demo script's SIGTERM.
                let _ = SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
            })
        }
        .context("installing the signal handlers")?;
    }

    let mut child = encoder::spawn(&config).context("starting ffmpeg (is it installed?)")?;
    let stdin = child.stdin.take().context("ffmpeg stdin")?;
    println!(
        "lockstep-test-source: {} at {} fps, {} bit/s, GOP {} frames, {} B-frames, {} -> {}",
        config.size,
        config.fps,
        config.bitrate,
        config.gop_frames,
        config.bframes,
        config
            .tone_hz
            .map_or("no audio".to_string(), |hz| format!("{hz} Hz tone")),
        config.output.redacted()
    );
    let _ = std::io::stdout().flush();

    let (stop, stats, writer) = run(&cli, &config, &mut child, stdin);
    let status = encoder::stop(&mut child, Duration::from_secs(5));
    // With ffmpeg gone, a write in progress fails at once, so this does not hang.
    let _ = writer.join();
    let summary = format!(
        "{} frames written, {} dropped, {:.1} s",
        stats.written,
        stats.dropped,
        stats.elapsed.as_secs_f64()
    );
    match stop {
        Stop::Signal(sig) => {
            let name = if sig == libc::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            println!("lockstep-test-source: stopped by {name} ({summary})");
            Ok(())
        }
        Stop::Duration => {
            println!("lockstep-test-source: --duration reached ({summary})");
            Ok(())
        }
        Stop::FfmpegExited(status) => {
            bail!("ffmpeg exited ({status}) ({summary}); see its messages above")
        }
        Stop::WriteFailed(e) => {
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            bail!("writing to ffmpeg failed: {e}; ffmpeg: {status} ({summary})")
        }
    }
}

struct Stats {
    written: u64,
    dropped: u64,
    elapsed: Duration,
}

/// The pacing loop: renders, stamps and hands over a frame per slot until told to stop.
fn run(
    cli: &Cli,
    config: &Config,
    child: &mut std::process::Child,
    mut stdin: std::process::ChildStdin,
) -> (Stop, Stats, thread::JoinHandle<()>) {
    let (w, h) = (config.size.width, config.size.height);
    let fps = u64::from(config.fps);
    // Rendezvous: try_send succeeds only when the writer is waiting, i.e. idle.
    let (to_writer, from_pacer) = mpsc::sync_channel::<I420>(0);
    let (give_back, recycled) = mpsc::channel::<I420>();
    let (write_err_tx, write_err) = mpsc::channel::<std::io::Error>();
    let writer = thread::Builder::new()
        .name("ffmpeg-writer".into())
        .spawn(move || {
            for frame in from_pacer {
                if let Err(e) = stdin.write_all(frame.data()) {
                    let _ = write_err_tx.send(e);
                    return;
                }
                let _ = give_back.send(frame);
            }
        })
        .expect("spawning the writer thread");

    let mut picture = Picture::new(w, h, config.fps);
    let mut spare: Vec<I420> = Vec::new();
    let start = Instant::now();
    let start_unix = unix_ms();
    let due = |k: u64| start + Duration::from_nanos(k * 1_000_000_000 / fps);
    let period = Duration::from_nanos(1_000_000_000 / fps);
    let limit = (cli.duration > 0.0).then(|| Duration::from_secs_f64(cli.duration));
    let (mut k, mut written, mut dropped) = (0u64, 0u64, 0u64);
    let mut next_report = start + Duration::from_secs(10);

    let stop = loop {
        let sig = SIGNAL.load(Ordering::SeqCst);
        if sig != 0 {
            break Stop::Signal(sig);
        }
        if let Ok(e) = write_err.try_recv() {
            // Prefer ffmpeg's own exit, which explains the broken pipe.
            thread::sleep(Duration::from_millis(200));
            match child.try_wait() {
                Ok(Some(status)) => break Stop::FfmpegExited(status),
                _ => break Stop::WriteFailed(e),
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => break Stop::FfmpegExited(status),
            Ok(None) => {}
            Err(e) => break Stop::WriteFailed(e),
        }
        let now = Instant::now();
        if limit.is_some_and(|l| now - start >= l) {
            break Stop::Duration;
        }
        if now >= next_report {
            println!(
                "lockstep-test-source: {:.0} s, {written} frames written, {dropped} dropped",
                (now - start).as_secs_f64()
            );
            let _ = std::io::stdout().flush();
            next_report += Duration::from_secs(10);
        }

        // If whole slots have already gone by (a stall), they are dropped: resume at the
        // current slot instead of bursting to catch up.
        let late = ((now - start).as_nanos() as u64).saturating_mul(fps) / 1_000_000_000;
        if late > k {
            dropped += late - k;
            k = late;
        }

        while let Ok(f) = recycled.try_recv() {
            spare.push(f);
        }
        let mut frame = spare.pop().unwrap_or_else(|| I420::new(w, h));
        let slot = due(k);
        picture.render(
            &mut frame,
            written,
            start_unix + (slot - start).as_millis() as u64,
        );

        // Sleep until the slot, waking at least every 50 ms to notice a signal.
        loop {
            let now = Instant::now();
            if now >= slot || SIGNAL.load(Ordering::SeqCst) != 0 {
                break;
            }
            thread::sleep((slot - now).min(Duration::from_millis(50)));
        }
        if SIGNAL.load(Ordering::SeqCst) != 0 {
            continue;
        }

        // Hand the frame over as soon as the writer is free, stamped at that moment; if it
        // is still busy half a period after the slot, drop the frame so the next one is on
        // time.
        let give_up = slot + period / 2;
        loop {
            barcode::encode(&mut frame, unix_ms());
            match to_writer.try_send(frame) {
                Ok(()) => {
                    written += 1;
                    break;
                }
                Err(TrySendError::Full(f)) if Instant::now() < give_up => {
                    frame = f;
                    thread::sleep(Duration::from_micros(500));
                }
                Err(TrySendError::Full(f)) => {
                    dropped += 1;
                    spare.push(f);
                    break;
                }
                Err(TrySendError::Disconnected(f)) => {
                    // The writer failed; the error is picked up at the top of the loop.
                    spare.push(f);
                    thread::sleep(Duration::from_millis(10));
                    break;
                }
            }
        }
        k += 1;
    };
    let elapsed = start.elapsed();
    // The writer ends when its current write completes, or fails once ffmpeg is stopped.
    drop(to_writer);
    let stats = Stats {
        written,
        dropped,
        elapsed,
    };
    (stop, stats, writer)
}

/// `--read`: decodes the barcode of every frame in `path` and prints its time and age.
fn read_barcodes(path: &PathBuf, w: usize, h: usize) -> Result<()> {
    let mut data = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut data)?;
    } else {
        data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    }
    let frame_len = w * h + 2 * (w.div_ceil(2) * h.div_ceil(2));
    if data.len() < w * h {
        bail!(
            "{}: {} bytes, less than one {w}x{h} frame ({frame_len} bytes)",
            path.display(),
            data.len()
        );
    }
    let now = unix_ms();
    let mut ok = 0;
    for (i, frame) in data.chunks(frame_len).enumerate() {
        match barcode::decode(frame, w, h) {
            Ok(t32) => {
                let t = barcode::full_time(t32, now);
                let secs = (t / 1000) % 86_400;
                println!(
                    "frame {i}: t={t} ({:02}:{:02}:{:02}.{:03} UTC), age {} ms",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60,
                    t % 1000,
                    now as i64 - t as i64
                );
                ok += 1;
            }
            Err(e) => println!("frame {i}: no barcode: {e}"),
        }
    }
    if ok == 0 {
        bail!("no frame with a readable barcode");
    }
    Ok(())
}
