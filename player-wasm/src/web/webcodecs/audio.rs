//! Audio: an `AudioDecoder` into an `AudioContext` with the shortest output buffer the
//! platform allows (`latencyHint` 0, see [`LATENCY_HINT_S`]). Each decoded
//! `AudioData` is copied to an `AudioBuffer` and started at the context time that the audio
//! output will play at its due time: `getOutputTimestamp()` pairs a context time with the
//! performance.now() at which that sample leaves the speaker (output latency included), else
//! `currentTime` minus baseLatency + outputLatency. Consecutive buffers are butted together
//! and steered back to their due time by their playback rate
//! ([`crate::control::audio_chain`]). A `GainNode` follows the `<video>`'s volume and muted
//! state; a suspended context (autoplay policy) resumes on the first user gesture.

use js_sys::{Float32Array, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    AudioContext, AudioContextOptions, AudioContextState, AudioData, AudioDataCopyToOptions,
    AudioDecoder, AudioDecoderConfig, AudioDecoderInit, AudioSampleFormat, EncodedAudioChunk,
    EncodedAudioChunkInit, EncodedAudioChunkType, GainNode, HtmlVideoElement,
};

use super::owned::Audio;
use super::{decoder_callbacks, Emit, Event};
use crate::control::audio_chain::{place, Placement};
use crate::control::decode_time::DecodeTimes;
use crate::session::{Chunk, DecoderSetup};
use crate::web::listener::Listener;
use lockstep_media::remux::TrackType;

/// The `AudioContext` latency hint, s: 0 asks for the smallest buffers the platform
/// supports (Chromium clamps it). Measured in headless Chromium here with a probe page
/// (hint 0.001 s): baseLatency 2.9 ms + outputLatency 8 ms, against 10 + 32 ms with
/// `"interactive"`; in the latency bench the player's audio lag fell from 34 to 3–4 ms. Every buffer is scheduled ahead on the context clock by plain
/// `AudioBufferSourceNode`s (no script on the render thread), so small buffers do not starve.
const LATENCY_HINT_S: f64 = 0.0;

pub fn config(s: &DecoderSetup) -> AudioDecoderConfig {
    let c = AudioDecoderConfig::new(&s.codec, s.channels.max(1) as u32, s.sample_rate);
    if let Some(d) = &s.description {
        c.set_description_u8_array(&Uint8Array::from(&d[..]));
    }
    c
}

struct Decoder {
    dec: AudioDecoder,
    _out: Closure<dyn FnMut(AudioData)>,
    _err: Closure<dyn FnMut(JsValue)>,
}

impl Decoder {
    fn new(emit: &Emit, setup: &DecoderSetup) -> Result<Decoder, JsValue> {
        let (out, err) = decoder_callbacks(emit, TrackType::Audio, |a| Event::Audio(Audio(a)));
        let dec = AudioDecoder::new(&AudioDecoderInit::new(
            err.as_ref().unchecked_ref(),
            out.as_ref().unchecked_ref(),
        ))?;
        dec.configure(&config(setup))?;
        Ok(Decoder {
            dec,
            _out: out,
            _err: err,
        })
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.dec.close();
    }
}

fn num(o: &JsValue, k: &str) -> f64 {
    Reflect::get(o, &JsValue::from_str(k))
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0)
}

pub struct AudioPipe {
    emit: Emit,
    decoder: Option<Decoder>,
    setup: Option<DecoderSetup>,
    ctx: AudioContext,
    gain: GainNode,
    next_end: f64,
    pub scheduled: u64,
    pub dropped: u64,
    /// Smoothed scheduled start minus ideal start (audio behind its due time), ms.
    pub error_ms: Option<f64>,
    decode_times: DecodeTimes,
    _listeners: Vec<Listener>,
}

impl AudioPipe {
    pub fn new(emit: Emit, video: &HtmlVideoElement) -> Result<AudioPipe, JsValue> {
        let opts = AudioContextOptions::new();
        opts.set_latency_hint(&JsValue::from_f64(LATENCY_HINT_S));
        let ctx = AudioContext::new_with_context_options(&opts)?;
        let gain = ctx.create_gain()?;
        gain.connect_with_audio_node(&ctx.destination())?;
        let follow = {
            let (ctx, gain, v) = (ctx.clone(), gain.clone(), video.clone());
            move || {
                let g = if v.muted() { 0.0 } else { v.volume() as f32 };
                gain.gain().set_value(g);
                if ctx.state() == AudioContextState::Suspended {
                    if let Ok(p) = ctx.resume() {
                        let _ = p.catch(super::ignore());
                    }
                }
            }
        };
        let f = follow.clone();
        let mut listeners = vec![Listener::new(video, "volumechange", move |_| f())];
        if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
            for kind in ["pointerdown", "keydown", "click"] {
                let f = follow.clone();
                listeners.push(Listener::new(&doc, kind, move |_| f()));
            }
        }
        follow();
        Ok(AudioPipe {
            emit,
            decoder: None,
            setup: None,
            ctx,
            gain,
            next_end: 0.0,
            scheduled: 0,
            dropped: 0,
            error_ms: None,
            // An Opus decoder may move timestamps by its pre-skip (2.5 ms): frames are 10 ms
            // or more apart.
            decode_times: DecodeTimes::new(4.0),
            _listeners: listeners,
        })
    }

    pub fn running(&self) -> bool {
        self.ctx.state() == AudioContextState::Running
    }

    pub fn state(&self) -> &'static str {
        match self.ctx.state() {
            AudioContextState::Running => "running",
            AudioContextState::Suspended => "suspended",
            _ => "closed",
        }
    }

    pub fn configure(&mut self, setup: DecoderSetup) -> Result<(), JsValue> {
        match &self.decoder {
            Some(d) => d.dec.configure(&config(&setup))?,
            None => self.decoder = Some(Decoder::new(&self.emit, &setup)?),
        }
        self.setup = Some(setup);
        Ok(())
    }

    pub fn decode(&mut self, c: &Chunk, now: f64) -> Result<(), JsValue> {
        let Some(setup) = &self.setup else {
            return Ok(());
        };
        if self.decoder.is_none() {
            self.decoder = Some(Decoder::new(&self.emit, setup)?);
        }
        let init = EncodedAudioChunkInit::new(
            &Uint8Array::from(&c.data[..]),
            0,
            EncodedAudioChunkType::Key,
        );
        init.set_timestamp_f64((c.pts_ms * 1000.0).round());
        let chunk = EncodedAudioChunk::new(&init)?;
        if let Some(d) = &self.decoder {
            let idle = d.dec.decode_queue_size() == 0;
            d.dec.decode(&chunk)?;
            self.decode_times.on_submit(c.pts_ms, now, idle);
        }
        Ok(())
    }

    /// 95th percentile of the decode time (submit to output), ms.
    pub fn decode_p95(&self) -> Option<f64> {
        self.decode_times.p95()
    }

    pub fn reset_decode_times(&mut self) {
        self.decode_times.reset_samples();
    }

    pub fn on_error(&mut self) {
        self.decoder = None;
        self.decode_times.forget_pending();
    }

    pub fn discontinuity(&mut self) {
        if let (Some(d), Some(s)) = (&self.decoder, &self.setup) {
            let _ = d.dec.reset();
            let _ = d.dec.configure(&config(s));
        }
        self.decode_times.forget_pending();
        self.next_end = 0.0;
    }

    /// How long audio takes from `start()` to the ear (base + output latency), ms.
    pub fn output_latency_ms(&self) -> f64 {
        (num(&self.ctx, "baseLatency") + num(&self.ctx, "outputLatency")) * 1000.0
    }

    /// The context time at which a sample must start to be heard at performance.now() `due`.
    fn context_time_at(&self, due: f64, now: f64) -> f64 {
        let ts = Reflect::get(&self.ctx, &JsValue::from_str("getOutputTimestamp"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .and_then(|f| f.call0(&self.ctx).ok());
        if let Some(ts) = ts {
            let (ct, pt) = (num(&ts, "contextTime"), num(&ts, "performanceTime"));
            if pt > 0.0 && ct > 0.0 {
                return ct + (due - pt) / 1000.0;
            }
        }
        let latency = num(&self.ctx, "baseLatency") + num(&self.ctx, "outputLatency");
        self.ctx.current_time() + (due - now) / 1000.0 - latency
    }

    /// Schedules decoded audio to be heard at `due` (performance.now() ms).
    pub fn schedule(&mut self, a: Audio, due: f64, now: f64) {
        if self.try_schedule(a, due, now).is_err() {
            self.dropped += 1;
        }
    }

    fn try_schedule(&mut self, a: Audio, due: f64, now: f64) -> Result<(), JsValue> {
        self.decode_times.on_output(a.0.timestamp() / 1000.0, now);
        if !self.running() {
            self.dropped += 1;
            return Ok(());
        }
        let d = &a.0;
        let (n, ch, sr) = (
            d.number_of_frames(),
            d.number_of_channels(),
            d.sample_rate(),
        );
        if n == 0 || ch == 0 {
            return Ok(());
        }
        let ideal = self.context_time_at(due, now);
        let dur = n as f64 / sr as f64;
        let earliest = self.ctx.current_time() + 0.002;
        let Some(Placement {
            when,
            offset,
            rate,
            end,
        }) = place(ideal, self.next_end, dur, earliest)
        else {
            self.dropped += 1;
            return Ok(());
        };
        let buf = self.ctx.create_buffer(ch, n, sr)?;
        let arr = Float32Array::new_with_length(n);
        for c in 0..ch {
            let o = AudioDataCopyToOptions::new(c);
            o.set_format(AudioSampleFormat::F32Planar);
            d.copy_to_with_buffer_source(&arr, &o)?;
            buf.copy_to_channel_with_f32_array(&arr, c as i32)?;
        }
        drop(a);
        let src = self.ctx.create_buffer_source()?;
        src.set_buffer(Some(&buf));
        src.playback_rate().set_value(rate as f32);
        src.connect_with_audio_node(&self.gain)?;
        src.start_with_when_and_grain_offset(when, offset)?;
        self.next_end = end;
        self.scheduled += 1;
        // The start error of the sound played (a skipped late part is not played).
        let err = (when - offset - ideal) * 1000.0;
        let e = self.error_ms.get_or_insert(err);
        *e += (err - *e) * 0.1;
        Ok(())
    }

    pub fn close(self) {
        if let Ok(p) = self.ctx.close() {
            let _ = p.catch(super::ignore());
        }
    }
}
