//! Decoder outputs with exactly-once release: a [`Frame`] closes its `VideoFrame` when dropped
//! unless it was handed to the generator ([`Frame::take`]: the generator's sink closes what is
//! written to it), and an [`Audio`] closes its `AudioData` when dropped. Open frames are counted
//! (`openFrames` in the stats) so a leak shows.

use std::cell::Cell;

use web_sys::{AudioData, VideoFrame};

thread_local! {
    static OPEN_FRAMES: Cell<u32> = const { Cell::new(0) };
}

/// VideoFrames decoded and not yet closed or handed to the generator.
pub fn open_frames() -> u32 {
    OPEN_FRAMES.with(|c| c.get())
}

pub struct Frame(Option<VideoFrame>);

impl Frame {
    pub fn new(f: VideoFrame) -> Frame {
        OPEN_FRAMES.with(|c| c.set(c.get() + 1));
        Frame(Some(f))
    }

    /// Media timestamp, ms.
    pub fn pts_ms(&self) -> f64 {
        self.0.as_ref().map_or(0.0, |f| f.timestamp() / 1000.0)
    }

    /// Gives up ownership (the generator closes written frames).
    pub fn take(mut self) -> VideoFrame {
        OPEN_FRAMES.with(|c| c.set(c.get().saturating_sub(1)));
        self.0.take().expect("frame taken once")
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f.close();
            OPEN_FRAMES.with(|c| c.set(c.get().saturating_sub(1)));
        }
    }
}

pub struct Audio(pub AudioData);

impl Drop for Audio {
    fn drop(&mut self) {
        self.0.close();
    }
}
