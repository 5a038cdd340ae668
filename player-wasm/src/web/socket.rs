//! The WebSocket transport: one connection to the relay with subprotocol `lockstep.v1`,
//! binary messages only. Reconnection policy lives in the player; this owns one socket and
//! its handlers, and closes it (handlers removed) when dropped.

use bytes::Bytes;
use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use crate::web::mse::js_err;

/// What the socket reports.
pub enum SocketEvent {
    Open,
    Message(Bytes),
    /// A text frame or another non-binary message: a protocol error.
    Garbage,
    Closed {
        code: u16,
        reason: String,
    },
}

pub struct Socket {
    ws: WebSocket,
    _onopen: Closure<dyn FnMut(Event)>,
    _onmessage: Closure<dyn FnMut(MessageEvent)>,
    _onclose: Closure<dyn FnMut(CloseEvent)>,
    _onerror: Closure<dyn FnMut(Event)>,
}

impl Socket {
    pub fn connect(
        url: &str,
        on_event: impl Fn(SocketEvent) + Clone + 'static,
    ) -> Result<Socket, String> {
        let ws = WebSocket::new_with_str(url, lockstep_media::wire::SUBPROTOCOL)
            .map_err(|e| js_err(&e))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let f = on_event.clone();
        let onopen =
            Closure::wrap(Box::new(move |_: Event| f(SocketEvent::Open)) as Box<dyn FnMut(Event)>);
        let f = on_event.clone();
        let onmessage = Closure::wrap(Box::new(move |e: MessageEvent| {
            match e.data().dyn_into::<ArrayBuffer>() {
                Ok(buf) => f(SocketEvent::Message(Bytes::from(
                    Uint8Array::new(&buf).to_vec(),
                ))),
                Err(_) => f(SocketEvent::Garbage),
            }
        }) as Box<dyn FnMut(MessageEvent)>);
        let f = on_event.clone();
        let onclose = Closure::wrap(Box::new(move |e: CloseEvent| {
            f(SocketEvent::Closed {
                code: e.code(),
                reason: e.reason(),
            })
        }) as Box<dyn FnMut(CloseEvent)>);
        // An error is always followed by a close event, which is where we act.
        let onerror = Closure::wrap(Box::new(move |_: Event| {}) as Box<dyn FnMut(Event)>);
        ws.set_onopen(Some(onopen.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        ws.set_onclose(Some(onclose.as_ref().unchecked_ref()));
        ws.set_onerror(Some(onerror.as_ref().unchecked_ref()));
        Ok(Socket {
            ws,
            _onopen: onopen,
            _onmessage: onmessage,
            _onclose: onclose,
            _onerror: onerror,
        })
    }

    pub fn send(&self, data: &[u8]) {
        if self.ws.ready_state() == WebSocket::OPEN {
            let _ = self.ws.send_with_u8_array(data);
        }
    }

    pub fn is_open(&self) -> bool {
        self.ws.ready_state() == WebSocket::OPEN
    }

    /// Closes with a code and reason. Browsers only let a page send 1000 or 3000–4999, so
    /// the RFC 6455 codes 1002 (protocol error) and 1003 (unsupported data) go out as 4002
    /// and 4003 (docs/PROTOCOL.md §1).
    pub fn close(&self, code: u16, reason: &str) {
        let code = match code {
            1000 | 3000..=4999 => code,
            1002 | 1003 => code + 3000,
            _ => 1000,
        };
        // The reason may be at most 123 bytes of UTF-8.
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let _ = self.ws.close_with_code_and_reason(code, &reason[..end]);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close();
    }
}
