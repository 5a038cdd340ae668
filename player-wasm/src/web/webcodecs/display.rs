//! Frame callbacks from the `<video>` (`requestVideoFrameCallback`, re-requested after each)
//! reported as [`Event::Displayed`]: when each composited frame was submitted and when it is
//! expected on screen, for [`crate::control::display_delay::DisplayDelay`]. Called through
//! `Reflect` (not in every `web-sys` build); without the API nothing is reported and the
//! player assumes one refresh. Stopped (callback cancelled, closure released) on drop.

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

impl FrameCallbacks {
    pub fn start(element: &HtmlVideoElement, emit: Emit) -> FrameCallbacks {
        let state = Rc::new(RefCell::new(State {
            element: element.clone(),
            callback: None,
            handle: None,
        }));
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
                });
            }
            if let Some(state) = weak.upgrade() {
                request(&state);
            }
        });
        state.borrow_mut().callback = Some(callback);
        request(&state);
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
    }
}
