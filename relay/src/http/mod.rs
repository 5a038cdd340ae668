//! The HTTP side of the relay: one axum router for viewers (WebSocket, HTTP-FLV), HTTP-FLV
//! push ingest, the JSON API and Prometheus metrics ([`api`]), and the `www/` folder.

pub mod api;
pub mod serve;

use axum::http::{header, HeaderValue};
use axum::routing::{any, get};
use axum::Router;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::AppState;
use crate::ingest::http_push;
use crate::viewer::{clock, flv, ws};

pub fn router(app: AppState) -> Router {
    // The www folder is public: pages on other origins may load the player module from it.
    let www = tower::ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::if_not_present(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ))
        .service(ServeDir::new(&app.www).append_index_html_on_directories(true));
    Router::new()
        .route("/ws/{channel}", get(ws::handler))
        .route("/clock", get(clock::handler))
        .route("/live/{file}", get(flv::handler))
        .route("/ingest/{channel}", any(http_push::handler))
        .merge(api::routes())
        .fallback_service(www)
        .with_state(app)
}
