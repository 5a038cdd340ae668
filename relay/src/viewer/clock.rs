//! The clock-sync endpoint, `GET /clock` with subprotocol `lockstep.v1` (docs/PROTOCOL.md):
//! a WebSocket that carries nothing but Ping → Pong, so that a Pong never waits behind video.
//!
//! On a viewer's media connection a Pong queues behind the frames already written (in the
//! relay's socket buffer, and on a path that delivers in order, behind every late segment):
//! measured through the sync bench's 50–150 ms in-order proxy, the least `down` delay seen
//! on the media connection was ~78 ms against ~52 ms `up`, which put that viewer's clock
//! 13 ms off. A connection of its own sees the path with nothing queued ahead. The player
//! opens it beside the media connection and falls back to pinging on the media connection
//! when a relay lacks it.
//!
//! One task per connection: read a message, answer it. Anything but a Ping (or an unknown
//! kind, ignored for forward compatibility) closes the connection with a reason; so does
//! silence longer than [`IDLE`].

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use lockstep_media::wire::{self, Message};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::app::AppState;
use crate::clock::now_us;
use crate::websocket::codec::{self, close_code, opcode, ClientMessage};
use crate::websocket::conn::{FrameReader, FrameWriter, ReadError};
use crate::websocket::handshake;

/// Largest message accepted (a Ping is 9 bytes).
const MAX_CLIENT_MESSAGE: usize = 1024;
/// A connection with no message for this long is closed (players ping every second or so).
pub const IDLE: Duration = Duration::from_secs(30);

pub async fn handler(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let upgrade = match handshake::accept(req, wire::SUBPROTOCOL) {
        Ok(u) => u,
        Err(e) => {
            tracing::info!(%peer, "refused clock WebSocket request: {e}");
            return e.into_response();
        }
    };
    tokio::spawn(async move {
        match handshake::connect(upgrade.on_upgrade).await {
            Ok(halves) => {
                let reader = FrameReader::new(halves.reader, halves.early, MAX_CLIENT_MESSAGE);
                let writer = FrameWriter::new(halves.writer);
                app.metrics.clock_connections.inc();
                let end = serve(reader, writer, IDLE).await;
                app.metrics.clock_connections.dec();
                if end.rejected {
                    app.metrics.rejected_messages.inc();
                    tracing::warn!(%peer, "clock connection closed: {}", end.reason);
                } else {
                    tracing::debug!(%peer, "clock connection closed: {}", end.reason);
                }
            }
            Err(e) => tracing::info!(%peer, "clock WebSocket upgrade failed: {e}"),
        }
    });
    upgrade.response
}

/// Why a clock connection ended.
#[derive(Debug)]
pub struct End {
    pub reason: String,
    /// The peer sent something it should not have.
    pub rejected: bool,
}

/// Answers Pings until the peer closes, misbehaves or falls silent for `idle`.
pub async fn serve<R, W>(
    mut reader: FrameReader<R>,
    mut writer: FrameWriter<W>,
    idle: Duration,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let end = |reason: &str, rejected| End {
        reason: reason.to_string(),
        rejected,
    };
    let outcome = loop {
        let msg = match tokio::time::timeout(idle, reader.next()).await {
            Err(_) => break (close_code::GOING_AWAY, end("idle", false)),
            Ok(Ok(m)) => m,
            Ok(Err(ReadError::Eof)) => return end("peer closed", false),
            Ok(Err(ReadError::Io(e))) => return end(&format!("read error: {e}"), false),
            Ok(Err(ReadError::Frame(e))) => {
                break (
                    e.close_code(),
                    end(&format!("bad WebSocket frame: {e}"), true),
                )
            }
        };
        let data = match msg {
            ClientMessage::Binary(b) => b,
            ClientMessage::Text(_) => {
                break (
                    close_code::UNSUPPORTED_DATA,
                    end("binary messages only", true),
                )
            }
            ClientMessage::Ping(p) => {
                writer.push(codec::server_frame(opcode::PONG, &p));
                if writer.flush().await.is_err() {
                    return end("write failed", false);
                }
                continue;
            }
            ClientMessage::Pong => continue,
            ClientMessage::Close { .. } => break (close_code::NORMAL, end("peer closed", false)),
        };
        let t1 = now_us();
        match wire::decode(data) {
            Ok(Message::Ping(p)) => {
                let pong = Message::Pong(wire::Pong {
                    t0: p.t0,
                    t1,
                    t2: now_us(),
                });
                let mut m = Vec::with_capacity(32);
                wire::encode(&pong, &mut m);
                writer.push(codec::server_frame(opcode::BINARY, &m));
                if writer.flush().await.is_err() {
                    return end("write failed", false);
                }
            }
            Ok(Message::Unknown { .. }) => {}
            Ok(other) => {
                let what = format!("only Ping is answered here, not {}", kind_name(&other));
                break (close_code::PROTOCOL_ERROR, end(&what, true));
            }
            Err(e) => {
                break (
                    close_code::PROTOCOL_ERROR,
                    end(&format!("malformed message: {e}"), true),
                )
            }
        }
    };
    let (code, end) = outcome;
    writer.push(codec::close_frame(code, &end.reason));
    let _ = writer.flush().await;
    writer.shutdown().await;
    end
}

/// A message's kind, for the close reason.
fn kind_name(m: &Message) -> &'static str {
    match m {
        Message::Feedback(_) => "Feedback",
        Message::Subscribe(_) => "Subscribe",
        Message::Media(_) => "Media",
        _ => "this message",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_silent_peer_is_closed_after_the_idle_time() {
        let (client, server) = tokio::io::duplex(4096);
        let (server_read, server_write) = tokio::io::split(server);
        let reader = FrameReader::new(server_read, Bytes::new(), MAX_CLIENT_MESSAGE);
        let writer = FrameWriter::new(server_write);
        let end = serve(reader, writer, Duration::from_millis(50)).await;
        assert_eq!(end.reason, "idle");
        assert!(!end.rejected);
        // The peer got a Close frame saying so: 1001 "idle".
        let mut client = client;
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, [0x88, 6, 0x03, 0xe9, b'i', b'd', b'l', b'e']);
    }
}
