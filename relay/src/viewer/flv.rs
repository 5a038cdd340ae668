//! HTTP-FLV output, `GET /live/{channel}.flv`: the FLV header, then the channel's snapshot
//! (metadata, configurations, cached GOP) and live tags, as FLV tags. What ffplay, VLC,
//! mpegts.js and edge relays (`--pull NAME=http://origin/live/NAME.flv`) consume.
//! The same broadcast frames as WebSocket viewers: each tag body is the shared `Bytes`;
//! only the 11-byte tag header and the 4-byte trailer are written per viewer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use lockstep_media::flv::tag::{write_file_header, TAG_HEADER_LEN};

use super::feed::{Feed, Item};
use crate::app::AppState;
use crate::channel::{Channel, ViewerKind};

pub async fn handler(
    Path(file): Path<String>,
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(name) = file.strip_suffix(".flv") else {
        return (StatusCode::NOT_FOUND, "expected /live/NAME.flv").into_response();
    };
    let Some(channel) = app.registry.channel(name) else {
        return (StatusCode::BAD_REQUEST, "invalid channel name").into_response();
    };
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect::<String>();
    tracing::info!(channel = %channel.name, %peer, "HTTP-FLV viewer joined");
    let body = Body::from_stream(flv_stream(channel, app, peer, ua));
    (
        [
            (header::CONTENT_TYPE, "video/x-flv"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}

struct FlvViewer {
    feed: Feed,
    stats: Arc<crate::channel::ViewerStats>,
    channel: Arc<Channel>,
    app: AppState,
    peer: SocketAddr,
    header_sent: bool,
    /// Chunks of the current tag still to yield: the body, then PreviousTagSize.
    chunks: std::collections::VecDeque<Bytes>,
}

impl Drop for FlvViewer {
    fn drop(&mut self) {
        self.channel.viewers.remove(self.stats.id);
        self.app.metrics.viewers.dec();
        tracing::info!(channel = %self.channel.name, peer = %self.peer, "HTTP-FLV viewer left");
    }
}

fn flv_stream(
    channel: Arc<Channel>,
    app: AppState,
    peer: SocketAddr,
    ua: String,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let stats = channel
        .viewers
        .add_detached(peer.to_string(), ua, ViewerKind::HttpFlv);
    app.metrics.viewers.inc();
    let (feed, _) = Feed::join(channel.clone());
    let viewer = FlvViewer {
        feed,
        stats,
        channel,
        app,
        peer,
        header_sent: false,
        chunks: Default::default(),
    };
    stream::unfold(viewer, |mut v| async move {
        if !v.header_sent {
            v.header_sent = true;
            // Flags for the tracks the channel has: a consumer such as ffmpeg waits for a
            // track the header announces.
            let (audio, video) = v.channel.tracks();
            let mut out = Vec::with_capacity(13);
            write_file_header(&mut out, audio, video);
            return Some((Ok(Bytes::from(out)), v));
        }
        if let Some(chunk) = v.chunks.pop_front() {
            return Some((Ok(chunk), v));
        }
        loop {
            let frame = match v.feed.next().await? {
                Item::Frame(f) | Item::Cached(f) => f,
                Item::Skipped { frames, .. } => {
                    v.stats.skipped(frames as u64);
                    continue;
                }
            };
            let Some((kind, ts, body)) = frame.flv_tag() else {
                continue;
            };
            // The tag header and trailer are per viewer; the body is the shared Bytes.
            let body = body.slice(..body.len().min(0xFF_FFFF));
            let size = body.len() as u32;
            let mut header = Vec::with_capacity(TAG_HEADER_LEN);
            header.push(kind.type_id()); // TagType
            header.extend_from_slice(&size.to_be_bytes()[1..]); // DataSize
            header.extend_from_slice(&ts.to_be_bytes()[1..]); // Timestamp
            header.push((ts >> 24) as u8); // TimestampExtended
            header.extend_from_slice(&[0, 0, 0]); // StreamID
            let total = TAG_HEADER_LEN + body.len() + 4;
            v.stats.sent(total);
            v.app.metrics.bytes_out.inc_by(total as u64);
            v.app.metrics.frames_out.inc();
            v.chunks.push_back(body);
            let trailer = (size + TAG_HEADER_LEN as u32).to_be_bytes(); // PreviousTagSize
            v.chunks.push_back(Bytes::copy_from_slice(&trailer));
            let out = header;
            return Some((Ok(Bytes::from(out)), v));
        }
    })
}
