//! Ingest, end to end: the real `lockstep-relay` binary fed by ffmpeg over RTMP and HTTP PUT,
//! by `--file` and by `--pull` (HTTP-FLV from a second relay, RTMP from an ffmpeg listener),
//! watched over HTTP-FLV (`/live/NAME.flv`). Tag bodies are compared byte for byte with the
//! source file, which ffmpeg generates at test time (needs ffmpeg with libx264 and AAC).
//!
//! Every test binds 127.0.0.1 only, bounds each wait with a timeout, and kills what it starts
//! (relays and ffmpeg are `kill_on_drop`). A failing test prints the relay's log.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use lockstep_media::flv::metadata::parse_script_tag;
use lockstep_media::flv::{Demuxer, Event, TagKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// An HTTP-FLV viewer: connected (joined the channel) when this returns.
async fn open_viewer(http: SocketAddr, name: &str) -> reqwest::Response {
    let url = format!("http://{http}/live/{name}.flv");
    let resp = timeout(Duration::from_secs(5), reqwest::get(&url))
        .await
        .expect("viewer connect timed out")
        .expect("viewer connect");
    assert_eq!(resp.status(), 200);
    resp
}

/// Reads tags until `done` says so (then a short grace) or `limit` passes.
async fn read_viewer(
    resp: reqwest::Response,
    limit: Duration,
    done: impl Fn(&[T]) -> bool,
) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut body = resp.bytes_stream();
    let mut demuxer = Demuxer::new();
    let mut tags = Vec::new();
    let mut grace: Option<tokio::time::Instant> = None;
    loop {
        let until = grace.unwrap_or(deadline).min(deadline);
        let chunk = match tokio::time::timeout_at(until, body.next()).await {
            Ok(Some(Ok(c))) => c,
            _ => break,
        };
        demuxer.push(chunk);
        while let Some(event) = demuxer.poll() {
            match event.expect("relay's HTTP-FLV output must demux") {
                Event::Tag(t) => tags.push(T {
                    kind: t.kind,
                    ts: t.timestamp,
                    body: t.body,
                }),
                Event::Header(_) | Event::Metadata(_) => {}
            }
        }
        if grace.is_none() && done(&tags) {
            grace = Some(tokio::time::Instant::now() + Duration::from_millis(300));
        }
    }
    tags
}

/// True once the last audio and the last video frame of the source arrived.
fn got_source_end(tags: &[T]) -> bool {
    let src = &source().tags;
    [TagKind::Video, TagKind::Audio].iter().all(|&k| {
        let last = frames(src, k).last().map(|t| t.body.clone());
        last.is_some_and(|b| tags.iter().any(|t| t.kind == k && t.body == b))
    })
}

fn viewer_task(resp: reqwest::Response, limit: Duration) -> tokio::task::JoinHandle<Vec<T>> {
    tokio::spawn(read_viewer(resp, limit, got_source_end))
}

/// Checks what a viewer received against the source: a video configuration before the
/// first keyframe, configurations equal to the source's, and for video and audio the frames
/// a contiguous run of the source's, byte for byte. With `full`, every video frame and all
/// but a few leading audio frames (audio before the first keyframe is not forwarded).
fn assert_same_media(rx: &[T], full: bool, min_video: usize) {
    let src = &source().tags;
    let first_video = rx
        .iter()
        .position(|t| t.kind == TagKind::Video)
        .expect("no video received");
    assert!(
        is_config(&rx[first_video]),
        "first video tag is not a sequence header"
    );
    let first_key = rx
        .iter()
        .position(is_keyframe)
        .expect("no keyframe received");
    assert!(first_video < first_key);
    for t in rx.iter().filter(|t| is_config(t)) {
        assert!(
            src.iter()
                .any(|s| s.kind == t.kind && is_config(s) && s.body == t.body),
            "a {:?} configuration differs from the source's",
            t.kind
        );
    }
    assert!(
        rx.iter().any(|t| t.kind == TagKind::Audio && is_config(t)),
        "no audio configuration"
    );
    for kind in [TagKind::Video, TagKind::Audio] {
        let got = frames(rx, kind);
        let want = frames(src, kind);
        assert!(!got.is_empty(), "no {kind:?} frames");
        let starts: Vec<usize> = (0..want.len())
            .filter(|&i| want[i].body == got[0].body)
            .collect();
        let start = starts
            .iter()
            .copied()
            .find(|&i| want.len() - i >= got.len() && (0..got.len()).all(|j| want[i + j].body == got[j].body))
            .unwrap_or_else(|| panic!("{kind:?} frames are not a byte-identical contiguous run of the source ({} received)", got.len()));
        if full {
            let max_skip = if kind == TagKind::Video { 0 } else { 8 };
            assert!(
                start <= max_skip,
                "{kind:?}: the first {start} source frames are missing"
            );
            assert_eq!(
                start + got.len(),
                want.len(),
                "{kind:?}: the stream was cut short"
            );
        }
    }
    assert!(
        frames(rx, TagKind::Video).len() >= min_video,
        "too few video frames"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_publish_is_relayed_byte_for_byte() {
    let relay = Relay::start(&["--publish-key", "sekrit"]).await;
    let viewer = viewer_task(
        open_viewer(relay.http, "cam").await,
        Duration::from_secs(20),
    );
    let ok = ffmpeg(
        publish_args(true, &[&relay.rtmp_url("cam", Some("sekrit"))]),
        Duration::from_secs(20),
    )
    .await;
    assert!(ok, "ffmpeg RTMP publish failed");
    let rx = viewer.await.expect("viewer task");
    assert_same_media(&rx, true, 100);
    // onMetaData from the RTMP data message, rebuilt from what rml_rtmp decoded.
    let meta = rx
        .iter()
        .filter(|t| t.kind == TagKind::Script)
        .find_map(|t| parse_script_tag(&t.body).ok().flatten())
        .expect("no onMetaData");
    assert_eq!(meta.width, Some(320.0));
    assert_eq!(meta.height, Some(240.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_put_publish_is_relayed_byte_for_byte() {
    let relay = Relay::start(&["--publish-key", "sekrit"]).await;
    let viewer = viewer_task(
        open_viewer(relay.http, "cam").await,
        Duration::from_secs(20),
    );
    let url = relay.ingest_url("cam", Some("sekrit"));
    let ok = ffmpeg(
        publish_args(true, &["-method", "PUT", &url]),
        Duration::from_secs(20),
    )
    .await;
    assert!(ok, "ffmpeg HTTP PUT publish failed");
    let rx = viewer.await.expect("viewer task");
    assert_same_media(&rx, true, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused_and_nothing_is_published() {
    let relay = Relay::start(&["--publish-key", "right"]).await;
    let viewer = open_viewer(relay.http, "cam").await;
    let t = Duration::from_secs(15);
    assert!(
        !ffmpeg(
            publish_args(false, &[&relay.rtmp_url("cam", Some("wrong"))]),
            t
        )
        .await,
        "RTMP with a wrong key was accepted"
    );
    assert!(
        !ffmpeg(publish_args(false, &[&relay.rtmp_url("cam", None)]), t).await,
        "RTMP without a key was accepted"
    );
    let client = reqwest::Client::new();
    for url in [
        relay.ingest_url("cam", Some("wrong")),
        relay.ingest_url("cam", None),
    ] {
        let resp = client
            .put(&url)
            .body(source().bytes.clone())
            .send()
            .await
            .expect("PUT");
        assert_eq!(resp.status(), 403, "{url}");
    }
    let rx = read_viewer(viewer, Duration::from_secs(1), |_| false).await;
    assert!(
        rx.is_empty(),
        "media appeared after refused publishes: {} tags",
        rx.len()
    );

    // The right key still works, over HTTP PUT with the whole file in one body. (A burst
    // this fast makes the viewer skip a GOP by design: only check the frames are genuine.)
    let viewer = viewer_task(
        open_viewer(relay.http, "cam").await,
        Duration::from_secs(10),
    );
    let resp = client
        .put(relay.ingest_url("cam", Some("right")))
        .body(source().bytes.clone())
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap_or_default().starts_with("ok:"));
    let rx = viewer.await.expect("viewer task");
    assert!(
        frames(&rx, TagKind::Video).len() >= 30,
        "too few video frames"
    );
    let src = &source().tags;
    for t in rx.iter().filter(|t| t.kind != TagKind::Script) {
        assert!(
            src.iter().any(|s| s.kind == t.kind && s.body == t.body),
            "a {:?} tag not from the source",
            t.kind
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_key_in_tc_url_is_accepted() {
    // OBS style: the key in the server URL (so in `tcUrl`), the stream key just the name.
    let relay = Relay::start(&["--publish-key", "sekrit"]).await;
    let viewer = viewer_task(
        open_viewer(relay.http, "cam").await,
        Duration::from_secs(15),
    );
    let tc_url = format!("rtmp://{}/live?key=sekrit", relay.rtmp);
    let url = relay.rtmp_url("cam", None);
    let ok = ffmpeg(
        publish_args(true, &["-rtmp_app", "live", "-rtmp_tcurl", &tc_url, &url]),
        Duration::from_secs(20),
    )
    .await;
    assert!(ok, "RTMP publish with the key in tcUrl failed");
    assert_same_media(&viewer.await.expect("viewer task"), true, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_push_rejects_bad_requests() {
    let relay = Relay::start(&[]).await;
    let client = reqwest::Client::new();
    let resp = client
        .get(relay.ingest_url("cam", None))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 405);
    let resp = client
        .put(relay.ingest_url("cam", None))
        .body("this is not FLV at all, just text")
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 400);
    assert!(resp
        .text()
        .await
        .unwrap_or_default()
        .contains("malformed FLV"));
    // A file cut inside a tag: the tags before the cut go out, the answer is 400.
    let cut = source().bytes.slice(..source().bytes.len() / 2 + 3);
    let resp = client
        .put(relay.ingest_url("cam", None))
        .body(cut)
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 400);
    let resp = client
        .put(relay.ingest_url("bad%20name", None))
        .body("FLV")
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 400);
    // The channel is free again afterwards.
    let resp = client
        .put(relay.ingest_url("cam", None))
        .body(source().bytes.clone())
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_is_refused_while_first_is_live() {
    let relay = Relay::start(&[]).await;
    let viewer = open_viewer(relay.http, "cam").await;
    let first = tokio::spawn(ffmpeg(
        publish_args(true, &[&relay.rtmp_url("cam", None)]),
        Duration::from_secs(20),
    ));
    // Wait until the first publisher is live (a few tags arrived).
    let early = read_viewer(viewer, Duration::from_secs(5), |t| t.len() >= 10).await;
    assert!(early.len() >= 10, "first publisher did not go live");

    let viewer = viewer_task(
        open_viewer(relay.http, "cam").await,
        Duration::from_secs(20),
    );
    let resp = reqwest::Client::new()
        .put(relay.ingest_url("cam", None))
        .body(source().bytes.clone())
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 409);
    let second = ffmpeg(
        publish_args(false, &[&relay.rtmp_url("cam", None)]),
        Duration::from_secs(15),
    )
    .await;
    assert!(!second, "a second RTMP publisher was accepted");

    assert!(
        first.await.expect("ffmpeg task"),
        "the first publisher was disturbed"
    );
    let rx = viewer.await.expect("viewer task");
    assert_same_media(&rx, false, 60);
    assert!(
        got_source_end(&rx),
        "the first publisher's stream did not arrive in full"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_takeover_a_second_publisher_replaces_the_first() {
    let relay = Relay::start(&["--takeover"]).await;
    let viewer = open_viewer(relay.http, "cam").await;
    let first = tokio::spawn(ffmpeg(
        publish_args(true, &[&relay.rtmp_url("cam", None)]),
        Duration::from_secs(20),
    ));
    let early = read_viewer(viewer, Duration::from_secs(5), |t| t.len() >= 10).await;
    assert!(early.len() >= 10, "first publisher did not go live");
    // The second publisher (HTTP push, paced) is accepted and the first one is cut off.
    let second = tokio::spawn(ffmpeg(
        publish_args(true, &["-method", "PUT", &relay.ingest_url("cam", None)]),
        Duration::from_secs(20),
    ));
    let first_done = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the first publisher was not cut off within 10 s");
    assert!(
        !first_done.expect("ffmpeg task"),
        "the first publisher ran to its end despite the takeover"
    );
    assert!(
        second.await.expect("ffmpeg task"),
        "the second publisher was refused or cut off"
    );
    assert!(
        relay.log_text().contains("taken over"),
        "no log line for the takeover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_plays_in_real_time() {
    let arg = format!("demo={}", src_path());
    let relay = Relay::start(&["--file", &arg]).await;
    let started = Instant::now();
    let rx = read_viewer(
        open_viewer(relay.http, "demo").await,
        Duration::from_secs(10),
        got_source_end,
    )
    .await;
    let took = started.elapsed();
    assert_same_media(&rx, false, 100);
    assert!(got_source_end(&rx), "the file did not play to its end");
    assert!(
        took >= Duration::from_millis(3000),
        "not paced in real time: 4 s of media in {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looped_file_keeps_timestamps_increasing() {
    let arg = format!("demo={}", src_path());
    let relay = Relay::start(&["--file", &arg, "--loop"]).await;
    let want = frames(&source().tags, TagKind::Video);
    let rx = read_viewer(
        open_viewer(relay.http, "demo").await,
        Duration::from_secs(12),
        |t| frames(t, TagKind::Video).len() >= want.len() + 30,
    )
    .await;
    let got = frames(&rx, TagKind::Video);
    assert!(
        got.len() >= want.len() + 30,
        "the file did not loop ({} video frames)",
        got.len()
    );
    assert!(
        !rx.iter().any(is_sequence_end),
        "end of sequence sent between loops"
    );
    // Bodies cycle through the source's; timestamps only go forward, one frame apart at the seam.
    let start = want
        .iter()
        .position(|w| w.body == got[0].body)
        .expect("first frame not in source");
    for (j, g) in got.iter().enumerate() {
        assert!(
            g.body == want[(start + j) % want.len()].body,
            "frame {j} differs from the source"
        );
    }
    for w in got.windows(2) {
        assert!(
            w[1].ts > w[0].ts,
            "timestamp went from {} to {}",
            w[0].ts,
            w[1].ts
        );
        assert!(
            w[1].ts - w[0].ts <= 100,
            "gap from {} to {}",
            w[0].ts,
            w[1].ts
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_from_another_relay_over_http_flv() {
    let origin = Relay::start(&[]).await;
    let pull = format!("cam=http://{}/live/cam.flv", origin.http);
    let edge = Relay::start(&["--pull", &pull, "--publish-key", "edge-key"]).await;
    let viewer = viewer_task(open_viewer(edge.http, "cam").await, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_millis(1500)).await; // the edge's first attempt connects
    let ok = ffmpeg(
        publish_args(true, &[&origin.rtmp_url("cam", None)]),
        Duration::from_secs(20),
    )
    .await;
    assert!(ok, "publishing to the origin failed");
    let rx = viewer.await.expect("viewer task");
    assert_same_media(&rx, true, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_from_rtmp_server() {
    let port = free_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/src");
    let pull = format!("cam={url}");
    let relay = Relay::start(&["--pull", &pull]).await;
    let viewer = viewer_task(
        open_viewer(relay.http, "cam").await,
        Duration::from_secs(25),
    );
    // ffmpeg as an RTMP server: it sends the file to the client that plays it (the relay,
    // which keeps retrying until this listener is up).
    let server = ffmpeg(
        publish_args(true, &["-listen", "1", &url]),
        Duration::from_secs(25),
    )
    .await;
    let rx = viewer.await.expect("viewer task");
    assert!(server, "ffmpeg RTMP server failed");
    assert_same_media(&rx, false, 90);
}

/// Tiny deterministic PRNG for garbage bytes.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Completes an RTMP client handshake on `stream`.
async fn rtmp_handshake(stream: &mut TcpStream) {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    let mut hs = Handshake::new(PeerType::Client);
    stream
        .write_all(&hs.generate_outbound_p0_and_p1().unwrap())
        .await
        .unwrap();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("handshake timed out")
            .unwrap();
        assert!(n > 0, "relay closed during the handshake");
        match hs.process_bytes(&buf[..n]).expect("handshake") {
            HandshakeProcessResult::InProgress { response_bytes } => {
                stream.write_all(&response_bytes).await.unwrap()
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                stream.write_all(&response_bytes).await.unwrap();
                return;
            }
        }
    }
}

/// Reads until the relay closes the connection; false if it is still open after 5 s.
async fn closed_by_relay(stream: &mut TcpStream) -> bool {
    let mut buf = vec![0u8; 8192];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    timeout(Duration::from_secs(5), read_all).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_rtmp_does_not_disturb_the_relay() {
    use rml_rtmp::chunk_io::ChunkSerializer;
    use rml_rtmp::messages::RtmpMessage;
    use rml_rtmp::rml_amf0::Amf0Value;
    use rml_rtmp::time::RtmpTimestamp;

    let mut relay = Relay::start(&[]).await;
    let addr = relay.rtmp;
    let viewer = viewer_task(
        open_viewer(relay.http, "cam").await,
        Duration::from_secs(20),
    );
    // A publisher stays live while the garbage arrives.
    let publisher = tokio::spawn(ffmpeg(
        publish_args(true, &[&relay.rtmp_url("cam", None)]),
        Duration::from_secs(20),
    ));

    // Random bytes, then close.
    for seed in 1..5u64 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(&garbage(5000, seed)).await;
        drop(s);
    }
    // A valid C0 and half of C1, then close.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut half = vec![3u8];
    half.extend(garbage(700, 9));
    s.write_all(&half).await.unwrap();
    drop(s);
    // A complete handshake, then garbage chunks: the relay closes the connection.
    let mut s = TcpStream::connect(addr).await.unwrap();
    rtmp_handshake(&mut s).await;
    let _ = s.write_all(&garbage(20_000, 77)).await;
    assert!(
        closed_by_relay(&mut s).await,
        "connection with garbage chunks left open"
    );
    // `@setDataFrame` without arguments (rml_rtmp panics on it): contained, connection closed.
    let mut s = TcpStream::connect(addr).await.unwrap();
    rtmp_handshake(&mut s).await;
    let mut ser = ChunkSerializer::new();
    let msg = RtmpMessage::Amf0Data {
        values: vec![Amf0Value::Utf8String("@setDataFrame".into())],
    };
    let payload = msg.into_message_payload(RtmpTimestamp::new(0), 1).unwrap();
    let packet = ser.serialize(&payload, false, false).unwrap();
    s.write_all(&packet.bytes).await.unwrap();
    assert!(
        closed_by_relay(&mut s).await,
        "connection with a poisonous message left open"
    );

    relay.assert_alive();
    assert!(
        publisher.await.expect("ffmpeg task"),
        "the live publisher was disturbed"
    );
    assert_same_media(&viewer.await.expect("viewer task"), true, 100);
    // And new publishers are still welcome.
    assert!(
        ffmpeg(
            publish_args(false, &[&relay.rtmp_url("other", None)]),
            Duration::from_secs(15)
        )
        .await
    );
    relay.assert_alive();
}

/// Polls `/api/channels` until every channel in `names` is live with its codecs known.
async fn wait_codecs(http: SocketAddr, names: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = reqwest::get(format!("http://{http}/api/channels"))
            .await
            .expect("GET /api/channels")
            .text()
            .await
            .expect("channels body");
        let list: serde_json::Value = serde_json::from_str(&text).expect("channels JSON");
        let ready = |name: &&str| {
            list["channels"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["name"] == *name && c["live"] == true && !c["video_codec"].is_null())
            })
        };
        if names.iter().all(ready) {
            return;
        }
        assert!(Instant::now() < deadline, "channels not live: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_flv_header_announces_the_channels_tracks() {
    // A video-only file beside the audio + video one: a consumer such as ffmpeg waits for a
    // track the header announces, so the flags must match.
    let video_only = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("video-only-{}.flv", std::process::id()));
    let status = std::process::Command::new(FFMPEG)
        .args(["-y", "-hide_banner", "-loglevel", "error"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=30",
            "-t",
            "3",
        ])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-an"])
        .args(["-f", "flv"])
        .arg(&video_only)
        .stdin(std::process::Stdio::null())
        .status()
        .expect("running ffmpeg");
    assert!(
        status.success(),
        "ffmpeg could not make the video-only file"
    );
    let av = format!("av={}", src_path());
    let v = format!("v={}", video_only.display());
    let relay = Relay::start(&["--file", &av, "--file", &v, "--loop"]).await;
    wait_codecs(relay.http, &["av", "v"]).await;
    for (name, flags) in [("av", 0x05u8), ("v", 0x01)] {
        let mut body = open_viewer(relay.http, name).await.bytes_stream();
        let mut head = Vec::new();
        while head.len() < 13 {
            let chunk = timeout(Duration::from_secs(5), body.next())
                .await
                .expect("FLV header timed out")
                .expect("stream ended")
                .expect("body chunk");
            head.extend_from_slice(&chunk);
        }
        assert_eq!(&head[..3], b"FLV");
        assert_eq!(head[4], flags, "channel {name}: header flags");
    }
    let _ = std::fs::remove_file(&video_only);
}
