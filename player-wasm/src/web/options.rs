//! Player options from the JavaScript object given to the constructor.

use js_sys::Reflect;
use wasm_bindgen::JsValue;

#[derive(Debug, Clone)]
pub struct Options {
    /// The WebSocket URL to connect to (`ws://HOST:PORT/ws/NAME`).
    pub url: String,
    pub channel: String,
    /// Desired latency (ms): the player's own target when the relay announces no shared delay.
    pub target_latency_ms: f64,
    /// Follow the relay's shared delay D (synchronized playout) when it announces one.
    pub sync: bool,
    pub muted: bool,
    pub reconnect: bool,
    /// `auto`, `mse` or `webcodecs`.
    pub mode: String,
    /// Whether `targetLatencyMs` was given (else each mode has its own default).
    pub target_set: bool,
    /// For tests only (`debug: { failDecoderAfterFrames: N }`): after N decoded video frames,
    /// every WebCodecs video output counts as a decoder error, which ends in the MSE fallback.
    pub fail_decoder_after: Option<u64>,
}

fn get(obj: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

impl Options {
    /// Reads `{ url, channel, targetLatencyMs, sync, muted, reconnect, mode }`. A `url`
    /// ending in `/ws/NAME` is used as is; a bare `ws://HOST:PORT` gets `/ws/` + channel;
    /// without a url, the page's own host is used.
    pub fn from_js(obj: &JsValue) -> Result<Options, String> {
        let channel = get(obj, "channel")
            .and_then(|v| v.as_string())
            .unwrap_or_default();
        let url = get(obj, "url").and_then(|v| v.as_string());
        let url = match url {
            Some(u) if u.contains("/ws/") => u,
            Some(u) => {
                if channel.is_empty() {
                    return Err(
                        "options.channel is required when options.url has no /ws/NAME path".into(),
                    );
                }
                format!("{}/ws/{}", u.trim_end_matches('/'), channel)
            }
            None => {
                if channel.is_empty() {
                    return Err("options.url or options.channel is required".into());
                }
                let loc = web_sys::window().map(|w| w.location()).ok_or("no window")?;
                let scheme = if loc.protocol().unwrap_or_default() == "https:" {
                    "wss"
                } else {
                    "ws"
                };
                format!("{scheme}://{}/ws/{channel}", loc.host().unwrap_or_default())
            }
        };
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(format!(
                "options.url must be a ws:// or wss:// URL, got {url:?}"
            ));
        }
        let channel = if channel.is_empty() {
            url.rsplit("/ws/")
                .next()
                .unwrap_or("")
                .split(['?', '#'])
                .next()
                .unwrap_or("")
                .to_string()
        } else {
            channel
        };
        let target_given = get(obj, "targetLatencyMs").and_then(|v| v.as_f64());
        let target = target_given.unwrap_or(150.0);
        if !(target.is_finite() && target > 0.0) {
            return Err("options.targetLatencyMs must be a positive number".into());
        }
        let mode = get(obj, "mode")
            .and_then(|v| v.as_string())
            .unwrap_or_else(|| "auto".into());
        if !matches!(mode.as_str(), "auto" | "mse" | "webcodecs") {
            return Err(format!(
                "options.mode must be 'auto', 'mse' or 'webcodecs', got {mode:?}"
            ));
        }
        Ok(Options {
            url,
            channel,
            target_latency_ms: target,
            sync: get(obj, "sync").and_then(|v| v.as_bool()).unwrap_or(true),
            muted: get(obj, "muted").and_then(|v| v.as_bool()).unwrap_or(true),
            reconnect: get(obj, "reconnect")
                .and_then(|v| v.as_bool())
                .unwrap_or(true),
            mode,
            target_set: target_given.is_some(),
            fail_decoder_after: get(obj, "debug")
                .and_then(|d| get(&d, "failDecoderAfterFrames"))
                .and_then(|v| v.as_f64())
                .map(|n| n.max(0.0) as u64),
        })
    }
}
