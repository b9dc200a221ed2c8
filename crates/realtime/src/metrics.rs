//! Counters, gauges and a latency histogram, exposed in Prometheus text format through
//! `prometheus-client`. Every update on the hot path is one relaxed atomic add.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric, counter, gauge};
use prometheus_client::registry::Registry;

/// Upper bounds of the commit-to-send latency buckets, in milliseconds.
pub const LATENCY_BUCKETS_MS: [u64; 11] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

/// A monotonically increasing counter (a `prometheus-client` counter: one shared atomic).
#[derive(Clone, Debug, Default)]
pub struct Counter(counter::Counter<u64, AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A value that goes up and down (a `prometheus-client` gauge).
#[derive(Clone, Debug, Default)]
pub struct Gauge(gauge::Gauge<i64, AtomicI64>);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }
    /// Subtracts one.
    pub fn dec(&self) {
        self.0.dec();
    }
    /// Current value.
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

#[derive(Debug, Default)]
struct HistogramCells {
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// Fixed-bucket histogram of durations (buckets in [`LATENCY_BUCKETS_MS`] plus +Inf). Lock-free:
/// `prometheus-client`'s own histogram takes a lock per observation, so this one keeps atomics
/// and only lets the library encode it.
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram(Arc<HistogramCells>);

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        let idx = LATENCY_BUCKETS_MS
            .iter()
            .position(|&b| ms <= b as f64)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        if let Some(b) = self.0.buckets.get(idx) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.0.count.fetch_add(1, Ordering::Relaxed);
    }
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
    /// Sum of observations.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.0.sum_micros.load(Ordering::Relaxed))
    }
    /// Cumulative counts per bucket, the last one being +Inf.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut acc = 0;
        self.0
            .buckets
            .iter()
            .map(|b| {
                acc += b.load(Ordering::Relaxed);
                acc
            })
            .collect()
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // Per-bucket counts with their upper bounds in seconds; the encoder accumulates them and
        // adds `+Inf` (the count, which includes the overflow bucket).
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_MS
            .iter()
            .zip(self.0.buckets.iter())
            .map(|(ms, n)| (*ms as f64 / 1000.0, n.load(Ordering::Relaxed)))
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            self.sum().as_secs_f64(),
            self.count(),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Hub and bus metrics, shared as plain atomics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open connections (handles not yet dropped).
    pub connections: Gauge,
    /// Live subscriptions.
    pub subscriptions: Gauge,
    /// Events published on a bus by this instance.
    pub events_published: Counter,
    /// Events handed to `Hub::deliver` (local or from Redis, duplicates included).
    pub events_received: Counter,
    /// Events applied to a project cache and fanned out (each at most once per instance).
    pub events_applied: Counter,
    /// Events dropped because their seq was already delivered.
    pub duplicates_dropped: Counter,
    /// Frames put on client queues (live unit frames only).
    pub frames_sent: Counter,
    /// Gap fills that recovered at least one event from the store.
    pub catch_ups: Counter,
    /// Events recovered from the store by gap fills.
    pub catch_up_events: Counter,
    /// Clients closed because their queue was full.
    pub slow_client_closes: Counter,
    /// Connections closed because their user's token was revoked.
    pub revoked_closes: Counter,
    /// Successful Redis pub/sub reconnects.
    pub redis_reconnects: Counter,
    /// Snapshot queries made to fill the availability cache.
    pub snapshot_loads: Counter,
    /// Failed store calls.
    pub store_errors: Counter,
    /// Latency from commit (`UnitEvent::at`) to fan-out, once per applied event.
    pub commit_to_send: LatencyHistogram,
    /// Live feed frames (notifications, messages) put on client queues.
    pub feed_frames_sent: Counter,
    /// Feed items dropped because their seq was already delivered.
    pub feed_duplicates_dropped: Counter,
    /// Feed items recovered from the store by gap fills and the catch-up tick.
    pub feed_catch_up_events: Counter,
    /// Staff `booking` frames put on client queues.
    pub booking_frames_sent: Counter,
    /// Latency from commit (`FeedEvent::at`) to fan-out, once per feed item with subscribers here.
    pub feed_commit_to_send: LatencyHistogram,
}

impl Metrics {
    /// Registers every metric (prefix `kavling_realtime_`); the registry shares their values.
    pub fn register(&self, registry: &mut Registry) {
        let gauges = [
            (
                "connections",
                "Open WebSocket connections",
                &self.connections,
            ),
            (
                "subscriptions",
                "Live channel subscriptions",
                &self.subscriptions,
            ),
        ];
        for (name, help, g) in gauges {
            registry.register(format!("kavling_realtime_{name}"), help, g.0.clone());
        }
        // Counter names without `_total`: the encoder appends it.
        let counters = [
            (
                "events_published",
                "Events published on the bus",
                &self.events_published,
            ),
            (
                "events_received",
                "Events handed to the hub",
                &self.events_received,
            ),
            (
                "events_applied",
                "Events fanned out by the hub",
                &self.events_applied,
            ),
            (
                "duplicates_dropped",
                "Duplicate events dropped",
                &self.duplicates_dropped,
            ),
            (
                "frames_sent",
                "Unit frames queued to clients",
                &self.frames_sent,
            ),
            ("catch_ups", "Gap fills from the store", &self.catch_ups),
            (
                "catch_up_events",
                "Events recovered from the store",
                &self.catch_up_events,
            ),
            (
                "slow_client_closes",
                "Clients closed for being slow",
                &self.slow_client_closes,
            ),
            (
                "revoked_closes",
                "Connections closed for a revoked token",
                &self.revoked_closes,
            ),
            (
                "redis_reconnects",
                "Redis pub/sub reconnects",
                &self.redis_reconnects,
            ),
            (
                "snapshot_loads",
                "Availability cache loads",
                &self.snapshot_loads,
            ),
            (
                "store_errors",
                "Failed event store calls",
                &self.store_errors,
            ),
            (
                "feed_frames_sent",
                "Feed frames (notifications, messages) queued to clients",
                &self.feed_frames_sent,
            ),
            (
                "feed_duplicates_dropped",
                "Duplicate feed items dropped",
                &self.feed_duplicates_dropped,
            ),
            (
                "feed_catch_up_events",
                "Feed items recovered from the store",
                &self.feed_catch_up_events,
            ),
            (
                "booking_frames_sent",
                "Staff booking frames queued to clients",
                &self.booking_frames_sent,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(format!("kavling_realtime_{name}"), help, c.0.clone());
        }
        let histograms = [
            (
                "commit_to_send_seconds",
                "Latency from commit to fan-out",
                &self.commit_to_send,
            ),
            (
                "feed_commit_to_send_seconds",
                "Latency from commit to fan-out of feed items",
                &self.feed_commit_to_send,
            ),
        ];
        for (name, help, h) in histograms {
            registry.register(format!("kavling_realtime_{name}"), help, h.clone());
        }
    }

    /// Renders all metrics in Prometheus text exposition format (prefix `kavling_realtime_`).
    pub fn render_prometheus(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}
