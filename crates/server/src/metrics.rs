//! `GET /metrics` in Prometheus text format (0.0.4), through `prometheus-client`: HTTP requests by
//! route pattern and status with a latency histogram (fed by the request-id middleware), the
//! database pool, and the realtime hub's own metrics.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sea_orm::{DatabaseConnection, DbBackend};

use crate::state::AppState;

/// Upper bounds of the HTTP latency buckets, in seconds.
pub const HTTP_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Labels of `kavling_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// Labels of `kavling_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

/// HTTP request metrics; route is the matched pattern (`/api/v1/units/{id}`), never the raw
/// path, so the number of series stays bounded.
#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(http_histogram),
        }
    }
}

impl HttpMetrics {
    /// Records one finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Registers the HTTP families (prefix `kavling_http_`); the registry shares their values.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kavling_http_requests",
            "HTTP requests by method, route pattern and status",
            self.requests.clone(),
        );
        registry.register(
            "kavling_http_request_duration_seconds",
            "HTTP request latency by method and route pattern",
            self.latency.clone(),
        );
    }

    /// Renders the HTTP families alone.
    pub fn render_prometheus(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        encode(&registry)
    }
}

/// Encodes a registry in the Prometheus text format; writing to a String cannot fail.
fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
    out
}

/// Connection pool gauges (prefix `kavling_db_pool_`), read from the pool at each scrape.
#[derive(Debug)]
pub struct PoolCollector(pub DatabaseConnection);

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let db = &self.0;
        let (size, idle, max) = match db.get_database_backend() {
            DbBackend::Postgres => {
                let p = db.get_postgres_connection_pool();
                (p.size(), p.num_idle(), p.options().get_max_connections())
            }
            DbBackend::Sqlite => {
                let p = db.get_sqlite_connection_pool();
                (p.size(), p.num_idle(), p.options().get_max_connections())
            }
            _ => return Ok(()),
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX);
        for (name, help, v) in [
            ("connections", "Open database connections", size),
            ("idle_connections", "Idle database connections", idle),
            (
                "in_use_connections",
                "Database connections in use",
                size.saturating_sub(idle),
            ),
            ("max_connections", "Largest database pool size", max),
        ] {
            let name = format!("kavling_db_pool_{name}");
            let help = format!("{help}.");
            let metric = encoder.encode_descriptor(&name, &help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::from(v)).encode(metric)?;
        }
        Ok(())
    }
}

/// Connection pool gauges alone.
pub fn render_pool(db: &DatabaseConnection) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(PoolCollector(db.clone())));
    encode(&registry)
}

/// `GET /metrics`: every family in Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut registry = Registry::default();
    state.http_metrics.register(&mut registry);
    state.job_metrics.register(&mut registry);
    registry.register_collector(Box::new(PoolCollector(state.services.db.clone())));
    let mut body = encode(&registry);
    // The hub renders its own families; the text format (unlike OpenMetrics) concatenates.
    body.push_str(&state.hub.metrics().render_prometheus());
    HttpResponse::Ok()
        .content_type(prometheus_client::encoding::prometheus_text::CONTENT_TYPE)
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = HttpMetrics::default();
        m.observe("GET", "/api/v1/units/{id}", 200, Duration::from_millis(3));
        m.observe("GET", "/api/v1/units/{id}", 404, Duration::from_millis(30));
        m.observe("GET", "/a\"b\\", 200, Duration::from_millis(1));
        let text = m.render_prometheus();
        assert!(text.contains(
            "kavling_http_requests_total{method=\"GET\",route=\"/api/v1/units/{id}\",status=\"200\"} 1"
        ));
        assert!(text.contains(
            "kavling_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/units/{id}\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "kavling_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/units/{id}\",le=\"0.05\"} 2"
        ));
        assert!(text.contains(
            "kavling_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/units/{id}\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains(
            "kavling_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/units/{id}\"} 2"
        ));
        assert!(
            text.contains("# TYPE kavling_http_requests_total counter"),
            "{text}"
        );
        assert!(text.contains("# TYPE kavling_http_request_duration_seconds histogram"));
        // Label values are escaped.
        assert!(text.contains("route=\"/a\\\"b\\\\\""), "{text}");
    }
}
