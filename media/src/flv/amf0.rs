//! AMF0, the encoding of FLV script data and RTMP commands (Adobe "Action Message Format --
//! AMF 0" specification, sections 2.1-2.14; FLV spec Annex E.4.4 SCRIPTDATA).
//!
//! Decoding supports number, boolean, string, object, null, undefined, reference (the index is
//! kept, not resolved), ECMA array, strict array, date and long string. Other markers
//! (movieclip, unsupported, recordset, XML document, typed object, AVM+) are errors.
//! Nesting is capped at [`MAX_DEPTH`] and a decode call produces at most [`MAX_VALUES`] values,
//! so hostile input can neither recurse deeply nor make large allocations: containers never
//! preallocate from a count read off the wire.
//!
//! Strings that are not valid UTF-8 are decoded lossily (U+FFFD), so one bad title does not
//! lose the whole `onMetaData`.
//!
//! The encoder writes the same types; the relay uses it for `onMetaData` in HTTP-FLV output.

/// Deepest nesting of objects / arrays accepted (the top-level value is depth 0).
pub const MAX_DEPTH: usize = 32;
/// Most values (at any depth, counting container entries) one decode call produces.
pub const MAX_VALUES: usize = 1 << 18;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;
const DATE: u8 = 0x0b;
const LONG_STRING: u8 = 0x0c;

/// A decoded AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    String(String),
    /// Anonymous object: properties in wire order.
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    /// Associative array: properties in wire order (the count on the wire is ignored).
    EcmaArray(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
    /// Milliseconds since the Unix epoch, and the (reserved, normally 0) time zone.
    Date {
        millis: f64,
        tz: i16,
    },
    /// Reference to an earlier complex object by index; not resolved.
    Reference(u16),
}

impl Value {
    /// The string, for `String` values.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    /// The number, for `Number` values.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
    /// The properties, for `Object` and `EcmaArray` values.
    pub fn properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => Some(p),
            _ => None,
        }
    }
}

/// Why AMF0 data could not be decoded. `offset` is a byte offset into the decoded buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmfError {
    #[error("AMF0: truncated at byte {offset}")]
    Truncated { offset: usize },
    #[error("AMF0: unsupported type marker 0x{marker:02x} at byte {offset}")]
    UnsupportedMarker { marker: u8, offset: usize },
    #[error("AMF0: object-end marker outside an object at byte {offset}")]
    UnexpectedObjectEnd { offset: usize },
    #[error("AMF0: nesting deeper than {MAX_DEPTH} at byte {offset}")]
    TooDeep { offset: usize },
    #[error("AMF0: more than {MAX_VALUES} values at byte {offset}")]
    TooManyValues { offset: usize },
}

/// Decodes values until `data` is exhausted.
pub fn decode_all(data: &[u8]) -> Result<Vec<Value>, AmfError> {
    let mut d = Decoder::new(data);
    let mut out = Vec::new();
    while d.pos < data.len() {
        out.push(d.value(0)?);
    }
    Ok(out)
}

/// Decodes one value from the start of `data`; returns it with the number of bytes it took.
pub fn decode_value(data: &[u8]) -> Result<(Value, usize), AmfError> {
    let mut d = Decoder::new(data);
    let v = d.value(0)?;
    Ok((v, d.pos))
}

/// Sequential AMF0 decoder keeping its position, for decoding several values one at a time
/// (as [`crate::flv::metadata`] does) with offsets relative to the whole buffer.
#[derive(Debug)]
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    values: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Decoder {
            data,
            pos: 0,
            values: 0,
        }
    }

    /// Byte offset of the next value.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Decodes the next value.
    pub fn decode(&mut self) -> Result<Value, AmfError> {
        self.value(0)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], AmfError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or(AmfError::Truncated {
                offset: self.data.len(),
            })?;
        let s = self.data.get(self.pos..end).ok_or(AmfError::Truncated {
            offset: self.data.len(),
        })?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AmfError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, AmfError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, AmfError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, AmfError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, AmfError> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    fn utf8(&mut self, len: usize) -> Result<String, AmfError> {
        let bytes = self.take(len)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn count_value(&mut self, offset: usize) -> Result<(), AmfError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(AmfError::TooManyValues { offset });
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value, AmfError> {
        let offset = self.pos;
        self.count_value(offset)?;
        let marker = self.u8()?;
        Ok(match marker {
            NUMBER => Value::Number(self.f64()?),
            BOOLEAN => Value::Boolean(self.u8()? != 0),
            STRING => {
                let len = self.u16()?;
                Value::String(self.utf8(usize::from(len))?)
            }
            LONG_STRING => {
                let len = self.u32()?;
                let len = usize::try_from(len).map_err(|_| AmfError::Truncated {
                    offset: self.data.len(),
                })?;
                Value::String(self.utf8(len)?)
            }
            OBJECT => Value::Object(self.properties(depth, offset, false)?),
            ECMA_ARRAY => {
                let _count_hint = self.u32()?;
                Value::EcmaArray(self.properties(depth, offset, true)?)
            }
            STRICT_ARRAY => {
                let depth = self.nest(depth, offset)?;
                let count = self.u32()?;
                let mut items = Vec::new();
                for _ in 0..count {
                    if self.is_empty() {
                        return Err(AmfError::Truncated {
                            offset: self.data.len(),
                        });
                    }
                    items.push(self.value(depth)?);
                }
                Value::StrictArray(items)
            }
            NULL => Value::Null,
            UNDEFINED => Value::Undefined,
            REFERENCE => Value::Reference(self.u16()?),
            DATE => {
                let millis = self.f64()?;
                let tz = i16::from_be_bytes(self.array()?);
                Value::Date { millis, tz }
            }
            OBJECT_END => return Err(AmfError::UnexpectedObjectEnd { offset }),
            marker => return Err(AmfError::UnsupportedMarker { marker, offset }),
        })
    }

    fn nest(&self, depth: usize, offset: usize) -> Result<usize, AmfError> {
        let depth = depth + 1;
        if depth > MAX_DEPTH {
            return Err(AmfError::TooDeep { offset });
        }
        Ok(depth)
    }

    /// Property list of an object or ECMA array, up to the empty-key object-end marker.
    /// ECMA arrays that simply stop at the end of the data are accepted (some encoders omit
    /// the end marker); objects are not.
    fn properties(
        &mut self,
        depth: usize,
        offset: usize,
        lenient_end: bool,
    ) -> Result<Vec<(String, Value)>, AmfError> {
        let depth = self.nest(depth, offset)?;
        let mut props = Vec::new();
        loop {
            if lenient_end && self.is_empty() {
                return Ok(props);
            }
            let key_len = self.u16()?;
            if key_len == 0 && self.data.get(self.pos) == Some(&OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            // (An empty key followed by a value is allowed by the grammar and kept.)
            let key = self.utf8(usize::from(key_len))?;
            let v = self.value(depth)?;
            props.push((key, v));
        }
    }
}

/// Writes a string value: marker 0x02 with a 16-bit length, or a long string (0x0c) when the
/// string is longer than 65535 bytes.
pub fn encode_string(out: &mut Vec<u8>, s: &str) {
    match u16::try_from(s.len()) {
        Ok(len) => {
            out.push(STRING);
            out.extend_from_slice(&len.to_be_bytes());
        }
        Err(_) => {
            out.push(LONG_STRING);
            out.extend_from_slice(&saturating_u32(s.len()).to_be_bytes());
        }
    }
    out.extend_from_slice(s.as_bytes());
}

/// Writes a number value.
pub fn encode_number(out: &mut Vec<u8>, n: f64) {
    out.push(NUMBER);
    out.extend_from_slice(&n.to_be_bytes());
}

/// Writes a boolean value.
pub fn encode_bool(out: &mut Vec<u8>, b: bool) {
    out.push(BOOLEAN);
    out.push(u8::from(b));
}

/// Writes an ECMA array with the given properties.
pub fn encode_ecma_array(out: &mut Vec<u8>, props: &[(&str, Value)]) {
    out.push(ECMA_ARRAY);
    out.extend_from_slice(&saturating_u32(props.len()).to_be_bytes());
    for (k, v) in props {
        encode_key(out, k);
        encode_value(out, v);
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

/// Writes any value.
pub fn encode_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Number(n) => encode_number(out, *n),
        Value::Boolean(b) => encode_bool(out, *b),
        Value::String(s) => encode_string(out, s),
        Value::Object(props) => {
            out.push(OBJECT);
            encode_properties(out, props);
        }
        Value::Null => out.push(NULL),
        Value::Undefined => out.push(UNDEFINED),
        Value::EcmaArray(props) => {
            out.push(ECMA_ARRAY);
            out.extend_from_slice(&saturating_u32(props.len()).to_be_bytes());
            encode_properties(out, props);
        }
        Value::StrictArray(items) => {
            out.push(STRICT_ARRAY);
            // A Vec of more than u32::MAX values cannot be encoded; write the first u32::MAX.
            let count = saturating_u32(items.len());
            out.extend_from_slice(&count.to_be_bytes());
            for item in items.iter().take(count as usize) {
                encode_value(out, item);
            }
        }
        Value::Date { millis, tz } => {
            out.push(DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&tz.to_be_bytes());
        }
        Value::Reference(i) => {
            out.push(REFERENCE);
            out.extend_from_slice(&i.to_be_bytes());
        }
    }
}

fn encode_properties(out: &mut Vec<u8>, props: &[(String, Value)]) {
    for (k, v) in props {
        encode_key(out, k);
        encode_value(out, v);
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

/// Writes a property name (UTF-8 with a 16-bit length, no marker). Names longer than 65535
/// bytes are cut at the last character boundary that fits.
fn encode_key(out: &mut Vec<u8>, key: &str) {
    let mut end = key.len().min(usize::from(u16::MAX));
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    let key = key.get(..end).unwrap_or("");
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key.as_bytes());
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: &Value) {
        let mut out = Vec::new();
        encode_value(&mut out, v);
        let (back, used) = decode_value(&out).unwrap();
        assert_eq!(&back, v);
        assert_eq!(used, out.len());
    }

    #[test]
    fn scalars() {
        assert_eq!(
            decode_all(&[0x00, 0x40, 0x59, 0, 0, 0, 0, 0, 0]).unwrap(),
            vec![Value::Number(100.0)]
        );
        assert_eq!(
            decode_all(&[0x01, 0x01, 0x01, 0x00, 0x05, 0x06, 0x07, 0x01, 0x02]).unwrap(),
            vec![
                Value::Boolean(true),
                Value::Boolean(false),
                Value::Null,
                Value::Undefined,
                Value::Reference(0x0102)
            ]
        );
        assert_eq!(
            decode_all(b"\x02\x00\x03abc\x0c\x00\x00\x00\x02hi").unwrap(),
            vec![Value::String("abc".into()), Value::String("hi".into())]
        );
        let mut date = vec![0x0b];
        date.extend_from_slice(&1.5e12f64.to_be_bytes());
        date.extend_from_slice(&(-60i16).to_be_bytes());
        assert_eq!(
            decode_all(&date).unwrap(),
            vec![Value::Date {
                millis: 1.5e12,
                tz: -60
            }]
        );
    }

    #[test]
    fn containers() {
        // { a: 1.0, b: [true, null] } in an ECMA array with a wrong count hint.
        let mut data = vec![0x08, 0, 0, 0, 0];
        data.extend_from_slice(b"\x00\x01a\x00");
        data.extend_from_slice(&1.0f64.to_be_bytes());
        data.extend_from_slice(b"\x00\x01b\x0a\x00\x00\x00\x02\x01\x01\x05");
        data.extend_from_slice(b"\x00\x00\x09");
        let v = decode_all(&data).unwrap();
        assert_eq!(
            v,
            vec![Value::EcmaArray(vec![
                ("a".into(), Value::Number(1.0)),
                (
                    "b".into(),
                    Value::StrictArray(vec![Value::Boolean(true), Value::Null])
                ),
            ])]
        );
        // ECMA array missing its end marker at the end of the data is accepted.
        let cut = &data[..data.len() - 3];
        assert_eq!(decode_all(cut).unwrap(), v);
        // An object missing its end marker is not.
        let mut obj = data.clone();
        obj[0] = 0x03;
        obj.drain(1..5);
        assert!(matches!(
            decode_all(&obj).unwrap()[0],
            Value::Object(ref p) if p.len() == 2
        ));
        assert_eq!(
            decode_all(&obj[..obj.len() - 3]),
            Err(AmfError::Truncated {
                offset: obj.len() - 3
            })
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            decode_all(&[0x00, 1, 2]),
            Err(AmfError::Truncated { offset: 3 })
        );
        assert_eq!(
            decode_all(&[0x05, 0x10]),
            Err(AmfError::UnsupportedMarker {
                marker: 0x10,
                offset: 1
            })
        );
        for m in [0x04u8, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0xff] {
            assert!(matches!(
                decode_all(&[m]),
                Err(AmfError::UnsupportedMarker { .. })
            ));
        }
        assert_eq!(
            decode_all(&[0x09]),
            Err(AmfError::UnexpectedObjectEnd { offset: 0 })
        );
        // Long string claiming 4 GiB.
        assert_eq!(
            decode_all(&[0x0c, 0xff, 0xff, 0xff, 0xff, b'a']),
            Err(AmfError::Truncated { offset: 6 })
        );
        // Strict array claiming 4 billion entries is refused when the data runs out.
        assert_eq!(
            decode_all(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x05, 0x05]),
            Err(AmfError::Truncated { offset: 7 })
        );
    }

    #[test]
    fn depth_is_capped() {
        // MAX_DEPTH nested strict arrays decode; one more is refused.
        let nested = |n: usize| {
            let mut d = Vec::new();
            for _ in 0..n {
                d.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
            }
            d.push(0x05);
            d
        };
        assert!(decode_all(&nested(MAX_DEPTH)).is_ok());
        assert!(matches!(
            decode_all(&nested(MAX_DEPTH + 1)),
            Err(AmfError::TooDeep { .. })
        ));
        // Objects too.
        let mut d = Vec::new();
        for _ in 0..100 {
            d.extend_from_slice(b"\x03\x00\x01k");
        }
        assert!(matches!(decode_all(&d), Err(AmfError::TooDeep { .. })));
    }

    #[test]
    fn value_count_is_capped() {
        let data = vec![0x05u8; MAX_VALUES + 1];
        assert_eq!(
            decode_all(&data),
            Err(AmfError::TooManyValues { offset: MAX_VALUES })
        );
        assert_eq!(decode_all(&data[..MAX_VALUES]).unwrap().len(), MAX_VALUES);
    }

    #[test]
    fn invalid_utf8_is_lossy() {
        assert_eq!(
            decode_all(b"\x02\x00\x02\xffa").unwrap(),
            vec![Value::String("\u{fffd}a".into())]
        );
    }

    #[test]
    fn encode_roundtrips() {
        roundtrip(&Value::Number(-0.25));
        roundtrip(&Value::Boolean(true));
        roundtrip(&Value::String("héllo".into()));
        roundtrip(&Value::String("x".repeat(70_000)));
        roundtrip(&Value::Null);
        roundtrip(&Value::Undefined);
        roundtrip(&Value::Reference(7));
        roundtrip(&Value::Date {
            millis: 1e12,
            tz: 0,
        });
        roundtrip(&Value::Object(vec![
            ("a".into(), Value::Number(1.0)),
            ("".into(), Value::Null),
            (
                "nested".into(),
                Value::EcmaArray(vec![(
                    "s".into(),
                    Value::StrictArray(vec![Value::String("q".into()), Value::Boolean(false)]),
                )]),
            ),
        ]));
        let mut out = Vec::new();
        encode_ecma_array(
            &mut out,
            &[
                ("w", Value::Number(640.0)),
                ("e", Value::String("x".into())),
            ],
        );
        assert_eq!(&out[..5], &[0x08, 0, 0, 0, 2]);
        assert_eq!(&out[out.len() - 3..], &[0, 0, 9]);
        assert_eq!(
            decode_all(&out).unwrap(),
            vec![Value::EcmaArray(vec![
                ("w".into(), Value::Number(640.0)),
                ("e".into(), Value::String("x".into()))
            ])]
        );
        // Over-long keys are cut, not panicked on.
        let long_key = "é".repeat(40_000);
        let mut out = Vec::new();
        encode_value(&mut out, &Value::Object(vec![(long_key, Value::Null)]));
        let (v, _) = decode_value(&out).unwrap();
        assert_eq!(v.properties().unwrap()[0].0.len(), 65534);
    }

    #[test]
    fn truncated_prefixes_never_panic() {
        let mut out = Vec::new();
        encode_value(
            &mut out,
            &Value::Object(vec![
                ("a".into(), Value::Number(1.0)),
                (
                    "b".into(),
                    Value::StrictArray(vec![Value::Date { millis: 0.0, tz: 0 }]),
                ),
                ("c".into(), Value::String("str".into())),
            ]),
        );
        for n in 0..out.len() {
            assert!(decode_all(&out[..n]).is_err() || n == 0);
        }
    }
}
