//! The player: wires the WebSocket transport, the protocol session, the media sink (MSE with
//! the latency controller, or WebCodecs with frame-scheduled presentation) together, runs the
//! timers (control tick, clock-sync pings, feedback), reconnects with backoff, falls back from
//! WebCodecs to MSE without a reload, and reports state and statistics as events.
//!
//! Every callback borrows the player's state for its own duration only; events for the page
//! are queued and dispatched after the borrow ends, so a listener may call `destroy()`.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use bytes::Bytes;
use js_sys::{Object, Reflect};
use lockstep_media::remux::TrackType;
use lockstep_media::wire::{self, Message};
use wasm_bindgen::prelude::*;

use web_sys::{HtmlVideoElement, VisibilityState};

use crate::control::arrival::ArrivalLatency;
use crate::control::audio_lag::AudioLag;
use crate::control::jitter::ArrivalJitter;
use crate::control::latency::{Decision, LatencyConfig, LatencyController, Observation};
use crate::session::{Action, Session, SinkKind};
use crate::web::listener::{Listener, Timer};
use crate::web::mse::{self, MseSink};
use crate::web::options::Options;
use crate::web::socket::{Socket, SocketEvent};
use crate::web::webcodecs::video::{REFRESH_MS, SLACK_MS as WC_SLACK_MS};
use crate::web::webcodecs::{self, owned, Event as WcEvent, Fallback, WcSink};

mod clock_link;
mod wc;

use clock_link::ClockLink;

const TICK_MS: i32 = 50;
/// Clock-sync pings, ms apart: the per-direction minima sharpen with the number of exchanges
/// (on a path with 50–150 ms of jitter, the least of n samples lies ~100/(n+1) ms above the
/// floor), and on the clock connection a ping costs the relay one small write. Five a second:
/// the media gives the `down` direction thirty samples a second, the pings alone feed `up`.
const PING_EVERY_MS: i32 = 200;
const FAST_PINGS: u32 = 5;
const FEEDBACK_EVERY_MS: i32 = 1000;
const MAX_BACKOFF_MS: f64 = 5000.0;
/// What MSE presentation needs beyond a frame's arrival (append, decode, one frame of
/// buffer), ms: added to the arrival p95 for the latency this viewer can hold.
const MSE_PRESENT_MS: f64 = 67.0;
/// The same for audio: Chromium's audio renderer underflows (the element waits) with less
/// than ~120 ms of audio buffered past the playhead (measured: a stall with 112 ms ahead,
/// none with 127 ms), so audio must arrive that much before its turn, ms.
const MSE_AUDIO_PRESENT_MS: f64 = 125.0;
/// The WebCodecs path's own target latency (ms) when the relay announces no shared delay and
/// the page sets none: arrival (a few ms on a LAN) + decode (2–5 ms at 360p–720p in software)
/// + a margin for jitter; measured in docs/WEBCODECS.md.
pub const WC_TARGET_MS: f64 = 50.0;
/// The start's transient (WebCodecs), ms after the first picture: the page is still busy
/// (decoder warm-up, the join backlog), and frames arriving meanwhile look late. Measured: video
/// arrival p95 25 ms in the first second against 5 ms from the fourth on; a requirement
/// reported from that second set D at 75 ms, and the relay took 13 s to lower it to 35. The
/// arrival windows, decode times and floor start afresh this long after the first picture.
const WC_SETTLE_MS: f64 = 1000.0;
/// How far this viewer's own floor may exceed the relay's shared D before it leaves D for the
/// floor, ms (WebCodecs, with `sync`). The floor sums three p95s, so a few ms over D costs a
/// frame now and then; leaving D costs every frame a refresh of sync with the other viewers
/// until the relay raises D, which it does 2 s after the requirement rose (measured: a proxied
/// viewer a refresh behind the others for 76 of 899 frames, its floor 4–14 ms above D, no
/// frame dropped).
const WC_FLOOR_TOLERANCE_MS: f64 = REFRESH_MS;
/// After the fresh start, how long the windows fill before the requirement is reported, ms.
const WC_REPORT_AFTER_MS: f64 = 1000.0;
/// Time to decode an audio frame, ms, until it is measured (software decoders: ~1 ms).
const AUDIO_DECODE_MS: f64 = 5.0;
/// How far ahead of the audio clock a buffer must be started, ms (the audio pipe drops one
/// due sooner than 2 ms from now), plus a millisecond for the clock mapping.
const AUDIO_SLACK_MS: f64 = 3.0;

/// Player states, as reported in `state` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    Waiting,
    Playing,
    Stalled,
    Reconnecting,
    Ended,
    Error,
    Destroyed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Waiting => "waiting",
            State::Playing => "playing",
            State::Stalled => "stalled",
            State::Reconnecting => "reconnecting",
            State::Ended => "ended",
            State::Error => "error",
            State::Destroyed => "destroyed",
        }
    }
}

/// Local clock in µs on the Unix epoch (performance.timeOrigin + now()), monotonic.
pub fn local_now_us() -> u64 {
    let p = web_sys::window().and_then(|w| w.performance());
    match p {
        Some(p) => ((p.time_origin() + p.now()) * 1000.0) as u64,
        None => (js_sys::Date::now() * 1000.0) as u64,
    }
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

pub struct Inner {
    me: Weak<RefCell<Inner>>,
    video: HtmlVideoElement,
    opts: Options,
    emit: js_sys::Function,
    events: Vec<(&'static str, JsValue)>,
    pub session: Session,
    socket: Option<Socket>,
    /// The clock-sync connection beside it.
    clock: ClockLink,
    sink: Option<MseSink>,
    controller: LatencyController,
    /// Arrival jitter per track (video, audio): each track's own spread. (Together they would
    /// count the audio encoder's steady lag behind the video as jitter.)
    jitter: [ArrivalJitter; 2],
    arrival: ArrivalLatency,
    /// How late audio frames arrive (as `arrival` for video).
    audio_arrival: ArrivalLatency,
    /// How far audio trails the video in WebCodecs mode.
    audio_lag: AudioLag,
    pub state: State,
    error: Option<String>,
    reconnect_attempt: u32,
    timers: Vec<Timer>,
    /// The quick clock-sync pings after a connect; replaced at each connect.
    burst_pings: Vec<Timer>,
    reconnect_timer: Option<Timer>,
    listeners: Vec<Listener>,
    pings_sent: u32,
    started: bool,
    stalled: bool,
    stalls: u32,
    last_rate: f64,
    seeks: u32,
    created_ms: f64,
    startup_ms: Option<f64>,
    bw_window: std::collections::VecDeque<(f64, u64)>,
    last_latency: Option<f64>,
    streaming_allowed: bool,
    /// The WebCodecs sink (when the session feeds WebCodecs).
    wc: Option<WcSink>,
    time_origin: f64,
    /// The lowest delay this viewer can present on time (WebCodecs), ms; 0 before playback.
    wc_floor_ms: f64,
    /// When (local ms) the measurement windows started afresh after the start's transient.
    wc_settled_ms: Option<f64>,
    wc_last_present: f64,
    fallbacks: u32,
    fallback_reason: Option<String>,
}

pub type Shared = Rc<RefCell<Inner>>;

/// Runs `f` on the player if it still exists, then dispatches the events it queued.
fn with(weak: &Weak<RefCell<Inner>>, f: impl FnOnce(&mut Inner)) {
    let mut f = Some(f);
    with_dyn(weak, &mut |p| {
        if let Some(f) = f.take() {
            f(p)
        }
    })
}

/// `with`'s body, once (not once per closure type).
fn with_dyn(weak: &Weak<RefCell<Inner>>, f: &mut dyn FnMut(&mut Inner)) {
    let Some(rc) = weak.upgrade() else { return };
    let (emit, events) = {
        let Ok(mut inner) = rc.try_borrow_mut() else {
            return;
        };
        if inner.state == State::Destroyed {
            return;
        }
        f(&mut inner);
        (inner.emit.clone(), std::mem::take(&mut inner.events))
    };
    for (kind, detail) in events {
        let _ = emit.call2(&JsValue::NULL, &JsValue::from_str(kind), &detail);
    }
}

impl Inner {
    pub fn create(video: HtmlVideoElement, opts: Options, emit: js_sys::Function) -> Shared {
        let controller = LatencyController::new(LatencyConfig {
            target_ms: opts.target_latency_ms,
            ..LatencyConfig::default()
        });
        let sink = if opts.mode != "mse" && webcodecs::available() {
            SinkKind::WebCodecs
        } else {
            SinkKind::Mse
        };
        let rc = Rc::new_cyclic(|me| {
            RefCell::new(Inner {
                me: me.clone(),
                video,
                opts,
                emit,
                events: Vec::new(),
                session: Session::with_sink(sink),
                socket: None,
                clock: ClockLink::default(),
                sink: None,
                controller,
                jitter: Default::default(),
                arrival: ArrivalLatency::default(),
                audio_arrival: ArrivalLatency::default(),
                audio_lag: AudioLag::default(),
                state: State::Connecting,
                error: None,
                reconnect_attempt: 0,
                timers: Vec::new(),
                burst_pings: Vec::new(),
                reconnect_timer: None,
                listeners: Vec::new(),
                pings_sent: 0,
                started: false,
                stalled: false,
                stalls: 0,
                last_rate: 1.0,
                seeks: 0,
                created_ms: now_ms(),
                startup_ms: None,
                bw_window: Default::default(),
                last_latency: None,
                streaming_allowed: true,
                wc: None,
                time_origin: web_sys::window()
                    .and_then(|w| w.performance())
                    .map_or(0.0, |p| p.time_origin()),
                wc_floor_ms: 0.0,
                wc_settled_ms: None,
                wc_last_present: 0.0,
                fallbacks: 0,
                fallback_reason: None,
            })
        });
        let weak = Rc::downgrade(&rc);
        with(&weak, |p| p.start());
        rc
    }

    fn start(&mut self) {
        self.video.set_muted(self.opts.muted);
        let _ = Reflect::set(&self.video, &"preservesPitch".into(), &JsValue::TRUE);
        let _ = Reflect::set(&self.video, &"playsInline".into(), &JsValue::TRUE);
        if self.opts.mode == "webcodecs" && !webcodecs::available() {
            web_sys::console::warn_1(
                &"lockstep-player: no WebCodecs (VideoDecoder, AudioDecoder, MediaStreamTrackGenerator) here; playing through MSE".into(),
            );
        }
        if self.session.sink() == SinkKind::Mse && !mse::available() {
            self.fail("this browser has no Media Source Extensions (MediaSource or ManagedMediaSource); it cannot play this stream".into());
            return;
        }
        let w = self.me.clone();
        self.listeners
            .push(Listener::new(&self.video, "waiting", move |_| {
                with(&w, |p| p.on_waiting())
            }));
        let w = self.me.clone();
        self.listeners
            .push(Listener::new(&self.video, "playing", move |_| {
                with(&w, |p| p.on_playing())
            }));
        if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
            let w = self.me.clone();
            let d = doc.clone();
            self.listeners
                .push(Listener::new(&doc, "visibilitychange", move |_| {
                    let visible = d.visibility_state() == VisibilityState::Visible;
                    with(&w, |p| p.controller.on_visibility(visible));
                }));
        }
        let w = self.me.clone();
        self.timers
            .extend(Timer::interval(TICK_MS, move || with(&w, |p| p.tick())));
        let w = self.me.clone();
        self.timers.extend(Timer::interval(PING_EVERY_MS, move || {
            with(&w, |p| p.ping())
        }));
        let w = self.me.clone();
        self.timers
            .extend(Timer::interval(FEEDBACK_EVERY_MS, move || {
                with(&w, |p| p.feedback())
            }));
        self.connect();
    }

    fn set_state(&mut self, s: State) {
        if self.state != s && self.state != State::Destroyed {
            self.state = s;
            self.events.push(("state", JsValue::from_str(s.name())));
        }
    }

    fn fail(&mut self, message: String) {
        web_sys::console::error_1(&format!("lockstep-player: {message}").into());
        self.error = Some(message.clone());
        self.set_state(State::Error);
        self.events.push(("error", JsValue::from_str(&message)));
    }

    fn connect(&mut self) {
        self.reconnect_timer = None;
        let w = self.me.clone();
        match Socket::connect(&self.opts.url, move |e| with(&w, |p| p.on_socket(e))) {
            Ok(s) => self.socket = Some(s),
            Err(e) => {
                self.fail(format!("cannot open {}: {e}", self.opts.url));
                self.schedule_reconnect();
            }
        }
    }

    fn schedule_reconnect(&mut self) {
        self.socket = None;
        if !self.opts.reconnect || self.reconnect_timer.is_some() {
            return;
        }
        let base = (250.0 * 2f64.powi(self.reconnect_attempt.min(8) as i32)).min(MAX_BACKOFF_MS);
        let delay = base * (0.75 + 0.5 * js_sys::Math::random());
        self.reconnect_attempt += 1;
        self.set_state(State::Reconnecting);
        let w = self.me.clone();
        self.reconnect_timer = Timer::timeout(delay as i32, move || with(&w, |p| p.connect()));
    }

    fn on_socket(&mut self, e: SocketEvent) {
        match e {
            SocketEvent::Open => {
                // The backoff resets only once the relay has said something sensible
                // (below): a server that accepts and then sends garbage is retried ever
                // more slowly, not four times a second.
                self.pings_sent = 0;
                self.clock.retry();
                if self.state == State::Reconnecting || self.state == State::Error {
                    self.session.on_reconnect();
                    self.drain_actions();
                }
                if !self.started {
                    self.set_state(State::Waiting);
                }
                self.ping();
                // A quick burst of pings so the clock is synced before the first frame shows.
                self.burst_pings = (1..FAST_PINGS)
                    .filter_map(|i| {
                        let w = self.me.clone();
                        Timer::timeout(i as i32 * 60, move || with(&w, |p| p.ping()))
                    })
                    .collect();
            }
            SocketEvent::Message(data) => {
                let len = data.len() as u64;
                self.bw_window.push_back((now_ms(), len));
                let media_ts = media_timestamp(&data);
                match self.session.on_message(data, local_now_us()) {
                    Ok(()) => {
                        self.reconnect_attempt = 0;
                        if let Some((video, ts)) = media_ts {
                            let now = now_ms();
                            self.jitter[usize::from(!video)].on_arrival(now, ts as f64);
                            if let Some(a) = self.session.arrival_latency_ms(ts, local_now_us()) {
                                if video {
                                    self.arrival.on_arrival(now, a);
                                } else {
                                    self.audio_arrival.on_arrival(now, a);
                                }
                            }
                        }
                        self.drain_actions();
                    }
                    Err(err) => {
                        let msg = format!("malformed message from the relay: {err}");
                        if let Some(s) = &self.socket {
                            s.close(1002, "malformed message");
                        }
                        self.fail(msg);
                        self.schedule_reconnect();
                    }
                }
            }
            SocketEvent::Garbage => {
                if let Some(s) = &self.socket {
                    s.close(1003, "binary messages only");
                }
                self.fail("the relay sent a non-binary message".into());
                self.schedule_reconnect();
            }
            SocketEvent::Closed { code, reason } => {
                if self.state != State::Error {
                    web_sys::console::warn_1(
                        &format!(
                            "lockstep-player: connection closed ({code} {reason}); reconnecting"
                        )
                        .into(),
                    );
                }
                self.schedule_reconnect();
            }
        }
    }

    fn drain_actions(&mut self) {
        while let Some(action) = self.session.poll() {
            match action {
                Action::SetupTracks(tracks) => {
                    if self.session.sink() == SinkKind::WebCodecs {
                        self.resume_after_end();
                        self.ensure_wc();
                    } else {
                        self.setup_tracks(tracks)
                    }
                }
                Action::Append(a) => {
                    if let Some(sink) = &mut self.sink {
                        sink.push(a);
                    }
                }
                Action::Discontinuity { .. } => {
                    self.resume_after_end();
                    if let Some(wc) = &mut self.wc {
                        wc.discontinuity();
                    }
                    self.jitter.iter_mut().for_each(ArrivalJitter::reset);
                    self.arrival.reset();
                    self.audio_arrival.reset();
                    self.controller.reset();
                    self.events.push((
                        "discontinuity",
                        JsValue::from_f64(self.session.stats.epoch as f64),
                    ));
                }
                Action::Skipped { frames } => {
                    if let Some(wc) = &mut self.wc {
                        wc.need_key();
                    }
                    self.events
                        .push(("skipped", JsValue::from_f64(frames as f64)));
                }
                Action::Delay(d) => {
                    if self.opts.sync && d > 0 {
                        self.controller.set_target_ms(d as f64);
                    } else {
                        self.controller.set_target_ms(self.opts.target_latency_ms);
                    }
                }
                Action::Ended(reason) => {
                    self.set_state(State::Ended);
                    self.events.push(("ended", JsValue::from_str(&reason)));
                }
                Action::RelayError { code, message } => {
                    self.fail(format!("relay error {code}: {message}"));
                }
                Action::Configure(_) | Action::Decode(_) => self.wc_action(action),
            }
        }
    }

    /// A new publisher after `Ended`: the state follows the video again.
    fn resume_after_end(&mut self) {
        if self.state == State::Ended {
            let playing = !self.video.paused() && self.video.ready_state() >= 3;
            self.set_state(if playing {
                State::Playing
            } else {
                State::Waiting
            });
        }
    }

    fn setup_tracks(&mut self, tracks: Vec<crate::session::TrackSetup>) {
        self.resume_after_end();
        if self
            .sink
            .as_ref()
            .is_some_and(|s| s.tracks() == tracks.as_slice())
        {
            return;
        }
        if let Some(old) = self.sink.take() {
            old.close();
        }
        self.started = false;
        let w = self.me.clone();
        let on_open: Rc<dyn Fn()> = Rc::new(move || {
            with(&w, |p| {
                if let Some(sink) = &mut p.sink {
                    if let Err(e) = sink.on_open() {
                        let msg = e.to_string();
                        p.fail(msg);
                    }
                }
            })
        });
        let w = self.me.clone();
        let on_update: Rc<dyn Fn()> = Rc::new(move || {
            with(&w, |p| {
                if let Some(sink) = &mut p.sink {
                    sink.pump();
                }
            })
        });
        let w = self.me.clone();
        let on_streaming: Rc<dyn Fn(bool)> =
            Rc::new(move |allowed| with(&w, |p| p.streaming_allowed = allowed));
        match MseSink::new(&self.video, tracks, on_open, on_update, on_streaming) {
            Ok(sink) => self.sink = Some(sink),
            Err(e) => {
                let msg = e.to_string();
                self.fail(msg);
                if let Some(s) = &self.socket {
                    s.close(1000, "unsupported codec");
                }
                self.opts.reconnect = false;
            }
        }
    }

    fn on_waiting(&mut self) {
        // Waiting before the first frame played is startup, not a stall.
        if self.started && self.startup_ms.is_some() && !self.stalled {
            self.stalled = true;
            self.stalls += 1;
            self.controller.on_stall(now_ms());
            self.set_state(State::Stalled);
        }
    }

    fn on_playing(&mut self) {
        self.stalled = false;
        if self.startup_ms.is_none() {
            self.startup_ms = Some(now_ms() - self.created_ms);
        }
        self.set_state(State::Playing);
    }

    /// The control loop: start playback at the right position, then keep latency on target.
    fn tick(&mut self) {
        if self.session.sink() == SinkKind::WebCodecs {
            self.wc_tick();
            return;
        }
        let Some(sink) = &mut self.sink else { return };
        sink.pump();
        let ranges = match self.video.buffered().length() {
            0 => return,
            _ => self.video.buffered(),
        };
        let ct = self.video.current_time();
        let now_us = local_now_us();
        let frame_ms = 1000.0 / 30.0;
        if !self.started {
            // Start where the synchronized clock says (ingest + target), else target behind the
            // live edge, but never before the first buffered frame (the cached GOP's newest
            // keyframe is decodable from its start).
            let start = ranges.start(0).unwrap_or(0.0);
            let end = ranges.end(ranges.length() - 1).unwrap_or(0.0);
            let target = self.controller.effective_target_ms();
            let wanted = self
                .session
                .target_media_ms(target, now_us)
                .map(|m| m / 1000.0)
                .unwrap_or(end - target / 1000.0);
            let pos = wanted.clamp(start, (end - frame_ms / 1000.0).max(start));
            self.video.set_current_time(pos);
            let _ = self.video.play();
            self.started = true;
            return;
        }
        // Where the playhead sits in the buffered ranges.
        let mut ahead = 0.0;
        let mut next_start = None;
        for i in 0..ranges.length() {
            let (s, e) = (ranges.start(i).unwrap_or(0.0), ranges.end(i).unwrap_or(0.0));
            if ct >= s - 0.001 && ct <= e {
                ahead = (e - ct) * 1000.0;
            } else if s > ct && next_start.is_none() {
                next_start = Some((s - ct) * 1000.0);
            }
        }
        let latency = self.session.latency_ms(ct * 1000.0, now_us);
        self.last_latency = latency;
        let visible = web_sys::window()
            .and_then(|w| w.document())
            .map(|d| d.visibility_state() == VisibilityState::Visible)
            .unwrap_or(true);
        let obs = Observation {
            now_ms: now_ms(),
            latency_ms: latency,
            buffer_ahead_ms: ahead,
            next_range_start_ms: next_start,
            stalled: self.stalled || self.video.ready_state() < 3,
            visible,
            jitter_ms: self.jitter_ms(),
            frame_ms,
        };
        match self.controller.tick(&obs) {
            Decision::Hold => {}
            Decision::Rate(r) => {
                if (r - self.last_rate).abs() > 1e-6 {
                    self.last_rate = r;
                    self.video.set_playback_rate(r);
                }
            }
            Decision::Seek { by_ms } => {
                self.seeks += 1;
                self.video.set_current_time(ct + by_ms / 1000.0);
            }
        }
        if self.video.paused() && self.state != State::Ended {
            let _ = self.video.play();
        }
    }

    fn bandwidth_kbps(&mut self) -> f64 {
        let now = now_ms();
        while self
            .bw_window
            .front()
            .is_some_and(|&(t, _)| now - t > 2000.0)
        {
            self.bw_window.pop_front();
        }
        let bytes: u64 = self.bw_window.iter().map(|&(_, b)| b).sum();
        bytes as f64 * 8.0 / 2000.0
    }

    fn buffer_ms(&self) -> f64 {
        let ranges = self.video.buffered();
        let ct = self.video.current_time();
        (0..ranges.length())
            .filter_map(|i| Some((ranges.start(i).ok()?, ranges.end(i).ok()?)))
            .find(|&(s, e)| ct >= s - 0.001 && ct <= e)
            .map_or(0.0, |(_, e)| (e - ct) * 1000.0)
    }

    /// Arrival jitter, ms: the larger of the two tracks'.
    fn jitter_ms(&self) -> f64 {
        self.jitter[0].jitter_ms().max(self.jitter[1].jitter_ms())
    }

    /// The lowest latency this viewer can hold: its controller's jitter and stall allowance,
    /// or how late frames arrive plus what MSE presentation needs, whichever is larger.
    fn required_ms(&self) -> f64 {
        if self.session.sink() == SinkKind::WebCodecs {
            return self.wc_required_ms();
        }
        let video = self.arrival.required_ms(MSE_PRESENT_MS).unwrap_or(0.0);
        let audio = self
            .audio_arrival
            .required_ms(MSE_AUDIO_PRESENT_MS)
            .unwrap_or(0.0);
        self.controller.required_ms().max(video).max(audio)
    }

    fn feedback(&mut self) {
        if self.session.sink() == SinkKind::WebCodecs {
            self.wc_feedback();
            return;
        }
        let q = self.video.get_video_playback_quality();
        let bw = self.bandwidth_kbps();
        let fb = wire::Feedback {
            buffer_ms: self.buffer_ms() as u32,
            latency_ms: self.last_latency.map(|l| l.round() as i32),
            playback_rate_milli: (self.video.playback_rate() * 1000.0)
                .round()
                .clamp(0.0, 65535.0) as u16,
            decoded_frames: q.total_video_frames(),
            dropped_frames: q.dropped_video_frames(),
            bytes_received: self.session.stats.bytes_received,
            bandwidth_kbps: bw as u32,
            stalls: self.stalls,
            mode: wire::MODE_MSE,
            sync_error_ms: self.controller.sync_error_ms().map(|e| e.round() as i32),
            rtt_us: self
                .session
                .clock
                .rtt_us()
                .map(|r| r.clamp(0, u32::MAX as i64 - 1) as u32),
            target_ms: Some(self.required_ms().round() as u32),
            // MSE has no frame-exact presentation to align.
            refresh: None,
        };
        if let Some(s) = &self.socket {
            s.send(&Message::Feedback(fb).to_bytes());
        }
        let stats = self.stats_object();
        self.events.push(("stats", stats));
    }

    /// Statistics as a plain JS object (also the `stats` event detail).
    pub fn stats_object(&self) -> JsValue {
        let o = Object::new();
        let set = |k: &str, v: JsValue| {
            let _ = Reflect::set(&o, &JsValue::from_str(k), &v);
        };
        let num = |v: Option<f64>| v.map_or(JsValue::NULL, JsValue::from_f64);
        let q = self.video.get_video_playback_quality();
        let wc = self.session.sink() == SinkKind::WebCodecs;
        set("state", JsValue::from_str(self.state.name()));
        set(
            "mode",
            JsValue::from_str(if wc { "webcodecs" } else { "mse" }),
        );
        set("channel", JsValue::from_str(&self.opts.channel));
        set("latencyMs", num(self.last_latency));
        set(
            "targetLatencyMs",
            JsValue::from_f64(if wc {
                self.wc_delay_ms()
            } else {
                self.controller.effective_target_ms()
            }),
        );
        set("syncErrorMs", num(self.controller.sync_error_ms()));
        set("bufferMs", JsValue::from_f64(self.buffer_ms()));
        set(
            "playbackRate",
            JsValue::from_f64(self.video.playback_rate()),
        );
        set(
            "decodedFrames",
            JsValue::from_f64(q.total_video_frames() as f64),
        );
        set(
            "droppedFrames",
            JsValue::from_f64(q.dropped_video_frames() as f64),
        );
        set(
            "bytesReceived",
            JsValue::from_f64(self.session.stats.bytes_received as f64),
        );
        set("stalls", JsValue::from_f64(self.stalls as f64));
        set("seeks", JsValue::from_f64(self.seeks as f64));
        set("jitterMs", JsValue::from_f64(self.jitter_ms()));
        set("arrivalP95Ms", num(self.arrival.quantile(0.95)));
        set("requiredLatencyMs", JsValue::from_f64(self.required_ms()));
        let shared = self.session.announced_delay_ms();
        set("sharedDelayMs", num((shared > 0).then_some(shared as f64)));
        set(
            "clockOffsetMs",
            num(self.session.clock.offset_us().map(|o| o as f64 / 1000.0)),
        );
        set(
            "rttMs",
            num(self.session.clock.rtt_us().map(|r| r as f64 / 1000.0)),
        );
        set("clockConnection", JsValue::from_bool(self.clock.is_open()));
        let minima = self.session.clock.minima_us();
        set("clockUpMs", num(minima.map(|m| m.0 as f64 / 1000.0)));
        set("clockDownMs", num(minima.map(|m| m.1 as f64 / 1000.0)));
        set("startupMs", num(self.startup_ms));
        set("epoch", JsValue::from_f64(self.session.stats.epoch as f64));
        set(
            "skippedByRelay",
            JsValue::from_f64(self.session.stats.frames_skipped_by_relay as f64),
        );
        set(
            "videoFramesReceived",
            JsValue::from_f64(self.session.stats.video_frames as f64),
        );
        set(
            "audioFramesReceived",
            JsValue::from_f64(self.session.stats.audio_frames as f64),
        );
        let tracks = js_sys::Array::new();
        for t in self.session.tracks() {
            let kind = if t.track == TrackType::Video {
                "video"
            } else {
                "audio"
            };
            tracks.push(&JsValue::from_str(&format!("{kind}:{}", t.codec)));
        }
        set("tracks", tracks.into());
        if let Some(e) = &self.error {
            set("error", JsValue::from_str(e));
        }
        set("fallbacks", JsValue::from_f64(self.fallbacks as f64));
        if let Some(r) = &self.fallback_reason {
            set("fallbackReason", JsValue::from_str(r));
        }
        if wc {
            self.wc_stats(&set);
        }
        if let Some(sink) = &self.sink {
            set("managedMediaSource", JsValue::from_bool(sink.managed));
            set("quotaErrors", JsValue::from_f64(sink.quota_errors as f64));
            set("appendQueue", JsValue::from_f64(sink.queued() as f64));
        }
        o.into()
    }

    pub fn set_target_latency(&mut self, ms: f64) {
        if ms.is_finite() && ms > 0.0 {
            self.opts.target_latency_ms = ms;
            self.controller.set_target_ms(ms);
        }
    }

    /// Releases everything: socket, MediaSource and object URL, timers, listeners.
    pub fn destroy(&mut self) {
        self.timers.clear();
        self.burst_pings.clear();
        self.reconnect_timer = None;
        self.listeners.clear();
        if let Some(s) = self.socket.take() {
            s.close(1000, "player destroyed");
        }
        self.clock.close();
        if let Some(sink) = self.sink.take() {
            sink.close();
        }
        if let Some(wc) = self.wc.take() {
            wc.close();
        }
        self.state = State::Destroyed;
    }
}

/// (is video, media timestamp) of a media frame message, without decoding it (for arrival
/// jitter and level).
fn media_timestamp(data: &Bytes) -> Option<(bool, u32)> {
    let b0 = *data.first()?;
    if !(0x10..0x30).contains(&b0) || b0 & 0x02 != 0 || data.len() < 5 {
        return None; // not an audio or video frame (control, script, or a configuration)
    }
    Some((
        b0 >> 4 == 1,
        u32::from_be_bytes([data[1], data[2], data[3], data[4]]),
    ))
}

/// `with` for the exported API.
pub fn call(rc: &Shared, f: impl FnOnce(&mut Inner)) {
    with(&Rc::downgrade(rc), f)
}
