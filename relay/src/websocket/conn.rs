//! The halves of a viewer's WebSocket: [`FrameWriter`] writes already-framed `Bytes` with
//! vectored writes (a batch of queued frames in one system call, each frame the broadcast's
//! shared bytes), and [`FrameReader`] turns what the client sends into messages.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::codec::{ClientFrames, ClientMessage, FrameError};

/// Most slices given to one `writev` (Linux allows 1024; a batch is at most 64 frames).
const MAX_IOV: usize = 64;

pub struct FrameWriter<W> {
    w: W,
    queue: VecDeque<Bytes>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(w: W) -> Self {
        FrameWriter {
            w,
            queue: VecDeque::with_capacity(MAX_IOV),
        }
    }

    /// Queues a complete frame (nothing is written until [`FrameWriter::flush`]).
    pub fn push(&mut self, frame: Bytes) {
        if !frame.is_empty() {
            self.queue.push_back(frame);
        }
    }

    /// Writes everything queued, as few system calls as the socket allows.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        while !self.queue.is_empty() {
            let n = {
                let mut slices = [IoSlice::new(&[]); MAX_IOV];
                let mut count = 0;
                for (slot, b) in slices.iter_mut().zip(&self.queue) {
                    *slot = IoSlice::new(b);
                    count += 1;
                }
                self.w.write_vectored(&slices[..count]).await?
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            let mut left = n;
            while left > 0 {
                let Some(front) = self.queue.front_mut() else {
                    break;
                };
                if front.len() <= left {
                    left -= front.len();
                    self.queue.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
        self.w.flush().await
    }

    /// Shuts the write side down (after a Close frame).
    pub async fn shutdown(&mut self) {
        let _ = self.w.shutdown().await;
    }
}

/// What ended a reader.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("connection closed")]
    Eof,
}

pub struct FrameReader<R> {
    r: R,
    frames: ClientFrames,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// `early`: bytes read past the upgrade request, which are the first frame bytes.
    pub fn new(r: R, early: Bytes, max_message: usize) -> Self {
        let mut frames = ClientFrames::new(max_message);
        frames.buffer().extend_from_slice(&early);
        FrameReader { r, frames }
    }

    /// The next message from the client.
    pub async fn next(&mut self) -> Result<ClientMessage, ReadError> {
        loop {
            if let Some(m) = self.frames.poll()? {
                return Ok(m);
            }
            let buf = self.frames.buffer();
            buf.reserve(4096);
            if self.r.read_buf(buf).await? == 0 {
                return Err(ReadError::Eof);
            }
        }
    }
}
