//! Unit status changes and their realtime events. A change is one transaction: the conditional
//! unit update, the audit row, and, last of all, the project's next `seq` with the `unit_events`
//! row. The project row is the hot lock when a sales event books one project, so it is taken
//! right before commit. After commit the event is published on the bus.

use chrono::{DateTime, Utc};
use kavling_realtime::{BookingInfo, UnitEvent};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, ExprTrait, QueryFilter,
    Set, Statement,
};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::clock::Clock;
use crate::domain::{Palette, UnitStatus};
use crate::entities::{projects, unit_events, units};
use crate::error::{CoreError, CoreResult};

/// Moves a unit from `from` to `to` if, and only if, it still has status `from`.
/// Returns false when another transaction changed it first (zero rows affected).
pub async fn set_unit_status<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    unit_id: Uuid,
    from: UnitStatus,
    to: UnitStatus,
) -> CoreResult<bool> {
    let res = status_update(now, unit_id, from, to).exec(conn).await?;
    Ok(res.rows_affected == 1)
}

/// [`set_unit_status`] returning the updated unit (None when it did not have status `from`, or
/// does not exist), so a claim needs no separate read.
pub async fn set_unit_status_returning<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    unit_id: Uuid,
    from: UnitStatus,
    to: UnitStatus,
) -> CoreResult<Option<units::Model>> {
    let updated = status_update(now, unit_id, from, to)
        .exec_with_returning(conn)
        .await?;
    Ok(updated.into_iter().next())
}

/// The conditional update both share: `… SET status = to WHERE id = unit AND status = from`.
fn status_update(
    now: DateTime<Utc>,
    unit_id: Uuid,
    from: UnitStatus,
    to: UnitStatus,
) -> sea_orm::UpdateMany<units::Entity> {
    units::Entity::update_many()
        .col_expr(units::Column::Status, Expr::value(to.as_str()))
        .col_expr(
            units::Column::Version,
            Expr::col(units::Column::Version).add(1),
        )
        .col_expr(units::Column::UpdatedAt, Expr::value(now))
        .filter(units::Column::Id.eq(unit_id))
        .filter(units::Column::Status.eq(from.as_str()))
}

/// Everything needed to record one unit status change.
#[derive(Clone, Debug)]
pub struct UnitChange {
    /// The unit's project.
    pub project_id: Uuid,
    /// The unit.
    pub unit_id: Uuid,
    /// Its block number.
    pub block_number: String,
    /// Status before.
    pub from: UnitStatus,
    /// Status after.
    pub to: UnitStatus,
    /// The booking that caused it, for staff frames.
    pub booking: Option<BookingInfo>,
}

impl UnitChange {
    /// The `unit.status_changed` audit record of this change.
    pub fn audit_entry(&self) -> AuditEntry<'static> {
        AuditEntry {
            action: "unit.status_changed",
            entity_type: "unit",
            entity_id: self.unit_id,
            old_values: Some(serde_json::json!({"status": self.from.as_str()})),
            new_values: Some(serde_json::json!({
                "status": self.to.as_str(),
                "bookingId": self.booking.as_ref().map(|b| b.booking_id),
            })),
        }
    }

    /// The frame-ready event once the change has its seq.
    pub(crate) fn into_event(
        self,
        seq: i64,
        at: DateTime<Utc>,
        palette: Option<&serde_json::Value>,
    ) -> UnitEvent {
        UnitEvent {
            project_id: self.project_id,
            seq,
            unit_id: self.unit_id,
            color: Palette::from_json(palette).color(self.to.as_str()),
            block_number: self.block_number,
            status: self.to.as_str().to_owned(),
            previous_status: self.from.as_str().to_owned(),
            at,
            booking: self.booking,
        }
    }
}

/// Writes the audit row, then takes the project's next seq and inserts the event row.
/// Call it as the last step of the transaction; publish the returned event after commit.
pub async fn record_unit_change<C: ConnectionTrait>(
    conn: &C,
    clock: &dyn Clock,
    actor: &ActorRef,
    change: UnitChange,
) -> CoreResult<UnitEvent> {
    audit::record(conn, clock, actor, change.audit_entry()).await?;
    append_unit_event(conn, clock.now(), actor, change).await
}

/// The columns of a `unit_events` row, in the order every raw insert lists its values: the one
/// list, shared by the single-change statement below and the booking batch statement.
macro_rules! unit_event_columns {
    () => {
        "id, project_id, seq, unit_id, block_number, old_status, new_status, actor_id, booking_id, at"
    };
}
pub(crate) use unit_event_columns;

/// PostgreSQL: the project's next seq and the event row in one statement, so the project row,
/// the hot lock of a busy sales event, is held for one round trip (plus commit) instead of two.
const APPEND_EVENT_PG: &str = concat!(
    "WITH p AS (UPDATE projects SET event_seq = event_seq + 1 \
     WHERE id = $1 RETURNING event_seq, palette), \
     e AS (INSERT INTO unit_events (",
    unit_event_columns!(),
    ") SELECT $2, $1, p.event_seq, $3, $4, $5, $6, $7, $8, $9 FROM p) \
     SELECT event_seq, palette FROM p"
);

/// Takes the project's next seq (last, see the module doc) and inserts the event row.
pub(crate) async fn append_unit_event<C: ConnectionTrait>(
    conn: &C,
    at: DateTime<Utc>,
    actor: &ActorRef,
    change: UnitChange,
) -> CoreResult<UnitEvent> {
    if conn.get_database_backend() == DbBackend::Postgres {
        let row = conn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                APPEND_EVENT_PG,
                [
                    change.project_id.into(),
                    Uuid::now_v7().into(),
                    change.unit_id.into(),
                    change.block_number.clone().into(),
                    change.from.as_str().into(),
                    change.to.as_str().into(),
                    actor.user_id.into(),
                    change.booking.as_ref().map(|b| b.booking_id).into(),
                    at.into(),
                ],
            ))
            .await?
            .ok_or(CoreError::NotFound("project"))?;
        let seq: i64 = row.try_get("", "event_seq")?;
        let palette: Option<serde_json::Value> = row.try_get("", "palette")?;
        return Ok(change.into_event(seq, at, palette.as_ref()));
    }
    let project = projects::Entity::update_many()
        .col_expr(
            projects::Column::EventSeq,
            Expr::col(projects::Column::EventSeq).add(1),
        )
        .filter(projects::Column::Id.eq(change.project_id))
        .exec_with_returning(conn)
        .await?
        .into_iter()
        .next()
        .ok_or(CoreError::NotFound("project"))?;
    unit_events::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(change.project_id),
        seq: Set(project.event_seq),
        unit_id: Set(change.unit_id),
        block_number: Set(change.block_number.clone()),
        old_status: Set(change.from.as_str().to_owned()),
        new_status: Set(change.to.as_str().to_owned()),
        actor_id: Set(actor.user_id),
        booking_id: Set(change.booking.as_ref().map(|b| b.booking_id)),
        at: Set(at),
    }
    .insert(conn)
    .await?;
    Ok(change.into_event(project.event_seq, at, project.palette.as_ref()))
}

impl Services {
    /// Publishes committed events. The bus is the fast path only: a lost publish is recovered by
    /// the hubs' catch-up from `unit_events`, so a failure here is logged, not returned.
    pub async fn publish(&self, events: &[UnitEvent]) {
        for event in events {
            if let Err(e) = self.bus.publish(event).await {
                tracing::warn!(project = %event.project_id, seq = event.seq, error = %e,
                    "publishing a unit event failed; subscribers will catch up from the database");
            }
        }
        // A unit became AVAILABLE: its watchers are due a notification now, not at the next poll.
        if events
            .iter()
            .any(|e| e.status == UnitStatus::Available.as_str())
        {
            self.notifier.wake();
        }
    }
}

/// Deletes events older than the newest `keep` of each project (so a `since` replay still
/// covers the last `keep` changes), `batch` rows per statement to keep write locks short.
/// Returns how many rows were deleted.
pub async fn prune_unit_events<C: ConnectionTrait>(
    conn: &C,
    keep: i64,
    batch: u64,
) -> CoreResult<u64> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "DELETE FROM unit_events WHERE id IN (SELECT e.id FROM unit_events e \
             JOIN projects p ON p.id = e.project_id WHERE e.seq <= p.event_seq - $1 LIMIT $2)"
        }
        _ => {
            "DELETE FROM unit_events WHERE id IN (SELECT e.id FROM unit_events e \
             JOIN projects p ON p.id = e.project_id WHERE e.seq <= p.event_seq - ? LIMIT ?)"
        }
    };
    let batch = Ord::max(batch, 1);
    let batch_i = i64::try_from(batch).unwrap_or(i64::MAX);
    let keep = Ord::max(keep, 0);
    let mut total = 0;
    loop {
        let res = conn
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                backend,
                sql,
                [keep.into(), batch_i.into()],
            ))
            .await?;
        total += res.rows_affected();
        if res.rows_affected() < batch {
            return Ok(total);
        }
    }
}
