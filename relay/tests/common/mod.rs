//! Helpers shared by the end-to-end tests (`ingest.rs`, `websocket.rs`): the source file made
//! by ffmpeg at test time, its demuxed tags, the real `lockstep-relay` binary started on free
//! 127.0.0.1 ports (killed on drop, its log printed when a test fails) and ffmpeg runs.
//!
//! Each test binary compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use lockstep_media::flv::audio::{AudioPacket, AudioTagHeader};
use lockstep_media::flv::video::{VideoPacket, VideoTagHeader};
use lockstep_media::flv::{Demuxer, Event, TagKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

pub const FFMPEG: &str = "/usr/bin/ffmpeg";

/// One demuxed tag: kind, timestamp, body.
#[derive(Debug, Clone)]
pub struct T {
    pub kind: TagKind,
    pub ts: u32,
    pub body: Bytes,
}

pub fn demux_all(data: &[u8]) -> Vec<T> {
    let mut d = Demuxer::new();
    d.push(Bytes::copy_from_slice(data));
    let mut out = Vec::new();
    while let Some(Ok(e)) = d.poll() {
        if let Event::Tag(t) = e {
            out.push(T {
                kind: t.kind,
                ts: t.timestamp,
                body: t.body,
            });
        }
    }
    out
}

pub fn is_config(t: &T) -> bool {
    match t.kind {
        TagKind::Video => {
            VideoTagHeader::parse(&t.body).is_ok_and(|h| h.packet == VideoPacket::SequenceStart)
        }
        TagKind::Audio => {
            AudioTagHeader::parse(&t.body).is_ok_and(|h| h.packet == AudioPacket::SequenceStart)
        }
        TagKind::Script => false,
    }
}

pub fn is_sequence_end(t: &T) -> bool {
    t.kind == TagKind::Video
        && VideoTagHeader::parse(&t.body).is_ok_and(|h| h.packet == VideoPacket::SequenceEnd)
}

pub fn is_keyframe(t: &T) -> bool {
    t.kind == TagKind::Video
        && VideoTagHeader::parse(&t.body)
            .is_ok_and(|h| h.is_keyframe() && matches!(h.packet, VideoPacket::CodedFrames { .. }))
}

/// Audio or video frames (not configurations, not end of sequence) of one kind.
pub fn frames(tags: &[T], kind: TagKind) -> Vec<&T> {
    tags.iter()
        .filter(|t| t.kind == kind && !is_config(t) && !is_sequence_end(t))
        .collect()
}

/// A source file made by ffmpeg, with its tags.
pub struct Source {
    pub path: PathBuf,
    pub bytes: Bytes,
    pub tags: Vec<T>,
}

impl Source {
    /// Generates 4 s of 320x240 at 30 fps, GOP 30, with 44.1 kHz AAC, into `name` (a file in
    /// the test temp folder, suffixed with the process id); `video_args` go before the video
    /// codec options (e.g. a noise filter and `-qp 0` for a high bitrate).
    pub fn generate(name: &str, video_args: &[&str]) -> Source {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}.flv", std::process::id()));
        let status = std::process::Command::new(FFMPEG)
            .args(["-y", "-hide_banner", "-loglevel", "error"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", "4"])
            .args(video_args)
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-g",
                "30",
            ])
            .args(["-c:a", "aac", "-f", "flv"])
            .arg(&path)
            .stdin(Stdio::null())
            .status()
            .expect("running ffmpeg");
        assert!(status.success(), "ffmpeg could not generate the test file");
        let bytes = Bytes::from(std::fs::read(&path).expect("reading the test file"));
        let tags = demux_all(&bytes);
        assert!(
            frames(&tags, TagKind::Video).len() >= 100,
            "test file: too few video frames"
        );
        Source { path, bytes, tags }
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("UTF-8 temp path")
    }
}

/// The source file, generated once per test run: 4 s, 320x240 at 30 fps, GOP 30, AAC.
pub fn source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| Source::generate("ingest-src", &[]))
}

pub fn src_path() -> &'static str {
    source().path_str()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a free port")
        .port()
}

/// A running relay, killed when dropped.
pub struct Relay {
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    pub child: Child,
    pub log: PathBuf,
}

impl Relay {
    pub async fn start(args: &[&str]) -> Relay {
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let rtmp: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "relay-{}-{}.log",
            std::process::id(),
            http.port()
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep-relay"))
            .args(["--http", &http.to_string(), "--rtmp", &rtmp.to_string()])
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("TEST_RELAY_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .env_remove("LOCKSTEP_PUBLISH_KEY")
            .env_remove("LOCKSTEP_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("relay log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("starting lockstep-relay");
        // Logs go to stdout too: copy every line to the log file, watching for the banner.
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let log_path = log.clone();
        tokio::spawn(async move {
            let mut file = tokio::fs::OpenOptions::new()
                .append(true)
                .open(&log_path)
                .await
                .ok();
            let mut lines = BufReader::new(stdout).lines();
            let mut ready = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("lockstep-relay: http://") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                if let Some(f) = &mut file {
                    let _ = f.write_all(format!("{line}\n").as_bytes()).await;
                }
            }
        });
        let started = timeout(Duration::from_secs(15), ready_rx).await;
        let relay = Relay {
            http,
            rtmp,
            child,
            log,
        };
        assert!(matches!(started, Ok(Ok(()))), "relay did not start");
        relay
    }

    pub fn rtmp_url(&self, name: &str, key: Option<&str>) -> String {
        match key {
            Some(k) => format!("rtmp://{}/live/{name}?key={k}", self.rtmp),
            None => format!("rtmp://{}/live/{name}", self.rtmp),
        }
    }

    pub fn ingest_url(&self, name: &str, key: Option<&str>) -> String {
        match key {
            Some(k) => format!("http://{}/ingest/{name}?key={k}", self.http),
            None => format!("http://{}/ingest/{name}", self.http),
        }
    }

    pub fn assert_alive(&mut self) {
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "the relay exited"
        );
    }

    /// The relay's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("relay is running")
    }

    /// The relay's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- relay {} log (last lines) ---", self.http);
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Runs ffmpeg to completion (killed after `limit`); returns whether it succeeded.
pub async fn ffmpeg(args: Vec<String>, limit: Duration) -> bool {
    let child = Command::new(FFMPEG)
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    match timeout(limit, child).await {
        Ok(Ok(out)) => out.status.success(),
        Ok(Err(e)) => panic!("running ffmpeg: {e}"),
        Err(_) => panic!("ffmpeg {args:?} did not finish within {limit:?}"),
    }
}

/// ffmpeg arguments publishing the source file (`-re`: in real time) to `output`.
pub fn publish_args(re: bool, output: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    if re {
        v.push("-re".into());
    }
    v.extend(["-i", src_path(), "-c", "copy", "-f", "flv"].map(String::from));
    v.extend(output.iter().map(|s| s.to_string()));
    v
}
