//! Bookings: claiming a unit for a customer with exactly one winner, the booking lifecycle, hold
//! expiry and the CSV export rows. A new booking claims its unit with `set_unit_status_returning`
//! and records its event in `insert_booking`; later changes go through `set_unit_status` and
//! `record_unit_change`. Each is in the booking's transaction and published after commit.
//!
//! This file holds the types, the list spec, the transition table and shared helpers; the
//! actions live beside it, one file each: `create` (making a booking), `change` (PATCH, cancel,
//! hold expiry), `read` (list, get, export pages) and `postgres_batch` (PostgreSQL's batch path).

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, Utc};
use kavling_realtime::{BookingInfo, FeedEvent, UnitEvent};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, ExprTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::clock::Clock;
use crate::db::begin_write;
use crate::domain::{BookingStatus, PaymentMethod, PaymentStatus, Role, UnitStatus};
use crate::entities::{audit_log, booking_counters, bookings, customers, projects, units, users};
use crate::error::{CoreError, CoreResult, FieldError};
use crate::list::{FieldKind, ListField, ListQuery, ListSpec, Page};
use crate::services::booking_notices::notify_booking;
use crate::services::customers::{CustomerView, NewCustomer};
use crate::services::notifications::Committed;
use crate::unit_changes::{
    UnitChange, append_unit_event, record_unit_change, set_unit_status, set_unit_status_returning,
};

/// Largest booking fee accepted (a sanity bound: one trillion rupiah).
pub const MAX_BOOKING_FEE: i64 = 1_000_000_000_000;
/// Expired holds cancelled per transaction by the expiry task.
pub const EXPIRY_BATCH: u64 = 200;

/// What either booking path returns: the row, its unit, its customer and the unit's event.
type Booked = (bookings::Model, BookingUnit, customers::Model, UnitEvent);

/// A booking changed by [`Services::change_booking`]: the row after, the unit events and the
/// notifications of the change, both to publish after commit.
pub(crate) type BookingChanged = (bookings::Model, Vec<UnitEvent>, Vec<FeedEvent>);

mod change;
mod create;
mod postgres_batch;
mod read;
pub use postgres_batch::BookingGate;

/// `POST /bookings` body.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewBooking {
    /// The unit to book.
    pub unit_id: Uuid,
    /// An existing customer…
    pub customer_id: Option<Uuid>,
    /// …or a customer given inline (created, or matched by NIK).
    pub customer: Option<NewCustomer>,
    /// Booking fee in rupiah.
    #[serde(deserialize_with = "crate::whole_numbers::i64_whole")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub booking_fee: i64,
    /// How it will be paid.
    pub payment_method: Option<PaymentMethod>,
    /// Free notes.
    #[schema(max_length = 2000)]
    pub notes: Option<String>,
}

/// `PATCH /bookings/{id}` body.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BookingPatch {
    /// New status (see [`booking_transition`]).
    pub status: Option<BookingStatus>,
    /// New payment status; `PAID` stamps `paymentDate`.
    pub payment_status: Option<PaymentStatus>,
    /// When it was paid (default: now, when `paymentStatus` becomes `PAID`).
    pub payment_date: Option<DateTime<Utc>>,
    /// Payment method.
    pub payment_method: Option<PaymentMethod>,
    /// Notes.
    #[schema(max_length = 2000)]
    pub notes: Option<String>,
}

/// The unit embedded in a booking.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookingUnit {
    /// Id.
    pub id: Uuid,
    /// Project id.
    pub project_id: Uuid,
    /// Block number.
    pub block_number: String,
    /// House type.
    #[serde(rename = "type")]
    pub unit_type: String,
    /// Price in rupiah.
    pub price: i64,
    /// Current status.
    #[schema(value_type = crate::domain::UnitStatus)]
    pub status: String,
}

impl From<units::Model> for BookingUnit {
    fn from(u: units::Model) -> Self {
        BookingUnit {
            id: u.id,
            project_id: u.project_id,
            block_number: u.block_number,
            unit_type: u.unit_type,
            price: u.price,
            status: u.status,
        }
    }
}

/// A booking as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookingView {
    /// Id.
    pub id: Uuid,
    /// `BK-2026-001`.
    pub booking_code: String,
    /// Project id.
    pub project_id: Uuid,
    /// Unit id.
    pub unit_id: Uuid,
    /// Customer id.
    pub customer_id: Uuid,
    /// The marketing user (or admin) who booked.
    pub marketing_id: Uuid,
    /// When it was booked.
    pub booking_date: DateTime<Utc>,
    /// Lifecycle status.
    #[schema(value_type = crate::domain::BookingStatus)]
    pub status: String,
    /// Payment status.
    #[schema(value_type = crate::domain::PaymentStatus)]
    pub payment_status: String,
    /// Payment method.
    #[schema(value_type = Option<crate::domain::PaymentMethod>)]
    pub payment_method: Option<String>,
    /// When it was paid.
    pub payment_date: Option<DateTime<Utc>>,
    /// Booking fee in rupiah.
    pub booking_fee: i64,
    /// Notes.
    pub notes: Option<String>,
    /// When an unpaid hold is cancelled automatically.
    pub expires_at: DateTime<Utc>,
    /// When it was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The unit.
    pub unit: Option<BookingUnit>,
    /// The customer.
    pub customer: Option<CustomerView>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// One row of `GET /bookings/export.csv`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingExportRow {
    /// Id (the keyset cursor of the export).
    pub id: Uuid,
    /// Code.
    pub booking_code: String,
    /// Booking date.
    pub booking_date: DateTime<Utc>,
    /// Status.
    pub status: String,
    /// Payment status.
    pub payment_status: String,
    /// Payment method.
    pub payment_method: Option<String>,
    /// Payment date.
    pub payment_date: Option<DateTime<Utc>>,
    /// Fee.
    pub booking_fee: i64,
    /// Hold expiry.
    pub expires_at: DateTime<Utc>,
    /// Unit block number.
    pub unit_block_number: String,
    /// Customer name.
    pub customer_name: String,
    /// Customer phone.
    pub customer_phone: String,
    /// Marketing user's name.
    pub marketing_name: String,
}

/// Who is looking at bookings: admins see all, marketing users only their own.
#[derive(Clone, Copy, Debug)]
pub struct Viewer {
    /// The user.
    pub user_id: Uuid,
    /// Their role.
    pub role: Role,
}

impl Viewer {
    /// The viewer for a (freshly read) user.
    pub fn of(user: &users::Model) -> Self {
        Viewer {
            user_id: user.id,
            role: Role::parse(&user.role).unwrap_or(Role::Buyer),
        }
    }

    /// Restricts a bookings select to what this viewer may see: never a deleted booking (the one
    /// filter behind the list, the export and every read by id), and for a marketing user only
    /// their own.
    fn scope(self, select: sea_orm::Select<bookings::Entity>) -> sea_orm::Select<bookings::Entity> {
        let select = select.filter(bookings::Column::DeletedAt.is_null());
        if self.role == Role::Admin {
            select
        } else {
            select.filter(bookings::Column::MarketingId.eq(self.user_id))
        }
    }
}

/// The whitelist of `GET /bookings` and the export.
pub const BOOKING_LIST: ListSpec<bookings::Column> = ListSpec {
    fields: &[
        ListField {
            name: "status",
            column: bookings::Column::Status,
            kind: FieldKind::Enum(BookingStatus::ALL),
        },
        ListField {
            name: "paymentStatus",
            column: bookings::Column::PaymentStatus,
            kind: FieldKind::Enum(PaymentStatus::ALL),
        },
        ListField {
            name: "paymentMethod",
            column: bookings::Column::PaymentMethod,
            kind: FieldKind::Enum(PaymentMethod::ALL),
        },
        ListField {
            name: "unitId",
            column: bookings::Column::UnitId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "projectId",
            column: bookings::Column::ProjectId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "customerId",
            column: bookings::Column::CustomerId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "marketingId",
            column: bookings::Column::MarketingId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "bookingCode",
            column: bookings::Column::BookingCode,
            kind: FieldKind::Text,
        },
        ListField {
            name: "bookingDate",
            column: bookings::Column::BookingDate,
            kind: FieldKind::Timestamp,
        },
        ListField {
            name: "bookingFee",
            column: bookings::Column::BookingFee,
            kind: FieldKind::Integer,
        },
        ListField {
            name: "expiresAt",
            column: bookings::Column::ExpiresAt,
            kind: FieldKind::Timestamp,
        },
        ListField {
            name: "createdAt",
            column: bookings::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(bookings::Column::BookingDate, true)],
    tiebreak: bookings::Column::Id,
};

/// The one place booking transitions are decided. Ok carries the unit's move (from, to), if
/// any; anything not listed (including a status to itself) is 409 `invalid_transition`.
pub fn booking_transition(
    from: BookingStatus,
    to: BookingStatus,
) -> CoreResult<Option<(UnitStatus, UnitStatus)>> {
    use BookingStatus as B;
    match (from, to) {
        // The unit is already BOOKED from the moment of booking: no change, no event.
        (B::PendingPayment, B::Active) => Ok(None),
        (B::PendingPayment | B::Active, B::Cancelled) => {
            Ok(Some((UnitStatus::Booked, UnitStatus::Available)))
        }
        (B::Active, B::Completed) => Ok(Some((UnitStatus::Booked, UnitStatus::Sold))),
        _ => Err(CoreError::conflict(
            "invalid_transition",
            format!("a {from} booking cannot become {to}"),
        )),
    }
}

/// The booking-number year: Indonesia's western time zone (WIB, UTC+7), where the sales happen.
fn booking_year(now: DateTime<Utc>) -> i32 {
    (now + Duration::hours(7)).year()
}

/// `BK-2026-001`: at least three digits.
pub fn booking_code(year: i32, n: i64) -> String {
    format!("BK-{year}-{n:03}")
}

fn parse_status(s: &str) -> CoreResult<BookingStatus> {
    BookingStatus::parse(s)
        .ok_or_else(|| CoreError::Internal(format!("unknown booking status {s}")))
}

fn check_notes(notes: &Option<String>, errors: &mut Vec<FieldError>) {
    if notes.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        errors.push(FieldError::new(
            "notes",
            "too_long",
            "at most 2000 characters",
        ));
    }
}

/// The fields a booking change writes besides its status.
#[derive(Clone, Debug, Default)]
pub(crate) struct Changes {
    pub(crate) status: Option<BookingStatus>,
    pub(crate) payment_status: Option<PaymentStatus>,
    pub(crate) payment_date: Option<DateTime<Utc>>,
    pub(crate) payment_method: Option<PaymentMethod>,
    pub(crate) notes: Option<String>,
    /// Soft-deletes the booking (`DELETE /bookings/{id}`): `deleted_at` is set in the same update.
    pub(crate) delete: bool,
}

/// Why a booking changed, for the audit trail.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cause {
    Patch,
    Expired,
    Payment,
}

/// 409 `hold_expired`: the unpaid hold ran out, so the booking is (now) cancelled.
pub fn hold_expired() -> CoreError {
    CoreError::conflict(
        "hold_expired",
        "the booking's hold expired before it was paid; the booking is cancelled and the unit is free again",
    )
}

/// Keeps invoices (or anything with a booking id column) of bookings that are not deleted: a
/// soft-deleted booking's invoices, payments and documents are no longer served either.
pub(crate) fn of_live_booking(
    booking_id: impl sea_orm::ColumnTrait,
) -> sea_orm::sea_query::SimpleExpr {
    booking_id.not_in_subquery(
        sea_orm::sea_query::Query::select()
            .column(bookings::Column::Id)
            .from(bookings::Entity)
            .and_where(bookings::Column::DeletedAt.is_not_null())
            .to_owned(),
    )
}

/// True when a booking is an unpaid hold whose `expiresAt` has passed at `now`.
pub fn is_expired_hold(b: &bookings::Model, now: DateTime<Utc>) -> bool {
    b.status == BookingStatus::PendingPayment.as_str() && b.expires_at < now
}

/// True for the partial unique index that allows one live booking per unit (PostgreSQL names
/// the index; SQLite names the column).
fn is_live_booking_violation(err: &sea_orm::DbErr) -> bool {
    match err.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(msg)) => {
            msg.contains("ux_bookings_live_unit") || msg.contains("bookings.unit_id")
        }
        _ => false,
    }
}

/// Numbers and inserts a claimed booking (`draft`'s code and hold are filled in here) and records
/// its unit event, as the last step of the booking's transaction (SQLite; PostgreSQL books in one
/// statement). Returns the row and the event.
async fn insert_booking<C: ConnectionTrait>(
    conn: &C,
    clock: &dyn Clock,
    actor: &ActorRef,
    mut draft: bookings::Model,
    mut change: UnitChange,
) -> CoreResult<(bookings::Model, UnitEvent)> {
    let year = booking_year(draft.booking_date);
    let number = next_booking_number(conn, year).await?;
    draft.booking_code = booking_code(year, number);
    let project = projects::Entity::find_by_id(draft.project_id)
        .one(conn)
        .await?
        .ok_or(CoreError::NotFound("project"))?;
    draft.expires_at =
        draft.booking_date + Duration::minutes(i64::from(Ord::max(project.hold_minutes, 1)));
    let booking = bookings::ActiveModel::from(draft)
        .reset_all()
        .insert(conn)
        .await?;
    if let Some(info) = change.booking.as_mut() {
        info.booking_code = booking.booking_code.clone();
    }
    let event = append_unit_event(conn, clock.now(), actor, change).await?;
    Ok((booking, event))
}

/// Takes the year's next booking number; it rolls back with the caller's transaction, so numbers
/// are gap-free.
async fn next_booking_number<C: ConnectionTrait>(conn: &C, year: i32) -> CoreResult<i64> {
    let row = booking_counters::Entity::insert(booking_counters::ActiveModel {
        year: Set(year),
        last_value: Set(1),
    })
    .on_conflict(
        OnConflict::column(booking_counters::Column::Year)
            .value(
                booking_counters::Column::LastValue,
                Expr::col((
                    booking_counters::Entity,
                    booking_counters::Column::LastValue,
                ))
                .add(1),
            )
            .to_owned(),
    )
    .exec_with_returning(conn)
    .await?;
    Ok(row.last_value)
}

/// True when a booking's customer does not exist (its foreign key).
fn is_missing_customer(err: &sea_orm::DbErr) -> bool {
    matches!(err.sql_err(),
        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(msg)) if msg.contains("customer_id"))
}

/// An unknown `customerId` is a missing resource (404), like an unknown `unitId`: the body is
/// well formed, the customer it names does not exist.
fn unknown_customer() -> CoreError {
    CoreError::NotFound("customer")
}

/// The `booking.created` audit record. PostgreSQL adds `customerId` inside its statement, where
/// the customer matched by NIK is known.
fn booking_created_audit(b: &bookings::Model, customer_id: Option<Uuid>) -> AuditEntry<'static> {
    let mut values = serde_json::json!({
        "unitId": b.unit_id, "bookingFee": b.booking_fee, "status": b.status,
    });
    if let (Some(id), Some(map)) = (customer_id, values.as_object_mut()) {
        map.insert("customerId".into(), serde_json::json!(id));
    }
    AuditEntry {
        action: "booking.created",
        entity_type: "booking",
        entity_id: b.id,
        old_values: None,
        new_values: Some(values),
    }
}

fn unit_not_available() -> CoreError {
    CoreError::conflict("unit_not_available", "the unit is not AVAILABLE")
}

fn audit_values(b: &bookings::Model) -> serde_json::Value {
    serde_json::json!({
        "status": b.status, "paymentStatus": b.payment_status, "paymentMethod": b.payment_method,
        "paymentDate": b.payment_date, "notes": b.notes,
    })
}

fn booking_view(
    b: bookings::Model,
    unit: Option<BookingUnit>,
    customer: Option<CustomerView>,
) -> BookingView {
    BookingView {
        id: b.id,
        booking_code: b.booking_code,
        project_id: b.project_id,
        unit_id: b.unit_id,
        customer_id: b.customer_id,
        marketing_id: b.marketing_id,
        booking_date: b.booking_date,
        status: b.status,
        payment_status: b.payment_status,
        payment_method: b.payment_method,
        payment_date: b.payment_date,
        booking_fee: b.booking_fee,
        notes: b.notes,
        expires_at: b.expires_at,
        cancelled_at: b.cancelled_at,
        unit,
        customer,
        created_at: b.created_at,
        updated_at: b.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_allowed_and_refused() {
        use BookingStatus as B;
        let all = [B::PendingPayment, B::Active, B::Completed, B::Cancelled];
        let allowed = [
            (B::PendingPayment, B::Active, None),
            (
                B::PendingPayment,
                B::Cancelled,
                Some((UnitStatus::Booked, UnitStatus::Available)),
            ),
            (
                B::Active,
                B::Completed,
                Some((UnitStatus::Booked, UnitStatus::Sold)),
            ),
            (
                B::Active,
                B::Cancelled,
                Some((UnitStatus::Booked, UnitStatus::Available)),
            ),
        ];
        for from in all {
            for to in all {
                let want = allowed
                    .iter()
                    .find(|(f, t, _)| *f == from && *t == to)
                    .map(|(_, _, m)| *m);
                match (booking_transition(from, to), want) {
                    (Ok(m), Some(w)) => assert_eq!(m, w, "{from}->{to}"),
                    (Err(CoreError::Conflict { code, .. }), None) => {
                        assert_eq!(code, "invalid_transition", "{from}->{to}")
                    }
                    (got, want) => panic!("{from}->{to}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn codes_and_years() {
        assert_eq!(booking_code(2026, 1), "BK-2026-001");
        assert_eq!(booking_code(2026, 50), "BK-2026-050");
        assert_eq!(booking_code(2026, 1234), "BK-2026-1234");
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // 31 Dec 2026 18:00 UTC is already 1 Jan 2027 in Jakarta.
        assert_eq!(booking_year(utc("2026-12-31T18:00:00Z")), 2027);
        assert_eq!(booking_year(utc("2026-12-31T16:59:59Z")), 2026);
    }
}
