//! Payments after the booking: a booking's schedule of invoices (numbered `INV-<year>-<n>`,
//! gap-free like booking codes), payments submitted with a proof file, and an admin's
//! verification, which moves the invoice and, through the existing booking path, the booking
//! (BOOKING_FEE paid: ACTIVE; everything paid: COMPLETED and the unit SOLD) in one transaction.
//! Every race (two verifications, a verification and the hold sweeper, two submissions) is settled
//! by conditional updates in the database.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::clock::Clock;
use crate::db::begin_write;
use crate::domain::{
    BookingStatus, InvoiceKind, InvoiceStatus, PaymentMethod, PaymentProofStatus, PaymentStatus,
    Role,
};
use crate::entities::{bookings, invoice_counters, invoices, payments};
use crate::error::{CoreError, CoreResult, FieldError};
use crate::list::{FieldKind, ListField, ListQuery, ListSpec, Page};
use crate::services::booking_notices::{PaymentNews, notify_payment};
use crate::services::bookings::{Cause, Changes, Viewer, hold_expired, of_live_booking};
use crate::services::documents::{MAX_DOCUMENT_BYTES, file_too_large, sniff};
use crate::services::notifications::Committed;

/// Largest invoice amount: ten trillion rupiah.
pub const MAX_INVOICE_AMOUNT: i64 = 10_000_000_000_000;
/// Most items one schedule request may add.
pub const MAX_SCHEDULE_ITEMS: usize = 60;
/// Longest rejection reason.
pub const MAX_REASON_LEN: usize = 500;
/// The sub-directory of the storage directory holding payment proofs.
pub const PROOF_DIR: &str = "payment-proofs";
/// Invoices marked overdue per statement by the overdue job.
pub const OVERDUE_BATCH: u64 = 500;

/// One item of `POST /bookings/{id}/schedule`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleItem {
    /// What the invoice is for; at most one `BOOKING_FEE` per booking.
    pub kind: InvoiceKind,
    /// Rupiah, 1 to 10,000,000,000,000.
    #[serde(deserialize_with = "crate::whole_numbers::i64_whole")]
    #[schema(minimum = 1, maximum = 10_000_000_000_000_i64)]
    pub amount: i64,
    /// When it is due (a date in WIB); unpaid after that day it becomes `OVERDUE`.
    pub due_date: NaiveDate,
}

/// `POST /bookings/{id}/schedule` body: the invoices to add to the booking's schedule.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleInput {
    /// 1 to 60 items; posting again adds more invoices to the schedule.
    #[schema(min_items = 1, max_items = 60)]
    pub items: Vec<ScheduleItem>,
}

/// An invoice as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceView {
    /// Id.
    pub id: Uuid,
    /// `INV-2026-001`.
    pub invoice_number: String,
    /// The same as `invoiceNumber`.
    pub code: String,
    /// The booking.
    pub booking_id: Uuid,
    /// BOOKING_FEE, DOWN_PAYMENT, INSTALLMENT or KPR.
    #[schema(value_type = crate::domain::InvoiceKind)]
    pub kind: String,
    /// Amount due, rupiah.
    pub amount: i64,
    /// Verified payments so far, rupiah.
    pub paid_amount: i64,
    /// Due date.
    pub due_date: NaiveDate,
    /// UNPAID, AWAITING_VERIFICATION, PAID, OVERDUE or VOID.
    #[schema(value_type = crate::domain::InvoiceStatus)]
    pub status: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
    /// When it was paid in full.
    pub paid_at: Option<DateTime<Utc>>,
}

impl From<invoices::Model> for InvoiceView {
    fn from(m: invoices::Model) -> Self {
        InvoiceView {
            id: m.id,
            code: m.invoice_number.clone(),
            invoice_number: m.invoice_number,
            booking_id: m.booking_id,
            kind: m.kind,
            amount: m.amount,
            paid_amount: m.paid_amount,
            due_date: m.due_date,
            status: m.status,
            created_at: m.created_at,
            updated_at: m.updated_at,
            paid_at: m.paid_at,
        }
    }
}

/// A submitted payment as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    /// Id.
    pub id: Uuid,
    /// The invoice.
    pub invoice_id: Uuid,
    /// The invoice's booking.
    pub booking_id: Uuid,
    /// Rupiah.
    pub amount: i64,
    /// TRANSFER, CASH, CHECK or CREDIT.
    #[schema(value_type = crate::domain::PaymentMethod)]
    pub method: String,
    /// When the customer paid (as submitted).
    pub paid_at: DateTime<Utc>,
    /// AWAITING_VERIFICATION, VERIFIED or REJECTED.
    #[schema(value_type = crate::domain::PaymentProofStatus)]
    pub status: String,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// Where the proof is downloaded (bearer token required).
    pub proof_url: String,
    /// The proof's type, detected from its content.
    pub proof_content_type: String,
    /// Submitted.
    pub created_at: DateTime<Utc>,
    /// When an admin decided.
    pub verified_at: Option<DateTime<Utc>>,
    /// The admin who decided.
    pub verified_by: Option<Uuid>,
}

fn payment_view(p: payments::Model, booking_id: Uuid) -> PaymentView {
    PaymentView {
        proof_url: format!("/api/v1/payments/{}/proof", p.id),
        id: p.id,
        invoice_id: p.invoice_id,
        booking_id,
        amount: p.amount,
        method: p.method,
        paid_at: p.paid_at,
        status: p.status,
        reason: p.reason,
        proof_content_type: p.proof_content_type,
        created_at: p.created_at,
        verified_at: p.verified_at,
        verified_by: p.verified_by,
    }
}

/// A payment as it arrives from the multipart form, before it is checked.
#[derive(Clone, Debug)]
pub struct NewPayment {
    /// `amount` as sent.
    pub amount: String,
    /// `method` as sent.
    pub method: String,
    /// `paidAt` as sent (RFC 3339).
    pub paid_at: String,
    /// The proof's bytes.
    pub data: Vec<u8>,
}

/// `PATCH /payments/{id}` body.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentDecision {
    /// true: verified (adds to the invoice's paid amount); false: rejected.
    pub verified: bool,
    /// Why (required when rejecting), 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: Option<String>,
}

/// The whitelist of `GET /invoices`, `GET /bookings/{id}/invoices` and the invoice export.
pub const INVOICE_LIST: ListSpec<invoices::Column> = ListSpec {
    fields: &[
        ListField {
            name: "status",
            column: invoices::Column::Status,
            kind: FieldKind::Enum(InvoiceStatus::ALL),
        },
        ListField {
            name: "dueDate",
            column: invoices::Column::DueDate,
            kind: FieldKind::Date,
        },
        ListField {
            name: "bookingId",
            column: invoices::Column::BookingId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "kind",
            column: invoices::Column::Kind,
            kind: FieldKind::Enum(InvoiceKind::ALL),
        },
        ListField {
            name: "invoiceNumber",
            column: invoices::Column::InvoiceNumber,
            kind: FieldKind::Text,
        },
        ListField {
            name: "amount",
            column: invoices::Column::Amount,
            kind: FieldKind::Integer,
        },
        ListField {
            name: "createdAt",
            column: invoices::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(invoices::Column::DueDate, false)],
    tiebreak: invoices::Column::Id,
};

/// The whitelist of `GET /payments` (the verification queue).
pub const PAYMENT_LIST: ListSpec<payments::Column> = ListSpec {
    fields: &[
        ListField {
            name: "status",
            column: payments::Column::Status,
            kind: FieldKind::Enum(PaymentProofStatus::ALL),
        },
        ListField {
            name: "invoiceId",
            column: payments::Column::InvoiceId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "method",
            column: payments::Column::Method,
            kind: FieldKind::Enum(PaymentMethod::ALL),
        },
        ListField {
            name: "amount",
            column: payments::Column::Amount,
            kind: FieldKind::Integer,
        },
        ListField {
            name: "createdAt",
            column: payments::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(payments::Column::CreatedAt, false)],
    tiebreak: payments::Column::Id,
};

/// The invoice-number year: WIB (UTC+7), like booking codes.
fn invoice_year(now: DateTime<Utc>) -> i32 {
    use chrono::Datelike;
    (now + Duration::hours(7)).year()
}

/// Today's date in WIB: due dates are Jakarta calendar days.
pub fn wib_today(now: DateTime<Utc>) -> NaiveDate {
    (now + Duration::hours(7)).date_naive()
}

/// `INV-2026-001`: at least three digits.
pub fn invoice_number(year: i32, n: i64) -> String {
    format!("INV-{year}-{n:03}")
}

/// The status of an invoice that is not (fully) paid and has no payment awaiting verification.
pub fn open_status(due: NaiveDate, now: DateTime<Utc>) -> InvoiceStatus {
    if due < wib_today(now) {
        InvoiceStatus::Overdue
    } else {
        InvoiceStatus::Unpaid
    }
}

/// The 409 of a schedule whose BOOKING_FEE the booking already has: a conflict with the
/// booking's state, unlike two in one request (422, stated by the schema's `maxContains`).
fn booking_fee_exists() -> CoreError {
    CoreError::conflict(
        "duplicate_booking_fee",
        "the booking already has its BOOKING_FEE invoice",
    )
}

/// Checks a schedule request (count, amounts, one booking fee); `has_fee` says whether the
/// booking already has its BOOKING_FEE invoice (then a BOOKING_FEE item is 409).
pub fn validate_schedule(input: &ScheduleInput, has_fee: bool) -> CoreResult<()> {
    let mut errors = Vec::new();
    if input.items.is_empty() || input.items.len() > MAX_SCHEDULE_ITEMS {
        errors.push(FieldError::new(
            "items",
            "out_of_range",
            format!("give 1 to {MAX_SCHEDULE_ITEMS} items"),
        ));
    }
    let mut fees = 0;
    for (i, item) in input.items.iter().enumerate() {
        if !(1..=MAX_INVOICE_AMOUNT).contains(&item.amount) {
            errors.push(FieldError::new(
                &format!("items[{i}].amount"),
                "out_of_range",
                format!("a whole number of rupiah, 1 to {MAX_INVOICE_AMOUNT}"),
            ));
        }
        if item.kind == InvoiceKind::BookingFee {
            fees += 1;
            if fees > 1 {
                errors.push(FieldError::new(
                    &format!("items[{i}].kind"),
                    "duplicate",
                    "a booking has at most one BOOKING_FEE invoice",
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(CoreError::Validation(errors));
    }
    if has_fee && fees > 0 {
        return Err(booking_fee_exists());
    }
    Ok(())
}

/// A checked payment submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidPayment {
    /// Rupiah.
    pub amount: i64,
    /// Method.
    pub method: PaymentMethod,
    /// When it was paid.
    pub paid_at: DateTime<Utc>,
}

/// Checks the text fields of a payment submission.
pub fn validate_payment(input: &NewPayment) -> CoreResult<ValidPayment> {
    let mut errors = Vec::new();
    let amount = match input.amount.trim().parse::<i64>() {
        Ok(a) if (1..=MAX_INVOICE_AMOUNT).contains(&a) => a,
        _ => {
            errors.push(FieldError::new(
                "amount",
                "out_of_range",
                format!("a whole number of rupiah, 1 to {MAX_INVOICE_AMOUNT}"),
            ));
            0
        }
    };
    let method = PaymentMethod::parse(input.method.trim());
    if method.is_none() {
        errors.push(FieldError::new(
            "method",
            "invalid",
            format!("one of {}", PaymentMethod::ALL.join(", ")),
        ));
    }
    let paid_at = DateTime::parse_from_rfc3339(input.paid_at.trim())
        .ok()
        .map(|t| crate::clock::to_micros(t.with_timezone(&Utc)));
    if paid_at.is_none() {
        errors.push(FieldError::new(
            "paidAt",
            "invalid",
            "an RFC 3339 timestamp, e.g. 2026-12-03T10:00:00+07:00",
        ));
    }
    if input.data.is_empty() {
        errors.push(FieldError::new(
            "file",
            "required",
            "the proof file is empty",
        ));
    }
    match (method, paid_at) {
        (Some(method), Some(paid_at)) if errors.is_empty() => Ok(ValidPayment {
            amount,
            method,
            paid_at,
        }),
        _ => Err(CoreError::Validation(errors)),
    }
}

/// Checks a verification decision; returns the trimmed reason.
pub fn validate_decision(input: &PaymentDecision) -> CoreResult<Option<String>> {
    let reason = input
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if !input.verified && reason.is_none() {
        return Err(CoreError::invalid_field(
            "reason",
            "required",
            "say why the payment is rejected",
        ));
    }
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_LEN) {
        return Err(CoreError::invalid_field(
            "reason",
            "too_long",
            format!("at most {MAX_REASON_LEN} characters"),
        ));
    }
    Ok(reason.map(str::to_owned))
}

fn invoice_audit(
    action: &'static str,
    old: Option<&invoices::Model>,
    new: &invoices::Model,
) -> AuditEntry<'static> {
    let values = |i: &invoices::Model| {
        serde_json::json!({
            "status": i.status, "paidAmount": i.paid_amount, "amount": i.amount,
            "kind": i.kind, "invoiceNumber": i.invoice_number, "bookingId": i.booking_id,
        })
    };
    AuditEntry {
        action,
        entity_type: "invoice",
        entity_id: new.id,
        old_values: old.map(values),
        new_values: Some(values(new)),
    }
}

fn payment_audit(
    action: &'static str,
    old: Option<&payments::Model>,
    new: &payments::Model,
) -> AuditEntry<'static> {
    let values = |p: &payments::Model| {
        serde_json::json!({
            "status": p.status, "amount": p.amount, "method": p.method, "reason": p.reason,
            "invoiceId": p.invoice_id, "proofSha256": p.proof_sha256,
        })
    };
    AuditEntry {
        action,
        entity_type: "payment",
        entity_id: new.id,
        old_values: old.map(values),
        new_values: Some(values(new)),
    }
}

/// Invoices of bookings the viewer may see (admins: all; marketing: their own bookings'), never
/// those of a deleted booking.
fn scope_invoices(
    viewer: Viewer,
    select: sea_orm::Select<invoices::Entity>,
) -> sea_orm::Select<invoices::Entity> {
    let select = select.filter(of_live_booking(invoices::Column::BookingId));
    if viewer.role == Role::Admin {
        select
    } else {
        select.filter(
            invoices::Column::BookingId.in_subquery(
                Query::select()
                    .column(bookings::Column::Id)
                    .from(bookings::Entity)
                    .and_where(bookings::Column::MarketingId.eq(viewer.user_id))
                    .to_owned(),
            ),
        )
    }
}

/// Payments of bookings the viewer may see, never those of a deleted booking.
fn scope_payments(
    viewer: Viewer,
    select: sea_orm::Select<payments::Entity>,
) -> sea_orm::Select<payments::Entity> {
    let select = select.filter(
        payments::Column::InvoiceId.in_subquery(
            Query::select()
                .column(invoices::Column::Id)
                .from(invoices::Entity)
                .and_where(of_live_booking(invoices::Column::BookingId))
                .to_owned(),
        ),
    );
    if viewer.role == Role::Admin {
        select
    } else {
        select.filter(
            payments::Column::InvoiceId.in_subquery(
                Query::select()
                    .column(invoices::Column::Id)
                    .from(invoices::Entity)
                    .and_where(
                        invoices::Column::BookingId.in_subquery(
                            Query::select()
                                .column(bookings::Column::Id)
                                .from(bookings::Entity)
                                .and_where(bookings::Column::MarketingId.eq(viewer.user_id))
                                .to_owned(),
                        ),
                    )
                    .to_owned(),
            ),
        )
    }
}

/// 403 unless the viewer is an admin or the booking's own marketing user.
fn require_owner(viewer: Viewer, b: &bookings::Model) -> CoreResult<()> {
    if viewer.role == Role::Admin || b.marketing_id == viewer.user_id {
        Ok(())
    } else {
        Err(CoreError::forbidden(
            "forbidden",
            "only an admin or the booking's own marketing user may do this",
        ))
    }
}

fn not_payable(status: &str) -> CoreError {
    CoreError::conflict(
        "invoice_not_payable",
        format!("a {status} invoice takes no more payments"),
    )
}

fn already_decided() -> CoreError {
    CoreError::conflict(
        "payment_already_decided",
        "this payment was already verified or rejected",
    )
}

/// Takes `n` consecutive numbers of the year's invoice counter; returns the last. They roll back
/// with the caller's transaction, so numbers are gap-free (the booking-code technique).
async fn take_invoice_numbers<C: ConnectionTrait>(conn: &C, year: i32, n: i64) -> CoreResult<i64> {
    let row = invoice_counters::Entity::insert(invoice_counters::ActiveModel {
        year: Set(year),
        last_value: Set(n),
    })
    .on_conflict(
        OnConflict::column(invoice_counters::Column::Year)
            .value(
                invoice_counters::Column::LastValue,
                Expr::col((
                    invoice_counters::Entity,
                    invoice_counters::Column::LastValue,
                ))
                .add(n),
            )
            .to_owned(),
    )
    .exec_with_returning(conn)
    .await?;
    Ok(row.last_value)
}

/// Voids the booking's invoices that are not paid and rejects their payments still awaiting
/// verification (the booking was cancelled), with audit rows; part of the cancellation's transaction.
pub(crate) async fn void_open_invoices<C: ConnectionTrait>(
    conn: &C,
    clock: &dyn Clock,
    actor: &ActorRef,
    booking_id: Uuid,
) -> CoreResult<()> {
    let now = clock.now();
    let open = [
        InvoiceStatus::Unpaid.as_str(),
        InvoiceStatus::AwaitingVerification.as_str(),
        InvoiceStatus::Overdue.as_str(),
    ];
    let voided = invoices::Entity::update_many()
        .col_expr(
            invoices::Column::Status,
            Expr::value(InvoiceStatus::Void.as_str()),
        )
        .col_expr(invoices::Column::UpdatedAt, Expr::value(now))
        .filter(invoices::Column::BookingId.eq(booking_id))
        .filter(invoices::Column::Status.is_in(open))
        .exec_with_returning(conn)
        .await?;
    if voided.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = voided.iter().map(|i| i.id).collect();
    let rejected = payments::Entity::update_many()
        .col_expr(
            payments::Column::Status,
            Expr::value(PaymentProofStatus::Rejected.as_str()),
        )
        .col_expr(
            payments::Column::Reason,
            Expr::value(Some("the booking was cancelled".to_owned())),
        )
        .col_expr(payments::Column::VerifiedAt, Expr::value(Some(now)))
        .filter(payments::Column::InvoiceId.is_in(ids))
        .filter(payments::Column::Status.eq(PaymentProofStatus::AwaitingVerification.as_str()))
        .exec_with_returning(conn)
        .await?;
    let entries = voided
        .iter()
        .map(|i| invoice_audit("invoice.voided", None, i))
        .chain(
            rejected
                .iter()
                .map(|p| payment_audit("payment.rejected", None, p)),
        );
    audit::record_many(conn, clock, actor, entries.collect::<Vec<_>>()).await
}

impl Services {
    /// `POST /bookings/{id}/schedule` (ADMIN or the booking's marketing user): adds invoices to the
    /// booking's schedule, numbered from the year's counter in the same transaction.
    pub async fn schedule_invoices(
        &self,
        actor: &ActorRef,
        viewer: Viewer,
        booking_id: Uuid,
        input: ScheduleInput,
    ) -> CoreResult<Vec<InvoiceView>> {
        validate_schedule(&input, false)?;
        let txn = begin_write(&self.db).await?;
        let booking = bookings::Entity::find_by_id(booking_id)
            .filter(bookings::Column::DeletedAt.is_null())
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("booking"))?;
        require_owner(viewer, &booking)?;
        if booking.status == BookingStatus::Cancelled.as_str()
            || booking.status == BookingStatus::Completed.as_str()
        {
            return Err(CoreError::conflict(
                "invalid_transition",
                format!("a {} booking takes no new invoices", booking.status),
            ));
        }
        let has_fee = invoices::Entity::find()
            .filter(invoices::Column::BookingId.eq(booking_id))
            .filter(invoices::Column::Kind.eq(InvoiceKind::BookingFee.as_str()))
            .count(&txn)
            .await?
            > 0;
        validate_schedule(&input, has_fee)?;
        let now = self.clock.now();
        let year = invoice_year(now);
        let n = i64::try_from(input.items.len()).unwrap_or(i64::MAX);
        let last = take_invoice_numbers(&txn, year, n).await?;
        let mut rows = Vec::with_capacity(input.items.len());
        for (i, item) in input.items.iter().enumerate() {
            let number = last - n + 1 + i64::try_from(i).unwrap_or(0);
            rows.push(invoices::Model {
                id: Uuid::now_v7(),
                booking_id,
                invoice_number: invoice_number(year, number),
                year,
                kind: item.kind.as_str().to_owned(),
                amount: item.amount,
                paid_amount: 0,
                due_date: item.due_date,
                status: open_status(item.due_date, now).as_str().to_owned(),
                created_at: now,
                updated_at: now,
                paid_at: None,
            });
        }
        let inserted = invoices::Entity::insert_many(
            rows.iter()
                .cloned()
                .map(|r| invoices::ActiveModel::from(r).reset_all()),
        )
        .exec_without_returning(&txn)
        .await;
        match inserted {
            Ok(_) => {}
            // ux_invoices_booking_fee: a concurrent schedule added the booking fee first.
            Err(e) if CoreError::is_unique_violation(&e) => {
                return Err(booking_fee_exists());
            }
            Err(e) => return Err(e.into()),
        }
        audit::record_many(
            &txn,
            self.clock.as_ref(),
            actor,
            rows.iter()
                .map(|r| invoice_audit("invoice.created", None, r))
                .collect::<Vec<_>>(),
        )
        .await?;
        txn.commit().await?;
        Ok(rows.into_iter().map(InvoiceView::from).collect())
    }

    /// `GET /invoices` (list conventions; admins all, marketing their own bookings').
    pub async fn list_invoices(
        &self,
        viewer: Viewer,
        query: &str,
        booking_id: Option<Uuid>,
    ) -> CoreResult<Page<InvoiceView>> {
        let q = ListQuery::parse(query, &INVOICE_LIST)?;
        let mut select = scope_invoices(viewer, invoices::Entity::find());
        if let Some(b) = booking_id {
            self.visible_booking(&self.db, viewer, b).await?;
            select = select.filter(invoices::Column::BookingId.eq(b));
        }
        Ok(q.fetch(select, &self.db).await?.map(InvoiceView::from))
    }

    /// `GET /invoices/{id}`.
    pub async fn get_invoice(&self, viewer: Viewer, id: Uuid) -> CoreResult<InvoiceView> {
        scope_invoices(viewer, invoices::Entity::find_by_id(id))
            .one(&self.db)
            .await?
            .map(InvoiceView::from)
            .ok_or(CoreError::NotFound("invoice"))
    }

    /// One page of the invoice CSV export (keyset by id), with the list filters and the scope;
    /// each invoice comes with its booking code.
    pub async fn export_invoices_page(
        &self,
        viewer: Viewer,
        query: &ListQuery<invoices::Column>,
        after: Option<Uuid>,
        limit: u64,
    ) -> CoreResult<Vec<(invoices::Model, String)>> {
        let mut select = query.apply_filters(scope_invoices(viewer, invoices::Entity::find()));
        if let Some(a) = after {
            select = select.filter(invoices::Column::Id.gt(a));
        }
        let rows = select
            .order_by_asc(invoices::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let codes: HashMap<Uuid, String> = bookings::Entity::find()
            .filter(bookings::Column::Id.is_in(rows.iter().map(|i| i.booking_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|b| (b.id, b.booking_code))
            .collect();
        Ok(rows
            .into_iter()
            .map(|i| {
                let code = codes.get(&i.booking_id).cloned().unwrap_or_default();
                (i, code)
            })
            .collect())
    }

    /// `GET /payments` (list conventions; admins all, marketing their own bookings').
    pub async fn list_payments(
        &self,
        viewer: Viewer,
        query: &str,
    ) -> CoreResult<Page<PaymentView>> {
        let q = ListQuery::parse(query, &PAYMENT_LIST)?;
        let page = q
            .fetch(scope_payments(viewer, payments::Entity::find()), &self.db)
            .await?;
        let bookings: HashMap<Uuid, Uuid> = invoices::Entity::find()
            .filter(invoices::Column::Id.is_in(page.data.iter().map(|p| p.invoice_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|i| (i.id, i.booking_id))
            .collect();
        Ok(page.map(|p| {
            let b = bookings
                .get(&p.invoice_id)
                .copied()
                .unwrap_or_else(Uuid::nil);
            payment_view(p, b)
        }))
    }

    /// A payment the viewer may see, with its invoice, or 404.
    async fn visible_payment(
        &self,
        viewer: Viewer,
        id: Uuid,
    ) -> CoreResult<(payments::Model, invoices::Model)> {
        let p = scope_payments(viewer, payments::Entity::find_by_id(id))
            .one(&self.db)
            .await?
            .ok_or(CoreError::NotFound("payment"))?;
        let i = invoices::Entity::find_by_id(p.invoice_id)
            .one(&self.db)
            .await?
            .ok_or(CoreError::NotFound("payment"))?;
        Ok((p, i))
    }

    /// `GET /payments/{id}` (the rejection reason is visible to the marketing user here).
    pub async fn get_payment(&self, viewer: Viewer, id: Uuid) -> CoreResult<PaymentView> {
        let (p, i) = self.visible_payment(viewer, id).await?;
        Ok(payment_view(p, i.booking_id))
    }

    /// `GET /payments/{id}/proof`: the record and the stored bytes.
    pub async fn payment_proof(
        &self,
        viewer: Viewer,
        id: Uuid,
    ) -> CoreResult<(payments::Model, Vec<u8>)> {
        let (p, _) = self.visible_payment(viewer, id).await?;
        // The storage name is generated by us (uuid + extension): it cannot leave the directory.
        let path = self.storage_dir.join(PROOF_DIR).join(&p.proof_storage_name);
        let data = tokio::fs::read(&path)
            .await
            .map_err(|e| CoreError::Internal(format!("reading the proof of payment {id}: {e}")))?;
        Ok((p, data))
    }

    /// `POST /invoices/{id}/payments` (ADMIN or the booking's marketing user): checks the proof by
    /// content and size, stores it under a generated name, then records the payment and marks the
    /// invoice AWAITING_VERIFICATION in one transaction (removing the file if that fails). A lapsed
    /// hold is cancelled instead (409 `hold_expired`).
    pub async fn submit_payment(
        &self,
        actor: &ActorRef,
        viewer: Viewer,
        invoice_id: Uuid,
        input: NewPayment,
    ) -> CoreResult<PaymentView> {
        let invoice = invoices::Entity::find_by_id(invoice_id)
            .one(&self.db)
            .await?
            .ok_or(CoreError::NotFound("invoice"))?;
        let booking = bookings::Entity::find_by_id(invoice.booking_id)
            .filter(bookings::Column::DeletedAt.is_null())
            .one(&self.db)
            .await?
            .ok_or(CoreError::NotFound("invoice"))?;
        require_owner(viewer, &booking)?;
        let valid = validate_payment(&input)?;
        if input.data.len() > MAX_DOCUMENT_BYTES {
            return Err(file_too_large());
        }
        let (content_type, ext) =
            sniff(&input.data).ok_or_else(|| CoreError::UnsupportedMediaType {
                code: "unsupported_media_type",
                message: "payment proofs must be PDF, JPEG or PNG files".into(),
            })?;

        let id = Uuid::now_v7();
        let storage_name = format!("{}.{ext}", id.simple());
        let dir = self.storage_dir.join(PROOF_DIR);
        let path = dir.join(&storage_name);
        let io = |e: std::io::Error| CoreError::Internal(format!("storing a payment proof: {e}"));
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        tokio::fs::write(&path, &input.data).await.map_err(io)?;
        let draft = payments::Model {
            id,
            invoice_id,
            amount: valid.amount,
            method: valid.method.as_str().to_owned(),
            paid_at: valid.paid_at,
            proof_storage_name: storage_name,
            proof_content_type: content_type.to_owned(),
            proof_size_bytes: i64::try_from(input.data.len()).unwrap_or(i64::MAX),
            proof_sha256: crate::pii::hex(&Sha256::digest(&input.data)),
            status: PaymentProofStatus::AwaitingVerification.as_str().to_owned(),
            reason: None,
            created_by: viewer.user_id,
            verified_by: None,
            verified_at: None,
            created_at: self.clock.now(),
        };
        let result = self.record_payment(actor, draft).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&path).await;
        }
        result
    }

    /// The transaction of [`Services::submit_payment`].
    async fn record_payment(
        &self,
        actor: &ActorRef,
        draft: payments::Model,
    ) -> CoreResult<PaymentView> {
        let txn = begin_write(&self.db).await?;
        let invoice = invoices::Entity::find_by_id(draft.invoice_id)
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("invoice"))?;
        let booking = bookings::Entity::find_by_id(invoice.booking_id)
            .filter(bookings::Column::DeletedAt.is_null())
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("invoice"))?;
        if let Some(expired) = self.expire_if_due(&txn, &booking).await? {
            txn.commit().await?;
            self.publish_committed(&expired).await;
            return Err(hold_expired());
        }
        let now = self.clock.now();
        // The conditional update takes the invoice's row (PostgreSQL) before the sum below, so
        // concurrent submissions for one invoice are checked one after the other.
        let open = [
            InvoiceStatus::Unpaid.as_str(),
            InvoiceStatus::AwaitingVerification.as_str(),
            InvoiceStatus::Overdue.as_str(),
        ];
        let Some(updated) = invoices::Entity::update_many()
            .col_expr(
                invoices::Column::Status,
                Expr::value(InvoiceStatus::AwaitingVerification.as_str()),
            )
            .col_expr(invoices::Column::UpdatedAt, Expr::value(now))
            .filter(invoices::Column::Id.eq(invoice.id))
            .filter(invoices::Column::Status.is_in(open))
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next()
        else {
            let current = invoices::Entity::find_by_id(invoice.id)
                .one(&txn)
                .await?
                .map_or(invoice.status.clone(), |i| i.status);
            return Err(not_payable(&current));
        };
        let pending: i64 = payments::Entity::find()
            .filter(payments::Column::InvoiceId.eq(invoice.id))
            .filter(payments::Column::Status.eq(PaymentProofStatus::AwaitingVerification.as_str()))
            .all(&txn)
            .await?
            .iter()
            .map(|p| p.amount)
            .sum();
        let committed = updated.paid_amount.saturating_add(pending);
        // Issue #17 fixes this answer: overpayment is refused with 422 on `amount`.
        if committed.saturating_add(draft.amount) > updated.amount {
            return Err(CoreError::invalid_field(
                "amount",
                "overpayment",
                format!(
                    "the invoice is {} rupiah; {} are paid or awaiting verification, so at most {} more",
                    updated.amount,
                    committed,
                    Ord::max(updated.amount - committed, 0)
                ),
            ));
        }
        let payment = payments::ActiveModel::from(draft)
            .reset_all()
            .insert(&txn)
            .await?;
        let mut entries = vec![payment_audit("payment.submitted", None, &payment)];
        if updated.status != invoice.status {
            entries.push(invoice_audit(
                "invoice.status_changed",
                Some(&invoice),
                &updated,
            ));
        }
        audit::record_many(&txn, self.clock.as_ref(), actor, entries).await?;
        let feed = notify_payment(
            &txn,
            &booking,
            &updated,
            PaymentNews::Submitted(&payment),
            now,
        )
        .await?;
        txn.commit().await?;
        self.publish_feed(&feed).await;
        Ok(payment_view(payment, booking.id))
    }

    /// `PATCH /payments/{id}` (ADMIN): verifies or rejects a payment exactly once (a conditional
    /// update on AWAITING_VERIFICATION; losers get 409 `payment_already_decided`). Verification
    /// adds to the invoice's paid amount; a fully paid BOOKING_FEE activates the booking and a
    /// fully paid schedule completes it (the unit SOLD, one event), all in this transaction.
    pub async fn decide_payment(
        &self,
        actor: &ActorRef,
        admin: Viewer,
        id: Uuid,
        input: PaymentDecision,
    ) -> CoreResult<PaymentView> {
        let reason = validate_decision(&input)?;
        let txn = begin_write(&self.db).await?;
        let payment = payments::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("payment"))?;
        let invoice = invoices::Entity::find_by_id(payment.invoice_id)
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("payment"))?;
        let booking = bookings::Entity::find_by_id(invoice.booking_id)
            .filter(bookings::Column::DeletedAt.is_null())
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("payment"))?;
        // Checked first: when the sweeper won, it also rejected this payment, and the answer is
        // still `hold_expired`.
        if input.verified
            && let Some(expired) = self.expire_if_due(&txn, &booking).await?
        {
            txn.commit().await?;
            self.publish_committed(&expired).await;
            return Err(hold_expired());
        }
        if payment.status != PaymentProofStatus::AwaitingVerification.as_str() {
            return Err(already_decided());
        }
        let now = self.clock.now();
        let target = if input.verified {
            PaymentProofStatus::Verified
        } else {
            PaymentProofStatus::Rejected
        };
        // The one effect: of many concurrent decisions exactly one sees a row change.
        let Some(decided) = payments::Entity::update_many()
            .col_expr(payments::Column::Status, Expr::value(target.as_str()))
            .col_expr(payments::Column::Reason, Expr::value(reason.clone()))
            .col_expr(
                payments::Column::VerifiedBy,
                Expr::value(Some(admin.user_id)),
            )
            .col_expr(payments::Column::VerifiedAt, Expr::value(Some(now)))
            .filter(payments::Column::Id.eq(id))
            .filter(payments::Column::Status.eq(PaymentProofStatus::AwaitingVerification.as_str()))
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next()
        else {
            return Err(already_decided());
        };
        let mut entries = vec![payment_audit(
            if input.verified {
                "payment.verified"
            } else {
                "payment.rejected"
            },
            Some(&payment),
            &decided,
        )];

        let live = [
            InvoiceStatus::Unpaid.as_str(),
            InvoiceStatus::AwaitingVerification.as_str(),
            InvoiceStatus::Overdue.as_str(),
        ];
        let mut update = invoices::Entity::update_many()
            .col_expr(invoices::Column::UpdatedAt, Expr::value(now))
            .filter(invoices::Column::Id.eq(invoice.id))
            .filter(invoices::Column::Status.is_in(live));
        if input.verified {
            update = update
                .col_expr(
                    invoices::Column::PaidAmount,
                    Expr::col(invoices::Column::PaidAmount).add(decided.amount),
                )
                .filter(
                    Expr::col(invoices::Column::PaidAmount)
                        .add(decided.amount)
                        .lte(Expr::col(invoices::Column::Amount)),
                );
        }
        let Some(mut current) = update.exec_with_returning(&txn).await?.into_iter().next() else {
            // VOID (cancelled meanwhile), already PAID, or it would overpay: nothing changes.
            return Err(not_payable(&invoice.status));
        };
        // Its status follows from what is paid and what still awaits verification.
        let awaiting = payments::Entity::find()
            .filter(payments::Column::InvoiceId.eq(invoice.id))
            .filter(payments::Column::Status.eq(PaymentProofStatus::AwaitingVerification.as_str()))
            .count(&txn)
            .await?;
        let status = if current.paid_amount >= current.amount {
            InvoiceStatus::Paid
        } else if awaiting > 0 {
            InvoiceStatus::AwaitingVerification
        } else {
            open_status(current.due_date, now)
        };
        if status.as_str() != current.status || status == InvoiceStatus::Paid {
            let mut am = invoices::ActiveModel::from(current.clone());
            am.status = Set(status.as_str().to_owned());
            if status == InvoiceStatus::Paid {
                am.paid_at = Set(Some(now));
            }
            current = am.update(&txn).await?;
        }
        if current != invoice {
            entries.push(invoice_audit(
                if status == InvoiceStatus::Paid {
                    "invoice.paid"
                } else {
                    "invoice.status_changed"
                },
                Some(&invoice),
                &current,
            ));
        }
        audit::record_many(&txn, self.clock.as_ref(), actor, entries).await?;

        let news = if input.verified {
            PaymentNews::Verified(&decided)
        } else {
            PaymentNews::Rejected(&decided)
        };
        let mut committed = Committed {
            units: Vec::new(),
            feed: notify_payment(&txn, &booking, &current, news, now).await?,
        };
        if status == InvoiceStatus::Paid {
            committed.extend(
                self.follow_paid_invoice(&txn, actor, &booking, &current, &decided)
                    .await?,
            );
        }
        txn.commit().await?;
        self.publish_committed(&committed).await;
        Ok(payment_view(decided, booking.id))
    }

    /// The booking's lifecycle after one of its invoices was paid in full: the BOOKING_FEE (or,
    /// without one, the whole schedule) activates a PENDING_PAYMENT booking; every invoice paid
    /// completes an ACTIVE one, whose unit becomes SOLD through the unit-status path (one event).
    async fn follow_paid_invoice<C: ConnectionTrait>(
        &self,
        conn: &C,
        actor: &ActorRef,
        booking: &bookings::Model,
        invoice: &invoices::Model,
        payment: &payments::Model,
    ) -> CoreResult<Committed> {
        let unpaid = invoices::Entity::find()
            .filter(invoices::Column::BookingId.eq(booking.id))
            .filter(invoices::Column::Status.ne(InvoiceStatus::Paid.as_str()))
            .count(conn)
            .await?;
        let mut b = booking.clone();
        let mut committed = Committed::default();
        let is_fee = invoice.kind == InvoiceKind::BookingFee.as_str();
        if b.status == BookingStatus::PendingPayment.as_str() && (is_fee || unpaid == 0) {
            let changes = Changes {
                status: Some(BookingStatus::Active),
                payment_status: Some(PaymentStatus::Paid),
                payment_date: Some(payment.paid_at),
                payment_method: PaymentMethod::parse(&payment.method),
                notes: None,
                delete: false,
            };
            let (updated, units, feed) = self
                .change_booking(conn, actor, &b, changes, Cause::Payment)
                .await?
                // The sweeper cancelled it meanwhile: the whole verification rolls back.
                .ok_or_else(hold_expired)?;
            b = updated;
            committed.extend(Committed { units, feed });
        }
        if b.status == BookingStatus::Active.as_str() && unpaid == 0 {
            let changes = Changes {
                status: Some(BookingStatus::Completed),
                payment_status: Some(PaymentStatus::Paid),
                ..Changes::default()
            };
            let (_, units, feed) = self
                .change_booking(conn, actor, &b, changes, Cause::Payment)
                .await?
                .ok_or_else(|| {
                    CoreError::conflict(
                        "invalid_transition",
                        "the booking changed meanwhile; verify the payment again",
                    )
                })?;
            committed.extend(Committed { units, feed });
        }
        Ok(committed)
    }

    /// Marks UNPAID invoices whose due date (WIB) has passed as OVERDUE, one conditional UPDATE
    /// per batch (rows locked `FOR UPDATE SKIP LOCKED` on PostgreSQL, so instances share the work),
    /// with an audit row each. Returns how many changed.
    pub async fn mark_overdue(&self) -> CoreResult<usize> {
        let mut total = 0;
        loop {
            let txn = begin_write(&self.db).await?;
            let now = self.clock.now();
            let today = wib_today(now);
            let due: Vec<Uuid> = invoices::Entity::find()
                .filter(invoices::Column::Status.eq(InvoiceStatus::Unpaid.as_str()))
                .filter(invoices::Column::DueDate.lt(today))
                .order_by_asc(invoices::Column::Id)
                .limit(OVERDUE_BATCH)
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .all(&txn)
                .await?
                .into_iter()
                .map(|i| i.id)
                .collect();
            if due.is_empty() {
                return Ok(total);
            }
            let changed = invoices::Entity::update_many()
                .col_expr(
                    invoices::Column::Status,
                    Expr::value(InvoiceStatus::Overdue.as_str()),
                )
                .col_expr(invoices::Column::UpdatedAt, Expr::value(now))
                .filter(invoices::Column::Id.is_in(due.iter().copied()))
                .filter(invoices::Column::Status.eq(InvoiceStatus::Unpaid.as_str()))
                .filter(invoices::Column::DueDate.lt(today))
                .exec_with_returning(&txn)
                .await?;
            audit::record_many(
                &txn,
                self.clock.as_ref(),
                &ActorRef::system(),
                changed
                    .iter()
                    .map(|i| {
                        let mut entry = invoice_audit("invoice.overdue", None, i);
                        entry.old_values = Some(serde_json::json!({"status": "UNPAID"}));
                        entry
                    })
                    .collect::<Vec<_>>(),
            )
            .await?;
            // The booking's marketing user and buyer hear of each, in the same transaction.
            let booking_ids: Vec<Uuid> = changed.iter().map(|i| i.booking_id).collect();
            let owners: HashMap<Uuid, bookings::Model> = bookings::Entity::find()
                .filter(bookings::Column::Id.is_in(booking_ids))
                .all(&txn)
                .await?
                .into_iter()
                .map(|b| (b.id, b))
                .collect();
            let mut feed = Vec::new();
            for invoice in &changed {
                if let Some(b) = owners.get(&invoice.booking_id) {
                    feed.extend(notify_payment(&txn, b, invoice, PaymentNews::Overdue, now).await?);
                }
            }
            txn.commit().await?;
            self.publish_feed(&feed).await;
            total += changed.len();
            if (due.len() as u64) < OVERDUE_BATCH {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: InvoiceKind, amount: i64) -> ScheduleItem {
        ScheduleItem {
            kind,
            amount,
            due_date: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        }
    }

    #[test]
    fn numbers_and_years() {
        assert_eq!(invoice_number(2026, 1), "INV-2026-001");
        assert_eq!(invoice_number(2026, 1234), "INV-2026-1234");
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(invoice_year(utc("2026-12-31T17:00:00Z")), 2027);
        assert_eq!(invoice_year(utc("2026-12-31T16:59:59Z")), 2026);
        assert_eq!(
            wib_today(utc("2026-12-02T17:30:00Z")),
            NaiveDate::from_ymd_opt(2026, 12, 3).unwrap()
        );
    }

    #[test]
    fn overdue_starts_the_day_after_the_due_date_in_jakarta() {
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let due = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        // 3 Dec 23:59 WIB: still due today.
        assert_eq!(
            open_status(due, utc("2026-12-03T16:59:00Z")),
            InvoiceStatus::Unpaid
        );
        // 4 Dec 00:00 WIB: overdue.
        assert_eq!(
            open_status(due, utc("2026-12-03T17:00:00Z")),
            InvoiceStatus::Overdue
        );
    }

    #[test]
    fn schedules_are_bounded_and_have_one_booking_fee() {
        let ok = ScheduleInput {
            items: vec![
                item(InvoiceKind::BookingFee, 1),
                item(InvoiceKind::Kpr, MAX_INVOICE_AMOUNT),
            ],
        };
        assert!(validate_schedule(&ok, false).is_ok());
        assert!(matches!(
            validate_schedule(&ok, true),
            Err(CoreError::Conflict {
                code: "duplicate_booking_fee",
                ..
            })
        ));
        assert!(validate_schedule(&ScheduleInput { items: vec![] }, false).is_err());
        let many = ScheduleInput {
            items: (0..61).map(|_| item(InvoiceKind::Installment, 1)).collect(),
        };
        assert!(validate_schedule(&many, false).is_err());
        for bad in [0, -1, MAX_INVOICE_AMOUNT + 1, i64::MIN] {
            let s = ScheduleInput {
                items: vec![item(InvoiceKind::DownPayment, bad)],
            };
            match validate_schedule(&s, false) {
                Err(CoreError::Validation(e)) => assert_eq!(e[0].field, "items[0].amount"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let two_fees = ScheduleInput {
            items: vec![
                item(InvoiceKind::BookingFee, 1),
                item(InvoiceKind::BookingFee, 1),
            ],
        };
        match validate_schedule(&two_fees, false) {
            Err(CoreError::Validation(e)) => assert_eq!(e[0].field, "items[1].kind"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn payments_and_decisions_are_checked() {
        let p = |amount: &str, method: &str, at: &str, data: &[u8]| NewPayment {
            amount: amount.into(),
            method: method.into(),
            paid_at: at.into(),
            data: data.to_vec(),
        };
        let ok =
            validate_payment(&p("1000", "TRANSFER", "2026-12-03T10:00:00+07:00", b"x")).unwrap();
        assert_eq!(ok.amount, 1000);
        assert_eq!(ok.paid_at.to_rfc3339(), "2026-12-03T03:00:00+00:00");
        let fields = |r: CoreResult<ValidPayment>| match r {
            Err(CoreError::Validation(e)) => e.into_iter().map(|e| e.field).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            fields(validate_payment(&p("0", "BITCOIN", "yesterday", b""))),
            ["amount", "method", "paidAt", "file"]
        );
        assert_eq!(
            fields(validate_payment(&p(
                "1.5",
                "CASH",
                "2026-12-03T10:00:00Z",
                b"x"
            ))),
            ["amount"]
        );
        let d = |verified: bool, reason: Option<&str>| PaymentDecision {
            verified,
            reason: reason.map(str::to_owned),
        };
        assert_eq!(validate_decision(&d(true, None)).unwrap(), None);
        assert!(validate_decision(&d(false, None)).is_err());
        assert!(validate_decision(&d(false, Some("  "))).is_err());
        assert_eq!(
            validate_decision(&d(false, Some(" blurry ")))
                .unwrap()
                .as_deref(),
            Some("blurry")
        );
        assert!(validate_decision(&d(false, Some(&"x".repeat(501)))).is_err());
    }
}
