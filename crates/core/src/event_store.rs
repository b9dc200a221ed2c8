//! The realtime hub's read side over the database: replay from `unit_events`, consistent
//! snapshots, one query for the latest seq and unit-list version of many projects, and the
//! feeds (a user's notifications; conversations are read by the chat service).

use std::collections::HashMap;

use async_trait::async_trait;
use kavling_realtime::{
    BookingInfo, EventStore, FeedEvent, FeedKey, ProjectHead, Snapshot, StoreError, TokenChange,
    UnitEvent, UnitState,
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::db::begin_snapshot;
use crate::domain::Palette;
use crate::entities::{bookings, projects, unit_events, units, users};
use crate::services::{conversations, notifications};

/// [`EventStore`] backed by the Kavling database.
#[derive(Clone, Debug)]
pub struct DbEventStore {
    db: DatabaseConnection,
}

impl DbEventStore {
    /// A store over a connection pool.
    pub fn new(db: DatabaseConnection) -> Self {
        DbEventStore { db }
    }
}

/// Every unit of a project with its status and colour, and the seq they are current as of, read
/// in one consistent transaction: the one assembly behind the hub's snapshots and `/availability`.
pub(crate) async fn project_snapshot(
    db: &DatabaseConnection,
    project_id: Uuid,
) -> Result<Option<Snapshot>, sea_orm::DbErr> {
    let txn = begin_snapshot(db).await?;
    let Some(project) = projects::Entity::find_by_id(project_id).one(&txn).await? else {
        return Ok(None);
    };
    let rows = units::Entity::find()
        .filter(units::Column::ProjectId.eq(project_id))
        .order_by_asc(units::Column::BlockNumber)
        .all(&txn)
        .await?;
    txn.commit().await?;
    let palette = Palette::from_json(project.palette.as_ref());
    Ok(Some(Snapshot {
        project_id,
        seq: project.event_seq,
        units_version: project.units_version,
        units: rows
            .into_iter()
            .map(|u| UnitState {
                color: palette.color(&u.status),
                unit_id: u.id,
                block_number: u.block_number,
                status: u.status,
            })
            .collect(),
    }))
}

/// Staff details for the bookings behind some events: two batched queries, not one per event.
async fn booking_details(
    db: &DatabaseConnection,
    booking_ids: Vec<Uuid>,
) -> Result<HashMap<Uuid, BookingInfo>, sea_orm::DbErr> {
    if booking_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = bookings::Entity::find()
        .filter(bookings::Column::Id.is_in(booking_ids))
        .all(db)
        .await?;
    let marketing_ids: Vec<Uuid> = rows.iter().map(|b| b.marketing_id).collect();
    let names: HashMap<Uuid, String> = users::Entity::find()
        .filter(users::Column::Id.is_in(marketing_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.full_name))
        .collect();
    Ok(rows
        .into_iter()
        .map(|b| {
            let info = BookingInfo {
                booking_id: b.id,
                booking_code: b.booking_code,
                marketing_name: names.get(&b.marketing_id).cloned().unwrap_or_default(),
            };
            (b.id, info)
        })
        .collect())
}

#[async_trait]
impl EventStore for DbEventStore {
    async fn events_after(
        &self,
        project_id: Uuid,
        after: i64,
        limit: u64,
    ) -> Result<Option<Vec<UnitEvent>>, StoreError> {
        let Some(project) = projects::Entity::find_by_id(project_id)
            .one(&self.db)
            .await
            .map_err(StoreError::backend)?
        else {
            return Ok(None);
        };
        if after >= project.event_seq {
            return Ok(Some(Vec::new()));
        }
        if after < 0 {
            return Ok(None);
        }
        let rows = unit_events::Entity::find()
            .filter(unit_events::Column::ProjectId.eq(project_id))
            .filter(unit_events::Column::Seq.gt(after))
            .order_by_asc(unit_events::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(StoreError::backend)?;
        // History covers `after` only if the very next event is still there (older ones may be pruned).
        if rows.first().map(|r| r.seq) != Some(after + 1) {
            return Ok(None);
        }
        let palette = Palette::from_json(project.palette.as_ref());
        let booking_ids: Vec<Uuid> = rows.iter().filter_map(|r| r.booking_id).collect();
        let details = booking_details(&self.db, booking_ids)
            .await
            .map_err(StoreError::backend)?;
        Ok(Some(
            rows.into_iter()
                .map(|r| UnitEvent {
                    project_id,
                    seq: r.seq,
                    unit_id: r.unit_id,
                    color: palette.color(&r.new_status),
                    block_number: r.block_number,
                    status: r.new_status,
                    previous_status: r.old_status,
                    at: r.at,
                    booking: r.booking_id.and_then(|id| details.get(&id).cloned()),
                })
                .collect(),
        ))
    }

    async fn snapshot(&self, project_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        project_snapshot(&self.db, project_id)
            .await
            .map_err(StoreError::backend)
    }

    async fn latest_heads(
        &self,
        project_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, ProjectHead>, StoreError> {
        if project_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(Uuid, i64, i64)> = projects::Entity::find()
            .select_only()
            .column(projects::Column::Id)
            .column(projects::Column::EventSeq)
            .column(projects::Column::UnitsVersion)
            .filter(projects::Column::Id.is_in(project_ids.iter().copied()))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(StoreError::backend)?;
        Ok(rows
            .into_iter()
            .map(|(id, seq, units_version)| (id, ProjectHead { seq, units_version }))
            .collect())
    }

    async fn token_changes(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<TokenChange>, StoreError> {
        // A range scan of `ix_users_tokens_changed_at`: only the few users revoked lately.
        let rows: Vec<(Uuid, i64, Option<chrono::DateTime<chrono::Utc>>)> = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .column(users::Column::TokenVersion)
            .column(users::Column::TokensChangedAt)
            .filter(users::Column::TokensChangedAt.gt(since))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(StoreError::backend)?;
        Ok(rows
            .into_iter()
            .filter_map(|(user_id, token_version, changed_at)| {
                Some(TokenChange {
                    user_id,
                    token_version,
                    changed_at: changed_at?,
                })
            })
            .collect())
    }

    async fn feed_after(
        &self,
        key: FeedKey,
        after: i64,
        limit: u64,
    ) -> Result<Vec<FeedEvent>, StoreError> {
        match key {
            FeedKey::User(user_id) => {
                notifications::user_feed_after(&self.db, user_id, after, limit)
                    .await
                    .map_err(StoreError::backend)
            }
            FeedKey::Conversation(id) => conversations::feed_after(&self.db, id, after, limit)
                .await
                .map_err(StoreError::backend),
        }
    }

    async fn feed_heads(&self, keys: &[FeedKey]) -> Result<HashMap<FeedKey, i64>, StoreError> {
        let mut users = Vec::new();
        let mut conversation_ids = Vec::new();
        for key in keys {
            match key {
                FeedKey::User(id) => users.push(*id),
                FeedKey::Conversation(id) => conversation_ids.push(*id),
            }
        }
        let mut heads = HashMap::with_capacity(keys.len());
        if !users.is_empty() {
            let user_heads = notifications::user_feed_heads(&self.db, &users)
                .await
                .map_err(StoreError::backend)?;
            heads.extend(
                user_heads
                    .into_iter()
                    .map(|(id, seq)| (FeedKey::User(id), seq)),
            );
        }
        heads.extend(self.conversation_heads(&conversation_ids).await?);
        Ok(heads)
    }

    async fn conversation_parties(
        &self,
        conversation_id: Uuid,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        conversations::parties(&self.db, conversation_id)
            .await
            .map_err(StoreError::backend)
    }
}

impl DbEventStore {
    /// Heads of conversation feeds (one query for all of them).
    async fn conversation_heads(&self, ids: &[Uuid]) -> Result<HashMap<FeedKey, i64>, StoreError> {
        Ok(conversations::feed_heads(&self.db, ids)
            .await
            .map_err(StoreError::backend)?
            .into_iter()
            .map(|(id, seq)| (FeedKey::Conversation(id), seq))
            .collect())
    }
}
