//! What every HTTP handler and ingest task shares.

use std::path::PathBuf;
use std::sync::Arc;

use crate::channel::Registry;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    /// The folder served at `/` (the demo page, the dashboard).
    pub www: PathBuf,
    /// Bearer token required by `/api/stats` and `/metrics` when set.
    pub admin_token: Option<String>,
}
