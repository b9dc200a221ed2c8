//! `GET /metrics` in Prometheus text format: HTTP requests by route pattern and status with a
//! latency histogram (fed by the request-id middleware), the database pool, and the realtime
//! hub's own metrics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use sea_orm::{DatabaseConnection, DbBackend};

use crate::state::AppState;

/// Upper bounds of the HTTP latency buckets, in seconds.
pub const HTTP_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Latency histogram of one (method, route).
#[derive(Debug, Default)]
struct Latency {
    buckets: [u64; HTTP_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Registry {
    /// (method, route, status) -> requests.
    requests: BTreeMap<(String, String, u16), u64>,
    /// (method, route) -> latency.
    latency: BTreeMap<(String, String), Latency>,
}

/// HTTP request metrics; route is the matched pattern (`/api/v1/units/{id}`), never the raw
/// path, so the number of series stays bounded.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    inner: Mutex<Registry>,
}

impl HttpMetrics {
    /// Records one finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let mut r = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *r.requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        let secs = elapsed.as_secs_f64();
        let l = r
            .latency
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        if let Some(i) = HTTP_BUCKETS.iter().position(|b| secs <= *b)
            && let Some(b) = l.buckets.get_mut(i)
        {
            *b += 1;
        }
        l.count += 1;
        l.sum += secs;
    }

    /// Renders the HTTP families (prefix `kavling_http_`).
    pub fn render_prometheus(&self) -> String {
        let r = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP kavling_http_requests_total HTTP requests by method, route pattern and status."
        );
        let _ = writeln!(out, "# TYPE kavling_http_requests_total counter");
        for ((method, route, status), n) in &r.requests {
            let _ = writeln!(
                out,
                "kavling_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
        let name = "kavling_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP request latency by method and route pattern."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for ((method, route), l) in &r.latency {
            let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
            let mut acc = 0;
            for (le, n) in HTTP_BUCKETS.iter().zip(l.buckets.iter()) {
                acc += n;
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {acc}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", l.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", l.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", l.count);
        }
        out
    }
}

/// Escapes a Prometheus label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Connection pool gauges (prefix `kavling_db_pool_`).
pub fn render_pool(db: &DatabaseConnection) -> String {
    let (size, idle, max) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let p = db.get_postgres_connection_pool();
            (p.size(), p.num_idle(), p.options().get_max_connections())
        }
        DbBackend::Sqlite => {
            let p = db.get_sqlite_connection_pool();
            (p.size(), p.num_idle(), p.options().get_max_connections())
        }
        _ => return String::new(),
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    let mut out = String::new();
    for (name, help, v) in [
        ("connections", "Open database connections.", size),
        ("idle_connections", "Idle database connections.", idle),
        (
            "in_use_connections",
            "Database connections in use.",
            size.saturating_sub(idle),
        ),
        ("max_connections", "Largest database pool size.", max),
    ] {
        let _ = writeln!(out, "# HELP kavling_db_pool_{name} {help}");
        let _ = writeln!(out, "# TYPE kavling_db_pool_{name} gauge");
        let _ = writeln!(out, "kavling_db_pool_{name} {v}");
    }
    out
}

/// `GET /metrics`: every family in Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut body = state.http_metrics.render_prometheus();
    body.push_str(&render_pool(&state.services.db));
    body.push_str(&state.hub.metrics().render_prometheus());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
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
            "kavling_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/units/{id}\"} 2"
        ));
        assert_eq!(escape("a\"b\\"), "a\\\"b\\\\");
    }
}
