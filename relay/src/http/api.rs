//! JSON API and metrics: `GET /api/channels` (public), `GET /api/stats`,
//! `GET /api/stats/stream` and `GET /metrics` (behind the admin token when one is set), and
//! the dashboard page `GET /stats` (public; its data comes from the stream).
//!
//! - [`auth`]: the admin token check (`Authorization: Bearer TOKEN` or `?token=TOKEN`).
//! - [`stats`]: `/api/stats`, aggregated per channel in one pass over its viewers.
//! - [`stream`]: `/api/stats/stream`, the same as Server-Sent Events once a second, with
//!   the chart history recorded by [`history`] while a stream is open.
//! - [`page`]: `/stats`, serving `www/stats.html`.
//! - [`prom`]: `/metrics`, the Prometheus registry plus per-channel gauges.
//!
//! Every error is an [`ApiError`], answered as JSON `{"error": KIND, "message": TEXT}`.

mod auth;
mod history;
mod page;
mod prom;
mod stats;
mod stream;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::app::AppState;
use crate::channel::{Channel, ChannelInfo};

/// When the API routes were built: the relay's start, for `uptime_s`.
static STARTED: OnceLock<Instant> = OnceLock::new();

/// The query string, as given (only the last value of a repeated key counts).
type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

pub fn routes() -> Router<AppState> {
    STARTED.get_or_init(Instant::now);
    Router::new()
        .route("/api/channels", get(channels))
        .route("/api/stats", get(stats::handler))
        .route("/api/stats/stream", get(stream::handler))
        .route("/stats", get(page::handler))
        .route("/metrics", get(prom::handler))
}

/// Seconds since the relay started.
fn uptime_s() -> f64 {
    STARTED.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Why an API request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("admin token required: send `Authorization: Bearer TOKEN` or `?token=TOKEN`")]
    Unauthorized,
    #[error("bad query: {0}")]
    BadQuery(String),
    #[error("no channel named {0:?}")]
    NoSuchChannel(String),
    #[error("page not available: {0}")]
    NoPage(String),
}

impl ApiError {
    fn kind(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::BadQuery(_) => "bad_query",
            ApiError::NoSuchChannel(_) => "no_such_channel",
            ApiError::NoPage(_) => "not_found",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::NoSuchChannel(_) | ApiError::NoPage(_) => StatusCode::NOT_FOUND,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.kind(), "message": self.to_string() });
        let mut resp = (
            self.status(),
            [(header::CACHE_CONTROL, "no-store")],
            Json(body),
        )
            .into_response();
        if self == ApiError::Unauthorized {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"lockstep\""),
            );
        }
        resp
    }
}

/// The query parameters, or a typed error for a malformed query string.
fn params(q: Params) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(m)| m)
        .map_err(|e| ApiError::BadQuery(e.body_text()))
}

/// Where to watch a channel (paths on this relay).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Urls {
    /// WebSocket, subprotocol `lockstep.v1`.
    pub ws: String,
    /// HTTP-FLV.
    pub flv: String,
    /// The player page.
    pub page: String,
}

impl Urls {
    /// Channel names are `A-Z a-z 0-9 _ - .` only, so they need no escaping in a path.
    pub fn of(name: &str) -> Self {
        Urls {
            ws: format!("/ws/{name}"),
            flv: format!("/live/{name}.flv"),
            page: format!("/?channel={name}"),
        }
    }
}

/// A channel as `/api/channels` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublicChannel {
    #[serde(flatten)]
    pub info: ChannelInfo,
    pub urls: Urls,
}

impl PublicChannel {
    /// The channel's facts without any address (the publisher's is withheld).
    pub fn of(channel: &Channel) -> Self {
        let mut info = channel.info();
        info.publisher = None;
        let urls = Urls::of(&info.name);
        PublicChannel { info, urls }
    }
}

#[derive(Debug, serde::Serialize)]
struct ChannelList {
    channels: Vec<PublicChannel>,
}

/// `GET /api/channels`: every channel (live or waiting for a publisher), sorted by name.
async fn channels(State(app): State<AppState>) -> Response {
    let channels = app
        .registry
        .list()
        .iter()
        .map(|c| PublicChannel::of(c))
        .collect();
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        Json(ChannelList { channels }),
    )
        .into_response()
}
