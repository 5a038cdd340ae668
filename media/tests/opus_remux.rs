//! Opus in Enhanced RTMP FLV (FourCC `Opus`): packets encoded by ffmpeg's libopus (read from
//! an Ogg file), put into FLV tags as a live encoder sends them, remuxed by `flv_to_mp4`, and
//! checked with ffprobe and ffmpeg: an Opus track at 48 kHz with every packet, each lasting
//! what its TOC says, and an MP4 that decodes without an error.

mod common;

use std::io::Cursor;

use common::{decode_errors, ffmpeg, packets, scratch_dir, streams};
use lockstep_media::codec::opus::{packet_samples, OpusHead};
use lockstep_media::flv::tag::{write_file_header, write_tag};
use lockstep_media::flv::TagKind;
use lockstep_media::remux::flv_to_mp4;

/// (timestamp ms, packet) of every Opus packet in `ogg`, and the OpusHead. Times are the
/// stream time of each packet's first sample (the granule position minus the packet's
/// samples and the pre-skip), as the test source stamps them.
fn opus_packets(ogg: Vec<u8>) -> (Vec<u8>, Vec<(u32, Vec<u8>)>) {
    let mut reader = ogg::PacketReader::new(Cursor::new(ogg));
    let head = reader.read_packet_expected().expect("OpusHead").data;
    let pre_skip = u64::from(OpusHead::parse(head.clone().into()).unwrap().pre_skip);
    let _tags = reader.read_packet_expected().expect("OpusTags");
    let (mut out, mut end) = (Vec::new(), 0u64);
    while let Some(p) = reader.read_packet().expect("ogg") {
        let n = u64::from(packet_samples(&p.data).expect("valid TOC"));
        end += n;
        if end >= n + pre_skip {
            out.push((((end - n - pre_skip) / 48) as u32, p.data));
        }
    }
    (head, out)
}

fn opus_flv(head: &[u8], packets: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut flv = Vec::new();
    write_file_header(&mut flv, true, false);
    let mut body = vec![0x90];
    body.extend_from_slice(b"Opus");
    body.extend_from_slice(head);
    write_tag(&mut flv, TagKind::Audio, 0, &body);
    for (ts, p) in packets {
        let mut body = vec![0x91];
        body.extend_from_slice(b"Opus");
        body.extend_from_slice(p);
        write_tag(&mut flv, TagKind::Audio, *ts, &body);
    }
    flv
}

fn check(name: &str, frame_ms: &str, channels: &str) {
    let dir = scratch_dir(name);
    let ogg = dir.join("src.ogg");
    let tone = "sine=frequency=440:sample_rate=48000";
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        tone,
        "-t",
        "2",
        "-ac",
        channels,
        "-c:a",
        "libopus",
        "-application",
        "lowdelay",
        "-frame_duration",
        frame_ms,
        ogg.to_str().unwrap(),
    ]);
    let (head, opus) = opus_packets(std::fs::read(&ogg).unwrap());
    assert!(opus.len() > 50, "{} packets", opus.len());
    let flv = opus_flv(&head, &opus);
    let result = flv_to_mp4(flv.into()).expect("remux");
    assert!(result.skipped.is_empty(), "skipped: {:?}", result.skipped);
    let mp4 = dir.join("out.mp4");
    std::fs::write(&mp4, &result.mp4).unwrap();

    let s = streams(&mp4);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].codec_name, "opus");
    assert_eq!(s[0].sample_rate, "48000");
    assert_eq!(s[0].channels, channels);
    let got = packets(&mp4);
    assert_eq!(got.len(), opus.len(), "every packet in the MP4");
    let frame: f64 = frame_ms.parse().unwrap();
    for (i, w) in got.windows(2).enumerate() {
        let step = w[1].dts_ms - w[0].dts_ms;
        assert!((step - frame).abs() < 0.01, "packet {i}: step {step} ms");
        assert_eq!(w[0].size, opus[i].1.len(), "packet {i} size");
    }
    let errors = decode_errors(&mp4);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");
}

#[test]
fn stereo_10ms_packets() {
    check("opus-stereo-10", "10", "2");
}

#[test]
fn mono_20ms_packets() {
    check("opus-mono-20", "20", "1");
}
