//! Leads: a buyer's interest in a unit, given with recorded consent, scored for KPR
//! affordability, and unlocked by verified marketing staff who pay for the contact from their
//! wallet. The unlock is one transaction of conditional updates: it cannot double-charge, charge
//! without unlocking, unlock without charging, or drive a balance below zero.

use std::collections::HashMap;

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::db::begin_write;
use crate::domain::{Role, WalletTxType};
use crate::entities::{lead_consents, leads, projects, units, users};
use crate::error::{CoreError, CoreResult, FieldError};
use crate::list::{FieldKind, ListField, ListQuery, ListSpec, Page};
use crate::pii::{hex, mask_email, mask_middle, mask_name};
use crate::services::conversations;
use crate::services::idempotency::{self, Begin, IdemKey, Outcome};
use crate::services::wallet::{self, Movement};

/// The version of the consent text the buyer agreed to (bump it when the text changes).
pub const CONSENT_VERSION: &str = "kavling-consent-v1";
/// The status of a lead that is still open (the unique index covers only these).
pub const OPEN: &str = "OPEN";
/// Default KPR interest rate: 9% a year, in basis points.
pub const DEFAULT_KPR_RATE_BPS: u32 = 900;
/// Highest accepted KPR rate (100% a year).
pub const MAX_KPR_RATE_BPS: u32 = 10_000;
/// KPR tenor used for the score: 15 years.
pub const KPR_MONTHS: u32 = 180;
/// Largest income or down payment accepted (keeps the arithmetic far from overflow).
pub const MAX_MONEY_INPUT: i64 = 1_000_000_000_000_000;
/// Longest message.
pub const MAX_MESSAGE_LEN: usize = 2000;

/// `POST /leads` input.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateLeadInput {
    /// The unit the buyer is interested in.
    pub unit_id: Uuid,
    /// A note for the developer's marketing staff.
    #[schema(max_length = 2000)]
    pub message: Option<String>,
    /// Must be `true`: the buyer agrees to share their contact with marketing staff.
    #[schema(schema_with = consent_schema, required = true)]
    pub consent: Option<bool>,
    /// Monthly income in rupiah, for the affordability score.
    #[serde(default, deserialize_with = "crate::whole_numbers::opt_i64_whole")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub monthly_income: Option<i64>,
    /// Planned down payment in rupiah.
    #[serde(default, deserialize_with = "crate::whole_numbers::opt_i64_whole")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub down_payment: Option<i64>,
}

/// The schema of `consent`: required and `true` (anything else is 422 `consent_required`).
fn consent_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Boolean)
        .enum_values(Some([true]))
        .description(Some(
            "Must be true: the buyer agrees to share their contact",
        ))
        .build()
}

/// `POST /leads` response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadCreated {
    /// Id.
    pub id: Uuid,
    /// The unit.
    pub unit_id: Uuid,
    /// Always false for a buyer's own view.
    pub is_unlocked: bool,
    /// KPR affordability score, 0–100.
    pub buyer_score: i32,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Where the consent was given (the request's client).
#[derive(Clone, Debug, Default)]
pub struct ConsentContext {
    /// Client IP.
    pub ip: String,
    /// User agent.
    pub user_agent: String,
}

/// The buyer's contact: masked unless the viewer unlocked the lead (or is an admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuyerContact {
    /// Name (`Bu***` when masked).
    pub name: String,
    /// Phone (`0812****890` when masked).
    pub phone: Option<String>,
    /// Email (`bu***@example.com` when masked).
    pub email: String,
    /// True when the values above are masked.
    pub masked: bool,
}

/// A lead as marketing staff and admins see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadView {
    /// Id.
    pub id: Uuid,
    /// Project.
    pub project_id: Uuid,
    /// Unit.
    pub unit_id: Uuid,
    /// The unit's block number.
    pub block_number: Option<String>,
    /// The buyer's note (shown only with the contact).
    pub message: Option<String>,
    /// Monthly income (shown only with the contact).
    pub monthly_income: Option<i64>,
    /// Down payment (shown only with the contact).
    pub down_payment: Option<i64>,
    /// KPR affordability score, 0–100.
    pub buyer_score: i32,
    /// OPEN.
    pub status: String,
    /// Unlocked by anyone.
    pub is_unlocked: bool,
    /// Unlocked by the viewer.
    pub unlocked_by_me: bool,
    /// When it was unlocked.
    pub unlocked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The buyer's contact.
    pub buyer: BuyerContact,
    /// The conversation with the buyer that the unlock opened (shown with the contact).
    pub conversation_id: Option<Uuid>,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The whitelist of `GET /leads`.
pub const LEAD_LIST: ListSpec<leads::Column> = ListSpec {
    fields: &[
        ListField {
            name: "unitId",
            column: leads::Column::UnitId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "projectId",
            column: leads::Column::ProjectId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "isUnlocked",
            column: leads::Column::IsUnlocked,
            kind: FieldKind::Boolean,
        },
        ListField {
            name: "buyerScore",
            column: leads::Column::BuyerScore,
            kind: FieldKind::Integer,
        },
        ListField {
            name: "createdAt",
            column: leads::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(leads::Column::CreatedAt, true)],
    tiebreak: leads::Column::Id,
};

/// Fixed-point scale of the annuity factor.
const SCALE: u128 = 1_000_000_000_000;

/// The monthly installment (rupiah, rounded up) of an annuity loan, in integer arithmetic:
/// `loan · r · (1+r)^n / ((1+r)^n − 1)` with `r = bps / 120 000` a month; `loan / n` at 0%.
/// `(1+r)^n` is computed in fixed point (10^12) by repeated multiplication, each step rounded
/// down, which is exact to far below a rupiah for any real loan. None on overflow.
pub fn monthly_installment(loan: u128, annual_rate_bps: u32, months: u32) -> Option<u128> {
    if loan == 0 {
        return Some(0);
    }
    let n = u128::from(months.max(1));
    if annual_rate_bps == 0 {
        return Some(loan.div_ceil(n));
    }
    let bps = u128::from(annual_rate_bps.min(MAX_KPR_RATE_BPS));
    let den: u128 = 120_000;
    let num = den + bps;
    let mut pow = SCALE;
    for _ in 0..n {
        pow = pow.checked_mul(num)? / den;
    }
    let growth = pow.checked_sub(SCALE).filter(|g| *g > 0)?;
    // factor = (1+r)^n / ((1+r)^n − 1), in SCALE units.
    let factor = pow.checked_mul(SCALE)? / growth;
    let top = loan.checked_mul(bps)?.checked_mul(factor)?;
    Some(top.div_ceil(den.checked_mul(SCALE)?))
}

/// The KPR affordability score (0–100) of a buyer for a unit.
///
/// Banks in Indonesia commonly cap a mortgage installment at a third of monthly income. So:
/// `loan = max(price − downPayment, 0)`; `installment` = the annuity over [`KPR_MONTHS`] (15
/// years) at the configured annual rate (default 9%, [`monthly_installment`]);
/// `score = min(100, ⌊100 · (income / 3) / installment⌋)`, i.e. the share of the installment that a
/// third of the income covers. 100 when nothing needs financing; 0 when the income is unknown
/// or zero. Integer arithmetic only.
pub fn buyer_score(
    price: i64,
    down_payment: Option<i64>,
    monthly_income: Option<i64>,
    annual_rate_bps: u32,
) -> i32 {
    let Some(income) = monthly_income.filter(|i| *i > 0) else {
        return 0;
    };
    let loan = u128::try_from(price.saturating_sub(down_payment.unwrap_or(0).max(0))).unwrap_or(0);
    let Some(installment) = monthly_installment(loan, annual_rate_bps, KPR_MONTHS) else {
        return 0;
    };
    if installment == 0 {
        return 100;
    }
    let income = u128::try_from(income).unwrap_or(0);
    let score = (income * 100) / (installment * 3);
    i32::try_from(score.min(100)).unwrap_or(100)
}

/// SHA-256 hex over the consent facts, so the stored proof shows any later edit.
pub fn consent_proof(
    version: &str,
    ip: &str,
    user_agent: &str,
    at: chrono::DateTime<chrono::Utc>,
    lead_id: Uuid,
    buyer_id: Uuid,
) -> String {
    let mut h = Sha256::new();
    for part in [
        version,
        ip,
        user_agent,
        &at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        &lead_id.to_string(),
        &buyer_id.to_string(),
    ] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())
}

fn validate_lead(input: &CreateLeadInput) -> CoreResult<Option<String>> {
    let mut errors = Vec::new();
    if input.consent != Some(true) {
        errors.push(FieldError::new(
            "consent",
            "consent_required",
            "the buyer must agree to share their contact (consent: true)",
        ));
    }
    for (field, value) in [
        ("monthlyIncome", input.monthly_income),
        ("downPayment", input.down_payment),
    ] {
        if value.is_some_and(|v| !(0..=MAX_MONEY_INPUT).contains(&v)) {
            errors.push(FieldError::new(
                field,
                "out_of_range",
                format!("must be a whole number of rupiah from 0 to {MAX_MONEY_INPUT}"),
            ));
        }
    }
    let message = input
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    if message
        .as_ref()
        .is_some_and(|m| m.chars().count() > MAX_MESSAGE_LEN)
    {
        errors.push(FieldError::new(
            "message",
            "too_long",
            format!("the message is at most {MAX_MESSAGE_LEN} characters"),
        ));
    }
    if errors.is_empty() {
        Ok(message)
    } else {
        Err(CoreError::Validation(errors))
    }
}

fn created_view(l: &leads::Model) -> LeadCreated {
    LeadCreated {
        id: l.id,
        unit_id: l.unit_id,
        is_unlocked: false,
        buyer_score: l.buyer_score,
        created_at: l.created_at,
    }
}

/// Builds the staff view of a lead, revealing the contact (and its conversation) only when `reveal`.
fn lead_view(
    l: leads::Model,
    buyer: Option<&users::Model>,
    block: Option<String>,
    conversation_id: Option<Uuid>,
    viewer: Uuid,
    reveal: bool,
) -> LeadView {
    let (name, phone, email) = buyer
        .map(|b| (b.full_name.as_str(), b.phone.as_deref(), b.email.as_str()))
        .unwrap_or(("", None, ""));
    let buyer = if reveal {
        BuyerContact {
            name: name.to_owned(),
            phone: phone.map(str::to_owned),
            email: email.to_owned(),
            masked: false,
        }
    } else {
        BuyerContact {
            name: mask_name(name),
            phone: phone.map(|p| mask_middle(p, 4, 3)),
            email: mask_email(email),
            masked: true,
        }
    };
    LeadView {
        id: l.id,
        project_id: l.project_id,
        unit_id: l.unit_id,
        block_number: block,
        message: if reveal { l.message } else { None },
        monthly_income: if reveal { l.monthly_income } else { None },
        down_payment: if reveal { l.down_payment } else { None },
        buyer_score: l.buyer_score,
        status: l.status,
        is_unlocked: l.is_unlocked,
        unlocked_by_me: l.unlocked_by == Some(viewer),
        unlocked_at: l.unlocked_at,
        buyer,
        conversation_id: conversation_id.filter(|_| reveal),
        created_at: l.created_at,
    }
}

impl Services {
    /// `POST /leads` (BUYER): records the lead and its consent proof; a second request for the
    /// same open (buyer, unit) returns the first lead. Returns `(created, lead)`.
    pub async fn create_lead(
        &self,
        actor: &ActorRef,
        buyer: &users::Model,
        input: CreateLeadInput,
        consent: ConsentContext,
    ) -> CoreResult<(bool, LeadCreated)> {
        let message = validate_lead(&input)?;
        let unit = units::Entity::find_by_id(input.unit_id)
            .one(&self.db)
            .await?
            .ok_or(CoreError::NotFound("unit"))?;
        if let Some(existing) = self.open_lead(buyer.id, unit.id).await? {
            return Ok((false, created_view(&existing)));
        }
        let score = buyer_score(
            unit.price,
            input.down_payment,
            input.monthly_income,
            self.kpr_rate_bps,
        );
        let now = self.clock.now();
        let txn = begin_write(&self.db).await?;
        let lead = leads::ActiveModel {
            id: Set(Uuid::now_v7()),
            project_id: Set(unit.project_id),
            unit_id: Set(unit.id),
            buyer_id: Set(buyer.id),
            message: Set(message),
            monthly_income: Set(input.monthly_income),
            down_payment: Set(input.down_payment),
            buyer_score: Set(score),
            status: Set(OPEN.to_owned()),
            is_unlocked: Set(false),
            unlocked_by: Set(None),
            unlocked_at: Set(None),
            unlock_price: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await;
        let lead = match lead {
            Ok(l) => l,
            Err(e) if CoreError::is_unique_violation(&e) => {
                // A concurrent request won the open (buyer, unit) slot: answer with its lead.
                txn.rollback().await?;
                return match self.open_lead(buyer.id, unit.id).await? {
                    Some(existing) => Ok((false, created_view(&existing))),
                    None => Err(CoreError::Internal(
                        "an open lead vanished after a unique violation".into(),
                    )),
                };
            }
            Err(e) => return Err(e.into()),
        };
        let ip: String = consent.ip.chars().take(64).collect();
        let user_agent: String = consent.user_agent.chars().take(512).collect();
        lead_consents::ActiveModel {
            id: Set(Uuid::now_v7()),
            lead_id: Set(lead.id),
            consent_version: Set(CONSENT_VERSION.to_owned()),
            proof_sha256: Set(consent_proof(
                CONSENT_VERSION,
                &ip,
                &user_agent,
                now,
                lead.id,
                buyer.id,
            )),
            ip: Set(ip),
            user_agent: Set(user_agent),
            consented_at: Set(now),
        }
        .insert(&txn)
        .await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "lead.created",
                entity_type: "lead",
                entity_id: lead.id,
                old_values: None,
                new_values: Some(serde_json::json!({
                    "unitId": lead.unit_id,
                    "buyerScore": lead.buyer_score,
                    "consentVersion": CONSENT_VERSION,
                })),
            },
        )
        .await?;
        txn.commit().await?;
        Ok((true, created_view(&lead)))
    }

    async fn open_lead(&self, buyer_id: Uuid, unit_id: Uuid) -> CoreResult<Option<leads::Model>> {
        Ok(leads::Entity::find()
            .filter(leads::Column::BuyerId.eq(buyer_id))
            .filter(leads::Column::UnitId.eq(unit_id))
            .filter(leads::Column::Status.eq(OPEN))
            .one(&self.db)
            .await?)
    }

    /// `GET /leads` (verified MARKETING or ADMIN): contacts masked unless the viewer unlocked
    /// the lead; admins see everything.
    pub async fn list_leads(
        &self,
        viewer: &users::Model,
        query: &str,
    ) -> CoreResult<Page<LeadView>> {
        let q = ListQuery::parse(query, &LEAD_LIST)?;
        let page = q.fetch(leads::Entity::find(), &self.db).await?;
        let buyer_ids: Vec<Uuid> = page.data.iter().map(|l| l.buyer_id).collect();
        let unit_ids: Vec<Uuid> = page.data.iter().map(|l| l.unit_id).collect();
        let buyers: HashMap<Uuid, users::Model> = if buyer_ids.is_empty() {
            HashMap::new()
        } else {
            users::Entity::find()
                .filter(users::Column::Id.is_in(buyer_ids))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|u| (u.id, u))
                .collect()
        };
        let blocks: HashMap<Uuid, String> = if unit_ids.is_empty() {
            HashMap::new()
        } else {
            units::Entity::find()
                .filter(units::Column::Id.is_in(unit_ids))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|u| (u.id, u.block_number))
                .collect()
        };
        let lead_ids: Vec<Uuid> = page.data.iter().map(|l| l.id).collect();
        let chats = conversations::ids_by_lead(&self.db, lead_ids).await?;
        let is_admin = viewer.role == Role::Admin.as_str();
        Ok(page.map(|l| {
            let reveal = is_admin || l.unlocked_by == Some(viewer.id);
            let buyer = buyers.get(&l.buyer_id);
            let block = blocks.get(&l.unit_id).cloned();
            let chat = chats.get(&l.id).copied();
            lead_view(l, buyer, block, chat, viewer.id, reveal)
        }))
    }

    /// `POST /leads/{id}/unlock` (verified MARKETING): in one transaction, unlock the lead if
    /// still locked, debit the project's lead price if the balance covers it, write the ledger
    /// and audit rows; 200 with the contact. Already unlocked by the caller: 200, no charge. By
    /// someone else: 409 `lead_already_unlocked`. Balance too low: 402 `insufficient_balance`,
    /// nothing changes. With an `Idempotency-Key` the first response is replayed.
    pub async fn unlock_lead(
        &self,
        actor: &ActorRef,
        user_id: Uuid,
        lead_id: Uuid,
        key: Option<String>,
    ) -> CoreResult<Outcome<LeadView>> {
        let key = key.map(|k| IdemKey {
            key: k,
            scope: "lead.unlock",
            request_hash: idempotency::request_hash(
                "POST",
                &format!("/leads/{lead_id}/unlock"),
                b"",
            ),
        });
        let (txn, claim) =
            match idempotency::begin(&self.db, self.clock.as_ref(), user_id, key.as_ref()).await? {
                Begin::Fresh(txn, claim) => (txn, claim),
                Begin::Replayed(stored) => return Ok(Outcome::Replayed(stored)),
            };
        let lead = self.unlock_in(&txn, actor, user_id, lead_id).await?;
        let buyer = users::Entity::find_by_id(lead.buyer_id).one(&txn).await?;
        let block = units::Entity::find_by_id(lead.unit_id)
            .one(&txn)
            .await?
            .map(|u| u.block_number);
        let chat = conversations::ids_by_lead(&txn, vec![lead.id])
            .await?
            .get(&lead.id)
            .copied();
        let view = lead_view(lead, buyer.as_ref(), block, chat, user_id, true);
        let body = serde_json::to_string(&view)
            .map_err(|e| CoreError::Internal(format!("serializing a lead: {e}")))?;
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

    /// The unlock's writes; any error leaves the transaction to roll back when dropped.
    async fn unlock_in(
        &self,
        txn: &DatabaseTransaction,
        actor: &ActorRef,
        user_id: Uuid,
        lead_id: Uuid,
    ) -> CoreResult<leads::Model> {
        let lead = leads::Entity::find_by_id(lead_id)
            .one(txn)
            .await?
            .ok_or(CoreError::NotFound("lead"))?;
        let price = projects::Entity::find_by_id(lead.project_id)
            .one(txn)
            .await?
            .ok_or(CoreError::NotFound("project"))?
            .lead_price
            .max(0);
        let now = self.clock.now();
        let won = leads::Entity::update_many()
            .col_expr(leads::Column::IsUnlocked, Expr::value(true))
            .col_expr(leads::Column::UnlockedBy, Expr::value(Some(user_id)))
            .col_expr(leads::Column::UnlockedAt, Expr::value(Some(now)))
            .col_expr(leads::Column::UnlockPrice, Expr::value(Some(price)))
            .col_expr(leads::Column::UpdatedAt, Expr::value(now))
            .filter(leads::Column::Id.eq(lead_id))
            .filter(leads::Column::IsUnlocked.eq(false))
            .exec(txn)
            .await?;
        let lead = leads::Entity::find_by_id(lead_id)
            .one(txn)
            .await?
            .ok_or(CoreError::NotFound("lead"))?;
        if won.rows_affected == 0 {
            // Already unlocked: by the caller it is free to see again; by anyone else, no.
            return if lead.unlocked_by == Some(user_id) {
                // Leads unlocked before conversations existed get theirs now (a no-op otherwise).
                conversations::open_for_lead(txn, &lead, user_id, now).await?;
                Ok(lead)
            } else {
                Err(CoreError::conflict(
                    "lead_already_unlocked",
                    "another marketing user already unlocked this lead",
                ))
            };
        }
        let Some((wallet_id, balance_after)) = wallet::debit(txn, now, user_id, price).await?
        else {
            return Err(CoreError::PaymentRequired {
                code: "insufficient_balance",
                message: format!("unlocking this lead costs {price} rupiah; top up your wallet"),
            });
        };
        let buyer_name = users::Entity::find_by_id(lead.buyer_id)
            .one(txn)
            .await?
            .map(|b| b.full_name)
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
                wallet_id,
                amount: -price,
                tx_type: WalletTxType::Debit,
                balance_after,
                description: &format!("Unlock Lead: {buyer_name} - Unit {block}"),
                reference: None,
                lead_id: Some(lead_id),
            },
        )
        .await?;
        audit::record(
            txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "lead.unlocked",
                entity_type: "lead",
                entity_id: lead_id,
                old_values: Some(serde_json::json!({"isUnlocked": false})),
                new_values: Some(serde_json::json!({
                    "isUnlocked": true,
                    "unlockedBy": user_id,
                    "unlockPrice": price,
                })),
            },
        )
        .await?;
        // The buyer and the marketing user can talk from now on: once per lead, in this
        // transaction, so an unlock that rolls back opens nothing.
        conversations::open_for_lead(txn, &lead, user_id, now).await?;
        audit::record(
            txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "wallet.debited",
                entity_type: "wallet",
                entity_id: wallet_id,
                old_values: Some(serde_json::json!({"balance": balance_after + price})),
                new_values: Some(serde_json::json!({
                    "balance": balance_after,
                    "amount": -price,
                    "leadId": lead_id,
                    "transactionId": row.id,
                })),
            },
        )
        .await?;
        Ok(lead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installment_matches_the_annuity_formula() {
        // 400,000,000 over 15 years at 9%: 4,057,066.67 by the closed formula.
        let m = monthly_installment(400_000_000, 900, 180).unwrap();
        assert!((4_057_066..=4_057_068).contains(&m), "{m}");
        assert_eq!(monthly_installment(180_000_000, 0, 180), Some(1_000_000));
        assert_eq!(monthly_installment(0, 900, 180), Some(0));
    }

    #[test]
    fn score_is_the_share_of_the_installment_a_third_of_income_covers() {
        let price = 500_000_000;
        // Loan 400M → ~4,057,067 a month; a third of 12,171,201 covers it exactly.
        assert_eq!(
            buyer_score(price, Some(100_000_000), Some(12_200_000), 900),
            100
        );
        // Half the needed income → ~50.
        let half = buyer_score(price, Some(100_000_000), Some(6_085_600), 900);
        assert!((49..=50).contains(&half), "{half}");
        assert_eq!(buyer_score(price, Some(100_000_000), None, 900), 0);
        assert_eq!(buyer_score(price, Some(100_000_000), Some(0), 900), 0);
        // Fully paid in cash: nothing to finance.
        assert_eq!(buyer_score(price, Some(price), Some(1), 900), 100);
        assert_eq!(buyer_score(price, Some(i64::MAX), Some(1), 900), 100);
        // Extreme inputs stay within 0..=100 and never panic.
        for (p, d, i, r) in [
            (i64::MAX, None, Some(i64::MAX), 900),
            (i64::MAX, Some(0), Some(1), MAX_KPR_RATE_BPS),
            (i64::MIN, Some(-5), Some(i64::MAX), 1),
            (1, None, Some(1), u32::MAX),
        ] {
            let s = buyer_score(p, d, i, r);
            assert!((0..=100).contains(&s), "{s}");
        }
        // Higher rates never raise the score.
        let cheap = buyer_score(price, Some(0), Some(10_000_000), 300);
        let dear = buyer_score(price, Some(0), Some(10_000_000), 1500);
        assert!(cheap > dear, "{cheap} {dear}");
    }

    #[test]
    fn consent_proof_binds_every_fact() {
        let at = chrono::DateTime::from_timestamp(1_763_700_000, 0).unwrap();
        let (l, b) = (Uuid::nil(), Uuid::max());
        let p = consent_proof(CONSENT_VERSION, "10.0.0.1", "ua", at, l, b);
        assert_eq!(p.len(), 64);
        assert_eq!(
            p,
            consent_proof(CONSENT_VERSION, "10.0.0.1", "ua", at, l, b)
        );
        assert_ne!(
            p,
            consent_proof("kavling-consent-v2", "10.0.0.1", "ua", at, l, b)
        );
        assert_ne!(
            p,
            consent_proof(CONSENT_VERSION, "10.0.0.2", "ua", at, l, b)
        );
        assert_ne!(
            p,
            consent_proof(CONSENT_VERSION, "10.0.0.1", "ub", at, l, b)
        );
        let later = at + chrono::Duration::seconds(1);
        assert_ne!(
            p,
            consent_proof(CONSENT_VERSION, "10.0.0.1", "ua", later, l, b)
        );
    }

    #[test]
    fn consent_is_required() {
        let input = |consent| CreateLeadInput {
            unit_id: Uuid::nil(),
            message: None,
            consent,
            monthly_income: None,
            down_payment: None,
        };
        assert!(validate_lead(&input(Some(true))).is_ok());
        assert!(validate_lead(&input(Some(false))).is_err());
        assert!(validate_lead(&input(None)).is_err());
    }
}
