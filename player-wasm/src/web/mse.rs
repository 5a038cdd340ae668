//! The MSE sink: a MediaSource (ManagedMediaSource where it exists: Safari 17.1+, iPhone)
//! with one SourceBuffer per track, and an append queue per buffer that never calls
//! `appendBuffer` while the buffer is updating. Old data behind the playhead is removed;
//! a QuotaExceededError trims harder and retries.

use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::{Reflect, Uint8Array};
use lockstep_media::remux::TrackType;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    HtmlVideoElement, MediaSource, MediaSourceReadyState, SourceBuffer, SourceBufferAppendMode, Url,
};

use crate::session::{Append, TrackSetup};
use crate::web::listener::Listener;

/// Media kept behind the playhead, seconds.
const KEEP_BEHIND_S: f64 = 4.0;
/// Trim at most this often, seconds of media time.
const TRIM_EVERY_S: f64 = 2.0;

/// Why the sink cannot play a stream.
#[derive(Debug, Clone)]
pub enum MseError {
    Unsupported(String),
    NoMediaSource,
    Js(String),
}

impl std::fmt::Display for MseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MseError::Unsupported(m) => write!(
                f,
                "this browser cannot play {m} through Media Source Extensions"
            ),
            MseError::NoMediaSource => {
                f.write_str("this browser has neither MediaSource nor ManagedMediaSource")
            }
            MseError::Js(m) => write!(f, "{m}"),
        }
    }
}

pub fn js_err(v: &JsValue) -> String {
    v.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| v.as_string())
        .unwrap_or_else(|| format!("{v:?}"))
}

/// Which MediaSource constructor this browser has.
fn media_source_ctor() -> Option<(js_sys::Function, bool)> {
    let global = js_sys::global();
    for (name, managed) in [("ManagedMediaSource", true), ("MediaSource", false)] {
        if let Ok(c) = Reflect::get(&global, &JsValue::from_str(name)) {
            if let Ok(f) = c.dyn_into::<js_sys::Function>() {
                return Some((f, managed));
            }
        }
    }
    None
}

/// Is MSE available at all?
pub fn available() -> bool {
    media_source_ctor().is_some()
}

/// `isTypeSupported` on whichever MediaSource exists.
pub fn is_type_supported(mime: &str) -> bool {
    let Some((ctor, _)) = media_source_ctor() else {
        return false;
    };
    Reflect::get(&ctor, &JsValue::from_str("isTypeSupported"))
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .and_then(|f| f.call1(&ctor, &JsValue::from_str(mime)).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

struct Buffer {
    track: TrackType,
    sb: SourceBuffer,
    queue: VecDeque<Append>,
    /// audio/mpeg: timestamps are generated; set the offset before the first append.
    generates_timestamps: bool,
    offset_set: bool,
    last_trim_s: f64,
    _updateend: Listener,
}

/// The MediaSource and its buffers, for one set of tracks.
pub struct MseSink {
    ms: MediaSource,
    pub managed: bool,
    url: String,
    video: HtmlVideoElement,
    tracks: Vec<TrackSetup>,
    buffers: Vec<Buffer>,
    /// Appends that arrived before `sourceopen`.
    early: VecDeque<Append>,
    open: bool,
    pub appended_bytes: u64,
    pub quota_errors: u32,
    _listeners: Vec<Listener>,
    /// Called after each `updateend` (the player pumps the queues and runs housekeeping).
    on_update: Rc<dyn Fn()>,
}

impl MseSink {
    /// Creates a MediaSource for `tracks` and attaches it to `video`. `on_open` runs at
    /// `sourceopen`, `on_update` after every append or remove completes.
    pub fn new(
        video: &HtmlVideoElement,
        tracks: Vec<TrackSetup>,
        on_open: Rc<dyn Fn()>,
        on_update: Rc<dyn Fn()>,
        on_streaming: Rc<dyn Fn(bool)>,
    ) -> Result<MseSink, MseError> {
        for t in &tracks {
            if !is_type_supported(&t.mime) {
                return Err(MseError::Unsupported(t.mime.clone()));
            }
        }
        let (ctor, managed) = media_source_ctor().ok_or(MseError::NoMediaSource)?;
        let ms: MediaSource = Reflect::construct(&ctor, &js_sys::Array::new())
            .map_err(|e| MseError::Js(js_err(&e)))?
            .unchecked_into();
        let mut listeners = Vec::new();
        listeners.push(Listener::new(&ms, "sourceopen", move |_| on_open()));
        if managed {
            // ManagedMediaSource: the browser says when it wants data; and AirPlay of an MSE
            // stream is not possible, which Safari requires us to declare.
            let s = on_streaming.clone();
            listeners.push(Listener::new(&ms, "startstreaming", move |_| s(true)));
            let s = on_streaming;
            listeners.push(Listener::new(&ms, "endstreaming", move |_| s(false)));
            let _ = Reflect::set(
                video,
                &JsValue::from_str("disableRemotePlayback"),
                &JsValue::TRUE,
            );
        }
        let url = Url::create_object_url_with_source(&ms).map_err(|e| MseError::Js(js_err(&e)))?;
        video.set_src(&url);
        Ok(MseSink {
            ms,
            managed,
            url,
            video: video.clone(),
            tracks,
            buffers: Vec::new(),
            early: VecDeque::new(),
            open: false,
            appended_bytes: 0,
            quota_errors: 0,
            _listeners: listeners,
            on_update,
        })
    }

    pub fn tracks(&self) -> &[TrackSetup] {
        &self.tracks
    }

    /// `sourceopen`: create the SourceBuffers, then feed what arrived early.
    pub fn on_open(&mut self) -> Result<(), MseError> {
        if self.open {
            return Ok(());
        }
        self.open = true;
        // Live: no duration; +Infinity keeps Chromium from clamping the timeline.
        self.ms.set_duration(f64::INFINITY);
        for t in &self.tracks {
            let sb = self.ms.add_source_buffer(&t.mime).map_err(|e| {
                MseError::Js(format!("addSourceBuffer({}): {}", t.mime, js_err(&e)))
            })?;
            let generates_timestamps = t.mime.starts_with("audio/mpeg");
            if generates_timestamps {
                sb.set_mode(SourceBufferAppendMode::Sequence);
            }
            let cb = self.on_update.clone();
            let updateend = Listener::new(&sb, "updateend", move |_| cb());
            self.buffers.push(Buffer {
                track: t.track,
                sb,
                queue: VecDeque::new(),
                generates_timestamps,
                offset_set: false,
                last_trim_s: 0.0,
                _updateend: updateend,
            });
        }
        while let Some(a) = self.early.pop_front() {
            self.enqueue(a);
        }
        self.pump();
        Ok(())
    }

    pub fn is_open(&self) -> bool {
        self.open && self.ms.ready_state() == MediaSourceReadyState::Open
    }

    /// Queues an append (an init segment or a fragment) and starts it if the buffer is idle.
    pub fn push(&mut self, a: Append) {
        if !self.open {
            self.early.push_back(a);
            return;
        }
        self.enqueue(a);
        self.pump();
    }

    fn enqueue(&mut self, a: Append) {
        if let Some(b) = self.buffers.iter_mut().find(|b| b.track == a.track) {
            b.queue.push_back(a);
        }
    }

    /// Starts the next append on every idle buffer, and trims old data.
    pub fn pump(&mut self) {
        if !self.is_open() {
            return;
        }
        let now = self.video.current_time();
        for b in &mut self.buffers {
            if b.sb.updating() {
                continue;
            }
            // Housekeeping first, while idle: drop what is far behind the playhead.
            if now - b.last_trim_s > TRIM_EVERY_S && now > KEEP_BEHIND_S + 1.0 {
                b.last_trim_s = now;
                if b.sb.remove(0.0, now - KEEP_BEHIND_S).is_ok() {
                    continue; // updateend will pump again
                }
            }
            let Some(a) = b.queue.pop_front() else {
                continue;
            };
            if b.generates_timestamps && !b.offset_set && !a.init {
                b.offset_set = true;
                b.sb.set_timestamp_offset(a.start_ms / 1000.0);
            }
            // appendBuffer copies the bytes synchronously, so a view of wasm memory is safe.
            let view = unsafe { Uint8Array::view(&a.data) };
            match b.sb.append_buffer_with_array_buffer_view(&view) {
                Ok(()) => self.appended_bytes += a.data.len() as u64,
                Err(e) => {
                    let quota = e
                        .dyn_ref::<web_sys::DomException>()
                        .is_some_and(|d| d.name() == "QuotaExceededError");
                    if quota {
                        // Full: remove everything up to 1 s behind the playhead, retry after.
                        self.quota_errors += 1;
                        b.queue.push_front(a);
                        let _ = b.sb.remove(0.0, (now - 1.0).max(0.0));
                    } else {
                        web_sys::console::warn_1(
                            &format!("appendBuffer failed: {}", js_err(&e)).into(),
                        );
                    }
                }
            }
        }
    }

    /// Bytes waiting in the append queues.
    pub fn queued(&self) -> usize {
        self.buffers.iter().map(|b| b.queue.len()).sum::<usize>() + self.early.len()
    }

    /// Drops queued appends (after a seek far ahead, or an epoch change).
    pub fn clear_queues(&mut self) {
        for b in &mut self.buffers {
            b.queue.retain(|a| a.init);
        }
    }

    /// Detaches from the video element and frees the object URL.
    pub fn close(self) {
        if self.ms.ready_state() == MediaSourceReadyState::Open {
            let _ = self.ms.end_of_stream();
        }
        let _ = Url::revoke_object_url(&self.url);
        self.video.remove_attribute("src").ok();
        self.video.load();
    }
}
