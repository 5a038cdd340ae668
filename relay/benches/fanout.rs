//! Relay fan-out benchmark: one live channel (~2 Mbit/s H.264 + AAC, 30 fps, 1 s GOP) watched
//! by N WebSocket viewers, on Lockstep and on node-media-server (WS-FLV), side by side.
//!
//! ```text
//! cargo bench -p lockstep-relay --bench fanout -- [--viewers 100,500,1000,2000] [--seconds 20]
//!     [--warmup 5] [--ring-fill 15] [--servers lockstep,nms] [--ingest file|rtmp] [--pin]
//!     [--perf]   (perf record -g of the server during the window, target/fanout/perf-*.data)
//! ```
//!
//! For each N and each server: the server runs as its own process (the release
//! `lockstep-relay`, or `node bench/nms/launch.js`); the channel is fed in real time (the
//! relay's `--file NAME=PATH --loop` by default, or `ffmpeg -re` over RTMP; always ffmpeg over
//! RTMP for node-media-server); the viewers are tokio-tungstenite clients in this process.
//! Over the measurement window it reads:
//!
//! - the bytes every viewer received (WebSocket payload bytes);
//! - the server's CPU (utime + stime of `/proc/PID/stat`; this process's own CPU is not
//!   counted) per delivered GB (1e9 bytes);
//! - the server's memory per viewer: (VmRSS with N viewers − VmRSS with 0 viewers) / N, and
//!   the marginal figure (RSS_N − RSS_1) / (N − 1) with RSS_1 taken once one viewer has
//!   filled the broadcast ring;
//! - Lockstep only: the relay-added delay p50/p99 from the relay's own histogram
//!   (`lockstep_delivery_delay_seconds` on /metrics, window delta, interpolated within
//!   buckets), and a client-side estimate: receive time − (Timeline relay_us of the last
//!   keyframe + (ts − keyframe ts) ms), per media message;
//! - viewers that received a `Skipped` message, and viewers that got < 90 % of the expected
//!   bytes (source bitrate × window).
//!
//! Every loop is bounded in count and time; every process started is stopped at the end (also
//! on panic, by a guard). Traffic is on 127.0.0.1 only.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use lockstep_media::wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const CHANNEL: &str = "bench";
/// Viewer connections opened at once.
const CONNECT_PARALLEL: usize = 32;
/// One viewer's connect (TCP + WebSocket handshake) must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Opening all N viewers must finish within this.
const CONNECT_PHASE_LIMIT: Duration = Duration::from_secs(240);
/// A viewer that got less than this share of the expected bytes "fell short".
const SHORT_SHARE: f64 = 0.9;

// ---------------------------------------------------------------------------------------------
// Arguments

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerKind {
    Lockstep,
    Nms,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            ServerKind::Lockstep => "lockstep",
            ServerKind::Nms => "nms",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ingest {
    File,
    Rtmp,
}

#[derive(Debug, Clone)]
struct Args {
    viewers: Vec<usize>,
    seconds: u64,
    warmup: u64,
    ring_fill: u64,
    servers: Vec<ServerKind>,
    ingest: Ingest,
    pin: bool,
    /// Record `perf record -g` of the server during the window (target/fanout/perf-*.data).
    perf: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        viewers: vec![100, 500, 1000, 2000],
        seconds: 20,
        warmup: 5,
        ring_fill: 15,
        servers: vec![ServerKind::Lockstep, ServerKind::Nms],
        ingest: Ingest::File,
        pin: false,
        perf: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| panic!("{name} expects a value"))
        };
        match arg.as_str() {
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--viewers" => {
                a.viewers = value("--viewers")
                    .split(',')
                    .map(|s| s.trim().parse().expect("--viewers expects N,N,…"))
                    .collect()
            }
            "--seconds" => a.seconds = value("--seconds").parse().expect("--seconds"),
            "--warmup" => a.warmup = value("--warmup").parse().expect("--warmup"),
            "--ring-fill" => a.ring_fill = value("--ring-fill").parse().expect("--ring-fill"),
            "--servers" => {
                a.servers = value("--servers")
                    .split(',')
                    .map(|s| match s.trim() {
                        "lockstep" => ServerKind::Lockstep,
                        "nms" => ServerKind::Nms,
                        other => panic!("unknown server {other:?} (lockstep, nms)"),
                    })
                    .collect()
            }
            "--ingest" => {
                a.ingest = match value("--ingest").as_str() {
                    "file" => Ingest::File,
                    "rtmp" => Ingest::Rtmp,
                    other => panic!("--ingest file|rtmp, got {other:?}"),
                }
            }
            "--pin" => a.pin = true,
            "--perf" => a.perf = true,
            "-h" | "--help" => {
                println!(
                    "fanout [--viewers 100,500,1000,2000] [--seconds 20] [--warmup 5] \
                     [--ring-fill 15] [--servers lockstep,nms] [--ingest file|rtmp] [--pin] [--perf]"
                );
                std::process::exit(0);
            }
            other if other.starts_with("--") => panic!("unknown option {other}"),
            _ => {} // a libtest-style filter: ignored
        }
    }
    assert!(a.seconds > 0 && a.seconds <= 600, "--seconds 1..=600");
    assert!(a.warmup <= 120 && a.ring_fill <= 120);
    assert!(a.viewers.iter().all(|&n| (1..=20_000).contains(&n)));
    a
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A child process that is stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Proc {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "  {} did not stop on SIGTERM within 5 s: SIGKILL",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let (u, s) = cpu_split(pid);
    u + s
}

/// (utime, stime) of a process, seconds.
fn cpu_split(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: f64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let stime: f64 = f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (utime / tck, stime / tck)
}

/// VmRSS of a process, bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// (busy, total) jiffies of the whole machine, from /proc/stat.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or("");
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn pin_to_cpu(pid: u32, cpu: usize) {
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        // Every thread of the process: /proc/PID/task.
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()))
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        for tid in tasks {
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

/// Raises the soft open-files limit to the hard limit (children inherit it).
fn raise_fd_limit() -> u64 {
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
        lim.rlim_cur as u64
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

async fn wait_port(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

// ---------------------------------------------------------------------------------------------
// The test stream

fn workdir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fanout");
    std::fs::create_dir_all(&dir).expect("target/fanout");
    dir.canonicalize().expect("target/fanout")
}

/// The 30 s test FLV, made once with ffmpeg.
fn fixture(dir: &Path) -> PathBuf {
    let path = dir.join("stream-720p30-2M.flv");
    if path.exists() {
        return path;
    }
    eprintln!("making {} with ffmpeg (once)…", path.display());
    let tmp = dir.join("stream.tmp.flv");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine", "-t", "30"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-b:v", "2M", "-maxrate", "2M", "-bufsize", "1M", "-g", "30"])
        .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv"])
        .arg(&tmp)
        .status()
        .expect("running ffmpeg (needed to make the test stream)");
    assert!(status.success(), "ffmpeg failed making the test stream");
    std::fs::rename(&tmp, &path).expect("rename fixture");
    path
}

/// Audio + video tag body bytes per second of the FLV file, and its tag count per second.
fn source_rate(path: &Path) -> (f64, f64) {
    let data = std::fs::read(path).expect("reading the fixture");
    let mut pos = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize + 4;
    let (mut bytes, mut tags, mut first, mut last) = (0u64, 0u64, None, 0u32);
    while pos + 11 <= data.len() {
        let kind = data[pos] & 0x1f;
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let ts = u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        if kind == 8 || kind == 9 {
            bytes += size as u64;
            tags += 1;
            first.get_or_insert(ts);
            last = last.max(ts);
        }
        pos += 11 + size + 4;
    }
    let span = (last - first.unwrap_or(0)) as f64 / 1000.0 + 1.0 / 30.0;
    (bytes as f64 / span, tags as f64 / span)
}

// ---------------------------------------------------------------------------------------------
// Viewers

#[derive(Default)]
struct ViewerCounters {
    bytes: AtomicU64,
    media: AtomicU64,
    skipped: AtomicU64,
    connected: AtomicBool,
    ended: AtomicBool,
}

struct Shared {
    /// Delay samples are kept while this is set.
    window: AtomicBool,
    cancel: CancellationToken,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// One viewer: connects, counts, and (Lockstep) estimates the relay-added delay of every
/// media message received in the window. Returns the delay samples (µs, may be negative).
async fn viewer(
    url: String,
    lockstep: bool,
    counters: Arc<ViewerCounters>,
    shared: Arc<Shared>,
) -> Vec<i32> {
    let mut samples = Vec::new();
    let mut req = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(_) => return samples,
    };
    if lockstep {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(wire::SUBPROTOCOL),
        );
    }
    let connect = tokio_tungstenite::connect_async(req);
    let mut ws = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, connect) => match r {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => { eprintln!("  viewer connect failed: {e}"); return samples }
            Err(_) => { eprintln!("  viewer connect timed out"); return samples }
        },
        _ = shared.cancel.cancelled() => return samples,
    };
    counters.connected.store(true, Ordering::Relaxed);
    // The Timeline of the current GOP: (keyframe ts ms, its ingest time µs).
    let mut timeline: Option<(u32, u64)> = None;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = shared.cancel.cancelled() => break,
        };
        let data = match msg {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        counters
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if !lockstep || data.is_empty() {
            continue;
        }
        let t = data[0];
        if t == wire::types::TIMELINE && data.len() >= 17 {
            let ts = u32::from_be_bytes(data[5..9].try_into().unwrap());
            let ingest = u64::from_be_bytes(data[9..17].try_into().unwrap());
            timeline = Some((ts, ingest));
        } else if t == wire::types::SKIPPED {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
        } else if (0x10..0x30).contains(&t) && data.len() >= 5 {
            counters.media.fetch_add(1, Ordering::Relaxed);
            // Configurations (flag 0x2) carry old timestamps: not live frames.
            if t & 0x2 == 0 && shared.window.load(Ordering::Relaxed) {
                if let Some((kts, kingest)) = timeline {
                    let ts = u32::from_be_bytes(data[1..5].try_into().unwrap());
                    let due = kingest as i64 + (ts as i64 - kts as i64) * 1000;
                    let d = now_us() as i64 - due;
                    samples.push(d.clamp(i32::MIN as i64, i32::MAX as i64) as i32);
                }
            }
        }
    }
    counters.ended.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    samples
}

// ---------------------------------------------------------------------------------------------
// Relay metrics

async fn http_get(port: u16, path: &str) -> Option<String> {
    let fut = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .ok()
        .flatten()
}

#[derive(Debug, Default, Clone)]
struct Scrape {
    /// (le, cumulative count) of lockstep_delivery_delay_seconds.
    buckets: Vec<(f64, f64)>,
    sent_bytes: f64,
    skipped_frames: f64,
}

fn parse_metrics(text: &str) -> Scrape {
    let mut s = Scrape::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("lockstep_delivery_delay_seconds_bucket{le=\"") {
            if let Some((le, count)) = rest.split_once("\"}") {
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::NAN)
                };
                let count: f64 = count.trim().parse().unwrap_or(0.0);
                s.buckets.push((le, count));
            }
        } else if let Some(v) = line.strip_prefix("lockstep_sent_bytes_total ") {
            s.sent_bytes = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("lockstep_skipped_frames_total ") {
            s.skipped_frames = v.trim().parse().unwrap_or(0.0);
        }
    }
    s.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    s
}

/// Quantile of the histogram delta `end − start`, linear within a bucket. None if empty;
/// +inf if it falls in the +Inf bucket.
fn histogram_quantile(start: &Scrape, end: &Scrape, q: f64) -> Option<f64> {
    let before: HashMap<u64, f64> = start
        .buckets
        .iter()
        .map(|(le, c)| (le.to_bits(), *c))
        .collect();
    let delta: Vec<(f64, f64)> = end
        .buckets
        .iter()
        .map(|(le, c)| (*le, c - before.get(&le.to_bits()).copied().unwrap_or(0.0)))
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    let (mut prev_le, mut prev_c) = (0.0, 0.0);
    for (le, c) in delta {
        if c >= target {
            if le.is_infinite() {
                return Some(f64::INFINITY);
            }
            let share = if c > prev_c {
                (target - prev_c) / (c - prev_c)
            } else {
                0.0
            };
            return Some(prev_le + (le - prev_le) * share);
        }
        prev_le = le;
        prev_c = c;
    }
    None
}

fn histogram_count(start: &Scrape, end: &Scrape) -> f64 {
    end.buckets.last().map_or(0.0, |l| l.1) - start.buckets.last().map_or(0.0, |l| l.1)
}

// ---------------------------------------------------------------------------------------------
// One run

#[derive(Debug, Default, Clone)]
struct RunResult {
    server: &'static str,
    n: usize,
    connected: usize,
    ended_early: usize,
    window_s: f64,
    delivered: u64,
    cpu_s: f64,
    /// Of which in the kernel (stime).
    sys_s: f64,
    machine_busy: f64,
    client_cpu_s: f64,
    rss0: u64,
    rss1: u64,
    rss_n: u64,
    /// Relay histogram: p50, p99 (seconds), and observations.
    hist: Option<(f64, f64, f64)>,
    relay_sent: f64,
    /// Client-side: p50, p99 (µs), samples.
    client: Option<(f64, f64, usize)>,
    skipped_viewers: usize,
    skipped_msgs: u64,
    short: usize,
    expected_per_viewer: f64,
    min_bytes: u64,
    error: Option<String>,
}

impl RunResult {
    fn cpu_per_gb(&self) -> f64 {
        if self.delivered == 0 {
            return f64::NAN;
        }
        self.cpu_s / (self.delivered as f64 / 1e9)
    }
    /// Per connected viewer (a server that refused some is not credited for them).
    fn kib_per_viewer(&self) -> f64 {
        (self.rss_n as f64 - self.rss0 as f64) / self.connected.max(1) as f64 / 1024.0
    }
    fn kib_marginal(&self) -> f64 {
        if self.connected < 2 {
            return f64::NAN;
        }
        (self.rss_n as f64 - self.rss1 as f64) / (self.connected - 1) as f64 / 1024.0
    }
}

struct Env {
    dir: PathBuf,
    flv: PathBuf,
    relay_bin: PathBuf,
    nms_dir: PathBuf,
    rate: f64,
}

fn percentile_us(sorted: &[i32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64
}

async fn run_one(env: &Env, args: &Args, kind: ServerKind, n: usize) -> RunResult {
    let mut r = RunResult {
        server: kind.name(),
        n,
        ..Default::default()
    };
    let tag = format!("{}-{n}", kind.name());
    let http_port = free_port();
    let rtmp_port = free_port();
    let mut procs: Vec<Proc> = Vec::new();

    // The server.
    let (server_idx, url) = match kind {
        ServerKind::Lockstep => {
            let mut cmd = Command::new(&env.relay_bin);
            cmd.env("RUST_LOG", "warn")
                .arg("--http")
                .arg(format!("127.0.0.1:{http_port}"));
            match args.ingest {
                Ingest::File => {
                    cmd.args(["--rtmp", "off", "--loop", "--file"])
                        .arg(format!("{CHANNEL}={}", env.flv.display()));
                }
                Ingest::Rtmp => {
                    cmd.arg("--rtmp").arg(format!("127.0.0.1:{rtmp_port}"));
                }
            }
            procs.push(Proc::spawn(
                "lockstep-relay",
                &mut cmd,
                &env.dir.join(format!("{tag}.relay.log")),
            ));
            (0, format!("ws://127.0.0.1:{http_port}/ws/{CHANNEL}"))
        }
        ServerKind::Nms => {
            let mut cmd = Command::new("node");
            cmd.current_dir(&env.nms_dir)
                .arg("launch.js")
                .arg("--rtmp-port")
                .arg(rtmp_port.to_string())
                .arg("--http-port")
                .arg(http_port.to_string())
                .arg("--data")
                .arg(env.dir.join("nms-data"));
            procs.push(Proc::spawn(
                "node-media-server",
                &mut cmd,
                &env.dir.join(format!("{tag}.nms.log")),
            ));
            (0, format!("ws://127.0.0.1:{http_port}/live/{CHANNEL}.flv"))
        }
    };
    let pid = procs[server_idx].pid();
    if !wait_port(http_port, Duration::from_secs(15)).await {
        r.error = Some("server did not listen within 15 s".into());
        return r;
    }
    if args.pin {
        pin_to_cpu(pid, 0);
        pin_to_cpu(std::process::id(), 1);
    }

    // The publisher (ffmpeg over RTMP) where needed.
    if kind == ServerKind::Nms || args.ingest == Ingest::Rtmp {
        if kind == ServerKind::Nms && !wait_port(rtmp_port, Duration::from_secs(10)).await {
            r.error = Some("NMS RTMP port not listening".into());
            return r;
        }
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-stream_loop", "-1", "-i"])
            .arg(&env.flv)
            .args(["-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{rtmp_port}/live/{CHANNEL}"));
        procs.push(Proc::spawn(
            "ffmpeg",
            &mut cmd,
            &env.dir.join(format!("{tag}.ffmpeg.log")),
        ));
    }

    let shared = Arc::new(Shared {
        window: AtomicBool::new(false),
        cancel: CancellationToken::new(),
    });
    let lockstep = kind == ServerKind::Lockstep;
    let mut counters: Vec<Arc<ViewerCounters>> = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);

    // Baseline with 0 viewers: let the stream run a moment first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    r.rss0 = rss_bytes(pid);

    // Viewer 1 (the probe): wait for media, then let it fill the broadcast ring.
    let c = Arc::new(ViewerCounters::default());
    counters.push(c.clone());
    handles.push(tokio::spawn(viewer(
        url.clone(),
        lockstep,
        c.clone(),
        shared.clone(),
    )));
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.bytes.load(Ordering::Relaxed) < 100_000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if c.bytes.load(Ordering::Relaxed) < 100_000 {
        r.error = Some("the probe viewer got no stream within 20 s".into());
        shared.cancel.cancel();
        return r;
    }
    tokio::time::sleep(Duration::from_secs(args.ring_fill)).await;
    r.rss1 = rss_bytes(pid);

    // Viewers 2..=N.
    let t0 = Instant::now();
    let sem = Arc::new(Semaphore::new(CONNECT_PARALLEL));
    for _ in 1..n {
        let c = Arc::new(ViewerCounters::default());
        counters.push(c.clone());
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let (url, shared, c2) = (url.clone(), shared.clone(), c.clone());
        handles.push(tokio::spawn(async move {
            // The permit is held until connected (or failed).
            let wait = async {
                let deadline = Instant::now() + CONNECT_TIMEOUT + Duration::from_secs(1);
                while !c2.connected.load(Ordering::Relaxed)
                    && !c2.ended.load(Ordering::Relaxed)
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                drop(permit);
            };
            let (samples, ()) = tokio::join!(viewer(url, lockstep, c2.clone(), shared), wait);
            samples
        }));
        if t0.elapsed() > CONNECT_PHASE_LIMIT {
            eprintln!(
                "  connect phase over {CONNECT_PHASE_LIMIT:?}: stopping at {} viewers",
                counters.len()
            );
            break;
        }
    }
    // Wait for the last connects.
    let deadline = Instant::now() + CONNECT_TIMEOUT + Duration::from_secs(2);
    while Instant::now() < deadline
        && counters
            .iter()
            .any(|c| !c.connected.load(Ordering::Relaxed) && !c.ended.load(Ordering::Relaxed))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r.connected = counters
        .iter()
        .filter(|c| c.connected.load(Ordering::Relaxed))
        .count();
    eprintln!(
        "  {} viewers connected in {:.1} s; warm-up {} s",
        r.connected,
        t0.elapsed().as_secs_f64(),
        args.warmup
    );
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;

    // The window.
    let bytes_start: Vec<u64> = counters
        .iter()
        .map(|c| c.bytes.load(Ordering::Relaxed))
        .collect();
    let skipped_start: Vec<u64> = counters
        .iter()
        .map(|c| c.skipped.load(Ordering::Relaxed))
        .collect();
    let scrape_start = if lockstep {
        http_get(http_port, "/metrics")
            .await
            .map(|t| parse_metrics(&t))
    } else {
        None
    };
    let cpu_start = cpu_split(pid);
    let self_start = cpu_seconds(std::process::id());
    let machine_start = machine_jiffies();
    let w0 = Instant::now();
    shared.window.store(true, Ordering::Relaxed);
    let mut perf = args.perf.then(|| {
        let mut cmd = Command::new("perf");
        cmd.args(["record", "-F", "499", "-g", "-o"])
            .arg(env.dir.join(format!("perf-{tag}.data")))
            .arg("-p")
            .arg(pid.to_string())
            .args(["--", "sleep"])
            .arg(args.seconds.to_string());
        Proc::spawn("perf", &mut cmd, &env.dir.join(format!("{tag}.perf.log")))
    });
    while w0.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !procs[server_idx].alive() {
            r.error = Some("the server exited during the window".into());
            break;
        }
    }
    shared.window.store(false, Ordering::Relaxed);
    r.window_s = w0.elapsed().as_secs_f64();
    if let Some(p) = perf.as_mut() {
        // perf stops by itself after the window (sleep); give it time to write.
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.alive() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let cpu_end = cpu_split(pid);
    let self_end = cpu_seconds(std::process::id());
    let machine_end = machine_jiffies();
    r.rss_n = rss_bytes(pid);
    let scrape_end = if lockstep {
        http_get(http_port, "/metrics")
            .await
            .map(|t| parse_metrics(&t))
    } else {
        None
    };
    let per_viewer: Vec<u64> = counters
        .iter()
        .zip(&bytes_start)
        .map(|(c, s)| c.bytes.load(Ordering::Relaxed) - s)
        .collect();
    r.cpu_s = (cpu_end.0 + cpu_end.1) - (cpu_start.0 + cpu_start.1);
    r.sys_s = cpu_end.1 - cpu_start.1;
    r.client_cpu_s = self_end - self_start;
    r.machine_busy =
        (machine_end.0 - machine_start.0) as f64 / (machine_end.1 - machine_start.1).max(1) as f64;
    r.delivered = per_viewer.iter().sum();
    r.expected_per_viewer = env.rate * r.window_s;
    r.short = n - per_viewer
        .iter()
        .filter(|&&b| b as f64 >= SHORT_SHARE * r.expected_per_viewer)
        .count();
    r.min_bytes = per_viewer.iter().copied().min().unwrap_or(0);
    r.ended_early = counters
        .iter()
        .filter(|c| c.ended.load(Ordering::Relaxed))
        .count();
    let skipped: Vec<u64> = counters
        .iter()
        .zip(&skipped_start)
        .map(|(c, s)| c.skipped.load(Ordering::Relaxed) - s)
        .collect();
    r.skipped_viewers = skipped.iter().filter(|&&s| s > 0).count();
    r.skipped_msgs = skipped.iter().sum();
    if let (Some(a), Some(b)) = (&scrape_start, &scrape_end) {
        if let (Some(p50), Some(p99)) = (
            histogram_quantile(a, b, 0.5),
            histogram_quantile(a, b, 0.99),
        ) {
            r.hist = Some((p50, p99, histogram_count(a, b)));
        }
        r.relay_sent = b.sent_bytes - a.sent_bytes;
    }

    // Stop the viewers, gather their samples, stop the processes.
    shared.cancel.cancel();
    let mut samples: Vec<i32> = Vec::new();
    for h in handles {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(10), h).await {
            samples.extend(s);
        }
    }
    if lockstep && !samples.is_empty() {
        samples.sort_unstable();
        r.client = Some((
            percentile_us(&samples, 0.5),
            percentile_us(&samples, 0.99),
            samples.len(),
        ));
    }
    for mut p in procs.into_iter().rev() {
        p.stop();
    }
    r
}

// ---------------------------------------------------------------------------------------------
// Report

fn ms(s: f64) -> String {
    if s.is_infinite() {
        "> 1638".into()
    } else {
        format!("{:.2}", s * 1000.0)
    }
}

fn table(results: &[RunResult], ns: &[usize]) -> String {
    let find = |server: &str, n: usize| results.iter().find(|r| r.server == server && r.n == n);
    let f1 = |v: Option<f64>| {
        v.filter(|x| x.is_finite())
            .map_or("–".to_string(), |x| format!("{x:.2}"))
    };
    let f0 = |v: Option<f64>| {
        v.filter(|x| x.is_finite())
            .map_or("–".to_string(), |x| format!("{x:.0}"))
    };
    let mut out = String::new();
    out.push_str(
        "| N | Lockstep CPU-s/GB | NMS CPU-s/GB | Lockstep KiB/viewer (marginal) | NMS KiB/viewer (marginal) \
         | Lockstep delay p50 / p99 ms (relay histogram) | client-side p50 / p99 ms \
         | viewers skipped (Lockstep) | viewers < 90 % bytes (Lockstep / NMS) | delivered Gbit/s (Lockstep / NMS) \
         | relay CPU % / machine busy % (Lockstep) | NMS CPU % / machine busy % |\n",
    );
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for &n in ns {
        let l = find("lockstep", n);
        let m = find("nms", n);
        let hist = l
            .and_then(|r| r.hist)
            .map_or("–".into(), |(a, b, _)| format!("{} / {}", ms(a), ms(b)));
        let client = l.and_then(|r| r.client).map_or("–".into(), |(a, b, _)| {
            format!("{:.2} / {:.2}", a / 1000.0, b / 1000.0)
        });
        let short = |r: Option<&RunResult>| {
            r.map_or("–".into(), |r| {
                if r.error.is_some() {
                    "error".into()
                } else {
                    format!("{}/{}", r.short, r.n)
                }
            })
        };
        let gbps = |r: Option<&RunResult>| {
            r.map_or("–".into(), |r| {
                format!("{:.2}", r.delivered as f64 * 8.0 / r.window_s / 1e9)
            })
        };
        let cpu = |r: Option<&RunResult>| {
            r.map_or("–".into(), |r| {
                format!(
                    "{:.0} / {:.0}",
                    r.cpu_s / r.window_s * 100.0,
                    r.machine_busy * 100.0
                )
            })
        };
        let kib = |r: Option<&RunResult>| {
            r.map_or("–".into(), |r| {
                format!(
                    "{} ({})",
                    f0(Some(r.kib_per_viewer())),
                    f0(Some(r.kib_marginal()))
                )
            })
        };
        let _ =
            writeln!(
            out,
            "| {n} | {} | {} | {} | {} | {hist} | {client} | {} | {} / {} | {} / {} | {} | {} |",
            f1(l.map(|r| r.cpu_per_gb())),
            f1(m.map(|r| r.cpu_per_gb())),
            kib(l),
            kib(m),
            l.map_or("–".into(), |r| format!("{} ({} msgs)", r.skipped_viewers, r.skipped_msgs)),
            short(l),
            short(m),
            gbps(l),
            gbps(m),
            cpu(l),
            cpu(m),
        );
    }
    out
}

fn detail(r: &RunResult) -> String {
    format!(
        "{} N={}: connected {}, ended early {}, window {:.1} s, delivered {:.1} MB \
         (relay counter {:.1} MB), expected/viewer {:.1} MB, min/viewer {:.1} MB, server CPU {:.2} s ({:.2} s kernel), \
         client CPU {:.2} s, machine busy {:.0} %, RSS0 {:.1} MiB, RSS1 {:.1} MiB, RSS_N {:.1} MiB, \
         histogram obs {}, client samples {}{}",
        r.server,
        r.n,
        r.connected,
        r.ended_early,
        r.window_s,
        r.delivered as f64 / 1e6,
        r.relay_sent / 1e6,
        r.expected_per_viewer / 1e6,
        r.min_bytes as f64 / 1e6,
        r.cpu_s,
        r.sys_s,
        r.client_cpu_s,
        r.machine_busy * 100.0,
        r.rss0 as f64 / 1048576.0,
        r.rss1 as f64 / 1048576.0,
        r.rss_n as f64 / 1048576.0,
        r.hist.map_or(0.0, |h| h.2),
        r.client.map_or(0, |c| c.2),
        r.error.as_deref().map(|e| format!(", ERROR: {e}")).unwrap_or_default(),
    )
}

fn main() {
    let args = parse_args();
    let fd_limit = raise_fd_limit();
    let max_n = args.viewers.iter().copied().max().unwrap_or(0) as u64;
    if fd_limit < max_n + 256 {
        eprintln!(
            "open-files limit {fd_limit} is below {} (N + 256): raise the hard limit \
             (ulimit -Hn) to run N = {max_n}",
            max_n + 256
        );
    }
    let dir = workdir();
    let flv = fixture(&dir);
    let (rate, tags) = source_rate(&flv);
    let relay_bin = PathBuf::from(env!("CARGO_BIN_EXE_lockstep-relay"));
    let nms_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bench/nms")
        .canonicalize()
        .expect("bench/nms");
    if args.servers.contains(&ServerKind::Nms)
        && !nms_dir.join("node_modules/node-media-server").exists()
    {
        eprintln!("installing node-media-server (npm ci in bench/nms)…");
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&nms_dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "npm ci in bench/nms failed");
    }
    eprintln!(
        "fanout: source {:.2} Mbit/s, {:.0} tags/s; relay {}; fd limit {fd_limit}; {} cores; \
         window {} s after {} s warm-up; ingest {:?}{}",
        rate * 8.0 / 1e6,
        tags,
        relay_bin.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.seconds,
        args.warmup,
        args.ingest,
        if args.pin {
            "; server pinned to CPU 0, clients to CPU 1"
        } else {
            ""
        },
    );
    let env = Env {
        dir: dir.clone(),
        flv,
        relay_bin,
        nms_dir,
        rate,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut results = Vec::new();
    for &n in &args.viewers {
        for &kind in &args.servers {
            eprintln!("== {} N={n}", kind.name());
            let r = rt.block_on(run_one(&env, &args, kind, n));
            eprintln!("  {}", detail(&r));
            results.push(r);
            // Let sockets in TIME_WAIT and the last process exits settle.
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    rt.shutdown_timeout(Duration::from_secs(5));
    let t = table(&results, &args.viewers);
    println!("\n{t}");
    for r in &results {
        println!("- {}", detail(r));
    }
    let report = dir.join("results.md");
    let mut text = t.clone();
    for r in &results {
        let _ = writeln!(text, "- {}", detail(r));
    }
    let _ = std::fs::write(&report, text);
    eprintln!("\n(also written to {})", report.display());
}
