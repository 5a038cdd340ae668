//! The HTTP/1.1 accept loop: one hyper connection per TCP stream (TCP_NODELAY set), the
//! router served with upgrades, the peer address as axum's `ConnectInfo`, and a graceful
//! stop.
//!
//! Not `axum::serve`: that serves through hyper-util's auto (HTTP/1 + h2c) builder, which
//! wraps every stream in a private `Rewind` type to sniff the protocol, so an upgraded
//! WebSocket could never be taken back as the `TcpStream` it is and split without a lock
//! ([`crate::websocket::handshake::connect`]). Browsers and players speak HTTP/1.1 to a
//! cleartext relay; nothing here needs h2c.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// A client that has not sent its request headers within this is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `stop` turns true, then stops accepting and waits for
/// the open HTTP exchanges (upgraded connections are their own tasks by then).
pub async fn serve(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    // Every connection task holds a receiver; the sender learns when the last one is gone.
    let (open_tx, open) = watch::channel(());
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!("HTTP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(%peer, "TCP_NODELAY: {e}");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(req)
        });
        let conn = builder
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        let mut stop = stop.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stopped(&mut stop) => {
                    // Finish the exchange in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "HTTP connection: {e}");
            }
            drop(open);
        });
    }
    drop(listener);
    drop(open);
    open_tx.closed().await;
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // A closed sender is a stop as well.
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::handshake;
    use axum::extract::Request;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use std::sync::{Arc, Mutex};
    use tokio::sync::oneshot;

    type Report = Arc<Mutex<Option<oneshot::Sender<(bool, SocketAddr)>>>>;

    /// An upgraded WebSocket comes back as the plain TCP stream (split without a lock), and
    /// handlers see the peer address.
    #[tokio::test]
    async fn websocket_upgrades_hand_back_the_tcp_stream() {
        let (tx, rx) = oneshot::channel();
        let report: Report = Arc::new(Mutex::new(Some(tx)));
        let router = Router::new().route(
            "/ws",
            get(
                move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request| async move {
                    let up = match handshake::accept(req, "test") {
                        Ok(u) => u,
                        Err(e) => return e.into_response(),
                    };
                    let report = report.clone();
                    tokio::spawn(async move {
                        let halves = handshake::connect(up.on_upgrade).await.unwrap();
                        if let Some(tx) = report.lock().unwrap().take() {
                            let _ = tx.send((halves.lock_free, peer));
                        }
                    });
                    let r: Response = up.response;
                    r
                },
            ),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let server = tokio::spawn(serve(listener, router, stop));

        let (_ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        let (lock_free, peer) = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .unwrap()
            .unwrap();
        assert!(lock_free, "the upgraded connection was not the TCP stream");
        assert!(peer.ip().is_loopback() && peer.port() != addr.port());

        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }
}
