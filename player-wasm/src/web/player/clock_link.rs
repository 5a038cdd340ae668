//! The clock-sync connection: a second WebSocket to the relay's `/clock` endpoint
//! (docs/PROTOCOL.md) that carries only Ping → Pong, so that a Pong never waits behind video
//! on the media connection. Pings go there while it is open, else on the media connection (a
//! relay without the endpoint, or before it opens). A child of the player module, so it
//! works on the player's own state.

use super::*;
use crate::session::clock_url;

/// The clock connection's state.
#[derive(Default)]
pub(super) struct ClockLink {
    socket: Option<Socket>,
    /// The current socket has opened.
    open: bool,
    /// A socket to this relay never opened (an older relay, or a proxy that only passes
    /// `/ws/`): not tried again until the media connection reconnects.
    unavailable: bool,
}

impl ClockLink {
    /// Whether pings go over the clock connection now.
    pub(super) fn is_open(&self) -> bool {
        self.open && self.socket.as_ref().is_some_and(Socket::is_open)
    }

    /// Forget that the endpoint was missing (a new media connection, maybe a new relay).
    pub(super) fn retry(&mut self) {
        self.unavailable = false;
    }

    pub(super) fn close(&mut self) {
        if let Some(s) = self.socket.take() {
            s.close(1000, "player closed");
        }
        self.open = false;
    }
}

/// What the clock connection reports.
pub(super) enum ClockEvent {
    Open,
    Message(Bytes),
    /// A non-binary message: not a Lockstep relay's clock endpoint.
    Garbage,
    Closed,
}

impl Inner {
    /// Opens the clock connection if there is none and the relay is not known to lack one.
    pub(super) fn ensure_clock_link(&mut self) {
        if self.clock.socket.is_some() || self.clock.unavailable {
            return;
        }
        let Some(url) = clock_url(&self.opts.url) else {
            self.clock.unavailable = true;
            return;
        };
        let w = self.me.clone();
        let on_event = move |e: SocketEvent| {
            let e = match e {
                SocketEvent::Open => ClockEvent::Open,
                SocketEvent::Message(data) => ClockEvent::Message(data),
                SocketEvent::Garbage => ClockEvent::Garbage,
                SocketEvent::Closed { .. } => ClockEvent::Closed,
            };
            with(&w, |p| p.on_clock_event(e));
        };
        match Socket::connect(&url, on_event) {
            Ok(s) => {
                self.clock.socket = Some(s);
                self.clock.open = false;
            }
            Err(_) => self.clock.unavailable = true,
        }
    }

    fn on_clock_event(&mut self, e: ClockEvent) {
        match e {
            ClockEvent::Open => {
                self.clock.open = true;
                // A quick burst, as on the media connection: this path's minima count most.
                self.ping();
                let w = self.me.clone();
                self.burst_pings.extend((1..FAST_PINGS).filter_map(|i| {
                    let w = w.clone();
                    Timer::timeout(i as i32 * 60, move || with(&w, |p| p.ping()))
                }));
            }
            ClockEvent::Message(data) => {
                if self.session.on_clock_message(data, local_now_us()).is_err() {
                    self.give_up_clock_link("a malformed message");
                }
            }
            ClockEvent::Garbage => self.give_up_clock_link("a non-binary message"),
            ClockEvent::Closed => {
                // Never opened: the relay has no such endpoint. Opened and closed (a relay
                // restart, an idle close): opened again at the next ping.
                if !self.clock.open {
                    self.clock.unavailable = true;
                }
                self.clock.socket = None;
                self.clock.open = false;
            }
        }
    }

    /// The clock endpoint misbehaved: close it and ping on the media connection until the
    /// media connection reconnects (not every ping: a broken endpoint would be reopened twice a
    /// second).
    fn give_up_clock_link(&mut self, what: &str) {
        web_sys::console::warn_1(
            &format!(
                "lockstep-player: {what} on the clock connection; pinging on the media connection"
            )
            .into(),
        );
        self.clock.close();
        self.clock.unavailable = true;
    }

    /// Sends a clock-sync Ping: on the clock connection when it is open, else on the media
    /// connection (which also opens the clock connection when it can).
    pub(super) fn ping(&mut self) {
        let ping = Session::ping(local_now_us());
        if self.clock.is_open() {
            if let Some(s) = &self.clock.socket {
                s.send(&ping);
                self.pings_sent += 1;
                return;
            }
        }
        if let Some(s) = &self.socket {
            if s.is_open() {
                s.send(&ping);
                self.pings_sent += 1;
                self.ensure_clock_link();
            }
        }
    }
}
