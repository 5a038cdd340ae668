//! Tests of the wire codec: golden bytes from docs/PROTOCOL.md, round trips (fixed and
//! proptest), every prefix of every message, unknown types and forward compatibility.

use super::*;
use proptest::prelude::*;

fn samples() -> Vec<Message> {
    vec![
        Message::Media(Media {
            kind: MediaKind::Video,
            flags: MediaFlags::KEYFRAME,
            timestamp_ms: 0x0102_0304,
            body: Bytes::from_static(&[0x17, 1, 0, 0, 0x21, 0xAA]),
        }),
        Message::Media(Media {
            kind: MediaKind::Audio,
            flags: MediaFlags::CONFIG | MediaFlags::KEYFRAME,
            timestamp_ms: 0,
            body: Bytes::from_static(&[0xAF, 0, 0x12, 0x10]),
        }),
        Message::Media(Media {
            kind: MediaKind::Script,
            flags: MediaFlags::NONE,
            timestamp_ms: u32::MAX,
            body: Bytes::new(),
        }),
        Message::Hello(Hello {
            version: VERSION,
            relay_time_us: 1_700_000_000_000_000,
            server: "lockstep-relay/0.1".into(),
        }),
        Message::StreamInfo(StreamInfo {
            epoch: 3,
            flags: STREAM_LIVE,
            delay_ms: 400,
            channel: "live".into(),
            tracks: vec![
                Track {
                    codec_id: 7,
                    fourcc: [0; 4],
                    codec: "avc1.64001f".into(),
                    params: TrackParams::Video {
                        width: 1280,
                        height: 720,
                    },
                },
                Track {
                    codec_id: 10,
                    fourcc: [0; 4],
                    codec: "mp4a.40.2".into(),
                    params: TrackParams::Audio {
                        sample_rate: 48_000,
                        channels: 2,
                    },
                },
            ],
        }),
        Message::StreamInfo(StreamInfo {
            epoch: 0,
            flags: 0,
            delay_ms: 0,
            channel: "idle".into(),
            tracks: vec![],
        }),
        Message::Timeline(Timeline {
            epoch: 3,
            timestamp_ms: 1234,
            relay_us: 1_700_000_000_123_456,
        }),
        Message::Ping(Ping { t0: 42 }),
        Message::Pong(Pong {
            t0: 42,
            t1: 1_700_000_000_000_000,
            t2: 1_700_000_000_000_050,
        }),
        Message::Feedback(Feedback {
            buffer_ms: 120,
            latency_ms: Some(180),
            playback_rate_milli: 1010,
            decoded_frames: 3000,
            dropped_frames: 2,
            bytes_received: 25_000_000,
            bandwidth_kbps: 2_100,
            stalls: 1,
            mode: MODE_WEBCODECS,
            sync_error_ms: Some(-3),
            rtt_us: Some(900),
            target_ms: Some(140),
            refresh: RefreshPhase::new(16_667, 12_345),
        }),
        Message::Feedback(Feedback::default()),
        Message::Skipped(Skipped {
            frames: 12,
            bytes: 90_000,
        }),
        Message::Discontinuity(Discontinuity {
            epoch: 4,
            reason: reason::TIMESTAMP_BACK,
        }),
        Message::End(End {
            reason: "publisher disconnected".into(),
        }),
        Message::Error(ErrorMsg {
            code: code::UNKNOWN_CHANNEL,
            message: "no such channel: é".into(),
        }),
        Message::Subscribe(Subscribe {
            channel: "live".into(),
            target_delay_ms: 300,
            mode: MODE_ANY,
            rendition: String::new(),
        }),
        Message::Unknown { kind: 0x7F },
    ]
}

#[test]
fn round_trip_every_message() {
    for m in samples() {
        let b = m.to_bytes();
        assert_eq!(decode(b.clone()).unwrap(), m, "{b:02x?}");
        // Trailing extensibility: appended bytes are ignored by control messages.
        if !matches!(m, Message::Media(_) | Message::Unknown { .. }) {
            let mut longer = b.to_vec();
            longer.extend_from_slice(&[9, 9, 9]);
            assert_eq!(decode(longer.into()).unwrap(), m);
        }
    }
}

#[test]
fn golden_bytes() {
    assert_eq!(
        media_header(MediaKind::Video, MediaFlags::KEYFRAME, 0x0102_0304),
        [0x11, 1, 2, 3, 4]
    );
    assert_eq!(
        media_header(MediaKind::Audio, MediaFlags::CONFIG, 0)[0],
        0x22
    );
    assert_eq!(
        encode_media(MediaKind::Script, MediaFlags::NONE, 5, b"ab"),
        Bytes::from_static(&[0x30, 0, 0, 0, 5, b'a', b'b'])
    );
    assert_eq!(
        Message::Ping(Ping { t0: 0x0102 }).to_bytes(),
        Bytes::from_static(&[0x83, 0, 0, 0, 0, 0, 0, 1, 2])
    );
    assert_eq!(
        Message::Error(ErrorMsg {
            code: 5,
            message: "x".into()
        })
        .to_bytes(),
        Bytes::from_static(&[0x89, 0, 5, 0, 1, b'x'])
    );
    let info = samples().swap_remove(4).to_bytes();
    #[rustfmt::skip]
    let want: &[u8] = &[
        0x81, 0, 0, 0, 3, 1, 0, 0, 0x01, 0x90, 0, 4, b'l', b'i', b'v', b'e', 2,
        0, 23, 1, 7, 0, 0, 0, 0, 0, 11, b'a', b'v', b'c', b'1', b'.', b'6', b'4', b'0', b'0',
        b'1', b'f', 0x05, 0x00, 0x02, 0xD0,
        0, 22, 2, 10, 0, 0, 0, 0, 0, 9, b'm', b'p', b'4', b'a', b'.', b'4', b'0', b'.', b'2',
        0, 0, 0xBB, 0x80, 2,
    ];
    assert_eq!(&info[..], want);
    let fb = Message::Feedback(Feedback::default()).to_bytes();
    assert_eq!(fb.len(), 56);
    assert_eq!(&fb[5..9], &[0x80, 0, 0, 0]); // latency unknown = i32::MIN
    assert_eq!(&fb[40..44], &[0xFF; 4]); // rtt unknown = u32::MAX
    assert_eq!(&fb[44..48], &[0xFF; 4]); // target unknown = u32::MAX
    assert_eq!(&fb[48..56], &[0xFF; 8]); // refresh grid unknown
                                         // A 1.0 player's 44-byte Feedback still decodes, without the 1.1 field.
    let with_target = Message::Feedback(Feedback {
        target_ms: Some(90),
        ..Feedback::default()
    })
    .to_bytes();
    assert_eq!(
        decode(with_target.slice(..44)),
        Ok(Message::Feedback(Feedback::default()))
    );
    // A 1.1–1.3 player's 48-byte Feedback decodes without the 1.4 refresh grid.
    let with_grid = Message::Feedback(Feedback {
        target_ms: Some(90),
        refresh: RefreshPhase::new(16_667, 4_000),
        ..Feedback::default()
    })
    .to_bytes();
    assert_eq!(&with_grid[48..56], &[0, 0, 0x41, 0x1B, 0, 0, 0x0F, 0xA0]);
    assert_eq!(
        decode(with_grid.slice(..48)),
        Ok(Message::Feedback(Feedback {
            target_ms: Some(90),
            ..Feedback::default()
        }))
    );
}

#[test]
fn an_inconsistent_refresh_grid_is_unknown() {
    let mut fb = Message::Feedback(Feedback {
        refresh: RefreshPhase::new(16_667, 4_000),
        ..Feedback::default()
    })
    .to_bytes()
    .to_vec();
    fb[52..56].copy_from_slice(&20_000u32.to_be_bytes()); // phase beyond the period
    let Ok(Message::Feedback(f)) = decode(Bytes::from(fb)) else {
        panic!("feedback")
    };
    assert_eq!(f.refresh, None);
    assert_eq!(RefreshPhase::new(0, 0), None);
}

#[test]
fn due_from_the_nearest_refresh() {
    let r = RefreshPhase::new(16_000, 3_000).unwrap();
    assert_eq!(r.due_from_nearest_us(0), 3_000);
    assert_eq!(r.due_from_nearest_us(5_000), 8_000); // the middle counts as after
    assert_eq!(r.due_from_nearest_us(6_000), -7_000);
    assert_eq!(r.due_from_nearest_us(13_000), 0);
    assert_eq!(r.due_from_nearest_us(208_000 + 2_000), 5_000); // 13 periods on
}

#[test]
fn media_is_zero_copy_and_ignores_reserved_flag() {
    let wire = encode_media(MediaKind::Video, MediaFlags::CONFIG, 7, &[1, 2, 3]);
    let Message::Media(m) = decode(wire.clone()).unwrap() else {
        panic!("not media")
    };
    assert_eq!(m.body.as_ptr(), wire[5..].as_ptr());
    assert!(m.flags.contains(MediaFlags::CONFIG));
    assert!(!m.flags.contains(MediaFlags::KEYFRAME));
    let Message::Media(m) = decode(Bytes::from_static(&[0x1D, 0, 0, 0, 0])).unwrap() else {
        panic!("not media")
    };
    assert_eq!(m.flags, MediaFlags::KEYFRAME | MediaFlags::END_OF_SEQUENCE);
    assert!(m.body.is_empty());
}

#[test]
fn unknown_types_are_ignored_not_errors() {
    for b0 in (0x00..=0x0Fu8).chain(0x40..=0x7F).chain(0x8B..=0xFF) {
        assert_eq!(
            decode(Bytes::from(vec![b0, 1, 2, 3])).unwrap(),
            Message::Unknown { kind: b0 }
        );
        assert_eq!(
            decode(Bytes::from(vec![b0])).unwrap(),
            Message::Unknown { kind: b0 }
        );
    }
    assert_eq!(decode(Bytes::new()), Err(WireError::Empty));
}

#[test]
fn every_prefix_decodes_or_errors() {
    for m in samples() {
        let b = m.to_bytes();
        for n in 0..b.len() {
            let r = decode(b.slice(..n));
            if let Message::Media(_) = m {
                assert_eq!(r.is_ok(), n >= MEDIA_HEADER_LEN);
            } else if matches!(m, Message::Feedback(_)) && n >= b.len() - 12 {
                // The optional trailing fields of 1.1 and 1.4: a 1.0 Feedback is valid
                // without them (and a partial field is ignored trailing bytes).
                assert!(r.is_ok(), "{m:?} without its optional field: {r:?}");
            } else if !matches!(m, Message::Unknown { .. }) {
                // Every other control field is required: no strict prefix is valid.
                assert!(r.is_err(), "{m:?} prefix {n} decoded: {r:?}");
            }
        }
    }
}

#[test]
fn errors_name_message_and_offset() {
    assert_eq!(
        decode(Bytes::from_static(&[0x82, 0, 0, 0, 1, 0, 0])),
        Err(WireError::Truncated {
            message: "Timeline",
            offset: 5,
            needed: 4,
            available: 2
        })
    );
    assert_eq!(
        decode(Bytes::from_static(&[0x12, 0, 0])),
        Err(WireError::Truncated {
            message: "Media",
            offset: 1,
            needed: 4,
            available: 2
        })
    );
    assert_eq!(
        decode(Bytes::from_static(&[0x88, 0, 2, 0xC3, 0x28])),
        Err(WireError::InvalidUtf8 {
            message: "End",
            offset: 1
        })
    );
    // A track record whose length claims more than its fields need is fine; one that is
    // shorter than its fields is an error located inside the record.
    let e = decode(Bytes::from_static(&[
        0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 1, 7, 0,
    ]));
    assert_eq!(
        e,
        Err(WireError::Truncated {
            message: "StreamInfo",
            offset: 17,
            needed: 4,
            available: 1
        })
    );
    assert!(e.unwrap_err().to_string().contains("StreamInfo"));
}

#[test]
fn track_records_are_extensible() {
    #[rustfmt::skip]
    let wire: &[u8] = &[
        0x81, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 3,
        // A kind-9 track from the future: skipped whole.
        0, 3, 9, 1, 2,
        // A video track with two extra bytes appended.
        0, 16, 1, 12, b'h', b'v', b'c', b'1', 0, 0, 0, 16, 0, 32, 0xEE, 0xEE, 0, 0,
        // An audio track.
        0, 16, 2, 2, 0, 0, 0, 0, 0, 3, b'm', b'p', b'3', 0, 0, 0xAC, 0x44, 1,
    ];
    let Message::StreamInfo(s) = decode(Bytes::from_static(wire)).unwrap() else {
        panic!("not StreamInfo")
    };
    assert_eq!(
        s.tracks,
        vec![
            Track {
                codec_id: 12,
                fourcc: *b"hvc1",
                codec: String::new(),
                params: TrackParams::Video {
                    width: 16,
                    height: 32
                },
            },
            Track {
                codec_id: 2,
                fourcc: [0; 4],
                codec: "mp3".into(),
                params: TrackParams::Audio {
                    sample_rate: 44_100,
                    channels: 1
                },
            },
        ]
    );
}

#[test]
fn over_long_strings_are_cut_at_a_char_boundary() {
    let long = "é".repeat(40_000); // 80 000 bytes
    let m = Message::End(End { reason: long });
    let Message::End(e) = decode(m.to_bytes()).unwrap() else {
        panic!("not End")
    };
    assert_eq!(e.reason.len(), 65_534);
}

fn opt_i32() -> impl Strategy<Value = Option<i32>> {
    prop::option::of(i32::MIN + 1..=i32::MAX)
}

fn track() -> impl Strategy<Value = Track> {
    let params = prop_oneof![
        (any::<u16>(), any::<u16>())
            .prop_map(|(width, height)| TrackParams::Video { width, height }),
        (any::<u32>(), any::<u8>()).prop_map(|(sample_rate, channels)| TrackParams::Audio {
            sample_rate,
            channels
        }),
    ];
    (any::<u8>(), any::<[u8; 4]>(), ".{0,20}", params).prop_map(
        |(codec_id, fourcc, codec, params)| Track {
            codec_id,
            fourcc,
            codec,
            params,
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    let media = (
        1u8..=3,
        0u8..8,
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(k, f, ts, body)| {
            Message::Media(Media {
                kind: MediaKind::from_nibble(k).unwrap_or(MediaKind::Video),
                flags: MediaFlags::from_bits(f),
                timestamp_ms: ts,
                body: body.into(),
            })
        });
    let feedback = (
        (
            any::<u32>(),
            opt_i32(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
        ),
        (
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            opt_i32(),
            prop::option::of(0..u32::MAX),
        ),
    )
        .prop_map(|((a, b, c, d, e, f), (g, h, i, j, k))| {
            Message::Feedback(Feedback {
                buffer_ms: a,
                latency_ms: b,
                playback_rate_milli: c,
                decoded_frames: d,
                dropped_frames: e,
                bytes_received: f,
                bandwidth_kbps: g,
                stalls: h,
                mode: i,
                sync_error_ms: j,
                rtt_us: k,
                target_ms: k,
                refresh: k.and_then(|p| RefreshPhase::new(p.max(1), p / 2)),
            })
        });
    prop_oneof![
        media,
        (any::<u8>(), any::<u64>(), ".{0,20}").prop_map(|(version, relay_time_us, server)| {
            Message::Hello(Hello {
                version,
                relay_time_us,
                server,
            })
        }),
        (
            any::<u32>(),
            any::<u8>(),
            any::<u32>(),
            ".{0,20}",
            prop::collection::vec(track(), 0..4)
        )
            .prop_map(|(epoch, flags, delay_ms, channel, tracks)| {
                Message::StreamInfo(StreamInfo {
                    epoch,
                    flags,
                    delay_ms,
                    channel,
                    tracks,
                })
            }),
        (any::<u32>(), any::<u32>(), any::<u64>()).prop_map(|(epoch, timestamp_ms, relay_us)| {
            Message::Timeline(Timeline {
                epoch,
                timestamp_ms,
                relay_us,
            })
        }),
        any::<u64>().prop_map(|t0| Message::Ping(Ping { t0 })),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(t0, t1, t2)| Message::Pong(Pong {
            t0,
            t1,
            t2
        })),
        feedback,
        (any::<u32>(), any::<u32>())
            .prop_map(|(frames, bytes)| Message::Skipped(Skipped { frames, bytes })),
        (any::<u32>(), any::<u8>())
            .prop_map(|(epoch, reason)| Message::Discontinuity(Discontinuity { epoch, reason })),
        ".{0,20}".prop_map(|reason| Message::End(End { reason })),
        (any::<u16>(), ".{0,20}")
            .prop_map(|(code, message)| Message::Error(ErrorMsg { code, message })),
        (".{0,20}", any::<u32>(), any::<u8>(), ".{0,20}").prop_map(
            |(channel, target_delay_ms, mode, rendition)| {
                Message::Subscribe(Subscribe {
                    channel,
                    target_delay_ms,
                    mode,
                    rendition,
                })
            }
        ),
        (0x40u8..=0x7F).prop_map(|kind| Message::Unknown { kind }),
        (0x8Bu8..=0xFF).prop_map(|kind| Message::Unknown { kind }),
    ]
}

proptest! {
    #[test]
    fn prop_round_trip(m in message()) {
        let b = m.to_bytes();
        prop_assert_eq!(decode(b.clone()).unwrap(), m);
        for n in 0..b.len() {
            let _ = decode(b.slice(..n));
        }
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(m) = decode(raw.into()) {
            prop_assert_eq!(decode(m.to_bytes()).unwrap(), m);
        }
    }
}
