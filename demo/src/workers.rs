//! The test source's worker threads around the pacer (`src/main.rs`): one reader per encoder
//! (its FLV stdout demuxed into tags, or for Opus its Ogg stdout read packet by packet and
//! turned into tags by [`crate::ogg_opus`]), the publisher (both tracks' tags in arrival
//! order, on one timeline, to the relay), and the tone writer (the audio encoder's input,
//! paced like a capture device). Each reports what went wrong as a [`Failure`].

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::{ChildStdin, ChildStdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lockstep_media::flv::{Demuxer, Event, Tag, TagKind};

use crate::encoder::AudioCodec;
use crate::ogg_opus::OggOpus;
use crate::publish::Publisher;
use crate::retime::{self, Retimer};
use crate::tone::{self, Tone, ToneInput};

/// What went wrong, reported by a worker thread.
pub enum Failure {
    /// Feeding or reading an encoder (the encoder's own exit, if any, says more).
    Encoder(String),
    /// The relay refused the stream or went away.
    Publish(String),
}

/// Tags published, per track.
#[derive(Default, Clone, Copy)]
pub struct Published {
    pub video: u64,
    pub audio: u64,
}

/// A tag from one of the encoders, or the end of its output.
pub enum FromEncoder {
    Tag(Tag),
    End(&'static str, Result<(), String>),
}

/// Reads the FLV an encoder writes to its stdout and passes on its `kind` tags.
pub fn read_encoder(
    name: &'static str,
    mut out: ChildStdout,
    kind: TagKind,
    to_publisher: mpsc::Sender<FromEncoder>,
) -> thread::JoinHandle<()> {
    thread::Builder::new()
        .name(format!("{name}-reader"))
        .spawn(move || {
            let mut demuxer = Demuxer::new();
            let mut buf = vec![0u8; 64 * 1024];
            let end = loop {
                let n = match out.read(&mut buf) {
                    Ok(0) => break demuxer.finish().map_err(|e| e.to_string()),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(e.to_string()),
                };
                demuxer.push_slice(&buf[..n]);
                let mut failed = None;
                while let Some(event) = demuxer.poll() {
                    match event {
                        Ok(Event::Tag(tag)) if tag.kind == kind => {
                            if to_publisher.send(FromEncoder::Tag(tag)).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) if e.is_fatal() => {
                            failed = Some(e.to_string());
                            break;
                        }
                        Err(_) => {}
                    }
                }
                if let Some(e) = failed {
                    break Err(format!("its FLV output: {e}"));
                }
            };
            let _ = to_publisher.send(FromEncoder::End(name, end));
        })
        .expect("spawning an encoder reader thread")
}

/// A pipe for `ogg::PacketReader`, which wants `Seek` but only seeks to skip bytes that are
/// not Ogg (there are none here: it reads each page header exactly).
struct Unseekable<R>(R);

impl<R: Read> Read for Unseekable<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
}

impl<R> Seek for Unseekable<R> {
    fn seek(&mut self, _: SeekFrom) -> std::io::Result<u64> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "a pipe cannot seek (stray bytes between Ogg pages?)",
        ))
    }
}

/// Reads the Ogg Opus an encoder writes to its stdout and passes on the audio tags
/// [`OggOpus`] makes of its packets, each as soon as its page is complete, with its time
/// already on the common timeline.
pub fn read_ogg_opus(
    name: &'static str,
    out: impl Read + Send + 'static,
    to_publisher: mpsc::Sender<FromEncoder>,
) -> thread::JoinHandle<()> {
    thread::Builder::new()
        .name(format!("{name}-reader"))
        .spawn(move || {
            let mut reader = ogg::PacketReader::new(Unseekable(out));
            let mut opus = OggOpus::new();
            let end = loop {
                let packet = match reader.read_packet() {
                    Ok(Some(p)) => p,
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(format!("its Ogg output: {e}")),
                };
                match opus.packet(&packet.data, packet.absgp_page(), packet.last_in_page()) {
                    Ok(Some(t)) => {
                        let tag = Tag {
                            kind: TagKind::Audio,
                            timestamp: t.timestamp,
                            stream_id: 0,
                            filtered: false,
                            body: t.body,
                            offset: 0,
                        };
                        if to_publisher.send(FromEncoder::Tag(tag)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => break Err(format!("its Ogg Opus output: {e}")),
                }
            };
            let _ = to_publisher.send(FromEncoder::End(name, end));
        })
        .expect("spawning an encoder reader thread")
}

/// Publishes the encoders' tags in arrival order, on the common timeline ([`Retimer`]),
/// until every encoder's output has ended or publishing fails. `audio` is the audio track's
/// codec (whose times may need moving).
pub fn publish(
    mut publisher: Publisher,
    fps: u32,
    audio: AudioCodec,
    encoders: usize,
    from_encoders: mpsc::Receiver<FromEncoder>,
    slots: mpsc::Receiver<(u64, u64)>,
    failures: mpsc::Sender<Failure>,
) -> thread::JoinHandle<Published> {
    thread::Builder::new()
        .name("publisher".into())
        .spawn(move || {
            let mut retimer = Retimer::new(fps, audio);
            let mut published = Published::default();
            let mut open = encoders;
            let (mut frames, mut pending) = (0u64, VecDeque::new());
            while open > 0 {
                let Ok(item) = from_encoders.recv() else {
                    break;
                };
                let tag = match item {
                    FromEncoder::Tag(tag) => tag,
                    FromEncoder::End(name, result) => {
                        open -= 1;
                        if let Err(e) = result {
                            let _ = failures
                                .send(Failure::Encoder(format!("reading the {name} ffmpeg: {e}")));
                        }
                        continue;
                    }
                };
                let ts = match tag.kind {
                    TagKind::Video => {
                        let frame = retime::is_video_frame(&tag.body);
                        let slot = frame
                            .then(|| {
                                frames += 1;
                                slot_of(frames - 1, &mut pending, &slots)
                            })
                            .flatten();
                        published.video += 1;
                        retimer.video(tag.timestamp, frame, slot)
                    }
                    TagKind::Audio => {
                        match retimer.audio(tag.timestamp, retime::is_audio_frame(&tag.body)) {
                            Some(ts) => {
                                published.audio += 1;
                                ts
                            }
                            None => continue,
                        }
                    }
                    TagKind::Script => continue,
                };
                if let Err(e) = publisher.send(tag.kind, ts, tag.body) {
                    let _ = failures.send(Failure::Publish(format!("publishing: {e}")));
                    return published;
                }
            }
            publisher.finish();
            published
        })
        .expect("spawning the publisher thread")
}

/// The pacer slot of written frame number `frame`, from the pacer's `(frame, slot)` pairs:
/// it sends each as it hands the frame over, long before the encoded frame comes back, but
/// a thread may be descheduled in between, so this waits a little, and pairs by number (a
/// late pair is never taken for the next frame).
fn slot_of(
    frame: u64,
    pending: &mut VecDeque<(u64, u64)>,
    slots: &mpsc::Receiver<(u64, u64)>,
) -> Option<u64> {
    loop {
        while pending.front().is_some_and(|&(i, _)| i < frame) {
            pending.pop_front();
        }
        match pending.front() {
            Some(&(i, k)) if i == frame => {
                pending.pop_front();
                return Some(k);
            }
            Some(_) => return None,
            None => pending.push_back(slots.recv_timeout(Duration::from_millis(50)).ok()?),
        }
    }
}

/// Writes `input`'s header (if it has one) at once, then the tone to the audio encoder in
/// `input`'s format in 10 ms chunks, each when its last sample is due (as a capture device
/// delivers sound), sample 0 at `start`, until `done` is set.
pub fn write_tone(
    tone: Tone,
    input: ToneInput,
    mut stdin: ChildStdin,
    start: Instant,
    done: Arc<AtomicBool>,
    failures: mpsc::Sender<Failure>,
) -> thread::JoinHandle<()> {
    const CHUNK: u64 = tone::CHUNK_SAMPLES as u64;
    thread::Builder::new()
        .name("tone-writer".into())
        .spawn(move || {
            if let Err(e) = stdin.write_all(&input.header()) {
                let _ = failures.send(Failure::Encoder(format!(
                    "writing to the audio ffmpeg: {e}"
                )));
                return;
            }
            let (mut s16, mut buf) = (Vec::new(), Vec::new());
            let mut n = 0u64;
            while !done.load(Ordering::SeqCst) {
                let due = start
                    + Duration::from_nanos(
                        (n + CHUNK) * 1_000_000_000 / u64::from(tone::SAMPLE_RATE),
                    );
                let now = Instant::now();
                if now < due {
                    thread::sleep((due - now).min(Duration::from_millis(50)));
                    continue;
                }
                s16.clear();
                buf.clear();
                tone.render(n, CHUNK as usize, &mut s16);
                input.encode(&s16, &mut buf);
                if let Err(e) = stdin.write_all(&buf) {
                    if !done.load(Ordering::SeqCst) {
                        let _ = failures.send(Failure::Encoder(format!(
                            "writing to the audio ffmpeg: {e}"
                        )));
                    }
                    return;
                }
                n += CHUNK;
            }
        })
        .expect("spawning the tone thread")
}

/// Waits up to `limit` for a thread, then leaves it (the process is ending).
pub fn join_within<T>(handle: thread::JoinHandle<T>, limit: Duration) -> Option<T> {
    let deadline = Instant::now() + limit;
    while !handle.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    if handle.is_finished() {
        handle.join().ok()
    } else {
        None
    }
}
