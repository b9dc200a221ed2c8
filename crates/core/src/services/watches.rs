//! Watches and the notifier that turns unit changes into notifications.
//!
//! A watch is a unit, or a project's units matching a filter (type, price range, bedrooms).
//! The notifier derives notifications from committed facts, never from a publish:
//! - status changes from `unit_events`, after a per-project cursor (`notifier_cursors`): a unit
//!   becoming AVAILABLE (watchers), and a booking's creation (its marketing user and buyer);
//! - price drops from `unit_price_drops`, rows written in the price change's transaction.
//!
//! Each step is one transaction that first claims its input (a conditional update of the cursor
//! from the value it read, or the deletion of the drop rows, `RETURNING` which ones this instance
//! got), then finds the watchers through the indexes (`watches.unit_id`, and
//! `(project_id, unit_id IS NULL)` for filters), and inserts one notification per user and
//! change with a unique dedup key. So two instances running the notifier at once, or a crash
//! before commit, can neither lose nor repeat a notification: the claim that loses affects no
//! row, and a rolled-back step leaves its input for the next pass. The items are published
//! after commit; the hubs' catch-up covers a lost publish.
//!
//! The notifier runs on every instance (the server's `notifier` job, `Services::run_notifier`), woken right after a commit that may
//! concern watchers ([`NotifierWake`]) and polling as well, so a change committed by an instance
//! that died before waking anyone is still notified within a poll.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::db::begin_write;
use crate::domain::UnitStatus;
use crate::entities::{
    bookings, notifier_cursors, projects, unit_events, unit_price_drops, units, watches,
};
use crate::error::{CoreError, CoreResult, FieldError};
use crate::list::{FieldKind, ListField, ListQuery, ListSpec, Page};
use crate::services::booking_notices::notify_bookings_created;
use crate::services::notifications::{
    NewNotification, NotificationKind, insert_keyed_notifications,
};

/// Unit events one notifier step reads (and one transaction covers).
const EVENTS_PER_STEP: i64 = 500;
/// Price drops one notifier step claims.
const DROPS_PER_STEP: u64 = 100;
/// Longest filter type.
pub const MAX_TYPE_LEN: usize = 64;

/// Wakes this instance's notifier right after a commit that may concern watchers.
#[derive(Clone, Debug, Default)]
pub struct NotifierWake(Arc<tokio::sync::Notify>);

impl NotifierWake {
    /// Asks the notifier for a pass now (coalesced: one pending wake at most).
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Waits for the next wake.
    pub async fn woken(&self) {
        self.0.notified().await;
    }
}

/// A project watch's filter: every given criterion must hold.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WatchFilter {
    /// The unit type, exactly (case-insensitive), e.g. `36/72`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 64, pattern = r"[^\s\x85]")]
    pub unit_type: Option<String>,
    /// Lowest price, rupiah.
    #[serde(
        default,
        deserialize_with = "crate::whole_numbers::opt_i64_whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 0)]
    pub price_min: Option<i64>,
    /// Highest price, rupiah (below `priceMin`, the watch matches nothing).
    #[serde(
        default,
        deserialize_with = "crate::whole_numbers::opt_i64_whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 0)]
    pub price_max: Option<i64>,
    /// Fewest bedrooms.
    #[serde(
        default,
        deserialize_with = "crate::whole_numbers::opt_i32_whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 0, maximum = 100)]
    pub bedrooms_min: Option<i32>,
}

/// `POST /me/watches` body: `{unitId}` or `{projectId, filter?}`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWatch {
    /// Watch this unit.
    pub unit_id: Option<Uuid>,
    /// Or watch this project's units matching `filter` (all of them without one).
    pub project_id: Option<Uuid>,
    /// Only with `projectId`.
    pub filter: Option<WatchFilter>,
}

/// A watch as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchView {
    /// Id.
    pub id: Uuid,
    /// The unit watched (unit watches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_id: Option<Uuid>,
    /// The project (of the unit, for a unit watch).
    pub project_id: Uuid,
    /// The filter (project watches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<WatchFilter>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl From<watches::Model> for WatchView {
    fn from(w: watches::Model) -> Self {
        let filter = w.unit_id.is_none().then(|| WatchFilter {
            unit_type: w.filter_type.clone(),
            price_min: w.price_min,
            price_max: w.price_max,
            bedrooms_min: w.bedrooms_min,
        });
        WatchView {
            id: w.id,
            unit_id: w.unit_id,
            project_id: w.project_id,
            filter,
            created_at: w.created_at,
        }
    }
}

/// The whitelist of `GET /me/watches`.
pub const WATCH_LIST: ListSpec<watches::Column> = ListSpec {
    fields: &[
        ListField {
            name: "projectId",
            column: watches::Column::ProjectId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "unitId",
            column: watches::Column::UnitId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "createdAt",
            column: watches::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(watches::Column::CreatedAt, true)],
    tiebreak: watches::Column::Id,
};

/// Checks a new watch's shape: a unit, or a project with an optional, consistent filter.
fn validate_watch(input: &NewWatch) -> CoreResult<()> {
    let mut errors = Vec::new();
    match (input.unit_id, input.project_id) {
        (Some(_), Some(_)) => errors.push(FieldError::new(
            "projectId",
            "not_allowed",
            "give unitId or projectId, not both",
        )),
        (None, None) => errors.push(FieldError::new(
            "unitId",
            "required",
            "give unitId, or projectId with an optional filter",
        )),
        (Some(_), None) if input.filter.is_some() => errors.push(FieldError::new(
            "filter",
            "not_allowed",
            "a filter goes with projectId only",
        )),
        _ => {}
    }
    if let Some(f) = &input.filter {
        if let Some(t) = &f.unit_type
            && (t.trim().is_empty() || t.chars().count() > MAX_TYPE_LEN)
        {
            errors.push(FieldError::new(
                "filter.type",
                "invalid",
                format!("1 to {MAX_TYPE_LEN} characters"),
            ));
        }
        for (field, value) in [
            ("filter.priceMin", f.price_min),
            ("filter.priceMax", f.price_max),
        ] {
            if value.is_some_and(|v| v < 0) {
                errors.push(FieldError::new(field, "out_of_range", "at least 0 rupiah"));
            }
        }
        if f.bedrooms_min.is_some_and(|b| !(0..=100).contains(&b)) {
            errors.push(FieldError::new(
                "filter.bedroomsMin",
                "out_of_range",
                "0 to 100",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CoreError::Validation(errors))
    }
}

/// Whether a unit matches a watch (a unit watch matches its unit; a project watch its filter).
fn watch_matches(w: &watches::Model, u: &units::Model) -> bool {
    if let Some(unit_id) = w.unit_id {
        return unit_id == u.id;
    }
    w.project_id == u.project_id
        && w.filter_type
            .as_deref()
            .is_none_or(|t| t.trim().eq_ignore_ascii_case(u.unit_type.trim()))
        && w.price_min.is_none_or(|m| u.price >= m)
        && w.price_max.is_none_or(|m| u.price <= m)
        && w.bedrooms_min.is_none_or(|m| u.bedrooms.unwrap_or(0) >= m)
}

/// `450000000` → `Rp 450.000.000`.
fn rupiah(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + 8);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    format!("Rp {}{out}", if amount < 0 { "-" } else { "" })
}

/// One change the notifier turns into notifications.
struct Change<'a> {
    /// Stable id of the change (the unit event's or the price drop's), for dedup keys.
    id: Uuid,
    kind: NotificationKind,
    unit: &'a units::Model,
    project_name: &'a str,
    /// The price before, for a drop.
    previous_price: Option<i64>,
}

impl Change<'_> {
    /// The notification for one watcher.
    fn notification(&self, user_id: Uuid, watch_id: Uuid) -> (NewNotification, String) {
        let u = self.unit;
        let (title, body, key) = match self.kind {
            NotificationKind::PriceDrop => (
                format!("{}: price dropped", u.block_number),
                format!(
                    "Unit {} ({}) in {} now costs {}, down from {}.",
                    u.block_number,
                    u.unit_type,
                    self.project_name,
                    rupiah(u.price),
                    rupiah(self.previous_price.unwrap_or(u.price))
                ),
                "pd",
            ),
            _ => (
                format!("{} is available", u.block_number),
                format!(
                    "Unit {} ({}) in {} is available again, at {}.",
                    u.block_number,
                    u.unit_type,
                    self.project_name,
                    rupiah(u.price)
                ),
                "ua",
            ),
        };
        let mut data = serde_json::json!({
            "projectId": u.project_id,
            "unitId": u.id,
            "blockNumber": u.block_number,
            "type": u.unit_type,
            "status": u.status,
            "price": u.price,
            "watchId": watch_id,
        });
        if let Some(previous) = self.previous_price {
            data["previousPrice"] = previous.into();
        }
        (
            NewNotification {
                user_id,
                kind: self.kind,
                title,
                body,
                data,
            },
            format!("{key}:{}:{user_id}", self.id),
        )
    }
}

/// Watches of `project_id` that could match changes of `unit_ids`: the units' own watches
/// (index on `unit_id`) and the project's filter watches (index on `(project_id, unit_id)`).
async fn candidate_watches<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    unit_ids: &[Uuid],
) -> CoreResult<Vec<watches::Model>> {
    let mut found = watches::Entity::find()
        .filter(watches::Column::UnitId.is_in(unit_ids.iter().copied()))
        .all(conn)
        .await?;
    found.extend(
        watches::Entity::find()
            .filter(watches::Column::ProjectId.eq(project_id))
            .filter(watches::Column::UnitId.is_null())
            .all(conn)
            .await?,
    );
    Ok(found)
}

/// The notifications of some changes: one per user and change (a user with several matching
/// watches gets one), in change order.
fn notifications_for(
    changes: &[Change<'_>],
    candidates: &[watches::Model],
) -> (Vec<NewNotification>, Vec<String>) {
    let mut items = Vec::new();
    let mut keys = Vec::new();
    for change in changes {
        let mut seen = HashSet::new();
        for w in candidates.iter().filter(|w| watch_matches(w, change.unit)) {
            if seen.insert(w.user_id) {
                let (item, key) = change.notification(w.user_id, w.id);
                items.push(item);
                keys.push(key);
            }
        }
    }
    (items, keys)
}

/// A project whose unit events the notifier has not covered yet.
struct Pending {
    project_id: Uuid,
    head: i64,
    cursor: Option<i64>,
}

impl Services {
    /// `POST /me/watches`: a unit, or a project with an optional filter. 404 for an unknown
    /// unit or project.
    pub async fn create_watch(&self, user_id: Uuid, input: NewWatch) -> CoreResult<WatchView> {
        validate_watch(&input)?;
        let project_id = match (input.unit_id, input.project_id) {
            (Some(unit_id), _) => {
                units::Entity::find_by_id(unit_id)
                    .one(&self.db)
                    .await?
                    .ok_or(CoreError::NotFound("unit"))?
                    .project_id
            }
            (None, Some(project_id)) => self.project(project_id).await?.id,
            (None, None) => return Err(CoreError::NotFound("unit")),
        };
        let filter = input.filter.unwrap_or_default();
        let watch = watches::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user_id),
            project_id: Set(project_id),
            unit_id: Set(input.unit_id),
            filter_type: Set(filter.unit_type.map(|t| t.trim().to_owned())),
            price_min: Set(filter.price_min),
            price_max: Set(filter.price_max),
            bedrooms_min: Set(filter.bedrooms_min),
            created_at: Set(self.clock.now()),
        }
        .insert(&self.db)
        .await?;
        Ok(watch.into())
    }

    /// `GET /me/watches` (the caller's own; list conventions).
    pub async fn list_watches(&self, user_id: Uuid, query: &str) -> CoreResult<Page<WatchView>> {
        let q = ListQuery::parse(query, &WATCH_LIST)?;
        let select = watches::Entity::find().filter(watches::Column::UserId.eq(user_id));
        Ok(q.fetch(select, &self.db).await?.map(WatchView::from))
    }

    /// `DELETE /me/watches/{id}`: the caller's own watch; anyone else's is 404 like a missing one.
    pub async fn delete_watch(&self, user_id: Uuid, id: Uuid) -> CoreResult<()> {
        let res = watches::Entity::delete_many()
            .filter(watches::Column::Id.eq(id))
            .filter(watches::Column::UserId.eq(user_id))
            .exec(&self.db)
            .await?;
        if res.rows_affected == 0 {
            return Err(CoreError::NotFound("watch"));
        }
        Ok(())
    }

    /// Benchmark seed: `n` BUYER users (`watcher-<i>-<tag>@bench.kavling`, one shared password
    /// hash) each watching `unit_id`, in one transaction. Returns each user's id and token.
    pub async fn seed_watchers(
        &self,
        unit_id: Uuid,
        n: usize,
        password: &str,
    ) -> CoreResult<Vec<(Uuid, String)>> {
        let unit = units::Entity::find_by_id(unit_id)
            .one(&self.db)
            .await?
            .ok_or(CoreError::NotFound("unit"))?;
        let tag = Uuid::now_v7().simple().to_string();
        let mut seeded = Vec::with_capacity(n);
        let txn = begin_write(&self.db).await?;
        let hash = crate::services::users::hash_off_thread(password.to_owned()).await?;
        let now = self.clock.now();
        for i in 0..n {
            let user = crate::services::users::insert_buyer(
                &txn,
                self,
                format!("watcher-{i}-{tag}@bench.kavling"),
                hash.clone(),
            )
            .await?;
            watches::ActiveModel {
                id: Set(Uuid::now_v7()),
                user_id: Set(user.id),
                project_id: Set(unit.project_id),
                unit_id: Set(Some(unit_id)),
                filter_type: Set(None),
                price_min: Set(None),
                price_max: Set(None),
                bedrooms_min: Set(None),
                created_at: Set(now),
            }
            .insert(&txn)
            .await?;
            let token = self
                .tokens
                .issue(user.id, crate::domain::Role::Buyer, now.timestamp())?;
            seeded.push((user.id, token));
        }
        txn.commit().await?;
        Ok(seeded)
    }

    /// Runs the notifier until nothing is left: every project's unit events after its cursor,
    /// then the price drops. Returns how many notifications it wrote.
    pub async fn run_notifier(&self) -> CoreResult<usize> {
        let mut written = 0;
        for pending in self.pending_projects().await? {
            let mut cursor = match pending.cursor {
                Some(c) => c,
                None => self.open_cursor(pending.project_id).await?,
            };
            while cursor < pending.head {
                let upto = Ord::min(pending.head, cursor + EVENTS_PER_STEP);
                match self
                    .notify_unit_events(pending.project_id, cursor, upto)
                    .await?
                {
                    Some(n) => written += n,
                    // Another instance advanced the cursor: it covers this project now.
                    None => break,
                }
                cursor = upto;
            }
        }
        loop {
            let (n, claimed) = self.notify_price_drops().await?;
            written += n;
            if claimed < DROPS_PER_STEP {
                return Ok(written);
            }
        }
    }

    /// Projects whose event seq is ahead of their notifier cursor (or that have none yet).
    async fn pending_projects(&self) -> CoreResult<Vec<Pending>> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT p.id AS project_id, p.event_seq AS head, c.seq AS cursor FROM projects p \
                 LEFT JOIN notifier_cursors c ON c.project_id = p.id \
                 WHERE c.seq IS NULL OR c.seq < p.event_seq",
            ))
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Pending {
                    project_id: r.try_get("", "project_id")?,
                    head: r.try_get("", "head")?,
                    cursor: r.try_get("", "cursor")?,
                })
            })
            .collect()
    }

    /// Creates a project's cursor at 0 (a project created after the notifier existed: all its
    /// events are new) unless another instance just did; returns the cursor.
    async fn open_cursor(&self, project_id: Uuid) -> CoreResult<i64> {
        let backend = self.db.get_database_backend();
        let sql = if backend == DbBackend::Postgres {
            "INSERT INTO notifier_cursors (project_id, seq) VALUES ($1, 0) \
             ON CONFLICT (project_id) DO NOTHING"
        } else {
            "INSERT INTO notifier_cursors (project_id, seq) VALUES (?, 0) \
             ON CONFLICT (project_id) DO NOTHING"
        };
        self.db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [project_id.into()],
            ))
            .await?;
        Ok(notifier_cursors::Entity::find_by_id(project_id)
            .one(&self.db)
            .await?
            .map_or(0, |c| c.seq))
    }

    /// One step over a project's events `from + 1 ..= upto`: claims them by moving the cursor
    /// from `from` (None if another instance moved it first), writes the notifications of the
    /// units that became AVAILABLE, commits, publishes. Returns how many it wrote.
    async fn notify_unit_events(
        &self,
        project_id: Uuid,
        from: i64,
        upto: i64,
    ) -> CoreResult<Option<usize>> {
        let txn = begin_write(&self.db).await?;
        let claimed = notifier_cursors::Entity::update_many()
            .col_expr(notifier_cursors::Column::Seq, Expr::value(upto))
            .filter(notifier_cursors::Column::ProjectId.eq(project_id))
            .filter(notifier_cursors::Column::Seq.eq(from))
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            return Ok(None);
        }
        let events = unit_events::Entity::find()
            .filter(unit_events::Column::ProjectId.eq(project_id))
            .filter(unit_events::Column::Seq.gt(from))
            .filter(unit_events::Column::Seq.lte(upto))
            .filter(
                unit_events::Column::NewStatus
                    .eq(UnitStatus::Available.as_str())
                    .or(unit_events::Column::BookingId
                        .is_not_null()
                        .and(unit_events::Column::OldStatus.eq(UnitStatus::Available.as_str()))
                        .and(unit_events::Column::NewStatus.eq(UnitStatus::Booked.as_str()))),
            )
            .order_by_asc(unit_events::Column::Seq)
            .all(&txn)
            .await?;
        let now = self.clock.now();
        // A booking's creation (its AVAILABLE -> BOOKED event) tells its marketing user and
        // buyer. On PostgreSQL bookings are made by one group-committed statement that holds the
        // year's counter row; notifying from the event keeps that statement short and is just
        // as exact (the cursor's claim).
        let (created, events): (Vec<_>, Vec<_>) = events
            .into_iter()
            .partition(|e| e.new_status == UnitStatus::Booked.as_str());
        let mut feed = Vec::new();
        let booking_ids: Vec<Uuid> = created.iter().filter_map(|e| e.booking_id).collect();
        if !booking_ids.is_empty() {
            let made = bookings::Entity::find()
                .filter(bookings::Column::Id.is_in(booking_ids))
                .order_by_asc(bookings::Column::Id)
                .all(&txn)
                .await?;
            feed.extend(notify_bookings_created(&txn, &made, now).await?);
        }
        let unit_ids: Vec<Uuid> = events.iter().map(|e| e.unit_id).collect();
        let candidates = if unit_ids.is_empty() {
            Vec::new()
        } else {
            candidate_watches(&txn, project_id, &unit_ids).await?
        };
        if candidates.is_empty() {
            txn.commit().await?;
            self.publish_feed(&feed).await;
            return Ok(Some(feed.len()));
        }
        let project_name = project_name(&txn, project_id).await?;
        let units: HashMap<Uuid, units::Model> = units::Entity::find()
            .filter(units::Column::Id.is_in(unit_ids))
            .all(&txn)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        let changes: Vec<Change<'_>> = events
            .iter()
            .filter_map(|e| {
                Some(Change {
                    id: e.id,
                    kind: NotificationKind::UnitAvailable,
                    unit: units.get(&e.unit_id)?,
                    project_name: &project_name,
                    previous_price: None,
                })
            })
            .collect();
        let (items, keys) = notifications_for(&changes, &candidates);
        feed.extend(insert_keyed_notifications(&txn, &items, &keys, now).await?);
        txn.commit().await?;
        self.publish_feed(&feed).await;
        Ok(Some(feed.len()))
    }

    /// One step over the price drops: deletes up to a page of them (`RETURNING` the rows this
    /// instance got) and writes their notifications in the same transaction. Returns
    /// (notifications written, drops claimed).
    async fn notify_price_drops(&self) -> CoreResult<(usize, u64)> {
        let waiting: Vec<Uuid> = unit_price_drops::Entity::find()
            .select_only()
            .column(unit_price_drops::Column::Id)
            .order_by_asc(unit_price_drops::Column::Id)
            .limit(DROPS_PER_STEP)
            .into_tuple()
            .all(&self.db)
            .await?;
        if waiting.is_empty() {
            return Ok((0, 0));
        }
        let txn = begin_write(&self.db).await?;
        let mut drops = unit_price_drops::Entity::delete_many()
            .filter(unit_price_drops::Column::Id.is_in(waiting.iter().copied()))
            .exec_with_returning(&txn)
            .await?;
        let claimed = drops.len() as u64;
        drops.sort_by_key(|d| d.id);
        let mut feed = Vec::new();
        let mut by_project: HashMap<Uuid, Vec<unit_price_drops::Model>> = HashMap::new();
        for d in drops {
            by_project.entry(d.project_id).or_default().push(d);
        }
        for (project_id, drops) in by_project {
            let unit_ids: Vec<Uuid> = drops.iter().map(|d| d.unit_id).collect();
            let candidates = candidate_watches(&txn, project_id, &unit_ids).await?;
            if candidates.is_empty() {
                continue;
            }
            let project_name = project_name(&txn, project_id).await?;
            let units: HashMap<Uuid, units::Model> = units::Entity::find()
                .filter(units::Column::Id.is_in(unit_ids))
                .all(&txn)
                .await?
                .into_iter()
                .map(|u| (u.id, u))
                .collect();
            // The unit as it is now, priced as the drop left it: a later change (a rise, another
            // drop) has its own row, and watchers' filters judge this drop by its own price.
            let priced: Vec<(&unit_price_drops::Model, units::Model)> = drops
                .iter()
                .filter_map(|d| {
                    let mut unit = units.get(&d.unit_id)?.clone();
                    unit.price = d.new_price;
                    Some((d, unit))
                })
                .collect();
            let changes: Vec<Change<'_>> = priced
                .iter()
                .map(|(d, unit)| Change {
                    id: d.id,
                    kind: NotificationKind::PriceDrop,
                    unit,
                    project_name: &project_name,
                    previous_price: Some(d.old_price),
                })
                .collect();
            let (items, keys) = notifications_for(&changes, &candidates);
            feed.extend(insert_keyed_notifications(&txn, &items, &keys, self.clock.now()).await?);
        }
        txn.commit().await?;
        self.publish_feed(&feed).await;
        Ok((feed.len(), claimed))
    }
}

/// Records a price drop for the notifier, in the price change's transaction.
pub(crate) async fn record_price_drop<C: ConnectionTrait>(
    conn: &C,
    unit: &units::Model,
    old_price: i64,
    at: DateTime<Utc>,
) -> CoreResult<()> {
    unit_price_drops::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(unit.project_id),
        unit_id: Set(unit.id),
        old_price: Set(old_price),
        new_price: Set(unit.price),
        at: Set(at),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// A project's name for notification texts.
async fn project_name<C: ConnectionTrait>(conn: &C, project_id: Uuid) -> CoreResult<String> {
    Ok(projects::Entity::find_by_id(project_id)
        .one(conn)
        .await?
        .map(|p| p.name)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(price: i64, unit_type: &str, bedrooms: Option<i32>) -> units::Model {
        let now = Utc::now();
        units::Model {
            id: Uuid::from_u128(1),
            project_id: Uuid::from_u128(2),
            block_number: "A12".into(),
            unit_type: unit_type.into(),
            price,
            land_area: None,
            building_area: None,
            bedrooms,
            bathrooms: None,
            status: "AVAILABLE".into(),
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    fn watch(
        unit_id: Option<u128>,
        t: Option<&str>,
        min: Option<i64>,
        max: Option<i64>,
        beds: Option<i32>,
    ) -> watches::Model {
        watches::Model {
            id: Uuid::from_u128(9),
            user_id: Uuid::from_u128(10),
            project_id: Uuid::from_u128(2),
            unit_id: unit_id.map(Uuid::from_u128),
            filter_type: t.map(str::to_owned),
            price_min: min,
            price_max: max,
            bedrooms_min: beds,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn filters_match_every_given_criterion() {
        let u = unit(450_000_000, "36/72", Some(2));
        assert!(watch_matches(&watch(Some(1), None, None, None, None), &u));
        assert!(!watch_matches(&watch(Some(3), None, None, None, None), &u));
        assert!(watch_matches(&watch(None, None, None, None, None), &u));
        assert!(watch_matches(
            &watch(
                None,
                Some("36/72"),
                Some(400_000_000),
                Some(500_000_000),
                Some(2)
            ),
            &u
        ));
        assert!(!watch_matches(
            &watch(None, Some("45/90"), None, None, None),
            &u
        ));
        assert!(!watch_matches(
            &watch(None, None, None, Some(449_999_999), None),
            &u
        ));
        assert!(!watch_matches(
            &watch(None, None, Some(450_000_001), None, None),
            &u
        ));
        assert!(!watch_matches(&watch(None, None, None, None, Some(3)), &u));
        assert!(!watch_matches(
            &watch(None, None, None, None, Some(1)),
            &unit(1, "x", None)
        ));
    }

    #[test]
    fn rupiah_groups_thousands() {
        assert_eq!(rupiah(450_000_000), "Rp 450.000.000");
        assert_eq!(rupiah(999), "Rp 999");
        assert_eq!(rupiah(1_000), "Rp 1.000");
        assert_eq!(rupiah(0), "Rp 0");
    }

    #[test]
    fn a_watch_is_a_unit_or_a_project_with_a_sane_filter() {
        let ok = |unit: Option<u128>, project: Option<u128>, filter: Option<WatchFilter>| {
            validate_watch(&NewWatch {
                unit_id: unit.map(Uuid::from_u128),
                project_id: project.map(Uuid::from_u128),
                filter,
            })
            .is_ok()
        };
        assert!(ok(Some(1), None, None));
        assert!(ok(None, Some(1), None));
        assert!(ok(None, Some(1), Some(WatchFilter::default())));
        assert!(!ok(None, None, None));
        assert!(!ok(Some(1), Some(1), None));
        assert!(!ok(Some(1), None, Some(WatchFilter::default())));
        let blank = WatchFilter {
            unit_type: Some("  ".into()),
            ..Default::default()
        };
        assert!(!ok(None, Some(1), Some(blank)));
    }
}
