//! The domain error: what went wrong, with a stable code, and no HTTP in sight.
//! The server maps each variant to a status and problem+json in one place.

use serde::Serialize;

/// One field-level validation failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The request field (camelCase, as the client sent it).
    pub field: String,
    /// A stable snake_case code.
    pub code: String,
    /// A human-readable message.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_owned(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// Every way a business action can be refused or fail.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The request is malformed (code says how: `bad_request`, `invalid_svg`, ...).
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// Detail for humans.
        message: String,
    },
    /// A list query used an unknown field, operator or value.
    #[error("{0}")]
    InvalidQuery(String),
    /// Missing or invalid credentials (`unauthorized`, `invalid_credentials`).
    #[error("{message}")]
    Unauthorized {
        /// Stable code.
        code: &'static str,
        /// Detail for humans.
        message: String,
    },
    /// Authenticated but not allowed (`forbidden`, `kyc_required`).
    #[error("{message}")]
    Forbidden {
        /// Stable code.
        code: &'static str,
        /// Detail for humans.
        message: String,
    },
    /// The thing does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The action conflicts with the current state (`unit_not_available`, `email_taken`, ...).
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Detail for humans.
        message: String,
    },
    /// Field validation failed (`validation_failed`).
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The request is well-formed but cannot be processed (`idempotency_key_reused`, ...).
    #[error("{message}")]
    Unprocessable {
        /// Stable code.
        code: &'static str,
        /// Detail for humans.
        message: String,
    },
    /// Not enough wallet balance (`insufficient_balance`).
    #[error("{message}")]
    PaymentRequired {
        /// Stable code.
        code: &'static str,
        /// Detail for humans.
        message: String,
    },
    /// The payload is too large (`svg_too_large`, `file_too_large`).
    #[error("{message}")]
    TooLarge {
        /// Stable code.
        code: &'static str,
        /// Detail for humans.
        message: String,
    },
    /// The payload's type is not accepted (`unsupported_media_type`).
    #[error("{message}")]
    UnsupportedMediaType {
        /// Stable code.
        code: &'static str,
        /// Detail for humans.
        message: String,
    },
    /// Too many requests from one user (`rate_limited`); retry after the given seconds.
    #[error("{message}")]
    RateLimited {
        /// Detail for humans.
        message: String,
        /// Whole seconds until the next request is allowed (at least 1).
        retry_after_secs: u64,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// Anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias for the domain.
pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    /// A `Conflict` with a code and message.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        CoreError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// A `Forbidden` with a code and message.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        CoreError::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// A `BadRequest` with a code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        CoreError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A `Validation` error with one field.
    pub fn invalid_field(field: &str, code: &str, message: impl Into<String>) -> Self {
        CoreError::Validation(vec![FieldError::new(field, code, message)])
    }

    /// True when the database rejected a write because of a unique constraint.
    pub fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
        matches!(
            err.sql_err(),
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
        )
    }
}
