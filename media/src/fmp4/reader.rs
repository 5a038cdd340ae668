//! A small, panic-free ISOBMFF reader (ISO/IEC 14496-12) for init segments and media fragments.
//!
//! It is not a general MP4 demuxer: it reads exactly what a fragmented-MP4 player needs to
//! check before feeding a decoder or MSE — track ids, handlers, timescales, sample entries and
//! decoder configurations from an init segment ([`parse_init`]), and sample timing, flags and
//! byte ranges from a `moof` + `mdat` ([`parse_fragment`]). It accepts what [`super`] writes and
//! the usual output of other muxers (`tfhd` defaults, several `trun`s, `tfdt` version 0,
//! explicit base data offsets, leading `styp`/`sidx`/`prft`/`emsg`). Every length is checked;
//! malformed input returns an [`Mp4Error`] with the byte offset where reading stopped.

use core::ops::Range;

use bytes::Bytes;

use super::fragment::{
    TFHD_DEFAULT_BASE_IS_MOOF, TRUN_DATA_OFFSET, TRUN_FIRST_SAMPLE_FLAGS, TRUN_SAMPLE_CTO,
    TRUN_SAMPLE_DURATION, TRUN_SAMPLE_FLAGS, TRUN_SAMPLE_SIZE,
};
use super::{Mp4Error, SAMPLE_IS_NON_SYNC};

/// A box header (ISO/IEC 14496-12 §4.2). Offsets are into the buffer being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHeader {
    pub fourcc: [u8; 4],
    /// First byte of the box (its size field).
    pub start: usize,
    /// First byte of the payload (after size, type and any `largesize`).
    pub body: usize,
    /// One past the last byte of the box.
    pub end: usize,
}

impl BoxHeader {
    /// The payload range.
    pub fn body_range(&self) -> Range<usize> {
        self.body..self.end
    }
}

/// Iterator over the boxes in a byte range; see [`boxes`]. Stops after the first error.
#[derive(Debug, Clone)]
pub struct Boxes<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
    failed: bool,
}

/// Iterates over the top-level boxes of `data` (for example, to split a file into an init
/// segment and fragments). A truncated final box yields an error.
pub fn boxes(data: &[u8]) -> Boxes<'_> {
    Boxes {
        data,
        pos: 0,
        end: data.len(),
        failed: false,
    }
}

/// Iterates over the child boxes of `parent`, starting `skip` bytes into its payload.
fn children<'a>(data: &'a [u8], parent: &BoxHeader, skip: usize) -> Boxes<'a> {
    Boxes {
        data,
        pos: parent.body.saturating_add(skip).min(parent.end),
        end: parent.end.min(data.len()),
        failed: false,
    }
}

impl Iterator for Boxes<'_> {
    type Item = Result<BoxHeader, Mp4Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        let r = self.read_header();
        match &r {
            Ok(h) => self.pos = h.end,
            Err(_) => self.failed = true,
        }
        Some(r)
    }
}

impl Boxes<'_> {
    fn read_header(&self) -> Result<BoxHeader, Mp4Error> {
        let start = self.pos;
        let mut c = Cursor::new(self.data, start, self.end, "box header");
        let size = c.u32()?;
        let mut fourcc = [0; 4];
        fourcc.copy_from_slice(c.bytes(4)?);
        let size = match size {
            0 => (self.end - start) as u64, // extends to the end of the container
            1 => c.u64()?,
            n => u64::from(n),
        };
        let body = c.pos;
        if size < (body - start) as u64 {
            return Err(Mp4Error::Invalid {
                what: "box header",
                offset: start,
                detail: format!(
                    "{} size {size} is smaller than its header",
                    fourcc_str(&fourcc)
                ),
            });
        }
        let end = match usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
        {
            Some(end) if end <= self.end => end,
            _ => {
                return Err(Mp4Error::Truncated {
                    what: "box",
                    offset: start,
                })
            }
        };
        Ok(BoxHeader {
            fourcc,
            start,
            body,
            end,
        })
    }
}

fn fourcc_str(f: &[u8; 4]) -> String {
    f.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Bounds-checked big-endian field reader over `data[pos..end]`.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8], pos: usize, end: usize, what: &'static str) -> Self {
        Cursor {
            data,
            pos,
            end: end.min(data.len()),
            what,
        }
    }
    fn of_box(data: &'a [u8], b: &BoxHeader, what: &'static str) -> Self {
        Self::new(data, b.body, b.end, what)
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Mp4Error> {
        let truncated = Mp4Error::Truncated {
            what: self.what,
            offset: self.pos,
        };
        let end = self.pos.checked_add(n).ok_or(truncated.clone())?;
        if end > self.end {
            return Err(truncated);
        }
        let s = self.data.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn skip(&mut self, n: usize) -> Result<(), Mp4Error> {
        self.bytes(n).map(|_| ())
    }
    fn u8(&mut self) -> Result<u8, Mp4Error> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Mp4Error> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Mp4Error> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, Mp4Error> {
        let b = self.bytes(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    /// Full box version and flags.
    fn full_box(&mut self) -> Result<(u8, u32), Mp4Error> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }
    fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }
    fn invalid(&self, detail: impl Into<String>) -> Mp4Error {
        Mp4Error::Invalid {
            what: self.what,
            offset: self.pos,
            detail: detail.into(),
        }
    }
}

/// The first child of `parent` with type `fourcc`, if any.
fn find_child(
    data: &[u8],
    parent: &BoxHeader,
    skip: usize,
    fourcc: &[u8; 4],
) -> Result<Option<BoxHeader>, Mp4Error> {
    for b in children(data, parent, skip) {
        let b = b?;
        if &b.fourcc == fourcc {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

/// Like [`find_child`], but absence is an error.
fn require_child(
    data: &[u8],
    parent: &BoxHeader,
    fourcc: &'static [u8; 4],
    what: &'static str,
    missing: &'static str,
) -> Result<BoxHeader, Mp4Error> {
    find_child(data, parent, 0, fourcc)?.ok_or(Mp4Error::Missing {
        what,
        missing,
        offset: parent.start,
    })
}

// ---------------------------------------------------------------------------------------------
// Init segment
// ---------------------------------------------------------------------------------------------

/// What [`parse_init`] found: the `ftyp` (ISO/IEC 14496-12 §4.3) and `moov` (§8.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedInit {
    /// `ftyp` major brand, if there is an `ftyp`.
    pub major_brand: Option<[u8; 4]>,
    /// `ftyp` compatible brands.
    pub compatible_brands: Vec<[u8; 4]>,
    /// `mvhd` timescale.
    pub movie_timescale: u32,
    /// One entry per `trak`, in file order.
    pub tracks: Vec<ParsedTrack>,
}

/// One `trak` of an init segment (ISO/IEC 14496-12 §8.3.1), with its `trex` (§8.8.3) if the
/// `moov` has an `mvex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedTrack {
    /// `tkhd.track_ID`.
    pub id: u32,
    /// `tkhd` flags (1 = enabled, 2 = in movie, 4 = in preview).
    pub tkhd_flags: u32,
    /// `tkhd.volume` (8.8 fixed point).
    pub volume: u16,
    /// `hdlr.handler_type`, such as `vide` or `soun`.
    pub handler: [u8; 4],
    /// `mdhd.timescale`.
    pub timescale: u32,
    /// `mdhd.language` as three ASCII letters.
    pub language: [u8; 3],
    /// Integer part of `tkhd.width` (16.16).
    pub width: u32,
    /// Integer part of `tkhd.height` (16.16).
    pub height: u32,
    /// Type of the first `stsd` entry, such as `avc1`, `hvc1` or `mp4a`.
    pub sample_entry: [u8; 4],
    /// Width and height of a visual sample entry.
    pub entry_size: Option<(u16, u16)>,
    /// Channel count and integer sample rate of an audio sample entry.
    pub audio: Option<(u16, u32)>,
    /// `objectTypeIndication` of an `esds` DecoderConfigDescriptor.
    pub object_type: Option<u8>,
    /// The raw decoder configuration: the `avcC` / `hvcC` / `dOps` payload, or the `esds`
    /// DecoderSpecificInfo (AudioSpecificConfig for AAC). Empty if there is none (MP3).
    pub config: Bytes,
    /// The `trex` defaults for this track.
    pub trex: Option<Trex>,
}

/// Track extends box defaults, ISO/IEC 14496-12 §8.8.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trex {
    pub default_sample_description_index: u32,
    pub default_sample_duration: u32,
    pub default_sample_size: u32,
    pub default_sample_flags: u32,
}

/// Reads an init segment: an optional `ftyp` and a `moov` (other top-level boxes are skipped).
pub fn parse_init(data: &[u8]) -> Result<ParsedInit, Mp4Error> {
    let mut init = ParsedInit {
        major_brand: None,
        compatible_brands: Vec::new(),
        movie_timescale: 0,
        tracks: Vec::new(),
    };
    let mut moov = None;
    for b in boxes(data) {
        let b = b?;
        match &b.fourcc {
            b"ftyp" if init.major_brand.is_none() => {
                let mut c = Cursor::of_box(data, &b, "ftyp");
                let mut brand = [0; 4];
                brand.copy_from_slice(c.bytes(4)?);
                init.major_brand = Some(brand);
                c.skip(4)?; // minor_version
                while c.remaining() >= 4 {
                    brand.copy_from_slice(c.bytes(4)?);
                    init.compatible_brands.push(brand);
                }
            }
            b"moov" => {
                moov = Some(b);
                break;
            }
            _ => {}
        }
    }
    let moov = moov.ok_or(Mp4Error::Missing {
        what: "init segment",
        missing: "moov",
        offset: 0,
    })?;
    let mut trexes = Vec::new();
    for b in children(data, &moov, 0) {
        let b = b?;
        match &b.fourcc {
            b"mvhd" => {
                let mut c = Cursor::of_box(data, &b, "mvhd");
                let (version, _) = c.full_box()?;
                c.skip(if version == 1 { 16 } else { 8 })?; // creation/modification time
                init.movie_timescale = c.u32()?;
            }
            b"trak" => init.tracks.push(parse_trak(data, &b)?),
            b"mvex" => {
                for t in children(data, &b, 0) {
                    let t = t?;
                    if &t.fourcc == b"trex" {
                        let mut c = Cursor::of_box(data, &t, "trex");
                        c.full_box()?;
                        let id = c.u32()?;
                        trexes.push((
                            id,
                            Trex {
                                default_sample_description_index: c.u32()?,
                                default_sample_duration: c.u32()?,
                                default_sample_size: c.u32()?,
                                default_sample_flags: c.u32()?,
                            },
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    for track in &mut init.tracks {
        track.trex = trexes.iter().find(|(id, _)| *id == track.id).map(|t| t.1);
    }
    Ok(init)
}

fn parse_trak(data: &[u8], trak: &BoxHeader) -> Result<ParsedTrack, Mp4Error> {
    let mut t = ParsedTrack {
        id: 0,
        tkhd_flags: 0,
        volume: 0,
        handler: [0; 4],
        timescale: 0,
        language: [0; 3],
        width: 0,
        height: 0,
        sample_entry: [0; 4],
        entry_size: None,
        audio: None,
        object_type: None,
        config: Bytes::new(),
        trex: None,
    };

    let tkhd = require_child(data, trak, b"tkhd", "trak", "tkhd")?;
    let mut c = Cursor::of_box(data, &tkhd, "tkhd");
    let (version, flags) = c.full_box()?;
    t.tkhd_flags = flags;
    c.skip(if version == 1 { 16 } else { 8 })?; // creation/modification time
    t.id = c.u32()?;
    c.skip(4)?; // reserved
    c.skip(if version == 1 { 8 } else { 4 })?; // duration
    c.skip(8 + 2 + 2)?; // reserved[2], layer, alternate_group
    t.volume = c.u16()?;
    c.skip(2 + 36)?; // reserved, matrix
    t.width = c.u32()? >> 16;
    t.height = c.u32()? >> 16;

    let mdia = require_child(data, trak, b"mdia", "trak", "mdia")?;
    let mdhd = require_child(data, &mdia, b"mdhd", "mdia", "mdhd")?;
    let mut c = Cursor::of_box(data, &mdhd, "mdhd");
    let (version, _) = c.full_box()?;
    c.skip(if version == 1 { 16 } else { 8 })?; // creation/modification time
    t.timescale = c.u32()?;
    c.skip(if version == 1 { 8 } else { 4 })?; // duration
    let lang = c.u16()?;
    t.language = [10, 5, 0].map(|shift| (((lang >> shift) & 0x1f) as u8).wrapping_add(0x60));

    let hdlr = require_child(data, &mdia, b"hdlr", "mdia", "hdlr")?;
    let mut c = Cursor::of_box(data, &hdlr, "hdlr");
    c.full_box()?;
    c.skip(4)?; // pre_defined
    t.handler.copy_from_slice(c.bytes(4)?);

    let minf = require_child(data, &mdia, b"minf", "mdia", "minf")?;
    let stbl = require_child(data, &minf, b"stbl", "minf", "stbl")?;
    let stsd = require_child(data, &stbl, b"stsd", "stbl", "stsd")?;
    let mut c = Cursor::of_box(data, &stsd, "stsd");
    c.full_box()?;
    if c.u32()? == 0 {
        return Err(c.invalid("no sample entries"));
    }
    let entry = children(data, &stsd, 8)
        .next()
        .ok_or(Mp4Error::Truncated {
            what: "stsd",
            offset: stsd.start,
        })??;
    t.sample_entry = entry.fourcc;
    match &t.handler {
        b"vide" => parse_visual_entry(data, &entry, &mut t)?,
        b"soun" => parse_audio_entry(data, &entry, &mut t)?,
        _ => {}
    }
    Ok(t)
}

/// Visual sample entry, ISO/IEC 14496-12 §12.1.3: 78 payload bytes, then boxes.
fn parse_visual_entry(data: &[u8], entry: &BoxHeader, t: &mut ParsedTrack) -> Result<(), Mp4Error> {
    let mut c = Cursor::of_box(data, entry, "visual sample entry");
    c.skip(6 + 2 + 2 + 2 + 12)?; // reserved, data_reference_index, pre_defined, reserved
    let w = c.u16()?;
    let h = c.u16()?;
    t.entry_size = Some((w, h));
    c.skip(50)?; // resolutions, reserved, frame_count, compressorname, depth, pre_defined
    for b in children(data, entry, 78) {
        let b = b?;
        if matches!(&b.fourcc, b"avcC" | b"hvcC") {
            t.config = Bytes::copy_from_slice(&data[b.body_range()]);
            break;
        }
    }
    Ok(())
}

/// Audio sample entry, ISO/IEC 14496-12 §12.2.3 (28 payload bytes, more for QuickTime sound
/// description versions 1 and 2), then boxes; the `esds` is ISO/IEC 14496-14 §5.6.
fn parse_audio_entry(data: &[u8], entry: &BoxHeader, t: &mut ParsedTrack) -> Result<(), Mp4Error> {
    let mut c = Cursor::of_box(data, entry, "audio sample entry");
    c.skip(6 + 2)?; // reserved, data_reference_index
    let qt_version = c.u16()?;
    c.skip(6)?; // revision, vendor
    let channels = c.u16()?;
    c.skip(2 + 2 + 2)?; // samplesize, pre_defined, reserved
    let rate = c.u32()? >> 16;
    t.audio = Some((channels, rate));
    let extra = match qt_version {
        1 => 16,
        2 => 36,
        _ => 0,
    };
    c.skip(extra)?;
    if let Some(esds) = find_child(data, entry, 28 + extra, b"esds")? {
        parse_esds(data, &esds, t)?;
    } else if let Some(dops) = find_child(data, entry, 28 + extra, b"dOps")? {
        t.config = Bytes::copy_from_slice(&data[dops.body_range()]);
    }
    Ok(())
}

/// Reads a descriptor tag and expandable size (ISO/IEC 14496-1 §8.3.3); returns the tag and the
/// payload range, which must fit in the cursor.
fn read_descriptor(c: &mut Cursor) -> Result<(u8, Range<usize>), Mp4Error> {
    let tag = c.u8()?;
    let mut len = 0usize;
    for i in 0..4 {
        let b = c.u8()?;
        len = (len << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
        if i == 3 {
            return Err(c.invalid("descriptor size longer than 4 bytes"));
        }
    }
    let start = c.pos;
    c.skip(len)?;
    Ok((tag, start..start + len))
}

fn parse_esds(data: &[u8], esds: &BoxHeader, t: &mut ParsedTrack) -> Result<(), Mp4Error> {
    let mut c = Cursor::of_box(data, esds, "esds");
    c.full_box()?;
    let (tag, es) = read_descriptor(&mut c)?;
    if tag != 0x03 {
        return Err(c.invalid(format!("expected ES_Descriptor (tag 3), found tag {tag}")));
    }
    let mut c = Cursor::new(data, es.start, es.end, "ES_Descriptor");
    c.skip(2)?; // ES_ID
    let flags = c.u8()?;
    if flags & 0x80 != 0 {
        c.skip(2)?; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        let n = c.u8()?;
        c.skip(usize::from(n))?; // URLstring
    }
    if flags & 0x20 != 0 {
        c.skip(2)?; // OCR_ES_Id
    }
    while c.remaining() > 0 {
        let (tag, dcd) = read_descriptor(&mut c)?;
        if tag != 0x04 {
            continue;
        }
        let mut d = Cursor::new(data, dcd.start, dcd.end, "DecoderConfigDescriptor");
        t.object_type = Some(d.u8()?);
        d.skip(12)?; // streamType etc., bufferSizeDB, maxBitrate, avgBitrate
        while d.remaining() > 0 {
            let (tag, dsi) = read_descriptor(&mut d)?;
            if tag == 0x05 {
                t.config = Bytes::copy_from_slice(&data[dsi]);
                break;
            }
        }
        break;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Fragments
// ---------------------------------------------------------------------------------------------

/// What [`parse_fragment`] found: a `moof` (ISO/IEC 14496-12 §8.8.4) and its `mdat`s (§8.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFragment {
    /// `mfhd.sequence_number`.
    pub sequence_number: u32,
    /// The `moof` box's range in the buffer.
    pub moof: Range<usize>,
    /// Payload ranges of the `mdat` boxes that follow the `moof`.
    pub mdats: Vec<Range<usize>>,
    /// One entry per `traf`, in file order.
    pub trafs: Vec<ParsedTraf>,
}

/// One `traf` (ISO/IEC 14496-12 §8.8.6): all samples of all its `trun`s (§8.8.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedTraf {
    /// `tfhd.track_ID`.
    pub track_id: u32,
    /// `tfdt.baseMediaDecodeTime`, if there is a `tfdt`.
    pub base_decode_time: Option<u64>,
    /// Number of `trun` boxes.
    pub trun_count: usize,
    pub samples: Vec<ParsedSample>,
}

/// One `trun` sample entry (ISO/IEC 14496-12 §8.8.8), with the `tfhd` defaults (§8.8.7) applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSample {
    /// Decode time: `base_decode_time` (or 0) plus the durations of the samples before it.
    pub decode_time: u64,
    pub duration: u32,
    pub size: u32,
    /// `sample_flags` as stored (0 when neither `trun` nor `tfhd` gives them: the `trex`
    /// default, which this parser does not see, would apply).
    pub flags: u32,
    /// `sample_is_non_sync_sample` is clear.
    pub sync: bool,
    /// Composition time offset; version 0 `trun` values are reinterpreted as signed, as most
    /// demuxers do.
    pub composition_offset: i32,
    /// Where the sample's bytes are in the buffer (always inside an `mdat` payload).
    pub data: Range<usize>,
}

/// Reads one fragment: a `moof` and the `mdat`(s) after it. Leading `styp`, `sidx`, `prft`,
/// `emsg`, `free` and other non-`moof` boxes are skipped; a second `moof` is an error.
///
/// Data offsets are resolved as ISO/IEC 14496-12 §8.8.7 and §8.8.8 say; an explicit
/// `tfhd.base_data_offset` is taken relative to the start of `data`. Every sample's byte range
/// must lie inside one of the `mdat` payloads.
pub fn parse_fragment(data: &[u8]) -> Result<ParsedFragment, Mp4Error> {
    let mut moof = None;
    let mut mdats = Vec::new();
    for b in boxes(data) {
        let b = b?;
        match &b.fourcc {
            b"moof" if moof.is_some() => {
                return Err(Mp4Error::Invalid {
                    what: "fragment",
                    offset: b.start,
                    detail: "more than one moof".into(),
                })
            }
            b"moof" => moof = Some(b),
            b"mdat" if moof.is_some() => mdats.push(b.body_range()),
            _ => {}
        }
    }
    let moof = moof.ok_or(Mp4Error::Missing {
        what: "fragment",
        missing: "moof",
        offset: 0,
    })?;

    let mfhd = require_child(data, &moof, b"mfhd", "moof", "mfhd")?;
    let mut c = Cursor::of_box(data, &mfhd, "mfhd");
    c.full_box()?;
    let sequence_number = c.u32()?;

    // Bounds the total number of samples so hostile sample counts cannot exhaust memory.
    let mut sample_budget = data.len();
    // Where the previous traf's data ended: the implicit base of a traf without one.
    let mut prev_data_end = moof.start as u64;
    let mut trafs = Vec::new();
    for traf in children(data, &moof, 0) {
        let traf = traf?;
        if &traf.fourcc != b"traf" {
            continue;
        }
        let t = parse_traf(
            data,
            &moof,
            &traf,
            &mdats,
            &mut prev_data_end,
            &mut sample_budget,
        )?;
        trafs.push(t);
    }
    Ok(ParsedFragment {
        sequence_number,
        moof: moof.start..moof.end,
        mdats,
        trafs,
    })
}

fn parse_traf(
    data: &[u8],
    moof: &BoxHeader,
    traf: &BoxHeader,
    mdats: &[Range<usize>],
    prev_data_end: &mut u64,
    sample_budget: &mut usize,
) -> Result<ParsedTraf, Mp4Error> {
    // Track fragment header, ISO/IEC 14496-12 §8.8.7.
    let tfhd = require_child(data, traf, b"tfhd", "traf", "tfhd")?;
    let mut c = Cursor::of_box(data, &tfhd, "tfhd");
    let (_, tf_flags) = c.full_box()?;
    let track_id = c.u32()?;
    let base = if tf_flags & 0x01 != 0 {
        c.u64()?
    } else if tf_flags & TFHD_DEFAULT_BASE_IS_MOOF != 0 {
        moof.start as u64
    } else {
        *prev_data_end // == moof start for the first traf
    };
    if tf_flags & 0x02 != 0 {
        c.skip(4)?; // sample_description_index
    }
    let default_duration = if tf_flags & 0x08 != 0 { c.u32()? } else { 0 };
    let default_size = if tf_flags & 0x10 != 0 { c.u32()? } else { 0 };
    let default_flags = if tf_flags & 0x20 != 0 { c.u32()? } else { 0 };

    // Track fragment decode time, §8.8.12.
    let mut base_decode_time = None;
    if let Some(tfdt) = find_child(data, traf, 0, b"tfdt")? {
        let mut c = Cursor::of_box(data, &tfdt, "tfdt");
        let (version, _) = c.full_box()?;
        base_decode_time = Some(if version == 1 {
            c.u64()?
        } else {
            u64::from(c.u32()?)
        });
    }

    let mut out = ParsedTraf {
        track_id,
        base_decode_time,
        trun_count: 0,
        samples: Vec::new(),
    };
    let mut decode_time = base_decode_time.unwrap_or(0);
    let mut next_data = base;
    for trun in children(data, traf, 0) {
        let trun = trun?;
        if &trun.fourcc != b"trun" {
            continue;
        }
        out.trun_count += 1;
        // Track fragment run, §8.8.8.
        let mut c = Cursor::of_box(data, &trun, "trun");
        // Versions 0 and 1 differ only in the signedness of the composition offsets, which are
        // read as signed either way.
        let (_version, flags) = c.full_box()?;
        let count = c.u32()?;
        if flags & TRUN_DATA_OFFSET != 0 {
            let off = c.u32()? as i32;
            next_data = base
                .checked_add_signed(i64::from(off))
                .ok_or_else(|| c.invalid(format!("data_offset {off} points before the buffer")))?;
        }
        let first_flags = if flags & TRUN_FIRST_SAMPLE_FLAGS != 0 {
            Some(c.u32()?)
        } else {
            None
        };
        let per_sample = [
            TRUN_SAMPLE_DURATION,
            TRUN_SAMPLE_SIZE,
            TRUN_SAMPLE_FLAGS,
            TRUN_SAMPLE_CTO,
        ]
        .iter()
        .filter(|&&f| flags & f != 0)
        .count()
            * 4;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count > *sample_budget {
            return Err(c.invalid(format!("implausible sample_count {count}")));
        }
        *sample_budget -= count;
        if count.saturating_mul(per_sample) > c.remaining() {
            return Err(Mp4Error::Truncated {
                what: "trun",
                offset: c.pos,
            });
        }
        out.samples.reserve(count);
        for i in 0..count {
            let duration = if flags & TRUN_SAMPLE_DURATION != 0 {
                c.u32()?
            } else {
                default_duration
            };
            let size = if flags & TRUN_SAMPLE_SIZE != 0 {
                c.u32()?
            } else {
                default_size
            };
            let sample_flags = if flags & TRUN_SAMPLE_FLAGS != 0 {
                c.u32()?
            } else {
                match first_flags {
                    Some(f) if i == 0 => f,
                    _ => default_flags,
                }
            };
            let composition_offset = if flags & TRUN_SAMPLE_CTO != 0 {
                c.u32()? as i32
            } else {
                0
            };
            let start = usize::try_from(next_data).unwrap_or(usize::MAX);
            let end = start.saturating_add(size as usize);
            if !mdats.iter().any(|m| m.start <= start && end <= m.end) {
                return Err(Mp4Error::Invalid {
                    what: "trun",
                    offset: trun.start,
                    detail: format!(
                        "track {track_id} sample {i}: bytes {start}..{end} are not inside an mdat"
                    ),
                });
            }
            next_data = end as u64;
            out.samples.push(ParsedSample {
                decode_time,
                duration,
                size,
                flags: sample_flags,
                sync: sample_flags & SAMPLE_IS_NON_SYNC == 0,
                composition_offset,
                data: start..end,
            });
            decode_time = decode_time.wrapping_add(u64::from(duration));
        }
    }
    *prev_data_end = next_data;
    Ok(out)
}
