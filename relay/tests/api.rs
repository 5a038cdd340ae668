//! End-to-end tests of the JSON API, `/metrics` and the page at `/`, against the real
//! `lockstep-relay` binary playing a looped FLV file made by ffmpeg (`--file live=PATH`).
//!
//! Every relay listens on 127.0.0.1 only, is killed when its test ends (even on failure),
//! and every wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const READY: Duration = Duration::from_secs(20);
const LIVE: Duration = Duration::from_secs(20);
const STEP: Duration = Duration::from_secs(10);

/// A running relay, killed on drop.
struct Relay {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Relay {
    /// Starts the relay with `args` on a free port, retrying if the port was taken meanwhile.
    fn start(args: &[&str]) -> Relay {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(args) {
                Ok(r) => return r,
                Err(e) => last = e,
            }
        }
        panic!("relay did not start: {last}");
    }

    fn try_start(args: &[&str]) -> Result<Relay, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let www = concat!(env!("CARGO_MANIFEST_DIR"), "/../www");
        let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep-relay"))
            .args([
                "--http",
                &format!("127.0.0.1:{port}"),
                "--rtmp",
                "off",
                "--www",
                www,
            ])
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("LOCKSTEP_ADMIN_TOKEN")
            .env_remove("LOCKSTEP_PUBLISH_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        // Reads stdout to the end (the relay logs there too), reporting the ready line.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("lockstep-relay: http://") {
                    let _ = tx.send(a.trim().to_string());
                }
            }
        });
        let mut relay = Relay {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        match rx.recv_timeout(READY) {
            Ok(a) => {
                relay.addr = a.parse().map_err(|e| format!("bad address {a:?}: {e}"))?;
                Ok(relay)
            }
            Err(e) => {
                let status = relay.child.try_wait().ok().flatten();
                Err(format!("no ready line ({e}); exit status {status:?}"))
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = client().get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        timeout(STEP, req.send())
            .await
            .unwrap_or_else(|_| panic!("GET {path} timed out"))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn json(&self, path: &str, token: Option<&str>) -> Value {
        let resp = self.get(path, token).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        let text = resp.text().await.expect("body");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    /// Polls `path` until `ok` holds for its JSON, or panics with the last answer.
    async fn wait_json(
        &self,
        path: &str,
        token: Option<&str>,
        what: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + LIVE;
        loop {
            let v = self.json(path, token).await;
            if ok(&v) {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; last {path}: {v:#}");
            }
            sleep(Duration::from_millis(100)).await;
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(STEP)
        .no_proxy()
        .build()
        .expect("http client")
}

/// A 3 s 320x240 30 fps H.264 + AAC FLV with a keyframe every second, made once.
fn test_flv() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("api-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let path = dir.join("live.flv");
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-y", "-v", "error"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
            .args(["-f", "lavfi", "-i", "sine", "-t", "3"])
            .args(["-c:v", "libx264", "-g", "30", "-c:a", "aac", "-f", "flv"])
            .arg(&path)
            .output()
            .expect("ffmpeg must be installed");
        assert!(
            out.status.success(),
            "ffmpeg: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    })
    .clone()
}

fn start_with_file(extra: &[&str]) -> Relay {
    let flv = test_flv();
    let file = format!("live={}", flv.display());
    let mut args = vec!["--file", file.as_str(), "--loop"];
    args.extend_from_slice(extra);
    Relay::start(&args)
}

fn channel<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["channels"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

fn is_live(v: &Value) -> bool {
    channel(v, "live").is_some_and(|c| c["live"] == true && c["video_codec"].is_string())
}

fn ws_viewers(stats: &Value) -> u64 {
    channel(stats, "live")
        .and_then(|c| c["summary"]["websocket"].as_u64())
        .unwrap_or(u64::MAX)
}

/// The file channel goes live with its codecs and size; a WebSocket viewer is counted by
/// `/api/stats` and dropped when it disconnects.
#[tokio::test]
async fn live_channel_and_viewer_stats() {
    let relay = start_with_file(&[]);
    let list = relay
        .wait_json("/api/channels", None, "channel `live` to go live", is_live)
        .await;
    let c = channel(&list, "live").expect("channel");
    assert!(
        c["video_codec"]
            .as_str()
            .is_some_and(|s| s.starts_with("avc1.")),
        "{c}"
    );
    assert!(
        c["audio_codec"]
            .as_str()
            .is_some_and(|s| s.starts_with("mp4a.")),
        "{c}"
    );
    assert_eq!(
        (c["width"].as_u64(), c["height"].as_u64()),
        (Some(320), Some(240)),
        "{c}"
    );
    assert_eq!(c["urls"]["ws"], "/ws/live");
    assert_eq!(c["urls"]["flv"], "/live/live.flv");
    assert_eq!(c["urls"]["page"], "/?channel=live");
    assert!(
        c["publisher"].is_null(),
        "public list shows no address: {c}"
    );
    // Bitrate and fps are sampled once a second.
    let list = relay
        .wait_json("/api/channels", None, "bitrate and fps", |v| {
            channel(v, "live").is_some_and(|c| {
                c["bitrate_kbps"].as_f64() > Some(0.0) && c["fps"].as_f64() > Some(0.0)
            })
        })
        .await;
    let c = channel(&list, "live").expect("channel");
    assert!(c["uptime_s"].as_f64() > Some(0.0), "{c}");

    let stats = relay.json("/api/stats", None).await;
    assert_eq!(ws_viewers(&stats), 0, "{stats:#}");

    let mut req = format!("ws://{}/ws/live", relay.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("lockstep.v1"),
    );
    req.headers_mut()
        .insert("User-Agent", HeaderValue::from_static("api-test/1"));
    let (mut ws, resp) = timeout(STEP, tokio_tungstenite::connect_async(req))
        .await
        .expect("ws connect timed out")
        .expect("ws connect");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("lockstep.v1")
    );
    // Hello and the join snapshot arrive.
    let mut got = 0usize;
    while got < 5 {
        match timeout(STEP, ws.next())
            .await
            .expect("no frames from relay")
        {
            Some(Ok(Message::Binary(b))) => got += usize::from(!b.is_empty()),
            Some(Ok(_)) => {}
            other => panic!("websocket ended: {other:?}"),
        }
    }

    let stats = relay
        .wait_json("/api/stats", None, "the viewer to be counted", |v| {
            ws_viewers(v) == 1
        })
        .await;
    let c = channel(&stats, "live").expect("channel in stats");
    assert_eq!(c["viewers"], 1);
    assert!(stats["totals"]["viewers"].as_u64() >= Some(1), "{stats:#}");
    assert_eq!(stats["totals"]["publishers"], 1, "{stats:#}");
    assert!(stats["totals"]["bytes_in"].as_u64() > Some(0), "{stats:#}");
    assert!(stats["uptime_s"].as_f64() > Some(0.0));
    let page = &c["viewer_list"];
    assert_eq!(
        (
            page["page"].as_u64(),
            page["per_page"].as_u64(),
            page["total"].as_u64()
        ),
        (Some(1), Some(100), Some(1))
    );
    let v = &page["viewers"][0];
    assert_eq!(v["kind"], "web-socket");
    assert_eq!(v["user_agent"], "api-test/1");
    assert!(
        v["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{v}"
    );
    assert!(v["bytes_sent"].as_u64() > Some(0), "{v}");

    // Restricting to the channel and paging past the end.
    let one = relay
        .json("/api/stats?channel=live&page=2&per_page=1", None)
        .await;
    assert_eq!(one["channels"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        one["channels"][0]["viewer_list"]["viewers"],
        serde_json::json!([])
    );
    assert_eq!(one["channels"][0]["summary"]["viewers"], 1);
    let missing = relay.get("/api/stats?channel=nope", None).await;
    assert_eq!(missing.status(), 404);
    let bad = relay.get("/api/stats?page=zero", None).await;
    assert_eq!(bad.status(), 400);
    let body: Value = serde_json::from_str(&bad.text().await.expect("body")).expect("json error");
    assert_eq!(body["error"], "bad_query");

    // Metrics show the channel.
    let metrics = relay
        .get("/metrics", None)
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains("lockstep_channel_live{channel=\"live\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lockstep_channel_viewers{channel=\"live\"} 1\n"),
        "{metrics}"
    );

    timeout(STEP, ws.close(None))
        .await
        .expect("close timed out")
        .ok();
    drop(ws);
    relay
        .wait_json("/api/stats", None, "the viewer to be dropped", |v| {
            ws_viewers(v) == 0
        })
        .await;
}

/// With `--admin-token`, stats and metrics need the token (header or query); the channel
/// list stays public.
#[tokio::test]
async fn admin_token_is_enforced() {
    let relay = Relay::start(&["--admin-token", "s3cret"]);
    for path in [
        "/api/stats",
        "/metrics",
        "/api/stats?token=wrong",
        "/metrics?token=s3cre",
    ] {
        let resp = relay.get(path, None).await;
        assert_eq!(resp.status(), 401, "{path}");
        assert!(resp.headers().contains_key("www-authenticate"), "{path}");
        let text = resp.text().await.expect("body");
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: JSON error body: {e}: {text}"));
        assert_eq!(body["error"], "unauthorized", "{path}");
    }
    assert_eq!(relay.get("/api/stats", Some("wrong")).await.status(), 401);
    assert_eq!(relay.get("/api/stats", Some("s3cret")).await.status(), 200);
    assert_eq!(relay.get("/metrics", Some("s3cret")).await.status(), 200);
    assert_eq!(
        relay.get("/api/stats?token=s3cret", None).await.status(),
        200
    );
    assert_eq!(relay.get("/metrics?token=s3cret", None).await.status(), 200);
    // Wrong token in the header, right one in the query: either suffices.
    assert_eq!(
        relay
            .get("/metrics?token=s3cret", Some("nope"))
            .await
            .status(),
        200
    );
    let raw = client()
        .get(relay.url("/api/stats"))
        .header("Authorization", "bearer s3cret")
        .send()
        .await
        .expect("request");
    assert_eq!(raw.status(), 200);
    let list = relay.get("/api/channels", None).await;
    assert_eq!(list.status(), 200);
    assert_eq!(
        list.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
}

/// `/metrics` is Prometheus text: HELP/TYPE comments and `name{labels} value` samples.
#[tokio::test]
async fn metrics_are_prometheus_text() {
    let relay = start_with_file(&[]);
    // A viewer of another channel creates it (idle), so a labelled sample exists either way.
    let _ = relay.get("/live/idle.flv", None).await;
    let resp = relay.get("/metrics", None).await;
    assert_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.expect("body");
    let mut samples = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with('#') {
            assert!(line != "# EOF", "0.0.4 text has no EOF marker");
            continue;
        }
        let (name, labels, value) =
            parse_sample(line).unwrap_or_else(|| panic!("not a sample: {line:?}"));
        assert!(name.starts_with("lockstep_"), "{line}");
        assert!(
            labels.is_empty() || labels.starts_with('{') && labels.ends_with('}'),
            "{line}"
        );
        assert!(
            value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
            "{line}"
        );
        samples += 1;
    }
    assert!(samples > 5, "{text}");
    for family in [
        "lockstep_channel_viewers",
        "lockstep_channel_bitrate_kbps",
        "lockstep_channel_live",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} gauge\n")),
            "{family}: {text}"
        );
    }
    assert!(
        text.contains("lockstep_channel_live{channel=\"idle\"} 0\n"),
        "{text}"
    );
    assert!(text.contains("lockstep_viewers"), "{text}");
}

/// `name`, `{labels}` (or empty) and the value of a sample line; `None` if malformed.
fn parse_sample(line: &str) -> Option<(&str, &str, &str)> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        && !name.as_bytes()[0].is_ascii_digit();
    if !valid_name {
        return None;
    }
    let rest = &line[name_end..];
    let (labels, rest) = if rest.starts_with('{') {
        let end = closing_brace(rest)?;
        (&rest[..=end], &rest[end + 1..])
    } else {
        ("", rest)
    };
    let mut parts = rest.trim_start().split(' ');
    let value = parts.next().filter(|v| !v.is_empty())?;
    // An optional timestamp may follow.
    match parts.next() {
        None => {}
        Some(ts) if ts.parse::<i64>().is_ok() && parts.next().is_none() => {}
        Some(_) => return None,
    }
    Some((name, labels, value))
}

/// The index of the `}` closing a label set, skipping quoted values with escapes.
fn closing_brace(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => quoted = false,
            (false, _, '"') => quoted = true,
            (false, _, '}') => return Some(i),
            _ => {}
        }
    }
    None
}

/// `GET /` serves the channel page, which loads the reusable channel list script.
#[tokio::test]
async fn index_page_is_served() {
    let relay = Relay::start(&[]);
    let resp = relay.get("/", None).await;
    assert_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/html"), "{ct}");
    let html = resp.text().await.expect("body");
    assert!(html.contains("<title>"), "{html}");
    assert!(html.contains("channels.js"), "{html}");
    let js = relay.get("/channels.js", None).await;
    assert_eq!(js.status(), 200);
    // Public files may be loaded by pages on other origins (the player module above all).
    assert_eq!(
        js.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
    assert!(js.text().await.expect("body").contains("/api/channels"));
    let list = relay.json("/api/channels", None).await;
    assert_eq!(list["channels"], serde_json::json!([]));
}

/// A Server-Sent Events reader over a streamed response body.
struct EventReader {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: Vec<u8>,
}

impl EventReader {
    /// Opens `path` as an event stream (no overall timeout: each read is bounded instead).
    async fn open(relay: &Relay, path: &str, token: Option<&str>) -> EventReader {
        let resp = sse_get(relay, path, token).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(ct.starts_with("text/event-stream"), "{path}: {ct}");
        EventReader {
            body: Box::pin(resp.bytes_stream()),
            buf: Vec::new(),
        }
    }

    /// The JSON of the next `data:` event (comments and keep-alives skipped).
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8(block).expect("UTF-8 event");
                let data: Vec<&str> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if data.is_empty() {
                    continue;
                }
                assert!(!text.contains("event:"), "unexpected named event: {text}");
                let json = data.join("\n");
                return serde_json::from_str(&json)
                    .unwrap_or_else(|e| panic!("event is not JSON: {e}: {json}"));
            }
            let chunk = timeout(STEP, self.body.next())
                .await
                .expect("no event within 10 s")
                .expect("the stream ended")
                .expect("reading the stream");
            self.buf.extend_from_slice(&chunk);
        }
    }
}

async fn sse_get(relay: &Relay, path: &str, token: Option<&str>) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client");
    let mut req = http
        .get(relay.url(path))
        .header("Accept", "text/event-stream");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    timeout(STEP, req.send())
        .await
        .unwrap_or_else(|_| panic!("GET {path} timed out"))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `/api/stats/stream` sends the `/api/stats` document once a second, with the chart
/// history of each channel: all of it first, then only the new points.
#[tokio::test]
async fn stats_stream_sends_stats_and_history() {
    let relay = start_with_file(&[]);
    relay
        .wait_json("/api/channels", None, "channel `live` to go live", is_live)
        .await;
    let mut events = EventReader::open(&relay, "/api/stats/stream", None).await;
    let started = Instant::now();
    let first = events.next().await;
    let second = events.next().await;
    let third = events.next().await;
    // One a second, the first at once.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(8),
        "{took:?}"
    );
    for (i, ev) in [&first, &second, &third].into_iter().enumerate() {
        assert!(ev["version"].is_string(), "{ev:#}");
        assert!(ev["totals"]["channels"].as_u64() >= Some(1), "{ev:#}");
        assert_eq!(ev["history_full"], i == 0, "event {i}");
        assert!(ev["subscribers"].as_u64() >= Some(1), "{ev:#}");
        let c = channel(ev, "live").expect("channel `live` in the event");
        assert_eq!(c["live"], true);
        assert!(c["summary"]["viewers"].is_u64(), "{c}");
        assert!(c["summary"]["modes"]["mse"].is_u64(), "{c}");
        assert!(c["summary"]["dropped_frames"].is_u64(), "{c}");
        assert_eq!(
            c["viewer_list"]["per_page"], 50,
            "the stream's default page size"
        );
        assert!(c["delay_ms"].is_u64(), "{c}");
        assert!(ev["history"]["live"].is_array(), "{ev:#}");
    }
    // The first subscriber starts the recorder, which samples at once: the first event
    // carries a point, with the chart fields.
    let p = &first["history"]["live"][0];
    for key in [
        "t",
        "viewers",
        "latency_p50",
        "latency_p95",
        "latency_max",
        "bitrate_kbps",
        "fps",
        "delay_ms",
        "stalls",
    ] {
        assert!(p.get(key).is_some(), "history point without {key}: {p}");
    }
    // Later events only carry new points (one every 2 s), never an old one again.
    let mut last_t = first["history"]["live"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(|p| p["t"].as_f64())
        .expect("t");
    let mut new_points = 0;
    // Popped from the end: the second event first.
    let mut later = vec![third, second];
    while new_points < 2 {
        let ev = match later.pop() {
            Some(ev) => ev,
            None if started.elapsed() < Duration::from_secs(10) => events.next().await,
            None => panic!("only {new_points} new history points in 10 s"),
        };
        for p in ev["history"]["live"].as_array().expect("points") {
            let t = p["t"].as_f64().expect("t");
            assert!(t > last_t, "point {t} not after {last_t}");
            last_t = t;
            new_points += 1;
        }
    }
    // The query works as for /api/stats.
    let mut one = EventReader::open(
        &relay,
        "/api/stats/stream?channel=live&page=2&per_page=1",
        None,
    )
    .await;
    let ev = one.next().await;
    assert_eq!(ev["channels"].as_array().map(Vec::len), Some(1), "{ev:#}");
    assert_eq!(ev["channels"][0]["viewer_list"]["page"], 2);
    assert_eq!(ev["channels"][0]["viewer_list"]["per_page"], 1);
    assert_eq!(
        sse_get(&relay, "/api/stats/stream?channel=nope", None)
            .await
            .status(),
        404
    );
    assert_eq!(
        sse_get(&relay, "/api/stats/stream?page=0", None)
            .await
            .status(),
        400
    );
    // The dashboard page is served at /stats.
    let page = relay.get("/stats", None).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("body");
    assert!(html.contains("stats.js"), "{html}");
}

/// With `--admin-token`, the stream needs the token (header or query).
#[tokio::test]
async fn stats_stream_requires_the_admin_token() {
    let relay = Relay::start(&["--admin-token", "s3cret"]);
    for (path, token) in [
        ("/api/stats/stream", None),
        ("/api/stats/stream?token=wrong", None),
        ("/api/stats/stream", Some("nope")),
    ] {
        let resp = sse_get(&relay, path, token).await;
        assert_eq!(resp.status(), 401, "{path} {token:?}");
        let body: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("JSON");
        assert_eq!(body["error"], "unauthorized");
    }
    let ev = EventReader::open(&relay, "/api/stats/stream?token=s3cret", None)
        .await
        .next()
        .await;
    assert!(ev["totals"].is_object(), "{ev:#}");
    let ev = EventReader::open(&relay, "/api/stats/stream", Some("s3cret"))
        .await
        .next()
        .await;
    assert!(ev["totals"].is_object(), "{ev:#}");
    // The page itself is public: it asks for the token.
    assert_eq!(relay.get("/stats", None).await.status(), 200);
}

/// A client that goes away ends its stream on the server: a new one then is the only
/// subscriber, and works.
#[tokio::test]
async fn stats_stream_ends_when_the_client_leaves() {
    let relay = Relay::start(&[]);
    let mut a = EventReader::open(&relay, "/api/stats/stream", None).await;
    assert_eq!(a.next().await["subscribers"], 1);
    let mut b = EventReader::open(&relay, "/api/stats/stream", None).await;
    assert_eq!(b.next().await["subscribers"], 2);
    drop(a);
    // The server notices at its next write (within a second or two).
    let deadline = Instant::now() + STEP;
    loop {
        let ev = b.next().await;
        if ev["subscribers"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dropped stream lives on: {ev:#}"
        );
    }
    drop(b);
    // Reconnecting after everyone left starts over cleanly.
    let mut c = EventReader::open(&relay, "/api/stats/stream", None).await;
    let first = c.next().await;
    assert_eq!(first["history_full"], true);
    let deadline = Instant::now() + STEP;
    loop {
        let ev = c.next().await;
        assert_eq!(ev["history_full"], false);
        if ev["subscribers"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "old streams live on: {ev:#}");
    }
}
