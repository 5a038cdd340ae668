//! Session tests: a stream of wire messages as the relay sends them, built from an FLV made by
//! ffmpeg, and what the session asks the sink to do.

use std::process::Command;

use bytes::Bytes;
use lockstep_media::flv::{Demuxer, Event, Tag, TagKind};
use lockstep_media::remux::TrackType;
use lockstep_media::wire::{self, MediaFlags, MediaKind, Message, TrackParams};

use super::{Action, Session};

fn ffmpeg_flv(name: &str, args: &[&str]) -> Vec<Tag> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "lockstep-session-{}-{name}-{n}.flv",
        std::process::id()
    ));
    let ok = Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-v", "error"])
        .args(args)
        .args(["-f", "flv"])
        .arg(&path)
        .status()
        .expect("ffmpeg must be installed (tests/setup.sh)");
    assert!(ok.success());
    let data = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let mut d = Demuxer::new();
    d.push(Bytes::from(data));
    let mut tags = Vec::new();
    while let Some(e) = d.poll() {
        if let Ok(Event::Tag(t)) = e {
            tags.push(t);
        }
    }
    tags
}

fn av_tags() -> Vec<Tag> {
    ffmpeg_flv(
        "av",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=48000",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-g",
            "30",
            "-c:a",
            "aac",
        ],
    )
}

fn info(epoch: u32, audio: bool) -> Bytes {
    let mut tracks = vec![wire::Track {
        codec_id: 7,
        fourcc: [0; 4],
        codec: "avc1.64000d".into(),
        params: TrackParams::Video {
            width: 320,
            height: 240,
        },
    }];
    if audio {
        tracks.push(wire::Track {
            codec_id: 10,
            fourcc: [0; 4],
            codec: "mp4a.40.2".into(),
            params: TrackParams::Audio {
                sample_rate: 48000,
                channels: 1,
            },
        });
    }
    Message::StreamInfo(wire::StreamInfo {
        epoch,
        flags: wire::STREAM_LIVE,
        delay_ms: 0,
        channel: "live".into(),
        tracks,
    })
    .to_bytes()
}

/// The messages the relay would send for `tags`: Timeline before each keyframe.
fn relay_messages(tags: &[Tag], epoch: u32, ingest_base_us: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    for t in tags {
        let kind = match t.kind {
            TagKind::Video => MediaKind::Video,
            TagKind::Audio => MediaKind::Audio,
            TagKind::Script => continue,
        };
        let config = t.body.len() > 1 && t.body[1] == 0;
        let key = t.kind == TagKind::Video && t.body[0] >> 4 == 1 && !config;
        if key {
            out.push(
                Message::Timeline(wire::Timeline {
                    epoch,
                    timestamp_ms: t.timestamp,
                    relay_us: ingest_base_us + t.timestamp as u64 * 1000,
                })
                .to_bytes(),
            );
        }
        let flags = if config {
            MediaFlags::CONFIG
        } else if key {
            MediaFlags::KEYFRAME
        } else {
            MediaFlags::NONE
        };
        out.push(wire::encode_media(kind, flags, t.timestamp, &t.body));
    }
    out
}

fn run(session: &mut Session, msgs: &[Bytes]) -> Vec<Action> {
    run_at(session, msgs, 0)
}

/// [`run`], every message received at local time `local_us`.
fn run_at(session: &mut Session, msgs: &[Bytes], local_us: u64) -> Vec<Action> {
    let mut actions = Vec::new();
    for m in msgs {
        session.on_message(m.clone(), local_us).unwrap();
        while let Some(a) = session.poll() {
            actions.push(a);
        }
    }
    actions
}

#[test]
fn tracks_first_then_init_segments_then_media() {
    let tags = av_tags();
    let mut msgs = vec![info(1, true)];
    msgs.extend(relay_messages(&tags, 1, 1_000_000_000));
    let mut s = Session::new();
    let actions = run(&mut s, &msgs);
    let Action::SetupTracks(tracks) = &actions[0] else {
        panic!("first action: {:?}", actions[0]);
    };
    assert_eq!(tracks.len(), 2);
    assert_eq!(tracks[0].mime, "video/mp4; codecs=\"avc1.64000d\"");
    assert_eq!(tracks[1].mime, "audio/mp4; codecs=\"mp4a.40.2\"");
    let appends: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Append(a) => Some(a),
            _ => None,
        })
        .collect();
    for track in [TrackType::Video, TrackType::Audio] {
        let mine: Vec<_> = appends.iter().filter(|a| a.track == track).collect();
        assert!(mine[0].init, "{track:?}: init segment first");
        assert!(mine[1..].iter().all(|a| !a.init));
        // Media end times never go backwards.
        assert!(mine[1..].windows(2).all(|w| w[1].start_ms >= w[0].start_ms));
    }
    let frames = tags
        .iter()
        .filter(|t| t.kind == TagKind::Video && t.body[1] == 1)
        .count();
    let video_frags = appends
        .iter()
        .filter(|a| a.track == TrackType::Video && !a.init)
        .count();
    assert_eq!(frames, video_frags, "one fragment per video frame");
}

#[test]
fn latency_comes_from_timeline_and_clock_sync() {
    let tags = av_tags();
    let base = 1_000_000_000u64;
    let mut msgs = vec![info(1, true)];
    msgs.extend(relay_messages(&tags, 1, base));
    let mut s = Session::new();
    // Relay clock = local clock + 5 s, RTT 2 ms. The frames (a few seconds' worth) all
    // arrive 10 s after the first was ingested.
    let offset = 5_000_000u64;
    run_at(&mut s, &msgs, base + 10_000_000 - offset);
    let t0 = 100_000_000u64;
    let pong = Message::Pong(wire::Pong {
        t0,
        t1: t0 + offset + 1000,
        t2: t0 + offset + 1000,
    })
    .to_bytes();
    s.on_message(pong, t0 + 2000).unwrap();
    // The frame at media time 1000 ms was ingested at base + 1000 ms; 150 ms later:
    let local_now = base + 1_150_000 - offset;
    let latency = s.latency_ms(1000.0, local_now).unwrap();
    assert!((latency - 150.0).abs() < 0.5, "{latency}");
    let target = s.target_media_ms(100.0, local_now).unwrap();
    assert!((target - 1050.0).abs() < 0.5, "{target}");
}

#[test]
fn publisher_restart_keeps_the_timeline_going() {
    let tags = av_tags();
    let mut msgs = vec![info(1, true)];
    msgs.extend(relay_messages(&tags, 1, 0));
    msgs.push(
        Message::Discontinuity(wire::Discontinuity {
            epoch: 2,
            reason: wire::reason::PUBLISHER_RESTART,
        })
        .to_bytes(),
    );
    msgs.push(info(2, true));
    msgs.extend(relay_messages(&tags, 2, 10_000_000));
    let mut s = Session::new();
    let actions = run(&mut s, &msgs);
    // Same tracks: no second SetupTracks, one Discontinuity.
    let setups = actions
        .iter()
        .filter(|a| matches!(a, Action::SetupTracks(_)))
        .count();
    assert_eq!(setups, 1);
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, Action::Discontinuity { epoch: 2, .. }))
            .count(),
        1
    );
    let video: Vec<f64> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Append(a) if a.track == TrackType::Video && !a.init => Some(a.start_ms),
            _ => None,
        })
        .collect();
    assert!(
        video.windows(2).all(|w| w[1] > w[0]),
        "video times keep increasing"
    );
    let max_gap = video.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    // The new epoch continues where the longer track (here the audio tail, ~100 ms past the
    // last video frame) ended: a hole of at most that in video, never an overlap.
    assert!(max_gap < 150.0, "no hole at the restart: {max_gap}");
}

#[test]
fn garbage_is_an_error_and_unknown_kinds_are_ignored() {
    let mut s = Session::new();
    assert!(s.on_message(Bytes::from_static(&[0x81, 0, 0]), 0).is_err());
    assert!(s.on_message(Bytes::new(), 0).is_err());
    s.on_message(Bytes::from_static(&[0xf7, 1, 2, 3]), 0)
        .unwrap();
    assert!(s.poll().is_none());
}

#[test]
fn audio_only_and_mp3_streams_get_their_buffers() {
    let mp3 = ffmpeg_flv(
        "mp3",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=44100",
            "-t",
            "1",
            "-c:a",
            "libmp3lame",
        ],
    );
    let mut msgs = vec![Message::StreamInfo(wire::StreamInfo {
        epoch: 1,
        flags: wire::STREAM_LIVE,
        delay_ms: 0,
        channel: "radio".into(),
        tracks: vec![wire::Track {
            codec_id: 2,
            fourcc: [0; 4],
            codec: "mp3".into(),
            params: TrackParams::Audio {
                sample_rate: 44100,
                channels: 1,
            },
        }],
    })
    .to_bytes()];
    msgs.extend(relay_messages(&mp3, 1, 0));
    let mut s = Session::new();
    let actions = run(&mut s, &msgs);
    let Action::SetupTracks(t) = &actions[0] else {
        panic!()
    };
    assert_eq!(t[0].mime, "audio/mpeg");
    let appends: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Append(a) => Some(a),
            _ => None,
        })
        .collect();
    assert!(
        appends.iter().all(|a| !a.init),
        "raw MP3 has no init segment"
    );
    assert!(appends.len() > 30);
    // Raw MPEG audio frames start with a frame sync.
    assert!(appends
        .iter()
        .all(|a| a.data[0] == 0xff && a.data[1] & 0xe0 == 0xe0));
}

#[test]
fn webcodecs_path_configures_then_decodes_keyframe_first() {
    use super::{SinkKind, TrackSetup};
    let tags = av_tags();
    let mut msgs = vec![info(1, true)];
    msgs.extend(relay_messages(&tags, 1, 1_000_000_000));
    let mut s = Session::with_sink(SinkKind::WebCodecs);
    let actions = run(&mut s, &msgs);
    assert!(
        matches!(&actions[0], Action::SetupTracks(t) if t.len() == 2 && t[0] == TrackSetup {
            track: TrackType::Video,
            mime: "video/mp4; codecs=\"avc1.64000d\"".into(),
            codec: "avc1.64000d".into(),
        })
    );
    // No fMP4 on this path.
    assert!(!actions.iter().any(|a| matches!(a, Action::Append(_))));
    let configs: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Configure(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(configs.len(), 2, "one configuration per track");
    let video = configs
        .iter()
        .find(|c| c.track == TrackType::Video)
        .unwrap();
    assert!(video.codec.starts_with("avc1."), "{}", video.codec);
    assert_eq!((video.width, video.height), (320, 240));
    assert_eq!(video.description.as_ref().unwrap()[0], 1, "an avcC record");
    let audio = configs
        .iter()
        .find(|c| c.track == TrackType::Audio)
        .unwrap();
    assert_eq!(
        (audio.codec.as_str(), audio.sample_rate),
        ("mp4a.40.2", 48000)
    );
    let chunks: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Decode(c) => Some(c),
            _ => None,
        })
        .collect();
    let video_chunks: Vec<_> = chunks
        .iter()
        .filter(|c| c.track == TrackType::Video)
        .collect();
    assert!(video_chunks[0].key, "the first video chunk is a keyframe");
    let coded = tags
        .iter()
        .filter(|t| t.kind == TagKind::Video && t.body[1] == 1)
        .count();
    assert_eq!(video_chunks.len(), coded);
    // Chunk data is the payload: the body minus the 5-byte AVC header.
    let first = tags
        .iter()
        .find(|t| t.kind == TagKind::Video && t.body[1] == 1)
        .unwrap();
    assert_eq!(video_chunks[0].data, first.body.slice(5..));
    // Presentation time maps to ingest time through the Timeline anchors.
    let latency = {
        let pong = Message::Pong(wire::Pong {
            t0: 0,
            t1: 0,
            t2: 0,
        })
        .to_bytes();
        s.on_message(pong, 0).unwrap();
        s.latency_ms(video_chunks[0].pts_ms, 1_000_000_000 + 500_000)
            .unwrap()
    };
    assert!(
        (latency - (500.0 - video_chunks[0].pts_ms)).abs() < 0.5,
        "{latency}"
    );
}

#[test]
fn switching_to_mse_starts_over() {
    use super::SinkKind;
    let tags = av_tags();
    let mut msgs = vec![info(1, true)];
    msgs.extend(relay_messages(&tags, 1, 0));
    let mut s = Session::with_sink(SinkKind::WebCodecs);
    run(&mut s, &msgs);
    s.switch_sink(SinkKind::Mse);
    assert_eq!(s.sink(), SinkKind::Mse);
    // After a reconnect the relay sends StreamInfo and the snapshot again.
    let actions = run(&mut s, &msgs);
    assert!(matches!(actions[0], Action::SetupTracks(_)));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Append(a) if a.init)));
}

#[test]
fn clock_url_sits_beside_the_media_endpoint() {
    use super::clock_url;
    assert_eq!(
        clock_url("ws://127.0.0.1:8080/ws/demo").as_deref(),
        Some("ws://127.0.0.1:8080/clock")
    );
    assert_eq!(
        clock_url("wss://example.org/live/lockstep/ws/main?token=x#y").as_deref(),
        Some("wss://example.org/live/lockstep/clock")
    );
    assert_eq!(clock_url("ws://host/other/demo"), None);
    assert_eq!(clock_url("ws://host/ws/"), None);
    assert_eq!(clock_url("ws://host/ws/a/b"), None);
    assert_eq!(clock_url("/ws/demo"), None);
}

#[test]
fn pongs_on_the_clock_connection_sync_the_clock_and_nothing_else_counts() {
    let mut s = Session::default();
    // Relay clock 5 s ahead; 1 ms each way.
    let pong = Message::Pong(wire::Pong {
        t0: 1_000_000,
        t1: 6_001_000,
        t2: 6_001_010,
    })
    .to_bytes();
    s.on_clock_message(pong, 1_002_010).unwrap();
    assert_eq!(s.clock.offset_us(), Some(5_000_000));
    // Media here is ignored, not played; garbage is an error.
    let before = s.stats.messages;
    s.on_clock_message(info(1, true), 1_003_000).unwrap();
    assert_eq!(s.stats.messages, before);
    assert!(s.poll().is_none());
    assert!(s
        .on_clock_message(Bytes::from_static(&[0x83, 1]), 1_004_000)
        .is_err());
}
