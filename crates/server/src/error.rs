//! The one API error type. Every failure leaves the server as `application/problem+json` with a
//! stable `code`; this module is the only place that decides statuses.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use kavling_core::{CoreError, FieldError};
use serde::Serialize;

/// An error on its way to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A domain error.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A plain problem decided by the HTTP layer (bad JSON, unknown route, ...).
    #[error("{detail}")]
    Problem {
        /// HTTP status.
        status: StatusCode,
        /// Stable code.
        code: &'static str,
        /// Detail.
        detail: String,
        /// Field errors, if any.
        errors: Vec<FieldError>,
    },
}

impl ApiError {
    /// A problem with a status, code and detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Problem {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 400 bad_request.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    /// 404 not_found.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 401 unauthorized.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    fn parts(&self) -> (StatusCode, &str, String, &[FieldError]) {
        use CoreError as E;
        match self {
            ApiError::Problem {
                status,
                code,
                detail,
                errors,
            } => (*status, code, detail.clone(), errors),
            ApiError::Core(e) => match e {
                E::BadRequest { code, message } => {
                    (StatusCode::BAD_REQUEST, code, message.clone(), &[])
                }
                E::InvalidQuery(m) => (StatusCode::BAD_REQUEST, "invalid_query", m.clone(), &[]),
                E::Unauthorized { code, message } => {
                    (StatusCode::UNAUTHORIZED, code, message.clone(), &[])
                }
                E::Forbidden { code, message } => {
                    (StatusCode::FORBIDDEN, code, message.clone(), &[])
                }
                E::NotFound(what) => (
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("{what} not found"),
                    &[],
                ),
                E::Conflict { code, message } => (StatusCode::CONFLICT, code, message.clone(), &[]),
                E::Validation(errors) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    errors
                        .iter()
                        .map(|f| format!("{}: {}", f.field, f.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                    errors,
                ),
                E::PaymentRequired { code, message } => {
                    (StatusCode::PAYMENT_REQUIRED, code, message.clone(), &[])
                }
                E::TooLarge { code, message } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, code, message.clone(), &[])
                }
                E::UnsupportedMediaType { code, message } => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    code,
                    message.clone(),
                    &[],
                ),
                E::RateLimited { message, .. } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    message.clone(),
                    &[],
                ),
                E::Busy(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "the database is busy; retry shortly".into(),
                    &[],
                ),
                E::Db(_) | E::Internal(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "something went wrong on our side; it has been logged".into(),
                    &[],
                ),
            },
        }
    }
}

/// The problem+json body (RFC 9457) with Kavling's `code` and optional field `errors`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemBody<'a> {
    /// A URI reference naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary (the status reason).
    pub title: &'a str,
    /// HTTP status.
    pub status: u16,
    /// Human-readable detail.
    pub detail: String,
    /// Stable code.
    pub code: &'a str,
    /// Field errors (validation only).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Vec<FieldError>)]
    pub errors: &'a [FieldError],
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code, detail, errors) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = ProblemBody {
            kind: format!("urn:kavling:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code,
            errors,
        };
        let mut res = HttpResponse::build(status);
        res.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let ApiError::Core(CoreError::RateLimited {
            retry_after_secs, ..
        }) = self
        {
            res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        res.body(serde_json::to_string(&body).unwrap_or_else(|_| "{}".into()))
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// Maps actix's JSON body errors to problems: syntax 400, wrong shape 422, size 413, type 415.
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let api = match &err {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the JSON body is too large",
        ),
        J::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ),
        J::Deserialize(e) if e.is_data() => {
            let field = missing_or_invalid_field(&e.to_string());
            ApiError::Problem {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "validation_failed",
                detail: e.to_string(),
                errors: vec![FieldError::new(&field, "invalid", e.to_string())],
            }
        }
        J::Deserialize(e) => ApiError::bad_request(format!("the body is not valid JSON: {e}")),
        other => ApiError::bad_request(format!("the body could not be read: {other}")),
    };
    actix_web::error::InternalError::from_response(err, api.error_response()).into()
}

/// Pulls a field name out of serde's message (`missing field `name``, `unknown field `x``).
fn missing_or_invalid_field(msg: &str) -> String {
    msg.split('`').nth(1).unwrap_or("body").to_owned()
}

/// Maps path-segment errors (a malformed id) to 404: such an id names nothing.
pub fn path_error(
    err: actix_web::error::PathError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    let api = ApiError::not_found(format!("no such resource: {err}"));
    actix_web::error::InternalError::from_response(err, api.error_response()).into()
}

/// Maps query-string errors to 400 invalid_query.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    let api = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!("the query string is not understood: {err}"),
    );
    actix_web::error::InternalError::from_response(err, api.error_response()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn renders_problem_json_with_code_and_field_errors() {
        let e = ApiError::from(CoreError::Validation(vec![FieldError::new(
            "password",
            "too_short",
            "8+",
        )]));
        let res = e.error_response();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );
        let bytes = res.into_body().try_into_bytes().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["code"], "validation_failed");
        assert_eq!(v["status"], 422);
        assert_eq!(v["errors"][0]["field"], "password");
        assert!(v["type"].as_str().unwrap().ends_with("validation_failed"));
    }

    #[test]
    fn conflict_keeps_its_code() {
        let e = ApiError::from(CoreError::conflict("unit_not_available", "taken"));
        assert_eq!(e.status_code(), StatusCode::CONFLICT);
    }
}
