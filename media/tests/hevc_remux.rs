//! H.265 through FLV, both ways it is carried: legacy CodecID 12 (the FLV extension Chinese
//! CDNs use) and Enhanced RTMP (FourCC `hvc1`, with CodedFramesX for frames whose composition
//! time is 0). ffmpeg 5.1 cannot write HEVC in FLV, so the FLV files are built here from a
//! fragmented MP4 made by libx265 (read back with the crate's fMP4 reader), remuxed with
//! `flv_to_mp4`, and checked with ffprobe against the source MP4: codec, size, every packet's
//! PTS/DTS/key flag, and an error-free decode.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use bytes::Bytes;
use common::{decode_errors, ffmpeg, packets, scratch_dir, streams, Packet};
use lockstep_media::flv::tag::{write_file_header, write_tag};
use lockstep_media::flv::TagKind;
use lockstep_media::fmp4::{boxes, parse_fragment, parse_init};
use lockstep_media::remux::{flv_to_mp4, RemuxEvent, RemuxOptions, Remuxer};

/// One coded picture of the source, in FLV terms.
#[derive(Debug, Clone)]
struct Frame {
    dts_ms: u32,
    cts_ms: i32,
    key: bool,
    data: Bytes,
}

struct Source {
    dir: std::path::PathBuf,
    mp4: std::path::PathBuf,
    hvcc: Bytes,
    frames: Vec<Frame>,
}

fn source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let dir = scratch_dir("hevc_remux");
        let mp4 = dir.join("source.mp4");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-t",
            "2",
            "-c:v",
            "libx265",
            "-tag:v",
            "hvc1",
            "-x265-params",
            "keyint=30:bframes=2:log-level=error",
            "-movflags",
            // default_base_moof: without it ffmpeg writes absolute tfhd.base_data_offset
            // values, which the reader resolves against the start of the buffer it is given
            // (documented), so each fragment could not be read on its own.
            "frag_keyframe+empty_moov+default_base_moof",
            mp4.to_str().unwrap(),
        ]);
        let data = Bytes::from(std::fs::read(&mp4).unwrap());
        let init = parse_init(&data).expect("ffmpeg init segment");
        assert_eq!(init.tracks.len(), 1);
        let track = &init.tracks[0];
        assert_eq!(&track.sample_entry, b"hvc1");
        assert!(!track.config.is_empty(), "hvcC");
        let timescale = u64::from(track.timescale);
        let ms = |t: i64| ((t * 1000) as f64 / timescale as f64).round() as i64;

        // Each moof with the mdat after it.
        let tops: Vec<_> = boxes(&data).map(|b| b.expect("top-level box")).collect();
        let mut frames = Vec::new();
        for (i, b) in tops.iter().enumerate() {
            if &b.fourcc != b"moof" {
                continue;
            }
            let mdat = tops[i + 1..]
                .iter()
                .find(|m| &m.fourcc == b"mdat")
                .expect("mdat after moof");
            let frag = data.slice(b.start..mdat.end);
            let parsed = parse_fragment(&frag).expect("ffmpeg fragment");
            for traf in &parsed.trafs {
                for s in &traf.samples {
                    let dts = ms(s.decode_time as i64);
                    let pts = ms(s.decode_time as i64 + i64::from(s.composition_offset));
                    frames.push(Frame {
                        dts_ms: dts as u32,
                        cts_ms: (pts - dts) as i32,
                        key: s.sync,
                        data: frag.slice(s.data.clone()),
                    });
                }
            }
        }
        assert_eq!(frames.len(), 60);
        assert!(frames.iter().any(|f| f.cts_ms == 0) && frames.iter().any(|f| f.cts_ms > 0));
        assert!(frames.iter().filter(|f| f.key).count() >= 2);
        Source {
            dir,
            mp4,
            hvcc: track.config.clone(),
            frames,
        }
    })
}

fn si24(v: i32) -> [u8; 3] {
    let b = v.to_be_bytes();
    [b[1], b[2], b[3]]
}

/// Video tag bodies, legacy CodecID 12: FrameType | 12, AVCPacketType, SI24 CompositionTime.
fn legacy_bodies(s: &Source) -> Vec<(u32, Vec<u8>)> {
    let mut tags = vec![(0, [&[0x1c, 0, 0, 0, 0][..], &s.hvcc].concat())];
    for f in &s.frames {
        let frame_type = if f.key { 1 } else { 2 };
        let mut body = vec![frame_type << 4 | 12, 1];
        body.extend_from_slice(&si24(f.cts_ms));
        body.extend_from_slice(&f.data);
        tags.push((f.dts_ms, body));
    }
    tags.push((
        s.frames.last().unwrap().dts_ms,
        vec![0x1c, 2, 0, 0, 0], // end of sequence
    ));
    tags
}

/// Video tag bodies, Enhanced RTMP: IsExHeader | FrameType | PacketType, FourCC `hvc1`;
/// SequenceStart (0), CodedFrames (1) with SI24 CompositionTime, or CodedFramesX (3) when the
/// composition time is 0; SequenceEnd (2) at the end.
fn enhanced_bodies(s: &Source) -> Vec<(u32, Vec<u8>)> {
    let mut tags = vec![(0, [&[0x80 | 1 << 4][..], b"hvc1", &s.hvcc].concat())];
    for f in &s.frames {
        let frame_type: u8 = if f.key { 1 } else { 2 };
        let mut body = Vec::with_capacity(f.data.len() + 8);
        if f.cts_ms == 0 {
            body.push(0x80 | frame_type << 4 | 3);
            body.extend_from_slice(b"hvc1");
        } else {
            body.push(0x80 | frame_type << 4 | 1);
            body.extend_from_slice(b"hvc1");
            body.extend_from_slice(&si24(f.cts_ms));
        }
        body.extend_from_slice(&f.data);
        tags.push((f.dts_ms, body));
    }
    tags.push((
        s.frames.last().unwrap().dts_ms,
        [&[0x80 | 1 << 4 | 2][..], b"hvc1"].concat(),
    ));
    tags
}

fn flv_of(bodies: &[(u32, Vec<u8>)]) -> Bytes {
    let mut out = Vec::new();
    write_file_header(&mut out, false, true);
    for (ts, body) in bodies {
        write_tag(&mut out, TagKind::Video, *ts, body);
    }
    Bytes::from(out)
}

/// Packets relative to the earliest DTS, in decode order.
fn relative(all: &[Packet]) -> Vec<Packet> {
    let start = all.iter().map(|p| p.dts_ms).fold(f64::INFINITY, f64::min);
    let mut v: Vec<Packet> = all
        .iter()
        .map(|p| Packet {
            pts_ms: p.pts_ms - start,
            dts_ms: p.dts_ms - start,
            ..p.clone()
        })
        .collect();
    v.sort_by(|a, b| a.dts_ms.total_cmp(&b.dts_ms));
    v
}

fn check_against_source(name: &str, flv: Bytes) {
    let s = source();
    let result = flv_to_mp4(flv).expect("remux");
    assert!(result.skipped.is_empty(), "{name}: {:?}", result.skipped);
    assert!(result.warnings.is_empty(), "{name}: {:?}", result.warnings);
    assert!(result.discontinuities.is_empty());
    let out = s.dir.join(format!("{name}.mp4"));
    std::fs::write(&out, &result.mp4).unwrap();

    // Our own reader: the samples are the source's, byte for byte.
    let mp4 = Bytes::from(result.mp4.clone());
    let init = parse_init(&mp4).unwrap();
    assert_eq!(&init.tracks[0].sample_entry, b"hvc1");
    assert_eq!(init.tracks[0].config, s.hvcc);
    let tops: Vec<_> = boxes(&mp4).map(Result::unwrap).collect();
    let mut samples = Vec::new();
    for (i, b) in tops
        .iter()
        .enumerate()
        .filter(|(_, b)| &b.fourcc == b"moof")
    {
        let end = tops[i + 1].end;
        let f = parse_fragment(&mp4[b.start..end]).unwrap();
        for s in f.trafs.iter().flat_map(|t| &t.samples) {
            samples.push(mp4.slice(b.start + s.data.start..b.start + s.data.end));
        }
    }
    assert_eq!(samples.len(), s.frames.len());
    for (i, (a, f)) in samples.iter().zip(&s.frames).enumerate() {
        assert_eq!(a, &f.data, "{name}: sample {i}");
    }

    compare_with_ffprobe(name, &s.mp4, &out);
}

fn compare_with_ffprobe(name: &str, source: &Path, out: &Path) {
    let info = streams(out);
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].codec_type, "video");
    assert_eq!(info[0].codec_name, "hevc");
    assert_eq!(
        (info[0].width.as_str(), info[0].height.as_str()),
        ("640", "360")
    );
    assert_eq!(info[0].profile, streams(source)[0].profile);

    let (a, b) = (relative(&packets(source)), relative(&packets(out)));
    assert_eq!(a.len(), b.len(), "{name}: packet count");
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!(
            (a.dts_ms - b.dts_ms).abs() <= 1.0,
            "{name} packet {i}: dts {} vs {}",
            a.dts_ms,
            b.dts_ms
        );
        assert!(
            (a.pts_ms - b.pts_ms).abs() <= 1.0,
            "{name} packet {i}: pts {} vs {}",
            a.pts_ms,
            b.pts_ms
        );
        assert_eq!(a.key, b.key, "{name} packet {i}: key flag");
        assert_eq!(a.size, b.size, "{name} packet {i}: size");
    }
    let errors = decode_errors(out);
    assert!(errors.trim().is_empty(), "{name}: decode errors: {errors}");
}

#[test]
fn legacy_codec_id_12() {
    check_against_source("legacy", flv_of(&legacy_bodies(source())));
}

#[test]
fn enhanced_rtmp_hvc1() {
    let bodies = enhanced_bodies(source());
    // Both packet types are exercised.
    assert!(bodies.iter().any(|(_, b)| b[0] & 0x0f == 3));
    assert!(bodies.iter().any(|(_, b)| b[0] & 0x0f == 1));
    check_against_source("enhanced", flv_of(&bodies));
}

/// The RFC 6381 / ISO/IEC 14496-15 Annex E codec string, computed here from the hvcC bytes:
/// `hvc1.` profile space letter + profile_idc `.` compatibility flags bit-reversed, in hex `.`
/// tier letter + level_idc, then the constraint bytes in hex without trailing zero bytes.
fn expected_codec_string(hvcc: &[u8]) -> String {
    let space = ["", "A", "B", "C"][usize::from(hvcc[1] >> 6)];
    let tier = if hvcc[1] & 0x20 != 0 { 'H' } else { 'L' };
    let compat = u32::from_be_bytes([hvcc[2], hvcc[3], hvcc[4], hvcc[5]]).reverse_bits();
    let mut s = format!(
        "hvc1.{space}{}.{compat:X}.{tier}{}",
        hvcc[1] & 0x1f,
        hvcc[12]
    );
    let constraints = &hvcc[6..12];
    let keep = constraints
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |p| p + 1);
    for b in &constraints[..keep] {
        s.push_str(&format!(".{b:X}"));
    }
    s
}

#[test]
fn init_mime_carries_the_hevc_codec_string() {
    let s = source();
    let expected = expected_codec_string(&s.hvcc);
    assert!(
        expected.starts_with("hvc1.1.6.L"),
        "Main profile: {expected}"
    );
    for bodies in [legacy_bodies(s), enhanced_bodies(s)] {
        let mut r = Remuxer::new(RemuxOptions::live());
        let mut mimes = Vec::new();
        let mut media = 0;
        for (ts, body) in &bodies {
            r.push(TagKind::Video, *ts, &Bytes::from(body.clone()))
                .expect("remuxable tag");
            while let Some(e) = r.poll() {
                match e {
                    RemuxEvent::Init(init) => mimes.push(init.mime),
                    RemuxEvent::Media(_) => media += 1,
                    RemuxEvent::Discontinuity { .. } => panic!("no discontinuity expected"),
                }
            }
        }
        r.flush();
        media += std::iter::from_fn(|| r.poll()).count();
        assert_eq!(mimes, vec![format!("video/mp4; codecs=\"{expected}\"")]);
        assert_eq!(media, s.frames.len(), "a fragment per frame");
    }
}
