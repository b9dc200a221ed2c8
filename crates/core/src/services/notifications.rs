//! Notifications: a user's inbox. Each user's items carry `seq` from 1 without gaps, allocated in
//! the inserting transaction from the user's `notification_heads` row (one upsert per batch of
//! users, `… ON CONFLICT DO UPDATE SET seq = seq + n RETURNING`), so concurrent writers for the
//! same user queue on that row and roll back together with their items. After commit the caller
//! publishes the returned feed items (`Services::publish_feed`); the hubs' catch-up reads the
//! heads, so a lost publish costs about a second.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kavling_realtime::{FeedEvent, FeedKey};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::entities::{notification_heads, notifications};
use crate::error::{CoreError, CoreResult};
use crate::list::{FieldKind, ListField, ListQuery, ListSpec, Page};

/// Users whose heads one upsert statement allocates (2 parameters each).
const HEADS_PER_STATEMENT: usize = 1000;
/// Notification rows per multi-row insert (10 parameters each, under SQLite's 32,766).
const ROWS_PER_INSERT: usize = 1000;
/// Users per `IN (…)` list when reading heads (one parameter each).
const USERS_PER_READ: usize = 30_000;

/// One notification to insert.
#[derive(Clone, Debug, PartialEq)]
pub struct NewNotification {
    /// The recipient.
    pub user_id: Uuid,
    /// What it is about.
    pub kind: NotificationKind,
    /// Short headline.
    pub title: String,
    /// One or two sentences.
    pub body: String,
    /// Machine-readable details (ids, prices, statuses).
    pub data: serde_json::Value,
}

/// `unit_available`, `price_drop`, `booking`, `payment`, `message`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A watched unit became AVAILABLE.
    UnitAvailable,
    /// A watched unit's price dropped.
    PriceDrop,
    /// A booking of the user was created or changed.
    Booking,
    /// A payment or invoice of the user's booking changed.
    Payment,
    /// A new chat message for the user.
    Message,
}

impl NotificationKind {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::UnitAvailable => "unit_available",
            NotificationKind::PriceDrop => "price_drop",
            NotificationKind::Booking => "booking",
            NotificationKind::Payment => "payment",
            NotificationKind::Message => "message",
        }
    }

    /// Every value, for list filters.
    pub const ALL: &'static [&'static str] = &[
        "unit_available",
        "price_drop",
        "booking",
        "payment",
        "message",
    ];
}

/// A notification as the API and the `user:<id>` channel show it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    /// Id.
    pub id: Uuid,
    /// Per user, from 1, without gaps.
    pub seq: i64,
    /// What it is about.
    #[schema(value_type = NotificationKind)]
    pub kind: String,
    /// Short headline.
    pub title: String,
    /// One or two sentences.
    pub body: String,
    /// Details: ids, block number, prices, statuses.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When the user marked it read (`POST /me/notifications/read`), or null.
    pub read_at: Option<DateTime<Utc>>,
}

impl From<notifications::Model> for NotificationView {
    fn from(n: notifications::Model) -> Self {
        NotificationView {
            id: n.id,
            seq: n.seq,
            kind: n.kind,
            title: n.title,
            body: n.body,
            data: serde_json::from_str(&n.data).unwrap_or(serde_json::Value::Null),
            created_at: n.created_at,
            read_at: n.read_at,
        }
    }
}

impl NotificationView {
    /// The item of the user's feed (`user:<id>` frame fields after `seq`).
    pub fn feed_event(&self, user_id: Uuid) -> FeedEvent {
        let body = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        FeedEvent {
            key: FeedKey::User(user_id),
            seq: self.seq,
            at: self.created_at,
            body,
        }
    }
}

/// Inserts them in the caller's transaction, allocating per-user seq; returns the feed items to
/// publish after commit.
pub async fn insert_notifications<C: sea_orm::ConnectionTrait>(
    conn: &C,
    items: &[NewNotification],
    now: chrono::DateTime<chrono::Utc>,
) -> CoreResult<Vec<kavling_realtime::FeedEvent>> {
    insert_keyed_notifications(conn, items, &[], now).await
}

/// [`insert_notifications`] with a dedup key per item (`keys[i]` for `items[i]`; missing keys
/// are none). A key already stored fails the statement with a unique violation, so the caller's
/// transaction rolls back whole: a derived notification is never written twice, and no seq is
/// spent on it.
pub(crate) async fn insert_keyed_notifications<C: ConnectionTrait>(
    conn: &C,
    items: &[NewNotification],
    keys: &[String],
    now: DateTime<Utc>,
) -> CoreResult<Vec<FeedEvent>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let mut counts: HashMap<Uuid, i64> = HashMap::new();
    for item in items {
        *counts.entry(item.user_id).or_default() += 1;
    }
    let heads = allocate_heads(conn, &counts).await?;
    // The first seq of each user's run: new head - count + 1.
    let mut next: HashMap<Uuid, i64> = HashMap::with_capacity(counts.len());
    for (user, count) in &counts {
        let head = heads
            .get(user)
            .copied()
            .ok_or_else(|| CoreError::Internal("a notification head was not returned".into()))?;
        next.insert(*user, head - count + 1);
    }
    let mut views = Vec::with_capacity(items.len());
    let mut rows = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let slot = next
            .get_mut(&item.user_id)
            .ok_or_else(|| CoreError::Internal("a notification head was not allocated".into()))?;
        let seq = *slot;
        *slot += 1;
        let view = NotificationView {
            id: Uuid::now_v7(),
            seq,
            kind: item.kind.as_str().to_owned(),
            title: item.title.clone(),
            body: item.body.clone(),
            data: item.data.clone(),
            created_at: now,
            read_at: None,
        };
        rows.push(notifications::ActiveModel {
            id: Set(view.id),
            user_id: Set(item.user_id),
            seq: Set(seq),
            kind: Set(view.kind.clone()),
            title: Set(view.title.clone()),
            body: Set(view.body.clone()),
            data: Set(view.data.to_string()),
            created_at: Set(now),
            read_at: Set(None),
            dedup_key: Set(keys.get(i).cloned()),
        });
        views.push((item.user_id, view));
    }
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(ROWS_PER_INSERT).collect();
        notifications::Entity::insert_many(chunk)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(views
        .into_iter()
        .map(|(user, view)| view.feed_event(user))
        .collect())
}

/// Adds each user's count to their head (creating it at the count) and returns the new heads.
/// Users are taken in id order, so two transactions allocating for overlapping users lock the
/// head rows in the same order and cannot deadlock.
async fn allocate_heads<C: ConnectionTrait>(
    conn: &C,
    counts: &HashMap<Uuid, i64>,
) -> CoreResult<HashMap<Uuid, i64>> {
    let backend = conn.get_database_backend();
    let mut users: Vec<(Uuid, i64)> = counts.iter().map(|(u, c)| (*u, *c)).collect();
    users.sort_unstable_by_key(|(u, _)| *u);
    let mut heads = HashMap::with_capacity(users.len());
    for chunk in users.chunks(HEADS_PER_STATEMENT) {
        let mut sql = String::from("INSERT INTO notification_heads (user_id, seq) VALUES ");
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 2);
        for (i, (user, count)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            if backend == DbBackend::Postgres {
                sql.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
            } else {
                sql.push_str("(?, ?)");
            }
            values.push((*user).into());
            values.push((*count).into());
        }
        sql.push_str(
            " ON CONFLICT (user_id) DO UPDATE SET seq = notification_heads.seq + excluded.seq \
             RETURNING user_id, seq",
        );
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        for row in rows {
            let user: Uuid = row.try_get("", "user_id")?;
            let seq: i64 = row.try_get("", "seq")?;
            heads.insert(user, seq);
        }
    }
    Ok(heads)
}

/// Items of a user's feed with seq > `after`, ascending, at most `limit` (for `since` replays).
pub async fn user_feed_after<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    after: i64,
    limit: u64,
) -> CoreResult<Vec<FeedEvent>> {
    let rows = notifications::Entity::find()
        .filter(notifications::Column::UserId.eq(user_id))
        .filter(notifications::Column::Seq.gt(after))
        .order_by_asc(notifications::Column::Seq)
        .limit(limit)
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|n| NotificationView::from(n).feed_event(user_id))
        .collect())
}

/// The latest seq of each given user that has notifications (users without any are absent),
/// in one query per 30,000 users.
pub async fn user_feed_heads<C: ConnectionTrait>(
    conn: &C,
    users: &[Uuid],
) -> CoreResult<HashMap<Uuid, i64>> {
    let mut heads = HashMap::with_capacity(users.len());
    for chunk in users.chunks(USERS_PER_READ) {
        let rows: Vec<(Uuid, i64)> = notification_heads::Entity::find()
            .select_only()
            .column(notification_heads::Column::UserId)
            .column(notification_heads::Column::Seq)
            .filter(notification_heads::Column::UserId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(conn)
            .await?;
        heads.extend(rows);
    }
    Ok(heads)
}

/// The whitelist of `GET /me/notifications` (`filters[readAt][$null]=true`: the unread ones).
pub const NOTIFICATION_LIST: ListSpec<notifications::Column> = ListSpec {
    fields: &[
        ListField {
            name: "readAt",
            column: notifications::Column::ReadAt,
            kind: FieldKind::Timestamp,
        },
        ListField {
            name: "kind",
            column: notifications::Column::Kind,
            kind: FieldKind::Enum(NotificationKind::ALL),
        },
        ListField {
            name: "seq",
            column: notifications::Column::Seq,
            kind: FieldKind::Integer,
        },
        ListField {
            name: "createdAt",
            column: notifications::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(notifications::Column::Seq, true)],
    tiebreak: notifications::Column::Id,
};

/// `POST /me/notifications/read` body.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadMark {
    /// Every notification with `seq` up to this one is marked read.
    #[serde(deserialize_with = "crate::whole_numbers::i64_whole")]
    #[schema(minimum = 0)]
    pub up_to: i64,
}

/// `POST /me/notifications/read` answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadResult {
    /// The `upTo` applied.
    pub up_to: i64,
    /// How many notifications this call marked (those already read keep their `readAt`).
    pub updated: u64,
    /// The caller's notifications still unread.
    pub unread: u64,
}

/// What a committed transaction publishes: unit events and feed items (notifications).
#[derive(Clone, Debug, Default)]
pub struct Committed {
    /// Unit status changes, in seq order per project.
    pub units: Vec<kavling_realtime::UnitEvent>,
    /// Feed items, in seq order per feed.
    pub feed: Vec<FeedEvent>,
}

impl Committed {
    /// Adds another change's events and items.
    pub fn extend(&mut self, other: Committed) {
        self.units.extend(other.units);
        self.feed.extend(other.feed);
    }
}

impl Services {
    /// Publishes what a transaction committed: its unit events, then its notifications.
    pub async fn publish_committed(&self, committed: &Committed) {
        self.publish(&committed.units).await;
        self.publish_feed(&committed.feed).await;
    }

    /// `GET /me/notifications`: the caller's own, newest first by default (list conventions).
    pub async fn list_notifications(
        &self,
        user_id: Uuid,
        query: &str,
    ) -> CoreResult<Page<NotificationView>> {
        let q = ListQuery::parse(query, &NOTIFICATION_LIST)?;
        let select =
            notifications::Entity::find().filter(notifications::Column::UserId.eq(user_id));
        Ok(q.fetch(select, &self.db).await?.map(NotificationView::from))
    }

    /// `POST /me/notifications/read`: marks the caller's notifications up to `upTo` read.
    pub async fn mark_notifications_read(
        &self,
        user_id: Uuid,
        mark: ReadMark,
    ) -> CoreResult<ReadResult> {
        if mark.up_to < 0 {
            return Err(CoreError::invalid_field(
                "upTo",
                "out_of_range",
                "a seq, at least 0",
            ));
        }
        let res = notifications::Entity::update_many()
            .col_expr(
                notifications::Column::ReadAt,
                sea_orm::sea_query::Expr::value(self.clock.now()),
            )
            .filter(notifications::Column::UserId.eq(user_id))
            .filter(notifications::Column::Seq.lte(mark.up_to))
            .filter(notifications::Column::ReadAt.is_null())
            .exec(&self.db)
            .await?;
        let unread = sea_orm::PaginatorTrait::count(
            notifications::Entity::find()
                .filter(notifications::Column::UserId.eq(user_id))
                .filter(notifications::Column::ReadAt.is_null()),
            &self.db,
        )
        .await?;
        Ok(ReadResult {
            up_to: mark.up_to,
            updated: res.rows_affected,
            unread,
        })
    }

    /// Publishes committed feed items (notifications, messages) to every instance's hub. Like
    /// [`Services::publish`], the bus is only the fast path: the hubs' catch-up tick reads the
    /// feeds' heads every second, so a failure here is logged, not returned.
    pub async fn publish_feed(&self, items: &[FeedEvent]) {
        if items.is_empty() {
            return;
        }
        if let Err(e) = self.bus.publish_feed(items).await {
            tracing::warn!(items = items.len(), error = %e,
                "publishing feed items failed; subscribers will catch up from the database");
        }
        // Booking and payment changes also go, live, to the project's staff channel.
        for note in crate::services::booking_notices::staff_notes(items) {
            if let Err(e) = self.bus.publish_booking_note(&note).await {
                tracing::warn!(project = %note.project_id, error = %e,
                    "publishing a staff booking note failed (live only; the notifications keep it)");
            }
        }
    }
}
