//! # The Lockstep wire protocol, version 1
//!
//! Encode and decode every message of the WebSocket protocol between the relay and the player
//! (subprotocol `lockstep.v1`). `docs/PROTOCOL.md` is the specification, byte for byte; this
//! module is its one implementation. No IO: bytes in, [`Message`]s out, and back.
//!
//! - One WebSocket binary message is one wire message. All integers are big-endian.
//! - Byte 0 says what the message is. Below `0x80` it is a media message,
//!   `(kind << 4) | flags`, followed by a `u32` millisecond timestamp and the FLV tag body
//!   exactly as received: 5 bytes of framing per frame, where FLV spends 15.
//! - From `0x80` up, byte 0 is the type of a control message ([`types`]).
//! - Unknown types decode to [`Message::Unknown`] (to be ignored); known types with bad
//!   contents are a [`WireError`] naming the message and the byte offset.
//! - Control messages are trailing-extensible: decoders ignore bytes after the fields they
//!   know, so later versions append fields without breaking older peers.
//!
//! Decoding a media message is zero-copy: its body is a [`Bytes`] slice of the input. The
//! relay frames each tag once with [`encode_media`] and shares the result with every viewer.
//!
//! [`clock`] holds the NTP-style clock-sync arithmetic used with [`Ping`] and [`Pong`].

pub mod clock;
#[cfg(test)]
mod tests;

pub use clock::{ClockSample, ClockSync};

use bytes::Bytes;

/// The protocol version carried in [`Hello`].
pub const VERSION: u8 = 1;
/// The WebSocket subprotocol name (`Sec-WebSocket-Protocol`).
pub const SUBPROTOCOL: &str = "lockstep.v1";
/// Bytes of framing before the FLV tag body of a media message.
pub const MEDIA_HEADER_LEN: usize = 5;

/// Byte 0 of each control message.
pub mod types {
    /// [`super::Hello`], relay to player, first message.
    pub const HELLO: u8 = 0x80;
    /// [`super::StreamInfo`], relay to player.
    pub const STREAM_INFO: u8 = 0x81;
    /// [`super::Timeline`], relay to player.
    pub const TIMELINE: u8 = 0x82;
    /// [`super::Ping`], player to relay.
    pub const PING: u8 = 0x83;
    /// [`super::Pong`], relay to player.
    pub const PONG: u8 = 0x84;
    /// [`super::Feedback`], player to relay.
    pub const FEEDBACK: u8 = 0x85;
    /// [`super::Skipped`], relay to player.
    pub const SKIPPED: u8 = 0x86;
    /// [`super::Discontinuity`], relay to player.
    pub const DISCONTINUITY: u8 = 0x87;
    /// [`super::End`], relay to player.
    pub const END: u8 = 0x88;
    /// [`super::ErrorMsg`], either way.
    pub const ERROR: u8 = 0x89;
    /// [`super::Subscribe`], player to relay.
    pub const SUBSCRIBE: u8 = 0x8A;
}

/// A malformed message of a known type. Offsets count from byte 0 of the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A zero-length WebSocket message.
    #[error("empty message")]
    Empty,
    /// The message ends inside a field.
    #[error("{message}: truncated at byte {offset}: field needs {needed} bytes, {available} left")]
    Truncated {
        /// The message type being decoded, e.g. `"StreamInfo"`.
        message: &'static str,
        /// Where the field starts.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the message (or the enclosing track record).
        available: usize,
    },
    /// A string field is not UTF-8.
    #[error("{message}: invalid UTF-8 in string at byte {offset}")]
    InvalidUtf8 {
        /// The message type being decoded.
        message: &'static str,
        /// Where the string's length prefix starts.
        offset: usize,
    },
}

/// What a media message carries: the FLV tag type it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// FLV tag type 9; kind nibble 1.
    Video = 1,
    /// FLV tag type 8; kind nibble 2.
    Audio = 2,
    /// FLV tag type 18 (AMF0 script data, e.g. `onMetaData`); kind nibble 3.
    Script = 3,
}

impl MediaKind {
    fn from_nibble(n: u8) -> Option<Self> {
        match n {
            1 => Some(Self::Video),
            2 => Some(Self::Audio),
            3 => Some(Self::Script),
            _ => None,
        }
    }
}

/// The low nibble of byte 0 of a media message. Bit 3 is reserved: sent as 0, ignored
/// (cleared) on decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MediaFlags(u8);

impl MediaFlags {
    /// No flag set.
    pub const NONE: Self = Self(0);
    /// Bit 0: a video keyframe (FLV frame type 1) that is a coded frame, not a config. 0 for
    /// audio and script data.
    pub const KEYFRAME: Self = Self(1);
    /// Bit 1: a sequence header / codec configuration (AVC/HEVC decoder configuration record,
    /// AAC AudioSpecificConfig), not a frame.
    pub const CONFIG: Self = Self(2);
    /// Bit 2: end of sequence (AVC packet type 2 or its Enhanced RTMP equivalent).
    pub const END_OF_SEQUENCE: Self = Self(4);
    const KNOWN: u8 = 0x07;

    /// Flags from their bits; reserved bits are dropped.
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & Self::KNOWN)
    }
    /// The bits as sent on the wire.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for MediaFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// A media message: one FLV tag body with its kind, flags and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Video, audio or script data.
    pub kind: MediaKind,
    /// Keyframe / config / end-of-sequence.
    pub flags: MediaFlags,
    /// The FLV timestamp (decode time, ms) on the current epoch's timeline.
    pub timestamp_ms: u32,
    /// The FLV tag body exactly as received (from the audio/video tag header on).
    pub body: Bytes,
}

/// Relay to player, first message of every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version ([`VERSION`]).
    pub version: u8,
    /// The relay's clock when it sent this, Unix epoch microseconds.
    pub relay_time_us: u64,
    /// Free-form server name and version, e.g. `"lockstep-relay/0.1"`.
    pub server: String,
}

/// [`StreamInfo::flags`] bit 0: a publisher is live and media follows. Clear: the channel is
/// idle (no publisher yet, or it left) and the track list is empty.
pub const STREAM_LIVE: u8 = 0x01;

/// Relay to player: the channel's tracks and playout delay. Sent before any media of an epoch
/// and again whenever a track's configuration changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The epoch the following media belongs to.
    pub epoch: u32,
    /// [`STREAM_LIVE`]; other bits reserved (sent 0, ignored).
    pub flags: u8,
    /// The channel's shared playout delay D in ms (0 = unset: the player picks its own).
    pub delay_ms: u32,
    /// The channel name, as in the URL.
    pub channel: String,
    /// At most one video and one audio track in version 1; at most 255.
    pub tracks: Vec<Track>,
}

/// One track of a [`StreamInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// FLV CodecID (video: 7 AVC, 12 HEVC, …) or SoundFormat (audio: 10 AAC, 2 MP3, …), as
    /// in the FLV tag header. For Enhanced RTMP video it is the raw 4-bit value of the header.
    pub codec_id: u8,
    /// Enhanced RTMP FourCC (`*b"hvc1"`, `*b"av01"`, …); `[0; 4]` when not Enhanced RTMP.
    pub fourcc: [u8; 4],
    /// RFC 6381 codec string, e.g. `"avc1.64001f"`, `"mp4a.40.2"`, `"mp3"`.
    pub codec: String,
    /// Kind-specific parameters.
    pub params: TrackParams,
}

/// The kind of a [`Track`] and what only that kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackParams {
    /// Track kind 1. 0 when unknown.
    Video {
        /// Coded width in pixels.
        width: u16,
        /// Coded height in pixels.
        height: u16,
    },
    /// Track kind 2. 0 when unknown.
    Audio {
        /// Samples per second, e.g. 48000.
        sample_rate: u32,
        /// Channel count.
        channels: u8,
    },
}

/// Relay to player: maps a media timestamp of an epoch to the relay's wall clock. Sent at join
/// and immediately before each video keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// The epoch of `timestamp_ms`; players ignore a Timeline of another epoch.
    pub epoch: u32,
    /// A media timestamp (ms).
    pub timestamp_ms: u32,
    /// The relay time that timestamp stands for: the channel's earliest-arrival line
    /// (docs/PROTOCOL.md, 0x82), never later than the frame's own arrival; Unix µs.
    pub relay_us: u64,
}

/// Player to relay: a clock-sync probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// Player clock at send, µs.
    pub t0: u64,
}

/// Relay to player: the answer to a [`Ping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// The ping's `t0`, echoed.
    pub t0: u64,
    /// Relay clock when the ping was received, Unix µs.
    pub t1: u64,
    /// Relay clock when this pong was sent, Unix µs.
    pub t2: u64,
}

/// [`Feedback::mode`] / [`Subscribe::mode`]: playback through Media Source Extensions.
pub const MODE_MSE: u8 = 0;
/// [`Feedback::mode`] / [`Subscribe::mode`]: playback through WebCodecs.
pub const MODE_WEBCODECS: u8 = 1;
/// [`Subscribe::mode`]: no preference.
pub const MODE_ANY: u8 = 0xFF;

/// Player to relay, about once a second: how playback is going.
///
/// On the wire, `None` is `i32::MIN` for the signed fields and `u32::MAX` for `rtt_us`
/// (so `Some(i32::MIN)` is sent as unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Feedback {
    /// Media buffered ahead of the playhead, ms.
    pub buffer_ms: u32,
    /// Relay ingest to presentation of the current frame, ms.
    pub latency_ms: Option<i32>,
    /// Playback rate in thousandths (1000 = 1.0×).
    pub playback_rate_milli: u16,
    /// Frames decoded since the connection opened.
    pub decoded_frames: u32,
    /// Frames dropped (late or skipped) since the connection opened.
    pub dropped_frames: u32,
    /// WebSocket payload bytes received since the connection opened.
    pub bytes_received: u64,
    /// Estimated receive bandwidth, kbit/s.
    pub bandwidth_kbps: u32,
    /// Playback stalls since the connection opened.
    pub stalls: u32,
    /// [`MODE_MSE`] or [`MODE_WEBCODECS`].
    pub mode: u8,
    /// Presented time minus the synchronized target time, ms (positive = behind).
    pub sync_error_ms: Option<i32>,
    /// Round-trip time of the clock-sync sample in use, µs.
    pub rtt_us: Option<u32>,
    /// The lowest latency this viewer can hold without stalling (its controller's effective
    /// target), ms: what the relay uses to choose the channel's shared delay. Added in
    /// protocol 1.1 as an optional trailing field; absent from older players.
    pub target_ms: Option<u32>,
    /// Where the frames fall on this viewer's display refresh grid, for the relay to choose a
    /// D that puts them between two refreshes' boundaries (protocol 1.4, optional trailing
    /// fields; absent from older players and from viewers without a known grid).
    pub refresh: Option<RefreshPhase>,
}

/// A viewer's display refresh grid against the stream's ingest times (Feedback, protocol
/// 1.4): a frame ingested at relay time `T` falls `phase_us` after a refresh of this viewer's
/// display, modulo the period, so with shared delay D it is due `(phase_us + D) mod period`
/// after one. A frame due near the middle between two refreshes can land on either, a
/// viewer with a clock a millisecond off on the other one than its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPhase {
    /// The refresh period, µs (> 0).
    pub period_us: u32,
    /// Ingest time − a refresh instant, modulo the period, µs (< `period_us`).
    pub phase_us: u32,
}

impl RefreshPhase {
    /// A phase, if it is consistent (a period, a phase within it).
    pub fn new(period_us: u32, phase_us: u32) -> Option<Self> {
        (period_us > 0 && period_us != u32::MAX && phase_us < period_us).then_some(Self {
            period_us,
            phase_us,
        })
    }

    /// Where a frame due `delay_us` after its ingest falls from the nearest refresh, µs, in
    /// `(−period/2, period/2]` (negative: before it).
    pub fn due_from_nearest_us(&self, delay_us: u64) -> i64 {
        let p = i64::from(self.period_us);
        let at = ((u64::from(self.phase_us) + delay_us) % u64::from(self.period_us)) as i64;
        if at > p / 2 {
            at - p
        } else {
            at
        }
    }
}

/// Relay to player: the viewer's queue overflowed and the relay skipped to the next keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Media messages dropped.
    pub frames: u32,
    /// Media message bytes dropped.
    pub bytes: u32,
}

/// [`Discontinuity::reason`] codes.
pub mod reason {
    /// A new publisher (or the same one, reconnected).
    pub const PUBLISHER_RESTART: u8 = 1;
    /// Timestamps jumped backwards.
    pub const TIMESTAMP_BACK: u8 = 2;
    /// Timestamps jumped forwards.
    pub const TIMESTAMP_FORWARD: u8 = 3;
    /// A codec configuration changed in a way that needs a new timeline / init segment.
    pub const CONFIG_CHANGE: u8 = 4;
}

/// Relay to player: a new epoch begins. A [`StreamInfo`] and a [`Timeline`] of it follow
/// before any of its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discontinuity {
    /// The new epoch.
    pub epoch: u32,
    /// One of [`reason`]; other values mean "unspecified".
    pub reason: u8,
}

/// Relay to player: the publisher is gone. The connection stays open for the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// Human-readable reason.
    pub reason: String,
}

/// [`ErrorMsg::code`] values.
pub mod code {
    /// A malformed message was received.
    pub const BAD_MESSAGE: u16 = 1;
    /// The channel does not exist (or may not be watched).
    pub const UNKNOWN_CHANNEL: u16 = 2;
    /// The peer speaks an unsupported protocol version.
    pub const UNSUPPORTED_VERSION: u16 = 3;
    /// Missing or invalid credentials.
    pub const UNAUTHORIZED: u16 = 4;
    /// The relay is at capacity.
    pub const OVERLOADED: u16 = 5;
    /// An internal error.
    pub const INTERNAL: u16 = 6;
}

/// Either way: something went wrong; usually followed by a close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMsg {
    /// One of [`code`].
    pub code: u16,
    /// Human-readable detail.
    pub message: String,
}

/// Player to relay, optional: subscription options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Empty or the channel of the URL (version 1 relays answer others with error 2).
    pub channel: String,
    /// Requested playout delay, ms (0 = the channel's default).
    pub target_delay_ms: u32,
    /// [`MODE_MSE`], [`MODE_WEBCODECS`] or [`MODE_ANY`].
    pub mode: u8,
    /// Reserved for renditions: empty = automatic.
    pub rendition: String,
}

/// One wire message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Types `0x10..=0x3F`.
    Media(Media),
    /// `0x80`.
    Hello(Hello),
    /// `0x81`.
    StreamInfo(StreamInfo),
    /// `0x82`.
    Timeline(Timeline),
    /// `0x83`.
    Ping(Ping),
    /// `0x84`.
    Pong(Pong),
    /// `0x85`.
    Feedback(Feedback),
    /// `0x86`.
    Skipped(Skipped),
    /// `0x87`.
    Discontinuity(Discontinuity),
    /// `0x88`.
    End(End),
    /// `0x89`.
    Error(ErrorMsg),
    /// `0x8A`.
    Subscribe(Subscribe),
    /// Any other byte 0; receivers ignore it. Encodes as that single byte (so `kind` must
    /// not be a known type).
    Unknown {
        /// Byte 0.
        kind: u8,
    },
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// The 5-byte header of a media message: `(kind << 4) | flags`, then the timestamp.
pub fn media_header(kind: MediaKind, flags: MediaFlags, timestamp_ms: u32) -> [u8; 5] {
    let t = timestamp_ms.to_be_bytes();
    [((kind as u8) << 4) | flags.bits(), t[0], t[1], t[2], t[3]]
}

/// A complete media message in one allocation, ready to share between viewers.
pub fn encode_media(kind: MediaKind, flags: MediaFlags, timestamp_ms: u32, body: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(MEDIA_HEADER_LEN + body.len());
    v.extend_from_slice(&media_header(kind, flags, timestamp_ms));
    v.extend_from_slice(body);
    v.into()
}

fn put_str(out: &mut Vec<u8>, s: &str, max: usize) {
    // Over-long strings are cut at a character boundary: encoding never fails.
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..n]);
}

const MAX_STR: usize = u16::MAX as usize;
/// A track record is at most 65535 bytes; the fixed fields take at most 13 of them.
const MAX_CODEC_STR: usize = MAX_STR - 16;

fn put_track(out: &mut Vec<u8>, t: &Track) {
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let kind = match t.params {
        TrackParams::Video { .. } => 1,
        TrackParams::Audio { .. } => 2,
    };
    out.extend_from_slice(&[kind, t.codec_id]);
    out.extend_from_slice(&t.fourcc);
    put_str(out, &t.codec, MAX_CODEC_STR);
    match t.params {
        TrackParams::Video { width, height } => {
            out.extend_from_slice(&width.to_be_bytes());
            out.extend_from_slice(&height.to_be_bytes());
        }
        TrackParams::Audio {
            sample_rate,
            channels,
        } => {
            out.extend_from_slice(&sample_rate.to_be_bytes());
            out.push(channels);
        }
    }
    let len = (out.len() - len_at - 2) as u16;
    out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
}

/// Append the encoding of `msg` to `out`. Never fails: strings longer than 65535 bytes are cut
/// at a character boundary and only the first 255 tracks are sent.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    fn u32s(out: &mut Vec<u8>, vals: &[u32]) {
        for v in vals {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    fn u64s(out: &mut Vec<u8>, vals: &[u64]) {
        for v in vals {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    match msg {
        Message::Media(m) => {
            out.extend_from_slice(&media_header(m.kind, m.flags, m.timestamp_ms));
            out.extend_from_slice(&m.body);
        }
        Message::Hello(h) => {
            out.extend_from_slice(&[types::HELLO, h.version]);
            u64s(out, &[h.relay_time_us]);
            put_str(out, &h.server, MAX_STR);
        }
        Message::StreamInfo(s) => {
            out.push(types::STREAM_INFO);
            u32s(out, &[s.epoch]);
            out.push(s.flags);
            u32s(out, &[s.delay_ms]);
            put_str(out, &s.channel, MAX_STR);
            let n = s.tracks.len().min(255);
            out.push(n as u8);
            for t in &s.tracks[..n] {
                put_track(out, t);
            }
        }
        Message::Timeline(t) => {
            out.push(types::TIMELINE);
            u32s(out, &[t.epoch, t.timestamp_ms]);
            u64s(out, &[t.relay_us]);
        }
        Message::Ping(p) => {
            out.push(types::PING);
            u64s(out, &[p.t0]);
        }
        Message::Pong(p) => {
            out.push(types::PONG);
            u64s(out, &[p.t0, p.t1, p.t2]);
        }
        Message::Feedback(f) => {
            let signed = |v: Option<i32>| v.unwrap_or(i32::MIN) as u32;
            out.push(types::FEEDBACK);
            u32s(out, &[f.buffer_ms, signed(f.latency_ms)]);
            out.extend_from_slice(&f.playback_rate_milli.to_be_bytes());
            u32s(out, &[f.decoded_frames, f.dropped_frames]);
            u64s(out, &[f.bytes_received]);
            u32s(out, &[f.bandwidth_kbps, f.stalls]);
            out.push(f.mode);
            u32s(
                out,
                &[
                    signed(f.sync_error_ms),
                    f.rtt_us.unwrap_or(u32::MAX),
                    f.target_ms.unwrap_or(u32::MAX),
                    f.refresh.map_or(u32::MAX, |r| r.period_us),
                    f.refresh.map_or(u32::MAX, |r| r.phase_us),
                ],
            );
        }
        Message::Skipped(s) => {
            out.push(types::SKIPPED);
            u32s(out, &[s.frames, s.bytes]);
        }
        Message::Discontinuity(d) => {
            out.push(types::DISCONTINUITY);
            u32s(out, &[d.epoch]);
            out.push(d.reason);
        }
        Message::End(e) => {
            out.push(types::END);
            put_str(out, &e.reason, MAX_STR);
        }
        Message::Error(e) => {
            out.push(types::ERROR);
            out.extend_from_slice(&e.code.to_be_bytes());
            put_str(out, &e.message, MAX_STR);
        }
        Message::Subscribe(s) => {
            out.push(types::SUBSCRIBE);
            put_str(out, &s.channel, MAX_STR);
            u32s(out, &[s.target_delay_ms]);
            out.push(s.mode);
            put_str(out, &s.rendition, MAX_STR);
        }
        Message::Unknown { kind } => out.push(*kind),
    }
}

impl Message {
    /// The encoded message as one [`Bytes`].
    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::new();
        encode(self, &mut v);
        v.into()
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// A bounds-checked big-endian cursor over one message (or one track record inside it).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` within the whole message, for error offsets.
    base: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match rest.get(..n) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(WireError::Truncated {
                message: self.message,
                offset: self.base + self.pos,
                needed: n,
                available: rest.len(),
            }),
        }
    }
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_be_bytes)
    }
    fn opt_i32(&mut self) -> Result<Option<i32>, WireError> {
        let v = self.u32()? as i32;
        Ok((v != i32::MIN).then_some(v))
    }
    fn string(&mut self) -> Result<String, WireError> {
        let offset = self.base + self.pos;
        let n = self.u16()? as usize;
        let raw = self.take(n)?;
        match core::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(WireError::InvalidUtf8 {
                message: self.message,
                offset,
            }),
        }
    }
}

/// Decode one track record; `Ok(None)` for a track kind this version does not know.
fn track(r: &mut Reader<'_>) -> Result<Option<Track>, WireError> {
    let len = r.u16()? as usize;
    let base = r.base + r.pos;
    let mut t = Reader {
        buf: r.take(len)?,
        pos: 0,
        base,
        message: r.message,
    };
    let kind = t.u8()?;
    if kind != 1 && kind != 2 {
        return Ok(None);
    }
    let codec_id = t.u8()?;
    let fourcc = t.array()?;
    let codec = t.string()?;
    let params = if kind == 1 {
        TrackParams::Video {
            width: t.u16()?,
            height: t.u16()?,
        }
    } else {
        TrackParams::Audio {
            sample_rate: t.u32()?,
            channels: t.u8()?,
        }
    };
    Ok(Some(Track {
        codec_id,
        fourcc,
        codec,
        params,
    }))
}

/// Decode one WebSocket binary message. A media body is a slice of `msg` (no copy).
pub fn decode(msg: Bytes) -> Result<Message, WireError> {
    let Some(&b0) = msg.first() else {
        return Err(WireError::Empty);
    };
    if b0 < 0x80 {
        let Some(kind) = MediaKind::from_nibble(b0 >> 4) else {
            return Ok(Message::Unknown { kind: b0 });
        };
        let mut r = Reader {
            buf: &msg,
            pos: 1,
            base: 0,
            message: "Media",
        };
        let timestamp_ms = r.u32()?;
        return Ok(Message::Media(Media {
            kind,
            flags: MediaFlags::from_bits(b0),
            timestamp_ms,
            body: msg.slice(MEDIA_HEADER_LEN..),
        }));
    }
    let name = match b0 {
        types::HELLO => "Hello",
        types::STREAM_INFO => "StreamInfo",
        types::TIMELINE => "Timeline",
        types::PING => "Ping",
        types::PONG => "Pong",
        types::FEEDBACK => "Feedback",
        types::SKIPPED => "Skipped",
        types::DISCONTINUITY => "Discontinuity",
        types::END => "End",
        types::ERROR => "Error",
        types::SUBSCRIBE => "Subscribe",
        _ => return Ok(Message::Unknown { kind: b0 }),
    };
    let r = &mut Reader {
        buf: &msg,
        pos: 1,
        base: 0,
        message: name,
    };
    // Bytes after the known fields are ignored (trailing extensibility).
    Ok(match b0 {
        types::HELLO => Message::Hello(Hello {
            version: r.u8()?,
            relay_time_us: r.u64()?,
            server: r.string()?,
        }),
        types::STREAM_INFO => {
            let epoch = r.u32()?;
            let flags = r.u8()?;
            let delay_ms = r.u32()?;
            let channel = r.string()?;
            let count = r.u8()?;
            let mut tracks = Vec::new();
            for _ in 0..count {
                tracks.extend(track(r)?);
            }
            Message::StreamInfo(StreamInfo {
                epoch,
                flags,
                delay_ms,
                channel,
                tracks,
            })
        }
        types::TIMELINE => Message::Timeline(Timeline {
            epoch: r.u32()?,
            timestamp_ms: r.u32()?,
            relay_us: r.u64()?,
        }),
        types::PING => Message::Ping(Ping { t0: r.u64()? }),
        types::PONG => Message::Pong(Pong {
            t0: r.u64()?,
            t1: r.u64()?,
            t2: r.u64()?,
        }),
        types::FEEDBACK => Message::Feedback(Feedback {
            buffer_ms: r.u32()?,
            latency_ms: r.opt_i32()?,
            playback_rate_milli: r.u16()?,
            decoded_frames: r.u32()?,
            dropped_frames: r.u32()?,
            bytes_received: r.u64()?,
            bandwidth_kbps: r.u32()?,
            stalls: r.u32()?,
            mode: r.u8()?,
            sync_error_ms: r.opt_i32()?,
            rtt_us: Some(r.u32()?).filter(|&v| v != u32::MAX),
            // Optional trailing field (protocol 1.1): absent from 1.0 players.
            target_ms: if r.remaining() >= 4 {
                Some(r.u32()?).filter(|&v| v != u32::MAX)
            } else {
                None
            },
            // Optional trailing fields (protocol 1.4); an inconsistent pair is unknown.
            refresh: if r.remaining() >= 8 {
                let (period, phase) = (r.u32()?, r.u32()?);
                RefreshPhase::new(period, phase)
            } else {
                None
            },
        }),
        types::SKIPPED => Message::Skipped(Skipped {
            frames: r.u32()?,
            bytes: r.u32()?,
        }),
        types::DISCONTINUITY => Message::Discontinuity(Discontinuity {
            epoch: r.u32()?,
            reason: r.u8()?,
        }),
        types::END => Message::End(End {
            reason: r.string()?,
        }),
        types::ERROR => Message::Error(ErrorMsg {
            code: r.u16()?,
            message: r.string()?,
        }),
        _ => Message::Subscribe(Subscribe {
            channel: r.string()?,
            target_delay_ms: r.u32()?,
            mode: r.u8()?,
            rendition: r.string()?,
        }),
    })
}
