//! Idempotency keys for money-moving requests (lead unlock, wallet top-up).
//!
//! The key row is inserted INSIDE the business transaction, before anything else, and the
//! response is stored in the same transaction before commit. So a concurrent duplicate waits on
//! the unique index `(user_id, idem_key)` (PostgreSQL) or on the single writer (SQLite), then
//! fails with a unique violation once the first commits, and replays the stored response. A
//! refused request (402, 409, ...) rolls back, key included: retrying it may succeed later.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clock::Clock;
use crate::db::begin_write;
use crate::entities::idempotency_keys;
use crate::error::{CoreError, CoreResult};
use crate::pii::hex;

/// Longest accepted `Idempotency-Key`.
pub const MAX_KEY_LEN: usize = 200;

/// A validated key with the scope and request fingerprint it is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdemKey {
    /// The client's key.
    pub key: String,
    /// What the key is used for (`lead.unlock`, `wallet.topup`).
    pub scope: &'static str,
    /// SHA-256 hex of method, path and canonical body.
    pub request_hash: String,
}

/// A response stored under a key, replayed byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

/// The result of an idempotent action: done now, or replayed from the first request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Executed by this request.
    Done {
        /// HTTP status to answer with.
        status: u16,
        /// The value (its JSON is what was stored under the key, if any).
        value: T,
        /// The JSON body, identical to what a replay returns.
        body: String,
    },
    /// An earlier request with the same key already did it.
    Replayed(StoredResponse),
}

impl<T> Outcome<T> {
    /// Status and JSON body to send.
    pub fn response(&self) -> (u16, &str) {
        match self {
            Outcome::Done { status, body, .. } => (*status, body),
            Outcome::Replayed(r) => (r.status, &r.body),
        }
    }
}

/// Checks a raw `Idempotency-Key` header: absent is fine, empty or too long is 400.
pub fn parse_key(raw: Option<&str>) -> CoreResult<Option<String>> {
    match raw {
        None => Ok(None),
        Some(k) => {
            let k = k.trim();
            if k.is_empty() || k.len() > MAX_KEY_LEN || k.chars().any(char::is_control) {
                Err(CoreError::bad_request(
                    "invalid_idempotency_key",
                    format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} printable characters"),
                ))
            } else {
                Ok(Some(k.to_owned()))
            }
        }
    }
}

/// SHA-256 hex over the method, path and canonical body of a request.
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex(&h.finalize())
}

/// What claiming a key inside a transaction found.
pub enum Claim {
    /// The key is ours: go on and store the response before commit.
    Claimed(Uuid),
    /// The key was used before (the transaction is now unusable: roll it back and call
    /// [`replay`]).
    Taken,
}

/// How an idempotent business action starts.
pub enum Begin {
    /// Go on in this write transaction; with a key, store the response under the claim before commit.
    Fresh(sea_orm::DatabaseTransaction, Option<Uuid>),
    /// The key was used before: answer with the first response.
    Replayed(StoredResponse),
}

/// Opens the write transaction and claims the key as its first write, or replays the first
/// response when the key is taken.
pub async fn begin(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    user_id: Uuid,
    key: Option<&IdemKey>,
) -> CoreResult<Begin> {
    let txn = begin_write(db).await?;
    let Some(key) = key else {
        return Ok(Begin::Fresh(txn, None));
    };
    match claim(&txn, clock, user_id, key).await? {
        Claim::Claimed(id) => Ok(Begin::Fresh(txn, Some(id))),
        Claim::Taken => {
            txn.rollback().await?;
            Ok(Begin::Replayed(replay(db, user_id, key).await?))
        }
    }
}

/// Inserts the key row as the first write of the business transaction.
pub async fn claim<C: ConnectionTrait>(
    conn: &C,
    clock: &dyn Clock,
    user_id: Uuid,
    key: &IdemKey,
) -> CoreResult<Claim> {
    let id = Uuid::now_v7();
    let res = idempotency_keys::ActiveModel {
        id: Set(id),
        user_id: Set(user_id),
        idem_key: Set(key.key.clone()),
        scope: Set(key.scope.to_owned()),
        request_hash: Set(key.request_hash.clone()),
        response_status: Set(None),
        response_body: Set(None),
        created_at: Set(clock.now()),
    }
    .insert(conn)
    .await;
    match res {
        Ok(_) => Ok(Claim::Claimed(id)),
        Err(e) if CoreError::is_unique_violation(&e) => Ok(Claim::Taken),
        Err(e) => Err(e.into()),
    }
}

/// Stores the response under a claimed key, in the same transaction as the effect.
pub async fn store<C: ConnectionTrait>(
    conn: &C,
    claim_id: Uuid,
    status: u16,
    body: &str,
) -> CoreResult<()> {
    idempotency_keys::Entity::update_many()
        .col_expr(
            idempotency_keys::Column::ResponseStatus,
            Expr::value(i32::from(status)),
        )
        .col_expr(
            idempotency_keys::Column::ResponseBody,
            Expr::value(body.to_owned()),
        )
        .filter(idempotency_keys::Column::Id.eq(claim_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Reads the committed response of a taken key: the same request replays it, another request
/// with the same key is 409 `idempotency_key_reused` (the key is bound to the server's state from
/// its first request, so this is a refusal by state, like every 409).
pub async fn replay(
    db: &DatabaseConnection,
    user_id: Uuid,
    key: &IdemKey,
) -> CoreResult<StoredResponse> {
    let row = idempotency_keys::Entity::find()
        .filter(idempotency_keys::Column::UserId.eq(user_id))
        .filter(idempotency_keys::Column::IdemKey.eq(key.key.as_str()))
        .one(db)
        .await?
        .ok_or_else(|| {
            CoreError::Internal("an idempotency key vanished after a unique violation".into())
        })?;
    if row.request_hash != key.request_hash || row.scope != key.scope {
        return Err(CoreError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different request",
        ));
    }
    match (row.response_status, row.response_body) {
        (Some(status), Some(body)) => Ok(StoredResponse {
            status: u16::try_from(status).unwrap_or(200),
            body,
        }),
        // Rows are only committed with their response; anything else is not ours to guess.
        _ => Err(CoreError::conflict(
            "idempotency_key_in_progress",
            "a request with this Idempotency-Key is still in progress; retry shortly",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert_eq!(parse_key(None).unwrap(), None);
        assert_eq!(parse_key(Some(" abc ")).unwrap(), Some("abc".into()));
        assert!(parse_key(Some("")).is_err());
        assert!(parse_key(Some("   ")).is_err());
        assert!(parse_key(Some(&"k".repeat(201))).is_err());
        assert!(parse_key(Some(&"k".repeat(200))).is_ok());
    }

    #[test]
    fn hashes_differ_by_method_path_and_body() {
        let a = request_hash("POST", "/leads/1/unlock", b"");
        assert_eq!(a.len(), 64);
        assert_eq!(a, request_hash("POST", "/leads/1/unlock", b""));
        assert_ne!(a, request_hash("POST", "/leads/2/unlock", b""));
        assert_ne!(a, request_hash("PUT", "/leads/1/unlock", b""));
        assert_ne!(a, request_hash("POST", "/leads/1/unlock", b"{}"));
    }
}
