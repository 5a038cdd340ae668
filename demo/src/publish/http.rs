//! FLV in a chunked HTTP `PUT` (the relay's `/ingest/NAME?key=KEY`): the request head, then
//! the FLV header, an `onMetaData` tag and one chunk per tag, each written as it comes. A
//! reader thread waits for the relay's response: while publishing, any response (a refusal,
//! or the end) means the stream is over.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;

use lockstep_media::flv::amf0::Value;
use lockstep_media::flv::metadata::{CodecId, Metadata};
use lockstep_media::flv::tag::{write_file_header, write_tag};
use lockstep_media::flv::TagKind;

use super::{connect_tcp, host_port, Failure, PublishError, StreamInfo};

/// A streaming `PUT`.
pub struct HttpPublisher {
    stream: TcpStream,
    failure: Failure,
    reader: Option<thread::JoinHandle<()>>,
    buf: Vec<u8>,
}

/// The status line and the start of the body of a response, for a message.
fn describe(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(&response[..response.len().min(300)]);
    let status = text.lines().next().unwrap_or("").trim().to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    if body.is_empty() {
        status
    } else {
        format!("{status}: {body}")
    }
}

impl HttpPublisher {
    pub fn connect(raw_url: &str, info: &StreamInfo) -> Result<Self, PublishError> {
        let url = url::Url::parse(raw_url)
            .map_err(|e| PublishError::BadUrl(raw_url.into(), e.to_string()))?;
        let (host, port) = host_port(&url, 80)?;
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let mut stream = connect_tcp(&host, port)?;
        let host_header = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or(&host)),
            None => url.host_str().unwrap_or(&host).to_string(),
        };
        let head = format!(
            "PUT {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: lockstep-test-source\r\n\
             Content-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        stream.write_all(head.as_bytes())?;

        let failure = Failure::default();
        let reader = {
            let mut read_side = stream.try_clone()?;
            let failure = failure.clone();
            thread::Builder::new()
                .name("http-reader".into())
                .spawn(move || {
                    let mut response = Vec::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        match read_side.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                response.extend_from_slice(&buf[..n]);
                                if response.len() > 4096
                                    || response.windows(4).any(|w| w == b"\r\n\r\n")
                                {
                                    // Give the body a moment to follow the head.
                                    read_side
                                        .set_read_timeout(Some(std::time::Duration::from_millis(
                                            200,
                                        )))
                                        .ok();
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    failure.set(if response.is_empty() {
                        PublishError::Closed(String::new())
                    } else {
                        PublishError::Refused(describe(&response))
                    });
                })?
        };

        let mut publisher = HttpPublisher {
            stream,
            failure,
            reader: Some(reader),
            buf: Vec::with_capacity(64 * 1024),
        };
        let script = metadata(info).to_script_body();
        publisher.write_chunk(|buf| {
            write_file_header(buf, info.audio.is_some(), true);
            write_tag(buf, TagKind::Script, 0, &script);
        })?;
        Ok(publisher)
    }

    /// Sends one chunk whose data `fill` appends, built in place in the reused buffer. The
    /// chunk-size is written as 8 hex digits and patched once the data is there (leading
    /// zeros are allowed, RFC 9112 section 7.1).
    fn write_chunk(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> Result<(), PublishError> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        self.buf.clear();
        self.buf.extend_from_slice(b"00000000\r\n");
        fill(&mut self.buf);
        let n = self.buf.len() - 10;
        for (i, digit) in self.buf[..8].iter_mut().rev().enumerate() {
            *digit = HEX[(n >> (4 * i)) & 0xF];
        }
        self.buf.extend_from_slice(b"\r\n");
        if let Err(e) = self.stream.write_all(&self.buf) {
            return Err(self.answer_behind(e));
        }
        Ok(())
    }

    /// A write failed: the relay has most likely answered (a refusal) and closed. That
    /// answer says more than "broken pipe", so wait a moment for the reader to have it.
    fn answer_behind(&mut self, write_error: std::io::Error) -> PublishError {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        loop {
            if let Some(e) = self.failure.take() {
                return e;
            }
            let reader_done = self.reader.as_ref().map_or(true, |r| r.is_finished());
            if reader_done || std::time::Instant::now() >= deadline {
                return self.failure.take().unwrap_or(write_error.into());
            }
            thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    pub fn send(&mut self, kind: TagKind, ts: u32, body: &[u8]) -> Result<(), PublishError> {
        self.write_chunk(|buf| write_tag(buf, kind, ts, body))
    }

    pub fn finish(mut self) {
        let _ = self.stream.write_all(b"0\r\n\r\n");
        // The relay answers when the body ends; wait for that a second at most.
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        if let Some(r) = self.reader.take() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
            while !r.is_finished() && std::time::Instant::now() < deadline {
                thread::sleep(std::time::Duration::from_millis(10));
            }
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
            let _ = r.join();
        }
    }
}

/// `onMetaData` for the stream.
fn metadata(info: &StreamInfo) -> Metadata {
    let mut m = Metadata {
        width: Some(f64::from(info.width)),
        height: Some(f64::from(info.height)),
        frame_rate: Some(f64::from(info.fps)),
        video_codec_id: Some(CodecId::Number(7.0)),
        video_data_rate: Some(f64::from(info.video_kbps)),
        duration: Some(0.0),
        encoder: Some("lockstep-test-source".into()),
        ..Metadata::default()
    };
    if let Some(a) = info.audio {
        m.audio_codec_id = Some(CodecId::Number(f64::from(a.codec_id())));
        m.audio_sample_rate = Some(f64::from(a.sample_rate));
        m.audio_sample_size = Some(16.0);
        m.stereo = Some(a.channels == 2);
        m.audio_data_rate = Some(f64::from(a.kbps));
        m.other
            .push(("audiochannels".into(), Value::Number(f64::from(a.channels))));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::super::test_info;
    use super::*;

    #[test]
    fn describes_a_refusal() {
        let r = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 9\r\n\r\nwrong key";
        assert_eq!(describe(r), "HTTP/1.1 403 Forbidden: wrong key");
        assert_eq!(describe(b"HTTP/1.1 200 OK\r\n\r\n"), "HTTP/1.1 200 OK");
    }

    use std::io::BufRead;
    use std::net::TcpListener;

    use lockstep_media::flv::{Demuxer, Event};

    /// A one-connection server on 127.0.0.1: returns its URL and a thread that yields the
    /// request head and the de-chunked body, after answering `answer`.
    fn server(answer: &'static str) -> (String, thread::JoinHandle<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ingest/cam?key=k", listener.local_addr().unwrap());
        let t = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = Vec::new();
            if answer.contains(" 200 ") {
                loop {
                    let mut size = String::new();
                    reader.read_line(&mut size).unwrap();
                    let n = usize::from_str_radix(size.trim(), 16).unwrap();
                    let mut chunk = vec![0u8; n + 2];
                    reader.read_exact(&mut chunk).unwrap();
                    assert_eq!(&chunk[n..], b"\r\n", "chunk trailer");
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
            }
            (&stream).write_all(answer.as_bytes()).unwrap();
            (head, body)
        });
        (url, t)
    }

    #[test]
    fn streams_flv_in_a_chunked_put() {
        let (url, server) = server("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        let mut p = HttpPublisher::connect(&url, &test_info()).unwrap();
        p.send(TagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1, 2])
            .unwrap();
        p.send(TagKind::Audio, 21, &[0xAF, 1, 0x21, 0x10]).unwrap();
        p.finish();
        let (head, body) = server.join().unwrap();
        assert!(
            head.starts_with("PUT /ingest/cam?key=k HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");

        let mut demuxer = Demuxer::new();
        demuxer.push_slice(&body);
        let mut events = Vec::new();
        while let Some(e) = demuxer.poll() {
            events.push(e.unwrap());
        }
        assert!(demuxer.finish().is_ok());
        let Event::Header(h) = &events[0] else {
            panic!("{events:?}")
        };
        assert!(h.has_audio && h.has_video, "{h:?}");
        assert!(
            matches!(&events[2], Event::Metadata(m) if m.width == Some(640.0) && m.audio_sample_rate == Some(48_000.0)),
            "{events:?}"
        );
        let tags: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Tag(t) if t.kind != TagKind::Script => {
                    Some((t.kind, t.timestamp, t.body.to_vec()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            tags,
            vec![
                (TagKind::Video, 0, vec![0x17, 0, 0, 0, 0, 1, 2]),
                (TagKind::Audio, 21, vec![0xAF, 1, 0x21, 0x10]),
            ]
        );
    }

    #[test]
    fn a_refusal_is_reported_by_connect_or_the_next_send() {
        let (url, server) = server(
            "HTTP/1.1 403 Forbidden\r\ncontent-length: 9\r\nconnection: close\r\n\r\nwrong key",
        );
        // The answer may come before `connect` has written the metadata chunk: then it is
        // `connect` that reports it.
        let mut p = match HttpPublisher::connect(&url, &test_info()) {
            Ok(p) => p,
            Err(e) => {
                server.join().unwrap();
                assert!(e.to_string().contains("403"), "{e}");
                return;
            }
        };
        server.join().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let err = loop {
            match p.send(TagKind::Video, 0, &[0x17, 1, 0, 0, 0]) {
                Err(e) => break e,
                Ok(()) if std::time::Instant::now() < deadline => {
                    thread::sleep(std::time::Duration::from_millis(20))
                }
                Ok(()) => panic!("no error within 5 s"),
            }
        };
        let msg = err.to_string();
        assert!(msg.contains("403") || msg.contains("closed"), "{msg}");
        p.finish();
    }
}
