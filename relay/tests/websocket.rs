//! The WebSocket viewer endpoint, end to end: the real `lockstep-relay` binary fed by ffmpeg
//! (RTMP), by HTTP PUT or by `--file NAME=PATH --loop`, watched by WebSocket clients on
//! `ws://127.0.0.1:P/ws/NAME` with subprotocol `lockstep.v1`. Every message is decoded with
//! `lockstep_media::wire::decode` and media bodies are compared byte for byte with the FLV
//! source (made by ffmpeg at test time; needs ffmpeg with libx264 and AAC).
//!
//! Every test binds 127.0.0.1 only, bounds each wait with a timeout, and kills what it starts
//! (relays and ffmpeg are `kill_on_drop`). A failing test prints the relay's log.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use lockstep_media::flv::tag::{write_file_header, write_tag};
use lockstep_media::flv::TagKind;
use lockstep_media::wire::{self, MediaFlags, MediaKind, Message as W, TrackParams};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

/// Longest wait for any single expected event.
const STEP: Duration = Duration::from_secs(10);

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

// ---------------------------------------------------------------------------------------------
// The viewer client
// ---------------------------------------------------------------------------------------------

/// What a viewer's connection yields.
#[derive(Debug)]
enum Ev {
    Msg(W),
    /// A close frame from the relay, with its code.
    Close(Option<u16>),
    /// The connection ended without a close frame.
    Gone,
}

/// A WebSocket viewer of one channel.
struct Viewer {
    ws: WebSocketStream<TcpStream>,
    /// The client's end of the TCP connection.
    local: SocketAddr,
}

impl Viewer {
    async fn connect(http: SocketAddr, name: &str, ua: &str) -> Viewer {
        Self::connect_with(http, name, ua, None).await
    }

    /// Connects with `Sec-WebSocket-Protocol: lockstep.v1` and checks the relay selected it.
    /// `recv_buffer` sets SO_RCVBUF before connecting (a small TCP window).
    async fn connect_with(
        http: SocketAddr,
        name: &str,
        ua: &str,
        recv_buffer: Option<u32>,
    ) -> Viewer {
        Self::connect_path(http, &format!("/ws/{name}"), ua, recv_buffer).await
    }

    /// [`Viewer::connect_with`] to any WebSocket path of the relay.
    async fn connect_path(
        http: SocketAddr,
        path: &str,
        ua: &str,
        recv_buffer: Option<u32>,
    ) -> Viewer {
        let socket = TcpSocket::new_v4().expect("socket");
        if let Some(n) = recv_buffer {
            socket.set_recv_buffer_size(n).expect("SO_RCVBUF");
        }
        let stream = timeout(STEP, socket.connect(http))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let local = stream.local_addr().expect("local address");
        let mut req = format!("ws://{http}{path}")
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(wire::SUBPROTOCOL),
        );
        req.headers_mut()
            .insert("User-Agent", HeaderValue::from_str(ua).expect("UA"));
        let (ws, resp) = timeout(STEP, tokio_tungstenite::client_async(req, stream))
            .await
            .expect("WebSocket handshake timed out")
            .expect("WebSocket handshake");
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(wire::SUBPROTOCOL),
            "the relay did not select the subprotocol"
        );
        Viewer { ws, local }
    }

    /// The next event, or `None` after `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Ev> {
        let deadline = Instant::now() + limit;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => return Some(Ev::Gone),
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                WsMessage::Binary(b) => {
                    let m = wire::decode(b.clone())
                        .unwrap_or_else(|e| panic!("relay sent a malformed message {b:02x?}: {e}"));
                    return Some(Ev::Msg(m));
                }
                WsMessage::Text(t) => panic!("relay sent a text message: {t:?}"),
                WsMessage::Close(f) => return Some(Ev::Close(f.map(|f| u16::from(f.code)))),
                WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {}
            }
        }
    }

    /// The next wire message; panics on timeout or close.
    async fn msg(&mut self) -> W {
        match self.next(STEP).await {
            Some(Ev::Msg(m)) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Messages (with arrival times) until `until`; panics if the connection ends.
    async fn read_until_time(&mut self, until: Instant) -> Vec<(Instant, W)> {
        let mut out = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return out;
            }
            match self.next(left).await {
                None => return out,
                Some(Ev::Msg(m)) => out.push((Instant::now(), m)),
                Some(other) => panic!("viewer connection ended: {other:?}"),
            }
        }
    }

    /// Messages until one satisfies `done` (included); panics after `limit`.
    async fn read_until(&mut self, limit: Duration, mut done: impl FnMut(&W) -> bool) -> Vec<W> {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(Ev::Msg(m)) => {
                    let stop = done(&m);
                    out.push(m);
                    if stop {
                        return out;
                    }
                }
                other => panic!(
                    "waiting for a message: got {other:?} after {} messages: {}",
                    out.len(),
                    summary(&out)
                ),
            }
        }
    }

    /// Reads (and keeps) messages until the relay closes; returns them and the close code.
    async fn read_until_close(&mut self) -> (Vec<W>, Option<u16>) {
        let mut out = Vec::new();
        loop {
            match self.next(STEP).await {
                Some(Ev::Msg(m)) => out.push(m),
                Some(Ev::Close(code)) => return (out, code),
                Some(Ev::Gone) => return (out, None),
                None => panic!("the relay did not close the connection"),
            }
        }
    }

    async fn send(&mut self, msg: &W) {
        self.send_raw(msg.to_bytes()).await;
    }

    async fn send_raw(&mut self, data: Bytes) {
        timeout(STEP, self.ws.send(WsMessage::Binary(data)))
            .await
            .expect("send timed out")
            .expect("send");
    }
}

/// A viewer reading on its own until `until`.
fn spawn_reader(mut v: Viewer, until: Instant) -> JoinHandle<(Viewer, Vec<(Instant, W)>)> {
    tokio::spawn(async move {
        let got = v.read_until_time(until).await;
        (v, got)
    })
}

fn msgs(timed: &[(Instant, W)]) -> Vec<W> {
    timed.iter().map(|(_, m)| m.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// Checking what a viewer received
// ---------------------------------------------------------------------------------------------

fn brief(m: &W) -> String {
    match m {
        W::Media(x) => format!(
            "{:?}{}{}@{}({}B)",
            x.kind,
            if x.flags.contains(MediaFlags::KEYFRAME) {
                "/key"
            } else {
                ""
            },
            if x.flags.contains(MediaFlags::CONFIG) {
                "/config"
            } else {
                ""
            },
            x.timestamp_ms,
            x.body.len()
        ),
        W::StreamInfo(s) => format!("StreamInfo(e{} f{} {}t)", s.epoch, s.flags, s.tracks.len()),
        W::Timeline(t) => format!("Timeline(e{} @{})", t.epoch, t.timestamp_ms),
        other => format!("{other:?}"),
    }
}

/// The first messages, briefly, for failure messages.
fn summary(msgs: &[W]) -> String {
    let mut s: Vec<String> = msgs.iter().take(14).map(brief).collect();
    if msgs.len() > 14 {
        s.push(format!("… ({} in all)", msgs.len()));
    }
    s.join(", ")
}

fn media_kind(k: TagKind) -> MediaKind {
    match k {
        TagKind::Video => MediaKind::Video,
        TagKind::Audio => MediaKind::Audio,
        TagKind::Script => MediaKind::Script,
    }
}

fn as_media(m: &W) -> Option<&wire::Media> {
    match m {
        W::Media(x) => Some(x),
        _ => None,
    }
}

fn is_config_msg(m: &W) -> bool {
    as_media(m).is_some_and(|x| x.flags.contains(MediaFlags::CONFIG))
}

fn is_key_msg(m: &W) -> bool {
    as_media(m)
        .is_some_and(|x| x.kind == MediaKind::Video && x.flags.contains(MediaFlags::KEYFRAME))
}

/// Audio and video frames (no configurations, end of sequence or script data).
fn is_frame(x: &wire::Media) -> bool {
    x.kind != MediaKind::Script
        && !x.flags.contains(MediaFlags::CONFIG)
        && !x.flags.contains(MediaFlags::END_OF_SEQUENCE)
}

/// The received frames: (kind, timestamp, body).
fn frames_of(msgs: &[W]) -> Vec<(MediaKind, u32, Bytes)> {
    msgs.iter()
        .filter_map(as_media)
        .filter(|x| is_frame(x))
        .map(|x| (x.kind, x.timestamp_ms, x.body.clone()))
        .collect()
}

/// The source's frames in file order, as a looping file source sends them.
fn source_frames(src: &Source) -> Vec<(MediaKind, Bytes)> {
    src.tags
        .iter()
        .filter(|t| t.kind != TagKind::Script && !is_config(t) && !is_sequence_end(t))
        .map(|t| (media_kind(t.kind), t.body.clone()))
        .collect()
}

/// The source's configuration body of `kind`.
fn source_config(src: &Source, kind: MediaKind) -> Bytes {
    src.tags
        .iter()
        .find(|t| is_config(t) && media_kind(t.kind) == kind)
        .map(|t| t.body.clone())
        .expect("source has a configuration")
}

/// `got` (received frames) is a byte-identical contiguous run of the source's frames (from
/// any start; with `looping`, wrapping from the end to the start).
fn assert_source_run(got: &[(MediaKind, u32, Bytes)], src: &Source, looping: bool) {
    let want = source_frames(src);
    let n = want.len();
    assert!(!got.is_empty(), "no frames received");
    let fits = |i: usize| {
        (looping || i + got.len() <= n)
            && got
                .iter()
                .enumerate()
                .all(|(j, g)| want[(i + j) % n].0 == g.0 && want[(i + j) % n].1 == g.2)
    };
    if (0..n).any(fits) {
        return;
    }
    // Say where it goes wrong, from the best start.
    let best = (0..n).filter(|&i| want[i].1 == got[0].2).max_by_key(|&i| {
        got.iter()
            .enumerate()
            .take_while(|(j, g)| want[(i + j) % n].1 == g.2)
            .count()
    });
    let matched = best.map_or(0, |i| {
        got.iter()
            .enumerate()
            .take_while(|(j, g)| want[(i + j) % n].1 == g.2)
            .count()
    });
    panic!(
        "received frames are not a contiguous byte-identical run of the source: first frame {}, \
         {matched} of {} match, then {:?}@{} ({} B) differs",
        if best.is_some() {
            "found"
        } else {
            "not in the source"
        },
        got.len(),
        got.get(matched).map(|g| g.0),
        got.get(matched).map_or(0, |g| g.1),
        got.get(matched).map_or(0, |g| g.2.len()),
    );
}

/// Per track, frame timestamps (DTS) never go back within an epoch, and a configuration is
/// never stamped after the next frame of its track; every configuration equals the source's;
/// media comes only after a live StreamInfo of its epoch.
fn assert_stream_rules(msgs: &[W], src: &Source) {
    use std::collections::HashMap;
    let mut epoch: Option<u32> = None;
    let mut live = false;
    let mut last: HashMap<(u32, MediaKind), u32> = HashMap::new();
    let mut config: HashMap<(u32, MediaKind), u32> = HashMap::new();
    for (i, m) in msgs.iter().enumerate() {
        match m {
            W::StreamInfo(s) => {
                epoch = Some(s.epoch);
                live = s.flags & wire::STREAM_LIVE != 0;
            }
            W::Discontinuity(d) => {
                epoch = Some(d.epoch);
                live = false;
            }
            W::End(_) => live = false,
            W::Media(x) => {
                assert!(live, "media before a live StreamInfo at message {i}");
                assert!(!x.body.is_empty(), "empty media body at message {i}");
                let key = (epoch.expect("epoch"), x.kind);
                if x.flags.contains(MediaFlags::CONFIG) {
                    assert_eq!(
                        x.body,
                        source_config(src, x.kind),
                        "{:?} configuration differs from the source's",
                        x.kind
                    );
                    config.insert(key, x.timestamp_ms);
                } else if x.kind != MediaKind::Script {
                    if let Some(prev) = last.insert(key, x.timestamp_ms) {
                        assert!(
                            x.timestamp_ms >= prev,
                            "{:?} timestamp went back from {prev} to {} in epoch {} (message {i})",
                            x.kind,
                            x.timestamp_ms,
                            key.0
                        );
                    }
                    if let Some(c) = config.remove(&key) {
                        assert!(
                            c <= x.timestamp_ms,
                            "{:?} configuration stamped {c}, after the next frame ({}) (message {i})",
                            x.kind,
                            x.timestamp_ms
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

/// Checks a live StreamInfo: the channel, an `avc1.*` 320x240 video track and a
/// `mp4a.40.2` 44.1 kHz audio track.
fn assert_live_info(m: &W, channel: &str) -> u32 {
    let W::StreamInfo(s) = m else {
        panic!("expected a StreamInfo, got {}", brief(m));
    };
    assert_eq!(s.flags & wire::STREAM_LIVE, wire::STREAM_LIVE, "not live");
    assert_eq!(s.channel, channel);
    assert_eq!(s.tracks.len(), 2, "{s:?}");
    let video = &s.tracks[0];
    assert!(video.codec.starts_with("avc1."), "{video:?}");
    assert_eq!(video.codec_id, 7);
    assert_eq!(
        video.params,
        TrackParams::Video {
            width: 320,
            height: 240
        }
    );
    let audio = &s.tracks[1];
    assert_eq!(audio.codec, "mp4a.40.2");
    assert_eq!(audio.codec_id, 10);
    assert!(
        matches!(
            audio.params,
            TrackParams::Audio {
                sample_rate: 44100,
                ..
            }
        ),
        "{audio:?}"
    );
    s.epoch
}

/// From a live StreamInfo at `msgs[0]` (of `channel`): optional script data, the video then
/// the audio configuration (the source's bytes), a Timeline of the epoch, then a video
/// keyframe with the Timeline's timestamp, and no video frame before it. Returns the epoch
/// and the keyframe's index.
fn assert_starts_decodable(msgs: &[W], channel: &str, src: &Source) -> (u32, usize) {
    let epoch = assert_live_info(&msgs[0], channel);
    let key = msgs
        .iter()
        .position(is_key_msg)
        .unwrap_or_else(|| panic!("no keyframe: {}", summary(msgs)));
    let head = &msgs[1..key];
    let video_config = head
        .iter()
        .position(|m| as_media(m).is_some_and(|x| x.kind == MediaKind::Video && is_config_msg(m)));
    let audio_config = head
        .iter()
        .position(|m| as_media(m).is_some_and(|x| x.kind == MediaKind::Audio && is_config_msg(m)));
    let (Some(v), Some(a)) = (video_config, audio_config) else {
        panic!(
            "configurations missing before the keyframe: {}",
            summary(msgs)
        );
    };
    assert!(
        v < a,
        "audio configuration before video's: {}",
        summary(msgs)
    );
    assert_eq!(
        as_media(&head[v]).map(|x| x.body.clone()),
        Some(source_config(src, MediaKind::Video)),
        "video configuration is not the source's avcC sequence header"
    );
    assert_eq!(
        as_media(&head[a]).map(|x| x.body.clone()),
        Some(source_config(src, MediaKind::Audio)),
        "audio configuration is not the source's"
    );
    for m in head {
        match m {
            W::Media(x) => assert!(
                x.kind == MediaKind::Script || x.flags.contains(MediaFlags::CONFIG),
                "a frame before the first keyframe: {}",
                summary(msgs)
            ),
            W::Timeline(_) => {}
            other => panic!("unexpected {} before the keyframe", brief(other)),
        }
    }
    let W::Timeline(t) = &msgs[key - 1] else {
        panic!("no Timeline right before the keyframe: {}", summary(msgs));
    };
    assert!(key - 1 > 1 + a, "Timeline before the configurations");
    assert_eq!(t.epoch, epoch);
    let keyframe = as_media(&msgs[key]).expect("media");
    assert_eq!(t.timestamp_ms, keyframe.timestamp_ms);
    (epoch, key)
}

/// Hello (version 1) first; returns the rest.
fn assert_hello(msgs: &[W]) -> &[W] {
    match msgs.first() {
        Some(W::Hello(h)) => {
            assert_eq!(h.version, 1);
            assert!(h.server.starts_with("lockstep-relay/"), "{h:?}");
            // Checked when it arrived by `ping_pong_clock_sync`; here only that it is a time.
            let age = now_us() as i64 - h.relay_time_us as i64;
            assert!(
                (0..600_000_000).contains(&age),
                "Hello relay time {age} µs ago"
            );
        }
        _ => panic!("first message is not Hello: {}", summary(msgs)),
    }
    &msgs[1..]
}

// ---------------------------------------------------------------------------------------------
// Relay helpers
// ---------------------------------------------------------------------------------------------

/// The body of a successful `GET path`.
async fn get_text(relay: &Relay, path: &str) -> String {
    let url = format!("http://{}{path}", relay.http);
    let resp = timeout(STEP, reqwest::get(&url))
        .await
        .expect("request timed out")
        .expect("request");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.text().await.expect("body")
}

async fn get_json(relay: &Relay, path: &str) -> Value {
    serde_json::from_str(&get_text(relay, path).await).expect("API JSON")
}

fn channel_json<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["channels"].as_array()?.iter().find(|c| c["name"] == name)
}

/// Polls `path` until `ok` holds (or panics after `STEP`).
async fn wait_json(relay: &Relay, path: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + STEP;
    loop {
        let v = get_json(relay, path).await;
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {v:#}");
        sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `name` is live with a keyframe in its GOP cache.
async fn wait_live(relay: &Relay, name: &str) {
    wait_json(relay, "/api/channels", "the channel to go live", |v| {
        channel_json(v, name)
            .is_some_and(|c| c["live"] == true && c["gop_frames"].as_u64() > Some(0))
    })
    .await;
}

/// A relay playing the standard source on channel `name`, looped.
async fn looping_relay(name: &str, src: &Source) -> Relay {
    let arg = format!("{name}={}", src.path_str());
    Relay::start(&["--file", &arg, "--loop"]).await
}

/// The relay's resident set size, kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// ffmpeg arguments publishing the first `secs` of the source in real time over RTMP.
fn rtmp_publish(relay: &Relay, name: &str, secs: &str) -> Vec<String> {
    let url = relay.rtmp_url(name, None);
    let mut v = vec!["-re".to_string(), "-i".into(), src_path().into()];
    v.extend(["-t", secs, "-c", "copy", "-f", "flv", &url].map(String::from));
    v
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// A viewer joining mid-stream gets Hello, StreamInfo, the configurations, a Timeline and a
/// keyframe first; then every frame, byte for byte as in the source, across the loop's wrap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_mid_stream_starts_decodable_and_is_byte_identical() {
    let src = source();
    let relay = looping_relay("demo", src).await;
    wait_live(&relay, "demo").await;
    sleep(Duration::from_millis(1200)).await; // mid-GOP, mid-file
    let mut v = Viewer::connect(relay.http, "demo", "join-test/1").await;
    let got = msgs(
        &v.read_until_time(Instant::now() + Duration::from_secs(4))
            .await,
    );
    let rest = assert_hello(&got);
    let (epoch, key) = assert_starts_decodable(rest, "demo", src);
    assert_stream_rules(rest, src);
    assert!(
        !rest
            .iter()
            .any(|m| matches!(m, W::Discontinuity(_) | W::End(_))),
        "the loop is one epoch: {}",
        summary(rest)
    );
    for m in rest {
        if let W::Timeline(t) = m {
            assert_eq!(t.epoch, epoch);
        }
    }
    let frames = frames_of(&rest[key..]);
    assert_source_run(&frames, src, true);
    let video = frames.iter().filter(|f| f.0 == MediaKind::Video).count();
    assert!(video >= 100, "only {video} video frames in 4 s");
    // 1.2 s + 4 s of a 4 s file: the run wrapped to the start.
    let first_key = source_frames(src)
        .into_iter()
        .find(|f| f.0 == MediaKind::Video)
        .expect("video");
    assert!(
        frames.iter().skip(1).any(|f| f.2 == first_key.1),
        "the loop did not wrap"
    );
}

/// A second viewer joining 2.5 s later also starts with configurations and a keyframe, then
/// receives the same live frames as the first (same bytes for the same timestamps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_gets_the_same_frames() {
    let src = source();
    let relay = looping_relay("demo", src).await;
    wait_live(&relay, "demo").await;
    let end = Instant::now() + Duration::from_secs(6);
    let first = spawn_reader(
        Viewer::connect(relay.http, "demo", "first/1").await,
        end + Duration::from_millis(500),
    );
    sleep(Duration::from_millis(2500)).await;
    let second = spawn_reader(Viewer::connect(relay.http, "demo", "second/1").await, end);
    let a = msgs(&first.await.expect("first viewer").1);
    let b = msgs(&second.await.expect("second viewer").1);
    let (ea, _) = assert_starts_decodable(assert_hello(&a), "demo", src);
    let (eb, kb) = assert_starts_decodable(assert_hello(&b), "demo", src);
    assert_eq!(ea, eb, "same epoch");
    assert_stream_rules(&a[1..], src);
    assert_stream_rules(&b[1..], src);
    let fa = frames_of(&a);
    let fb = frames_of(&assert_hello(&b)[kb..]);
    assert!(fb.len() > 100, "late joiner got {} frames", fb.len());
    // The late joiner's frames are a contiguous run of the first viewer's, from its keyframe.
    let start = fa
        .iter()
        .position(|f| f.0 == fb[0].0 && f.1 == fb[0].1)
        .expect("the late joiner's keyframe is not among the first viewer's frames");
    let overlap = (fa.len() - start).min(fb.len());
    assert!(
        overlap + 5 >= fb.len(),
        "first viewer stopped early: {overlap} of {}",
        fb.len()
    );
    for j in 0..overlap {
        let (x, y) = (&fa[start + j], &fb[j]);
        assert_eq!(
            (x.0, x.1),
            (y.0, y.1),
            "frame {j} of the late joiner differs in kind/timestamp"
        );
        assert!(x.2 == y.2, "frame {j} (ts {}) differs in bytes", x.1);
    }
}

/// Ping → Pong: t0 echoed, t0 ≤ t1 ≤ t2 ≤ t3 on the one clock of this machine, answered
/// promptly even while media flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_pong_clock_sync() {
    let relay = looping_relay("demo", source()).await;
    wait_live(&relay, "demo").await;
    let slack = 2_000; // µs: clock reads in two processes
    let before = now_us();
    let mut v = Viewer::connect(relay.http, "demo", "clock/1").await;
    let W::Hello(hello) = v.msg().await else {
        panic!("no Hello first");
    };
    let after = now_us();
    assert!(
        hello.relay_time_us + slack >= before && hello.relay_time_us <= after + slack,
        "Hello relay time {} outside [{before}, {after}]",
        hello.relay_time_us
    );
    let mut best_rtt = u64::MAX;
    for _ in 0..5 {
        let t0 = now_us();
        v.send(&W::Ping(wire::Ping { t0 })).await;
        let got = v.read_until(STEP, |m| matches!(m, W::Pong(_))).await;
        let t3 = now_us();
        let Some(W::Pong(p)) = got.last() else {
            unreachable!()
        };
        assert_eq!(p.t0, t0, "t0 not echoed");
        assert!(p.t1 <= p.t2, "t1 {} > t2 {}", p.t1, p.t2);
        assert!(p.t1 + slack >= t0, "t1 {} before t0 {t0}", p.t1);
        assert!(p.t2 <= t3 + slack, "t2 {} after t3 {t3}", p.t2);
        assert!(t3 - t0 < 2_000_000, "round trip {} µs", t3 - t0);
        best_rtt = best_rtt.min(t3 - t0);
        // The NTP arithmetic of the player agrees: offset near zero on one machine.
        let sample = wire::ClockSample::from_ping(t0, p.t1, p.t2, t3);
        assert!(
            sample.offset_us.abs() <= (t3 - t0) as i64 / 2 + slack as i64,
            "{sample:?}"
        );
    }
    assert!(best_rtt < 100_000, "best round trip {best_rtt} µs");
}

/// `/clock` answers Pings and sends nothing else, while the channel's media flows on `/ws`;
/// anything but a Ping closes it with a reason, without touching the media viewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_endpoint_answers_pings_and_nothing_else() {
    let relay = looping_relay("demo", source()).await;
    wait_live(&relay, "demo").await;
    let mut media = Viewer::connect(relay.http, "demo", "media/1").await;
    let mut clock = Viewer::connect_path(relay.http, "/clock", "clock/1", None).await;
    let slack = 2_000; // µs: clock reads in two processes
    for _ in 0..5 {
        let t0 = now_us();
        clock.send(&W::Ping(wire::Ping { t0 })).await;
        let t3;
        let p = match clock.next(STEP).await {
            Some(Ev::Msg(W::Pong(p))) => {
                t3 = now_us();
                p
            }
            other => panic!("expected a Pong and only a Pong, got {other:?}"),
        };
        assert_eq!(p.t0, t0, "t0 not echoed");
        assert!(p.t1 <= p.t2, "t1 {} > t2 {}", p.t1, p.t2);
        assert!(p.t1 + slack >= t0, "t1 {} before t0 {t0}", p.t1);
        assert!(p.t2 <= t3 + slack, "t2 {} after t3 {t3}", p.t2);
    }
    // Nothing unasked: no Hello, no media.
    assert!(
        clock.next(Duration::from_millis(500)).await.is_none(),
        "the clock connection sent something unasked"
    );
    let metrics = get_text(&relay, "/metrics").await;
    assert!(
        metrics.contains("lockstep_clock_connections 1\n"),
        "no open clock connection in /metrics"
    );
    // A Feedback is not for this endpoint: closed with a protocol error.
    clock.send(&W::Feedback(wire::Feedback::default())).await;
    let (_, code) = clock.read_until_close().await;
    assert_eq!(code, Some(1002));
    // A malformed message too (an unknown kind would be ignored: forward compatibility).
    let mut clock = Viewer::connect_path(relay.http, "/clock", "clock/2", None).await;
    clock
        .send_raw(Bytes::from_static(&[0x83, 0x01, 0x02]))
        .await; // a truncated Ping
    let (_, code) = clock.read_until_close().await;
    assert_eq!(code, Some(1002));
    // The media viewer never noticed.
    let got = media.read_until(STEP, |m| matches!(m, W::Media(_))).await;
    assert!(matches!(got.last(), Some(W::Media(_))));
}

/// Feedback from a viewer shows in `/api/stats` for that viewer only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_shows_in_stats() {
    let relay = looping_relay("demo", source()).await;
    wait_live(&relay, "demo").await;
    let mut v = Viewer::connect(relay.http, "demo", "feedback-test/1").await;
    let mut other = Viewer::connect(relay.http, "demo", "quiet-test/1").await;
    assert!(matches!(v.msg().await, W::Hello(_)));
    assert!(matches!(other.msg().await, W::Hello(_)));
    let viewer = |stats: &Value, ua: &str| -> Value {
        channel_json(stats, "demo")
            .and_then(|c| c["viewer_list"]["viewers"].as_array())
            .and_then(|l| l.iter().find(|x| x["user_agent"] == ua).cloned())
            .unwrap_or(Value::Null)
    };
    let fb = wire::Feedback {
        buffer_ms: 850,
        latency_ms: Some(432),
        playback_rate_milli: 1020,
        decoded_frames: 300,
        dropped_frames: 2,
        bytes_received: 123_456,
        bandwidth_kbps: 2500,
        stalls: 1,
        mode: wire::MODE_WEBCODECS,
        sync_error_ms: Some(-7),
        rtt_us: Some(1500),
        // At 150 the frames would be due (2 + 150) mod 16.667 = 2.0 ms after a refresh
        // (clear of the middle), at 146 14.7 ms (2 ms before the next: clear too): D = 146,
        // where without the grid it would be rounded up to 150.
        target_ms: Some(146),
        refresh: wire::RefreshPhase::new(16_667, 2_000),
    };
    v.send(&W::Feedback(fb)).await;
    let stats = wait_json(&relay, "/api/stats", "the feedback", |s| {
        viewer(s, "feedback-test/1")["latency_ms"] == 432
    })
    .await;
    let me = viewer(&stats, "feedback-test/1");
    assert_eq!(me["buffer_ms"], 850, "{me}");
    assert_eq!(me["bandwidth_kbps"], 2500, "{me}");
    assert_eq!(me["mode"], "webcodecs", "{me}");
    assert_eq!(me["sync_error_ms"], -7, "{me}");
    assert_eq!(me["stalls"], 1, "{me}");
    assert_eq!(me["rtt_ms"].as_f64(), Some(1.5), "{me}");
    assert_eq!(me["playback_rate"].as_f64(), Some(1.02), "{me}");
    assert_eq!(me["target_ms"], 146, "{me}");
    assert_eq!(me["refresh_period_ms"].as_f64(), Some(16.667), "{me}");
    assert_eq!(me["refresh_phase_ms"].as_f64(), Some(2.0), "{me}");
    // The shared delay is chosen from it, on the grid.
    wait_json(&relay, "/api/channels", "D from the feedback", |s| {
        channel_json(s, "demo").is_some_and(|c| c["delay_ms"] == 146)
    })
    .await;
    let quiet = viewer(&stats, "quiet-test/1");
    assert!(quiet.is_object(), "the other viewer is listed: {stats:#}");
    assert!(quiet["latency_ms"].is_null(), "{quiet}");
    assert!(quiet["buffer_ms"].is_null(), "{quiet}");
    let summary = &channel_json(&stats, "demo").expect("channel")["summary"];
    assert_eq!(summary["reporting"], 1, "{summary}");
    assert_eq!(summary["latency_ms"]["max"], 432, "{summary}");

    // The next report replaces it; an unknown latency shows as null.
    v.send(&W::Feedback(wire::Feedback {
        buffer_ms: 120,
        latency_ms: None,
        ..fb
    }))
    .await;
    let stats = wait_json(&relay, "/api/stats", "the second feedback", |s| {
        viewer(s, "feedback-test/1")["buffer_ms"] == 120
    })
    .await;
    assert!(viewer(&stats, "feedback-test/1")["latency_ms"].is_null());
    drop(other);
}

/// The source for the stalled-viewer test: 320x240 with noise, lossless, about 1.8 MB/s, so
/// that the relay's socket buffers fill within a second or two.
fn heavy_source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| Source::generate("ws-heavy", &["-vf", "noise=alls=4:allf=t", "-qp", "0"]))
}

/// A viewer that stops reading costs the others nothing: they keep the source's rate
/// without stalls, the relay's memory stays bounded, and the stalled viewer, reading again,
/// gets a Skipped notice and resumes at a keyframe with StreamInfo and configurations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_viewer_is_isolated() {
    let src = heavy_source();
    let relay = looping_relay("heavy", src).await;
    wait_live(&relay, "heavy").await;
    let pid = relay.pid();

    let stall = Duration::from_secs(9);
    let t0 = Instant::now();
    let end = t0 + stall + Duration::from_secs(1);
    let good: Vec<_> = [
        Viewer::connect(relay.http, "heavy", "good-1").await,
        Viewer::connect(relay.http, "heavy", "good-2").await,
    ]
    .into_iter()
    .map(|v| spawn_reader(v, end))
    .collect();
    // A tiny TCP window; after the handshake it reads nothing for `stall`.
    let mut stalled = Viewer::connect_with(relay.http, "heavy", "stalled", Some(4096)).await;

    sleep(Duration::from_secs(1)).await;
    let rss0 = rss_kb(pid);
    let mut rss_max = rss0;
    while t0.elapsed() < stall {
        sleep(Duration::from_millis(250)).await;
        rss_max = rss_max.max(rss_kb(pid));
    }
    // Reading again.
    let resumed_at = Instant::now();
    let after = stalled
        .read_until_time(resumed_at + Duration::from_secs(4))
        .await;
    rss_max = rss_max.max(rss_kb(pid));

    let fps = frames(&src.tags, TagKind::Video).len() as f64 / 4.0;
    let window = (t0 + Duration::from_secs(2), t0 + Duration::from_secs(8));
    for (n, g) in good.into_iter().enumerate() {
        let (_, got) = g.await.expect("good viewer");
        let video = got
            .iter()
            .filter(|(t, m)| {
                *t >= window.0
                    && *t < window.1
                    && as_media(m).is_some_and(|x| x.kind == MediaKind::Video && is_frame(x))
            })
            .count() as f64;
        let want = fps * 6.0;
        assert!(
            (video - want).abs() <= want * 0.1,
            "good viewer {n}: {video} video frames in 6 s, source rate gives {want}"
        );
        let times: Vec<Instant> = got
            .iter()
            .filter(|(t, _)| *t >= t0 + Duration::from_secs(1))
            .map(|(t, _)| *t)
            .collect();
        let gap = times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        assert!(
            gap < Duration::from_millis(500),
            "good viewer {n} stalled for {gap:?}"
        );
        let all = msgs(&got);
        assert_stream_rules(&all[1..], src);
        assert!(
            !all.iter().any(|m| matches!(m, W::Skipped(_))),
            "good viewer {n} was told it skipped"
        );
        let (_, key) = assert_starts_decodable(assert_hello(&all), "heavy", src);
        assert_source_run(&frames_of(&all[1 + key..]), src, true);
    }
    assert!(
        rss_max <= rss0 + 64 * 1024,
        "relay RSS grew from {rss0} kB to {rss_max} kB"
    );

    // What the stalled viewer got once it read again: what was already in the pipes, then
    // Skipped, and the stream again from a keyframe, with StreamInfo and configurations.
    // (A backlog of several GOPs may skip once per GOP until it reaches live.)
    let after = msgs(&after);
    let skips: Vec<usize> = after
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m, W::Skipped(_)))
        .map(|(i, _)| i)
        .collect();
    assert!(
        !skips.is_empty(),
        "no Skipped after a {stall:?} stall ({} messages): {}",
        after.len(),
        summary(&after)
    );
    let mut key = 0;
    for &skipped in &skips {
        let W::Skipped(s) = &after[skipped] else {
            unreachable!()
        };
        assert!(s.frames > 0 && s.bytes > 0, "{s:?}");
        key = skipped
            + after[skipped..]
                .iter()
                .position(is_key_msg)
                .expect("no keyframe after Skipped");
        assert!(
            after[skipped + 1..key]
                .iter()
                .all(|m| matches!(m, W::Timeline(_)) || is_config_msg(m)),
            "frames between Skipped and the keyframe: {}",
            summary(&after[skipped..])
        );
        assert!(
            matches!(&after[key - 1], W::Timeline(t) if Some(t.timestamp_ms) == as_media(&after[key]).map(|k| k.timestamp_ms)),
            "no Timeline right before the resuming keyframe"
        );
        // StreamInfo and both configurations since the last frame before the skip.
        let last_frame = after[..skipped]
            .iter()
            .rposition(|m| as_media(m).is_some_and(is_frame))
            .map_or(0, |i| i + 1);
        let resync = &after[last_frame..key];
        assert!(
            resync.iter().any(|m| matches!(m, W::StreamInfo(_))),
            "no StreamInfo before the resuming keyframe: {}",
            summary(resync)
        );
        for kind in [MediaKind::Video, MediaKind::Audio] {
            assert!(
                resync
                    .iter()
                    .any(|m| is_config_msg(m) && as_media(m).is_some_and(|x| x.kind == kind)),
                "no {kind:?} configuration before the resuming keyframe: {}",
                summary(resync)
            );
        }
    }
    // A skip is no discontinuity: one epoch, timestamps forward, frames genuine.
    assert!(!after
        .iter()
        .any(|m| matches!(m, W::Discontinuity(_) | W::End(_))));
    // It never read before the stall: this is its whole stream, from Hello on.
    let whole = assert_hello(&after);
    assert_starts_decodable(whole, "heavy", src);
    assert_stream_rules(whole, src);
    let resumed = frames_of(&after[key..]);
    assert!(
        resumed.len() > 50,
        "only {} frames after resuming",
        resumed.len()
    );
    assert_source_run(&resumed, src, true);
    eprintln!(
        "stalled viewer: {} skips, RSS {rss0} → max {rss_max} kB",
        skips.len()
    );
}

/// Garbage from one viewer closes that viewer only: text → 1003; a malformed message →
/// Error then 1002; unknown types and relay-to-player messages are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_viewer_closes_only_that_viewer() {
    let src = source();
    let mut relay = looping_relay("demo", src).await;
    wait_live(&relay, "demo").await;
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(6);
    let observer = spawn_reader(Viewer::connect(relay.http, "demo", "observer").await, end);

    // Text: closed with 1003.
    let mut v = Viewer::connect(relay.http, "demo", "texter").await;
    v.ws.send(WsMessage::Text("hello relay".into()))
        .await
        .expect("send text");
    let (_, code) = v.read_until_close().await;
    assert_eq!(code, Some(1003), "text message");

    // Malformed known messages: Error 1, then 1002.
    for bad in [&[0x83u8, 0x01, 0x02][..], &[][..], &[0x85, 0, 0, 0, 1][..]] {
        let mut v = Viewer::connect(relay.http, "demo", "garbler").await;
        v.send_raw(Bytes::copy_from_slice(bad)).await;
        let (got, code) = v.read_until_close().await;
        assert_eq!(code, Some(1002), "{bad:02x?}");
        let err = got.iter().find_map(|m| match m {
            W::Error(e) => Some(e.clone()),
            _ => None,
        });
        assert_eq!(
            err.map(|e| e.code),
            Some(wire::code::BAD_MESSAGE),
            "{bad:02x?}: no Error 1 before the close"
        );
    }

    // Unknown types (control 0xF7, media kinds 0 and 4) and a message in the wrong
    // direction: ignored, the connection goes on (a Ping after them is answered).
    let mut v = Viewer::connect(relay.http, "demo", "future-player").await;
    for odd in [
        &[0xF7u8, 1, 2, 3, 4, 5][..],
        &[0x05, 0, 0, 0, 0, 9][..],
        &[0x4F][..],
        &[0xFF][..],
    ] {
        v.send_raw(Bytes::copy_from_slice(odd)).await;
    }
    v.send(&W::Hello(wire::Hello {
        version: 1,
        relay_time_us: 0,
        server: "not a relay".into(),
    }))
    .await;
    v.send(&W::Ping(wire::Ping { t0: 42 })).await;
    let got = v.read_until(STEP, |m| matches!(m, W::Pong(_))).await;
    assert!(
        !got.iter().any(|m| matches!(m, W::Error(_))),
        "an Error for an ignorable message"
    );
    let more = v
        .read_until_time(Instant::now() + Duration::from_secs(1))
        .await;
    assert!(
        more.iter().filter(|(_, m)| as_media(m).is_some()).count() > 10,
        "the viewer that sent unknown types stopped receiving media"
    );

    relay.assert_alive();
    let (_, seen) = observer.await.expect("observer");
    relay.assert_alive();
    let times: Vec<Instant> = seen.iter().map(|(t, _)| *t).collect();
    let gap = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        gap < Duration::from_millis(500),
        "observer stalled for {gap:?}"
    );
    let late = seen
        .iter()
        .filter(|(t, m)| *t >= end - Duration::from_secs(1) && as_media(m).is_some())
        .count();
    assert!(
        late > 20,
        "observer received only {late} media messages in its last second"
    );
    let all = msgs(&seen);
    assert_stream_rules(&all[1..], src);
    let (_, key) = assert_starts_decodable(assert_hello(&all), "demo", src);
    assert_source_run(&frames_of(&all[1 + key..]), src, true);
}

/// An FLV body with a garbage video sequence header, a garbage AAC configuration and empty
/// tags (at the start and in the middle), pushed over HTTP PUT: those tags are skipped and
/// counted, and viewers only ever see the source's genuine frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_flv_tags_are_skipped_and_counted() {
    let src = source();
    let mut relay = Relay::start(&[]).await;
    let mut v = Viewer::connect(relay.http, "cam", "corrupt-test").await;

    let bad_avc: &[u8] = &[0x17, 0x00, 0, 0, 0, 0x00, 0xFF, 0x13, 0x37];
    let bad_aac: &[u8] = &[0xAF, 0x00];
    let mut bad = 0u64;
    let mut chunks: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut head = Vec::new();
    write_file_header(&mut head, true, true);
    for (kind, body) in [
        (TagKind::Video, bad_avc),
        (TagKind::Video, &[][..]),
        (TagKind::Audio, &[][..]),
        (TagKind::Audio, bad_aac),
    ] {
        write_tag(&mut head, kind, 0, body);
        bad += 1;
    }
    chunks.push((0, head));
    let mid = src.tags.len() / 2;
    for (i, t) in src.tags.iter().enumerate() {
        let mut c = Vec::new();
        if i == mid {
            // Mid-stream, with the neighbours' timestamp: no epoch change either.
            for (kind, body) in [
                (TagKind::Video, &[][..]),
                (TagKind::Video, bad_avc),
                (TagKind::Audio, &[][..]),
                (TagKind::Video, &[0x17][..]),
            ] {
                write_tag(&mut c, kind, t.ts, body);
                bad += 1;
            }
        }
        write_tag(&mut c, t.kind, t.ts, &t.body);
        chunks.push((t.ts, c));
    }
    // Paced at twice real time, one tag per chunk.
    let started = Instant::now();
    let body = futures_util::stream::unfold(chunks.into_iter(), move |mut it| async move {
        let (ts, c) = it.next()?;
        tokio::time::sleep_until(started + Duration::from_millis(u64::from(ts) / 2)).await;
        Some((Ok::<_, std::io::Error>(Bytes::from(c)), it))
    });
    let put = tokio::spawn(
        reqwest::Client::new()
            .put(relay.ingest_url("cam", None))
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    let until_end = Instant::now() + Duration::from_secs(4);
    let got = msgs(&v.read_until_time(until_end).await);
    let resp = timeout(STEP, put)
        .await
        .expect("PUT timed out")
        .expect("PUT task")
        .expect("PUT");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap_or_default();
    assert!(text.contains(&format!("({bad} skipped)")), "{text}");
    relay.assert_alive();

    let rest = assert_hello(&got);
    let W::StreamInfo(idle) = &rest[0] else {
        panic!("no idle StreamInfo: {}", summary(rest));
    };
    assert_eq!(idle.flags, 0);
    let live = rest
        .iter()
        .position(|m| matches!(m, W::StreamInfo(s) if s.flags & wire::STREAM_LIVE != 0))
        .expect("no live StreamInfo");
    let (_, key) = assert_starts_decodable(&rest[live..], "cam", src);
    assert_stream_rules(rest, src);
    assert_eq!(
        rest.iter().filter(|m| is_config_msg(m)).count(),
        2,
        "configurations sent again: {}",
        summary(rest)
    );
    assert_eq!(
        rest.iter()
            .filter(|m| matches!(m, W::StreamInfo(s) if s.flags != 0))
            .count(),
        1,
        "the stream was re-announced"
    );
    let frames = frames_of(&rest[live + key..]);
    assert_source_run(&frames, src, false);
    let video = frames.iter().filter(|f| f.0 == MediaKind::Video).count();
    assert_eq!(
        video,
        frames_as_video_count(src),
        "not every video frame of the source arrived"
    );

    let list = get_json(&relay, "/api/channels").await;
    let c = channel_json(&list, "cam").expect("channel");
    assert_eq!(c["rejected_tags"], bad, "{c}");
    assert_eq!(c["width"], 320, "{c}");
}

fn frames_as_video_count(src: &Source) -> usize {
    frames(&src.tags, TagKind::Video).len()
}

/// A publisher leaves and a new one starts from timestamp 0: the viewer stays connected and
/// gets End, Discontinuity (epoch + 1, reason 1), StreamInfo of the new epoch, configurations
/// and a keyframe. A viewer joining between the two sees the idle channel at the last epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_restart_starts_a_new_epoch() {
    let src = source();
    let relay = Relay::start(&[]).await;
    let mut v = Viewer::connect(relay.http, "cam", "restart-test").await;
    let first = tokio::spawn(ffmpeg(
        rtmp_publish(&relay, "cam", "2"),
        Duration::from_secs(20),
    ));
    let mut got = v
        .read_until(Duration::from_secs(20), |m| matches!(m, W::End(_)))
        .await;
    assert!(first.await.expect("ffmpeg task"), "first publish failed");

    // Between the publishers.
    let mut between = Viewer::connect(relay.http, "cam", "between").await;
    let idle = between
        .read_until(STEP, |m| matches!(m, W::StreamInfo(_)))
        .await;

    let second = tokio::spawn(ffmpeg(
        rtmp_publish(&relay, "cam", "2"),
        Duration::from_secs(20),
    ));
    got.extend(
        v.read_until(Duration::from_secs(20), |m| matches!(m, W::End(_)))
            .await,
    );
    assert!(second.await.expect("ffmpeg task"), "second publish failed");
    let between_got = between.read_until(STEP, is_key_msg).await;

    let rest = assert_hello(&got);
    assert!(
        matches!(&rest[0], W::StreamInfo(s) if s.flags == 0),
        "{}",
        summary(rest)
    );
    let (e1, key1) = assert_starts_decodable(&rest[1..], "cam", src);
    assert_stream_rules(rest, src);
    let end1 = rest
        .iter()
        .position(|m| matches!(m, W::End(_)))
        .expect("End");
    let frames1 = frames_of(&rest[1 + key1..end1]);
    assert_source_run(&frames1, src, false);
    let after = &rest[end1 + 1..];
    assert!(
        matches!(after[0], W::Discontinuity(wire::Discontinuity { epoch, reason: wire::reason::PUBLISHER_RESTART }) if epoch == e1.wrapping_add(1)),
        "after End: {}",
        summary(after)
    );
    let (e2, key2) = assert_starts_decodable(&after[1..], "cam", src);
    assert_eq!(e2, e1.wrapping_add(1));
    // The new epoch starts over from the source's first keyframe, at timestamp 0.
    let frames2 = frames_of(&after[1 + key2..]);
    assert_source_run(&frames2, src, false);
    let first_video = frames(&src.tags, TagKind::Video)[0];
    assert!(
        frames2[0].2 == first_video.body,
        "the new epoch does not start at the source's first keyframe"
    );
    assert!(
        frames2[0].1 < 100,
        "new epoch starts at {} ms",
        frames2[0].1
    );
    assert!(matches!(after.last(), Some(W::End(_))));

    // The viewer that joined between publishers: the idle channel at the current epoch.
    let idle_rest = assert_hello(&idle);
    let W::StreamInfo(s) = &idle_rest[0] else {
        panic!("{}", summary(idle_rest))
    };
    assert_eq!((s.flags, s.tracks.len()), (0, 0), "{s:?}");
    assert_eq!(
        s.epoch, e1,
        "an idle StreamInfo names the channel's last epoch"
    );
    assert!(
        matches!(between_got[0], W::Discontinuity(d) if d.epoch == e2 && d.reason == wire::reason::PUBLISHER_RESTART),
        "{}",
        summary(&between_got)
    );
    assert_starts_decodable(&between_got[1..], "cam", src);
}

/// A viewer of a channel nobody publishes gets Hello and an idle StreamInfo, nothing else;
/// when a publisher starts it gets the live StreamInfo, configurations and a keyframe —
/// promptly, over a socket with TCP_NODELAY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_channel_goes_live_when_a_publisher_starts() {
    let src = source();
    let relay = Relay::start(&[]).await;
    let mut v = Viewer::connect(relay.http, "later", "idle-test").await;
    let hello = v.msg().await;
    assert_hello(std::slice::from_ref(&hello));
    match v.msg().await {
        W::StreamInfo(s) => {
            assert_eq!(s.flags, 0, "{s:?}");
            assert!(s.tracks.is_empty(), "{s:?}");
            assert_eq!(s.channel, "later");
        }
        other => panic!("expected an idle StreamInfo, got {}", brief(&other)),
    }
    match v.next(Duration::from_millis(1000)).await {
        None => {}
        Some(e) => panic!("an idle channel sent {e:?}"),
    }

    if let Some(nodelay) = relay_socket_nodelay(relay.pid(), v.local) {
        assert!(
            nodelay,
            "the relay's socket to the viewer lacks TCP_NODELAY"
        );
    } else {
        eprintln!("TCP_NODELAY of the relay's socket not checkable here (pidfd_getfd)");
    }

    let started = Instant::now();
    let publisher = tokio::spawn(ffmpeg(
        rtmp_publish(&relay, "later", "1.5"),
        Duration::from_secs(20),
    ));
    let got = v.read_until(Duration::from_secs(10), is_key_msg).await;
    let first_frame = started.elapsed();
    let start = match &got[0] {
        W::Discontinuity(_) => 1,
        _ => 0,
    };
    let (_, key) = assert_starts_decodable(&got[start..], "later", src);
    assert_eq!(start + key + 1, got.len());
    let rest = v
        .read_until(Duration::from_secs(20), |m| matches!(m, W::End(_)))
        .await;
    assert!(publisher.await.expect("ffmpeg task"), "publish failed");
    let mut all = got[start..].to_vec();
    all.extend(rest);
    assert_stream_rules(&all, src);
    assert_source_run(&frames_of(&all[key..]), src, false);
    eprintln!("first keyframe {first_frame:?} after starting ffmpeg");
}

/// TCP_NODELAY of the relay's socket connected to `peer`, read from a duplicate of the
/// relay's file descriptor (`pidfd_getfd`); `None` when that is not permitted.
fn relay_socket_nodelay(pid: u32, peer: SocketAddr) -> Option<bool> {
    // SAFETY (all calls below): plain syscalls on descriptors this function owns, with
    // buffers of the sizes passed.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as i32;
    if pidfd < 0 {
        return None;
    }
    let mut found = None;
    let mut permitted = false;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        let dup = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) } as i32;
        if dup < 0 {
            continue;
        }
        permitted = true;
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let ok =
            unsafe { libc::getpeername(dup, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) }
                == 0;
        if ok
            && i32::from(addr.sin_family) == libc::AF_INET
            && u16::from_be(addr.sin_port) == peer.port()
        {
            let mut v: libc::c_int = 0;
            let mut vlen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            let r = unsafe {
                libc::getsockopt(
                    dup,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    &mut v as *mut _ as *mut libc::c_void,
                    &mut vlen,
                )
            };
            if r == 0 {
                found = Some(v != 0);
            }
        }
        unsafe { libc::close(dup) };
        if found.is_some() {
            break;
        }
    }
    unsafe { libc::close(pidfd) };
    if !permitted {
        return None;
    }
    found
}

/// The standard source's video with Opus audio (Enhanced RTMP, FourCC `Opus`) from ffmpeg's
/// libopus in place of its AAC, interleaved by time: what an Enhanced RTMP encoder sends.
fn opus_source() -> Source {
    let base = source();
    let ogg =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("opus-src-{}.ogg", std::process::id()));
    let status = std::process::Command::new(FFMPEG)
        .args(["-y", "-hide_banner", "-loglevel", "error"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            "4",
            "-ac",
            "2",
            "-c:a",
            "libopus",
            "-frame_duration",
            "20",
        ])
        .arg(&ogg)
        .stdin(std::process::Stdio::null())
        .status()
        .expect("running ffmpeg");
    assert!(status.success(), "ffmpeg could not make the Opus file");
    let mut reader = ogg::PacketReader::new(std::io::Cursor::new(std::fs::read(&ogg).unwrap()));
    let head = reader.read_packet_expected().expect("OpusHead").data;
    reader.read_packet_expected().expect("OpusTags");
    let mut audio: Vec<(u32, Vec<u8>)> = vec![(0, [&[0x90][..], b"Opus", &head].concat())];
    let mut ms = 0u32;
    while let Some(p) = reader.read_packet().expect("ogg") {
        audio.push((ms, [&[0x91][..], b"Opus", &p.data].concat()));
        ms += 20;
    }
    let mut tags: Vec<(u32, TagKind, Vec<u8>)> = base
        .tags
        .iter()
        .filter(|t| t.kind != TagKind::Audio)
        .map(|t| (t.ts, t.kind, t.body.to_vec()))
        .chain(audio.into_iter().map(|(ts, b)| (ts, TagKind::Audio, b)))
        .collect();
    // Stable: at equal times the video (and its configuration) stays first.
    tags.sort_by_key(|t| (t.0, t.1 == TagKind::Audio));
    let mut flv = Vec::new();
    write_file_header(&mut flv, true, true);
    for (ts, kind, body) in &tags {
        write_tag(&mut flv, *kind, *ts, body);
    }
    let path = ogg.with_extension("flv");
    std::fs::write(&path, &flv).unwrap();
    let bytes = Bytes::from(flv);
    let tags = demux_all(&bytes);
    Source { path, bytes, tags }
}

/// Opus audio (Enhanced RTMP) is forwarded as it came: the StreamInfo names it (`opus`,
/// SoundFormat 9, FourCC `Opus`, 48 kHz stereo), the configuration is the source's OpusHead
/// tag, and every frame is byte-identical to the source's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_audio_is_forwarded_byte_for_byte() {
    let src = opus_source();
    let relay = looping_relay("opus", &src).await;
    wait_live(&relay, "opus").await;
    sleep(Duration::from_millis(700)).await;
    let mut v = Viewer::connect(relay.http, "opus", "opus-test/1").await;
    let got = msgs(
        &v.read_until_time(Instant::now() + Duration::from_secs(3))
            .await,
    );
    let rest = assert_hello(&got);
    let W::StreamInfo(info) = &rest[0] else {
        panic!("expected a StreamInfo: {}", summary(rest));
    };
    let audio = info
        .tracks
        .iter()
        .find(|t| matches!(t.params, TrackParams::Audio { .. }));
    let audio = audio.unwrap_or_else(|| panic!("no audio track: {info:?}"));
    assert_eq!(
        (audio.codec.as_str(), audio.codec_id, &audio.fourcc),
        ("opus", 9, b"Opus"),
        "{audio:?}"
    );
    assert_eq!(
        audio.params,
        TrackParams::Audio {
            sample_rate: 48_000,
            channels: 2
        }
    );
    let key = rest
        .iter()
        .position(is_key_msg)
        .unwrap_or_else(|| panic!("no keyframe: {}", summary(rest)));
    let config = rest[..key]
        .iter()
        .filter_map(as_media)
        .find(|x| x.kind == MediaKind::Audio && x.flags.contains(MediaFlags::CONFIG))
        .unwrap_or_else(|| panic!("no audio configuration first: {}", summary(rest)));
    assert_eq!(config.body, source_config(&src, MediaKind::Audio));
    assert!(config.body.starts_with(b"\x90OpusOpusHead"));
    assert_stream_rules(rest, &src);
    let frames = frames_of(&rest[key..]);
    let opus = frames.iter().filter(|f| f.0 == MediaKind::Audio).count();
    assert!(opus >= 100, "{opus} Opus frames in 3 s (20 ms each)");
    assert_source_run(&frames, &src, true);
}
