//! The typed `onMetaData` script tag (FLV spec v10.1 Annex E.5 "onMetaData"; Enhanced RTMP
//! for FourCC codec ids such as `"hvc1"`).
//!
//! A script tag body is AMF0: the string `"onMetaData"` then an ECMA array (or object) of
//! properties. RTMP publishers send it as a data message prefixed by `"@setDataFrame"`, which
//! is accepted too. Known keys become typed fields; everything else (and known keys with an
//! unexpected type) is kept in [`Metadata::other`] in wire order.

use super::amf0::{self, AmfError, Value};

/// A codec id in metadata: an FLV `CodecID` number, or an Enhanced RTMP FourCC string.
#[derive(Debug, Clone, PartialEq)]
pub enum CodecId {
    Number(f64),
    FourCc(String),
}

impl CodecId {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Number(n) => Some(CodecId::Number(*n)),
            Value::String(s) => Some(CodecId::FourCc(s.clone())),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        match self {
            CodecId::Number(n) => Value::Number(*n),
            CodecId::FourCc(s) => Value::String(s.clone()),
        }
    }
}

/// The properties of an `onMetaData` script tag.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metadata {
    /// `width`, pixels.
    pub width: Option<f64>,
    /// `height`, pixels.
    pub height: Option<f64>,
    /// `framerate` (or `fps`), frames per second.
    pub frame_rate: Option<f64>,
    /// `videocodecid`: FLV CodecID (7 = AVC) or a FourCC (`"hvc1"`, `"av01"`).
    pub video_codec_id: Option<CodecId>,
    /// `videodatarate`, kbit/s.
    pub video_data_rate: Option<f64>,
    /// `audiocodecid`: FLV SoundFormat (10 = AAC, 2 = MP3) or a FourCC.
    pub audio_codec_id: Option<CodecId>,
    /// `audiodatarate`, kbit/s.
    pub audio_data_rate: Option<f64>,
    /// `audiosamplerate`, Hz.
    pub audio_sample_rate: Option<f64>,
    /// `audiosamplesize`, bits.
    pub audio_sample_size: Option<f64>,
    /// `stereo`.
    pub stereo: Option<bool>,
    /// `duration`, seconds (0 for live streams).
    pub duration: Option<f64>,
    /// `encoder`.
    pub encoder: Option<String>,
    /// Every other property, in wire order.
    pub other: Vec<(String, Value)>,
}

/// Parses a script tag body. Returns `Ok(Some(_))` for `onMetaData` (optionally preceded by
/// `@setDataFrame`) followed by an ECMA array or object, `Ok(None)` for other script data.
/// Bytes after the metadata value are ignored.
pub fn parse_script_tag(body: &[u8]) -> Result<Option<Metadata>, AmfError> {
    let mut d = amf0::Decoder::new(body);
    if d.is_empty() {
        return Ok(None);
    }
    let mut name = d.decode()?;
    if name.as_str() == Some("@setDataFrame") {
        if d.is_empty() {
            return Ok(None);
        }
        name = d.decode()?;
    }
    if name.as_str() != Some("onMetaData") {
        return Ok(None);
    }
    if d.is_empty() {
        return Ok(None);
    }
    let value = d.decode()?;
    Ok(value.properties().map(Metadata::from_properties))
}

impl Metadata {
    /// Builds metadata from the properties of the `onMetaData` array.
    pub fn from_properties(props: &[(String, Value)]) -> Self {
        let mut m = Metadata::default();
        for (key, value) in props {
            let num = value.as_f64();
            let used = match key.as_str() {
                "width" => set(&mut m.width, num),
                "height" => set(&mut m.height, num),
                "framerate" | "fps" => set(&mut m.frame_rate, num),
                "videocodecid" => set(&mut m.video_codec_id, CodecId::from_value(value)),
                "videodatarate" => set(&mut m.video_data_rate, num),
                "audiocodecid" => set(&mut m.audio_codec_id, CodecId::from_value(value)),
                "audiodatarate" => set(&mut m.audio_data_rate, num),
                "audiosamplerate" => set(&mut m.audio_sample_rate, num),
                "audiosamplesize" => set(&mut m.audio_sample_size, num),
                "stereo" => match value {
                    Value::Boolean(b) => set(&mut m.stereo, Some(*b)),
                    _ => false,
                },
                "duration" => set(&mut m.duration, num),
                "encoder" => set(&mut m.encoder, value.as_str().map(str::to_owned)),
                _ => false,
            };
            if !used {
                m.other.push((key.clone(), value.clone()));
            }
        }
        m
    }

    /// The properties as an `onMetaData` ECMA array would list them: known fields first (in
    /// the FLV spec's order), then [`Metadata::other`].
    pub fn to_properties(&self) -> Vec<(String, Value)> {
        let mut p: Vec<(String, Value)> = Vec::new();
        let num = |p: &mut Vec<(String, Value)>, k: &str, v: Option<f64>| {
            if let Some(v) = v {
                p.push((k.to_owned(), Value::Number(v)));
            }
        };
        num(&mut p, "duration", self.duration);
        num(&mut p, "width", self.width);
        num(&mut p, "height", self.height);
        num(&mut p, "videodatarate", self.video_data_rate);
        num(&mut p, "framerate", self.frame_rate);
        if let Some(c) = &self.video_codec_id {
            p.push(("videocodecid".into(), c.to_value()));
        }
        num(&mut p, "audiodatarate", self.audio_data_rate);
        num(&mut p, "audiosamplerate", self.audio_sample_rate);
        num(&mut p, "audiosamplesize", self.audio_sample_size);
        if let Some(s) = self.stereo {
            p.push(("stereo".into(), Value::Boolean(s)));
        }
        if let Some(c) = &self.audio_codec_id {
            p.push(("audiocodecid".into(), c.to_value()));
        }
        if let Some(e) = &self.encoder {
            p.push(("encoder".into(), Value::String(e.clone())));
        }
        p.extend(self.other.iter().cloned());
        p
    }

    /// An `onMetaData` script tag body: the string `"onMetaData"` and an ECMA array.
    pub fn to_script_body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        amf0::encode_string(&mut out, "onMetaData");
        amf0::encode_value(&mut out, &Value::EcmaArray(self.to_properties()));
        out
    }
}

/// Stores `v` in `slot` when present; returns whether the property was used.
fn set<T>(slot: &mut Option<T>, v: Option<T>) -> bool {
    match v {
        Some(v) => {
            *slot = Some(v);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first tag body of
    /// `ffmpeg -f lavfi -i testsrc=size=320x240:rate=25 -f lavfi -i sine=...:sample_rate=44100
    ///  -t 1 -c:v libx264 -pix_fmt yuv420p -c:a aac -f flv av.flv` (ffmpeg 5.1).
    const FFMPEG_ONMETADATA: &[u8] =
        include_bytes!("../../testdata/ffmpeg-testsrc-h264-aac.onmetadata.bin");

    #[test]
    fn ffmpeg_onmetadata() {
        let m = parse_script_tag(FFMPEG_ONMETADATA).unwrap().unwrap();
        assert_eq!(m.width, Some(320.0));
        assert_eq!(m.height, Some(240.0));
        assert_eq!(m.frame_rate, Some(25.0));
        assert_eq!(m.video_codec_id, Some(CodecId::Number(7.0)));
        assert_eq!(m.video_data_rate, Some(0.0));
        assert_eq!(m.audio_codec_id, Some(CodecId::Number(10.0)));
        assert_eq!(m.audio_sample_rate, Some(44100.0));
        assert_eq!(m.audio_sample_size, Some(16.0));
        assert_eq!(m.stereo, Some(false));
        assert_eq!(m.duration, Some(1.08));
        assert_eq!(m.encoder.as_deref(), Some("Lavf59.27.100"));
        assert!(m.audio_data_rate.is_some());
        assert_eq!(m.other.len(), 1);
        assert_eq!(m.other[0].0, "filesize");
        assert_eq!(m.other[0].1, Value::Number(17992.0));
    }

    #[test]
    fn roundtrip_ffmpeg() {
        let m = parse_script_tag(FFMPEG_ONMETADATA).unwrap().unwrap();
        let body = m.to_script_body();
        assert_eq!(parse_script_tag(&body).unwrap().unwrap(), m);
        // The same properties in the same order as ffmpeg wrote them (values included).
        let original = amf0::decode_all(FFMPEG_ONMETADATA).unwrap();
        let mut orig_props = original[1].properties().unwrap().to_vec();
        let mut ours = amf0::decode_all(&body).unwrap()[1]
            .properties()
            .unwrap()
            .to_vec();
        orig_props.sort_by(|a, b| a.0.cmp(&b.0));
        ours.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(orig_props, ours);
    }

    #[test]
    fn roundtrip_enhanced_rtmp() {
        let m = Metadata {
            width: Some(1920.0),
            height: Some(1080.0),
            frame_rate: Some(59.94),
            video_codec_id: Some(CodecId::FourCc("hvc1".into())),
            video_data_rate: Some(6000.0),
            audio_codec_id: Some(CodecId::Number(10.0)),
            audio_data_rate: Some(160.0),
            audio_sample_rate: Some(48000.0),
            audio_sample_size: Some(16.0),
            stereo: Some(true),
            duration: Some(0.0),
            encoder: Some("obs-output module (libobs version 30.0.0)".into()),
            other: vec![
                ("2.1".into(), Value::Boolean(false)),
                (
                    "nested".into(),
                    Value::Object(vec![("k".into(), Value::String("v".into()))]),
                ),
            ],
        };
        let body = m.to_script_body();
        assert_eq!(parse_script_tag(&body).unwrap(), Some(m.clone()));
        assert_eq!(
            parse_script_tag(&Metadata::default().to_script_body()).unwrap(),
            Some(Metadata::default())
        );
    }

    #[test]
    fn set_data_frame_and_aliases() {
        let mut body = Vec::new();
        amf0::encode_string(&mut body, "@setDataFrame");
        amf0::encode_string(&mut body, "onMetaData");
        // An object (not an ECMA array), `fps`, and a width with the wrong type.
        amf0::encode_value(
            &mut body,
            &Value::Object(vec![
                ("fps".into(), Value::Number(30.0)),
                ("width".into(), Value::String("1280".into())),
                ("videocodecid".into(), Value::String("av01".into())),
            ]),
        );
        body.extend_from_slice(b"trailing junk");
        let m = parse_script_tag(&body).unwrap().unwrap();
        assert_eq!(m.frame_rate, Some(30.0));
        assert_eq!(m.width, None);
        assert_eq!(m.video_codec_id, Some(CodecId::FourCc("av01".into())));
        assert_eq!(
            m.other,
            vec![("width".into(), Value::String("1280".into()))]
        );
    }

    #[test]
    fn other_script_data_is_none() {
        assert_eq!(parse_script_tag(&[]).unwrap(), None);
        let mut body = Vec::new();
        amf0::encode_string(&mut body, "onCuePoint");
        amf0::encode_ecma_array(&mut body, &[("a", Value::Null)]);
        assert_eq!(parse_script_tag(&body).unwrap(), None);
        let mut body = Vec::new();
        amf0::encode_string(&mut body, "onMetaData");
        assert_eq!(parse_script_tag(&body).unwrap(), None);
        amf0::encode_number(&mut body, 1.0);
        assert_eq!(parse_script_tag(&body).unwrap(), None);
        let mut body = Vec::new();
        amf0::encode_number(&mut body, 1.0);
        assert_eq!(parse_script_tag(&body).unwrap(), None);
    }

    #[test]
    fn truncated_prefixes_never_panic() {
        let full = parse_script_tag(FFMPEG_ONMETADATA).unwrap();
        for n in 0..FFMPEG_ONMETADATA.len() {
            // ECMA arrays cut at a property boundary are accepted (as ffmpeg does), with the
            // properties before the cut; anything else is None (no array yet) or an error.
            match parse_script_tag(&FFMPEG_ONMETADATA[..n]) {
                Ok(Some(m)) => assert!(m.to_properties().len() <= 13, "{n} {m:?}"),
                Ok(None) => assert!(n == 0 || n == 13, "{n}"),
                Err(_) => {}
            }
        }
        let without_end = &FFMPEG_ONMETADATA[..FFMPEG_ONMETADATA.len() - 3];
        assert_eq!(parse_script_tag(without_end).unwrap(), full);
        // And corrupted bytes.
        for i in 0..FFMPEG_ONMETADATA.len() {
            let mut b = FFMPEG_ONMETADATA.to_vec();
            b[i] ^= 0xff;
            let _ = parse_script_tag(&b);
        }
    }
}
