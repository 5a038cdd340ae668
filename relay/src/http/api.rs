//! JSON API and metrics: `GET /api/channels`, `GET /api/stats`, `GET /metrics`.
//! (being written)

use axum::Router;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
