//! The viewers of a channel, as the statistics API sees them: who, since when, how much was
//! sent and skipped, and what each last reported about its playback.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lockstep_media::wire::Feedback;

use super::delay::Requirement;

/// How a viewer watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViewerKind {
    WebSocket,
    HttpFlv,
}

/// Live counters of one viewer, shared between its session task and the API.
#[derive(Debug)]
pub struct ViewerStats {
    pub id: u64,
    pub addr: String,
    pub user_agent: String,
    pub kind: ViewerKind,
    pub connected: Instant,
    pub bytes_sent: AtomicU64,
    pub frames_sent: AtomicU64,
    pub frames_skipped: AtomicU64,
    pub skips: AtomicU64,
    feedback: Mutex<Option<(Feedback, Instant)>>,
}

/// A viewer as the API reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewerInfo {
    pub id: u64,
    pub addr: String,
    pub user_agent: String,
    pub kind: ViewerKind,
    pub connected_s: f64,
    pub bytes_sent: u64,
    pub frames_sent: u64,
    pub frames_skipped: u64,
    pub skips: u64,
    /// From the viewer's last feedback, when it sent any.
    pub latency_ms: Option<i32>,
    pub buffer_ms: Option<u32>,
    pub bandwidth_kbps: Option<u32>,
    pub playback_rate: Option<f64>,
    pub decoded_frames: Option<u32>,
    pub dropped_frames: Option<u32>,
    pub stalls: Option<u32>,
    pub mode: Option<&'static str>,
    pub sync_error_ms: Option<i32>,
    pub rtt_ms: Option<f64>,
    /// The lowest latency the viewer says it can hold (what the shared delay is chosen from).
    pub target_ms: Option<u32>,
    /// Its display's refresh period and where ingest times fall after a refresh (Feedback
    /// 1.4; WebCodecs viewers), ms.
    pub refresh_period_ms: Option<f64>,
    pub refresh_phase_ms: Option<f64>,
    pub feedback_age_s: Option<f64>,
}

impl ViewerStats {
    pub fn new(id: u64, addr: String, user_agent: String, kind: ViewerKind) -> Self {
        ViewerStats {
            id,
            addr,
            user_agent,
            kind,
            connected: Instant::now(),
            bytes_sent: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            skips: AtomicU64::new(0),
            feedback: Mutex::new(None),
        }
    }

    pub fn sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn skipped(&self, frames: u64) {
        self.frames_skipped.fetch_add(frames, Ordering::Relaxed);
        self.skips.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_feedback(&self, f: Feedback) {
        *self.feedback.lock().unwrap_or_else(|e| e.into_inner()) = Some((f, Instant::now()));
    }

    /// The viewer's last feedback, if it sent any.
    pub fn last_feedback(&self) -> Option<Feedback> {
        self.feedback
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(f, _)| f)
    }

    pub fn info(&self) -> ViewerInfo {
        let fb = *self.feedback.lock().unwrap_or_else(|e| e.into_inner());
        let f = fb.map(|(f, _)| f);
        let grid = f.and_then(|f| f.refresh);
        ViewerInfo {
            id: self.id,
            addr: self.addr.clone(),
            user_agent: self.user_agent.clone(),
            kind: self.kind,
            connected_s: self.connected.elapsed().as_secs_f64(),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            frames_skipped: self.frames_skipped.load(Ordering::Relaxed),
            skips: self.skips.load(Ordering::Relaxed),
            latency_ms: f.and_then(|f| f.latency_ms),
            buffer_ms: f.map(|f| f.buffer_ms),
            bandwidth_kbps: f.map(|f| f.bandwidth_kbps),
            playback_rate: f.map(|f| f.playback_rate_milli as f64 / 1000.0),
            decoded_frames: f.map(|f| f.decoded_frames),
            dropped_frames: f.map(|f| f.dropped_frames),
            stalls: f.map(|f| f.stalls),
            mode: f.map(|f| match f.mode {
                lockstep_media::wire::MODE_WEBCODECS => "webcodecs",
                _ => "mse",
            }),
            sync_error_ms: f.and_then(|f| f.sync_error_ms),
            rtt_ms: f.and_then(|f| f.rtt_us).map(|us| us as f64 / 1000.0),
            target_ms: f.and_then(|f| f.target_ms),
            refresh_period_ms: grid.map(|r| f64::from(r.period_us) / 1000.0),
            refresh_phase_ms: grid.map(|r| f64::from(r.phase_us) / 1000.0),
            feedback_age_s: fb.map(|(_, t)| t.elapsed().as_secs_f64()),
        }
    }
}

static NEXT_VIEWER: AtomicU64 = AtomicU64::new(1);

/// The viewers of one channel.
#[derive(Debug, Default)]
pub struct ViewerSet {
    map: Mutex<HashMap<u64, Arc<ViewerStats>>>,
}

/// Removes the viewer from its set when its session ends.
pub struct ViewerGuard<'a> {
    set: &'a ViewerSet,
    pub stats: Arc<ViewerStats>,
}

impl Drop for ViewerGuard<'_> {
    fn drop(&mut self) {
        self.set.lock().remove(&self.stats.id);
    }
}

impl ViewerSet {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ViewerStats>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, addr: String, user_agent: String, kind: ViewerKind) -> ViewerGuard<'_> {
        let id = NEXT_VIEWER.fetch_add(1, Ordering::Relaxed);
        let stats = Arc::new(ViewerStats::new(id, addr, user_agent, kind));
        self.lock().insert(id, stats.clone());
        ViewerGuard { set: self, stats }
    }

    /// Adds a viewer whose session removes itself with [`ViewerSet::remove`] (for sessions
    /// that cannot hold a borrowing guard, such as response body streams).
    pub fn add_detached(
        &self,
        addr: String,
        user_agent: String,
        kind: ViewerKind,
    ) -> Arc<ViewerStats> {
        let id = NEXT_VIEWER.fetch_add(1, Ordering::Relaxed);
        let stats = Arc::new(ViewerStats::new(id, addr, user_agent, kind));
        self.lock().insert(id, stats.clone());
        stats
    }

    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// What every viewer whose feedback is younger than `fresh` says of D: its `target_ms`
    /// and refresh grid.
    pub fn fresh_requirements(&self, fresh: std::time::Duration) -> Vec<Requirement> {
        self.lock()
            .values()
            .filter_map(|v| {
                let (f, at) = (*v.feedback.lock().unwrap_or_else(|e| e.into_inner()))?;
                (at.elapsed() <= fresh).then_some(Requirement {
                    target_ms: f.target_ms?,
                    refresh: f.refresh,
                })
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The viewers' live counters, sorted by id (reference counts only: for aggregating
    /// and paging without building a [`ViewerInfo`] per viewer).
    pub fn snapshot(&self) -> Vec<Arc<ViewerStats>> {
        let mut v: Vec<Arc<ViewerStats>> = self.lock().values().cloned().collect();
        v.sort_by_key(|s| s.id);
        v
    }

    pub fn list(&self) -> Vec<ViewerInfo> {
        let mut v: Vec<ViewerInfo> = self.lock().values().map(|s| s.info()).collect();
        v.sort_by_key(|v| v.id);
        v
    }
}
