//! The recent history behind the dashboard's charts: per channel, a bounded ring of one
//! [`Point`] every [`SAMPLE_EVERY`] over the last [`KEEP`] (viewers, latency p50 / p95 / max,
//! ingest bitrate and fps, the shared delay D, stalls).
//!
//! Recording costs a pass over every channel's viewers, so it only runs while someone
//! watches: each `/api/stats/stream` holds a [`Sampler`] handle, the first one starts the
//! sampling task and dropping the last one stops it at once (the task waits on a oneshot
//! channel closed by the handle's drop). The rings outlive the task, so a dashboard
//! reopened within five minutes still sees what was recorded before (with a gap).
//!
//! There is one [`History`] per [`Registry`], found through a small static table of weak
//! references (the relay has one registry; tests may build more), so nothing outside the
//! API module needs to know about it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use super::stats::summarize;
use super::uptime_s;
use crate::channel::Registry;

/// One point per this.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// How far back the rings reach.
pub const KEEP: Duration = Duration::from_secs(300);
/// Most points per ring (a little over [`KEEP`] / [`SAMPLE_EVERY`]).
pub const CAPACITY: usize = 160;

/// A channel at one instant.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Point {
    /// Relay-wide sequence number, for "what is new since" queries.
    #[serde(skip)]
    pub seq: u64,
    /// Relay uptime, s (the same clock as `uptime_s` in the statistics).
    pub t: f64,
    pub viewers: usize,
    /// Viewers' latency spread (those that reported one).
    pub latency_p50: Option<i32>,
    pub latency_p95: Option<i32>,
    pub latency_max: Option<i32>,
    /// Ingest bitrate (kbit/s) and video frame rate.
    pub bitrate_kbps: f64,
    pub fps: f64,
    /// The shared playout delay D, ms (0 = unset).
    pub delay_ms: u32,
    /// Stalls reported by the current viewers, summed.
    pub stalls: u64,
}

/// The rings of one registry's channels.
#[derive(Default)]
pub struct History {
    rings: Mutex<Rings>,
    sampler: Mutex<Weak<Sampler>>,
}

#[derive(Default)]
struct Rings {
    next_seq: u64,
    by_channel: HashMap<String, VecDeque<Point>>,
}

/// Keeps the sampling task running; the task stops when the last handle is dropped.
pub struct Sampler {
    _stop: oneshot::Sender<()>,
}

/// Points newer than a sequence number, per channel, and the newest sequence number.
pub struct Delta {
    pub seq: u64,
    pub by_channel: HashMap<String, Vec<Point>>,
}

type Table = Vec<(Weak<Registry>, Arc<History>)>;
static TABLE: Mutex<Table> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl History {
    /// The history of `registry` (created empty the first time); forgets dropped registries.
    pub fn of(registry: &Arc<Registry>) -> Arc<History> {
        let mut table = lock(&TABLE);
        table.retain(|(r, _)| r.strong_count() > 0);
        let me = Arc::downgrade(registry);
        if let Some((_, h)) = table.iter().find(|(r, _)| r.ptr_eq(&me)) {
            return h.clone();
        }
        let h = Arc::new(History::default());
        table.push((me, h.clone()));
        h
    }

    /// A handle that keeps sampling `registry` while held: the first one records a point
    /// at once and starts the task (which needs a Tokio runtime).
    pub fn subscribe(self: &Arc<Self>, registry: &Arc<Registry>) -> Arc<Sampler> {
        let mut slot = lock(&self.sampler);
        if let Some(s) = slot.upgrade() {
            return s;
        }
        let (tx, rx) = oneshot::channel();
        let sampler = Arc::new(Sampler { _stop: tx });
        *slot = Arc::downgrade(&sampler);
        drop(slot);
        self.sample(registry);
        tokio::spawn(run(self.clone(), Arc::downgrade(registry), rx));
        sampler
    }

    /// How many streams hold the sampler now.
    pub fn subscribers(&self) -> usize {
        lock(&self.sampler).strong_count()
    }

    /// The points recorded after `seq` (every point for 0), of `only` or of every channel.
    pub fn since(&self, seq: u64, only: Option<&str>) -> Delta {
        let rings = lock(&self.rings);
        let by_channel = rings
            .by_channel
            .iter()
            .filter(|(name, _)| match only {
                None => true,
                Some(o) => o == name.as_str(),
            })
            .map(|(name, ring)| {
                let new: Vec<Point> = ring.iter().filter(|p| p.seq > seq).copied().collect();
                (name.clone(), new)
            })
            .collect();
        Delta {
            seq: rings.next_seq,
            by_channel,
        }
    }

    /// Records a point for every channel of `registry`, drops points older than [`KEEP`]
    /// and the rings of channels that are gone.
    pub fn sample(&self, registry: &Registry) {
        let t = uptime_s();
        let points: Vec<(String, Point)> = registry
            .list()
            .iter()
            .map(|c| {
                let info = c.info();
                let summary = summarize(&c.viewers.snapshot());
                let lat = summary.latency_ms;
                let point = Point {
                    seq: 0,
                    t: round1(t),
                    viewers: summary.viewers,
                    latency_p50: lat.map(|l| l.p50),
                    latency_p95: lat.map(|l| l.p95),
                    latency_max: lat.map(|l| l.max),
                    bitrate_kbps: round1(info.bitrate_kbps),
                    fps: round1(info.fps),
                    delay_ms: info.delay_ms,
                    stalls: summary.stalls,
                };
                (info.name, point)
            })
            .collect();
        let mut rings = lock(&self.rings);
        rings
            .by_channel
            .retain(|name, _| points.iter().any(|(n, _)| n == name));
        let oldest = t - KEEP.as_secs_f64();
        for (name, mut point) in points {
            rings.next_seq += 1;
            point.seq = rings.next_seq;
            let ring = rings.by_channel.entry(name).or_default();
            while ring.front().is_some_and(|p| p.t < oldest) || ring.len() >= CAPACITY {
                ring.pop_front();
            }
            ring.push_back(point);
        }
    }
}

/// Samples every [`SAMPLE_EVERY`] until `stop` closes (the last [`Sampler`] dropped) or the
/// registry is gone.
async fn run(history: Arc<History>, registry: Weak<Registry>, mut stop: oneshot::Receiver<()>) {
    let mut tick = interval_at(Instant::now() + SAMPLE_EVERY, SAMPLE_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        let Some(registry) = registry.upgrade() else {
            break;
        };
        history.sample(&registry);
    }
    tracing::debug!("statistics history: sampling stopped");
}

/// `v` rounded to one decimal (keeps the JSON short).
fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::PublishPolicy;

    #[test]
    fn rings_are_bounded_and_deltas_are_new_points() {
        let registry = Arc::new(Registry::new(PublishPolicy::default()));
        let _ = registry.channel("a");
        let h = History::of(&registry);
        assert!(Arc::ptr_eq(&h, &History::of(&registry)));
        for _ in 0..CAPACITY + 10 {
            h.sample(&registry);
        }
        let all = h.since(0, None);
        assert_eq!(all.by_channel.get("a").map(Vec::len), Some(CAPACITY));
        h.sample(&registry);
        let new = h.since(all.seq, Some("a"));
        assert_eq!(new.by_channel.get("a").map(Vec::len), Some(1));
        assert_eq!(h.since(new.seq, None).by_channel["a"], vec![]);
    }

    #[tokio::test]
    async fn sampling_stops_with_the_last_subscriber() {
        let registry = Arc::new(Registry::new(PublishPolicy::default()));
        let h = History::of(&registry);
        let a = h.subscribe(&registry);
        let b = h.subscribe(&registry);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(h.subscribers(), 2);
        drop((a, b));
        assert_eq!(h.subscribers(), 0);
        // A new subscriber starts a new task.
        let _c = h.subscribe(&registry);
        assert_eq!(h.subscribers(), 1);
    }
}
