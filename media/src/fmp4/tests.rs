//! Round-trip tests of the fMP4 writer against the reader, and of both against ffmpeg.

use bytes::Bytes;

use super::*;

const AVCC: &[u8] = &[
    0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x04, 0x67, 0x64, 0x00, 0x1f, 0x01, 0x00, 0x04, 0x68,
    0xee, 0x3c, 0x80,
];
const ASC: &[u8] = &[0x11, 0x90]; // AAC-LC, 48 kHz, stereo

fn video_track(id: u32) -> TrackSpec {
    TrackSpec {
        id,
        timescale: 90_000,
        kind: TrackKind::Video {
            width: 1920,
            height: 1080,
            entry: VideoEntry::Avc {
                record: Bytes::from_static(AVCC),
            },
        },
    }
}

fn audio_track(id: u32) -> TrackSpec {
    TrackSpec {
        id,
        timescale: 48_000,
        kind: TrackKind::Audio {
            channels: 2,
            sample_rate: 48_000,
            entry: AudioEntry::Aac {
                asc: Bytes::from_static(ASC),
            },
        },
    }
}

/// `n` distinct payloads of varying length, tagged with `tag`.
fn payloads(tag: u8, n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| Bytes::from(vec![tag.wrapping_add(i as u8); 3 + (i * 7) % 50]))
        .collect()
}

fn samples_for(
    data: &[Bytes],
    duration: u32,
    sync: impl Fn(usize) -> bool,
    cto: impl Fn(usize) -> i32,
) -> Vec<Sample> {
    data.iter()
        .enumerate()
        .map(|(i, d)| Sample {
            duration,
            size: d.len() as u32,
            composition_offset: cto(i),
            sync: sync(i),
        })
        .collect()
}

/// Checks one parsed traf against what was written.
fn check_traf(buf: &[u8], t: &ParsedTraf, run: &TrackRun) {
    assert_eq!(t.track_id, run.track_id);
    assert_eq!(t.base_decode_time, Some(run.base_decode_time));
    assert_eq!(t.trun_count, 1);
    assert_eq!(t.samples.len(), run.samples.len());
    let all: Vec<u8> = run.data.iter().flat_map(|b| b.iter().copied()).collect();
    let mut pos = 0;
    let mut dts = run.base_decode_time;
    for (p, s) in t.samples.iter().zip(run.samples) {
        assert_eq!(p.duration, s.duration);
        assert_eq!(p.size, s.size);
        assert_eq!(p.sync, s.sync);
        assert_eq!(
            p.flags,
            if s.sync {
                SYNC_SAMPLE_FLAGS
            } else {
                NON_SYNC_SAMPLE_FLAGS
            }
        );
        assert_eq!(p.composition_offset, s.composition_offset);
        assert_eq!(p.decode_time, dts);
        let end = pos + s.size as usize;
        assert_eq!(&buf[p.data.clone()], &all[pos..end]);
        pos = end;
        dts += u64::from(s.duration);
    }
    assert_eq!(pos, all.len());
}

#[test]
fn fmp4_init_video_and_audio_round_trips() {
    let mut out = Vec::new();
    write_init_segment(&[video_track(1), audio_track(2)], &mut out);
    let init = parse_init(&out).unwrap();
    assert_eq!(init.major_brand, Some(*b"iso6"));
    assert!(init.compatible_brands.contains(b"iso6"));
    assert!(init.compatible_brands.contains(b"mp41"));
    assert_eq!(init.movie_timescale, 1000);
    assert_eq!(init.tracks.len(), 2);

    let v = &init.tracks[0];
    assert_eq!(v.id, 1);
    assert_eq!(v.tkhd_flags, 3);
    assert_eq!(v.volume, 0);
    assert_eq!(&v.handler, b"vide");
    assert_eq!(v.timescale, 90_000);
    assert_eq!(&v.language, b"und");
    assert_eq!((v.width, v.height), (1920, 1080));
    assert_eq!(&v.sample_entry, b"avc1");
    assert_eq!(v.entry_size, Some((1920, 1080)));
    assert_eq!(v.audio, None);
    assert_eq!(&v.config[..], AVCC);
    let trex = v.trex.unwrap();
    assert_eq!(trex.default_sample_description_index, 1);

    let a = &init.tracks[1];
    assert_eq!(a.id, 2);
    assert_eq!(a.volume, 0x0100);
    assert_eq!(&a.handler, b"soun");
    assert_eq!(a.timescale, 48_000);
    assert_eq!((a.width, a.height), (0, 0));
    assert_eq!(&a.sample_entry, b"mp4a");
    assert_eq!(a.entry_size, None);
    assert_eq!(a.audio, Some((2, 48_000)));
    assert_eq!(a.object_type, Some(0x40));
    assert_eq!(&a.config[..], ASC);
    assert_eq!(a.trex.unwrap().default_sample_description_index, 1);

    // Appending: a second segment after the first leaves the first intact.
    let first = out.clone();
    write_init_segment(&[audio_track(7)], &mut out);
    assert_eq!(&out[..first.len()], &first[..]);
    let second = parse_init(&out[first.len()..]).unwrap();
    assert_eq!(second.tracks.len(), 1);
    assert_eq!(second.tracks[0].id, 7);
}

#[test]
fn fmp4_init_hevc_mp3_and_odd_values() {
    let record = Bytes::from_static(&[
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 0,
    ]);
    let tracks = [
        TrackSpec {
            id: 3,
            timescale: 1000,
            kind: TrackKind::Video {
                width: 70_000, // saturates to 65535
                height: 2160,
                entry: VideoEntry::Hevc {
                    record: record.clone(),
                },
            },
        },
        TrackSpec {
            id: 9,
            timescale: 96_000,
            kind: TrackKind::Audio {
                channels: 6,
                sample_rate: 96_000, // does not fit 16.16: written as 0
                entry: AudioEntry::Mp3,
            },
        },
    ];
    let mut out = Vec::new();
    write_init_segment(&tracks, &mut out);
    let init = parse_init(&out).unwrap();
    let v = &init.tracks[0];
    assert_eq!((v.id, &v.sample_entry, &v.handler), (3, b"hvc1", b"vide"));
    assert_eq!(v.config, record);
    assert_eq!(v.entry_size, Some((65535, 2160)));
    assert_eq!((v.width, v.height), (65535, 2160));
    let a = &init.tracks[1];
    assert_eq!((a.id, &a.sample_entry, a.timescale), (9, b"mp4a", 96_000));
    assert_eq!(a.audio, Some((6, 0)));
    assert_eq!(a.object_type, Some(0x6b));
    assert!(a.config.is_empty());
}

#[test]
fn fmp4_fragment_video_and_audio_round_trips() {
    let vdata = payloads(0x10, 8);
    // B-frame style offsets: negative ones included.
    let vsamples = samples_for(
        &vdata,
        3000,
        |i| i == 0,
        |i| [0, 6000, -3000, -3000, 3000, 9000, -6000, 0][i],
    );
    let adata_parts = payloads(0x80, 5);
    let asamples = samples_for(&adata_parts, 1024, |_| true, |_| 0);
    // Audio payload given as one concatenated Bytes plus an empty one: any split is allowed.
    let adata: Vec<u8> = adata_parts.iter().flat_map(|b| b.iter().copied()).collect();
    let adata = [Bytes::from(adata), Bytes::new()];
    let runs = [
        TrackRun {
            track_id: 1,
            base_decode_time: (1 << 33) + 17, // beyond 32 bits
            samples: &vsamples,
            data: &vdata,
        },
        TrackRun {
            track_id: 2,
            base_decode_time: u64::MAX - 1_000_000,
            samples: &asamples,
            data: &adata,
        },
    ];
    let mut out = b"prefix".to_vec();
    write_fragment(42, &runs, &mut out);
    let buf = &out[6..];
    let f = parse_fragment(buf).unwrap();
    assert_eq!(f.sequence_number, 42);
    assert_eq!(f.moof.start, 0);
    assert_eq!(f.mdats.len(), 1);
    assert_eq!(f.mdats[0].start, f.moof.end + 8);
    assert_eq!(f.mdats[0].end, buf.len());
    assert_eq!(f.trafs.len(), 2);
    check_traf(buf, &f.trafs[0], &runs[0]);
    check_traf(buf, &f.trafs[1], &runs[1]);
    // Video data first, then audio, back to back.
    assert_eq!(f.trafs[0].samples[0].data.start, f.mdats[0].start);
    assert_eq!(
        f.trafs[1].samples[0].data.start,
        f.trafs[0].samples[7].data.end
    );

    // The moof size formula the writer relies on.
    let moof_len = 8 + 16 + (64 + 16 * 8) + (64 + 16 * 5);
    assert_eq!(f.moof.end, moof_len);
}

#[test]
fn fmp4_fragment_single_track_and_empty_runs() {
    let vdata = payloads(1, 3);
    let vsamples = samples_for(&vdata, 33, |i| i != 1, |_| -1);
    let empty: [Sample; 0] = [];
    let stray = [Bytes::from_static(b"ignored")];
    let runs = [
        TrackRun {
            track_id: 5,
            base_decode_time: 0,
            samples: &empty,
            data: &stray,
        },
        TrackRun {
            track_id: 1,
            base_decode_time: 99,
            samples: &vsamples,
            data: &vdata,
        },
    ];
    let mut out = Vec::new();
    write_fragment(1, &runs, &mut out);
    let f = parse_fragment(&out).unwrap();
    assert_eq!(f.trafs.len(), 1);
    check_traf(&out, &f.trafs[0], &runs[1]);
    assert!(!out.windows(7).any(|w| w == b"ignored"));

    // Audio only.
    let adata = payloads(9, 4);
    let asamples = samples_for(&adata, 1152, |_| true, |_| 0);
    let arun = [TrackRun {
        track_id: 2,
        base_decode_time: 1 << 40,
        samples: &asamples,
        data: &adata,
    }];
    let mut out = Vec::new();
    write_fragment(u32::MAX, &arun, &mut out);
    let f = parse_fragment(&out).unwrap();
    assert_eq!(f.sequence_number, u32::MAX);
    check_traf(&out, &f.trafs[0], &arun[0]);

    // Nothing to write: nothing written.
    let mut out = vec![1, 2, 3];
    write_fragment(1, &[], &mut out);
    write_fragment(1, &runs[..1], &mut out);
    assert_eq!(out, [1, 2, 3]);
}

#[test]
fn fmp4_reader_rejects_mismatched_data() {
    // Sizes claim more bytes than the data holds: the last sample overruns the mdat.
    let data = [Bytes::from_static(&[1, 2, 3])];
    let samples = [Sample {
        duration: 1,
        size: 4,
        composition_offset: 0,
        sync: true,
    }];
    let mut out = Vec::new();
    write_fragment(
        1,
        &[TrackRun {
            track_id: 1,
            base_decode_time: 0,
            samples: &samples,
            data: &data,
        }],
        &mut out,
    );
    assert!(matches!(
        parse_fragment(&out),
        Err(Mp4Error::Invalid { what: "trun", .. })
    ));
    assert!(matches!(
        parse_fragment(b""),
        Err(Mp4Error::Missing {
            missing: "moof",
            ..
        })
    ));
    assert!(matches!(
        parse_init(b""),
        Err(Mp4Error::Missing {
            missing: "moov",
            ..
        })
    ));
}

/// Tiny deterministic generator for the mutation test.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

#[test]
fn fmp4_reader_never_panics_on_truncated_or_mutated_input() {
    let mut init = Vec::new();
    write_init_segment(&[video_track(1), audio_track(2)], &mut init);
    let vdata = payloads(0x10, 4);
    let vsamples = samples_for(&vdata, 3000, |i| i == 0, |i| i as i32 - 2);
    let mut frag = Vec::new();
    write_fragment(
        3,
        &[TrackRun {
            track_id: 1,
            base_decode_time: 5,
            samples: &vsamples,
            data: &vdata,
        }],
        &mut frag,
    );
    for n in 0..init.len() {
        assert!(parse_init(&init[..n]).is_err(), "init prefix {n} parsed");
    }
    for n in 0..frag.len() {
        assert!(
            parse_fragment(&frag[..n]).is_err(),
            "fragment prefix {n} parsed"
        );
    }
    let mut rng = Lcg(1);
    for round in 0..20_000 {
        let src = if round % 2 == 0 { &init } else { &frag };
        let mut m = src.clone();
        for _ in 0..1 + rng.next() % 4 {
            let i = rng.next() as usize % m.len();
            m[i] = match rng.next() % 4 {
                0 => 0,
                1 => 0xff,
                2 => m[i].wrapping_add(1),
                _ => rng.next() as u8,
            };
        }
        let _ = parse_init(&m);
        let _ = parse_fragment(&m);
        for b in boxes(&m) {
            if b.is_err() {
                break;
            }
        }
    }
}

#[test]
fn fmp4_reader_handles_tfhd_defaults_and_implicit_offsets() {
    // A hand-built moof in the style of other muxers: tfhd with default duration/size/flags and
    // no default-base-is-moof, tfdt version 0, a trun with first-sample-flags and no per-sample
    // fields, followed by a second trun with no data_offset (continues after the first).
    let mut b = Vec::new();
    let be = |v: u32| v.to_be_bytes();
    let moof_body: Vec<Vec<u8>> = vec![[&be(16)[..], b"mfhd", &be(0), &be(7)].concat(), {
        let tfhd = [
            &be(28)[..],
            b"tfhd",
            &be(0x38),
            &be(4),
            &be(10),
            &be(2),
            &be(0x0101_0000),
        ]
        .concat();
        let tfdt = [&be(16)[..], b"tfdt", &be(0), &be(1000)].concat();
        let trun1 = [
            &be(24)[..],
            b"trun",
            &be(0x05),
            &be(2),
            &be(0),
            &be(0x0200_0000),
        ]
        .concat();
        let trun2 = [&be(20)[..], b"trun", &be(0x200), &be(1), &be(3)].concat();
        let body = [tfhd, tfdt, trun1, trun2].concat();
        [&be(8 + body.len() as u32)[..], b"traf", &body].concat()
    }];
    let body = moof_body.concat();
    let moof_len = 8 + body.len() as u32;
    b.extend_from_slice(&be(moof_len));
    b.extend_from_slice(b"moof");
    b.extend_from_slice(&body);
    // Patch trun1's data_offset to point at the mdat payload.
    let pos = b.windows(4).position(|w| w == b"trun").unwrap() + 12;
    b[pos..pos + 4].copy_from_slice(&be(moof_len + 8));
    b.extend_from_slice(&be(8 + 7));
    b.extend_from_slice(b"mdat");
    b.extend_from_slice(&[1, 1, 2, 2, 3, 3, 3]);
    let f = parse_fragment(&b).unwrap();
    assert_eq!(f.sequence_number, 7);
    let t = &f.trafs[0];
    assert_eq!(
        (t.track_id, t.base_decode_time, t.trun_count),
        (4, Some(1000), 2)
    );
    let got: Vec<_> = t
        .samples
        .iter()
        .map(|s| (s.decode_time, s.duration, s.sync, &b[s.data.clone()]))
        .collect();
    assert_eq!(
        got,
        [
            (1000, 10, true, &[1u8, 1][..]),
            (1010, 10, false, &[2, 2][..]),
            (1020, 10, false, &[3, 3, 3][..]),
        ]
    );
}

/// Against ffmpeg: take real H.264/AAC and H.265/MP3 streams from a fragmented MP4 that ffmpeg
/// wrote, rewrite them with our writer, and check what ffprobe and ffmpeg make of the result.
#[cfg(not(target_arch = "wasm32"))]
mod ffmpeg {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn have(tool: &str) -> bool {
        Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn run(cmd: &mut Command) -> (String, String) {
        let o = cmd.output().expect("spawn");
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{cmd:?} failed: {stderr}");
        (stdout, stderr)
    }

    struct TempDir(PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// One expected packet: (pts, dts, size, keyframe).
    type Packet = (i64, i64, u64, bool);

    /// Rewrites `src` (ffmpeg's fragmented MP4) with our writer; returns the file and, per
    /// track in order, the packets ffprobe should report.
    fn rewrite(src: &[u8], time_offset: u64) -> (Vec<u8>, Vec<Vec<Packet>>) {
        let mut tops = Vec::new();
        for b in boxes(src) {
            tops.push(b.unwrap());
        }
        let first_moof = tops.iter().position(|b| &b.fourcc == b"moof").unwrap();
        let init = parse_init(&src[..tops[first_moof].start]).unwrap();
        assert!(!init.tracks.is_empty());

        let mut specs = Vec::new();
        for t in &init.tracks {
            let kind = match &t.handler {
                b"vide" => {
                    let (w, h) = t.entry_size.unwrap();
                    let record = t.config.clone();
                    TrackKind::Video {
                        width: w.into(),
                        height: h.into(),
                        entry: match &t.sample_entry {
                            b"avc1" | b"avc3" => VideoEntry::Avc { record },
                            b"hvc1" | b"hev1" => VideoEntry::Hevc { record },
                            other => panic!("unexpected entry {other:?}"),
                        },
                    }
                }
                b"soun" => {
                    let (channels, rate) = t.audio.unwrap();
                    TrackKind::Audio {
                        channels: channels as u8,
                        sample_rate: rate,
                        entry: match t.object_type {
                            Some(0x40) => AudioEntry::Aac {
                                asc: t.config.clone(),
                            },
                            Some(0x6b | 0x69) => AudioEntry::Mp3,
                            other => panic!("unexpected object type {other:?}"),
                        },
                    }
                }
                other => panic!("unexpected handler {other:?}"),
            };
            specs.push(TrackSpec {
                id: t.id,
                timescale: t.timescale,
                kind,
            });
        }
        let mut out = Vec::new();
        write_init_segment(&specs, &mut out);

        // Shift composition offsets so each track's first sample presents at its decode time
        // (as a live remuxer does); with B-frames this makes some offsets negative.
        let mut shift: BTreeMap<u32, i32> = BTreeMap::new();
        let mut expected: Vec<Vec<Packet>> = vec![Vec::new(); init.tracks.len()];
        let mut seq = 0;
        let mut i = first_moof;
        while i < tops.len() {
            let start = tops[i].start;
            let mut j = i + 1;
            while j < tops.len() && &tops[j].fourcc != b"moof" {
                j += 1;
            }
            let end = tops[j - 1].end;
            let frag_bytes = &src[start..end];
            let f = parse_fragment(frag_bytes).unwrap();
            let mut samples: Vec<Vec<Sample>> = Vec::new();
            let mut datas: Vec<Vec<Bytes>> = Vec::new();
            for t in &f.trafs {
                let s = *shift
                    .entry(t.track_id)
                    .or_insert(t.samples.first().map_or(0, |s| s.composition_offset));
                let track_idx = init.tracks.iter().position(|x| x.id == t.track_id).unwrap();
                samples.push(
                    t.samples
                        .iter()
                        .map(|p| Sample {
                            duration: p.duration,
                            size: p.size,
                            composition_offset: p.composition_offset - s,
                            sync: p.sync,
                        })
                        .collect(),
                );
                datas.push(
                    t.samples
                        .iter()
                        .map(|p| Bytes::copy_from_slice(&frag_bytes[p.data.clone()]))
                        .collect(),
                );
                for p in &t.samples {
                    let dts = (p.decode_time + time_offset) as i64;
                    let pts = dts + i64::from(p.composition_offset - s);
                    expected[track_idx].push((pts, dts, u64::from(p.size), p.sync));
                }
            }
            let runs: Vec<TrackRun> = f
                .trafs
                .iter()
                .enumerate()
                .map(|(k, t)| TrackRun {
                    track_id: t.track_id,
                    base_decode_time: t.base_decode_time.unwrap() + time_offset,
                    samples: &samples[k],
                    data: &datas[k],
                })
                .collect();
            seq += 1;
            write_fragment(seq, &runs, &mut out);
            i = j;
        }
        assert!(seq >= 3, "expected several fragments, got {seq}");
        (out, expected)
    }

    /// ffprobe's packets, per stream index.
    fn probe_packets(path: &Path) -> Vec<Vec<Packet>> {
        let (stdout, stderr) = run(Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "packet=stream_index,pts,dts,size,flags",
                "-of",
                "compact=p=0:nk=0",
            ])
            .arg(path));
        assert_eq!(stderr, "", "ffprobe complained");
        let mut streams: Vec<Vec<Packet>> = Vec::new();
        for line in stdout.lines().filter(|l| !l.is_empty()) {
            let kv: BTreeMap<&str, &str> =
                line.split('|').filter_map(|f| f.split_once('=')).collect();
            let idx: usize = kv["stream_index"].parse().unwrap();
            if streams.len() <= idx {
                streams.resize(idx + 1, Vec::new());
            }
            streams[idx].push((
                kv["pts"].parse().unwrap(),
                kv["dts"].parse().unwrap(),
                kv["size"].parse().unwrap(),
                kv["flags"].starts_with('K'),
            ));
        }
        streams
    }

    /// MD5s of the decoded video frames, in presentation order.
    fn frame_md5s(path: &Path) -> Vec<String> {
        let (stdout, _) = run(Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-map", "0:v", "-f", "framemd5", "-"]));
        stdout
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit(',').next().map(|s| s.trim().to_string()))
            .collect()
    }

    fn real_tools_case(name: &str, codec_args: &[&str], time_offset: u64) {
        // The test suite installs ffmpeg (tests/setup.sh): its absence is a failure, not a skip.
        assert!(
            have("ffmpeg") && have("ffprobe"),
            "ffmpeg/ffprobe not found ({name}): run tests/setup.sh"
        );
        let dir = std::env::temp_dir().join(format!("lockstep-fmp4-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = TempDir(dir);
        let src_path = dir.0.join("src.mp4");
        let out_path = dir.0.join("out.mp4");
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", "2", "-pix_fmt", "yuv420p", "-g", "15"])
        .args(codec_args)
        .args(["-movflags", "frag_keyframe+empty_moov+default_base_moof"])
        .arg(&src_path);
        run(&mut cmd);
        let src = std::fs::read(&src_path).unwrap();

        let (out, expected) = rewrite(&src, time_offset);
        std::fs::write(&out_path, &out).unwrap();

        let got = probe_packets(&out_path);
        assert_eq!(got.len(), expected.len(), "stream count");
        for (k, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!(e.len() > 10, "stream {k}: only {} packets", e.len());
            assert_eq!(g.len(), e.len(), "stream {k}: packet count");
            // ffmpeg's mov demuxer presents negative composition offsets by delaying every
            // pts of the stream by the largest of them (its `dts_shift`); dts are untouched.
            let shift = e.iter().map(|p| p.1 - p.0).max().unwrap_or(0).max(0);
            if k == 0 {
                assert!(shift > 0, "video should have B-frames (negative offsets)");
            }
            for (n, (gp, ep)) in g.iter().zip(e).enumerate() {
                let ep = (ep.0 + shift, ep.1, ep.2, ep.3);
                assert_eq!(*gp, ep, "stream {k} packet {n}: (pts, dts, size, key)");
            }
            assert!(e.iter().filter(|p| p.3).count() >= 2 || k != 0, "keyframes");
        }

        // Decodes cleanly, and to the same pictures as the source.
        let (_, stderr) = run(Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&out_path)
            .args(["-f", "null", "-"]));
        assert_eq!(stderr, "", "ffmpeg decode errors");
        let ours = frame_md5s(&out_path);
        assert_eq!(ours.len(), 60);
        assert_eq!(ours, frame_md5s(&src_path));
    }

    #[test]
    fn fmp4_ffmpeg_accepts_h264_aac() {
        real_tools_case(
            "h264-aac",
            &["-c:v", "libx264", "-bf", "2", "-c:a", "aac", "-b:a", "64k"],
            0,
        );
    }

    #[test]
    fn fmp4_ffmpeg_accepts_h265_mp3_with_64_bit_times() {
        real_tools_case(
            "h265-mp3",
            &[
                "-c:v",
                "libx265",
                "-tag:v",
                "hvc1",
                "-x265-params",
                "log-level=error:bframes=2",
                "-c:a",
                "libmp3lame",
            ],
            (1 << 32) + 12_345,
        );
    }
}
