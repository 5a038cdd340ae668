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
use crate::control::jitter::ArrivalJitter;
use crate::control::latency::{Decision, LatencyConfig, LatencyController, Observation};
use crate::session::{Action, Session, SinkKind};
use crate::web::listener::{Listener, Timer};
use crate::web::mse::{self, MseSink};
use crate::web::options::Options;
use crate::web::socket::{Socket, SocketEvent};
use crate::web::webcodecs::{self, owned, Event as WcEvent, Fallback, WcSink};

const TICK_MS: i32 = 50;
const PING_EVERY_MS: i32 = 2000;
const FAST_PINGS: u32 = 5;
const FEEDBACK_EVERY_MS: i32 = 1000;
const MAX_BACKOFF_MS: f64 = 5000.0;
/// What MSE presentation needs beyond a frame's arrival (append, decode, one frame of
/// buffer), ms: added to the arrival p95 for the latency this viewer can hold.
const MSE_PRESENT_MS: f64 = 67.0;
/// The WebCodecs path's own target latency (ms) when the relay announces no shared delay and
/// the page sets none: arrival (a few ms on a LAN) + decode (2–5 ms at 360p–720p in software)
/// + a margin for jitter; measured in docs/WEBCODECS.md.
pub const WC_TARGET_MS: f64 = 50.0;
/// One display refresh (60 Hz), ms: a written frame reaches the screen at the next one.
const REFRESH_MS: f64 = 16.7;
/// Slack between a frame's decode and its due time, ms (timer wake-up precision).
const WC_SLACK_MS: f64 = 4.0;

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
    sink: Option<MseSink>,
    controller: LatencyController,
    jitter: ArrivalJitter,
    arrival: ArrivalLatency,
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
                sink: None,
                controller,
                jitter: ArrivalJitter::default(),
                arrival: ArrivalLatency::default(),
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
                            self.jitter.on_arrival(now, ts as f64);
                            if video {
                                if let Some(a) = self.session.arrival_latency_ms(ts, local_now_us())
                                {
                                    self.arrival.on_arrival(now, a);
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
                    self.jitter.reset();
                    self.arrival.reset();
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

    fn ping(&mut self) {
        if let Some(s) = &self.socket {
            if s.is_open() {
                s.send(&Session::ping(local_now_us()));
                self.pings_sent += 1;
            }
        }
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
            jitter_ms: self.jitter.jitter_ms(),
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

    /// The lowest latency this viewer can hold: its controller's jitter and stall allowance,
    /// or how late frames arrive plus what MSE presentation needs, whichever is larger.
    fn required_ms(&self) -> f64 {
        if self.session.sink() == SinkKind::WebCodecs {
            return self.wc_required_ms();
        }
        let arrival = self.arrival.required_ms(MSE_PRESENT_MS).unwrap_or(0.0);
        self.controller.required_ms().max(arrival)
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
        set("jitterMs", JsValue::from_f64(self.jitter.jitter_ms()));
        set("arrivalP95Ms", num(self.arrival.quantile(0.95)));
        set("requiredLatencyMs", JsValue::from_f64(self.required_ms()));
        set(
            "clockOffsetMs",
            num(self.session.clock.offset_us().map(|o| o as f64 / 1000.0)),
        );
        set(
            "rttMs",
            num(self.session.clock.rtt_us().map(|r| r as f64 / 1000.0)),
        );
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
        if let Some(sink) = self.sink.take() {
            sink.close();
        }
        if let Some(wc) = self.wc.take() {
            wc.close();
        }
        self.state = State::Destroyed;
    }
}

/// The WebCodecs path (docs/WEBCODECS.md).
impl Inner {
    fn ensure_wc(&mut self) {
        if self.wc.is_some() {
            return;
        }
        let w = self.me.clone();
        let emit: webcodecs::Emit = Rc::new(move |e| with(&w, move |p| p.on_wc_event(e)));
        let w = self.me.clone();
        let wake: Rc<dyn Fn()> = Rc::new(move || with(&w, |p| p.wc_present()));
        self.wc = Some(WcSink::new(
            emit,
            wake,
            self.video.clone(),
            self.opts.fail_decoder_after,
        ));
    }

    /// The delay D at which frames are presented: the relay's shared delay (with `sync`),
    /// else the page's target, else [`WC_TARGET_MS`]; never under what this viewer can make
    /// (frames would arrive or decode too late and be dropped).
    fn wc_delay_ms(&self) -> f64 {
        let announced = self.session.announced_delay_ms() as f64;
        let base = if self.opts.sync && announced > 0.0 {
            announced
        } else if self.opts.target_set {
            self.opts.target_latency_ms
        } else {
            WC_TARGET_MS
        };
        base.max(self.wc_floor_ms)
    }

    /// performance.now() time (ms) at which the frame at media time `pts_ms` is due:
    /// its relay ingest time + D, converted from the relay clock to the local one.
    fn due_ms(&self, pts_ms: f64) -> Option<f64> {
        let ingest_us = self.session.anchors.ingest_us(pts_ms)?;
        let offset_us = self.session.clock.offset_us()? as f64;
        let local_us = ingest_us + self.wc_delay_ms() * 1000.0 - offset_us;
        Some(local_us / 1000.0 - self.time_origin)
    }

    fn wc_action(&mut self, a: Action) {
        self.ensure_wc();
        let Some(wc) = &mut self.wc else { return };
        match wc.admit(a) {
            Err(f) => self.fallback(f),
            Ok(None) => {}
            Ok(Some(a)) => self.wc_apply(a),
        }
    }

    fn wc_apply(&mut self, a: Action) {
        let now = now_ms();
        let late = match &a {
            Action::Decode(c) => self.due_ms(c.pts_ms).map(|d| now - d),
            _ => None,
        };
        let Some(wc) = &mut self.wc else { return };
        let r = match a {
            Action::Configure(s) => wc.configure(s),
            Action::Decode(c) => wc.decode(&c, late, now),
            _ => Ok(()),
        };
        if let Err(f) = r {
            self.fallback(f);
        }
    }

    fn on_wc_event(&mut self, e: WcEvent) {
        let now = now_ms();
        let Some(wc) = &mut self.wc else { return };
        let r = match e {
            WcEvent::Frame(f) => {
                if wc.simulated_failure() {
                    drop(f);
                    wc.failed(Some(TrackType::Video))
                } else {
                    wc.failures[0] = 0;
                    let due = self.due_ms(f.pts_ms()).unwrap_or(now);
                    if let Some(v) = self.wc.as_mut().and_then(|wc| wc.video.as_mut()) {
                        v.on_output(f, due, now);
                    }
                    Ok(())
                }
            }
            WcEvent::Audio(a) => {
                wc.failures[1] = 0;
                let due = self.due_ms(a.0.timestamp() / 1000.0);
                match (due, self.wc.as_mut().and_then(|wc| wc.audio.as_mut())) {
                    (Some(due), Some(pipe)) => pipe.schedule(a, due, now),
                    (None, Some(pipe)) => pipe.dropped += 1,
                    _ => {}
                }
                Ok(())
            }
            WcEvent::Error(track, msg) => {
                web_sys::console::warn_1(
                    &format!(
                        "lockstep-player: {} decoder error: {msg}",
                        if track == TrackType::Video {
                            "video"
                        } else {
                            "audio"
                        }
                    )
                    .into(),
                );
                wc.failed(Some(track))
            }
            WcEvent::Supported { ok, codec } => match wc.on_supported(ok, &codec) {
                Ok(actions) => {
                    for a in actions {
                        self.wc_apply(a);
                    }
                    Ok(())
                }
                Err(f) => Err(f),
            },
        };
        if let Err(f) = r {
            self.fallback(f);
        }
    }

    /// The presentation timer fired: write the frames now due.
    fn wc_present(&mut self) {
        let now = now_ms();
        let Some(v) = self.wc.as_mut().and_then(|wc| wc.video.as_mut()) else {
            return;
        };
        if v.present(now) == 0 {
            return;
        }
        self.wc_last_present = now;
        if self.startup_ms.is_none() {
            self.startup_ms = Some(now - self.created_ms);
            // Frames of the join backlog arrived late, and queued in the decoder, by design:
            // measure from here on.
            self.arrival.reset();
            if let Some(v) = self.wc.as_mut().and_then(|wc| wc.video.as_mut()) {
                v.reset_decode_times();
            }
        }
        self.started = true;
        if self.stalled || self.state != State::Playing && self.state != State::Ended {
            self.stalled = false;
            self.set_state(State::Playing);
        }
    }

    fn wc_tick(&mut self) {
        let now = now_ms();
        let Some(wc) = &self.wc else { return };
        let (on_screen, has_video) = match &wc.video {
            // The playhead: the frame on screen, advanced by the time since it was written.
            Some(v) => (v.on_screen.map(|(pts, at)| pts + (now - at)), true),
            None => (None, false),
        };
        let decode_p95 = wc.video.as_ref().and_then(|v| v.decode_p95());
        let audio_playing = wc.audio.as_ref().is_some_and(|a| a.scheduled > 0);
        // Audio-only: playing once audio is scheduled.
        if !has_video && self.state != State::Playing && self.state != State::Ended && audio_playing
        {
            if self.startup_ms.is_none() {
                self.startup_ms = Some(now - self.created_ms);
                self.arrival.reset();
            }
            self.set_state(State::Playing);
        }
        if self.startup_ms.is_some() {
            // The floor rises at once and decays slowly (1 %/tick ≈ 5 s).
            let need = self.arrival.quantile(0.95).unwrap_or(0.0).max(0.0)
                + decode_p95.unwrap_or(0.0)
                + WC_SLACK_MS;
            self.wc_floor_ms = if need > self.wc_floor_ms {
                need
            } else {
                self.wc_floor_ms + (need - self.wc_floor_ms) * 0.01
            };
        }
        let now_us = local_now_us();
        self.last_latency = match (on_screen, has_video) {
            (Some(pts), true) => self.session.latency_ms(pts, now_us),
            // Audio only: the audio now heard was due D ago.
            (_, false) if self.startup_ms.is_some() => Some(self.wc_delay_ms()),
            _ => None,
        };
        if has_video {
            if self.video.paused() && self.state != State::Ended {
                let _ = self.video.play().map(|p| p.catch(webcodecs::ignore()));
            }
            if self.state == State::Playing && now - self.wc_last_present > 1000.0 {
                self.stalled = true;
                self.stalls += 1;
                self.set_state(State::Stalled);
            }
        }
    }

    /// What this viewer needs to present on time: arrival p95 + decode p95 + one refresh.
    fn wc_required_ms(&self) -> f64 {
        let decode = self
            .wc
            .as_ref()
            .and_then(|wc| wc.video.as_ref())
            .and_then(|v| v.decode_p95())
            .unwrap_or(0.0);
        self.arrival
            .required_ms(decode + REFRESH_MS)
            .unwrap_or(WC_TARGET_MS)
    }

    fn wc_feedback(&mut self) {
        let bw = self.bandwidth_kbps();
        let (decoded, dropped, buffer) =
            self.wc
                .as_ref()
                .and_then(|wc| wc.video.as_ref())
                .map_or((0, 0, 0.0), |v| {
                    (
                        v.decoded as u32,
                        (v.dropped_late + v.dropped_chunks) as u32,
                        v.queued() as f64 * v.frame_ms,
                    )
                });
        let fb = wire::Feedback {
            buffer_ms: buffer as u32,
            latency_ms: self.last_latency.map(|l| l.round() as i32),
            playback_rate_milli: 1000,
            decoded_frames: decoded,
            dropped_frames: dropped,
            bytes_received: self.session.stats.bytes_received,
            bandwidth_kbps: bw as u32,
            stalls: self.stalls,
            mode: wire::MODE_WEBCODECS,
            sync_error_ms: self
                .last_latency
                .map(|l| (l - self.wc_delay_ms()).round() as i32),
            rtt_us: self
                .session
                .clock
                .rtt_us()
                .map(|r| r.clamp(0, u32::MAX as i64 - 1) as u32),
            // Not before the first frame is shown: the join backlog arrives late by design.
            target_ms: self
                .startup_ms
                .map(|_| self.wc_required_ms().round() as u32),
        };
        if let Some(s) = &self.socket {
            s.send(&Message::Feedback(fb).to_bytes());
        }
        let stats = self.stats_object();
        self.events.push(("stats", stats));
    }

    fn wc_stats(&self, set: &dyn Fn(&str, JsValue)) {
        let num = |v: Option<f64>| v.map_or(JsValue::NULL, JsValue::from_f64);
        let Some(wc) = &self.wc else { return };
        set("openFrames", JsValue::from_f64(owned::open_frames() as f64));
        set("playbackRate", JsValue::from_f64(1.0));
        set(
            "syncErrorMs",
            num(self.last_latency.map(|l| l - self.wc_delay_ms())),
        );
        set("decoderFailures", JsValue::from_f64(wc.failures[0] as f64));
        if let Some(v) = &wc.video {
            set("framesPresented", JsValue::from_f64(v.presented as f64));
            set(
                "framesDroppedLate",
                JsValue::from_f64(v.dropped_late as f64),
            );
            set("chunksSkipped", JsValue::from_f64(v.dropped_chunks as f64));
            set("decodedFrames", JsValue::from_f64(v.decoded as f64));
            set(
                "droppedFrames",
                JsValue::from_f64((v.dropped_late + v.dropped_chunks) as f64),
            );
            set(
                "decodeQueueSize",
                JsValue::from_f64(v.decode_queue_size() as f64),
            );
            set("decodeP95Ms", num(v.decode_p95()));
            set("presentErrorMs", num(v.present_error_ms));
            set(
                "bufferMs",
                JsValue::from_f64(v.queued() as f64 * v.frame_ms),
            );
        }
        if let Some(a) = &wc.audio {
            set("audioContext", JsValue::from_str(a.state()));
            set("audioScheduled", JsValue::from_f64(a.scheduled as f64));
            set("audioDropped", JsValue::from_f64(a.dropped as f64));
            // Audio start error minus video write error: > 0 when audio leaves later.
            let video_err = wc
                .video
                .as_ref()
                .and_then(|v| v.present_error_ms)
                .unwrap_or(0.0);
            set("avOffsetMs", num(a.error_ms.map(|e| e - video_err)));
        }
    }

    /// WebCodecs failed: tear its sink down, switch the session to MSE and reconnect so the
    /// relay resends StreamInfo, configurations and the GOP. No page reload.
    fn fallback(&mut self, f: Fallback) {
        web_sys::console::warn_1(
            &format!("lockstep-player: WebCodecs: {}; falling back to MSE", f.0).into(),
        );
        if let Some(wc) = self.wc.take() {
            wc.close();
        }
        self.video.set_src_object(None);
        self.session.switch_sink(SinkKind::Mse);
        self.fallbacks += 1;
        self.fallback_reason = Some(f.0.clone());
        self.started = false;
        self.wc_floor_ms = 0.0;
        self.arrival.reset();
        self.jitter.reset();
        self.controller.reset();
        self.events.push(("fallback", JsValue::from_str(&f.0)));
        if !mse::available() {
            self.fail("this browser has no Media Source Extensions to fall back to".into());
            return;
        }
        self.burst_pings.clear();
        self.socket = None;
        self.connect();
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
