//! The pay-per-lead wallet: a balance that never goes negative and a signed ledger whose running
//! sum it always equals. Every movement is a conditional update of the balance, a ledger row
//! carrying the balance after it, and an audit row, in the caller's one transaction.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::domain::WalletTxType;
use crate::entities::{users, wallet_transactions, wallets};
use crate::error::{CoreError, CoreResult, FieldError};
use crate::list::{FieldKind, ListField, ListQuery, ListSpec, Page};
use crate::services::idempotency::{self, Begin, IdemKey, Outcome};

/// The wallet currency (rupiah).
pub const CURRENCY: &str = "IDR";
/// Largest single top-up: one trillion rupiah.
pub const MAX_TOPUP: i64 = 1_000_000_000_000;
/// Largest balance a wallet may hold (keeps every sum far from `i64` overflow).
pub const MAX_BALANCE: i64 = 1_000_000_000_000_000;
/// Longest top-up reference.
pub const MAX_REFERENCE_LEN: usize = 200;
/// Longest ledger description (the column's size).
pub const MAX_DESCRIPTION_LEN: usize = 300;

/// `GET /wallet`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletView {
    /// Balance in rupiah.
    pub balance: i64,
    /// Always `IDR`.
    pub currency: String,
}

/// One ledger row as the API shows it; `amount` is signed (debits negative).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletTxView {
    /// Id.
    pub id: Uuid,
    /// Signed amount in rupiah.
    pub amount: i64,
    /// TOPUP, DEBIT or REFUND.
    #[serde(rename = "type")]
    #[schema(value_type = crate::domain::WalletTxType)]
    pub tx_type: String,
    /// The balance right after this row.
    pub balance_after: i64,
    /// What it was for.
    pub description: String,
    /// The top-up reference, if any.
    pub reference: Option<String>,
    /// The unlocked lead, for debits.
    pub lead_id: Option<Uuid>,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<wallet_transactions::Model> for WalletTxView {
    fn from(m: wallet_transactions::Model) -> Self {
        WalletTxView {
            id: m.id,
            amount: m.amount,
            tx_type: m.tx_type,
            balance_after: m.balance_after,
            description: m.description,
            reference: m.reference,
            lead_id: m.lead_id,
            created_at: m.created_at,
        }
    }
}

/// `POST /admin/wallets/{userId}/topup` input.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopupInput {
    /// Rupiah to credit, 1..=[`MAX_TOPUP`].
    #[serde(deserialize_with = "crate::whole_numbers::i64_whole")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub amount: i64,
    /// The payment reference (bank transfer id, receipt number).
    #[schema(pattern = r"[^\s\x85]", max_length = 200)]
    pub reference: String,
}

/// `POST /admin/wallets/{userId}/topup` response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopupView {
    /// The credited user.
    pub user_id: Uuid,
    /// The balance after the top-up.
    pub balance: i64,
    /// Always `IDR`.
    pub currency: String,
    /// The ledger row written.
    pub transaction: WalletTxView,
}

/// The whitelist of `GET /wallet/transactions`.
pub const WALLET_TX_LIST: ListSpec<wallet_transactions::Column> = ListSpec {
    fields: &[
        ListField {
            name: "type",
            column: wallet_transactions::Column::TxType,
            kind: FieldKind::Enum(WalletTxType::ALL),
        },
        ListField {
            name: "amount",
            column: wallet_transactions::Column::Amount,
            kind: FieldKind::Integer,
        },
        ListField {
            name: "leadId",
            column: wallet_transactions::Column::LeadId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "createdAt",
            column: wallet_transactions::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(wallet_transactions::Column::CreatedAt, true)],
    tiebreak: wallet_transactions::Column::Id,
};

/// One ledger movement to write after the balance changed.
pub(crate) struct Movement<'a> {
    pub wallet_id: Uuid,
    pub amount: i64,
    pub tx_type: WalletTxType,
    pub balance_after: i64,
    pub description: &'a str,
    pub reference: Option<&'a str>,
    pub lead_id: Option<Uuid>,
}

/// Truncates a description to the column's size.
pub(crate) fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Debits `price` from the user's wallet only if the balance covers it (never negative); returns
/// the wallet id and the balance after, or None when the balance is too low or there is no wallet.
pub(crate) async fn debit<C: ConnectionTrait>(
    conn: &C,
    now: chrono::DateTime<chrono::Utc>,
    user_id: Uuid,
    price: i64,
) -> CoreResult<Option<(Uuid, i64)>> {
    let res = wallets::Entity::update_many()
        .col_expr(
            wallets::Column::Balance,
            Expr::col(wallets::Column::Balance).sub(price),
        )
        .col_expr(wallets::Column::UpdatedAt, Expr::value(now))
        .filter(wallets::Column::UserId.eq(user_id))
        .filter(wallets::Column::Balance.gte(price))
        .exec(conn)
        .await?;
    if res.rows_affected == 0 {
        return Ok(None);
    }
    // We hold the row (lock on PostgreSQL, the single writer on SQLite): this is our balance.
    let w = wallets::Entity::find()
        .filter(wallets::Column::UserId.eq(user_id))
        .one(conn)
        .await?
        .ok_or_else(|| CoreError::Internal("the debited wallet vanished".into()))?;
    Ok(Some((w.id, w.balance)))
}

/// Writes a ledger row; its id is generated after the balance update, so ids follow the order
/// in which movements of one wallet took its row.
pub(crate) async fn write_ledger<C: ConnectionTrait>(
    conn: &C,
    now: chrono::DateTime<chrono::Utc>,
    actor: &ActorRef,
    m: Movement<'_>,
) -> CoreResult<wallet_transactions::Model> {
    Ok(wallet_transactions::ActiveModel {
        id: Set(Uuid::now_v7()),
        wallet_id: Set(m.wallet_id),
        amount: Set(m.amount),
        tx_type: Set(m.tx_type.as_str().to_owned()),
        balance_after: Set(m.balance_after),
        description: Set(clip(m.description, MAX_DESCRIPTION_LEN)),
        reference: Set(m.reference.map(|r| clip(r, MAX_REFERENCE_LEN))),
        lead_id: Set(m.lead_id),
        actor_id: Set(actor.user_id),
        created_at: Set(now),
    }
    .insert(conn)
    .await?)
}

/// Checks a top-up request.
pub fn validate_topup(input: &TopupInput) -> CoreResult<String> {
    let mut errors = Vec::new();
    if input.amount <= 0 || input.amount > MAX_TOPUP {
        errors.push(FieldError::new(
            "amount",
            "out_of_range",
            format!("amount must be a whole number of rupiah from 1 to {MAX_TOPUP}"),
        ));
    }
    let reference = input.reference.trim().to_owned();
    if reference.is_empty() || reference.chars().count() > MAX_REFERENCE_LEN {
        errors.push(FieldError::new(
            "reference",
            "required",
            format!("enter a payment reference of at most {MAX_REFERENCE_LEN} characters"),
        ));
    }
    if errors.is_empty() {
        Ok(reference)
    } else {
        Err(CoreError::Validation(errors))
    }
}

impl Services {
    /// `GET /wallet`: a user without a wallet row has balance 0.
    pub async fn wallet(&self, user_id: Uuid) -> CoreResult<WalletView> {
        let balance = wallets::Entity::find()
            .filter(wallets::Column::UserId.eq(user_id))
            .one(&self.db)
            .await?
            .map_or(0, |w| w.balance);
        Ok(WalletView {
            balance,
            currency: CURRENCY.to_owned(),
        })
    }

    /// `GET /wallet/transactions` (list conventions), newest first by default.
    pub async fn wallet_transactions(
        &self,
        user_id: Uuid,
        query: &str,
    ) -> CoreResult<Page<WalletTxView>> {
        let q = ListQuery::parse(query, &WALLET_TX_LIST)?;
        let wallet_id = wallets::Entity::find()
            .filter(wallets::Column::UserId.eq(user_id))
            .one(&self.db)
            .await?
            .map(|w| w.id)
            // No wallet yet: an id that matches nothing gives an empty page with the usual meta.
            .unwrap_or_else(Uuid::nil);
        let select = wallet_transactions::Entity::find()
            .filter(wallet_transactions::Column::WalletId.eq(wallet_id));
        Ok(q.fetch(select, &self.db).await?.map(WalletTxView::from))
    }

    /// `POST /admin/wallets/{userId}/topup`: credits the wallet (created if missing) with a
    /// TOPUP ledger row and an audit row, once per `Idempotency-Key`.
    pub async fn topup(
        &self,
        actor: &ActorRef,
        user_id: Uuid,
        input: TopupInput,
        key: Option<String>,
    ) -> CoreResult<Outcome<TopupView>> {
        let reference = validate_topup(&input)?;
        let key = key.map(|k| IdemKey {
            key: k,
            scope: "wallet.topup",
            request_hash: idempotency::request_hash(
                "POST",
                &format!("/admin/wallets/{user_id}/topup"),
                format!("{}\n{}", input.amount, reference).as_bytes(),
            ),
        });
        let actor_id = actor.user_id.unwrap_or_else(Uuid::nil);
        let (txn, claim) = match idempotency::begin(
            &self.db,
            self.clock.as_ref(),
            actor_id,
            key.as_ref(),
        )
        .await?
        {
            Begin::Fresh(txn, claim) => (txn, claim),
            Begin::Replayed(stored) => return Ok(Outcome::Replayed(stored)),
        };
        users::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("user"))?;
        let now = self.clock.now();
        // Make sure the wallet exists without racing a concurrent creation.
        wallets::Entity::insert(wallets::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user_id),
            balance: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict_do_nothing_on([wallets::Column::UserId])
        .exec_without_returning(&txn)
        .await?;
        let credited = wallets::Entity::update_many()
            .col_expr(
                wallets::Column::Balance,
                Expr::col(wallets::Column::Balance).add(input.amount),
            )
            .col_expr(wallets::Column::UpdatedAt, Expr::value(now))
            .filter(wallets::Column::UserId.eq(user_id))
            .filter(wallets::Column::Balance.lte(MAX_BALANCE - input.amount))
            .exec(&txn)
            .await?;
        if credited.rows_affected == 0 {
            // The cap depends on the balance, not on the request: a refusal by state.
            return Err(CoreError::conflict(
                "balance_limit",
                format!("a wallet holds at most {MAX_BALANCE} rupiah"),
            ));
        }
        let wallet = wallets::Entity::find()
            .filter(wallets::Column::UserId.eq(user_id))
            .one(&txn)
            .await?
            .ok_or_else(|| CoreError::Internal("the credited wallet vanished".into()))?;
        let row = write_ledger(
            &txn,
            now,
            actor,
            Movement {
                wallet_id: wallet.id,
                amount: input.amount,
                tx_type: WalletTxType::Topup,
                balance_after: wallet.balance,
                description: &format!("Top-up: {reference}"),
                reference: Some(&reference),
                lead_id: None,
            },
        )
        .await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "wallet.topup",
                entity_type: "wallet",
                entity_id: wallet.id,
                old_values: Some(serde_json::json!({"balance": wallet.balance - input.amount})),
                new_values: Some(serde_json::json!({
                    "balance": wallet.balance,
                    "amount": input.amount,
                    "reference": reference,
                    "userId": user_id,
                    "transactionId": row.id,
                })),
            },
        )
        .await?;
        let view = TopupView {
            user_id,
            balance: wallet.balance,
            currency: CURRENCY.to_owned(),
            transaction: WalletTxView::from(row),
        };
        let body = serde_json::to_string(&view)
            .map_err(|e| CoreError::Internal(format!("serializing a top-up: {e}")))?;
        if let Some(id) = claim {
            idempotency::store(&txn, id, 200, &body).await?;
        }
        txn.commit().await?;
        Ok(Outcome::Done {
            status: 200,
            value: view,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topups_are_bounded() {
        let ok = TopupInput {
            amount: 100_000,
            reference: " TRF-1 ".into(),
        };
        assert_eq!(validate_topup(&ok).unwrap(), "TRF-1");
        for amount in [0, -1, MAX_TOPUP + 1, i64::MIN, i64::MAX] {
            let bad = TopupInput {
                amount,
                reference: "x".into(),
            };
            assert!(validate_topup(&bad).is_err(), "{amount}");
        }
        let no_ref = TopupInput {
            amount: 1,
            reference: "  ".into(),
        };
        assert!(validate_topup(&no_ref).is_err());
    }

    #[test]
    fn clips_by_characters() {
        assert_eq!(clip("Budi Santosa", 4), "Budi");
        assert_eq!(clip("é".repeat(400).as_str(), 300).chars().count(), 300);
    }
}
