//! The Opus audio track: the audio ffmpeg writes Ogg Opus (RFC 7845) to its stdout (ffmpeg
//! 5.1 cannot put Opus in FLV), and this turns its packets into Enhanced RTMP v2 audio tag
//! bodies (ExAudioTagHeader: SoundFormat 9 | AudioPacketType, then the FourCC `Opus`) with
//! their times on the common timeline of [`crate::retime`]:
//!
//! - packet 0, the `OpusHead` ID header → the sequence start, `[0x90] "Opus"` + the whole
//!   `OpusHead`, at 0 ms, before any audio;
//! - packet 1, `OpusTags` → nothing;
//! - each audio packet → a coded frame, `[0x91] "Opus"` + the packet, at the stream time of
//!   its first input sample.
//!
//! Times: granule positions count 48 kHz samples of decoder output, which starts with the
//! encoder's `pre_skip` samples of delay (`OpusHead` bytes 10..12, 120 for libopus in
//! low-delay mode). A page's granule position is the end of the last packet completed on it;
//! ffmpeg is run with one packet per page, so a packet's start is the previous page's
//! granule (0 for the first audio page) and its `n` samples are the difference. Its decoded
//! output, played from `start − pre_skip`, lines up with the tone: the timestamp is
//! `round((start − pre_skip) · 1000 / 48000)` ms. Packets that start before `pre_skip`
//! (the priming, before stream time 0) are dropped, as the AAC priming packet is. Should a
//! page ever hold several packets, the ones before its last advance by the duration their
//! TOC byte gives (RFC 6716 §3.1). Header and TOC are read by the media crate's
//! `codec::opus`.

use bytes::{BufMut, Bytes, BytesMut};
use lockstep_media::codec::opus::{self, OpusHead};
use lockstep_media::codec::CodecError;

/// The Enhanced RTMP FourCC of Opus.
pub const FOURCC: [u8; 4] = *b"Opus";
/// First byte of a sequence start: SoundFormat 9 (ExHeader), AudioPacketType 0.
const SEQUENCE_START: u8 = 0x90;
/// First byte of a coded frame: SoundFormat 9 (ExHeader), AudioPacketType 1.
const CODED_FRAME: u8 = 0x91;
/// Opus granule positions count samples at 48 kHz, whatever the input rate.
pub const GRANULE_RATE: u64 = 48_000;

/// Why the Ogg Opus stream cannot be turned into tags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OggOpusError {
    #[error("the first packet is not an OpusHead ID header")]
    NoHead,
    #[error("OpusHead version {0}: only major version 0 is understood")]
    Version(u8),
    #[error("the second packet is not an OpusTags comment header")]
    NoTags,
    #[error("audio packet {0}: not a valid Opus packet")]
    BadPacket(u64),
}

/// An FLV audio tag to publish: its time in ms on the common timeline and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusTag {
    pub timestamp: u32,
    pub body: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Head,
    Tags,
    Audio,
}

/// Ogg Opus packets in, FLV audio tags out. Pure: the caller reads the Ogg pages.
#[derive(Debug, Clone)]
pub struct OggOpus {
    expect: Expect,
    pre_skip: u64,
    /// End of the last audio packet, in granule units (48 kHz samples, pre-skip included).
    end: u64,
    /// Audio packets seen.
    packets: u64,
}

impl Default for OggOpus {
    fn default() -> Self {
        Self::new()
    }
}

impl OggOpus {
    pub fn new() -> Self {
        OggOpus {
            expect: Expect::Head,
            pre_skip: 0,
            end: 0,
            packets: 0,
        }
    }

    /// The `OpusHead` pre-skip, in 48 kHz samples (0 until the header is seen).
    pub fn pre_skip(&self) -> u64 {
        self.pre_skip
    }

    /// Takes the next Ogg packet of the stream, with the granule position of the page it
    /// comes from and whether it is the last packet completed on that page. Returns the tag
    /// to publish, if any (none for `OpusTags` and the priming).
    pub fn packet(
        &mut self,
        data: &[u8],
        granule: u64,
        last_in_page: bool,
    ) -> Result<Option<OpusTag>, OggOpusError> {
        match self.expect {
            Expect::Head => {
                let head = OpusHead::parse(Bytes::copy_from_slice(data)).map_err(|e| match e {
                    CodecError::Unsupported { .. } => OggOpusError::Version(data[8]),
                    _ => OggOpusError::NoHead,
                })?;
                self.pre_skip = u64::from(head.pre_skip);
                self.expect = Expect::Tags;
                Ok(Some(OpusTag {
                    timestamp: 0,
                    body: tag_body(SEQUENCE_START, data),
                }))
            }
            Expect::Tags => {
                if !data.starts_with(b"OpusTags") {
                    return Err(OggOpusError::NoTags);
                }
                self.expect = Expect::Audio;
                Ok(None)
            }
            Expect::Audio => {
                let index = self.packets;
                self.packets += 1;
                let start = self.end;
                // -1 (all ones) would mean no packet ends on the page; one does here.
                self.end = if last_in_page && granule != u64::MAX {
                    granule.max(start)
                } else {
                    let n = opus::packet_samples(data).ok_or(OggOpusError::BadPacket(index))?;
                    start + u64::from(n)
                };
                if data.is_empty() || start < self.pre_skip {
                    return Ok(None);
                }
                let ms = ((start - self.pre_skip) * 1000 + GRANULE_RATE / 2) / GRANULE_RATE;
                Ok(Some(OpusTag {
                    timestamp: u32::try_from(ms).unwrap_or(u32::MAX),
                    body: tag_body(CODED_FRAME, data),
                }))
            }
        }
    }
}

/// `first` and the FourCC, then `payload`.
fn tag_body(first: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + payload.len());
    b.put_u8(first);
    b.put_slice(&FOURCC);
    b.put_slice(payload);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_media::flv::audio::{AudioCodec, AudioPacket, AudioTagHeader};

    /// An OpusHead as libopus writes it: version 1, stereo, `pre_skip`, 48 kHz, gain 0,
    /// mapping family 0.
    fn head(pre_skip: u16) -> Vec<u8> {
        let mut h = b"OpusHead".to_vec();
        h.push(1);
        h.push(2);
        h.extend_from_slice(&pre_skip.to_le_bytes());
        h.extend_from_slice(&48_000u32.to_le_bytes());
        h.extend_from_slice(&[0, 0, 0]);
        h
    }

    /// A CELT fullband 10 ms stereo packet (TOC 0xF4, as libopus low-delay writes).
    const PACKET: &[u8] = &[0xF4, 0xB5, 0x34, 0x87];

    /// Head, tags, then `count` 10 ms packets one per page, as ffmpeg writes them; returns
    /// the tags.
    fn run(pre_skip: u16, count: u64) -> Vec<OpusTag> {
        let mut o = OggOpus::new();
        let mut tags = Vec::new();
        tags.extend(o.packet(&head(pre_skip), 0, true).unwrap());
        assert_eq!(o.packet(b"OpusTags\x0d\0\0\0Lavf", 0, true).unwrap(), None);
        for j in 0..count {
            tags.extend(o.packet(PACKET, (j + 1) * 480, true).unwrap());
        }
        tags
    }

    #[test]
    fn sequence_start_then_coded_frames() {
        let tags = run(120, 3);
        let h = AudioTagHeader::parse(&tags[0].body).unwrap();
        assert_eq!(
            (h.codec, h.packet, tags[0].timestamp),
            (AudioCodec::Opus, AudioPacket::SequenceStart, 0)
        );
        assert_eq!(
            &tags[0].body[..],
            &[&[0x90][..], b"Opus", &head(120)].concat()[..]
        );
        for t in &tags[1..] {
            let h = AudioTagHeader::parse(&t.body).unwrap();
            assert_eq!((h.codec, h.packet), (AudioCodec::Opus, AudioPacket::Coded));
            assert_eq!(&t.body[h.header_len..], PACKET);
        }
        // Packet 0 (samples 0..480 of output) starts in the priming and is dropped; packet 1
        // starts at output 480 = input 480 − 120 = 7.5 ms.
        let times: Vec<u32> = tags[1..].iter().map(|t| t.timestamp).collect();
        assert_eq!(times, vec![8, 18]);
    }

    #[test]
    fn priming_drop_follows_the_pre_skip() {
        // No pre-skip: nothing dropped, 0, 10, 20 ms.
        let times: Vec<u32> = run(0, 3)[1..].iter().map(|t| t.timestamp).collect();
        assert_eq!(times, vec![0, 10, 20]);
        // libopus's default (non low-delay) 312: packet 1 at (480 − 312) / 48 = 3.5 ms.
        let times: Vec<u32> = run(312, 3)[1..].iter().map(|t| t.timestamp).collect();
        assert_eq!(times, vec![4, 14]);
        // A pre-skip over one packet drops two.
        let times: Vec<u32> = run(600, 4)[1..].iter().map(|t| t.timestamp).collect();
        assert_eq!(times, vec![8, 18]);
    }

    #[test]
    fn a_long_run_does_not_drift() {
        // 10 hours of 10 ms packets, one per page: packet j starts at output 480 j, input
        // 480 j − 120, i.e. exactly 10 j − 2.5 ms (rounded up).
        let mut o = OggOpus::new();
        o.packet(&head(120), 0, true).unwrap();
        o.packet(b"OpusTags", 0, true).unwrap();
        assert_eq!(o.packet(PACKET, 480, true).unwrap(), None, "priming");
        for j in 1..10 * 3600 * 100u64 {
            let t = o.packet(PACKET, (j + 1) * 480, true).unwrap().unwrap();
            assert_eq!(u64::from(t.timestamp), 10 * j - 2, "packet {j}");
        }
    }

    #[test]
    fn granules_not_timestamps_decide() {
        // Packets of 20 ms, then a gap of 10 ms in the granules (a discontinuity) and an
        // end-trimmed last packet: each tag starts where the previous page ended.
        let mut o = OggOpus::new();
        o.packet(&head(0), 0, true).unwrap();
        o.packet(b"OpusTags", 0, true).unwrap();
        let twenty = [0xFC, 0x01];
        let mut times = Vec::new();
        for g in [960, 1920, 3360, 3500] {
            times.push(o.packet(&twenty, g, true).unwrap().unwrap().timestamp);
        }
        assert_eq!(times, vec![0, 20, 40, 70]);
    }

    #[test]
    fn several_packets_in_a_page() {
        // Three 10 ms packets on one page with granule 1440: the first two advance by their
        // TOC duration, the last ends at the granule.
        let mut o = OggOpus::new();
        o.packet(&head(0), 0, true).unwrap();
        o.packet(b"OpusTags", 0, true).unwrap();
        let a = o.packet(PACKET, 1440, false).unwrap().unwrap();
        let b = o.packet(PACKET, 1440, false).unwrap().unwrap();
        let c = o.packet(PACKET, 1440, true).unwrap().unwrap();
        let d = o.packet(PACKET, 1920, true).unwrap().unwrap();
        assert_eq!(
            [a.timestamp, b.timestamp, c.timestamp, d.timestamp],
            [0, 10, 20, 30]
        );
    }

    #[test]
    fn bad_streams() {
        assert_eq!(
            OggOpus::new().packet(b"\x7fFLAC", 0, true),
            Err(OggOpusError::NoHead)
        );
        assert_eq!(
            OggOpus::new().packet(&head(120)[..12], 0, true),
            Err(OggOpusError::NoHead)
        );
        let mut v = head(120);
        v[8] = 0x10;
        assert_eq!(
            OggOpus::new().packet(&v, 0, true),
            Err(OggOpusError::Version(0x10))
        );
        let mut o = OggOpus::new();
        o.packet(&head(120), 0, true).unwrap();
        assert_eq!(o.packet(b"OpusHead", 0, true), Err(OggOpusError::NoTags));
        let mut o = OggOpus::new();
        o.packet(&head(0), 0, true).unwrap();
        o.packet(b"OpusTags", 0, true).unwrap();
        assert_eq!(o.packet(&[], 0, false), Err(OggOpusError::BadPacket(0)));
        // An empty packet that ends a page is skipped, not published.
        assert_eq!(o.packet(&[], 480, true), Ok(None));
    }
}
