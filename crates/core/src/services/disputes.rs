//! Lead disputes: the marketing user who unlocked a lead may dispute it within seven days; an
//! admin's approval refunds the unlock price exactly once (a REFUND ledger row, the balance
//! credited, the dispute APPROVED, all conditional on the dispute still being OPEN).

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::db::begin_write;
use crate::domain::{DisputeReason, DisputeStatus, Role, WalletTxType};
use crate::entities::{lead_disputes, leads, units, users, wallets};
use crate::error::{CoreError, CoreResult};
use crate::list::{FieldKind, ListField, ListQuery, ListSpec, Page};
use crate::services::bookings::Viewer;
use crate::services::wallet::{self, MAX_BALANCE, Movement};

/// How long after the unlock a lead may be disputed.
pub const DISPUTE_WINDOW_DAYS: i64 = 7;
/// Longest dispute or decision note.
pub const MAX_NOTE_LEN: usize = 1000;

/// `POST /leads/{id}/disputes` body.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewDispute {
    /// Why the lead was not worth its price.
    pub reason: DisputeReason,
    /// Details, 0 to 1000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub note: String,
}

/// `PATCH /disputes/{id}` body.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisputeDecision {
    /// true: refund the lead price; false: reject (no refund).
    pub approved: bool,
    /// The admin's note, at most 1000 characters.
    #[schema(max_length = 1000)]
    pub note: Option<String>,
}

/// A dispute as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisputeView {
    /// Id.
    pub id: Uuid,
    /// The lead.
    pub lead_id: Uuid,
    /// The marketing user who filed it.
    pub marketing_id: Uuid,
    /// WRONG_NUMBER, NOT_INTERESTED, DUPLICATE or OTHER.
    #[schema(value_type = crate::domain::DisputeReason)]
    pub reason: String,
    /// Their note.
    pub note: String,
    /// OPEN, APPROVED or REJECTED.
    #[schema(value_type = crate::domain::DisputeStatus)]
    pub status: String,
    /// Filed.
    pub created_at: DateTime<Utc>,
    /// When an admin decided.
    pub decided_at: Option<DateTime<Utc>>,
    /// The admin's note.
    pub decision_note: Option<String>,
    /// The REFUND ledger row of an approval.
    pub refund_transaction_id: Option<Uuid>,
}

impl From<lead_disputes::Model> for DisputeView {
    fn from(d: lead_disputes::Model) -> Self {
        DisputeView {
            id: d.id,
            lead_id: d.lead_id,
            marketing_id: d.marketing_id,
            reason: d.reason,
            note: d.note,
            status: d.status,
            created_at: d.created_at,
            decided_at: d.decided_at,
            decision_note: d.decision_note,
            refund_transaction_id: d.refund_transaction_id,
        }
    }
}

/// The whitelist of `GET /disputes`.
pub const DISPUTE_LIST: ListSpec<lead_disputes::Column> = ListSpec {
    fields: &[
        ListField {
            name: "status",
            column: lead_disputes::Column::Status,
            kind: FieldKind::Enum(DisputeStatus::ALL),
        },
        ListField {
            name: "reason",
            column: lead_disputes::Column::Reason,
            kind: FieldKind::Enum(DisputeReason::ALL),
        },
        ListField {
            name: "leadId",
            column: lead_disputes::Column::LeadId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "createdAt",
            column: lead_disputes::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(lead_disputes::Column::CreatedAt, true)],
    tiebreak: lead_disputes::Column::Id,
};

fn check_note(field: &str, note: Option<&str>) -> CoreResult<()> {
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE_LEN) {
        return Err(CoreError::invalid_field(
            field,
            "too_long",
            format!("at most {MAX_NOTE_LEN} characters"),
        ));
    }
    Ok(())
}

/// True while a lead unlocked at `unlocked_at` may still be disputed at `now`.
pub fn within_window(unlocked_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now <= unlocked_at + Duration::days(DISPUTE_WINDOW_DAYS)
}

fn dispute_audit(action: &'static str, d: &lead_disputes::Model) -> AuditEntry<'static> {
    AuditEntry {
        action,
        entity_type: "lead_dispute",
        entity_id: d.id,
        old_values: None,
        new_values: Some(serde_json::json!({
            "leadId": d.lead_id, "status": d.status, "reason": d.reason,
            "decisionNote": d.decision_note, "refundTransactionId": d.refund_transaction_id,
        })),
    }
}

impl Services {
    /// `POST /leads/{id}/disputes`: only the marketing user who unlocked the lead, within seven
    /// days of the unlock; one OPEN dispute per lead (a unique index) and none after a refund.
    pub async fn file_dispute(
        &self,
        actor: &ActorRef,
        user: Viewer,
        lead_id: Uuid,
        input: NewDispute,
    ) -> CoreResult<DisputeView> {
        check_note("note", Some(&input.note))?;
        let txn = begin_write(&self.db).await?;
        let lead = leads::Entity::find_by_id(lead_id)
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("lead"))?;
        if lead.unlocked_by != Some(user.user_id) {
            return Err(CoreError::forbidden(
                "forbidden",
                "only the marketing user who unlocked this lead may dispute it",
            ));
        }
        let now = self.clock.now();
        if !lead.unlocked_at.is_some_and(|at| within_window(at, now)) {
            return Err(CoreError::conflict(
                "dispute_window_closed",
                format!("a lead may be disputed within {DISPUTE_WINDOW_DAYS} days of its unlock"),
            ));
        }
        let row = lead_disputes::Model {
            id: Uuid::now_v7(),
            lead_id,
            marketing_id: user.user_id,
            reason: input.reason.as_str().to_owned(),
            note: input.note.trim().to_owned(),
            status: DisputeStatus::Open.as_str().to_owned(),
            decided_by: None,
            decided_at: None,
            decision_note: None,
            refund_transaction_id: None,
            created_at: now,
        };
        let exists = || {
            CoreError::conflict(
                "dispute_exists",
                "this lead already has an open or approved dispute",
            )
        };
        let inserted = match lead_disputes::ActiveModel::from(row)
            .reset_all()
            .insert(&txn)
            .await
        {
            Ok(d) => d,
            // ux_lead_disputes_open_lead: one OPEN dispute per lead.
            Err(e) if CoreError::is_unique_violation(&e) => return Err(exists()),
            Err(e) => return Err(e.into()),
        };
        // Checked after the insert, which waits for a concurrent decision on PostgreSQL: a lead
        // refunded once is not disputed again.
        let approved = lead_disputes::Entity::find()
            .filter(lead_disputes::Column::LeadId.eq(lead_id))
            .filter(lead_disputes::Column::Status.eq(DisputeStatus::Approved.as_str()))
            .count(&txn)
            .await?;
        if approved > 0 {
            return Err(exists());
        }
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            dispute_audit("lead_dispute.filed", &inserted),
        )
        .await?;
        txn.commit().await?;
        Ok(inserted.into())
    }

    /// `GET /disputes` (admins all, marketing users their own).
    pub async fn list_disputes(
        &self,
        viewer: Viewer,
        query: &str,
    ) -> CoreResult<Page<DisputeView>> {
        let q = ListQuery::parse(query, &DISPUTE_LIST)?;
        let mut select = lead_disputes::Entity::find();
        if viewer.role != Role::Admin {
            select = select.filter(lead_disputes::Column::MarketingId.eq(viewer.user_id));
        }
        Ok(q.fetch(select, &self.db).await?.map(DisputeView::from))
    }

    /// `PATCH /disputes/{id}` (ADMIN): decides once. The same decision again is 200 with the same
    /// dispute (no second refund); the opposite one is 409 `dispute_already_decided`.
    pub async fn decide_dispute(
        &self,
        actor: &ActorRef,
        admin: Viewer,
        id: Uuid,
        input: DisputeDecision,
    ) -> CoreResult<DisputeView> {
        check_note("note", input.note.as_deref())?;
        let note = input
            .note
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let target = if input.approved {
            DisputeStatus::Approved
        } else {
            DisputeStatus::Rejected
        };
        let txn = begin_write(&self.db).await?;
        let now = self.clock.now();
        // The one effect: the decision is conditional on the dispute still being OPEN.
        let won = lead_disputes::Entity::update_many()
            .col_expr(lead_disputes::Column::Status, Expr::value(target.as_str()))
            .col_expr(
                lead_disputes::Column::DecidedBy,
                Expr::value(Some(admin.user_id)),
            )
            .col_expr(lead_disputes::Column::DecidedAt, Expr::value(Some(now)))
            .col_expr(lead_disputes::Column::DecisionNote, Expr::value(note))
            .filter(lead_disputes::Column::Id.eq(id))
            .filter(lead_disputes::Column::Status.eq(DisputeStatus::Open.as_str()))
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next();
        let Some(mut dispute) = won else {
            let current = lead_disputes::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .ok_or(CoreError::NotFound("dispute"))?;
            return if current.status == target.as_str() {
                Ok(current.into())
            } else {
                Err(CoreError::conflict(
                    "dispute_already_decided",
                    format!("this dispute was already {}", current.status),
                ))
            };
        };
        if input.approved {
            dispute = match self.refund_lead(&txn, actor, dispute).await {
                Ok(d) => d,
                // ux_wallet_transactions_refund_lead: this lead was refunded already.
                Err(CoreError::Db(e)) if CoreError::is_unique_violation(&e) => {
                    return Err(CoreError::conflict(
                        "dispute_already_decided",
                        "this lead's price was already refunded",
                    ));
                }
                Err(e) => return Err(e),
            };
        }
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            dispute_audit(
                if input.approved {
                    "lead_dispute.approved"
                } else {
                    "lead_dispute.rejected"
                },
                &dispute,
            ),
        )
        .await?;
        txn.commit().await?;
        Ok(dispute.into())
    }

    /// Credits the lead's unlock price back to the disputing user's wallet with a REFUND row.
    async fn refund_lead(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        actor: &ActorRef,
        dispute: lead_disputes::Model,
    ) -> CoreResult<lead_disputes::Model> {
        let lead = leads::Entity::find_by_id(dispute.lead_id)
            .one(txn)
            .await?
            .ok_or(CoreError::NotFound("lead"))?;
        let price = Ord::max(lead.unlock_price.unwrap_or(0), 0);
        let now = self.clock.now();
        let credited = wallets::Entity::update_many()
            .col_expr(
                wallets::Column::Balance,
                Expr::col(wallets::Column::Balance).add(price),
            )
            .col_expr(wallets::Column::UpdatedAt, Expr::value(now))
            .filter(wallets::Column::UserId.eq(dispute.marketing_id))
            .filter(wallets::Column::Balance.lte(MAX_BALANCE - price))
            .exec_with_returning(txn)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                CoreError::conflict(
                    "refund_impossible",
                    "the wallet cannot take the refund (missing or at its limit)",
                )
            })?;
        let buyer = users::Entity::find_by_id(lead.buyer_id)
            .one(txn)
            .await?
            .map(|u| u.full_name)
            .unwrap_or_default();
        let block = units::Entity::find_by_id(lead.unit_id)
            .one(txn)
            .await?
            .map(|u| u.block_number)
            .unwrap_or_default();
        let row = wallet::write_ledger(
            txn,
            now,
            actor,
            Movement {
                wallet_id: credited.id,
                amount: price,
                tx_type: WalletTxType::Refund,
                balance_after: credited.balance,
                description: &format!("Refund Lead: {buyer} - Unit {block}"),
                reference: None,
                lead_id: Some(lead.id),
            },
        )
        .await?;
        audit::record(
            txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "wallet.refunded",
                entity_type: "wallet",
                entity_id: credited.id,
                old_values: Some(serde_json::json!({"balance": credited.balance - price})),
                new_values: Some(serde_json::json!({
                    "balance": credited.balance, "amount": price, "leadId": lead.id,
                    "disputeId": dispute.id, "transactionId": row.id,
                })),
            },
        )
        .await?;
        let mut am = lead_disputes::ActiveModel::from(dispute);
        am.refund_transaction_id = Set(Some(row.id));
        Ok(am.update(txn).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_seven_days() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(within_window(at, at));
        assert!(within_window(at, at + Duration::days(7)));
        assert!(!within_window(
            at,
            at + Duration::days(7) + Duration::seconds(1)
        ));
    }

    #[test]
    fn notes_are_bounded() {
        assert!(check_note("note", Some(&"é".repeat(1000))).is_ok());
        assert!(check_note("note", Some(&"é".repeat(1001))).is_err());
        assert!(check_note("note", None).is_ok());
    }
}
