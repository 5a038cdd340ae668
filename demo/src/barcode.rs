//! The wall-clock barcode, version 1 ([docs/BARCODE.md](../../docs/BARCODE.md)).
//!
//! [`encode`] burns the Unix time in milliseconds at which a frame is handed to the encoder
//! into the top-left corner of an I420 frame: a mid-grey quiet zone holding two rows of 22
//! blocks (two reference blocks, then 20 bits each) carrying `(t mod 2^32) << 8 | crc8`.
//! [`decode`] reads it back from a luma plane, as a viewer does from the frame it displays;
//! [`full_time`] turns the 32-bit value back into a full Unix time near the reader's clock.

use crate::picture::I420;

/// Luma of a 1 bit and of the white reference blocks.
pub const WHITE: u8 = 235;
/// Luma of a 0 bit and of the black reference blocks.
pub const BLACK: u8 = 16;
/// Luma of the quiet zone.
pub const GREY: u8 = 128;
/// Blocks per row (2 references + 20 bits).
pub const BLOCKS: usize = 22;
/// Reject a frame whose white and black references differ by less than this.
pub const MIN_CONTRAST: u32 = 64;

/// Why a frame carries no readable barcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is smaller than the barcode (W ≥ 23·S, H ≥ 3·S, S ≥ 2) or the plane is short.
    #[error("frame too small for the barcode")]
    TooSmall,
    /// The reference blocks differ by less than [`MIN_CONTRAST`].
    #[error("reference blocks lack contrast (white {white}, black {black})")]
    LowContrast { white: u32, black: u32 },
    /// The CRC does not match the time bits.
    #[error("CRC mismatch")]
    Crc,
}

/// Block size S for a frame `height` pixels high: `floor(H / 15)` rounded down to even.
pub fn block_size(height: usize) -> usize {
    (height / 15) & !1
}

/// Whether a W×H frame can carry the barcode.
pub fn fits(width: usize, height: usize) -> bool {
    let s = block_size(height);
    s >= 2 && width >= 23 * s && height >= 3 * s
}

/// CRC-8, polynomial 0x07, initial value 0, no reflection, no final XOR.
pub fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The 40-bit word for Unix time `t_ms`: `(t mod 2^32) << 8 | crc8(t mod 2^32)`.
pub fn word(t_ms: u64) -> u64 {
    let t32 = t_ms as u32;
    (u64::from(t32) << 8) | u64::from(crc8(&t32.to_be_bytes()))
}

/// Left and top of block `i` in row `row`.
fn block_origin(s: usize, row: usize, i: usize) -> (usize, usize) {
    (s / 2 + i * s, s / 2 + row * s)
}

/// Whether block `i` of row `row` is white, for `word`.
fn block_is_white(word: u64, row: usize, i: usize) -> bool {
    match (row, i) {
        (0, 0) | (1, 1) => true,
        (0, 1) | (1, 0) => false,
        _ => {
            let bit = 39 - (row * 20 + (i - 2));
            (word >> bit) & 1 == 1
        }
    }
}

/// Draws the barcode for Unix time `t_ms` into `frame`.
///
/// # Panics
/// If the frame cannot carry the barcode (see [`fits`]); the caller checks the size once.
pub fn encode(frame: &mut I420, t_ms: u64) {
    let (w, h) = (frame.width(), frame.height());
    assert!(fits(w, h), "{w}x{h} is too small for the barcode");
    let s = block_size(h);
    let (zone_w, zone_h) = (23 * s, 3 * s);
    let cw = frame.chroma_width();
    let (y, u, v) = frame.planes_mut();
    for row in y.chunks_exact_mut(w).take(zone_h) {
        row[..zone_w].fill(GREY);
    }
    // S is even, so the quiet zone covers whole chroma samples.
    for plane in [u, v] {
        for row in plane.chunks_exact_mut(cw).take(zone_h / 2) {
            row[..zone_w / 2].fill(128);
        }
    }
    let word = word(t_ms);
    for r in 0..2 {
        for i in 0..BLOCKS {
            let level = if block_is_white(word, r, i) {
                WHITE
            } else {
                BLACK
            };
            let (x0, y0) = block_origin(s, r, i);
            for row in y.chunks_exact_mut(w).skip(y0).take(s) {
                row[x0..x0 + s].fill(level);
            }
        }
    }
}

/// Mean luma over the central S/2 × S/2 square of block `i` in row `row`.
fn sample(luma: &[u8], stride: usize, s: usize, row: usize, i: usize) -> u32 {
    let (x0, y0) = block_origin(s, row, i);
    let half = s / 2;
    let (cx, cy) = (x0 + (s - half) / 2, y0 + (s - half) / 2);
    let mut sum = 0u32;
    for y in cy..cy + half {
        sum += luma[y * stride + cx..y * stride + cx + half]
            .iter()
            .map(|&p| u32::from(p))
            .sum::<u32>();
    }
    sum / (half * half) as u32
}

/// Reads the barcode from a `width`×`height` luma plane (rows `width` bytes apart) and
/// returns `t mod 2^32`, the Unix time in milliseconds modulo 2^32.
pub fn decode(luma: &[u8], width: usize, height: usize) -> Result<u32, DecodeError> {
    if !fits(width, height) || luma.len() < width * height {
        return Err(DecodeError::TooSmall);
    }
    let s = block_size(height);
    let at = |row, i| sample(luma, width, s, row, i);
    let white = (at(0, 0) + at(1, 1)) / 2;
    let black = (at(0, 1) + at(1, 0)) / 2;
    if white < black + MIN_CONTRAST {
        return Err(DecodeError::LowContrast { white, black });
    }
    let threshold = (white + black) / 2;
    let mut word = 0u64;
    for row in 0..2 {
        for i in 2..BLOCKS {
            word = (word << 1) | u64::from(at(row, i) > threshold);
        }
    }
    let t32 = (word >> 8) as u32;
    if crc8(&t32.to_be_bytes()) != word as u8 {
        return Err(DecodeError::Crc);
    }
    Ok(t32)
}

/// The full Unix time (ms) congruent to `t32` modulo 2^32 nearest to `now_ms`.
pub fn full_time(t32: u32, now_ms: u64) -> u64 {
    const M: i64 = 1 << 32;
    let now = now_ms as i64;
    let delta = (i64::from(t32) - now).rem_euclid(M); // 0..M: how far ahead t32 is
    let ahead = now + delta;
    let behind = ahead - M;
    let t = if delta <= M / 2 { ahead } else { behind };
    t.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::picture::Picture;
    use std::io::Write;
    use std::process::{Command, Stdio};

    const NOW: u64 = 1_764_510_000_123; // late 2025

    #[test]
    fn crc8_check_value() {
        // CRC-8 (poly 0x07, init 0, no reflection, no xorout): check value of "123456789".
        assert_eq!(crc8(b"123456789"), 0xF4);
        assert_eq!(crc8(&[0, 0, 0, 0]), 0);
    }

    #[test]
    fn block_sizes() {
        assert_eq!(block_size(360), 24);
        assert_eq!(block_size(720), 48);
        assert_eq!(block_size(1080), 72);
        assert_eq!(block_size(480), 32);
        assert!(fits(640, 360));
        assert!(fits(1280, 720));
        assert!(!fits(640, 480)); // 4:3 is too narrow: 23·32 > 640
        assert!(!fits(64, 20));
    }

    #[test]
    fn round_trip_on_blank_and_busy_frames() {
        for (w, h) in [(640, 360), (1280, 720), (1920, 1080), (46, 30)] {
            let mut picture = Picture::new(w, h, 30);
            for (n, t) in [0, 1, NOW, NOW + 0xFFFF_FFFF, u64::MAX >> 1]
                .into_iter()
                .enumerate()
            {
                let mut frame = I420::new(w, h);
                encode(&mut frame, t);
                assert_eq!(decode(frame.y(), w, h), Ok(t as u32), "{w}x{h} t={t}");
                picture.render(&mut frame, n as u64, 0);
                encode(&mut frame, t);
                assert_eq!(decode(frame.y(), w, h), Ok(t as u32), "{w}x{h} t={t}");
            }
        }
    }

    #[test]
    fn quiet_zone_chroma_is_neutral() {
        let mut frame = I420::new(640, 360);
        Picture::new(640, 360, 30).render(&mut frame, 7, 0);
        encode(&mut frame, NOW);
        let cw = frame.chroma_width();
        let (_, u, v) = frame.planes_mut();
        for y in 0..36 {
            assert!(u[y * cw..y * cw + 276].iter().all(|&c| c == 128));
            assert!(v[y * cw..y * cw + 276].iter().all(|&c| c == 128));
        }
    }

    #[test]
    fn full_time_picks_the_nearest() {
        let t = NOW - 250;
        assert_eq!(full_time(t as u32, NOW), t);
        assert_eq!(full_time((NOW + 900) as u32, NOW), NOW + 900);
        // Across a 2^32 wrap in either direction.
        let wrap = 7u64 << 32;
        assert_eq!(full_time((wrap - 10) as u32, wrap + 5), wrap - 10);
        assert_eq!(full_time((wrap + 10) as u32, wrap - 5), wrap + 10);
    }

    #[test]
    fn corrupted_bits_fail_the_crc() {
        let (w, h) = (640, 360);
        let s = block_size(h);
        for bit_block in [2, 9, 21] {
            for row in 0..2 {
                let mut frame = I420::new(w, h);
                encode(&mut frame, NOW);
                // Invert one data block.
                let (x0, y0) = block_origin(s, row, bit_block);
                let (y, _, _) = frame.planes_mut();
                let level = y[(y0 + s / 2) * w + x0 + s / 2];
                let flipped = if level == WHITE { BLACK } else { WHITE };
                for line in y.chunks_exact_mut(w).skip(y0).take(s) {
                    line[x0..x0 + s].fill(flipped);
                }
                assert_eq!(decode(frame.y(), w, h), Err(DecodeError::Crc));
            }
        }
    }

    #[test]
    fn frames_without_a_barcode_are_rejected() {
        let (w, h) = (640, 360);
        let frame = I420::new(w, h); // uniform
        assert!(matches!(
            decode(frame.y(), w, h),
            Err(DecodeError::LowContrast { .. })
        ));
        assert_eq!(decode(&frame.y()[..100], w, h), Err(DecodeError::TooSmall));
        assert_eq!(decode(frame.y(), 100, 20), Err(DecodeError::TooSmall));
    }

    /// Encodes frames with real ffmpeg (libx264 ultrafast at 500 kbit/s), decodes them back
    /// to raw I420 and reads the same times.
    #[test]
    fn survives_x264_at_500_kbits() {
        let (w, h, n) = (640usize, 360usize, 30u64);
        let dir = std::env::temp_dir().join(format!("lockstep-barcode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let h264 = dir.join("test.h264");
        let times: Vec<u64> = (0..n).map(|i| NOW + i * 33 + i * i * 7).collect();

        let mut enc = Command::new("ffmpeg")
            .args([
                "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
            ])
            .args([
                "-video_size",
                &format!("{w}x{h}"),
                "-framerate",
                "30",
                "-i",
                "pipe:0",
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args([
                "-b:v", "500k", "-maxrate", "500k", "-bufsize", "500k", "-g", "30",
            ])
            .arg(&h264)
            .stdin(Stdio::piped())
            .spawn()
            .expect("running ffmpeg (tests/setup.sh installs it)");
        {
            let mut stdin = enc.stdin.take().unwrap();
            let mut picture = Picture::new(w, h, 30);
            let mut frame = I420::new(w, h);
            for (i, &t) in times.iter().enumerate() {
                picture.render(&mut frame, i as u64, t);
                encode(&mut frame, t);
                stdin.write_all(frame.data()).unwrap();
            }
        }
        assert!(enc.wait().unwrap().success(), "ffmpeg encode failed");

        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(&h264)
            .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"])
            .output()
            .expect("running ffmpeg");
        std::fs::remove_dir_all(&dir).ok();
        assert!(out.status.success(), "ffmpeg decode failed");
        let size = w * h * 3 / 2;
        assert_eq!(out.stdout.len(), size * n as usize, "frame count");
        for (i, (raw, &t)) in out.stdout.chunks_exact(size).zip(&times).enumerate() {
            let t32 = decode(&raw[..w * h], w, h).unwrap_or_else(|e| panic!("frame {i}: {e}"));
            assert_eq!(full_time(t32, NOW), t, "frame {i}");
        }
    }
}
