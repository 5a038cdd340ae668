//! RTMP publish ingest (OBS, ffmpeg), through the `rml_rtmp` crate.
//!
//! Publish to `rtmp://HOST:1935/APP/NAME?key=KEY` (any app name; the key may also be in
//! the query of the app / `tcUrl`, as OBS sends it when the key is part of the server URL).
//! The payload of an RTMP audio or video message is exactly an FLV tag body (Enhanced RTMP
//! included), so each one goes to the channel as a tag the moment it is parsed.
//!
//! One task per connection. Bad input (a broken handshake, malformed chunks, a refused
//! publish, 30 s of silence) ends that connection with a log line naming channel and peer;
//! nothing shared is touched. `rml_rtmp` panics on an `@setDataFrame` without arguments: a
//! precheck parsing the stream alongside refuses those first, and the parsing runs under
//! `catch_unwind` in case of others, such a panic being handled like any protocol error.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use bytes::Bytes;
use lockstep_media::flv::metadata::{CodecId, Metadata};
use lockstep_media::flv::TagKind;
use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionError, ServerSessionEvent,
    ServerSessionResult, StreamMetadata,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::publisher::{query_param, stopped, LivePublisher, READ_TIMEOUT};
use crate::app::AppState;
use crate::channel::PublishError;

/// Rejected tags logged at `warn` per session; the rest at `debug`.
const WARN_REJECTED: u64 = 5;

/// Why an RTMP session ended.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("RTMP protocol: {0}")]
    Session(#[from] ServerSessionError),
    #[error("malformed RTMP message (the RTMP parser gave up)")]
    ParserPanic,
    #[error("malformed RTMP: {0}")]
    Malformed(String),
    #[error("no data for {} s", READ_TIMEOUT.as_secs())]
    Timeout,
    #[error("publish refused: {0}")]
    Refused(#[from] PublishError),
    #[error("publish request without a stream name")]
    NoStreamName,
    #[error("a second publish on the same connection")]
    AlreadyPublishing,
    #[error("RTMP playback is not supported (watch /live/NAME.flv or /ws/NAME)")]
    PlayUnsupported,
    #[error("another publisher took the channel over")]
    Replaced,
}

/// The `key` in the query part of `s` (`NAME?key=K`, `rtmp://h/live?key=K`).
fn key_in(s: &str) -> Option<&str> {
    s.split_once('?').and_then(|(_, q)| query_param(q, "key"))
}

/// Accepts RTMP connections until shutdown; one task per connection.
pub async fn serve(listener: TcpListener, app: AppState, shutdown: watch::Receiver<bool>) {
    let mut sessions = JoinSet::new();
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    sessions.spawn(session(stream, peer, app.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: do not spin.
                    tracing::warn!("RTMP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    // Every session watches the same shutdown signal and ends promptly.
    while sessions.join_next().await.is_some() {}
}

async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    app: AppState,
    shutdown: watch::Receiver<bool>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::warn!(%peer, "RTMP TCP_NODELAY: {e}");
    }
    let mut conn = Conn {
        app,
        peer,
        app_name: String::new(),
        precheck: Precheck::new(),
        session: None,
        live: None,
        channel: None,
        rejected: 0,
    };
    let result = conn.run(stream, shutdown).await;
    let channel = conn.channel.as_deref().unwrap_or("-");
    match result {
        Ok(()) => tracing::info!(channel, %peer, "RTMP connection closed"),
        Err(RtmpError::Refused(e)) => tracing::warn!(channel, %peer, "RTMP publish refused: {e}"),
        Err(e) => tracing::warn!(channel, %peer, "RTMP connection dropped: {e}"),
    }
}

struct Conn {
    app: AppState,
    peer: SocketAddr,
    /// The app name from `connect` (may carry `?key=`).
    app_name: String,
    precheck: Precheck,
    session: Option<ServerSession>,
    live: Option<LivePublisher>,
    /// The channel asked for, for log lines.
    channel: Option<String>,
    rejected: u64,
}

impl Conn {
    async fn run(
        &mut self,
        mut stream: TcpStream,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), RtmpError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut handshake = Handshake::new(PeerType::Server);
        let mut pending = loop {
            let n = tokio::select! {
                _ = stopped(&mut shutdown) => return Ok(()),
                r = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf)) => r.map_err(|_| RtmpError::Timeout)??,
            };
            if n == 0 {
                return Ok(());
            }
            let step = catch_unwind(AssertUnwindSafe(|| handshake.process_bytes(&buf[..n])))
                .map_err(|_| RtmpError::ParserPanic)??;
            match step {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    stream.write_all(&response_bytes).await?;
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

        let (session, results) = ServerSession::new(ServerSessionConfig::new())?;
        self.session = Some(session);
        let mut out = Vec::new();
        let mut events = Vec::new();
        split(results, &mut out, &mut events);
        stream.write_all(&out).await?;

        loop {
            if !pending.is_empty() {
                let outcome = self.input(&pending);
                pending.clear();
                out.clear();
                let outcome = match outcome {
                    Ok(results) => {
                        events.clear();
                        split(results, &mut out, &mut events);
                        self.events(std::mem::take(&mut events), &mut out)
                    }
                    Err(e) => Err(e),
                };
                // Responses go out in the order the session produced them, before closing.
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                }
                outcome?;
            }
            let n = tokio::select! {
                _ = stopped(&mut shutdown) => return Ok(()),
                _ = replaced(&mut self.live) => return Err(RtmpError::Replaced),
                r = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf)) => r.map_err(|_| RtmpError::Timeout)??,
            };
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&buf[..n]);
        }
    }

    /// Feeds bytes to the precheck, then to the session.
    fn input(&mut self, bytes: &[u8]) -> Result<Vec<ServerSessionResult>, RtmpError> {
        let precheck = &mut self.precheck;
        catch_unwind(AssertUnwindSafe(|| precheck.feed(bytes)))
            .map_err(|_| RtmpError::ParserPanic)??;
        let Some(session) = &mut self.session else {
            return Ok(Vec::new());
        };
        Ok(
            catch_unwind(AssertUnwindSafe(|| session.handle_input(bytes)))
                .map_err(|_| RtmpError::ParserPanic)??,
        )
    }

    fn events(
        &mut self,
        events: Vec<ServerSessionEvent>,
        out: &mut Vec<u8>,
    ) -> Result<(), RtmpError> {
        for event in events {
            self.event(event, out)?;
        }
        Ok(())
    }

    fn event(&mut self, event: ServerSessionEvent, out: &mut Vec<u8>) -> Result<(), RtmpError> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                self.app_name = app_name;
                self.accept(request_id, out)?;
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => self.publish(request_id, &stream_key, out)?,
            ServerSessionEvent::PublishStreamFinished { .. } => {
                if let Some(live) = self.live.take() {
                    tracing::info!(channel = live.channel_name(), peer = %self.peer, "RTMP publish finished");
                }
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if let Some(live) = &self.live {
                    live.publisher.set_metadata(to_metadata(&metadata));
                }
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.media(TagKind::Audio, timestamp.value, data)?;
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.media(TagKind::Video, timestamp.value, data)?;
            }
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                self.channel = Some(stream_key.split('?').next().unwrap_or("").to_string());
                self.reject(
                    request_id,
                    "NetStream.Play.Failed",
                    "playback is not supported over RTMP",
                    out,
                )?;
                return Err(RtmpError::PlayUnsupported);
            }
            _ => {}
        }
        Ok(())
    }

    fn publish(
        &mut self,
        request_id: u32,
        stream_key: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), RtmpError> {
        let name = stream_key.split('?').next().unwrap_or("").trim_matches('/');
        self.channel = Some(name.to_string());
        if self.live.is_some() {
            self.reject(
                request_id,
                "NetStream.Publish.BadName",
                "already publishing",
                out,
            )?;
            return Err(RtmpError::AlreadyPublishing);
        }
        if name.is_empty() {
            self.reject(
                request_id,
                "NetStream.Publish.BadName",
                "no stream name",
                out,
            )?;
            return Err(RtmpError::NoStreamName);
        }
        let key = key_in(stream_key)
            .or_else(|| key_in(&self.app_name))
            .or_else(|| self.precheck.tc_url.as_deref().and_then(key_in))
            .map(str::to_string);
        let peer = format!("rtmp:{}", self.peer);
        match LivePublisher::claim(&self.app, name, key.as_deref(), &peer) {
            Ok(live) => {
                self.live = Some(live);
                self.accept(request_id, out)?;
                tracing::info!(channel = name, peer = %self.peer, "RTMP publish started");
                Ok(())
            }
            Err(e) => {
                let code = match e {
                    PublishError::BadKey(_) => "NetStream.Publish.Unauthorized",
                    PublishError::Busy(_) => "NetStream.Publish.BadName",
                    PublishError::BadName(_) => "NetStream.Publish.BadName",
                };
                self.reject(request_id, code, &e.to_string(), out)?;
                Err(e.into())
            }
        }
    }

    fn media(&mut self, kind: TagKind, timestamp: u32, data: Bytes) -> Result<(), RtmpError> {
        let Some(live) = &self.live else {
            return Ok(()); // media before publish: ignored
        };
        if let Err(why) = live.push(kind, timestamp, data) {
            if live.publisher.replaced() {
                return Err(RtmpError::Replaced);
            }
            self.rejected += 1;
            if self.rejected <= WARN_REJECTED {
                tracing::warn!(channel = live.channel_name(), peer = %self.peer, "RTMP tag skipped: {why}");
            } else {
                tracing::debug!(channel = live.channel_name(), peer = %self.peer, "RTMP tag skipped: {why}");
            }
        }
        Ok(())
    }

    fn accept(&mut self, request_id: u32, out: &mut Vec<u8>) -> Result<(), RtmpError> {
        let Some(session) = &mut self.session else {
            return Ok(());
        };
        let results = session.accept_request(request_id)?;
        let mut events = Vec::new();
        split(results, out, &mut events);
        self.events(events, out)
    }

    fn reject(
        &mut self,
        request_id: u32,
        code: &str,
        why: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), RtmpError> {
        let Some(session) = &mut self.session else {
            return Ok(());
        };
        let results = session.reject_request(request_id, code, why)?;
        split(results, out, &mut Vec::new());
        Ok(())
    }
}

/// Outbound packets into `out` (in order), events into `events`.
fn split(
    results: Vec<ServerSessionResult>,
    out: &mut Vec<u8>,
    events: &mut Vec<ServerSessionEvent>,
) {
    for r in results {
        match r {
            ServerSessionResult::OutboundResponse(packet) => out.extend_from_slice(&packet.bytes),
            ServerSessionResult::RaisedEvent(e) => events.push(e),
            ServerSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
}

/// Resolves when the live publisher was taken over; never without one.
async fn replaced(live: &mut Option<LivePublisher>) {
    match live {
        Some(live) => live.publisher.wait_replaced().await,
        None => std::future::pending().await,
    }
}

/// Parses the byte stream alongside the session (the copy costs little next to one
/// publisher's bitrate): reads `tcUrl` from `connect`, which `rml_rtmp` does not report, and
/// stops the `@setDataFrame` messages without `onMetaData` and its value that `rml_rtmp`
/// would panic on, before the session sees them.
struct Precheck {
    chunks: ChunkDeserializer,
    tc_url: Option<String>,
}

impl Precheck {
    fn new() -> Self {
        Precheck {
            chunks: ChunkDeserializer::new(),
            tc_url: None,
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        let mut input = bytes;
        while let Some(p) = self
            .chunks
            .get_next_message(input)
            .map_err(|e| RtmpError::Malformed(e.to_string()))?
        {
            input = &[];
            match p.type_id {
                // SetChunkSize: the 31-bit size the peer's chunks now have.
                1 if p.data.len() >= 4 => {
                    let size = u32::from_be_bytes([p.data[0], p.data[1], p.data[2], p.data[3]])
                        & 0x7FFF_FFFF;
                    let _ = self.chunks.set_max_chunk_size(size as usize);
                }
                18 => {
                    if let Ok(RtmpMessage::Amf0Data { values }) = p.to_rtmp_message() {
                        let set_data_frame = matches!(values.first(), Some(Amf0Value::Utf8String(s)) if s == "@setDataFrame");
                        if set_data_frame && values.len() < 3 {
                            return Err(RtmpError::Malformed(
                                "@setDataFrame without a value".into(),
                            ));
                        }
                    }
                }
                20 if self.tc_url.is_none() => {
                    if let Ok(RtmpMessage::Amf0Command {
                        command_name,
                        command_object: Amf0Value::Object(mut props),
                        ..
                    }) = p.to_rtmp_message()
                    {
                        if command_name == "connect" {
                            if let Some(Amf0Value::Utf8String(url)) = props.remove("tcUrl") {
                                self.tc_url = Some(url);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// `onMetaData` from what `rml_rtmp` decoded of `@setDataFrame`.
fn to_metadata(m: &StreamMetadata) -> Metadata {
    let mut other = Vec::new();
    if let Some(ch) = m.audio_channels {
        other.push((
            "audiochannels".to_string(),
            lockstep_media::flv::amf0::Value::Number(f64::from(ch)),
        ));
    }
    Metadata {
        width: m.video_width.map(f64::from),
        height: m.video_height.map(f64::from),
        frame_rate: m
            .video_frame_rate
            .map(|f| (f64::from(f) * 1000.0).round() / 1000.0),
        video_codec_id: m.video_codec_id.map(|c| CodecId::Number(f64::from(c))),
        video_data_rate: m.video_bitrate_kbps.map(f64::from),
        audio_codec_id: m.audio_codec_id.map(|c| CodecId::Number(f64::from(c))),
        audio_data_rate: m.audio_bitrate_kbps.map(f64::from),
        audio_sample_rate: m.audio_sample_rate.map(f64::from),
        stereo: m.audio_is_stereo,
        encoder: m.encoder.clone(),
        other,
        ..Metadata::default()
    }
}
