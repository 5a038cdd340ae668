//! (being written)
use tokio::net::TcpListener;
use tokio::sync::watch;
use crate::app::AppState;
pub async fn serve(_l: TcpListener, _app: AppState, _s: watch::Receiver<bool>) {}
