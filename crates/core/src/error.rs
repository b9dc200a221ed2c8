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
    /// The action conflicts with the current state (`unit_not_available`, `email_taken`,
    /// `idempotency_key_reused`, ...).
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
    /// The database refused for contention (a lock, a serialization failure, a deadlock, an
    /// exhausted pool): the action did not happen and retrying it shortly may succeed.
    #[error("database busy: {0}")]
    Busy(sea_orm::DbErr),
    /// The database failed.
    #[error("database error: {0}")]
    Db(sea_orm::DbErr),
    /// Anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sea_orm::DbErr> for CoreError {
    /// Classifies the failure here, once: contention is [`CoreError::Busy`], the rest [`CoreError::Db`].
    fn from(err: sea_orm::DbErr) -> Self {
        if is_contention(&err) {
            CoreError::Busy(err)
        } else {
            CoreError::Db(err)
        }
    }
}

/// True when the database refused because of contention rather than a fault: SQLite's
/// BUSY/LOCKED (any extended code), PostgreSQL's serialization failure (40001), deadlock
/// (40P01) and lock-not-available (55P03), or no pooled connection within the timeout.
fn is_contention(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};
    let sqlx_err = match err {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    if matches!(**sqlx_err, sea_orm::sqlx::Error::PoolTimedOut) {
        return true;
    }
    let Some(db) = sqlx_err.as_database_error() else {
        return false;
    };
    if db
        .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
        .is_some()
    {
        // SQLite reports extended codes; the primary code is the low byte (5 BUSY, 6 LOCKED).
        let primary = db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff);
        return matches!(primary, Some(5 | 6));
    }
    matches!(db.code().as_deref(), Some("40001" | "40P01" | "55P03"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ConnectOptions, ConnectionTrait, Database, TransactionTrait};
    use std::time::Duration;

    /// One connection to a fresh SQLite file that does not wait for locks.
    async fn impatient(path: &std::path::Path) -> sea_orm::DatabaseConnection {
        let mut opts = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
        opts.max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_millis(200))
            .sqlx_logging(false);
        let db = Database::connect(opts).await.unwrap();
        db.execute_unprepared("PRAGMA busy_timeout = 0")
            .await
            .unwrap();
        db
    }

    #[tokio::test]
    async fn a_locked_sqlite_database_is_busy_not_a_fault() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.db");
        let holder = impatient(&path).await;
        holder
            .execute_unprepared("CREATE TABLE t (x INTEGER)")
            .await
            .unwrap();
        let lock = holder.begin().await.unwrap();
        lock.execute_unprepared("INSERT INTO t VALUES (1)")
            .await
            .unwrap();

        let other = impatient(&path).await;
        let err = other
            .execute_unprepared("INSERT INTO t VALUES (2)")
            .await
            .unwrap_err();
        assert!(matches!(CoreError::from(err), CoreError::Busy(_)));
        lock.rollback().await.unwrap();
    }

    #[tokio::test]
    async fn an_exhausted_pool_is_busy_and_a_bad_statement_is_a_fault() {
        let dir = tempfile::tempdir().unwrap();
        let db = impatient(&dir.path().join("pool.db")).await;
        let held = db.begin().await.unwrap();
        let err = db.execute_unprepared("SELECT 1").await.unwrap_err();
        assert!(matches!(CoreError::from(err), CoreError::Busy(_)));
        held.rollback().await.unwrap();

        let err = db
            .execute_unprepared("SELECT * FROM no_such_table")
            .await
            .unwrap_err();
        assert!(matches!(CoreError::from(err), CoreError::Db(_)));
    }
}
