//! Bit-level reading of H.264 / H.265 parameter sets.
//!
//! NAL unit payloads carry emulation-prevention bytes (ITU-T H.264 section 7.3.1 / 7.4.1,
//! H.265 section 7.3.1.1): inside a NAL unit, the byte pattern `00 00 0x` with `x <= 3` is
//! written as `00 00 03 0x`. [`rbsp_from_nal`] removes those `03` bytes to give the raw byte
//! sequence payload (RBSP), which [`BitReader`] then reads MSB first with the descriptors of
//! H.264 section 7.2 (`u(n)`, `f(n)`) and the Exp-Golomb codes of section 9.1 (`ue(v)`,
//! `se(v)`); H.265 uses the same descriptors (its sections 7.2 and 9.2).
//!
//! Every read is bounds-checked and returns [`CodecError::Truncated`] when the data runs out;
//! nothing here panics, whatever the input.

use super::CodecError;

/// Removes emulation-prevention bytes: every `03` that follows two zero bytes is dropped, and
/// the zero count restarts after it (so `00 00 03 00 00 03` yields `00 00 00 00`).
///
/// Like FFmpeg, the `03` is removed whatever byte follows it (the spec only ever emits it before
/// `00`..`03`, or at the end of the NAL unit, which also counts as an emulation byte).
pub fn rbsp_from_nal(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        if b == 0 {
            zeros = zeros.saturating_add(1);
        } else {
            zeros = 0;
        }
        out.push(b);
    }
    out
}

/// An MSB-first bit reader over an RBSP (emulation prevention already removed).
///
/// `what` names the structure being read (such as `"H.264 SPS"`) and ends up in errors, whose
/// `offset` is the byte offset in the RBSP where the failing read started.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`; always `<= data.len() * 8`.
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, what }
    }

    /// The name given at construction, for building errors.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Byte offset of the next bit to be read.
    pub fn byte_offset(&self) -> usize {
        self.pos / 8
    }

    /// Position in bits from the start.
    pub fn bit_position(&self) -> usize {
        self.pos
    }

    /// Number of bits not yet read.
    pub fn bits_left(&self) -> usize {
        self.data.len().saturating_mul(8).saturating_sub(self.pos)
    }

    /// A [`CodecError::Truncated`] at the current position.
    pub fn truncated(&self) -> CodecError {
        CodecError::Truncated {
            what: self.what,
            offset: self.byte_offset(),
        }
    }

    /// A [`CodecError::Invalid`] for `field` at the current position.
    pub fn invalid(&self, field: &'static str, detail: impl Into<String>) -> CodecError {
        CodecError::Invalid {
            what: self.what,
            field,
            offset: self.byte_offset(),
            detail: detail.into(),
        }
    }

    /// Reads one bit, `u(1)`.
    pub fn read_bit(&mut self) -> Result<bool, CodecError> {
        let byte = *self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| self.truncated())?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n <= 32` bits as an unsigned big-endian number, `u(n)`. On error the position is
    /// left where it was.
    pub fn read_bits(&mut self, n: u32) -> Result<u32, CodecError> {
        if n > 32 {
            return Err(self.invalid("read_bits", format!("{n} bits requested, at most 32")));
        }
        if (n as usize) > self.bits_left() {
            return Err(self.truncated());
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.read_bit()?);
        }
        // n <= 32, so v < 2^32.
        Ok(v as u32)
    }

    /// Returns the next `n <= 32` bits without consuming them.
    pub fn peek_bits(&self, n: u32) -> Result<u32, CodecError> {
        self.clone().read_bits(n)
    }

    /// Reads a `u(8)`.
    pub fn read_u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.read_bits(8)? as u8)
    }

    /// Skips `n` bits.
    pub fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        if n > self.bits_left() {
            return Err(self.truncated());
        }
        self.pos += n;
        Ok(())
    }

    /// Reads an unsigned Exp-Golomb code, `ue(v)` (H.264 section 9.1). Codes with more than 31
    /// leading zeros (values above `2^32 - 2`) are rejected as invalid.
    pub fn read_ue(&mut self) -> Result<u32, CodecError> {
        let start = self.pos;
        let mut leading_zeros = 0u32;
        while !self.read_bit()? {
            leading_zeros += 1;
            if leading_zeros > 31 {
                self.pos = start;
                return Err(self.invalid("ue(v)", "more than 31 leading zero bits"));
            }
        }
        let suffix = match self.read_bits(leading_zeros) {
            Ok(s) => s,
            Err(e) => {
                self.pos = start;
                return Err(e);
            }
        };
        // (2^lz - 1) + suffix <= 2^32 - 2 for lz <= 31.
        let v = ((1u64 << leading_zeros) - 1) + u64::from(suffix);
        Ok(v as u32)
    }

    /// Reads a signed Exp-Golomb code, `se(v)` (H.264 section 9.1.1): code k maps to
    /// `(-1)^(k+1) * ceil(k / 2)`.
    pub fn read_se(&mut self) -> Result<i32, CodecError> {
        let k = i64::from(self.read_ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        // |v| <= 2^31 - 1 since k <= 2^32 - 2.
        Ok(v as i32)
    }

    /// Reads a `ue(v)` and checks it is at most `max`.
    pub fn read_ue_max(&mut self, field: &'static str, max: u32) -> Result<u32, CodecError> {
        let v = self.read_ue()?;
        if v > max {
            return Err(self.invalid(field, format!("{v} > {max}")));
        }
        Ok(v)
    }

    /// Reads a `se(v)` and checks it is within `min..=max`.
    pub fn read_se_range(
        &mut self,
        field: &'static str,
        min: i32,
        max: i32,
    ) -> Result<i32, CodecError> {
        let v = self.read_se()?;
        if v < min || v > max {
            return Err(self.invalid(field, format!("{v} outside {min}..={max}")));
        }
        Ok(v)
    }
}

/// A byte cursor over a configuration record (`avcC` / `hvcC`), yielding ranges so that callers
/// can slice a [`bytes::Bytes`] without copying.
#[derive(Debug, Clone)]
pub(crate) struct ByteCursor<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> ByteCursor<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        ByteCursor { data, pos: 0, what }
    }

    pub(crate) fn truncated(&self) -> CodecError {
        CodecError::Truncated {
            what: self.what,
            offset: self.pos,
        }
    }

    pub(crate) fn invalid(&self, field: &'static str, detail: impl Into<String>) -> CodecError {
        CodecError::Invalid {
            what: self.what,
            field,
            offset: self.pos,
            detail: detail.into(),
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        let b = *self.data.get(self.pos).ok_or_else(|| self.truncated())?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CodecError> {
        let r = self.take(2)?;
        match self.data.get(r) {
            Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
            _ => Err(self.truncated()),
        }
    }

    /// Consumes `n` bytes and returns their range in the underlying data.
    pub(crate) fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, CodecError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.truncated())?;
        if end > self.data.len() {
            return Err(self.truncated());
        }
        let r = self.pos..end;
        self.pos = end;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulation_prevention_removed() {
        assert_eq!(rbsp_from_nal(&[0, 0, 3, 1]), vec![0, 0, 1]);
        assert_eq!(rbsp_from_nal(&[0, 0, 3, 0, 0, 3]), vec![0, 0, 0, 0]);
        assert_eq!(rbsp_from_nal(&[0, 0, 0, 3]), vec![0, 0, 0]);
        assert_eq!(rbsp_from_nal(&[0, 3, 0, 3]), vec![0, 3, 0, 3]);
        assert_eq!(rbsp_from_nal(&[0, 0, 3]), vec![0, 0]);
        // Real x264 SPS bytes: "... 11 00 00 03 00 01 00 00 03 00 78 ..."
        assert_eq!(
            rbsp_from_nal(&[0x11, 0, 0, 3, 0, 1, 0, 0, 3, 0, 0x78]),
            vec![0x11, 0, 0, 0, 1, 0, 0, 0, 0x78]
        );
        assert!(rbsp_from_nal(&[]).is_empty());
    }

    #[test]
    fn bits_and_exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 | 0000 1000 0 ... : ue = 0, 1, 2, 3, 4; then 7 bits
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.read_ue().unwrap(), 0);
        assert_eq!(r.read_ue().unwrap(), 1);
        assert_eq!(r.read_ue().unwrap(), 2);
        assert_eq!(r.read_ue().unwrap(), 3);
        assert_eq!(r.read_ue().unwrap(), 4);
        assert_eq!(r.bit_position(), 17);
        assert_eq!(r.read_bits(7).unwrap(), 0);
        assert!(matches!(
            r.read_bit(),
            Err(CodecError::Truncated { offset: 3, .. })
        ));

        // se: k = 1, 2, 3, 4 -> 1, -1, 2, -2
        let data = [0b0100_1100, 0b1000_0101, 0];
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.read_se().unwrap(), 1);
        assert_eq!(r.read_se().unwrap(), -1);
        assert_eq!(r.read_se().unwrap(), 2);
        assert_eq!(r.read_se().unwrap(), -2);

        let mut r = BitReader::new(&[0xde, 0xad, 0xbe, 0xef, 0x80], "test");
        assert_eq!(r.peek_bits(32).unwrap(), 0xdead_beef);
        assert_eq!(r.read_bits(32).unwrap(), 0xdead_beef);
        assert!(r.read_bits(33).is_err());
        assert!(r.read_bits(9).is_err());
        assert_eq!(r.bit_position(), 32);
        r.skip(1).unwrap();
        assert!(r.skip(8).is_err());
    }

    #[test]
    fn exp_golomb_extremes() {
        // 31 zeros, a one, 31 ones: the largest accepted code, 2^32 - 2.
        let mut data = vec![0u8, 0, 0, 1];
        data.extend_from_slice(&[0xff, 0xff, 0xff, 0xfe]);
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.read_ue().unwrap(), u32::MAX - 1);
        // As se(v) that is -(2^31 - 1).
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.read_se().unwrap(), -(i32::MAX));
        // 32 zeros: rejected, not wrapped.
        let mut r = BitReader::new(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff], "test");
        assert!(matches!(r.read_ue(), Err(CodecError::Invalid { .. })));
        // All zeros until the end: truncated.
        let mut r = BitReader::new(&[0, 0], "test");
        assert!(matches!(r.read_ue(), Err(CodecError::Truncated { .. })));
        // Prefix present, suffix cut short.
        let mut r = BitReader::new(&[0b0000_0001], "test");
        assert!(matches!(r.read_ue(), Err(CodecError::Truncated { .. })));
    }

    #[test]
    fn byte_cursor() {
        let data = [1u8, 2, 3, 4, 5];
        let mut c = ByteCursor::new(&data, "test");
        assert_eq!(c.u8().unwrap(), 1);
        assert_eq!(c.u16().unwrap(), 0x0203);
        assert_eq!(c.take(2).unwrap(), 3..5);
        assert!(c.u8().is_err());
        assert!(c.take(usize::MAX).is_err());
    }
}
