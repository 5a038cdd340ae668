//! RTMP publishing with `rml_rtmp`: handshake, `connect` to the app, `createStream` +
//! `publish` of the stream key (which may carry `NAME?key=KEY`), `@setDataFrame onMetaData`,
//! then one RTMP message per tag.
//!
//! After the publish is accepted a reader thread feeds what the relay sends (window
//! acknowledgements, pings, a status on refusal) to the session and writes its answers; the
//! session and the socket's write side share one mutex, so an answer never lands inside a
//! media message.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread;

use bytes::Bytes;
use lockstep_media::flv::TagKind;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;

use super::{connect_tcp, host_port, Failure, PublishError, StreamInfo, CONNECT_TIMEOUT};

struct Shared {
    session: ClientSession,
    stream: TcpStream,
}

/// A publishing RTMP session.
pub struct RtmpPublisher {
    shared: Arc<Mutex<Shared>>,
    failure: Failure,
    reader: Option<thread::JoinHandle<()>>,
}

/// `rtmp://HOST[:PORT]/APP/STREAM[?QUERY]` → (host, port, app, stream key with the query).
fn split_url(raw: &str) -> Result<(String, u16, String, String), PublishError> {
    let url = url::Url::parse(raw).map_err(|e| PublishError::BadUrl(raw.into(), e.to_string()))?;
    let (host, port) = host_port(&url, 1935)?;
    let path = url.path().trim_start_matches('/');
    let (app, stream) = path.split_once('/').ok_or_else(|| {
        PublishError::BadUrl(raw.into(), "expected rtmp://HOST/APP/STREAM".into())
    })?;
    if app.is_empty() || stream.is_empty() {
        return Err(PublishError::BadUrl(
            raw.into(),
            "expected rtmp://HOST/APP/STREAM".into(),
        ));
    }
    let key = match url.query() {
        Some(q) => format!("{stream}?{q}"),
        None => stream.to_string(),
    };
    Ok((host, port, app.to_string(), key))
}

/// Packets to write and events raised, from session results.
fn split(results: Vec<ClientSessionResult>, out: &mut Vec<u8>) -> Vec<ClientSessionEvent> {
    let mut events = Vec::new();
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => out.extend_from_slice(&p.bytes),
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
    events
}

/// A status code that means the relay will not take the stream.
fn refusal(code: &str) -> bool {
    ["Failed", "BadName", "Reject", "Unauthorized", "NotFound"]
        .iter()
        .any(|w| code.contains(w))
}

fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> Result<usize, PublishError> {
    match stream.read(buf) {
        Ok(0) => Err(PublishError::Closed(
            " (a wrong key or a channel already live is logged by the relay)".into(),
        )),
        Ok(n) => Ok(n),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(PublishError::Timeout(CONNECT_TIMEOUT))
        }
        Err(e) => Err(e.into()),
    }
}

impl RtmpPublisher {
    pub fn connect(raw_url: &str, info: &StreamInfo) -> Result<Self, PublishError> {
        let (host, port, app, key) = split_url(raw_url)?;
        let mut stream = connect_tcp(&host, port)?;
        stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        let mut buf = vec![0u8; 16 * 1024];

        let mut handshake = Handshake::new(PeerType::Client);
        stream.write_all(&handshake.generate_outbound_p0_and_p1()?)?;
        let mut pending = loop {
            let n = read_some(&mut stream, &mut buf)?;
            match handshake.process_bytes(&buf[..n])? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    stream.write_all(&response_bytes)?
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    stream.write_all(&response_bytes)?;
                    break remaining_bytes;
                }
            }
        };

        let mut config = ClientSessionConfig::new();
        let host_in_url = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        config.tc_url = Some(format!("rtmp://{host_in_url}:{port}/{app}"));
        let (mut session, initial) = ClientSession::new(config)?;
        let mut out = Vec::new();
        split(initial, &mut out);
        split(vec![session.request_connection(app)?], &mut out);
        stream.write_all(&out)?;

        let mut key = Some(key);
        loop {
            if !pending.is_empty() {
                let results = catch_unwind(AssertUnwindSafe(|| session.handle_input(&pending)))
                    .map_err(|_| {
                    PublishError::Refused("malformed RTMP from the relay".into())
                })??;
                pending.clear();
                out.clear();
                let mut published = false;
                for event in split(results, &mut out) {
                    match event {
                        ClientSessionEvent::ConnectionRequestAccepted => {
                            if let Some(k) = key.take() {
                                let r = session.request_publishing(k, PublishRequestType::Live)?;
                                split(vec![r], &mut out);
                            }
                        }
                        ClientSessionEvent::ConnectionRequestRejected { description } => {
                            return Err(PublishError::Refused(description));
                        }
                        ClientSessionEvent::PublishRequestAccepted => published = true,
                        ClientSessionEvent::UnhandleableOnStatusCode { code } if refusal(&code) => {
                            return Err(PublishError::Refused(code));
                        }
                        _ => {}
                    }
                }
                if published {
                    split(vec![session.publish_metadata(&metadata(info))?], &mut out);
                }
                stream.write_all(&out)?;
                if published {
                    break;
                }
            }
            let n = read_some(&mut stream, &mut buf)?;
            pending.extend_from_slice(&buf[..n]);
        }

        stream.set_read_timeout(None)?;
        let mut read_side = stream.try_clone()?;
        let shared = Arc::new(Mutex::new(Shared { session, stream }));
        let failure = Failure::default();
        let reader = {
            let (shared, failure) = (shared.clone(), failure.clone());
            thread::Builder::new()
                .name("rtmp-reader".into())
                .spawn(move || {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match read_some(&mut read_side, &mut buf) {
                            Ok(n) => n,
                            Err(e) => return failure.set(e),
                        };
                        let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
                        let Shared { session, stream } = &mut *guard;
                        let results = match catch_unwind(AssertUnwindSafe(|| {
                            session.handle_input(&buf[..n])
                        })) {
                            Ok(Ok(r)) => r,
                            Ok(Err(e)) => return failure.set(e.into()),
                            Err(_) => {
                                return failure.set(PublishError::Refused(
                                    "malformed RTMP from the relay".into(),
                                ))
                            }
                        };
                        let mut out = Vec::new();
                        for event in split(results, &mut out) {
                            if let ClientSessionEvent::UnhandleableOnStatusCode { code } = event {
                                if refusal(&code) || code.contains("Unpublish") {
                                    failure.set(PublishError::Refused(code));
                                }
                            }
                        }
                        if !out.is_empty() {
                            if let Err(e) = stream.write_all(&out) {
                                return failure.set(e.into());
                            }
                        }
                    }
                })?
        };
        Ok(RtmpPublisher {
            shared,
            failure,
            reader: Some(reader),
        })
    }

    pub fn send(&mut self, kind: TagKind, ts: u32, body: Bytes) -> Result<(), PublishError> {
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        let mut guard = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let Shared { session, stream } = &mut *guard;
        let ts = RtmpTimestamp::new(ts);
        let packet = match kind {
            TagKind::Video => session.publish_video_data(body, ts, false)?,
            TagKind::Audio => session.publish_audio_data(body, ts, false)?,
            TagKind::Script => return Ok(()),
        };
        if let ClientSessionResult::OutboundResponse(p) = packet {
            stream.write_all(&p.bytes)?;
        }
        Ok(())
    }

    pub fn finish(mut self) {
        {
            let mut guard = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            let Shared { session, stream } = &mut *guard;
            if let Ok(results) = session.stop_publishing() {
                let mut out = Vec::new();
                split(results, &mut out);
                let _ = stream.write_all(&out);
            }
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// `onMetaData` for the stream.
fn metadata(info: &StreamInfo) -> StreamMetadata {
    let mut m = StreamMetadata::new();
    m.video_width = Some(info.width);
    m.video_height = Some(info.height);
    m.video_codec_id = Some(7);
    m.video_frame_rate = Some(info.fps as f32);
    m.video_bitrate_kbps = Some(info.video_kbps);
    if let Some(a) = info.audio {
        m.audio_codec_id = Some(a.codec_id());
        m.audio_sample_rate = Some(a.sample_rate);
        m.audio_channels = Some(a.channels);
        m.audio_is_stereo = Some(a.channels == 2);
        m.audio_bitrate_kbps = Some(a.kbps);
    }
    m.encoder = Some("lockstep-test-source".into());
    m
}

#[cfg(test)]
mod tests {
    use super::super::test_info;
    use super::*;

    #[test]
    fn urls() {
        let (h, p, app, key) = split_url("rtmp://127.0.0.1:1936/live/demo?key=k").unwrap();
        assert_eq!(
            (h.as_str(), p, app.as_str(), key.as_str()),
            ("127.0.0.1", 1936, "live", "demo?key=k")
        );
        let (_, p, _, key) = split_url("rtmp://host/live/demo").unwrap();
        assert_eq!((p, key.as_str()), (1935, "demo"));
        assert!(split_url("rtmp://host/live").is_err());
        assert!(split_url("rtmp://host/").is_err());
    }

    use std::collections::VecDeque;
    use std::net::TcpListener;

    use rml_rtmp::sessions::{
        ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
    };

    /// What the test server saw: the stream key, the metadata's width, and (kind, ts, body) of
    /// each media message.
    type Seen = (String, Option<u32>, Vec<(TagKind, u32, Vec<u8>)>);

    /// An rml_rtmp server session on 127.0.0.1 for one client: accepts the connection, then
    /// accepts the publish (or rejects it) and collects `media` media messages.
    fn server(reject: bool, media: usize) -> (String, thread::JoinHandle<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("rtmp://{}/live/cam?key=k", listener.local_addr().unwrap());
        let t = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut buf = vec![0u8; 16 * 1024];
            let mut hs = Handshake::new(PeerType::Server);
            let mut pending = loop {
                let n = stream.read(&mut buf).unwrap();
                match hs.process_bytes(&buf[..n]).unwrap() {
                    HandshakeProcessResult::InProgress { response_bytes } => {
                        stream.write_all(&response_bytes).unwrap()
                    }
                    HandshakeProcessResult::Completed {
                        response_bytes,
                        remaining_bytes,
                    } => {
                        stream.write_all(&response_bytes).unwrap();
                        break remaining_bytes;
                    }
                }
            };
            let (mut session, first) = ServerSession::new(ServerSessionConfig::new()).unwrap();
            let mut seen: Seen = (String::new(), None, Vec::new());
            let mut results: VecDeque<ServerSessionResult> = first.into();
            loop {
                if !pending.is_empty() {
                    results.extend(session.handle_input(&pending).unwrap());
                    pending.clear();
                }
                while let Some(r) = results.pop_front() {
                    let event = match r {
                        ServerSessionResult::OutboundResponse(p) => {
                            stream.write_all(&p.bytes).unwrap();
                            continue;
                        }
                        ServerSessionResult::RaisedEvent(e) => e,
                        ServerSessionResult::UnhandleableMessageReceived(_) => continue,
                    };
                    match event {
                        ServerSessionEvent::ConnectionRequested { request_id, .. } => {
                            results.extend(session.accept_request(request_id).unwrap())
                        }
                        ServerSessionEvent::PublishStreamRequested {
                            request_id,
                            stream_key,
                            ..
                        } => {
                            seen.0 = stream_key;
                            if reject {
                                for r in session
                                    .reject_request(
                                        request_id,
                                        "NetStream.Publish.BadName",
                                        "wrong key",
                                    )
                                    .unwrap()
                                {
                                    if let ServerSessionResult::OutboundResponse(p) = r {
                                        stream.write_all(&p.bytes).unwrap();
                                    }
                                }
                                return seen;
                            }
                            results.extend(session.accept_request(request_id).unwrap());
                        }
                        ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                            seen.1 = metadata.video_width
                        }
                        ServerSessionEvent::VideoDataReceived {
                            data, timestamp, ..
                        } => seen
                            .2
                            .push((TagKind::Video, timestamp.value, data.to_vec())),
                        ServerSessionEvent::AudioDataReceived {
                            data, timestamp, ..
                        } => seen
                            .2
                            .push((TagKind::Audio, timestamp.value, data.to_vec())),
                        _ => {}
                    }
                }
                if seen.2.len() >= media {
                    return seen;
                }
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "client closed early");
                pending.extend_from_slice(&buf[..n]);
            }
        });
        (url, t)
    }

    #[test]
    fn publishes_metadata_and_media() {
        let (url, server) = server(false, 2);
        let mut p = RtmpPublisher::connect(&url, &test_info()).unwrap();
        p.send(
            TagKind::Video,
            0,
            Bytes::from_static(&[0x17, 1, 0, 0, 0, 9]),
        )
        .unwrap();
        p.send(TagKind::Audio, 21, Bytes::from_static(&[0xAF, 1, 0x21]))
            .unwrap();
        let (key, width, media) = server.join().unwrap();
        p.finish();
        assert_eq!(key, "cam?key=k");
        assert_eq!(width, Some(640));
        assert_eq!(
            media,
            vec![
                (TagKind::Video, 0, vec![0x17, 1, 0, 0, 0, 9]),
                (TagKind::Audio, 21, vec![0xAF, 1, 0x21]),
            ]
        );
    }

    #[test]
    fn a_rejected_publish_is_an_error() {
        let (url, server) = server(true, 0);
        let err = RtmpPublisher::connect(&url, &test_info())
            .err()
            .expect("refused");
        server.join().unwrap();
        let msg = err.to_string();
        assert!(msg.contains("BadName") || msg.contains("closed"), "{msg}");
    }
}
