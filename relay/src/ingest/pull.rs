//! (being written)
use tokio::sync::watch;
use crate::app::AppState;
pub async fn run(_n: String, _u: String, _app: AppState, _s: watch::Receiver<bool>) {}
