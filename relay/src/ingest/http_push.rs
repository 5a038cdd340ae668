//! HTTP-FLV push ingest: `PUT` or `POST /ingest/{channel}?key=KEY` with an FLV body, usually
//! chunked and open-ended (`ffmpeg -re -i in.mp4 -c copy -f flv -method PUT URL`).
//!
//! The body is read as a stream (`Request::into_body`, which no body-size limit applies to)
//! and every tag goes to the channel as soon as its last byte arrives. The answer comes when
//! the body ends: 200 with a one-line summary, 400 with the demuxer's error for malformed
//! FLV, 403 for a wrong key, 409 when the channel already has a publisher, 405 for other
//! methods, 408 after 30 s without data.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::BodyDataStream;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::flv_stream::{FlvIngest, FlvIngestError};
use super::publisher::{LivePublisher, READ_TIMEOUT};
use crate::app::AppState;
use crate::channel::PublishError;

/// Why a push ended early.
#[derive(Debug, thiserror::Error)]
enum PushError {
    #[error(transparent)]
    Flv(#[from] FlvIngestError),
    #[error("reading the request body: {0}")]
    Body(#[from] axum::Error),
    #[error("no data for {} s", READ_TIMEOUT.as_secs())]
    Timeout,
}

pub async fn handler(
    Path(channel): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if request.method() != Method::PUT && request.method() != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "PUT, POST")],
            "use PUT or POST with an FLV body\n",
        )
            .into_response();
    }
    let mut live = match LivePublisher::claim(
        &app,
        &channel,
        query.get("key").map(String::as_str),
        &format!("http:{peer}"),
    ) {
        Ok(live) => live,
        Err(e) => {
            tracing::warn!(%channel, %peer, "HTTP push refused: {e}");
            let status = match e {
                PublishError::BadKey(_) => StatusCode::FORBIDDEN,
                PublishError::Busy(_) => StatusCode::CONFLICT,
                PublishError::BadName(_) => StatusCode::BAD_REQUEST,
            };
            drain(request.into_body().into_data_stream()).await;
            return (status, format!("{e}\n")).into_response();
        }
    };
    tracing::info!(%channel, %peer, "HTTP push started");
    let mut ingest = FlvIngest::new();
    let mut bytes = 0u64;
    let mut body = request.into_body().into_data_stream();
    let result = pump(&mut body, &mut live, &mut ingest, &mut bytes).await;
    drop(live);
    if result.is_err() {
        drain(body).await;
    }
    let summary = format!(
        "{} tags ({} skipped), {bytes} bytes",
        ingest.tags, ingest.rejected
    );
    match result {
        Ok(()) => {
            tracing::info!(%channel, %peer, "HTTP push ended: {summary}");
            (StatusCode::OK, format!("ok: {summary} into {channel}\n")).into_response()
        }
        Err(e) => {
            tracing::warn!(%channel, %peer, "HTTP push dropped: {e} after {summary}");
            let status = match e {
                PushError::Flv(FlvIngestError::Demux(_)) => StatusCode::BAD_REQUEST,
                PushError::Flv(FlvIngestError::Replaced) => StatusCode::CONFLICT,
                PushError::Body(_) => StatusCode::BAD_REQUEST,
                PushError::Timeout => StatusCode::REQUEST_TIMEOUT,
            };
            (status, format!("{e} after {summary}\n")).into_response()
        }
    }
}

/// Most of a refused request's body read (and dropped) before answering.
const DRAIN_BYTES: usize = 1 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads some of a refused body before answering: closing a connection with unread data makes TCP
/// reset it, and the client may lose the answer (403 / 409) in the reset. Bounded, so an
/// endless stream is answered after [`DRAIN_TIME`].
async fn drain(mut body: BodyDataStream) {
    let mut read = 0;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = body.next().await {
            read += chunk.len();
            if read >= DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

/// Streams the body through the demuxer into the publisher until it ends.
async fn pump(
    body: &mut BodyDataStream,
    live: &mut LivePublisher,
    ingest: &mut FlvIngest,
    bytes: &mut u64,
) -> Result<(), PushError> {
    loop {
        let chunk = tokio::select! {
            _ = live.publisher.wait_replaced() => return Err(FlvIngestError::Replaced.into()),
            next = tokio::time::timeout(READ_TIMEOUT, body.next()) => next.map_err(|_| PushError::Timeout)?,
        };
        let Some(chunk) = chunk else {
            ingest.finish()?;
            return Ok(());
        };
        let chunk = chunk?;
        *bytes += chunk.len() as u64;
        live.count_bytes(chunk.len());
        ingest.push(chunk, &live.publisher)?;
    }
}
