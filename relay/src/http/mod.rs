//! The HTTP side of the relay: one axum router for viewers (WebSocket, HTTP-FLV), HTTP-FLV
//! push ingest, the JSON API and Prometheus metrics ([`api`]), and the `www/` folder.

pub mod api;

use axum::routing::{any, get};
use axum::Router;
use tower_http::services::ServeDir;

use crate::app::AppState;
use crate::ingest::http_push;
use crate::viewer::{flv, ws};

pub fn router(app: AppState) -> Router {
    let www = ServeDir::new(&app.www).append_index_html_on_directories(true);
    Router::new()
        .route("/ws/{channel}", get(ws::handler))
        .route("/live/{file}", get(flv::handler))
        .route("/ingest/{channel}", any(http_push::handler))
        .merge(api::routes())
        .fallback_service(www)
        .with_state(app)
}
