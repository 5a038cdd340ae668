//! The Opus audio path for real: the tone, paced as the test source paces it, through the
//! real ffmpeg with `encoder::audio_args(Opus)` (needs ffmpeg with libopus, as the demo does),
//! read back by `workers::read_ogg_opus`: a sequence start carrying `OpusHead`, then a coded
//! frame every 10 ms on the tone's timeline, the priming dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use lockstep_demo::encoder::{self, AudioCodec};
use lockstep_demo::tone::Tone;
use lockstep_demo::workers::{read_ogg_opus, write_tone, FromEncoder};
use lockstep_media::flv::audio::{AudioCodec as FlvAudioCodec, AudioPacket, AudioTagHeader};
use lockstep_media::flv::TagKind;

#[test]
fn one_second_of_tone_becomes_opus_tags_every_10_ms() {
    let mut child = encoder::spawn(&encoder::audio_args(AudioCodec::Opus))
        .expect("starting ffmpeg (with libopus) for the Opus test");
    let (to_publisher, tags) = mpsc::channel();
    let reader = read_ogg_opus("audio", child.stdout.take().unwrap(), to_publisher);
    let (failed_tx, failed) = mpsc::channel();
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let writer = write_tone(
        Tone::new(440),
        encoder::audio_input(AudioCodec::Opus),
        child.stdin.take().unwrap(),
        start,
        done.clone(),
        failed_tx,
    );

    // (timestamp, body, arrival after start + timestamp) of each tag, for ~1 s of tone.
    let mut got = Vec::new();
    let mut end = None;
    let deadline = start + Duration::from_secs(10);
    while end.is_none() && Instant::now() < deadline {
        if start.elapsed() >= Duration::from_millis(1000) && !done.load(Ordering::SeqCst) {
            done.store(true, Ordering::SeqCst);
        }
        match tags.recv_timeout(Duration::from_millis(20)) {
            Ok(FromEncoder::Tag(t)) => {
                assert_eq!(t.kind, TagKind::Audio);
                let late = start.elapsed().as_secs_f64() * 1000.0 - f64::from(t.timestamp);
                got.push((t.timestamp, t.body, late));
            }
            Ok(FromEncoder::End(_, result)) => end = Some(result),
            Err(_) => {}
        }
    }
    writer.join().unwrap();
    assert!(failed.try_recv().is_err(), "the tone writer failed");
    let status = encoder::stop(&mut child, Duration::from_secs(5)).unwrap();
    reader.join().unwrap();
    assert_eq!(end, Some(Ok(())), "the Ogg output ended badly");
    assert!(status.success(), "ffmpeg: {status}");

    let (ts0, head, _) = &got[0];
    let h = AudioTagHeader::parse(head).unwrap();
    assert_eq!(
        (h.codec, h.packet, *ts0),
        (FlvAudioCodec::Opus, AudioPacket::SequenceStart, 0)
    );
    let head = &head[h.header_len..];
    assert!(head.starts_with(b"OpusHead"), "{head:?}");
    let pre_skip = u64::from(u16::from_le_bytes([head[10], head[11]]));
    assert!(pre_skip < 480, "pre-skip {pre_skip}: not low-delay?");

    let frames = &got[1..];
    assert!(
        (90..=110).contains(&frames.len()),
        "{} coded frames for 1 s",
        frames.len()
    );
    for (ts, body, _) in frames {
        let h = AudioTagHeader::parse(body).unwrap();
        assert_eq!(
            (h.codec, h.packet),
            (FlvAudioCodec::Opus, AudioPacket::Coded)
        );
        assert!(body.len() > h.header_len, "empty packet at {ts}");
    }
    // The first packet (output 0..480, pre-skip included) is priming and dropped: the first
    // tag is the second packet, whose first input sample is 480 − pre_skip.
    let first = ((480 - pre_skip) * 1000 + 24_000) / 48_000;
    assert_eq!(u64::from(frames[0].0), first);
    assert!(first <= 10);
    for w in frames.windows(2) {
        let step = w[1].0.abs_diff(w[0].0);
        assert!(w[1].0 >= w[0].0, "time went back: {} → {}", w[0].0, w[1].0);
        assert!((9..=11).contains(&step), "step {} → {}", w[0].0, w[1].0);
    }
    // Before the end (ffmpeg flushes the rest at once), each left ffmpeg soon after its
    // 10 ms of input was in.
    let mut late: Vec<f64> = frames[..frames.len() - 5].iter().map(|f| f.2).collect();
    late.sort_by(f64::total_cmp);
    println!(
        "Opus tag after its stream time: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        late[late.len() / 2],
        late[late.len() * 95 / 100],
        late[late.len() - 1]
    );
}
