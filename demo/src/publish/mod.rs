//! Publishing the test source's FLV tags to a relay, each as soon as it is given: RTMP
//! (an `rml_rtmp` client session, as OBS and ffmpeg publish) or FLV in a chunked HTTP `PUT`
//! (the relay's `/ingest/NAME`). Blocking sockets with TCP_NODELAY; a background thread reads
//! what the relay sends back (RTMP control messages, an HTTP error) and a refusal or a closed
//! connection is reported by the next [`Publisher::send`].

mod http;
mod rtmp;

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use lockstep_media::flv::TagKind;

use crate::encoder::AudioCodec;

pub use self::http::HttpPublisher;
pub use self::rtmp::RtmpPublisher;

/// How long connecting and the publish handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the FLV stream goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// `rtmp://HOST:PORT/live/NAME?key=KEY`
    Rtmp(String),
    /// `http://HOST:PORT/ingest/NAME?key=KEY`, sent with `PUT`.
    Http(String),
}

impl FromStr for Output {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("rtmp://") {
            Ok(Output::Rtmp(s.to_string()))
        } else if lower.starts_with("http://") {
            Ok(Output::Http(s.to_string()))
        } else if lower.starts_with("rtmps://") || lower.starts_with("https://") {
            Err(format!(
                "{s:?}: TLS is not supported by the test source; use rtmp:// or http://"
            ))
        } else {
            Err(format!(
                "{s:?}: expected rtmp://HOST:1935/live/NAME?key=KEY or http://HOST:8080/ingest/NAME?key=KEY"
            ))
        }
    }
}

impl Output {
    /// The URL with any `key=` value hidden, for messages.
    pub fn redacted(&self) -> String {
        let (Output::Rtmp(url) | Output::Http(url)) = self;
        match url.find("key=") {
            Some(i) => {
                let end = url[i..].find('&').map_or(url.len(), |j| i + j);
                format!("{}key=***{}", &url[..i], &url[end..])
            }
            None => url.clone(),
        }
    }
}

/// What the stream carries, for the `onMetaData` sent first.
#[derive(Clone, Debug)]
pub struct StreamInfo {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub video_kbps: u32,
    /// The audio track, if any.
    pub audio: Option<AudioInfo>,
}

/// What the audio track carries, for `onMetaData`.
#[derive(Clone, Copy, Debug)]
pub struct AudioInfo {
    pub codec: AudioCodec,
    pub sample_rate: u32,
    pub channels: u32,
    pub kbps: u32,
}

impl AudioInfo {
    /// `audiocodecid`: the SoundFormat (10) for AAC; for Opus the FourCC as a number, as
    /// Enhanced RTMP signals FourCC codecs in `onMetaData`.
    pub fn codec_id(&self) -> u32 {
        match self.codec {
            AudioCodec::Aac => 10,
            AudioCodec::Opus => u32::from_be_bytes(crate::ogg_opus::FOURCC),
        }
    }
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("bad URL {0:?}: {1}")]
    BadUrl(String, String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("RTMP handshake: {0}")]
    Handshake(#[from] rml_rtmp::handshake::HandshakeError),
    #[error("RTMP: {0}")]
    Rtmp(#[from] rml_rtmp::sessions::ClientSessionError),
    #[error("the relay refused: {0}")]
    Refused(String),
    #[error("the relay closed the connection{0}")]
    Closed(String),
    #[error("no answer from the relay within {0:?}")]
    Timeout(Duration),
}

/// A connected publisher.
pub enum Publisher {
    Rtmp(RtmpPublisher),
    Http(HttpPublisher),
}

impl Publisher {
    /// Connects and starts publishing (for RTMP: the publish request is accepted).
    pub fn connect(output: &Output, info: &StreamInfo) -> Result<Self, PublishError> {
        Ok(match output {
            Output::Rtmp(url) => Publisher::Rtmp(RtmpPublisher::connect(url, info)?),
            Output::Http(url) => Publisher::Http(HttpPublisher::connect(url, info)?),
        })
    }

    /// Sends one tag body (audio or video) with its time in ms.
    pub fn send(&mut self, kind: TagKind, ts: u32, body: Bytes) -> Result<(), PublishError> {
        match self {
            Publisher::Rtmp(p) => p.send(kind, ts, body),
            Publisher::Http(p) => p.send(kind, ts, &body),
        }
    }

    /// Ends the stream cleanly.
    pub fn finish(self) {
        match self {
            Publisher::Rtmp(p) => p.finish(),
            Publisher::Http(p) => p.finish(),
        }
    }
}

/// The first failure the reader thread saw, shared with the sender.
#[derive(Clone, Default)]
struct Failure(Arc<Mutex<Option<PublishError>>>);

impl Failure {
    fn set(&self, e: PublishError) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    }

    fn take(&self) -> Option<PublishError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// `HOST:PORT` of a URL with a default port.
fn host_port(url: &url::Url, default_port: u16) -> Result<(String, u16), PublishError> {
    let host = url
        .host_str()
        .ok_or_else(|| PublishError::BadUrl(url.to_string(), "no host".into()))?;
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        url.port().unwrap_or(default_port),
    ))
}

/// Connects with [`CONNECT_TIMEOUT`], TCP_NODELAY on.
fn connect_tcp(host: &str, port: u16) -> Result<std::net::TcpStream, PublishError> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .map(PublishError::Io)
        .unwrap_or_else(|| PublishError::BadUrl(format!("{host}:{port}"), "no address".into())))
}

/// A stream description for tests.
#[cfg(test)]
fn test_info() -> StreamInfo {
    StreamInfo {
        width: 640,
        height: 360,
        fps: 30,
        video_kbps: 2000,
        audio: Some(AudioInfo {
            codec: AudioCodec::Aac,
            sample_rate: 48_000,
            channels: 2,
            kbps: 128,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let o: Output = "rtmp://h:1935/live/demo?key=secret".parse().unwrap();
        assert_eq!(o.redacted(), "rtmp://h:1935/live/demo?key=***");
        let o: Output = "http://h/ingest/x?key=s&a=b".parse().unwrap();
        assert_eq!(o.redacted(), "http://h/ingest/x?key=***&a=b");
        assert!("ftp://x".parse::<Output>().is_err());
        let e = "rtmps://h/live/x".parse::<Output>().unwrap_err();
        assert!(e.contains("TLS"), "{e}");
    }

    #[test]
    fn audio_codec_ids() {
        let mut a = test_info().audio.unwrap();
        assert_eq!(a.codec_id(), 10);
        a.codec = AudioCodec::Opus;
        assert_eq!(a.codec_id(), 0x4F70_7573);
    }
}
