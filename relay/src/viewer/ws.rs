//! The WebSocket viewer endpoint, `GET /ws/{channel}` with subprotocol `lockstep.v1`
//! (docs/PROTOCOL.md): Hello, the channel's snapshot, then live frames; clock-sync pings
//! answered, feedback collected.
//!
//! Two tasks per viewer: the reader decodes what the player sends; the writer sends frames
//! — the broadcast's own pre-framed bytes, a batch of whatever is already queued in one
//! vectored write, never waiting to batch — and the pongs and closes the reader asks for.
//! Garbage from a player closes that player's connection with a reason and a log line; it
//! touches nothing shared.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use lockstep_media::wire::{self, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::feed::{Feed, Item};
use crate::app::AppState;
use crate::channel::{Channel, Frame, ViewerKind, ViewerStats};
use crate::clock::now_us;
use crate::websocket::codec::{self, close_code, opcode, ClientMessage};
use crate::websocket::conn::{FrameReader, FrameWriter, ReadError};
use crate::websocket::handshake;

/// Most frames written in one vectored write.
const MAX_BATCH: usize = 64;
/// Largest message a player may send (feedback and pings are tens of bytes).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

pub async fn handler(
    Path(channel): Path<String>,
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let Some(ch) = app.registry.channel(&channel) else {
        return (StatusCode::BAD_REQUEST, "invalid channel name").into_response();
    };
    let ua = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect::<String>();
    let upgrade = match handshake::accept(req, wire::SUBPROTOCOL) {
        Ok(u) => u,
        Err(e) => {
            tracing::info!(channel = %ch.name, %peer, "refused WebSocket request: {e}");
            return e.into_response();
        }
    };
    tokio::spawn(async move {
        match handshake::connect(upgrade.on_upgrade).await {
            Ok(halves) => session(halves, ch, app, peer, ua).await,
            Err(e) => tracing::info!(%peer, "WebSocket upgrade failed: {e}"),
        }
    });
    upgrade.response
}

/// What the reader asks the writer to send.
enum ToWriter {
    /// Answer a clock-sync ping received at relay time `t1`.
    Pong { t0: u64, t1: u64 },
    /// Answer a WebSocket-level ping.
    WsPong(Bytes),
    /// Close: with an Error message first when `error`.
    Close {
        code: u16,
        reason: String,
        error: bool,
    },
}

async fn session(
    halves: handshake::Halves,
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
    let (tx, rx) = mpsc::channel::<ToWriter>(16);
    let reader = FrameReader::new(halves.reader, halves.early, MAX_CLIENT_MESSAGE);
    let read_task = tokio::spawn(read_loop(
        reader,
        tx,
        stats.clone(),
        channel.name.clone(),
        peer,
        app.clone(),
    ));
    let writer = FrameWriter::new(halves.writer);
    let end = write_loop(writer, channel.clone(), rx, stats.clone(), app.clone()).await;
    read_task.abort();
    app.metrics.viewers.dec();
    tracing::info!(channel = %channel.name, %peer, viewer = stats.id, reason = %end, "viewer left");
    drop(guard);
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: FrameReader<R>,
    to_writer: mpsc::Sender<ToWriter>,
    stats: Arc<ViewerStats>,
    channel: String,
    peer: SocketAddr,
    app: AppState,
) {
    let close = |code, reason: &str, error| ToWriter::Close {
        code,
        reason: reason.to_string(),
        error,
    };
    loop {
        let data = match reader.next().await {
            Ok(ClientMessage::Binary(b)) => b,
            Ok(ClientMessage::Text(_)) => {
                app.metrics.rejected_messages.inc();
                tracing::warn!(%channel, %peer, "text message from viewer: closing (binary only)");
                let _ = to_writer
                    .send(close(
                        close_code::UNSUPPORTED_DATA,
                        "binary messages only",
                        false,
                    ))
                    .await;
                return;
            }
            Ok(ClientMessage::Ping(p)) => {
                let _ = to_writer.try_send(ToWriter::WsPong(p));
                continue;
            }
            Ok(ClientMessage::Pong) => continue,
            Ok(ClientMessage::Close { .. }) | Err(ReadError::Eof) => {
                let _ = to_writer.send(close(close_code::NORMAL, "", false)).await;
                return;
            }
            Err(ReadError::Io(e)) => {
                tracing::debug!(%channel, %peer, "websocket read error: {e}");
                let _ = to_writer
                    .send(close(close_code::GOING_AWAY, "", false))
                    .await;
                return;
            }
            Err(ReadError::Frame(e)) => {
                app.metrics.rejected_messages.inc();
                tracing::warn!(%channel, %peer, "bad WebSocket frame from viewer: {e}; closing");
                let _ = to_writer
                    .send(close(e.close_code(), &e.to_string(), false))
                    .await;
                return;
            }
        };
        let t1 = now_us();
        match wire::decode(data) {
            Ok(Message::Ping(p)) => {
                // Full queue: drop the ping (the player retries); never block reading.
                let _ = to_writer.try_send(ToWriter::Pong { t0: p.t0, t1 });
            }
            Ok(Message::Feedback(f)) => stats.set_feedback(f),
            Ok(Message::Subscribe(s)) => {
                if !s.channel.is_empty() && s.channel != channel {
                    let _ = to_writer
                        .send(close(
                            close_code::PROTOCOL_ERROR,
                            "subscribe names another channel",
                            true,
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
                let reason = format!("malformed message: {e}");
                let _ = to_writer
                    .send(close(close_code::PROTOCOL_ERROR, &reason, true))
                    .await;
                return;
            }
        }
    }
}

/// A control message framed for this viewer alone.
fn own_frame(msg: &Message) -> Bytes {
    let mut m = Vec::new();
    wire::encode(msg, &mut m);
    codec::server_frame(opcode::BINARY, &m)
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    channel: Arc<Channel>,
    mut from_reader: mpsc::Receiver<ToWriter>,
    stats: Arc<ViewerStats>,
    app: AppState,
) -> String {
    writer.push(own_frame(&Message::Hello(wire::Hello {
        version: wire::VERSION,
        relay_time_us: now_us(),
        server: concat!("lockstep-relay/", env!("CARGO_PKG_VERSION")).to_string(),
    })));
    let (mut feed, live) = Feed::join(channel.clone());
    if !live {
        // An idle channel: say so (with its current epoch); the next publisher's
        // stream-info follows.
        writer.push(own_frame(&Message::StreamInfo(wire::StreamInfo {
            epoch: feed.epoch(),
            flags: 0,
            delay_ms: channel.delay_ms(),
            channel: channel.name.clone(),
            tracks: Vec::new(),
        })));
    }
    if writer.flush().await.is_err() {
        return "closed before hello".into();
    }
    // Reused for every wake-up: no allocation per frame per viewer.
    let mut batch: Vec<Item> = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            biased;
            m = from_reader.recv() => {
                match m.unwrap_or(ToWriter::Close { code: close_code::GOING_AWAY, reason: String::new(), error: false }) {
                    ToWriter::Pong { t0, t1 } => {
                        writer.push(own_frame(&Message::Pong(wire::Pong { t0, t1, t2: now_us() })));
                    }
                    ToWriter::WsPong(payload) => writer.push(codec::server_frame(opcode::PONG, &payload)),
                    ToWriter::Close { code, reason, error } => {
                        if error {
                            writer.push(own_frame(&Message::Error(wire::ErrorMsg {
                                code: wire::code::BAD_MESSAGE,
                                message: reason.clone(),
                            })));
                        }
                        writer.push(codec::close_frame(code, &reason));
                        let _ = writer.flush().await;
                        writer.shutdown().await;
                        return if reason.is_empty() { "viewer closed".into() } else { reason };
                    }
                }
                if writer.flush().await.is_err() {
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
                let mut oldest_live_ingest = u64::MAX;
                for item in batch.drain(..) {
                    match item {
                        Item::Cached(f) => send_frame(&mut writer, &f, &stats, &app),
                        Item::Frame(f) => {
                            oldest_live_ingest = oldest_live_ingest.min(f.ingest_us);
                            send_frame(&mut writer, &f, &stats, &app);
                        }
                        Item::Skipped { frames, bytes } => {
                            stats.skipped(frames as u64);
                            app.metrics.frames_skipped.inc_by(frames as u64);
                            tracing::info!(channel = %channel.name, viewer = stats.id, frames, "slow viewer skipped to the next keyframe");
                            writer.push(own_frame(&Message::Skipped(wire::Skipped { frames, bytes })));
                        }
                    }
                }
                if writer.flush().await.is_err() {
                    return "write failed".into();
                }
                if oldest_live_ingest != u64::MAX {
                    let delay = now_us().saturating_sub(oldest_live_ingest);
                    app.metrics.delivery_delay.observe(delay as f64 / 1e6);
                }
            }
        }
    }
}

fn send_frame<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    f: &Frame,
    stats: &ViewerStats,
    app: &AppState,
) {
    stats.sent(f.len());
    app.metrics.bytes_out.inc_by(f.len() as u64);
    app.metrics.frames_out.inc();
    writer.push(f.ws_frame().clone());
}
