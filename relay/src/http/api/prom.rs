//! `GET /metrics`: the relay-wide registry ([`crate::metrics::Metrics::render`]) followed by
//! per-channel gauges written by hand in the Prometheus text exposition format 0.0.4:
//! `lockstep_channel_live`, `lockstep_channel_viewers`, `lockstep_channel_bitrate_kbps`,
//! `lockstep_channel_fps`, each labelled `channel="NAME"`, and `lockstep_uptime_seconds`.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use super::{auth, params, uptime_s, Params};
use crate::app::AppState;
use crate::channel::ChannelInfo;

/// The classic Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn handler(State(app): State<AppState>, headers: HeaderMap, q: Params) -> Response {
    let checked = params(q).and_then(|p| auth::check(&app, &headers, &p));
    if let Err(e) = checked {
        return e.into_response();
    }
    let infos: Vec<ChannelInfo> = app.registry.list().iter().map(|c| c.info()).collect();
    let body = render(&app.metrics.render(), &infos, uptime_s());
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The registry's exposition (without its OpenMetrics `# EOF` terminator, which the 0.0.4
/// format does not have) and the per-channel gauges.
pub fn render(registry: &str, channels: &[ChannelInfo], uptime_s: f64) -> String {
    let mut out = String::with_capacity(registry.len() + 256 + channels.len() * 256);
    for line in registry.lines().filter(|l| *l != "# EOF") {
        out.push_str(line);
        out.push('\n');
    }
    gauge(
        &mut out,
        "lockstep_uptime_seconds",
        "Seconds since the relay started.",
        &[((), uptime_s)],
        |_| None,
    );
    let per = |name: &str, help: &str, out: &mut String, value: fn(&ChannelInfo) -> f64| {
        let samples: Vec<(&ChannelInfo, f64)> = channels.iter().map(|c| (c, value(c))).collect();
        gauge(out, name, help, &samples, |c| Some(c.name.as_str()));
    };
    per(
        "lockstep_channel_live",
        "1 while the channel has a publisher.",
        &mut out,
        |c| f64::from(u8::from(c.live)),
    );
    per(
        "lockstep_channel_viewers",
        "Viewers connected to the channel.",
        &mut out,
        |c| c.viewers as f64,
    );
    per(
        "lockstep_channel_bitrate_kbps",
        "Ingest bitrate of the channel, kbit/s.",
        &mut out,
        |c| c.bitrate_kbps,
    );
    per(
        "lockstep_channel_fps",
        "Ingest video frame rate of the channel.",
        &mut out,
        |c| c.fps,
    );
    out
}

/// One gauge family: HELP, TYPE, then a sample per item, labelled `channel` when `label`
/// gives a value.
fn gauge<T>(
    out: &mut String,
    name: &str,
    help: &str,
    samples: &[(T, f64)],
    label: impl Fn(&T) -> Option<&str>,
) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (item, value) in samples {
        match label(item) {
            Some(l) => {
                let _ = writeln!(
                    out,
                    "{name}{{channel=\"{}\"}} {}",
                    escape_label(l),
                    number(*value)
                );
            }
            None => {
                let _ = writeln!(out, "{name} {}", number(*value));
            }
        }
    }
}

/// A sample value: Prometheus spells the non-finite ones `NaN`, `+Inf`, `-Inf`.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Label values escape backslash, double quote and line feed.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text escapes backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_labels() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
    }

    #[test]
    fn renders_gauges() {
        let out = render("# HELP x y\nx_total 1\n# EOF\n", &[], 1.5);
        assert!(!out.contains("# EOF"));
        assert!(out.contains("x_total 1\n"));
        assert!(out.contains("lockstep_uptime_seconds 1.5\n"));
        assert!(out.contains("# TYPE lockstep_channel_viewers gauge\n"));
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(3.0), "3");
    }
}
