//! Puts the two encoders' FLV timestamps on one timeline: stream time `t` ms is the moment
//! `t` ms after the source's start instant, for video and audio alike.
//!
//! - **Video.** ffmpeg numbers raw frames by count (frame `i` at `i / fps`), but the pacer
//!   drops a slot when the encoder is busy (the first frame's start-up, a stall), so frame `i`
//!   may belong to slot `k > i`. Each written frame's slot is known; a video tag's time is
//!   moved by `k − i` frame periods, so drops leave gaps instead of pulling the picture behind
//!   the sound. (Exact without B-frames; with them the shift follows the frame in decode
//!   order, which is within a frame or two.)
//! - **Audio, AAC.** ffmpeg's AAC encoder primes with 1024 samples and its FLV muxer starts
//!   the stream at 0, so the first packet is priming and sample 0 is at 1024 / 48 kHz =
//!   21.3 ms. Audio times are moved back by that and the priming packet is dropped.
//! - **Audio, Opus.** The tags are made by [`crate::ogg_opus`] from the Ogg granule
//!   positions, already on this timeline (the `OpusHead` pre-skip taken off, the priming
//!   dropped there): their times are kept.
//!
//! Sequence headers (codec configs) keep their time.

use lockstep_media::flv::audio::{AudioPacket, AudioTagHeader};
use lockstep_media::flv::video::{VideoPacket, VideoTagHeader};

use crate::encoder::AudioCodec;
use crate::tone::SAMPLE_RATE;

/// Samples of priming (encoder delay) that ffmpeg's native AAC encoder puts first.
pub const AAC_PRIMING_SAMPLES: u32 = 1024;

/// The timestamp mapper. Pure arithmetic; the caller supplies each frame's slot.
#[derive(Debug, Clone)]
pub struct Retimer {
    fps: u32,
    audio: AudioCodec,
    /// Video frames (not sequence headers) seen so far.
    frames: u64,
    /// The last shift applied, ms (used when a slot is not known).
    video_shift_ms: i64,
}

impl Retimer {
    /// A mapper for `fps` video and an `audio` track.
    pub fn new(fps: u32, audio: AudioCodec) -> Self {
        Retimer {
            fps: fps.max(1),
            audio,
            frames: 0,
            video_shift_ms: 0,
        }
    }

    fn frame_ms(&self, n: u64) -> i64 {
        // Nearest millisecond, as ffmpeg rounds when it writes FLV times.
        ((n as u128 * 1000 + u128::from(self.fps) / 2) / u128::from(self.fps)) as i64
    }

    /// The stream time of a video tag with ffmpeg time `ts`. `slot` is the pacer slot of the
    /// next frame in encoder order (`None` for a sequence header, or when it is not known:
    /// then the previous shift is kept).
    pub fn video(&mut self, ts: u32, is_frame: bool, slot: Option<u64>) -> u32 {
        if !is_frame {
            return ts;
        }
        let i = self.frames;
        self.frames += 1;
        if let Some(k) = slot {
            self.video_shift_ms = self.frame_ms(k) - self.frame_ms(i);
        }
        (i64::from(ts) + self.video_shift_ms).clamp(0, i64::from(u32::MAX)) as u32
    }

    /// The stream time of an audio tag with encoder time `ts`, `None` for the AAC priming
    /// packet (to be dropped). Sequence headers (`is_frame` false) and Opus tags keep their
    /// time.
    pub fn audio(&self, ts: u32, is_frame: bool) -> Option<u32> {
        if !is_frame || self.audio == AudioCodec::Opus {
            return Some(ts);
        }
        let priming_ms = f64::from(AAC_PRIMING_SAMPLES) * 1000.0 / f64::from(SAMPLE_RATE);
        let t = (f64::from(ts) - priming_ms).round();
        (t >= 0.0).then_some(t as u32)
    }
}

/// Whether an FLV video tag body carries coded pictures (not a sequence header or end).
pub fn is_video_frame(body: &[u8]) -> bool {
    VideoTagHeader::parse(body)
        .is_ok_and(|h| matches!(h.packet, VideoPacket::CodedFrames { .. } | VideoPacket::Raw))
}

/// Whether an FLV audio tag body carries a coded frame (not a sequence header: AAC's
/// AudioSpecificConfig, Opus's `OpusHead`).
pub fn is_audio_frame(body: &[u8]) -> bool {
    AudioTagHeader::parse(body).is_ok_and(|h| h.packet == AudioPacket::Coded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_follows_the_slots() {
        let mut r = Retimer::new(30, AudioCodec::Aac);
        assert_eq!(r.video(0, false, None), 0, "sequence header kept");
        assert_eq!(r.video(0, true, Some(0)), 0);
        // Slots 1 and 2 were dropped: ffmpeg's frame 1 (33 ms) is slot 3 (100 ms).
        assert_eq!(r.video(33, true, Some(3)), 100);
        assert_eq!(r.video(67, true, Some(4)), 133);
        // Unknown slot: the same shift.
        assert_eq!(r.video(100, true, None), 166);
        assert_eq!(r.video(133, true, Some(6)), 200);
    }

    #[test]
    fn video_without_drops_is_unchanged() {
        let mut r = Retimer::new(30, AudioCodec::Aac);
        for i in 0..1000u64 {
            let ts = ((i * 1000 + 15) / 30) as u32;
            assert_eq!(r.video(ts, true, Some(i)), ts);
        }
    }

    #[test]
    fn audio_loses_the_priming() {
        let r = Retimer::new(30, AudioCodec::Aac);
        assert_eq!(r.audio(0, false), Some(0), "sequence header kept");
        assert_eq!(r.audio(0, true), None, "priming dropped");
        // ffmpeg: packet j at round((j + 1) · 21.333) ms; sample j·1024 is at j · 21.333.
        for j in 0..500u32 {
            let ffmpeg = ((f64::from(j + 1) * 1024.0 / 48.0).round()) as u32;
            let want = (f64::from(j) * 1024.0 / 48.0).round() as u32;
            let got = r.audio(ffmpeg, true).unwrap();
            assert!(got.abs_diff(want) <= 1, "packet {j}: {got} vs {want}");
        }
    }

    #[test]
    fn frame_kinds() {
        assert!(!is_video_frame(&[0x17, 0, 0, 0, 0]));
        assert!(is_video_frame(&[0x27, 1, 0, 0, 0]));
        assert!(!is_video_frame(&[0x17, 2, 0, 0, 0]));
        assert!(!is_audio_frame(&[0xAF, 0, 0x11, 0x90]));
        assert!(is_audio_frame(&[0xAF, 1, 0x21]));
        assert!(is_audio_frame(&[0x2F, 0xFF]));
        assert!(!is_audio_frame(&[]));
        assert!(!is_audio_frame(b"\x90OpusOpusHead"));
        assert!(is_audio_frame(b"\x91Opus\xf4"));
    }

    #[test]
    fn opus_times_are_kept() {
        let r = Retimer::new(30, AudioCodec::Opus);
        assert_eq!(r.audio(0, false), Some(0), "sequence start kept");
        for ts in [0, 8, 18, 1_000_008] {
            assert_eq!(r.audio(ts, true), Some(ts));
        }
    }
}
