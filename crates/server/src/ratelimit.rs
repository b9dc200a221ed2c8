//! Per-client-IP rate limiting of login and register (brute force and account spam), with
//! actix-governor's keyed GCRA limiter. One limiter is shared by every worker; a refused request
//! gets 429 problem+json `rate_limited` with `Retry-After`.

use std::net::IpAddr;

use actix_governor::governor::clock::{Clock, DefaultClock};
use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::{GovernorConfig, GovernorConfigBuilder, PeerIpKeyExtractor};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError, web};

use crate::error::ApiError;
use crate::state::AppState;

/// The shared login/register limiter.
pub type AuthLimiter = GovernorConfig<PeerIpKeyExtractor, NoOpMiddleware>;

/// Builds the limiter: `per_second` sustained requests per IP, bursts of `burst`.
pub fn auth_limiter(per_second: u64, burst: u32) -> Option<AuthLimiter> {
    GovernorConfigBuilder::default()
        .requests_per_second(per_second.max(1))
        .burst_size(burst.max(1))
        .finish()
}

/// Middleware for the auth routes: 429 `rate_limited` with `Retry-After` once a client IP has
/// spent its burst.
pub async fn limit_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let ip: Option<IpAddr> = req.peer_addr().map(|a| a.ip());
    let limiter = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.auth_limiter.as_ref().map(|l| l.limiter()));
    if let (Some(ip), Some(limiter)) = (ip, limiter)
        && let Err(not_until) = limiter.check_key(&ip)
    {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let secs = secs.max(1);
        let mut res = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many attempts from this address; retry in {secs} s"),
        )
        .error_response();
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            res.headers_mut().insert(RETRY_AFTER, v);
        }
        return Ok(req.into_response(res).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}
