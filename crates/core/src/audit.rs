//! The audit trail: one function writes a row inside the caller's transaction, so an action and
//! its audit record commit or roll back together. Rows are never updated or deleted by the API.

use sea_orm::{ConnectionTrait, EntityTrait, Set};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::clock::Clock;
use crate::entities::audit_log;
use crate::error::CoreResult;
use crate::list::{FieldKind, ListField, ListSpec};

/// Who did something, and under which request.
#[derive(Clone, Debug, Default)]
pub struct ActorRef {
    /// The acting user (None for background jobs and the seed).
    pub user_id: Option<Uuid>,
    /// The request id echoed in `x-request-id`.
    pub request_id: Option<String>,
}

impl ActorRef {
    /// The system itself (background jobs).
    pub fn system() -> Self {
        ActorRef::default()
    }
}

/// One audit record to write.
#[derive(Clone, Debug)]
pub struct AuditEntry<'a> {
    /// Verb in snake_case: `unit.status_changed`, `booking.created`, `wallet.topup`, `kyc.decided`.
    pub action: &'a str,
    /// The entity type: `unit`, `booking`, `wallet`, `lead`, `user`, `project`.
    pub entity_type: &'a str,
    /// The entity id.
    pub entity_id: Uuid,
    /// Values before (None for creations).
    pub old_values: Option<Json>,
    /// Values after (None for deletions).
    pub new_values: Option<Json>,
}

/// Writes one audit row inside the caller's transaction (or connection).
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    clock: &dyn Clock,
    actor: &ActorRef,
    entry: AuditEntry<'_>,
) -> CoreResult<()> {
    record_many(conn, clock, actor, [entry]).await
}

/// Writes several audit rows in one statement (one round trip) inside the caller's transaction.
pub async fn record_many<'a, C: ConnectionTrait>(
    conn: &C,
    clock: &dyn Clock,
    actor: &ActorRef,
    entries: impl IntoIterator<Item = AuditEntry<'a>>,
) -> CoreResult<()> {
    let now = clock.now();
    let rows = entries.into_iter().map(|entry| audit_log::ActiveModel {
        id: Set(Uuid::now_v7()),
        actor_id: Set(actor.user_id),
        action: Set(entry.action.to_owned()),
        entity_type: Set(entry.entity_type.to_owned()),
        entity_id: Set(entry.entity_id),
        old_values: Set(entry.old_values),
        new_values: Set(entry.new_values),
        request_id: Set(actor.request_id.clone()),
        created_at: Set(now),
    });
    let rows: Vec<_> = rows.collect();
    if rows.is_empty() {
        return Ok(());
    }
    audit_log::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The whitelist of `GET /admin/audit-log`.
pub const AUDIT_LIST: ListSpec<audit_log::Column> = ListSpec {
    fields: &[
        ListField {
            name: "actorId",
            column: audit_log::Column::ActorId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "action",
            column: audit_log::Column::Action,
            kind: FieldKind::Text,
        },
        ListField {
            name: "entityType",
            column: audit_log::Column::EntityType,
            kind: FieldKind::Text,
        },
        ListField {
            name: "entityId",
            column: audit_log::Column::EntityId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "requestId",
            column: audit_log::Column::RequestId,
            kind: FieldKind::Text,
        },
        ListField {
            name: "createdAt",
            column: audit_log::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(audit_log::Column::CreatedAt, true)],
    tiebreak: audit_log::Column::Id,
};

/// An audit row as the API shows it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    /// Id.
    pub id: Uuid,
    /// Acting user (None: the system).
    pub actor_id: Option<Uuid>,
    /// What happened.
    pub action: String,
    /// Entity type.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: Uuid,
    /// Values before.
    #[schema(value_type = Option<Object>)]
    pub old_values: Option<Json>,
    /// Values after.
    #[schema(value_type = Option<Object>)]
    pub new_values: Option<Json>,
    /// Request id.
    pub request_id: Option<String>,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<audit_log::Model> for AuditView {
    fn from(m: audit_log::Model) -> Self {
        AuditView {
            id: m.id,
            actor_id: m.actor_id,
            action: m.action,
            entity_type: m.entity_type,
            entity_id: m.entity_id,
            old_values: m.old_values,
            new_values: m.new_values,
            request_id: m.request_id,
            created_at: m.created_at,
        }
    }
}

impl crate::Services {
    /// `GET /admin/audit-log`: the trail, newest first by default.
    pub async fn audit_log(&self, query: &str) -> CoreResult<crate::list::Page<AuditView>> {
        use sea_orm::EntityTrait;
        let q = crate::list::ListQuery::parse(query, &AUDIT_LIST)?;
        Ok(q.fetch(audit_log::Entity::find(), &self.db)
            .await?
            .map(AuditView::from))
    }
}
