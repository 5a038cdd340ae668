//! The WebSocket viewer endpoint, `GET /ws/{channel}` with subprotocol `lockstep.v1`
//! (docs/PROTOCOL.md): Hello, the channel's snapshot, then live frames; clock-sync pings
//! answered, feedback collected.
//!
//! Two tasks per viewer: the reader decodes what the player sends, the writer sends frames
//! (batching what is already queued into one flush, never waiting to batch) and pongs.
//! Garbage from a player closes that player's connection with a reason and a log line; it
//! touches nothing shared.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use lockstep_media::wire::{self, Message};
use tokio::sync::mpsc;

use super::feed::{Feed, Item};
use crate::app::AppState;
use crate::channel::{Channel, ViewerKind, ViewerStats};
use crate::clock::now_us;

/// Most frames written before one flush.
const MAX_BATCH: usize = 64;

/// WebSocket close codes (RFC 6455 section 7.4.1).
mod close {
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const GOING_AWAY: u16 = 1001;
}

pub async fn handler(
    ws: WebSocketUpgrade,
    Path(channel): Path<String>,
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(ch) = app.registry.channel(&channel) else {
        return (StatusCode::BAD_REQUEST, "invalid channel name").into_response();
    };
    let ua = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect::<String>();
    ws.protocols([wire::SUBPROTOCOL])
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| session(socket, ch, app, peer, ua))
}

async fn session(
    socket: WebSocket,
    channel: Arc<Channel>,
    app: AppState,
    peer: SocketAddr,
    ua: String,
) {
    let guard = channel
        .viewers
        .add(peer.to_string(), ua, ViewerKind::WebSocket);
    let stats = guard.stats.clone();
    app.metrics.viewers.inc();
    tracing::info!(channel = %channel.name, %peer, viewer = stats.id, "viewer joined");
    let (sink, stream) = socket.split();
    let (pong_tx, pong_rx) = mpsc::channel::<(u64, u64)>(16);
    let (close_tx, close_rx) = mpsc::channel::<(u16, String)>(1);
    let reader = tokio::spawn(read_loop(
        stream,
        pong_tx,
        close_tx,
        stats.clone(),
        channel.name.clone(),
        peer,
        app.clone(),
    ));
    let end = write_loop(
        sink,
        channel.clone(),
        pong_rx,
        close_rx,
        stats.clone(),
        app.clone(),
    )
    .await;
    reader.abort();
    app.metrics.viewers.dec();
    tracing::info!(channel = %channel.name, %peer, viewer = stats.id, reason = %end, "viewer left");
    drop(guard);
}

async fn read_loop(
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    pongs: mpsc::Sender<(u64, u64)>,
    close: mpsc::Sender<(u16, String)>,
    stats: Arc<ViewerStats>,
    channel: String,
    peer: SocketAddr,
    app: AppState,
) {
    while let Some(msg) = stream.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%channel, %peer, "websocket read error: {e}");
                break;
            }
        };
        let data: Bytes = match msg {
            WsMessage::Binary(b) => b,
            WsMessage::Text(_) => {
                app.metrics.rejected_messages.inc();
                tracing::warn!(%channel, %peer, "text message from viewer: closing (binary only)");
                let _ = close
                    .send((close::UNSUPPORTED_DATA, "binary messages only".into()))
                    .await;
                return;
            }
            WsMessage::Close(_) => break,
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
        };
        let t1 = now_us();
        match wire::decode(data) {
            Ok(Message::Ping(p)) => {
                // Full queue: drop the ping (the player retries); never block reading.
                let _ = pongs.try_send((p.t0, t1));
            }
            Ok(Message::Feedback(f)) => stats.set_feedback(f),
            Ok(Message::Subscribe(s)) => {
                if !s.channel.is_empty() && s.channel != channel {
                    let _ = close
                        .send((
                            close::PROTOCOL_ERROR,
                            "subscribe names another channel".into(),
                        ))
                        .await;
                    return;
                }
            }
            Ok(Message::Unknown { .. }) => {}
            Ok(other) => {
                app.metrics.rejected_messages.inc();
                tracing::warn!(%channel, %peer, "unexpected message from viewer: {other:?}");
            }
            Err(e) => {
                app.metrics.rejected_messages.inc();
                tracing::warn!(%channel, %peer, "malformed message from viewer: {e}; closing");
                let _ = close
                    .send((close::PROTOCOL_ERROR, format!("malformed message: {e}")))
                    .await;
                return;
            }
        }
    }
    let _ = close.send((close::GOING_AWAY, String::new())).await;
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, WsMessage>,
    channel: Arc<Channel>,
    mut pongs: mpsc::Receiver<(u64, u64)>,
    mut close: mpsc::Receiver<(u16, String)>,
    stats: Arc<ViewerStats>,
    app: AppState,
) -> String {
    let hello = Message::Hello(wire::Hello {
        version: wire::VERSION,
        relay_time_us: now_us(),
        server: concat!("lockstep-relay/", env!("CARGO_PKG_VERSION")).to_string(),
    });
    if sink
        .send(WsMessage::Binary(hello.to_bytes()))
        .await
        .is_err()
    {
        return "closed before hello".into();
    }
    let (mut feed, live) = Feed::join(channel.clone());
    if !live {
        // An idle channel: say so; the stream-info of the next publisher follows.
        let idle = Message::StreamInfo(wire::StreamInfo {
            epoch: feed.epoch(),
            flags: 0,
            delay_ms: channel.delay_ms(),
            channel: channel.name.clone(),
            tracks: Vec::new(),
        });
        if sink.send(WsMessage::Binary(idle.to_bytes())).await.is_err() {
            return "closed".into();
        }
    }
    // Reused for every wake-up: no allocation per frame per viewer.
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            biased;
            c = close.recv() => {
                let (code, reason) = c.unwrap_or((close::GOING_AWAY, String::new()));
                if code != close::GOING_AWAY {
                    let error = Message::Error(wire::ErrorMsg { code: wire::code::BAD_MESSAGE, message: reason.clone() });
                    let _ = sink.send(WsMessage::Binary(error.to_bytes())).await;
                }
                let _ = sink.send(WsMessage::Close(Some(CloseFrame { code, reason: reason.clone().into() }))).await;
                return if reason.is_empty() { "viewer closed".into() } else { reason };
            }
            p = pongs.recv() => {
                let Some((t0, t1)) = p else { continue };
                let pong = Message::Pong(wire::Pong { t0, t1, t2: now_us() });
                if sink.send(WsMessage::Binary(pong.to_bytes())).await.is_err() {
                    return "write failed".into();
                }
            }
            item = feed.next() => {
                let Some(item) = item else { return "channel closed".into() };
                batch.push(item);
                while batch.len() < MAX_BATCH {
                    match feed.try_next() {
                        Some(i) => batch.push(i),
                        None => break,
                    }
                }
                let mut oldest_ingest = u64::MAX;
                for item in batch.drain(..) {
                    let msg = match item {
                        Item::Cached(f) => {
                            stats.sent(f.msg.len());
                            app.metrics.bytes_out.inc_by(f.msg.len() as u64);
                            app.metrics.frames_out.inc();
                            f.msg
                        }
                        Item::Frame(f) => {
                            oldest_ingest = oldest_ingest.min(f.ingest_us);
                            stats.sent(f.msg.len());
                            app.metrics.bytes_out.inc_by(f.msg.len() as u64);
                            app.metrics.frames_out.inc();
                            f.msg
                        }
                        Item::Skipped { frames, bytes } => {
                            stats.skipped(frames as u64);
                            app.metrics.frames_skipped.inc_by(frames as u64);
                            tracing::info!(channel = %channel.name, viewer = stats.id, frames, "slow viewer skipped to the next keyframe");
                            Message::Skipped(wire::Skipped { frames, bytes }).to_bytes()
                        }
                    };
                    if sink.feed(WsMessage::Binary(msg)).await.is_err() {
                        return "write failed".into();
                    }
                }
                if sink.flush().await.is_err() {
                    return "write failed".into();
                }
                if oldest_ingest != u64::MAX {
                    let delay = now_us().saturating_sub(oldest_ingest);
                    app.metrics.delivery_delay.observe(delay as f64 / 1e6);
                }
            }
        }
    }
}
