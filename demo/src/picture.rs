//! The test picture: an I420 frame buffer and cheap moving content to draw into it.
//!
//! Each frame is a scrolling diagonal luma gradient over a fixed colour wash, a bouncing box,
//! the frame number and the clock (UTC, to the millisecond) in digits, and a white flash in
//! the top-right corner during the first tenth of every second of stream time, which lines up
//! with the audio beep for checking A/V sync. Everything is row copies and small fills: the
//! background is computed once, so a 720p frame costs well under a millisecond.
//! The barcode ([`crate::barcode`]) is drawn over the top-left corner afterwards.

/// A planar YUV 4:2:0 frame (Y, then U, then V, no padding), as ffmpeg's `yuv420p`.
#[derive(Clone, Debug)]
pub struct I420 {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl I420 {
    /// A mid-grey frame.
    pub fn new(width: usize, height: usize) -> Self {
        let luma = width * height;
        let chroma = width.div_ceil(2) * height.div_ceil(2);
        let data = vec![128; luma + 2 * chroma];
        I420 {
            width,
            height,
            data,
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Width of the U and V planes.
    pub fn chroma_width(&self) -> usize {
        self.width.div_ceil(2)
    }

    /// Height of the U and V planes.
    pub fn chroma_height(&self) -> usize {
        self.height.div_ceil(2)
    }

    /// The whole frame, as written to ffmpeg.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The luma plane.
    pub fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }

    /// The Y, U and V planes.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let luma = self.width * self.height;
        let chroma = self.chroma_width() * self.chroma_height();
        let (y, uv) = self.data.split_at_mut(luma);
        let (u, v) = uv.split_at_mut(chroma);
        (y, u, v)
    }
}

/// Period of the luma ramp, pixels.
const RAMP: usize = 256;

/// Draws the moving content; holds what is computed once per size.
pub struct Picture {
    width: usize,
    height: usize,
    fps: u32,
    /// `RAMP + width` luma values of a triangle wave; each row copies a window of it.
    ramp: Vec<u8>,
    /// The fixed colour wash (U then V planes).
    chroma: Vec<u8>,
    /// Size unit for the box, digits and flash (the barcode block size, at least 2).
    unit: usize,
}

impl Picture {
    pub fn new(width: usize, height: usize, fps: u32) -> Self {
        let ramp = (0..RAMP + width)
            .map(|i| {
                let p = i % RAMP;
                let tri = if p < RAMP / 2 { p } else { RAMP - 1 - p }; // 0..127
                (40 + tri * 150 / 127) as u8
            })
            .collect();
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        let mut chroma = vec![128u8; 2 * cw * ch];
        let (u, v) = chroma.split_at_mut(cw * ch);
        for y in 0..ch {
            for x in 0..cw {
                u[y * cw + x] = (96 + x * 64 / cw.max(1)) as u8;
                v[y * cw + x] = (160 - y * 64 / ch.max(1)) as u8;
            }
        }
        Picture {
            width,
            height,
            fps: fps.max(1),
            ramp,
            chroma,
            unit: crate::barcode::block_size(height).max(2),
        }
    }

    /// Draws stream frame number `n` (from 0) showing clock `t_ms` (Unix ms) into `frame`.
    pub fn render(&mut self, frame: &mut I420, n: u64, t_ms: u64) {
        assert_eq!((frame.width(), frame.height()), (self.width, self.height));
        let (w, h, s) = (self.width, self.height, self.unit);
        let cw = frame.chroma_width();
        let (y, u, v) = frame.planes_mut();

        // Background: diagonal stripes scrolling 4 px a frame, over the colour wash.
        let offset = (n as usize * 4) % RAMP;
        for (row, line) in y.chunks_exact_mut(w).enumerate() {
            let start = (offset + RAMP - (row / 2) % RAMP) % RAMP;
            line.copy_from_slice(&self.ramp[start..start + w]);
        }
        let (cu, cv) = self.chroma.split_at(u.len());
        u.copy_from_slice(cu);
        v.copy_from_slice(cv);

        let mut canvas = Canvas { w, cw, y, u, v };

        // A box bouncing around below the barcode.
        let side = 2 * s;
        let top = (3 * s).min(h.saturating_sub(side));
        let bx = bounce(n * 5, w.saturating_sub(side));
        let by = top + bounce(n * 3, h.saturating_sub(side + top));
        canvas.fill(bx, by, side, side, (170, 44, 200));

        // A/V sync flash: the first tenth of each second of stream time (the beep).
        let fps = u64::from(self.fps);
        if n % fps < fps.div_ceil(10) {
            canvas.fill(
                w.saturating_sub(side + s / 2),
                s / 2,
                side,
                side,
                (235, 128, 128),
            );
        }

        // Frame number and clock, bottom left, on a dark plate.
        let scale = (s / 6).max(1);
        let secs = (t_ms / 1000) % 86_400;
        let clock = format!(
            "{:02}:{:02}:{:02}.{:03}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            t_ms % 1000
        );
        let number = format!("{n:07}");
        let line_h = 8 * scale;
        let x0 = s / 2;
        let y0 = h.saturating_sub(2 * line_h + s / 2 + scale);
        let plate_w = (clock.len() * 6 + 1) * scale;
        canvas.fill(x0, y0, plate_w, 2 * line_h + scale, (16, 128, 128));
        canvas.text(x0 + scale, y0 + scale, scale, &number);
        canvas.text(x0 + scale, y0 + scale + line_h, scale, &clock);
    }
}

/// Position `0..=span` bouncing back and forth as `t` grows.
fn bounce(t: u64, span: usize) -> usize {
    if span == 0 {
        return 0;
    }
    let span = span as u64;
    let p = t % (2 * span);
    (if p <= span { p } else { 2 * span - p }) as usize
}

/// Clipped drawing on the three planes of a frame.
struct Canvas<'a> {
    w: usize,
    cw: usize,
    y: &'a mut [u8],
    u: &'a mut [u8],
    v: &'a mut [u8],
}

impl Canvas<'_> {
    /// Fills a rectangle (clipped) with colour `(Y, U, V)`.
    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, (cy, cu, cv): (u8, u8, u8)) {
        let h_total = self.y.len() / self.w;
        let (x1, y1) = ((x + w).min(self.w), (y + h).min(h_total));
        if x >= x1 || y >= y1 {
            return;
        }
        for line in self.y.chunks_exact_mut(self.w).take(y1).skip(y) {
            line[x..x1].fill(cy);
        }
        let (cx0, cx1) = (x / 2, x1.div_ceil(2));
        for (plane, c) in [(&mut *self.u, cu), (&mut *self.v, cv)] {
            for line in plane
                .chunks_exact_mut(self.cw)
                .take(y1.div_ceil(2))
                .skip(y / 2)
            {
                line[cx0..cx1].fill(c);
            }
        }
    }

    /// Writes `text` (digits, `:` and `.`) in white, glyphs 5×7 cells of `scale` pixels.
    fn text(&mut self, x: usize, y: usize, scale: usize, text: &str) {
        for (k, ch) in text.chars().enumerate() {
            let glyph = glyph(ch);
            let gx = x + k * 6 * scale;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        let (px, py) = (gx + col * scale, y + row * scale);
                        self.fill(px, py, scale, scale, (235, 128, 128));
                    }
                }
            }
        }
    }
}

/// 5×7 bitmaps, one byte per row, bit 4 leftmost.
fn glyph(ch: char) -> [u8; 7] {
    match ch {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        _ => [0; 7],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout() {
        let mut f = I420::new(640, 360);
        assert_eq!(f.data().len(), 640 * 360 * 3 / 2);
        let (y, u, v) = f.planes_mut();
        assert_eq!((y.len(), u.len(), v.len()), (230_400, 57_600, 57_600));
        let odd = I420::new(5, 3);
        assert_eq!(odd.data().len(), 15 + 2 * 6);
    }

    #[test]
    fn content_moves_and_stays_in_bounds() {
        for (w, h) in [(640, 360), (1280, 720), (46, 30), (8, 8)] {
            let mut p = Picture::new(w, h, 30);
            let (mut a, mut b) = (I420::new(w, h), I420::new(w, h));
            p.render(&mut a, 0, 0);
            p.render(&mut b, 1, 33);
            assert_ne!(a.data(), b.data(), "{w}x{h}");
            for n in 0..500 {
                p.render(&mut a, n * 7, n * 33);
            }
        }
    }

    #[test]
    fn bounce_stays_in_range() {
        assert_eq!(bounce(0, 10), 0);
        assert_eq!(bounce(10, 10), 10);
        assert_eq!(bounce(15, 10), 5);
        assert_eq!(bounce(20, 10), 0);
        assert_eq!(bounce(99, 0), 0);
    }
}
