//! RFC 6455 §5 framing: unmasked server frames (encoded once, shared by every viewer) and
//! masked client frames, decoded incrementally. Sans-IO: bytes in, frames out.

use bytes::{Buf, Bytes, BytesMut};

/// Opcodes (§5.2).
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// Close codes (§7.4.1) the relay sends.
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const TOO_BIG: u16 = 1009;
}

/// Length of the header of an unmasked frame carrying `len` payload bytes: 2, 4 or 10.
pub fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// Writes the header of a final, unmasked frame: FIN, opcode, then the payload length in
/// the shortest form (7 bits, 16 bits or 64 bits, §5.2).
pub fn write_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode); // FIN=1, RSV=0, opcode
    match len {
        0..=125 => out.push(len as u8), // MASK=0, payload len
        126..=0xFFFF => {
            out.push(126); // MASK=0, 16-bit extended length follows
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127); // MASK=0, 64-bit extended length follows
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// A complete unmasked frame with `payload`, in one allocation.
pub fn server_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(header_len(payload.len()) + payload.len());
    write_header(&mut out, opcode, payload.len());
    out.extend_from_slice(payload);
    out.into()
}

/// A Close frame with a status code and a reason (truncated to the 123 bytes allowed).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    server_frame(opcode::CLOSE, &payload)
}

/// A message from the client, reassembled and unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Binary(Bytes),
    Text(Bytes),
    Ping(Bytes),
    Pong,
    Close { code: Option<u16> },
}

/// Why the client's bytes are not acceptable; the connection closes with `close_code()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("client frame is not masked (RFC 6455 §5.1)")]
    Unmasked,
    #[error("reserved bits set or unknown opcode {0:#x}")]
    Reserved(u8),
    #[error("control frame fragmented or longer than 125 bytes")]
    BadControl,
    #[error("continuation without a message to continue, or a new message inside one")]
    BadFragmentation,
    #[error("message of {0} bytes exceeds the limit")]
    TooBig(u64),
}

impl FrameError {
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::TooBig(_) => close_code::TOO_BIG,
            _ => close_code::PROTOCOL_ERROR,
        }
    }
}

/// Incremental decoder of client frames: push bytes as they arrive, poll messages.
#[derive(Debug)]
pub struct ClientFrames {
    buf: BytesMut,
    max_message: usize,
    /// A fragmented data message being reassembled: (opcode, bytes so far).
    partial: Option<(u8, BytesMut)>,
}

impl ClientFrames {
    pub fn new(max_message: usize) -> Self {
        ClientFrames {
            buf: BytesMut::with_capacity(1024),
            max_message,
            partial: None,
        }
    }

    /// Room to read into (the caller reads from the socket into this, then calls `filled`).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn poll(&mut self) -> Result<Option<ClientMessage>, FrameError> {
        loop {
            let Some((fin, op, payload)) = self.frame()? else {
                return Ok(None);
            };
            match op {
                opcode::CLOSE => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Ok(Some(ClientMessage::Close { code }));
                }
                opcode::PING => return Ok(Some(ClientMessage::Ping(payload))),
                opcode::PONG => return Ok(Some(ClientMessage::Pong)),
                opcode::TEXT | opcode::BINARY if self.partial.is_some() => {
                    return Err(FrameError::BadFragmentation)
                }
                opcode::TEXT | opcode::BINARY if fin => {
                    return Ok(Some(if op == opcode::TEXT {
                        ClientMessage::Text(payload)
                    } else {
                        ClientMessage::Binary(payload)
                    }));
                }
                opcode::TEXT | opcode::BINARY => {
                    self.partial = Some((op, BytesMut::from(&payload[..])));
                }
                _ => {
                    // CONTINUATION (the opcode was checked in `frame`).
                    let Some((first, mut data)) = self.partial.take() else {
                        return Err(FrameError::BadFragmentation);
                    };
                    if data.len() + payload.len() > self.max_message {
                        return Err(FrameError::TooBig((data.len() + payload.len()) as u64));
                    }
                    data.extend_from_slice(&payload);
                    if !fin {
                        self.partial = Some((first, data));
                        continue;
                    }
                    let data = data.freeze();
                    return Ok(Some(if first == opcode::TEXT {
                        ClientMessage::Text(data)
                    } else {
                        ClientMessage::Binary(data)
                    }));
                }
            }
        }
    }

    /// One whole frame from the buffer: (FIN, opcode, unmasked payload).
    fn frame(&mut self) -> Result<Option<(bool, u8, Bytes)>, FrameError> {
        let b = &self.buf[..];
        if b.len() < 2 {
            return Ok(None);
        }
        let (fin, rsv, op) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0F);
        if rsv != 0 || !matches!(op, 0x0..=0x2 | 0x8..=0xA) {
            return Err(FrameError::Reserved(op));
        }
        if b[1] & 0x80 == 0 {
            return Err(FrameError::Unmasked);
        }
        let (len, at) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes([b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9]]),
                10,
            ),
            126 | 127 => return Ok(None),
            n => (n as u64, 2),
        };
        if op >= 0x8 && (!fin || len > 125) {
            return Err(FrameError::BadControl);
        }
        if len > self.max_message as u64 {
            return Err(FrameError::TooBig(len));
        }
        let len = len as usize;
        if b.len() < at + 4 + len {
            // Make room for the rest of this frame in one go.
            self.buf.reserve(at + 4 + len - b.len());
            return Ok(None);
        }
        let mask = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        self.buf.advance(at + 4);
        let mut payload = self.buf.split_to(len);
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i & 3];
        }
        Ok(Some((fin, op, payload.freeze())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![first];
        match payload.len() {
            0..=125 => out.push(0x80 | payload.len() as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    #[test]
    fn server_headers_use_the_shortest_length_form() {
        for (len, want) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let f = server_frame(opcode::BINARY, &vec![7; len]);
            assert_eq!(f.len(), want + len);
            assert_eq!(header_len(len), want);
            assert_eq!(f[0], 0x82);
        }
        assert_eq!(
            &server_frame(opcode::BINARY, b"hi")[..],
            &[0x82, 2, b'h', b'i']
        );
        assert_eq!(
            &server_frame(opcode::BINARY, &[0; 300])[..4],
            &[0x82, 126, 1, 44]
        );
        let c = close_frame(1003, "binary only");
        assert_eq!(&c[..4], &[0x88, 13, 0x03, 0xEB]);
    }

    #[test]
    fn decodes_masked_frames_in_any_chunking() {
        let mut wire = masked(0x82, b"\x83\0\0\0\0\0\0\0\x01");
        wire.extend(masked(0x81, b"hello"));
        wire.extend(masked(0x89, b"p"));
        wire.extend(masked(0x02, &[1; 200])); // fragmented binary: first part
        wire.extend(masked(0x8A, b"")); // a control frame in between is allowed
        wire.extend(masked(0x80, &[2; 70000])); // final continuation, 64-bit... 16-bit length
        wire.extend(masked(0x88, &[0x03, 0xE8]));
        for chunk in [1, 3, 7, 1000, wire.len()] {
            let mut d = ClientFrames::new(1 << 20);
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                d.buffer().extend_from_slice(piece);
                while let Some(m) = d.poll().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got.len(), 6, "chunk {chunk}");
            assert_eq!(
                got[0],
                ClientMessage::Binary(Bytes::from_static(b"\x83\0\0\0\0\0\0\0\x01"))
            );
            assert_eq!(got[1], ClientMessage::Text(Bytes::from_static(b"hello")));
            assert_eq!(got[2], ClientMessage::Ping(Bytes::from_static(b"p")));
            assert_eq!(got[3], ClientMessage::Pong);
            let ClientMessage::Binary(big) = &got[4] else {
                panic!()
            };
            assert_eq!(big.len(), 70200);
            assert!(big[..200].iter().all(|&b| b == 1) && big[200..].iter().all(|&b| b == 2));
            assert_eq!(got[5], ClientMessage::Close { code: Some(1000) });
        }
    }

    #[test]
    fn rejects_what_a_client_must_not_send() {
        let cases: Vec<(Vec<u8>, FrameError)> = vec![
            (vec![0x82, 0x02, 1, 2], FrameError::Unmasked),
            (masked(0xC2, b"x"), FrameError::Reserved(2)),
            (masked(0x83, b"x"), FrameError::Reserved(3)),
            (masked(0x09, b"x"), FrameError::BadControl),
            (masked(0x80, b"x"), FrameError::BadFragmentation),
            (masked(0x82, &[0; 2000]), FrameError::TooBig(2000)),
        ];
        for (bytes, want) in cases {
            let mut d = ClientFrames::new(1024);
            d.buffer().extend_from_slice(&bytes);
            assert_eq!(d.poll(), Err(want));
        }
        // A huge declared length is refused before anything is buffered for it.
        let mut d = ClientFrames::new(1024);
        d.buffer()
            .extend_from_slice(&[0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(matches!(d.poll(), Err(FrameError::TooBig(_))));
        // A new message inside a fragmented one.
        let mut d = ClientFrames::new(1024);
        d.buffer().extend_from_slice(&masked(0x02, b"a"));
        d.buffer().extend_from_slice(&masked(0x82, b"b"));
        assert_eq!(d.poll(), Err(FrameError::BadFragmentation));
    }
}
