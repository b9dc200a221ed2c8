//! The read side of the database that the hub needs, as a trait.

use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use crate::model::{ProjectHead, Snapshot, TokenChange, UnitEvent};

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
}
