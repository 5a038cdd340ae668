//! Pull ingest, `--pull NAME=URL`: the relay fetches a live stream and publishes it on a
//! local channel, reconnecting when it drops.
//!
//! - `http://HOST/PATH` (HTTP-FLV, e.g. another relay's `/live/NAME.flv`): a streamed GET
//!   whose body goes through [`FlvIngest`]. (`https://` needs reqwest's TLS features, which
//!   this build does not enable: such a URL fails with a clear error on each attempt.)
//! - `rtmp://HOST[:PORT]/APP/STREAM`: an `rml_rtmp` client session that plays STREAM; the
//!   media is read by a [`MediaTap`] beside it (the session drops media on an unexpected
//!   message stream id, as ffmpeg's `-listen 1` server sends it).
//!
//! The channel is claimed only once the upstream answered, with the key configured for it,
//! and released when the connection ends. Attempts back off from 0.5 s doubling to 10 s;
//! the delay resets after a connection that delivered tags. Every attempt is logged.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use lockstep_media::flv::metadata::parse_script_tag;
use lockstep_media::flv::TagKind;
use rml_rtmp::chunk_io::{ChunkDeserializationError, ChunkDeserializer};
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionError, ClientSessionEvent, ClientSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::flv_stream::{FlvIngest, FlvIngestError};
use super::publisher::{configured_key, stopped, LivePublisher, READ_TIMEOUT};
use crate::app::AppState;
use crate::channel::PublishError;

const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why one pull attempt ended.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("unsupported pull URL {0:?} (expected http://... or rtmp://HOST[:PORT]/APP/STREAM)")]
    BadUrl(String),
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("upstream answered HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error(transparent)]
    Flv(#[from] FlvIngestError),
    #[error("publishing locally: {0}")]
    Publish(#[from] PublishError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("RTMP handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("RTMP: {0}")]
    Rtmp(#[from] ClientSessionError),
    #[error("RTMP chunks: {0}")]
    Chunks(#[from] ChunkDeserializationError),
    #[error("upstream refused: {0}")]
    Refused(String),
    #[error("malformed RTMP message from upstream (the RTMP parser gave up)")]
    ParserPanic,
    #[error("connecting timed out")]
    ConnectTimeout,
    #[error("no data for {} s", READ_TIMEOUT.as_secs())]
    Timeout,
    #[error("upstream ended the stream")]
    Ended,
}

/// Pulls `url` into channel `name` until shutdown.
pub async fn run(name: String, url: String, app: AppState, mut shutdown: watch::Receiver<bool>) {
    let source = match Source::parse(&url) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(channel = %name, %url, "pull disabled: {e}");
            return;
        }
    };
    let client = match reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(channel = %name, %url, "pull disabled: HTTP client: {e}");
            return;
        }
    };
    let pull = Pull {
        key: configured_key(&app, &name),
        peer: format!("pull:{url}"),
        name,
        url,
        app,
        client,
    };
    let mut backoff = MIN_BACKOFF;
    for attempt in 1u64.. {
        tracing::info!(channel = %pull.name, url = %pull.url, attempt, "pull: connecting");
        let mut tags = 0u64;
        let result = tokio::select! {
            _ = stopped(&mut shutdown) => return,
            r = pull.once(&source, &mut tags) => r,
        };
        if tags > 0 {
            backoff = MIN_BACKOFF;
        }
        match result {
            Ok(()) | Err(PullError::Ended) => {
                tracing::info!(channel = %pull.name, url = %pull.url, tags, "pull: upstream ended; reconnecting in {backoff:?}")
            }
            Err(e) => {
                tracing::warn!(channel = %pull.name, url = %pull.url, tags, "pull: {e}; reconnecting in {backoff:?}")
            }
        }
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Where to pull from.
enum Source {
    Http,
    Rtmp {
        /// `host:port`.
        addr: String,
        app: String,
        stream: String,
        tc_url: String,
    },
}

impl Source {
    fn parse(url: &str) -> Result<Self, PullError> {
        let bad = || PullError::BadUrl(url.to_string());
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(Source::Http);
        }
        let rest = url.strip_prefix("rtmp://").ok_or_else(bad)?;
        let (authority, path) = rest.split_once('/').ok_or_else(bad)?;
        let (app, stream) = path.split_once('/').ok_or_else(bad)?;
        if authority.is_empty() || app.is_empty() || stream.is_empty() {
            return Err(bad());
        }
        let addr = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:1935")
        };
        Ok(Source::Rtmp {
            tc_url: format!("rtmp://{authority}/{app}"),
            addr,
            app: app.to_string(),
            stream: stream.to_string(),
        })
    }
}

struct Pull {
    name: String,
    url: String,
    key: Option<String>,
    peer: String,
    app: AppState,
    client: reqwest::Client,
}

impl Pull {
    async fn once(&self, source: &Source, tags: &mut u64) -> Result<(), PullError> {
        match source {
            Source::Http => self.http(tags).await,
            Source::Rtmp {
                addr,
                app,
                stream,
                tc_url,
            } => self.rtmp(addr, app, stream, tc_url, tags).await,
        }
    }

    fn claim(&self) -> Result<LivePublisher, PublishError> {
        let live = LivePublisher::claim(&self.app, &self.name, self.key.as_deref(), &self.peer)?;
        tracing::info!(channel = %self.name, url = %self.url, "pull: live");
        Ok(live)
    }

    async fn http(&self, tags: &mut u64) -> Result<(), PullError> {
        let response = tokio::time::timeout(CONNECT_TIMEOUT, self.client.get(&self.url).send())
            .await
            .map_err(|_| PullError::ConnectTimeout)??;
        if !response.status().is_success() {
            return Err(PullError::Status(response.status()));
        }
        let mut live = self.claim()?;
        let mut ingest = FlvIngest::new();
        let mut body = response.bytes_stream();
        loop {
            let next = tokio::select! {
                _ = live.publisher.wait_replaced() => return Err(FlvIngestError::Replaced.into()),
                next = tokio::time::timeout(READ_TIMEOUT, body.next()) => next.map_err(|_| PullError::Timeout)?,
            };
            let Some(chunk) = next else {
                ingest.finish()?;
                return Err(PullError::Ended);
            };
            let chunk = chunk?;
            live.count_bytes(chunk.len());
            let pushed = ingest.push(chunk, &live.publisher);
            *tags = ingest.tags;
            pushed?;
        }
    }

    async fn rtmp(
        &self,
        addr: &str,
        app: &str,
        stream_key: &str,
        tc_url: &str,
        tags: &mut u64,
    ) -> Result<(), PullError> {
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| PullError::ConnectTimeout)??;
        stream.set_nodelay(true)?;
        let mut buf = vec![0u8; 64 * 1024];

        let mut handshake = Handshake::new(PeerType::Client);
        stream
            .write_all(&handshake.generate_outbound_p0_and_p1()?)
            .await?;
        let leftover = loop {
            let n = read(&mut stream, &mut buf).await?;
            let step = catch_unwind(AssertUnwindSafe(|| handshake.process_bytes(&buf[..n])))
                .map_err(|_| PullError::ParserPanic)??;
            match step {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    stream.write_all(&response_bytes).await?
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    stream.write_all(&response_bytes).await?;
                    break remaining_bytes;
                }
            }
        };

        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(tc_url.to_string());
        let (mut session, initial) = ClientSession::new(config)?;
        let mut out = Vec::new();
        let mut events = Vec::new();
        split(initial, &mut out, &mut events);
        split(
            vec![session.request_connection(app.to_string())?],
            &mut out,
            &mut events,
        );
        stream.write_all(&out).await?;

        let mut live: Option<LivePublisher> = None;
        let mut tap = MediaTap::new();
        let mut media = Vec::new();
        let mut play_requested = false;
        let mut pending = leftover;
        loop {
            if !pending.is_empty() {
                media.clear();
                catch_unwind(AssertUnwindSafe(|| tap.feed(&pending, &mut media)))
                    .map_err(|_| PullError::ParserPanic)??;
                let results = catch_unwind(AssertUnwindSafe(|| session.handle_input(&pending)))
                    .map_err(|_| PullError::ParserPanic)??;
                pending.clear();
                out.clear();
                events.clear();
                split(results, &mut out, &mut events);
                for event in events.drain(..) {
                    match event {
                        ClientSessionEvent::ConnectionRequestAccepted => {
                            let packet = session.request_playback(stream_key.to_string())?;
                            split(vec![packet], &mut out, &mut Vec::new());
                            play_requested = true;
                        }
                        ClientSessionEvent::ConnectionRequestRejected { description } => {
                            return Err(PullError::Refused(description));
                        }
                        ClientSessionEvent::PlaybackRequestAccepted => {
                            live_or_claim(&mut live, self)?;
                        }
                        // Media and metadata come from the tap.
                        ClientSessionEvent::StreamMetadataReceived { .. }
                        | ClientSessionEvent::VideoDataReceived { .. }
                        | ClientSessionEvent::AudioDataReceived { .. } => {}
                        ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                            if code.contains("Failed")
                                || code.contains("NotFound")
                                || code.contains("Reject")
                            {
                                return Err(PullError::Refused(code));
                            }
                            if code.contains("Stop") || code.contains("Unpublish") {
                                return Err(PullError::Ended);
                            }
                        }
                        other => {
                            tracing::debug!(channel = %self.name, url = %self.url, "RTMP event ignored: {other:?}")
                        }
                    }
                }
                if play_requested {
                    for (kind, ts, body) in media.drain(..) {
                        self.media(live_or_claim(&mut live, self)?, kind, ts, body, tags)?;
                    }
                }
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                }
            }
            let n = tokio::select! {
                _ = replaced(&mut live) => return Err(FlvIngestError::Replaced.into()),
                n = read(&mut stream, &mut buf) => n?,
            };
            pending.extend_from_slice(&buf[..n]);
        }
    }

    fn media(
        &self,
        live: &LivePublisher,
        kind: TagKind,
        ts: u32,
        data: Bytes,
        tags: &mut u64,
    ) -> Result<(), PullError> {
        *tags += 1;
        if let Err(why) = live.push(kind, ts, data) {
            if live.publisher.replaced() {
                return Err(FlvIngestError::Replaced.into());
            }
            tracing::debug!(channel = %self.name, url = %self.url, "pulled tag skipped: {why}");
        }
        Ok(())
    }
}

/// Reads audio, video and `onMetaData` messages from the byte stream alongside the session:
/// `ClientSession` drops media sent on another message stream than the one `createStream`
/// returned (ffmpeg's `-listen 1` server does that), and gives metadata only as the few
/// fields it knows. An AMF0 data message is exactly a script tag body.
struct MediaTap {
    chunks: ChunkDeserializer,
}

impl MediaTap {
    fn new() -> Self {
        MediaTap {
            chunks: ChunkDeserializer::new(),
        }
    }

    fn feed(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<(TagKind, u32, Bytes)>,
    ) -> Result<(), ChunkDeserializationError> {
        let mut input = bytes;
        while let Some(p) = self.chunks.get_next_message(input)? {
            input = &[];
            match p.type_id {
                // SetChunkSize: the 31-bit size the peer's chunks now have.
                1 if p.data.len() >= 4 => {
                    let size = u32::from_be_bytes([p.data[0], p.data[1], p.data[2], p.data[3]])
                        & 0x7FFF_FFFF;
                    self.chunks.set_max_chunk_size(size as usize)?;
                }
                8 => out.push((TagKind::Audio, p.timestamp.value, p.data)),
                9 => out.push((TagKind::Video, p.timestamp.value, p.data)),
                18 if matches!(parse_script_tag(&p.data), Ok(Some(_))) => {
                    out.push((TagKind::Script, p.timestamp.value, p.data))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The live publisher, claimed on the first media if playback started without a status.
fn live_or_claim<'a>(
    slot: &'a mut Option<LivePublisher>,
    pull: &Pull,
) -> Result<&'a LivePublisher, PublishError> {
    let live = match slot.take() {
        Some(live) => live,
        None => pull.claim()?,
    };
    Ok(slot.insert(live))
}

/// One read with the silence timeout; the end of the stream is an error here.
async fn read(stream: &mut TcpStream, buf: &mut [u8]) -> Result<usize, PullError> {
    match tokio::time::timeout(READ_TIMEOUT, stream.read(buf)).await {
        Err(_) => Err(PullError::Timeout),
        Ok(Ok(0)) => Err(PullError::Ended),
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(e.into()),
    }
}

async fn replaced(live: &mut Option<LivePublisher>) {
    match live {
        Some(live) => live.publisher.wait_replaced().await,
        None => std::future::pending().await,
    }
}

fn split(
    results: Vec<ClientSessionResult>,
    out: &mut Vec<u8>,
    events: &mut Vec<ClientSessionEvent>,
) {
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(packet) => out.extend_from_slice(&packet.bytes),
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
}
