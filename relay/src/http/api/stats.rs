//! `GET /api/stats[?channel=NAME][&page=N][&per_page=M]`: relay uptime and totals, and per
//! channel its facts, a summary over its viewers and one page of its viewer list.
//!
//! The summary is computed in one pass over the viewers' live counters (no per-viewer
//! allocation); only the viewers of the requested page are turned into [`ViewerInfo`]s, so
//! the answer stays small and quick with thousands of viewers. Pages start at 1.
//!
//! [`collect`] is shared with the live stream (`stream.rs`), and [`summarize`] with the
//! history recorder (`history.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{auth, params, uptime_s, ApiError, Params, Urls};
use crate::app::AppState;
use crate::channel::{Channel, ChannelInfo, ViewerInfo, ViewerKind, ViewerStats};

/// Viewers per page unless `per_page` says otherwise.
pub const DEFAULT_PER_PAGE: usize = 100;
/// Most viewers per page.
pub const MAX_PER_PAGE: usize = 1000;

#[derive(Debug, serde::Serialize)]
pub struct Stats {
    version: &'static str,
    uptime_s: f64,
    totals: Totals,
    channels: Vec<ChannelStats>,
}

/// Relay-wide figures. `viewers`, `publishers` and `bytes_in` are summed over the channels;
/// `bytes_out` and the frame counters include viewers that have left.
#[derive(Debug, Default, serde::Serialize)]
struct Totals {
    channels: usize,
    publishers: usize,
    viewers: usize,
    bytes_in: u64,
    bytes_out: u64,
    frames_out: u64,
    frames_skipped: u64,
    rejected_messages: u64,
}

#[derive(Debug, serde::Serialize)]
struct ChannelStats {
    #[serde(flatten)]
    info: ChannelInfo,
    urls: Urls,
    summary: Summary,
    viewer_list: ViewerPage,
}

/// Aggregates over a channel's viewers. Playback figures come from each viewer's last
/// feedback; viewers that never sent any are counted in `viewers` but not in `reporting`.
#[derive(Debug, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub viewers: usize,
    pub websocket: usize,
    pub http_flv: usize,
    /// Viewers that sent feedback.
    pub reporting: usize,
    /// Relay ingest to presentation, over viewers that reported a latency.
    pub latency_ms: Option<Spread>,
    pub buffer_ms_avg: Option<f64>,
    pub bandwidth_kbps_avg: Option<f64>,
    pub bytes_sent: u64,
    pub frames_skipped: u64,
    pub skips: u64,
    pub stalls: u64,
    /// Frames the viewers' players dropped, summed.
    pub dropped_frames: u64,
    /// The largest distance from the shared schedule, either way, over viewers reporting one.
    pub sync_error_ms_max_abs: Option<u32>,
    /// Reporting viewers per playback path.
    pub modes: Modes,
}

/// How many reporting viewers play through each path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Modes {
    pub mse: usize,
    pub webcodecs: usize,
}

/// Min / max / mean / median / 95th percentile (nearest rank) of a set of values.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spread {
    pub min: i32,
    pub max: i32,
    pub avg: f64,
    pub p50: i32,
    pub p95: i32,
}

#[derive(Debug, serde::Serialize)]
struct ViewerPage {
    page: usize,
    per_page: usize,
    total: usize,
    pages: usize,
    viewers: Vec<ViewerInfo>,
}

/// Which page of each channel's viewer list to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: usize,
    pub per_page: usize,
}

impl Paging {
    /// From `page` and `per_page` (`default_per_page` when absent): numbers, page ≥ 1;
    /// `per_page` is clamped to 1..=1000.
    pub fn with_default(
        p: &HashMap<String, String>,
        default_per_page: usize,
    ) -> Result<Self, ApiError> {
        let num = |key: &str, default: usize| -> Result<usize, ApiError> {
            match p.get(key) {
                None => Ok(default),
                Some(v) => v.trim().parse::<usize>().map_err(|_| {
                    ApiError::BadQuery(format!("{key} must be a whole number, got {v:?}"))
                }),
            }
        };
        let page = num("page", 1)?;
        if page == 0 {
            return Err(ApiError::BadQuery("page starts at 1".into()));
        }
        let per_page = num("per_page", default_per_page)?.clamp(1, MAX_PER_PAGE);
        Ok(Paging { page, per_page })
    }

    /// The index range of this page within `total` items (empty past the end).
    fn range(&self, total: usize) -> std::ops::Range<usize> {
        let start = (self.page - 1).saturating_mul(self.per_page).min(total);
        let end = start.saturating_add(self.per_page).min(total);
        start..end
    }
}

/// What to report: one channel or all of them, and which page of their viewer lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub channel: Option<String>,
    pub paging: Paging,
}

impl Selection {
    /// From `channel`, `page` and `per_page` (`default_per_page` when absent).
    pub fn from_params(
        p: &HashMap<String, String>,
        default_per_page: usize,
    ) -> Result<Self, ApiError> {
        Ok(Selection {
            channel: p.get("channel").cloned(),
            paging: Paging::with_default(p, default_per_page)?,
        })
    }
}

pub async fn handler(State(app): State<AppState>, headers: HeaderMap, q: Params) -> Response {
    match stats(&app, &headers, q) {
        Ok(s) => ([(header::CACHE_CONTROL, "no-store")], Json(s)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn stats(app: &AppState, headers: &HeaderMap, q: Params) -> Result<Stats, ApiError> {
    let p = params(q)?;
    auth::check(app, headers, &p)?;
    collect(app, &Selection::from_params(&p, DEFAULT_PER_PAGE)?)
}

/// The statistics of the selected channels (an unknown `channel` is an error).
pub fn collect(app: &AppState, sel: &Selection) -> Result<Stats, ApiError> {
    let paging = sel.paging;
    let channels: Vec<Arc<Channel>> = match &sel.channel {
        Some(name) => vec![app
            .registry
            .get(name)
            .ok_or_else(|| ApiError::NoSuchChannel(name.clone()))?],
        None => app.registry.list(),
    };
    let mut totals = Totals {
        bytes_out: app.metrics.bytes_out.get(),
        frames_out: app.metrics.frames_out.get(),
        frames_skipped: app.metrics.frames_skipped.get(),
        rejected_messages: app.metrics.rejected_messages.get(),
        ..Totals::default()
    };
    let mut out = Vec::with_capacity(channels.len());
    for channel in &channels {
        let cs = channel_stats(channel, paging);
        totals.channels += 1;
        totals.publishers += usize::from(cs.info.live);
        totals.viewers += cs.summary.viewers;
        totals.bytes_in = totals.bytes_in.saturating_add(cs.info.bytes_in);
        out.push(cs);
    }
    Ok(Stats {
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: uptime_s(),
        totals,
        channels: out,
    })
}

fn channel_stats(channel: &Channel, paging: Paging) -> ChannelStats {
    let info = channel.info();
    let viewers = channel.viewers.snapshot();
    let summary = summarize(&viewers);
    let range = paging.range(viewers.len());
    let page_viewers = viewers
        .get(range)
        .unwrap_or_default()
        .iter()
        .map(|v| v.info())
        .collect();
    ChannelStats {
        urls: Urls::of(&info.name),
        info,
        summary,
        viewer_list: ViewerPage {
            page: paging.page,
            per_page: paging.per_page,
            total: viewers.len(),
            pages: viewers.len().div_ceil(paging.per_page),
            viewers: page_viewers,
        },
    }
}

/// One pass over the viewers' counters and last feedback.
pub fn summarize(viewers: &[Arc<ViewerStats>]) -> Summary {
    use std::sync::atomic::Ordering::Relaxed;
    let mut s = Summary {
        viewers: viewers.len(),
        ..Summary::default()
    };
    let mut latencies = Vec::new();
    let (mut buffer_sum, mut bandwidth_sum) = (0u64, 0u64);
    let mut sync_max: Option<u32> = None;
    for v in viewers {
        match v.kind {
            ViewerKind::WebSocket => s.websocket += 1,
            ViewerKind::HttpFlv => s.http_flv += 1,
        }
        s.bytes_sent = s.bytes_sent.saturating_add(v.bytes_sent.load(Relaxed));
        s.frames_skipped = s
            .frames_skipped
            .saturating_add(v.frames_skipped.load(Relaxed));
        s.skips = s.skips.saturating_add(v.skips.load(Relaxed));
        if let Some(f) = v.last_feedback() {
            s.reporting += 1;
            buffer_sum = buffer_sum.saturating_add(u64::from(f.buffer_ms));
            bandwidth_sum = bandwidth_sum.saturating_add(u64::from(f.bandwidth_kbps));
            s.stalls = s.stalls.saturating_add(u64::from(f.stalls));
            s.dropped_frames = s.dropped_frames.saturating_add(u64::from(f.dropped_frames));
            if let Some(e) = f.sync_error_ms {
                sync_max = Some(sync_max.unwrap_or(0).max(e.unsigned_abs()));
            }
            if f.mode == lockstep_media::wire::MODE_WEBCODECS {
                s.modes.webcodecs += 1;
            } else {
                s.modes.mse += 1;
            }
            latencies.extend(f.latency_ms);
        }
    }
    if s.reporting > 0 {
        s.buffer_ms_avg = Some(buffer_sum as f64 / s.reporting as f64);
        s.bandwidth_kbps_avg = Some(bandwidth_sum as f64 / s.reporting as f64);
    }
    s.sync_error_ms_max_abs = sync_max;
    s.latency_ms = spread(&mut latencies);
    s
}

/// The spread of `values` (reordered in place), `None` when empty. Linear time.
pub fn spread(values: &mut [i32]) -> Option<Spread> {
    let n = values.len();
    let min = *values.iter().min()?;
    let max = *values.iter().max()?;
    let sum: i64 = values.iter().map(|&v| i64::from(v)).sum();
    // Nearest rank: the smallest value with at least P % of the values at or below it.
    let rank = |pct: usize| (n * pct).div_ceil(100).clamp(1, n);
    let (r50, r95) = (rank(50), rank(95));
    let (_, p95, _) = values.select_nth_unstable(r95 - 1);
    let p95 = *p95;
    // Everything before the 95th percentile's slot is at or below it: the median is there.
    let below = values.get_mut(..r95).unwrap_or_default();
    let p50 = if r50 <= below.len() {
        *below.select_nth_unstable(r50 - 1).1
    } else {
        p95
    };
    Some(Spread {
        min,
        max,
        avg: sum as f64 / n as f64,
        p50,
        p95,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_values() {
        assert_eq!(spread(&mut []), None);
        let s = spread(&mut [42]).unwrap();
        assert_eq!((s.min, s.max, s.p50, s.p95, s.avg), (42, 42, 42, 42, 42.0));
        let mut v: Vec<i32> = (1..=100).rev().collect();
        let s = spread(&mut v).unwrap();
        assert_eq!((s.min, s.max, s.p50, s.p95), (1, 100, 50, 95));
        assert!((s.avg - 50.5).abs() < 1e-9);
        let s = spread(&mut [3, 1, 2]).unwrap();
        assert_eq!((s.p50, s.p95), (2, 3));
        let mut v = [i32::MAX, i32::MIN, -5];
        let s = spread(&mut v).unwrap();
        assert_eq!((s.min, s.max, s.p95), (i32::MIN, i32::MAX, i32::MAX));
    }

    #[test]
    fn paging() {
        let p = |pairs: &[(&str, &str)]| {
            Paging::with_default(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                DEFAULT_PER_PAGE,
            )
        };
        assert_eq!(
            p(&[]),
            Ok(Paging {
                page: 1,
                per_page: 100
            })
        );
        assert_eq!(p(&[("per_page", "5000")]).map(|p| p.per_page), Ok(1000));
        assert_eq!(p(&[("per_page", "0")]).map(|p| p.per_page), Ok(1));
        assert!(p(&[("page", "0")]).is_err());
        assert!(p(&[("page", "-1")]).is_err());
        assert!(p(&[("page", "x")]).is_err());
        assert!(p(&[("page", "99999999999999999999999")]).is_err());
        let huge = Paging {
            page: usize::MAX,
            per_page: 1000,
        };
        assert_eq!(huge.range(10), 10..10);
        assert_eq!(
            Paging {
                page: 2,
                per_page: 4
            }
            .range(10),
            4..8
        );
        assert_eq!(
            Paging {
                page: 3,
                per_page: 4
            }
            .range(10),
            8..10
        );
    }

    #[test]
    fn summary_of_viewers() {
        use lockstep_media::wire::Feedback;
        let a = Arc::new(ViewerStats::new(
            1,
            "a".into(),
            String::new(),
            ViewerKind::WebSocket,
        ));
        let b = Arc::new(ViewerStats::new(
            2,
            "b".into(),
            String::new(),
            ViewerKind::HttpFlv,
        ));
        a.skipped(7);
        a.set_feedback(Feedback {
            buffer_ms: 300,
            latency_ms: Some(250),
            playback_rate_milli: 1000,
            decoded_frames: 0,
            dropped_frames: 0,
            bytes_received: 0,
            bandwidth_kbps: 2000,
            stalls: 1,
            mode: 0,
            sync_error_ms: Some(-12),
            rtt_us: None,
            target_ms: None,
            refresh: None,
        });
        let s = summarize(&[a, b]);
        assert_eq!(s.sync_error_ms_max_abs, Some(12));
        assert_eq!(
            s.modes,
            Modes {
                mse: 1,
                webcodecs: 0
            }
        );
        assert_eq!(
            (s.viewers, s.websocket, s.http_flv, s.reporting),
            (2, 1, 1, 1)
        );
        assert_eq!(s.frames_skipped, 7);
        assert_eq!(s.buffer_ms_avg, Some(300.0));
        assert_eq!(s.latency_ms.map(|l| (l.min, l.p95)), Some((250, 250)));
    }
}
