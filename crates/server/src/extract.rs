//! Request extractors: the bearer token's claims and the request context (id, IP, user agent).

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use kavling_core::audit::ActorRef;
use kavling_core::auth::Claims;
use kavling_core::entities::users;

use kavling_core::services::idempotency::{self, Outcome};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The bearer token of a request, if any (`Authorization: Bearer …`, or `?token=` for WebSockets).
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
}

/// The verified claims of a signed-in caller; 401 `unauthorized` otherwise.
#[derive(Clone, Debug)]
pub struct Auth(pub Claims);

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::unauthorized("server state missing"))?;
            let token = bearer_token(req).ok_or_else(|| {
                ApiError::unauthorized("send an access token: Authorization: Bearer <token>")
            })?;
            Ok(Auth(state.services.tokens.verify(&token)?))
        })())
    }
}

/// The request's id (echoed in `x-request-id`), client IP and user agent.
#[derive(Clone, Debug, Default)]
pub struct RequestCtx {
    /// The request id.
    pub request_id: String,
    /// The peer IP (the proxy's, behind one).
    pub ip: String,
    /// The User-Agent header.
    pub user_agent: String,
}

impl RequestCtx {
    /// The audit actor for a user acting in this request.
    pub fn actor(&self, user: &users::Model) -> ActorRef {
        ActorRef {
            user_id: Some(user.id),
            request_id: Some(self.request_id.clone()),
        }
    }
}

/// The id the request-id middleware stored for this request.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl FromRequest for RequestCtx {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let ip = req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(512)
            .collect();
        ready(Ok(RequestCtx {
            request_id,
            ip,
            user_agent,
        }))
    }
}

/// The validated `Idempotency-Key` header, if any (400 when empty, too long or not text).
pub fn idempotency_key(req: &HttpRequest) -> ApiResult<Option<String>> {
    let raw = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            kavling_core::CoreError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be printable ASCII",
            )
        })?),
    };
    Ok(idempotency::parse_key(raw)?)
}

/// Sends an idempotent outcome: the fresh body, or the stored one of the first request.
pub fn outcome_response<T>(outcome: &Outcome<T>) -> HttpResponse {
    let (status, body) = outcome.response();
    let mut res = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    res.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    ));
    if matches!(outcome, Outcome::Replayed(_)) {
        res.insert_header(("idempotent-replayed", "true"));
    }
    res.body(body.to_owned())
}
