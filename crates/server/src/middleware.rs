//! Request id, access logging and HTTP metrics: every request gets an id (the client's
//! `x-request-id` if sane, else a new UUID), every log line of the request carries it, the
//! response echoes it, and its route pattern, status and latency feed `/metrics`.

use std::time::Instant;

use actix_web::ResponseError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use tracing::Instrument;

use crate::extract::RequestId;
use crate::state::AppState;

/// The header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

fn sane_request_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Framework errors that bypass our handlers (an extractor's own rejection) arrive as plain text;
/// they become problem+json like every other error, so clients can always read `code`.
fn problem_for_stray_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let plain = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("text/plain"));
    let is_ws_or_empty_ok = !status.is_client_error() && !status.is_server_error();
    if is_ws_or_empty_ok || !plain {
        return res.map_into_boxed_body();
    }
    let code = match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        411 => "length_required",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        429 => "rate_limited",
        431 => "headers_too_large",
        _ if status.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    let (req, old) = res.into_parts();
    // The framework's own text is short and safe to show; keep it as the detail.
    let detail = match old.error() {
        Some(e) => e.to_string(),
        None => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let new = crate::error::ApiError::new(status, code, detail).error_response();
    let mut new = new;
    for (name, value) in old.headers() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH && !new.headers().contains_key(name) {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(req, new)
}

/// Assigns the request id, logs the request inside a span carrying it, and echoes it.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.http_metrics.clone());
    let span =
        tracing::info_span!("request", request_id = %id, method = %req.method(), route = %route);
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let _enter = span.enter();
    match result.map(problem_for_stray_errors) {
        Ok(mut res) => {
            if let Ok(v) = HeaderValue::from_str(&id) {
                res.headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
            }
            let elapsed = started.elapsed();
            tracing::info!(
                status = res.status().as_u16(),
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                "request"
            );
            if let Some(m) = &metrics {
                m.observe(&method, &route, res.status().as_u16(), elapsed);
            }
            Ok(res)
        }
        Err(e) => {
            if let Some(m) = &metrics {
                let status = e.as_response_error().status_code().as_u16();
                m.observe(&method, &route, status, started.elapsed());
            }
            tracing::warn!(error = %e, "request failed before a response");
            Err(e)
        }
    }
}
