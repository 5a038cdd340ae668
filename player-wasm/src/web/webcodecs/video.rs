//! Video: a `VideoDecoder` (optimizeForLatency) and a presentation scheduler that writes each
//! decoded `VideoFrame` into a `MediaStreamTrackGenerator` so that it is on the glass at its
//! due time. The generator's `MediaStream` is the `<video>`'s `srcObject`, so fullscreen,
//! picture-in-picture and `requestVideoFrameCallback` work as with MSE.
//!
//! Scheduling: each decoded frame is planned for the display refresh nearest its due time and
//! written just early enough to make it ([`RefreshClock`]); until the refresh grid is known,
//! it is written the measured display delay ([`DisplayDelay`]) ahead of its due time. Frames
//! wait in a queue sorted by write time; one `setTimeout` is armed for the earliest (re-armed
//! as frames come and go). A frame is written at its write time (at most [`EARLY_MS`] early);
//! one that would reach the screen when the next frame is due there is dropped (closed), as
//! is one with a newer frame also ready to go. Chromium's generator closes every frame
//! written to it, so each frame is closed exactly once: by the generator or by [`Frame`]'s
//! drop.

use std::rc::Rc;

use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    EncodedVideoChunk, EncodedVideoChunkInit, EncodedVideoChunkType, HardwareAcceleration,
    MediaStream, MediaStreamTrackGenerator, MediaStreamTrackGeneratorInit, VideoDecoder,
    VideoDecoderConfig, VideoDecoderInit, VideoFrame, WritableStreamDefaultWriter,
};

use super::display::FrameCallbacks;
use super::owned::Frame;
use super::{decoder_callbacks, Emit, Event};
use crate::control::decode_time::DecodeTimes;
use crate::control::display_delay::DisplayDelay;
use crate::control::refresh::{Plan, RefreshClock};
use crate::session::{Chunk, DecoderSetup};
use crate::web::listener::Timer;
use lockstep_media::remux::TrackType;

/// Delta chunks are dropped (until the next keyframe) while the decoder holds more than this.
/// Above a joining viewer's cached GOP (≈ 30–60 chunks arriving at once): those frames are
/// decoded, not dropped, so the first on-time frame follows at once instead of at the next
/// keyframe; a decoder that really cannot keep up is still caught two seconds in.
pub const MAX_DECODE_QUEUE: u32 = 64;
/// A delta chunk this late on arrival (ms past its due time) is not worth decoding: skip to
/// the next keyframe.
const CATCH_UP_LATE_MS: f64 = 2000.0;
/// A frame is written at most this early (ms) before its write time.
const EARLY_MS: f64 = 1.0;
/// One display refresh at 60 Hz (ms): the write-ahead before anything is measured.
pub const REFRESH_MS: f64 = 1000.0 / 60.0;
/// Slack between a frame's decode and its due time (ms), off the refresh grid: timer
/// wake-up precision.
pub const SLACK_MS: f64 = 4.0;
/// The same on the refresh grid, where the write margin learns the timer's lateness: the
/// timer's whole-millisecond rounding.
const GRID_SLACK_MS: f64 = 1.0;
/// Frames waiting for presentation at most (≈ 2 s at 30 fps); older ones are dropped.
const MAX_QUEUED: usize = 64;

pub fn config(s: &DecoderSetup) -> VideoDecoderConfig {
    let c = VideoDecoderConfig::new(&s.codec);
    if let Some(d) = &s.description {
        c.set_description_u8_array(&Uint8Array::from(&d[..]));
    }
    c.set_optimize_for_latency(true);
    c.set_hardware_acceleration(HardwareAcceleration::NoPreference);
    c
}

struct Decoder {
    dec: VideoDecoder,
    _out: Closure<dyn FnMut(VideoFrame)>,
    _err: Closure<dyn FnMut(JsValue)>,
}

impl Decoder {
    fn new(emit: &Emit, setup: &DecoderSetup) -> Result<Decoder, JsValue> {
        let (out, err) = decoder_callbacks(emit, TrackType::Video, |f| Event::Frame(Frame::new(f)));
        let dec = VideoDecoder::new(&VideoDecoderInit::new(
            err.as_ref().unchecked_ref(),
            out.as_ref().unchecked_ref(),
        ))?;
        dec.configure(&config(setup))?;
        Ok(Decoder {
            dec,
            _out: out,
            _err: err,
        })
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.dec.close();
    }
}

struct Queued {
    /// When to write it (performance.now() ms).
    write_at: f64,
    /// When it is due on the glass.
    due: f64,
    /// The refresh it is planned for, when the grid is known.
    plan: Option<Plan>,
    /// Decoded before its write time.
    ready: bool,
    frame: Frame,
}

pub struct VideoPipe {
    emit: Emit,
    wake: Rc<dyn Fn()>,
    decoder: Option<Decoder>,
    setup: Option<DecoderSetup>,
    need_key: bool,
    generator: MediaStreamTrackGenerator,
    writer: WritableStreamDefaultWriter,
    pub stream: MediaStream,
    queue: Vec<Queued>,
    timer: Option<Timer>,
    timer_at: f64,
    decode_times: DecodeTimes,
    last_out_pts: Option<f64>,
    pub frame_ms: f64,
    pub presented: u64,
    pub dropped_late: u64,
    pub dropped_chunks: u64,
    pub decoded: u64,
    /// Media time of the frame on screen (last written) and when it was written.
    pub on_screen: Option<(f64, f64)>,
    /// Smoothed lateness of the frames written: the refresh each lands on minus its due time
    /// (on the refresh grid), else its write time minus its planned write time, ms.
    pub present_error_ms: Option<f64>,
    /// From a write to the frame's display (fed by `_callbacks`).
    pub display: DisplayDelay,
    /// The display's refresh grid and the write margin (fed by `_callbacks`).
    pub refresh: RefreshClock,
    _callbacks: FrameCallbacks,
}

impl VideoPipe {
    pub fn new(
        emit: Emit,
        wake: Rc<dyn Fn()>,
        element: &web_sys::HtmlVideoElement,
    ) -> Result<VideoPipe, JsValue> {
        let callbacks = FrameCallbacks::start(element, emit.clone());
        let generator =
            MediaStreamTrackGenerator::new(&MediaStreamTrackGeneratorInit::new("video"))?;
        let writer = generator.writable().get_writer()?;
        let stream = MediaStream::new_with_tracks(&Array::of1(&generator))?;
        Ok(VideoPipe {
            emit,
            wake,
            decoder: None,
            setup: None,
            need_key: true,
            generator,
            writer,
            stream,
            queue: Vec::new(),
            timer: None,
            timer_at: 0.0,
            decode_times: DecodeTimes::default(),
            last_out_pts: None,
            frame_ms: 1000.0 / 30.0,
            presented: 0,
            dropped_late: 0,
            dropped_chunks: 0,
            decoded: 0,
            on_screen: None,
            present_error_ms: None,
            display: DisplayDelay::default(),
            refresh: RefreshClock::default(),
            _callbacks: callbacks,
        })
    }

    /// A new or changed configuration (e.g. a publisher restart at another resolution): the
    /// decoder is reconfigured and waits for a keyframe.
    pub fn configure(&mut self, setup: DecoderSetup) -> Result<(), JsValue> {
        self.need_key = true;
        match &self.decoder {
            Some(d) => d.dec.configure(&config(&setup))?,
            None => self.decoder = Some(Decoder::new(&self.emit, &setup)?),
        }
        self.setup = Some(setup);
        Ok(())
    }

    pub fn decode_queue_size(&self) -> u32 {
        self.decoder
            .as_ref()
            .map_or(0, |d| d.dec.decode_queue_size())
    }

    /// One encoded frame; `late_ms`: how far past its due time it already is.
    pub fn decode(&mut self, c: &Chunk, late_ms: Option<f64>, now: f64) -> Result<(), JsValue> {
        let Some(setup) = &self.setup else {
            return Ok(());
        };
        if self.decoder.is_none() {
            if !c.key {
                self.dropped_chunks += 1;
                return Ok(());
            }
            // Recovering from a decoder error: a new decoder at this keyframe.
            self.decoder = Some(Decoder::new(&self.emit, setup)?);
        }
        if !c.key {
            let backlog = self.decode_queue_size() > MAX_DECODE_QUEUE;
            let hopeless = late_ms.is_some_and(|l| l > CATCH_UP_LATE_MS);
            if self.need_key || backlog || hopeless {
                self.need_key = true;
                self.dropped_chunks += 1;
                return Ok(());
            }
        }
        self.need_key = false;
        let ty = if c.key {
            EncodedVideoChunkType::Key
        } else {
            EncodedVideoChunkType::Delta
        };
        let init = EncodedVideoChunkInit::new(&Uint8Array::from(&c.data[..]), 0, ty);
        init.set_timestamp_f64((c.pts_ms * 1000.0).round());
        let chunk = EncodedVideoChunk::new(&init)?;
        if let Some(d) = &self.decoder {
            d.dec.decode(&chunk)?;
        }
        let idle = self.decode_queue_size() <= 1;
        self.decode_times.on_submit(c.pts_ms, now, idle);
        Ok(())
    }

    /// The decoder failed (it is closed): a new one at the next keyframe.
    pub fn on_error(&mut self) {
        self.decoder = None;
        self.need_key = true;
        self.decode_times.forget_pending();
    }

    /// A new epoch: pending output belongs to the old timeline.
    pub fn discontinuity(&mut self) {
        if let (Some(d), Some(s)) = (&self.decoder, &self.setup) {
            let _ = d.dec.reset();
            let _ = d.dec.configure(&config(s));
        }
        self.need_key = true;
        self.queue.clear();
        self.timer = None;
        self.decode_times.forget_pending();
        self.last_out_pts = None;
        self.refresh.reset();
    }

    pub fn need_key(&mut self) {
        self.need_key = true;
    }

    /// How long before it is due on the glass a frame is written, ms: the pipeline's depth in
    /// refreshes and the write margin on the grid (give or take half a refresh: the refresh
    /// nearest its due time), else the measured display delay.
    pub fn write_ahead_ms(&self) -> f64 {
        self.refresh
            .lead_ms()
            .unwrap_or_else(|| self.display.delay_ms().unwrap_or(REFRESH_MS))
    }

    /// How long before its due time a decoded frame must be ready to be written for its
    /// refresh, ms: what the delay D must leave after arrival and decoding (see
    /// [`RefreshClock::lead_ms`]).
    pub fn ready_lead_ms(&self) -> f64 {
        let slack = if self.refresh.period_ms().is_some() {
            GRID_SLACK_MS
        } else {
            SLACK_MS
        };
        self.write_ahead_ms() + slack
    }

    /// A decoded frame, due on the glass at `due` (performance.now() ms).
    pub fn on_output(&mut self, frame: Frame, due: f64, now: f64) {
        self.decoded += 1;
        let pts = frame.pts_ms();
        self.decode_times.on_output(pts, now);
        if let Some(last) = self.last_out_pts {
            let d = pts - last;
            if d > 1.0 && d < 200.0 {
                self.frame_ms += (d - self.frame_ms) * 0.1;
            }
        }
        self.last_out_pts = Some(pts);
        let plan = self.refresh.plan(due, now);
        let write_at = plan.map_or(due - self.write_ahead_ms(), |p| p.write_at);
        let at = self.queue.partition_point(|q| q.write_at <= write_at);
        self.queue.insert(
            at,
            Queued {
                write_at,
                due,
                plan,
                ready: now <= write_at,
                frame,
            },
        );
        if self.queue.len() > MAX_QUEUED {
            self.queue.remove(0);
            self.dropped_late += 1;
        }
        self.arm(now);
    }

    fn arm(&mut self, now: f64) {
        let Some(q) = self.queue.first() else {
            self.timer = None;
            return;
        };
        let at = (q.write_at - EARLY_MS).max(now);
        if self.timer.is_some() && (self.timer_at - at).abs() < 0.5 {
            return;
        }
        let wake = self.wake.clone();
        self.timer = Timer::timeout((at - now).floor() as i32, move || wake());
        self.timer_at = at;
    }

    /// How late (ms) the queued frame `q` is if written at `now`: now less its planned write
    /// time. Not the refresh it would land on: that depends on the learnt depth, which only
    /// frames that are written can correct.
    fn lateness(q: &Queued, now: f64) -> f64 {
        now - q.write_at
    }

    /// How late (ms) a frame may be written and still be shown. On the refresh grid: the
    /// margin plus a frame duration less a refresh, so that it lands at most where the next
    /// frame is not yet due (one refresh late at 30 fps on 60 Hz: still the right picture);
    /// else half a frame duration.
    fn max_late_ms(&self) -> f64 {
        match self.refresh.period_ms() {
            Some(p) if self.frame_ms > p => self.refresh.margin_ms() + self.frame_ms - p,
            _ => self.frame_ms / 2.0,
        }
    }

    /// Whether a frame is due for writing at `now`.
    pub fn has_due(&self, now: f64) -> bool {
        self.queue
            .first()
            .is_some_and(|q| q.write_at <= now + EARLY_MS)
    }

    /// Writes the frames due for writing at `now` (performance.now() ms); returns how many.
    pub fn present(&mut self, now: f64) -> u32 {
        self.timer = None;
        let mut shown = 0;
        let max_late = self.max_late_ms();
        while self.has_due(now) {
            let q = self.queue.remove(0);
            let late = Self::lateness(&q, now);
            // Too late (see `max_late_ms`), or a newer frame is ready as well: not shown.
            let superseded = self.queue.first().is_some_and(|n| {
                n.write_at <= now + EARLY_MS && Self::lateness(n, now) <= max_late
            });
            if late > max_late || superseded {
                self.dropped_late += 1;
                continue; // dropped: Frame closes it
            }
            let pts = q.frame.pts_ms();
            let vf = q.frame.take();
            let _ = self.writer.write_with_chunk(&vf).catch(super::ignore());
            self.on_screen = Some((pts, now));
            self.display.on_write(now, pts);
            if let Some(plan) = q.plan {
                self.refresh.on_write(now, plan, pts, q.ready);
            }
            self.presented += 1;
            shown += 1;
            let error = self.refresh.landing(now).map_or(late, |l| l - q.due);
            let e = self.present_error_ms.get_or_insert(error);
            *e += (error - *e) * 0.1;
        }
        self.arm(now);
        shown
    }

    /// 95th percentile of the decode time (submit to output), ms.
    pub fn decode_p95(&self) -> Option<f64> {
        self.decode_times.p95()
    }

    pub fn reset_decode_times(&mut self) {
        self.decode_times.reset_samples();
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Releases everything: queued frames closed, decoder closed, generator track stopped.
    pub fn close(mut self) {
        self.timer = None;
        self.queue.clear();
        self.decoder = None;
        let _ = self.writer.close().catch(super::ignore());
        self.generator.stop();
    }
}
