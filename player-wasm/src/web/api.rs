//! The class exported to JavaScript. The npm package wraps it (js/lockstep-player.js) in an
//! `EventTarget` subclass and a `<lockstep-player>` custom element.

use wasm_bindgen::prelude::*;
use web_sys::HtmlVideoElement;

use crate::web::options::Options;
use crate::web::player::{call, Inner, Shared};

/// The wasm core of `LockstepPlayer`: `new PlayerCore(video, options, emit)` where
/// `emit(type, detail)` receives `state`, `stats`, `error`, `ended`, `skipped` and
/// `discontinuity` events.
#[wasm_bindgen]
pub struct PlayerCore {
    inner: Shared,
}

#[wasm_bindgen]
impl PlayerCore {
    #[wasm_bindgen(constructor)]
    pub fn new(
        video: HtmlVideoElement,
        options: JsValue,
        emit: js_sys::Function,
    ) -> Result<PlayerCore, JsError> {
        let opts = Options::from_js(&options).map_err(|e| JsError::new(&e))?;
        Ok(PlayerCore {
            inner: Inner::create(video, opts, emit),
        })
    }

    /// Current statistics (the same object as the `stats` event).
    pub fn stats(&self) -> JsValue {
        self.inner
            .try_borrow()
            .map(|i| i.stats_object())
            .unwrap_or(JsValue::NULL)
    }

    /// The player state: connecting, waiting, playing, stalled, reconnecting, ended, error,
    /// destroyed.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.inner
            .try_borrow()
            .map(|i| i.state.name().to_string())
            .unwrap_or_default()
    }

    /// Changes the target latency (ms) when the relay announces no shared delay.
    #[wasm_bindgen(js_name = setTargetLatency)]
    pub fn set_target_latency(&self, ms: f64) {
        call(&self.inner, |p| p.set_target_latency(ms));
    }

    /// Releases the socket, MediaSource, object URL, timers and listeners.
    pub fn destroy(&self) {
        call(&self.inner, |p| p.destroy());
    }
}
