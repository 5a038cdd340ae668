//! The WebCodecs sink: decoder configurations and encoded chunks from the session
//! ([`crate::session::SinkKind::WebCodecs`]) to a `VideoDecoder` whose frames are written to a
//! `MediaStreamTrackGenerator` at their due time ([`video`]), and an `AudioDecoder` into an
//! `AudioContext` on the same clock ([`audio`]).
//!
//! Mode selection: [`available`] says whether this browser has the APIs; the first
//! configuration of each codec is checked with `isConfigSupported` (async: the chunks that
//! follow are held, at most [`MAX_HELD`], until it resolves). Errors: a decoder error callback
//! or a throwing `decode()`/`configure()` is a failure; the track's decoder is rebuilt at the
//! next keyframe; [`MAX_FAILURES`] failures in a row (no output in between), an unsupported
//! codec, or a held queue overflow make the player fall back to MSE.

pub mod audio;
pub mod display;
pub mod owned;
pub mod video;

use std::rc::Rc;

use js_sys::Reflect;
use lockstep_media::remux::TrackType;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{AudioDecoder, HtmlVideoElement, VideoDecoder};

use crate::session::{Action, Chunk, DecoderSetup};
use audio::AudioPipe;
use owned::{Audio, Frame};
use video::VideoPipe;

/// Actions held while a codec support check runs (≈ 4 s of 30 fps video with audio).
pub const MAX_HELD: usize = 400;
/// Decoder failures in a row before falling back to MSE.
pub const MAX_FAILURES: u32 = 3;

/// What the decoders and support checks report (asynchronously) to the player.
pub enum Event {
    Frame(Frame),
    Audio(Audio),
    Error(TrackType, String),
    Supported {
        ok: bool,
        codec: String,
    },
    /// A frame callback of the `<video>`: the frame at media time `media_ms` (if reported),
    /// submitted for composition at `presented`, expected on screen at `expected`
    /// (performance.now() ms).
    Displayed {
        presented: f64,
        expected: f64,
        media_ms: Option<f64>,
    },
    /// An animation frame (one per display refresh) at `requestAnimationFrame` time.
    Refresh(f64),
}

pub type Emit = Rc<dyn Fn(Event)>;

/// A decoder's `error` callback.
pub type ErrorCallback = Closure<dyn FnMut(JsValue)>;

/// A decoder's `output` and `error` callbacks: each output goes to `emit` as `wrap(output)`,
/// each error as an [`Event::Error`] of `track`.
pub fn decoder_callbacks<T>(
    emit: &Emit,
    track: TrackType,
    wrap: fn(T) -> Event,
) -> (Closure<dyn FnMut(T)>, ErrorCallback)
where
    T: wasm_bindgen::convert::FromWasmAbi + 'static,
{
    let e = emit.clone();
    let out = Closure::wrap(Box::new(move |x: T| e(wrap(x))) as Box<dyn FnMut(T)>);
    let e = emit.clone();
    let err = Closure::wrap(Box::new(move |x: JsValue| {
        e(Event::Error(track, crate::web::mse::js_err(&x)))
    }) as Box<dyn FnMut(JsValue)>);
    (out, err)
}

thread_local! {
    static IGNORE: &'static Closure<dyn FnMut(JsValue)> =
        Box::leak(Box::new(Closure::new(|_: JsValue| {})));
}

/// A shared no-op rejection handler (a promise nobody waits for must not report an
/// unhandled rejection).
pub fn ignore() -> &'static Closure<dyn FnMut(JsValue)> {
    IGNORE.with(|f| *f)
}

/// Does this browser have what the WebCodecs path needs?
pub fn available() -> bool {
    let g = js_sys::global();
    [
        "VideoDecoder",
        "AudioDecoder",
        "MediaStreamTrackGenerator",
        "AudioContext",
    ]
    .iter()
    .all(|n| Reflect::has(&g, &JsValue::from_str(n)).unwrap_or(false))
}

/// Why the WebCodecs path gives up.
pub struct Fallback(pub String);

pub struct WcSink {
    emit: Emit,
    wake: Rc<dyn Fn()>,
    element: HtmlVideoElement,
    pub video: Option<VideoPipe>,
    pub audio: Option<AudioPipe>,
    verified: Vec<String>,
    checking: u32,
    held: Vec<Action>,
    /// Failures in a row per track (video, audio): reset by that track's next output.
    pub failures: [u32; 2],
    /// Test hook (`options.debug.failDecoderAfterFrames`): frames decoded before every output
    /// counts as a decoder error.
    pub fail_after: Option<u64>,
}

impl WcSink {
    pub fn new(
        emit: Emit,
        wake: Rc<dyn Fn()>,
        element: HtmlVideoElement,
        fail_after: Option<u64>,
    ) -> WcSink {
        WcSink {
            emit,
            wake,
            element,
            video: None,
            audio: None,
            verified: Vec::new(),
            checking: 0,
            held: Vec::new(),
            failures: [0, 0],
            fail_after,
        }
    }

    /// Starts `isConfigSupported` for a codec not checked yet; true if one is running now.
    fn check(&mut self, s: &DecoderSetup) -> bool {
        if self.verified.contains(&s.codec) {
            return self.checking > 0;
        }
        self.verified.push(s.codec.clone());
        let promise = if s.track == TrackType::Video {
            VideoDecoder::is_config_supported(&video::config(s)).unchecked_into::<js_sys::Promise>()
        } else {
            AudioDecoder::is_config_supported(&audio::config(s)).unchecked_into::<js_sys::Promise>()
        };
        let (emit, codec) = (self.emit.clone(), s.codec.clone());
        let mut codec = Some(codec);
        let done = Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| {
            let ok = Reflect::get(&v, &JsValue::from_str("supported"))
                .ok()
                .and_then(|x| x.as_bool())
                .unwrap_or(false);
            if let Some(codec) = codec.take() {
                emit(Event::Supported { ok, codec })
            }
        });
        let _ = promise.then2(&done, &done);
        // Called once, on either outcome; a small one-off leak per codec check.
        done.forget();
        self.checking += 1;
        true
    }

    /// Takes a Configure or Decode action: held while a support check runs, else returned
    /// for the player to apply now.
    pub fn admit(&mut self, a: Action) -> Result<Option<Action>, Fallback> {
        if let Action::Configure(s) = &a {
            self.check(&s.clone());
        }
        if self.checking == 0 {
            return Ok(Some(a));
        }
        if self.held.len() >= MAX_HELD {
            return Err(Fallback(
                "codec support check did not answer in time".into(),
            ));
        }
        self.held.push(a);
        Ok(None)
    }

    /// A support check answered: the held actions to apply now, or a fallback.
    pub fn on_supported(&mut self, ok: bool, codec: &str) -> Result<Vec<Action>, Fallback> {
        self.checking = self.checking.saturating_sub(1);
        if !ok {
            return Err(Fallback(format!("WebCodecs cannot decode {codec}")));
        }
        if self.checking > 0 {
            return Ok(Vec::new());
        }
        Ok(self.held.drain(..).collect())
    }

    pub fn configure(&mut self, s: DecoderSetup) -> Result<(), Fallback> {
        let r = match s.track {
            TrackType::Video => {
                if self.video.is_none() {
                    let pipe = VideoPipe::new(self.emit.clone(), self.wake.clone(), &self.element)
                        .map_err(|e| Fallback(crate::web::mse::js_err(&e)))?;
                    self.element.set_src_object(Some(&pipe.stream));
                    let _ = self.element.play().map(|p| p.catch(ignore()));
                    self.video = Some(pipe);
                }
                self.video.as_mut().map(|v| v.configure(s))
            }
            TrackType::Audio => {
                if self.audio.is_none() {
                    let pipe = AudioPipe::new(self.emit.clone(), &self.element)
                        .map_err(|e| Fallback(crate::web::mse::js_err(&e)))?;
                    self.audio = Some(pipe);
                }
                self.audio.as_mut().map(|a| a.configure(s))
            }
        };
        match r {
            Some(Err(_)) => self.failed(None),
            _ => Ok(()),
        }
    }

    /// An encoded frame; `late_ms`: how far past its due time it is already.
    pub fn decode(&mut self, c: &Chunk, late_ms: Option<f64>, now: f64) -> Result<(), Fallback> {
        let r = match c.track {
            TrackType::Video => self.video.as_mut().map(|v| v.decode(c, late_ms, now)),
            TrackType::Audio => self.audio.as_mut().map(|a| a.decode(c, now)),
        };
        match r {
            Some(Err(_)) => self.failed(Some(c.track)),
            _ => Ok(()),
        }
    }

    /// A decoder failed: rebuilt at the next keyframe, or a fallback after too many.
    pub fn failed(&mut self, track: Option<TrackType>) -> Result<(), Fallback> {
        let n = &mut self.failures[(track == Some(TrackType::Audio)) as usize];
        *n += 1;
        let n = *n;
        match track {
            Some(TrackType::Video) => self.video.as_mut().map(|v| v.on_error()),
            Some(TrackType::Audio) => self.audio.as_mut().map(|a| a.on_error()),
            None => None,
        };
        if n >= MAX_FAILURES {
            return Err(Fallback(format!("{n} decoder failures in a row")));
        }
        Ok(())
    }

    /// A video frame came out: true if it is to be treated as a decoder error (test hook).
    pub fn simulated_failure(&self) -> bool {
        let decoded = self.video.as_ref().map_or(0, |v| v.decoded);
        self.fail_after.is_some_and(|n| decoded >= n)
    }

    pub fn discontinuity(&mut self) {
        if let Some(v) = &mut self.video {
            v.discontinuity();
        }
        if let Some(a) = &mut self.audio {
            a.discontinuity();
        }
    }

    pub fn need_key(&mut self) {
        if let Some(v) = &mut self.video {
            v.need_key();
        }
    }

    /// Releases everything: frames closed, decoders closed, generator stopped, audio context
    /// closed, the `<video>`'s srcObject cleared.
    pub fn close(self) {
        if let Some(v) = self.video {
            v.close();
            self.element.set_src_object(None);
        }
        if let Some(a) = self.audio {
            a.close();
        }
    }
}
