//! The read side of the database that the hub needs, as a trait.

use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::model::{FeedEvent, FeedKey, ProjectHead, Snapshot, TokenChange, UnitEvent};

/// Failure of an [`EventStore`] call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend (database) failed.
    #[error("event store backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Any other failure, described.
    #[error("event store: {0}")]
    Other(String),
}

impl StoreError {
    /// Wraps any backend error.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(err))
    }
}

/// Implemented by the database layer (over unit_events/units); the hub never sees SQL.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Events with seq > after in ascending order (at most `limit`); Ok(None) when history no longer covers `after` (pruned).
    async fn events_after(
        &self,
        project_id: Uuid,
        after: i64,
        limit: u64,
    ) -> Result<Option<Vec<UnitEvent>>, StoreError>;

    /// Current units and seq of a project (consistent: the seq matches the statuses); Ok(None) if the project does not exist.
    async fn snapshot(&self, project_id: Uuid) -> Result<Option<Snapshot>, StoreError>;

    /// Latest seq and unit-list version of each given project in ONE query (for the 1 s
    /// catch-up tick).
    async fn latest_heads(
        &self,
        project_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, ProjectHead>, StoreError>;

    /// Users whose token version changed after `since`, in ONE query (for the revocation
    /// catch-up tick). The default knows of no accounts.
    async fn token_changes(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<TokenChange>, StoreError> {
        let _ = since;
        Ok(Vec::new())
    }

    /// Items of a feed with seq > after, ascending, at most `limit`. The default knows no feeds.
    async fn feed_after(
        &self,
        key: FeedKey,
        after: i64,
        limit: u64,
    ) -> Result<Vec<FeedEvent>, StoreError> {
        let _ = (key, after, limit);
        Ok(Vec::new())
    }

    /// Latest seq of each given feed (0 for a feed with no items yet; absent for an unknown one),
    /// in at most one query per feed kind: the catch-up tick calls it every second for every feed
    /// with local subscribers (tens of thousands of users). The default knows no feeds.
    async fn feed_heads(&self, keys: &[FeedKey]) -> Result<HashMap<FeedKey, i64>, StoreError> {
        let _ = keys;
        Ok(HashMap::new())
    }

    /// The users allowed on a conversation's channel (its two parties); None if it does not exist.
    /// Called at subscribe only. The default knows no conversations.
    async fn conversation_parties(
        &self,
        conversation_id: Uuid,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let _ = conversation_id;
        Ok(None)
    }
}

/// Runs a store call within `timeout` (a stuck database must not hang subscribers for ever),
/// counting failures in `metrics`.
pub(crate) async fn timed<T>(
    timeout: std::time::Duration,
    metrics: &Metrics,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let result = match tokio::time::timeout(timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Other(format!("no answer within {timeout:?}"))),
    };
    if result.is_err() {
        metrics.store_errors.inc();
    }
    result
}
