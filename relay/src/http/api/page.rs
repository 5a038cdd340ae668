//! `GET /stats`: the statistics dashboard, `stats.html` from the served `www/` folder (its
//! script and styles are then loaded from `/` like any other page file). The page itself is
//! public: it holds no data, and asks for the admin token when the stream refuses it.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::app::AppState;

/// The dashboard's file in the `www/` folder.
pub const FILE: &str = "stats.html";

pub async fn handler(State(app): State<AppState>) -> Response {
    match tokio::fs::read(app.www.join(FILE)).await {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            html,
        )
            .into_response(),
        Err(e) => ApiError::NoPage(format!("{FILE}: {e}")).into_response(),
    }
}
