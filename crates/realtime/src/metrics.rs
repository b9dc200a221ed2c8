//! Counters and a latency histogram, rendered in Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the commit-to-send latency buckets, in milliseconds.
pub const LATENCY_BUCKETS_MS: [u64; 11] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Fixed-bucket histogram of durations (buckets in [`LATENCY_BUCKETS_MS`] plus +Inf).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        let idx = LATENCY_BUCKETS_MS
            .iter()
            .position(|&b| ms <= b as f64)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        if let Some(b) = self.buckets.get(idx) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
    /// Sum of observations.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_micros.load(Ordering::Relaxed))
    }
    /// Cumulative counts per bucket, the last one being +Inf.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut acc = 0;
        self.buckets
            .iter()
            .map(|b| {
                acc += b.load(Ordering::Relaxed);
                acc
            })
            .collect()
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
    /// Renders all metrics in Prometheus text exposition format (prefix `kavling_realtime_`).
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let gauges = [
            (
                "connections",
                "Open WebSocket connections.",
                self.connections.get(),
            ),
            (
                "subscriptions",
                "Live channel subscriptions.",
                self.subscriptions.get(),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP kavling_realtime_{name} {help}");
            let _ = writeln!(out, "# TYPE kavling_realtime_{name} gauge");
            let _ = writeln!(out, "kavling_realtime_{name} {v}");
        }
        let counters = [
            (
                "events_published_total",
                "Events published on the bus.",
                &self.events_published,
            ),
            (
                "events_received_total",
                "Events handed to the hub.",
                &self.events_received,
            ),
            (
                "events_applied_total",
                "Events fanned out by the hub.",
                &self.events_applied,
            ),
            (
                "duplicates_dropped_total",
                "Duplicate events dropped.",
                &self.duplicates_dropped,
            ),
            (
                "frames_sent_total",
                "Unit frames queued to clients.",
                &self.frames_sent,
            ),
            (
                "catch_ups_total",
                "Gap fills from the store.",
                &self.catch_ups,
            ),
            (
                "catch_up_events_total",
                "Events recovered from the store.",
                &self.catch_up_events,
            ),
            (
                "slow_client_closes_total",
                "Clients closed for being slow.",
                &self.slow_client_closes,
            ),
            (
                "revoked_closes_total",
                "Connections closed for a revoked token.",
                &self.revoked_closes,
            ),
            (
                "redis_reconnects_total",
                "Redis pub/sub reconnects.",
                &self.redis_reconnects,
            ),
            (
                "snapshot_loads_total",
                "Availability cache loads.",
                &self.snapshot_loads,
            ),
            (
                "store_errors_total",
                "Failed event store calls.",
                &self.store_errors,
            ),
            (
                "feed_frames_sent_total",
                "Feed frames (notifications, messages) queued to clients.",
                &self.feed_frames_sent,
            ),
            (
                "feed_duplicates_dropped_total",
                "Duplicate feed items dropped.",
                &self.feed_duplicates_dropped,
            ),
            (
                "feed_catch_up_events_total",
                "Feed items recovered from the store.",
                &self.feed_catch_up_events,
            ),
            (
                "booking_frames_sent_total",
                "Staff booking frames queued to clients.",
                &self.booking_frames_sent,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(out, "# HELP kavling_realtime_{name} {help}");
            let _ = writeln!(out, "# TYPE kavling_realtime_{name} counter");
            let _ = writeln!(out, "kavling_realtime_{name} {}", c.get());
        }
        let histograms = [
            (
                "commit_to_send_seconds",
                "Latency from commit to fan-out.",
                &self.commit_to_send,
            ),
            (
                "feed_commit_to_send_seconds",
                "Latency from commit to fan-out of feed items.",
                &self.feed_commit_to_send,
            ),
        ];
        for (name, help, h) in histograms {
            let name = format!("kavling_realtime_{name}");
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (i, c) in h.cumulative().iter().enumerate() {
                match LATENCY_BUCKETS_MS.get(i) {
                    Some(ms) => {
                        let le = *ms as f64 / 1000.0;
                        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {c}");
                    }
                    None => {
                        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {c}");
                    }
                }
            }
            let _ = writeln!(out, "{name}_sum {}", h.sum().as_secs_f64());
            let _ = writeln!(out, "{name}_count {}", h.count());
        }
        out
    }
}
