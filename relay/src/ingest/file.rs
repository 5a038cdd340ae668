//! (being written)
use std::path::PathBuf;
use tokio::sync::watch;
use crate::app::AppState;
pub async fn run(_n: String, _p: PathBuf, _l: bool, _app: AppState, _s: watch::Receiver<bool>) {}
