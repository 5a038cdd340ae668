//! An event listener that removes itself when dropped, so `destroy()` leaves nothing behind.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Event, EventTarget};

pub struct Listener {
    target: EventTarget,
    kind: &'static str,
    closure: Closure<dyn FnMut(Event)>,
}

impl Listener {
    pub fn new(
        target: &impl AsRef<EventTarget>,
        kind: &'static str,
        f: impl FnMut(Event) + 'static,
    ) -> Listener {
        let closure = Closure::wrap(Box::new(f) as Box<dyn FnMut(Event)>);
        let target: EventTarget = target.as_ref().clone();
        let _ = target.add_event_listener_with_callback(kind, closure.as_ref().unchecked_ref());
        Listener {
            target,
            kind,
            closure,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, self.closure.as_ref().unchecked_ref());
    }
}

/// A `setInterval` / `setTimeout` that is cleared when dropped.
pub struct Timer {
    id: i32,
    interval: bool,
    _closure: Closure<dyn FnMut()>,
}

impl Timer {
    pub fn interval(ms: i32, f: impl FnMut() + 'static) -> Option<Timer> {
        let closure = Closure::wrap(Box::new(f) as Box<dyn FnMut()>);
        let id = web_sys::window()?
            .set_interval_with_callback_and_timeout_and_arguments_0(
                closure.as_ref().unchecked_ref(),
                ms,
            )
            .ok()?;
        Some(Timer {
            id,
            interval: true,
            _closure: closure,
        })
    }

    pub fn timeout(ms: i32, f: impl FnMut() + 'static) -> Option<Timer> {
        let closure = Closure::wrap(Box::new(f) as Box<dyn FnMut()>);
        let id = web_sys::window()?
            .set_timeout_with_callback_and_timeout_and_arguments_0(
                closure.as_ref().unchecked_ref(),
                ms,
            )
            .ok()?;
        Some(Timer {
            id,
            interval: false,
            _closure: closure,
        })
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(w) = web_sys::window() {
            if self.interval {
                w.clear_interval_with_handle(self.id);
            } else {
                w.clear_timeout_with_handle(self.id);
            }
        }
    }
}
