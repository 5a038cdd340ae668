//! `GET /api/stats/stream[?channel=NAME][&page=N][&per_page=M]`: the statistics of
//! `/api/stats` pushed as Server-Sent Events, one `data:` event a second (first at once),
//! for the dashboard at `/stats`. Same admin token and query as `/api/stats`, except that
//! `per_page` defaults to 50.
//!
//! Each event is the `/api/stats` JSON plus:
//! - `history`: per channel, the chart points ([`Point`]) the client has not had yet: the
//!   whole ring (last five minutes, one point per 2 s) in the first event, then only the
//!   new ones;
//! - `history_full`: true in the first event (replace the rings, do not append);
//! - `subscribers`: how many statistics streams are open on the relay.
//!
//! The stream is the response body and owns everything it uses: when the client goes away
//! the server drops the body, and with it the stream's [`Sampler`] handle (the last one
//! stops the history task). No task is spawned per stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::time::{interval, Interval, MissedTickBehavior};

use super::history::{History, Point, Sampler};
use super::stats::{collect, Selection, Stats};
use super::{auth, params, ApiError, Params};
use crate::app::AppState;

/// Viewers per page unless `per_page` says otherwise.
pub const DEFAULT_PER_PAGE: usize = 50;
/// One event per this.
pub const EVERY: Duration = Duration::from_secs(1);
/// How long a disconnected EventSource waits before reconnecting.
const RETRY: Duration = Duration::from_secs(2);

/// One event's JSON.
#[derive(serde::Serialize)]
struct Update<'a> {
    #[serde(flatten)]
    stats: &'a Stats,
    subscribers: usize,
    history_full: bool,
    history: HashMap<String, Vec<Point>>,
}

pub async fn handler(State(app): State<AppState>, headers: HeaderMap, q: Params) -> Response {
    let feed = match Feed::start(app, &headers, q) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let events = futures_util::stream::unfold(feed, |mut feed| async move {
        if feed.done {
            return None;
        }
        feed.tick.tick().await;
        let event = feed.next_event();
        Some((Ok::<Event, Infallible>(event), feed))
    });
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            // Reverse proxies (nginx) must not buffer the stream.
            (HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Sse::new(events).keep_alive(KeepAlive::default()),
    )
        .into_response()
}

/// The state of one open stream.
struct Feed {
    app: AppState,
    sel: Selection,
    history: Arc<History>,
    /// Held only to keep the history sampled while this stream is open.
    _sampler: Arc<Sampler>,
    /// The newest history point already sent.
    seq: u64,
    first: bool,
    done: bool,
    tick: Interval,
}

impl Feed {
    /// Checks the token and the query (an unknown channel is refused now, not mid-stream).
    fn start(app: AppState, headers: &HeaderMap, q: Params) -> Result<Feed, ApiError> {
        let p = params(q)?;
        auth::check(&app, headers, &p)?;
        let sel = Selection::from_params(&p, DEFAULT_PER_PAGE)?;
        if let Some(name) = &sel.channel {
            if app.registry.get(name).is_none() {
                return Err(ApiError::NoSuchChannel(name.clone()));
            }
        }
        let history = History::of(&app.registry);
        let sampler = history.subscribe(&app.registry);
        let mut tick = interval(EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Ok(Feed {
            app,
            sel,
            history,
            _sampler: sampler,
            seq: 0,
            first: true,
            done: false,
            tick,
        })
    }

    /// The next event: the statistics now and the new history points, or an `api-error`
    /// event that ends the stream.
    fn next_event(&mut self) -> Event {
        let stats = match collect(&self.app, &self.sel) {
            Ok(s) => s,
            Err(e) => {
                self.done = true;
                return error_event(&e.to_string(), e.kind());
            }
        };
        let delta = self.history.since(self.seq, self.sel.channel.as_deref());
        let update = Update {
            stats: &stats,
            subscribers: self.history.subscribers(),
            history_full: self.first,
            history: delta.by_channel,
        };
        let event = match Event::default().json_data(&update) {
            Ok(e) => e,
            Err(e) => return error_event(&e.to_string(), "internal"),
        };
        self.seq = delta.seq;
        if std::mem::replace(&mut self.first, false) {
            event.retry(RETRY)
        } else {
            event
        }
    }
}

/// An `event: api-error` whose data is `{"error": KIND, "message": TEXT}` (not `error`,
/// which EventSource uses for its own connection errors).
fn error_event(message: &str, kind: &str) -> Event {
    let body = serde_json::json!({ "error": kind, "message": message });
    Event::default().event("api-error").data(body.to_string())
}
