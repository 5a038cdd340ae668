//! The FLV demuxer is chunking-independent: the same events come out whether the stream is
//! pushed whole, in random pieces or one byte at a time, for synthetic files (random tag kinds,
//! bodies, extended timestamps, unknown tag types to skip) and for a real ffmpeg-made file.
//! Also: corruption is reported where it happened (PreviousTagSize mismatch non-fatal,
//! bad signature fatal, truncation on `finish()`), and bodies are zero-copy slices of the
//! input when it arrives as one buffer.

mod common;

use std::sync::OnceLock;

use bytes::Bytes;
use lockstep_media::flv::tag::{write_file_header, write_tag};
use lockstep_media::flv::{DemuxError, Demuxer, Event, Tag, TagKind};
use proptest::prelude::*;

/// One tag of a synthetic file: `kind` is `None` for an unknown tag type (0x0f).
#[derive(Debug, Clone)]
struct SynthTag {
    kind: Option<TagKind>,
    timestamp: u32,
    body: Vec<u8>,
}

fn synth_tag() -> impl Strategy<Value = SynthTag> {
    let kind = prop_oneof![
        3 => Just(Some(TagKind::Audio)),
        3 => Just(Some(TagKind::Video)),
        1 => Just(Some(TagKind::Script)),
        1 => Just(None),
    ];
    let timestamp = prop_oneof![
        0u32..0x0100_0000,
        // Past 2^24: the TimestampExtended byte carries the upper bits.
        0x00ff_ff00u32..=u32::MAX,
        Just(u32::MAX),
    ];
    (kind, timestamp, prop::collection::vec(any::<u8>(), 0..2000)).prop_map(
        |(kind, timestamp, body)| SynthTag {
            kind,
            timestamp,
            body,
        },
    )
}

/// Writes the file; returns it and the offset of each tag header.
fn write_synth(tags: &[SynthTag]) -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    write_file_header(&mut out, true, true);
    let mut offsets = Vec::new();
    for t in tags {
        offsets.push(out.len() as u64);
        match t.kind {
            Some(kind) => write_tag(&mut out, kind, t.timestamp, &t.body),
            None => {
                // write_tag only knows the three kinds: an unknown type by hand.
                let size = t.body.len() as u32;
                out.push(0x0f);
                out.extend_from_slice(&size.to_be_bytes()[1..]);
                out.extend_from_slice(&t.timestamp.to_be_bytes()[1..]);
                out.push((t.timestamp >> 24) as u8);
                out.extend_from_slice(&[0, 0, 0]);
                out.extend_from_slice(&t.body);
                out.extend_from_slice(&(size + 11).to_be_bytes());
            }
        }
    }
    (out, offsets)
}

/// Polls until the demuxer needs input or fails (a failed demuxer repeats its error forever).
fn drain(d: &mut Demuxer, out: &mut Vec<Result<Event, DemuxError>>) {
    while let Some(e) = d.poll() {
        let fatal = matches!(&e, Err(e) if e.is_fatal());
        out.push(e);
        if fatal {
            return;
        }
    }
}

/// Every event of `data` pushed as one `Bytes`, and what `finish()` said.
fn demux_whole(data: &Bytes) -> (Vec<Result<Event, DemuxError>>, Result<(), DemuxError>) {
    let mut d = Demuxer::new();
    let mut out = Vec::new();
    d.push(data.clone());
    drain(&mut d, &mut out);
    (out, d.finish())
}

/// The same, pushed in pieces of the given sizes (cycled; 0 means an empty push), polling
/// after every push.
fn demux_chunked(
    data: &Bytes,
    sizes: &[usize],
) -> (Vec<Result<Event, DemuxError>>, Result<(), DemuxError>) {
    let mut d = Demuxer::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < data.len() {
        let n = sizes[i % sizes.len()].min(data.len() - pos);
        i += 1;
        d.push(data.slice(pos..pos + n));
        pos += n;
        drain(&mut d, &mut out);
        if matches!(out.last(), Some(Err(e)) if e.is_fatal()) {
            break;
        }
    }
    (out, d.finish())
}

fn tags_of(events: &[Result<Event, DemuxError>]) -> Vec<&Tag> {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(Event::Tag(t)) => Some(t),
            _ => None,
        })
        .collect()
}

/// A 2 s H.264 + AAC FLV made by ffmpeg, once per test binary.
fn real_flv() -> &'static Bytes {
    static FLV: OnceLock<Bytes> = OnceLock::new();
    FLV.get_or_init(|| common::make_av_flv("demux_chunking", &["-g", "30"]))
}

/// Chunk sizes (0 = an empty push), with at least one non-empty size so a cycle of them
/// always gets through the input (an all-zero draw used to loop forever).
fn chunk_sizes(max: usize) -> impl Strategy<Value = Vec<usize>> {
    (prop::collection::vec(0..=max, 0..40), 1..=max.max(1)).prop_map(|(mut v, nonzero)| {
        v.push(nonzero);
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Synthetic files: random chunking gives the very same events as one push, and those
    /// are exactly the tags written (unknown types skipped, 32-bit timestamps intact).
    #[test]
    fn synthetic_chunking_is_invisible(
        tags in prop::collection::vec(synth_tag(), 0..40),
        sizes in prop_oneof![chunk_sizes(1).prop_map(|_| vec![1]), chunk_sizes(64), chunk_sizes(5000)],
    ) {
        let (file, offsets) = write_synth(&tags);
        let file = Bytes::from(file);
        let (whole, whole_end) = demux_whole(&file);
        prop_assert_eq!(&whole_end, &Ok(()));
        prop_assert!(whole.iter().all(|e| e.is_ok()), "errors: {:?}", whole);
        prop_assert!(matches!(whole.first(), Some(Ok(Event::Header(h))) if h.has_audio && h.has_video && h.data_offset == 9));

        let got = tags_of(&whole);
        let expected: Vec<(&SynthTag, u64)> = tags
            .iter()
            .zip(offsets.iter().copied())
            .filter(|(t, _)| t.kind.is_some())
            .collect();
        prop_assert_eq!(got.len(), expected.len());
        for (g, (e, offset)) in got.iter().zip(&expected) {
            prop_assert_eq!(Some(g.kind), e.kind);
            prop_assert_eq!(g.timestamp, e.timestamp);
            prop_assert_eq!(&g.body[..], &e.body[..]);
            prop_assert_eq!(g.offset, *offset);
            prop_assert_eq!(g.stream_id, 0);
            prop_assert!(!g.filtered);
        }

        let (chunked, chunked_end) = demux_chunked(&file, &sizes);
        prop_assert_eq!(chunked_end, whole_end);
        prop_assert_eq!(chunked, whole);
    }

    /// A real ffmpeg file, in random chunkings.
    #[test]
    fn real_file_chunking_is_invisible(sizes in prop_oneof![chunk_sizes(16), chunk_sizes(4096), chunk_sizes(70_000)]) {
        let file = real_flv();
        let (whole, whole_end) = demux_whole(file);
        let (chunked, chunked_end) = demux_chunked(file, &sizes);
        prop_assert_eq!(chunked_end, whole_end);
        prop_assert_eq!(chunked, whole);
    }

    /// A corrupted PreviousTagSize is reported (non-fatal, at its offset, with the right
    /// expected value) and every tag still comes out, whatever the chunking.
    #[test]
    fn bad_previous_tag_size_is_reported_and_skipped(
        tags in prop::collection::vec(synth_tag(), 1..20),
        which in any::<prop::sample::Index>(),
        flip in 1u32..,
        sizes in chunk_sizes(300),
    ) {
        let (mut file, offsets) = write_synth(&tags);
        // PreviousTagSize fields: the one right after the header (9) and one after each tag.
        let mut fields: Vec<(usize, u32)> = vec![(9, 0)];
        for (i, t) in tags.iter().enumerate() {
            let end = offsets.get(i + 1).map_or(file.len(), |&o| o as usize);
            fields.push((end - 4, 11 + t.body.len() as u32));
        }
        let (at, expected) = fields[which.index(fields.len())];
        let found = expected ^ flip;
        file[at..at + 4].copy_from_slice(&found.to_be_bytes());
        let file = Bytes::from(file);

        let clean = {
            let (f, _) = write_synth(&tags);
            tags_of(&demux_whole(&Bytes::from(f)).0).into_iter().cloned().collect::<Vec<_>>()
        };
        for (events, end) in [demux_whole(&file), demux_chunked(&file, &sizes)] {
            prop_assert_eq!(end, Ok(()));
            let errors: Vec<DemuxError> =
                events.iter().filter_map(|e| e.as_ref().err().cloned()).collect();
            prop_assert_eq!(
                &errors,
                &vec![DemuxError::PreviousTagSize { found, expected, offset: at as u64 }]
            );
            prop_assert!(!errors[0].is_fatal());
            let got: Vec<Tag> = tags_of(&events).into_iter().cloned().collect();
            prop_assert_eq!(&got, &clean);
            // The error comes in stream order: after the tags before the bad field, before
            // the tags after it.
            let pos = events.iter().position(|e| e.is_err()).unwrap();
            prop_assert!(tags_of(&events[..pos]).iter().all(|t| t.offset < at as u64));
            prop_assert!(tags_of(&events[pos..]).iter().all(|t| t.offset >= at as u64 + 4));
        }
    }

    /// A wrong signature is fatal: reported once per poll, at byte 0, and nothing follows.
    #[test]
    fn bad_signature_is_fatal(
        tags in prop::collection::vec(synth_tag(), 0..5),
        byte in 0usize..3,
        value in any::<u8>(),
        sizes in chunk_sizes(20),
    ) {
        let (mut file, _) = write_synth(&tags);
        prop_assume!(file[byte] != value);
        file[byte] = value;
        let file = Bytes::from(file);
        for (events, end) in [demux_whole(&file), demux_chunked(&file, &sizes)] {
            let mut found = *b"FLV";
            found[byte] = value;
            let err = DemuxError::Signature { found, offset: 0 };
            prop_assert!(err.is_fatal());
            prop_assert_eq!(&events, &vec![Err(err.clone())]);
            prop_assert_eq!(end, Err(err.clone()));
        }
        // A failed demuxer keeps failing, and ignores further input.
        let mut d = Demuxer::new();
        d.push(file.clone());
        let first = d.poll();
        d.push(real_flv().clone());
        prop_assert_eq!(d.poll(), first);
        prop_assert_eq!(d.buffered(), 0);
    }

    /// A stream cut inside a tag (header or body): every earlier tag comes out and `finish()`
    /// reports Truncated at the cut tag's offset; cut on a tag boundary, it is complete.
    #[test]
    fn truncation_is_reported_at_the_tag(
        tags in prop::collection::vec(synth_tag(), 1..20),
        which in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        sizes in chunk_sizes(300),
    ) {
        let (file, offsets) = write_synth(&tags);
        let i = which.index(tags.len());
        let start = offsets[i] as usize;
        let end = offsets.get(i + 1).map_or(file.len(), |&o| o as usize) - 4;
        // Cut somewhere in [start, end): header or body of tag i.
        let len = start + cut.index(end - start);
        let data = Bytes::copy_from_slice(&file[..len]);
        for (events, finish) in [demux_whole(&data), demux_chunked(&data, &sizes)] {
            prop_assert!(events.iter().all(|e| e.is_ok()));
            let n_before = tags[..i].iter().filter(|t| t.kind.is_some()).count();
            prop_assert_eq!(tags_of(&events).len(), n_before);
            if len == start {
                prop_assert_eq!(finish, Ok(()));
            } else {
                match finish {
                    Err(DemuxError::Truncated { offset, .. }) => prop_assert_eq!(offset, start as u64),
                    other => prop_assert!(false, "finish() = {:?}", other),
                }
            }
        }
        // Cut inside the 4-byte PreviousTagSize after tag i.
        let data = Bytes::copy_from_slice(&file[..end + 1]);
        let (_, finish) = demux_whole(&data);
        prop_assert_eq!(finish, Err(DemuxError::Truncated { what: "a PreviousTagSize", offset: end as u64 }));
    }

    /// One push of the whole file: every non-empty body points into that very buffer.
    #[test]
    fn bodies_are_zero_copy(tags in prop::collection::vec(synth_tag(), 0..30)) {
        let (file, _) = write_synth(&tags);
        let file = Bytes::from(file);
        check_zero_copy(&file)?;
    }
}

fn check_zero_copy(file: &Bytes) -> Result<(), TestCaseError> {
    let range = file.as_ptr_range();
    let (events, _) = demux_whole(file);
    for t in tags_of(&events) {
        let body = t.body.as_ptr_range();
        prop_assert!(
            range.start <= body.start && body.end <= range.end,
            "tag at {} was copied",
            t.offset
        );
        if !t.body.is_empty() {
            // And it is the right place in the buffer: the body follows its 11-byte header.
            prop_assert_eq!(
                body.start as usize - range.start as usize,
                t.offset as usize + 11
            );
        }
    }
    Ok(())
}

#[test]
fn real_file_is_zero_copy_and_complete() {
    let file = real_flv();
    check_zero_copy(file).unwrap();
    let (events, end) = demux_whole(file);
    assert_eq!(end, Ok(()));
    assert!(events.iter().all(|e| e.is_ok()));
    assert!(events
        .iter()
        .any(|e| matches!(e, Ok(Event::Metadata(m)) if m.width == Some(320.0))));
    let tags = tags_of(&events);
    assert!(tags.iter().filter(|t| t.kind == TagKind::Video).count() >= 60);
    assert!(tags.iter().filter(|t| t.kind == TagKind::Audio).count() >= 80);
}

#[test]
fn one_byte_at_a_time_real_file() {
    let file = real_flv();
    assert_eq!(demux_chunked(file, &[1]), demux_whole(file));
}
