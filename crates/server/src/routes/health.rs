//! Liveness and readiness.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers, and Redis when configured; 503 otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Database (and Redis, when configured) answer"), (status = 503, description = "A dependency is down")))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = kavling_core::db::ping(&state.services.db).await;
    let redis = match &state.redis {
        Some(probe) => Some(probe.ping().await),
        None => None,
    };
    let ready = db && redis.unwrap_or(true);
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": if db { "up" } else { "down" },
        "redis": match redis { Some(true) => "up", Some(false) => "down", None => "not_configured" },
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
