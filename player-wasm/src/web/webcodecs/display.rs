//! Frame callbacks from the `<video>` (`requestVideoFrameCallback`, re-requested after each)
//! reported as [`Event::Displayed`]: when each composited frame was submitted and when it is
//! expected on screen, for [`crate::control::display_delay::DisplayDelay`] and the refresh
//! grid ([`crate::control::refresh::RefreshClock`]); and the window's animation frames
//! (`requestAnimationFrame`, one per display refresh) as [`Event::Refresh`], for the grid's
//! period. Called through `Reflect` where `web-sys` builds may lack the API; without it
//! nothing is reported and the player assumes one refresh. Both loops stop (callbacks
//! cancelled, closures released) on drop.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Function, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::HtmlVideoElement;

use super::{Emit, Event};

struct State {
    element: HtmlVideoElement,
    callback: Option<Closure<dyn FnMut(f64, JsValue)>>,
    handle: Option<JsValue>,
    animation: Option<Closure<dyn FnMut(f64)>>,
    animation_handle: Option<i32>,
}

/// The callback loop; ends when dropped.
pub struct FrameCallbacks {
    state: Rc<RefCell<State>>,
}

fn method(element: &HtmlVideoElement, name: &str) -> Option<Function> {
    Reflect::get(element, &JsValue::from_str(name))
        .ok()?
        .dyn_into::<Function>()
        .ok()
}

fn request(state: &Rc<RefCell<State>>) {
    let mut s = state.borrow_mut();
    let Some(f) = method(&s.element, "requestVideoFrameCallback") else {
        return;
    };
    let handle = match &s.callback {
        Some(cb) => f.call1(&s.element, cb.as_ref().unchecked_ref()).ok(),
        None => None,
    };
    s.handle = handle;
}

fn request_animation(state: &Rc<RefCell<State>>) {
    let mut s = state.borrow_mut();
    let (Some(window), Some(cb)) = (web_sys::window(), &s.animation) else {
        return;
    };
    s.animation_handle = window
        .request_animation_frame(cb.as_ref().unchecked_ref())
        .ok();
}

impl FrameCallbacks {
    pub fn start(element: &HtmlVideoElement, emit: Emit) -> FrameCallbacks {
        let state = Rc::new(RefCell::new(State {
            element: element.clone(),
            callback: None,
            handle: None,
            animation: None,
            animation_handle: None,
        }));
        let emit_refresh = emit.clone();
        let weak: Weak<RefCell<State>> = Rc::downgrade(&state);
        let callback = Closure::<dyn FnMut(f64, JsValue)>::new(move |_now: f64, meta: JsValue| {
            let num = |k: &str| {
                Reflect::get(&meta, &JsValue::from_str(k))
                    .ok()
                    .and_then(|v| v.as_f64())
            };
            if let (Some(presented), Some(expected)) =
                (num("presentationTime"), num("expectedDisplayTime"))
            {
                emit(Event::Displayed {
                    presented,
                    expected,
                    media_ms: num("mediaTime").map(|s| s * 1000.0),
                });
            }
            if let Some(state) = weak.upgrade() {
                request(&state);
            }
        });
        state.borrow_mut().callback = Some(callback);
        request(&state);
        let weak: Weak<RefCell<State>> = Rc::downgrade(&state);
        let animation = Closure::<dyn FnMut(f64)>::new(move |t: f64| {
            emit_refresh(Event::Refresh(t));
            if let Some(state) = weak.upgrade() {
                request_animation(&state);
            }
        });
        state.borrow_mut().animation = Some(animation);
        request_animation(&state);
        FrameCallbacks { state }
    }
}

impl Drop for FrameCallbacks {
    fn drop(&mut self) {
        let mut s = self.state.borrow_mut();
        if let (Some(h), Some(f)) = (
            s.handle.take(),
            method(&s.element, "cancelVideoFrameCallback"),
        ) {
            let _ = f.call1(&s.element, &h);
        }
        s.callback = None;
        if let (Some(h), Some(window)) = (s.animation_handle.take(), web_sys::window()) {
            let _ = window.cancel_animation_frame(h);
        }
        s.animation = None;
    }
}
