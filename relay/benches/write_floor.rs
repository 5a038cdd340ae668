//! The kernel's floor under fan-out on this machine: what it costs just to write each message
//! of a ~2 Mbit/s stream to N loopback TCP sockets as it comes, with no relay at all.
//!
//! ```text
//! cargo bench -p lockstep-relay --bench write_floor -- [--viewers 100,1000] [--seconds 10]
//! ```
//!
//! One thread (the writer) paces a synthetic stream in real time: 30 video messages a second
//! (a keyframe ten times the size of the others once a second) and 47 audio messages of 370
//! bytes, 2.0 Mbit/s in all, about the fan-out bench's stream (73 messages a second). Each
//! message is written whole to each of N sockets in turn (blocking `write_all`, TCP_NODELAY),
//! which is what the relay does per viewer, minus everything else the relay does. The readers
//! are one tokio thread that reads and discards. Printed per N:
//!
//! - the writer thread's CPU (user + system, `getrusage(RUSAGE_THREAD)`) per delivered GB: on
//!   loopback the sender's system time includes the receiving side's TCP processing, as it
//!   does for the relay in the fan-out bench;
//! - how long writing one message to all N takes (p50 / p99 / max): the least delay a relay on
//!   one thread adds for the last viewer.
//!
//! Bounded in time; traffic on 127.0.0.1 only; every socket is closed at the end.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

/// Video messages a second, and how many times a keyframe outweighs the others.
const FPS: u32 = 30;
const KEYFRAME_WEIGHT: usize = 10;
/// Audio messages a second (AAC, 1024 samples at 48 kHz) and their size.
const AUDIO_PER_S: u32 = 47;
const AUDIO_BYTES: usize = 370;
/// The stream's bitrate, bits/s.
const BITRATE: usize = 2_000_000;

struct Args {
    viewers: Vec<usize>,
    seconds: u64,
}

fn args() -> Args {
    let mut a = Args {
        viewers: vec![100, 1000],
        seconds: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--viewers" => {
                a.viewers = it
                    .next()
                    .expect("--viewers N,N")
                    .split(',')
                    .map(|n| n.parse().expect("--viewers: numbers"))
                    .collect()
            }
            "--seconds" => a.seconds = it.next().expect("--seconds N").parse().expect("--seconds"),
            "--bench" => {}
            "-h" | "--help" => {
                println!("cargo bench -p lockstep-relay --bench write_floor -- [--viewers 100,1000] [--seconds 10]");
                std::process::exit(0);
            }
            other if other.starts_with("--") => panic!("unknown option {other}"),
            _ => {}
        }
    }
    assert!((1..=120).contains(&a.seconds), "--seconds 1..=120");
    assert!(a.viewers.iter().all(|&n| (1..=5000).contains(&n)));
    a
}

/// One second of the stream: (offset from the second's start, message size), in time order.
fn one_second() -> Vec<(Duration, usize)> {
    let video_bytes = BITRATE / 8 - AUDIO_PER_S as usize * AUDIO_BYTES;
    let unit = video_bytes / (FPS as usize - 1 + KEYFRAME_WEIGHT);
    let mut msgs: Vec<(Duration, usize)> = (0..FPS)
        .map(|i| {
            let size = if i == 0 { unit * KEYFRAME_WEIGHT } else { unit };
            (Duration::from_secs(1) * i / FPS, size)
        })
        .chain((0..AUDIO_PER_S).map(|i| (Duration::from_secs(1) * i / AUDIO_PER_S, AUDIO_BYTES)))
        .collect();
    msgs.sort();
    msgs
}

/// CPU time of the calling thread, seconds (user + system).
fn thread_cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Runs one N: returns (CPU-s per GB, write-to-all p50, p99, max in ms, GB delivered).
fn run(n: usize, seconds: u64) -> (f64, f64, f64, f64, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    // The readers: one tokio thread, N connections, reading and discarding.
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers = {
        let (received, stop) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut tasks = Vec::with_capacity(n);
                for _ in 0..n {
                    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                    s.set_nodelay(true).expect("nodelay");
                    let (received, stop) = (received.clone(), stop.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut s = s;
                        let mut buf = vec![0u8; 64 * 1024];
                        while !stop.load(Ordering::Relaxed) {
                            match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf))
                                .await
                            {
                                Ok(Ok(0)) | Ok(Err(_)) => break,
                                Ok(Ok(k)) => {
                                    received.fetch_add(k as u64, Ordering::Relaxed);
                                }
                                Err(_) => {}
                            }
                        }
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        })
    };
    let mut sockets: Vec<TcpStream> = (0..n)
        .map(|_| {
            let (s, _) = listener.accept().expect("accept");
            s.set_nodelay(true).expect("nodelay");
            s
        })
        .collect();
    let second = one_second();
    let payload = vec![0x5au8; second.iter().map(|&(_, s)| s).max().unwrap_or(0)];
    // One second of warm-up, then the window.
    let start = Instant::now();
    let window_from = start + Duration::from_secs(1);
    let end = window_from + Duration::from_secs(seconds);
    let (mut cpu0, mut bytes0) = (None, 0u64);
    let mut fanout_ms = Vec::new();
    'outer: for k in 0u32.. {
        for &(at, size) in &second {
            let due = start + Duration::from_secs(u64::from(k)) + at;
            if due >= end {
                break 'outer;
            }
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if cpu0.is_none() && due >= window_from {
                cpu0 = Some(thread_cpu_seconds());
                bytes0 = received.load(Ordering::Relaxed);
            }
            let t = Instant::now();
            for s in &mut sockets {
                s.write_all(&payload[..size]).expect("write");
            }
            if cpu0.is_some() {
                fanout_ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let cpu = thread_cpu_seconds() - cpu0.unwrap_or(0.0);
    // Let the readers drain what was written in the window, then stop them.
    std::thread::sleep(Duration::from_millis(200));
    let gb = (received.load(Ordering::Relaxed) - bytes0) as f64 / 1e9;
    stop.store(true, Ordering::Relaxed);
    sockets.clear();
    let _ = readers.join();
    fanout_ms.sort_by(f64::total_cmp);
    (
        cpu / gb,
        quantile(&fanout_ms, 0.5),
        quantile(&fanout_ms, 0.99),
        fanout_ms.last().copied().unwrap_or(f64::NAN),
        gb,
    )
}

fn main() {
    let a = args();
    println!(
        "write floor: one thread writes a {:.1} Mbit/s stream ({} messages/s) to N loopback sockets, {} s per N",
        BITRATE as f64 / 1e6,
        FPS + AUDIO_PER_S,
        a.seconds
    );
    println!("| N | writer CPU-s per GB | write to all N: p50 / p99 / max ms | GB delivered |");
    println!("|---:|---:|---|---:|");
    for &n in &a.viewers {
        let (cpu_gb, p50, p99, max, gb) = run(n, a.seconds);
        println!("| {n} | {cpu_gb:.2} | {p50:.2} / {p99:.2} / {max:.2} | {gb:.3} |");
    }
}
