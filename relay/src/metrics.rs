//! Relay-wide Prometheus metrics (`GET /metrics`), kept with the `prometheus-client` crate.
//! Per-channel and per-viewer figures are in the JSON API; these are the totals and the
//! relay-added delay histogram.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub struct Metrics {
    registry: Registry,
    /// Ingest (frame classified and broadcast) to WebSocket flush, seconds.
    pub delivery_delay: Histogram,
    pub bytes_out: Counter,
    pub frames_out: Counter,
    pub frames_skipped: Counter,
    pub bytes_in: Counter,
    pub viewers: Gauge,
    /// Open clock-sync connections (`/clock`).
    pub clock_connections: Gauge,
    pub publishers: Gauge,
    pub rejected_messages: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lockstep");
        let m = Metrics {
            delivery_delay: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            bytes_out: Counter::default(),
            frames_out: Counter::default(),
            frames_skipped: Counter::default(),
            bytes_in: Counter::default(),
            viewers: Gauge::default(),
            clock_connections: Gauge::default(),
            publishers: Gauge::default(),
            rejected_messages: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "delivery_delay_seconds",
            "Relay-added delay: frame ingest to viewer socket write",
            m.delivery_delay.clone(),
        );
        registry.register("sent_bytes", "Bytes sent to viewers", m.bytes_out.clone());
        registry.register(
            "sent_frames",
            "Messages sent to viewers",
            m.frames_out.clone(),
        );
        registry.register(
            "skipped_frames",
            "Media messages dropped for slow viewers",
            m.frames_skipped.clone(),
        );
        registry.register("ingest_bytes", "FLV tag bytes ingested", m.bytes_in.clone());
        registry.register("viewers", "Connected viewers", m.viewers.clone());
        registry.register(
            "clock_connections",
            "Open clock-sync connections",
            m.clock_connections.clone(),
        );
        registry.register("publishers", "Live publishers", m.publishers.clone());
        registry.register(
            "rejected_messages",
            "Malformed messages from viewers or publishers",
            m.rejected_messages.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}
