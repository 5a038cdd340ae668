//! `lockstep-test-source`: a live test stream for measuring glass-to-glass latency.
//!
//! Renders a moving picture, burns the Unix time (ms) at which each frame is handed to the
//! encoder into it as a barcode (docs/BARCODE.md), and feeds the frames to an ffmpeg child
//! that encodes them for low latency; a tone goes to a second ffmpeg (`--audio-codec`: AAC in
//! FLV, or Opus in Ogg, whose packets the source makes into Enhanced RTMP v2 audio tags); the
//! encoded tags of both are published to a relay over RTMP or HTTP `PUT` as they come out
//! (the threads around the pacer are in `workers.rs`, the encoders in `encoder.rs`).
//!
//! The pacing loop runs on an absolute schedule (frame `k` is due at `start + k / fps`, so
//! there is no drift). Frames go to a writer thread over a rendezvous channel: a frame is
//! handed over only when the writer is idle, and is stamped at that moment, just before its
//! write starts; when ffmpeg has not taken the previous frame within half a period of the
//! slot, the frame is dropped (and counted) rather than delaying the ones after it. The
//! source stops cleanly on SIGINT / SIGTERM, at `--duration`, when an encoder exits or when
//! the relay refuses or drops the stream, and says which.
//!
//! `--read FILE` instead decodes the barcode of every raw `yuv420p` frame in FILE (`-` for
//! stdin), e.g. `ffmpeg -i http://HOST/live/NAME.flv -frames:v 1 -f rawvideo -pix_fmt yuv420p -`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;
use lockstep_demo::barcode;
use lockstep_demo::encoder::{self, AudioCodec, Bitrate, Config, Size};
use lockstep_demo::picture::{Picture, I420};
use lockstep_demo::publish::{AudioInfo, Output, Publisher, StreamInfo};
use lockstep_demo::tone::{self, Tone};
use lockstep_demo::workers::{
    join_within, publish, read_encoder, read_ogg_opus, write_tone, Failure, FromEncoder, Published,
};
use lockstep_media::flv::TagKind;

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
    /// Audio codec of the tone: opus (10 ms frames as Enhanced RTMP audio, for Lockstep: the
    /// least delay) or aac (for servers and players that only know classic FLV audio)
    #[arg(long, value_enum, default_value_t = AudioCodec::Opus, conflicts_with = "no_audio")]
    audio_codec: AudioCodec,
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
    Failed(String),
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
    };
    let tone = (!cli.no_audio).then(|| Tone::new(cli.tone));

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

    let info = StreamInfo {
        width: w as u32,
        height: h as u32,
        fps: config.fps,
        video_kbps: (config.bitrate.0 / 1000) as u32,
        audio: tone.is_some().then_some(AudioInfo {
            codec: cli.audio_codec,
            sample_rate: tone::SAMPLE_RATE,
            channels: tone::CHANNELS,
            kbps: encoder::AUDIO_KBPS,
        }),
    };
    let publisher = Publisher::connect(&output, &info)
        .with_context(|| format!("publishing to {}", output.redacted()))?;
    let mut encoders = Encoders::start(&config, tone.is_some().then_some(cli.audio_codec))?;
    println!(
        "lockstep-test-source: {} at {} fps, {} bit/s, GOP {} frames, {} B-frames, {} -> {}",
        config.size,
        config.fps,
        config.bitrate,
        config.gop_frames,
        config.bframes,
        tone.as_ref().map_or("no audio".to_string(), |_| format!(
            "{} Hz tone ({})",
            cli.tone,
            cli.audio_codec.name()
        )),
        output.redacted()
    );
    let _ = std::io::stdout().flush();

    let (stop, stats) = run(&cli, &config, &mut encoders, tone, publisher);
    let summary = format!(
        "{} frames written, {} dropped, {} video and {} audio tags published, {:.1} s",
        stats.written,
        stats.dropped,
        stats.published.video,
        stats.published.audio,
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
        Stop::Failed(why) => bail!("{why} ({summary})"),
    }
}

/// The encoder children.
struct Encoders {
    video: Child,
    audio: Option<Child>,
}

impl Encoders {
    /// Starts the video encoder and, with a codec, the audio encoder.
    fn start(config: &Config, audio: Option<AudioCodec>) -> Result<Self> {
        let video = encoder::spawn(&encoder::video_args(config))
            .context("starting ffmpeg (is it installed?)")?;
        let mut encoders = Encoders { video, audio: None };
        if let Some(codec) = audio {
            encoders.audio = Some(
                encoder::spawn(&encoder::audio_args(codec)).context("starting the audio ffmpeg")?,
            );
        }
        Ok(encoders)
    }

    /// Which encoder has exited, and how.
    fn exited(&mut self) -> Option<String> {
        let video = match self.video.try_wait() {
            Ok(Some(status)) => Some(format!("the video ffmpeg exited ({status})")),
            Ok(None) => None,
            Err(e) => Some(format!("the video ffmpeg: {e}")),
        };
        video.or_else(|| match self.audio.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(format!("the audio ffmpeg exited ({status})")),
            Some(Err(e)) => Some(format!("the audio ffmpeg: {e}")),
            _ => None,
        })
    }

    /// Stops both (their stdin is already closed, or closes now).
    fn stop(&mut self) {
        let grace = Duration::from_secs(5);
        let _ = encoder::stop(&mut self.video, grace);
        if let Some(a) = self.audio.as_mut() {
            let _ = encoder::stop(a, grace);
        }
    }
}

struct Stats {
    written: u64,
    dropped: u64,
    published: Published,
    elapsed: Duration,
}

/// Starts the tone, the readers and the publisher, then paces frames (renders, stamps and
/// hands over a frame per slot) until told to stop; then stops everything.
fn run(
    cli: &Cli,
    config: &Config,
    encoders: &mut Encoders,
    tone: Option<Tone>,
    publisher: Publisher,
) -> (Stop, Stats) {
    let (w, h) = (config.size.width, config.size.height);
    let fps = u64::from(config.fps);
    let (failed_tx, failed) = mpsc::channel::<Failure>();
    let (to_publisher, from_encoders) = mpsc::channel::<FromEncoder>();
    let (slot_tx, slots) = mpsc::channel::<(u64, u64)>();
    let done = Arc::new(AtomicBool::new(false));

    let mut readers = vec![read_encoder(
        "video",
        encoders.video.stdout.take().expect("video ffmpeg stdout"),
        TagKind::Video,
        to_publisher.clone(),
    )];
    let start = Instant::now();
    let start_unix = unix_ms();
    let mut tone_writer = None;
    if let (Some(tone), Some(audio)) = (tone, encoders.audio.as_mut()) {
        let out = audio.stdout.take().expect("audio ffmpeg stdout");
        readers.push(match cli.audio_codec {
            AudioCodec::Aac => read_encoder("audio", out, TagKind::Audio, to_publisher.clone()),
            AudioCodec::Opus => read_ogg_opus("audio", out, to_publisher.clone()),
        });
        let stdin = audio.stdin.take().expect("audio ffmpeg stdin");
        tone_writer = Some(write_tone(
            tone,
            encoder::audio_input(cli.audio_codec),
            stdin,
            start,
            done.clone(),
            failed_tx.clone(),
        ));
    }
    drop(to_publisher);
    let publisher = publish(
        publisher,
        config.fps,
        cli.audio_codec,
        readers.len(),
        from_encoders,
        slots,
        failed_tx.clone(),
    );

    // Video frames go to a writer thread over a rendezvous channel: try_send succeeds only
    // when the writer is waiting, i.e. idle.
    let mut stdin = encoders.video.stdin.take().expect("video ffmpeg stdin");
    let (to_writer, from_pacer) = mpsc::sync_channel::<I420>(0);
    let (give_back, recycled) = mpsc::channel::<I420>();
    let writer = {
        let failed_tx = failed_tx.clone();
        thread::Builder::new()
            .name("ffmpeg-writer".into())
            .spawn(move || {
                for frame in from_pacer {
                    if let Err(e) = stdin.write_all(frame.data()) {
                        let _ = failed_tx.send(Failure::Encoder(format!(
                            "writing to the video ffmpeg: {e}"
                        )));
                        return;
                    }
                    let _ = give_back.send(frame);
                }
            })
            .expect("spawning the writer thread")
    };
    drop(failed_tx);

    let mut picture = Picture::new(w, h, config.fps);
    let mut spare: Vec<I420> = Vec::new();
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
        match failed.try_recv() {
            Ok(Failure::Publish(why)) => break Stop::Failed(why),
            Ok(Failure::Encoder(why)) => {
                // Prefer the encoder's own exit, which explains a broken pipe.
                thread::sleep(Duration::from_millis(200));
                break Stop::Failed(encoders.exited().unwrap_or(why));
            }
            Err(_) => {}
        }
        if let Some(why) = encoders.exited() {
            break Stop::Failed(format!("{why}; see its messages above"));
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
            k,
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
                    let _ = slot_tx.send((written, k));
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

    // Closing the encoders' inputs ends them; their outputs then end, which ends the readers
    // and (once both are done) the publisher.
    done.store(true, Ordering::SeqCst);
    drop(to_writer);
    encoders.stop();
    let _ = join_within(writer, Duration::from_secs(1));
    if let Some(t) = tone_writer {
        let _ = join_within(t, Duration::from_secs(1));
    }
    for r in readers {
        let _ = join_within(r, Duration::from_secs(2));
    }
    let published = join_within(publisher, Duration::from_secs(3)).unwrap_or_default();
    let stats = Stats {
        written,
        dropped,
        published,
        elapsed,
    };
    (stop, stats)
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
