//! Bookings: claiming a unit for a customer with exactly one winner, the booking lifecycle, hold
//! expiry and the CSV export rows. A new booking claims its unit with `set_unit_status_returning`
//! and records its event in `insert_booking`; later changes go through `set_unit_status` and
//! `record_unit_change`. Each is in the booking's transaction and published after commit.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, Utc};
use kavling_realtime::{BookingInfo, UnitEvent};
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
use crate::services::customers::{CustomerView, NewCustomer};
use crate::unit_changes::{
    UnitChange, append_unit_event, record_unit_change, set_unit_status, set_unit_status_returning,
};

/// Largest booking fee accepted (a sanity bound: one trillion rupiah).
pub const MAX_BOOKING_FEE: i64 = 1_000_000_000_000;
/// Expired holds cancelled per transaction by the expiry task.
pub const EXPIRY_BATCH: u64 = 200;

/// What either booking path returns: the row, its unit, its customer and the unit's event.
type Booked = (bookings::Model, BookingUnit, customers::Model, UnitEvent);

mod postgres_batch;
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

    /// Restricts a bookings select to what this viewer may see.
    fn scope(self, select: sea_orm::Select<bookings::Entity>) -> sea_orm::Select<bookings::Entity> {
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

/// True when a booking is an unpaid hold whose `expiresAt` has passed at `now`.
pub fn is_expired_hold(b: &bookings::Model, now: DateTime<Utc>) -> bool {
    b.status == BookingStatus::PendingPayment.as_str() && b.expires_at < now
}

impl Services {
    /// `POST /bookings` (ADMIN or verified MARKETING; the caller checks): one transaction claims
    /// the unit, creates or matches the customer, takes the year's next number and inserts the booking.
    pub async fn create_booking(
        &self,
        actor: &ActorRef,
        user: &users::Model,
        input: NewBooking,
    ) -> CoreResult<BookingView> {
        let viewer = Viewer::of(user);
        let mut errors = Vec::new();
        if !(0..=MAX_BOOKING_FEE).contains(&input.booking_fee) {
            errors.push(FieldError::new(
                "bookingFee",
                "out_of_range",
                "a whole number of rupiah, 0 to 1,000,000,000,000",
            ));
        }
        check_notes(&input.notes, &mut errors);
        let inline = match (&input.customer_id, &input.customer) {
            (Some(_), None) => None,
            (None, Some(c)) => match self.validate_customer(c, "customer.") {
                Ok(v) => Some(v),
                Err(CoreError::Validation(e)) => {
                    errors.extend(e);
                    None
                }
                Err(e) => return Err(e),
            },
            _ => {
                errors.push(FieldError::new(
                    "customerId",
                    "required",
                    "give exactly one of customerId or customer",
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }

        let now = self.clock.now();
        let id = Uuid::now_v7();
        let inline = inline.map(|valid| self.new_customer_row(actor, valid));
        let draft = bookings::Model {
            id,
            // Set by the statement that takes the year's number.
            booking_code: String::new(),
            // Set from the claimed unit.
            project_id: Uuid::nil(),
            unit_id: input.unit_id,
            customer_id: match (&inline, input.customer_id) {
                (Some(c), _) => c.id,
                (None, Some(id)) => id,
                (None, None) => return Err(CoreError::Internal("no customer".into())),
            },
            marketing_id: user.id,
            booking_date: now,
            status: BookingStatus::PendingPayment.as_str().to_owned(),
            payment_status: PaymentStatus::Pending.as_str().to_owned(),
            payment_method: input.payment_method.map(|m| m.as_str().to_owned()),
            payment_date: None,
            booking_fee: input.booking_fee,
            notes: input.notes,
            // Set from the project's hold.
            expires_at: now,
            cancelled_at: None,
            created_at: now,
            updated_at: now,
        };
        let change = UnitChange {
            // Project and block number are filled in from the claimed unit.
            project_id: Uuid::nil(),
            unit_id: input.unit_id,
            block_number: String::new(),
            from: UnitStatus::Available,
            to: UnitStatus::Booked,
            // The code is filled in once the counter is taken.
            booking: Some(BookingInfo {
                booking_id: id,
                booking_code: String::new(),
                marketing_name: user.full_name.clone(),
            }),
        };
        // Each path publishes the booking's event once it is committed.
        let (booking, unit, customer, _event) =
            if self.db.get_database_backend() == DbBackend::Postgres {
                self.book_in_batch(actor, draft, inline, change).await?
            } else {
                self.book_in_transaction(actor, draft, inline, change)
                    .await?
            };
        let customer = self.customer_view(customer, viewer.role)?;
        Ok(booking_view(booking, Some(unit), Some(customer)))
    }

    /// PostgreSQL: the booking is made in a batch statement (see [`pg`]) through the booking gate,
    /// which also publishes its event.
    async fn book_in_batch(
        &self,
        actor: &ActorRef,
        draft: bookings::Model,
        inline: Option<customers::Model>,
        change: UnitChange,
    ) -> CoreResult<Booked> {
        let unit_id = draft.unit_id;
        let item = postgres_batch::BatchItem {
            booking_audit: booking_created_audit(&draft, None),
            year: booking_year(draft.booking_date),
            draft,
            event_id: Uuid::now_v7(),
            actor_id: actor.user_id,
            request_id: actor.request_id.clone(),
            unit_audit: change.audit_entry(),
            change,
            inline_customer: inline.map(|c| {
                let audit = Self::customer_created_audit(&c);
                (c, audit)
            }),
        };
        match self.booking_gate.book(self, item).await {
            Ok(Some(booked)) => Ok(booked),
            Ok(None) => Err(self.why_not_claimed(unit_id).await),
            Err(CoreError::Db(ref db)) if is_live_booking_violation(db) => {
                // ux_bookings_live_unit: a second line of defence behind the conditional claim.
                Err(unit_not_available())
            }
            Err(CoreError::Db(ref db)) if is_missing_customer(db) => Err(unknown_customer()),
            Err(e) => Err(e),
        }
    }

    /// Completes a booking the batch statement made: its row, unit, customer and event.
    async fn finish_batched(
        &self,
        item: postgres_batch::BatchItem,
        row: postgres_batch::BookedRow,
    ) -> CoreResult<Booked> {
        let postgres_batch::BatchItem {
            mut draft,
            mut change,
            year,
            ..
        } = item;
        if row.booking_code != booking_code(year, row.number) {
            return Err(CoreError::Internal(format!(
                "booking code {} does not match number {}",
                row.booking_code, row.number
            )));
        }
        draft.project_id = row.project_id;
        draft.booking_code = row.booking_code;
        draft.expires_at = row.expires_at;
        let customer = match row.customer {
            Some(c) => c,
            None => customers::Entity::find_by_id(draft.customer_id)
                .one(&self.db)
                .await?
                .ok_or(CoreError::Internal("booked customer vanished".into()))?,
        };
        draft.customer_id = customer.id;
        change.project_id = row.project_id;
        change.block_number = row.block_number.clone();
        if let Some(info) = change.booking.as_mut() {
            info.booking_code = draft.booking_code.clone();
        }
        let event = change.into_event(row.seq, draft.booking_date, row.palette.as_ref());
        let unit = BookingUnit {
            id: draft.unit_id,
            project_id: row.project_id,
            block_number: row.block_number,
            unit_type: row.unit_type,
            price: row.price,
            status: UnitStatus::Booked.as_str().to_owned(),
        };
        Ok((draft, unit, customer, event))
    }

    /// The single-writer path (SQLite): one transaction of separate statements, in the same
    /// order as the PostgreSQL statement takes its locks; publishes the event after commit.
    async fn book_in_transaction(
        &self,
        actor: &ActorRef,
        mut draft: bookings::Model,
        inline: Option<customers::Model>,
        mut change: UnitChange,
    ) -> CoreResult<Booked> {
        let txn = begin_write(&self.db).await?;
        // The claim: of many concurrent bookings exactly one sees a row change.
        let claimed = set_unit_status_returning(
            &txn,
            draft.booking_date,
            draft.unit_id,
            change.from,
            change.to,
        )
        .await?;
        let Some(unit) = claimed else {
            drop(txn);
            return Err(self.why_not_claimed(draft.unit_id).await);
        };
        let (customer, customer_created) = match inline {
            None => (
                customers::Entity::find_by_id(draft.customer_id)
                    .one(&txn)
                    .await?
                    .ok_or_else(unknown_customer)?,
                false,
            ),
            Some(row) => self.insert_customer_row(&txn, row, true).await?,
        };
        draft.customer_id = customer.id;
        draft.project_id = unit.project_id;
        change.project_id = unit.project_id;
        change.block_number = unit.block_number.clone();
        let customer_audit = customer_created.then(|| Self::customer_created_audit(&customer));
        audit::record_many(
            &txn,
            self.clock.as_ref(),
            actor,
            customer_audit.into_iter().chain([
                booking_created_audit(&draft, Some(customer.id)),
                change.audit_entry(),
            ]),
        )
        .await?;
        let (booking, event) = insert_booking(&txn, self.clock.as_ref(), actor, draft, change)
            .await
            .map_err(|e| match e {
                // The unique live-booking index: a second line of defence behind the claim.
                CoreError::Db(ref db) if is_live_booking_violation(db) => unit_not_available(),
                e => e,
            })?;
        txn.commit().await?;
        self.publish(std::slice::from_ref(&event)).await;
        let mut unit = BookingUnit::from(unit);
        unit.status = UnitStatus::Booked.as_str().to_owned();
        Ok((booking, unit, customer, event))
    }

    /// Why a claim changed no row: the unit is missing (404) or not AVAILABLE (409).
    async fn why_not_claimed(&self, unit_id: Uuid) -> CoreError {
        match units::Entity::find_by_id(unit_id).one(&self.db).await {
            Ok(Some(_)) => unit_not_available(),
            Ok(None) => CoreError::NotFound("unit"),
            Err(e) => e.into(),
        }
    }

    /// `GET /bookings`: admins see every booking, marketing users their own.
    pub async fn list_bookings(
        &self,
        viewer: Viewer,
        query: &str,
    ) -> CoreResult<Page<BookingView>> {
        let q = ListQuery::parse(query, &BOOKING_LIST)?;
        let page = q
            .fetch(viewer.scope(bookings::Entity::find()), &self.db)
            .await?;
        let views = self.embed(viewer, page.data).await?;
        Ok(Page {
            data: views,
            meta: page.meta,
        })
    }

    /// `GET /bookings/{id}` (404 for a marketing user's colleague's booking).
    pub async fn get_booking(&self, viewer: Viewer, id: Uuid) -> CoreResult<BookingView> {
        let b = self.visible_booking(&self.db, viewer, id).await?;
        self.embed(viewer, vec![b])
            .await?
            .pop()
            .ok_or(CoreError::NotFound("booking"))
    }

    /// A booking the viewer may see, or 404.
    pub async fn visible_booking<C: ConnectionTrait>(
        &self,
        conn: &C,
        viewer: Viewer,
        id: Uuid,
    ) -> CoreResult<bookings::Model> {
        viewer
            .scope(bookings::Entity::find_by_id(id))
            .one(conn)
            .await?
            .ok_or(CoreError::NotFound("booking"))
    }

    /// Adds the unit and customer objects to bookings (two queries, whatever the count).
    async fn embed(
        &self,
        viewer: Viewer,
        rows: Vec<bookings::Model>,
    ) -> CoreResult<Vec<BookingView>> {
        let unit_ids: Vec<Uuid> = rows.iter().map(|b| b.unit_id).collect();
        let customer_ids: Vec<Uuid> = rows.iter().map(|b| b.customer_id).collect();
        let units: HashMap<Uuid, units::Model> = units::Entity::find()
            .filter(units::Column::Id.is_in(unit_ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        let customers: HashMap<Uuid, customers::Model> = customers::Entity::find()
            .filter(customers::Column::Id.is_in(customer_ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        rows.into_iter()
            .map(|b| {
                let unit = units.get(&b.unit_id).cloned().map(BookingUnit::from);
                let customer = match customers.get(&b.customer_id).cloned() {
                    Some(c) => Some(self.customer_view(c, viewer.role)?),
                    None => None,
                };
                Ok(booking_view(b, unit, customer))
            })
            .collect()
    }

    /// `PATCH /bookings/{id}` (ADMIN, or the verified MARKETING user who booked it).
    pub async fn patch_booking(
        &self,
        actor: &ActorRef,
        viewer: Viewer,
        id: Uuid,
        patch: BookingPatch,
    ) -> CoreResult<BookingView> {
        let mut errors = Vec::new();
        check_notes(&patch.notes, &mut errors);
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }
        let txn = begin_write(&self.db).await?;
        let b = self.visible_booking(&txn, viewer, id).await?;
        // Hold expiry is exact: paying or activating a lapsed hold cancels it instead, whether or
        // not the sweeper got there first (then this changes nothing and still answers 409).
        let pays = patch.status == Some(BookingStatus::Active)
            || patch.payment_status == Some(PaymentStatus::Paid);
        if pays && let Some(events) = self.expire_if_due(&txn, &b).await? {
            txn.commit().await?;
            self.publish(&events).await;
            return Err(hold_expired());
        }
        let changes = Changes {
            status: patch.status,
            payment_status: patch.payment_status,
            payment_date: patch.payment_date,
            payment_method: patch.payment_method,
            notes: patch.notes,
        };
        let (updated, events) = self
            .change_booking(&txn, actor, &b, changes, Cause::Patch)
            .await?
            .ok_or_else(|| {
                CoreError::conflict(
                    "invalid_transition",
                    "the booking changed meanwhile (it may have expired); reload it",
                )
            })?;
        txn.commit().await?;
        self.publish(&events).await;
        self.embed(viewer, vec![updated])
            .await?
            .pop()
            .ok_or(CoreError::NotFound("booking"))
    }

    /// `DELETE /bookings/{id}`: cancels (the row stays, as `CANCELLED`).
    pub async fn cancel_booking(
        &self,
        actor: &ActorRef,
        viewer: Viewer,
        id: Uuid,
    ) -> CoreResult<BookingView> {
        self.patch_booking(
            actor,
            viewer,
            id,
            BookingPatch {
                status: Some(BookingStatus::Cancelled),
                ..BookingPatch::default()
            },
        )
        .await
    }

    /// Applies a change to a booking as a conditional update on its current status (and, for
    /// expiry, on `expires_at` having passed); the unit follows. None when the booking changed
    /// meanwhile, so the caller's transaction must not commit a half-done change (nothing was written).
    pub(crate) async fn change_booking<C: ConnectionTrait>(
        &self,
        conn: &C,
        actor: &ActorRef,
        b: &bookings::Model,
        changes: Changes,
        cause: Cause,
    ) -> CoreResult<Option<(bookings::Model, Vec<UnitEvent>)>> {
        let current = parse_status(&b.status)?;
        let unit_move = match changes.status {
            Some(to) => booking_transition(current, to)?,
            None => None,
        };
        let now = self.clock.now();
        let mut update = bookings::Entity::update_many()
            .col_expr(bookings::Column::UpdatedAt, Expr::value(now))
            .filter(bookings::Column::Id.eq(b.id))
            .filter(bookings::Column::Status.eq(current.as_str()));
        if let Cause::Expired = cause {
            update = update.filter(bookings::Column::ExpiresAt.lt(now));
        }
        if let Some(to) = changes.status {
            update = update.col_expr(bookings::Column::Status, Expr::value(to.as_str()));
            if to == BookingStatus::Cancelled {
                update = update.col_expr(bookings::Column::CancelledAt, Expr::value(now));
            }
        }
        if let Some(ps) = changes.payment_status {
            update = update.col_expr(bookings::Column::PaymentStatus, Expr::value(ps.as_str()));
        }
        let paid_at = match (changes.payment_status, changes.payment_date) {
            (_, Some(d)) => Some(crate::clock::to_micros(d)),
            (Some(PaymentStatus::Paid), None) => Some(now),
            _ => None,
        };
        if let Some(d) = paid_at {
            update = update.col_expr(bookings::Column::PaymentDate, Expr::value(d));
        }
        if let Some(m) = changes.payment_method {
            update = update.col_expr(bookings::Column::PaymentMethod, Expr::value(m.as_str()));
        }
        if let Some(n) = &changes.notes {
            update = update.col_expr(bookings::Column::Notes, Expr::value(n.clone()));
        }
        let Some(updated) = update.exec_with_returning(conn).await?.into_iter().next() else {
            return Ok(None);
        };

        if changes.status == Some(BookingStatus::Cancelled) {
            // A cancelled booking owes nothing more: its open invoices are voided with it.
            crate::services::payments::void_open_invoices(conn, self.clock.as_ref(), actor, b.id)
                .await?;
        }
        let action = match (cause, changes.status) {
            (Cause::Expired, _) => "booking.expired",
            (Cause::Payment, Some(BookingStatus::Active)) => "booking.paid",
            (Cause::Payment, Some(BookingStatus::Completed)) => "booking.completed",
            (_, Some(BookingStatus::Cancelled)) => "booking.cancelled",
            (_, Some(_)) => "booking.status_changed",
            (_, None) => "booking.updated",
        };
        audit::record(
            conn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action,
                entity_type: "booking",
                entity_id: b.id,
                old_values: Some(audit_values(b)),
                new_values: Some(audit_values(&updated)),
            },
        )
        .await?;

        let mut events = Vec::new();
        if let Some((from, to)) = unit_move {
            if set_unit_status(conn, now, b.unit_id, from, to).await? {
                let unit = units::Entity::find_by_id(b.unit_id)
                    .one(conn)
                    .await?
                    .ok_or(CoreError::NotFound("unit"))?;
                let marketing_name = users::Entity::find_by_id(b.marketing_id)
                    .one(conn)
                    .await?
                    .map(|u| u.full_name)
                    .unwrap_or_default();
                events.push(
                    record_unit_change(
                        conn,
                        self.clock.as_ref(),
                        actor,
                        UnitChange {
                            project_id: unit.project_id,
                            unit_id: unit.id,
                            block_number: unit.block_number,
                            from,
                            to,
                            booking: Some(BookingInfo {
                                booking_id: b.id,
                                booking_code: b.booking_code.clone(),
                                marketing_name,
                            }),
                        },
                    )
                    .await?,
                );
            } else if to == UnitStatus::Sold {
                // Completing a sale must move the unit; anything else is a conflict to resolve by hand.
                return Err(CoreError::conflict(
                    "status_conflict",
                    "the unit is not BOOKED, so the sale cannot complete",
                ));
            } else {
                // A cancellation always succeeds; a unit moved by hand keeps its status.
                tracing::warn!(booking = %b.id, unit = %b.unit_id,
                    "cancelled a booking whose unit was not BOOKED; the unit keeps its status");
            }
        }
        Ok(Some((updated, events)))
    }

    /// Cancels `b` when it is a lapsed hold (conditionally, like the sweeper): None when it is not
    /// one; Some(events) when it is, with no events if someone else (the sweeper) cancelled it
    /// first, which its `booking.expired` audit row tells even after the fact.
    pub(crate) async fn expire_if_due<C: ConnectionTrait>(
        &self,
        conn: &C,
        b: &bookings::Model,
    ) -> CoreResult<Option<Vec<UnitEvent>>> {
        if b.status == BookingStatus::Cancelled.as_str() {
            let expired = audit_log::Entity::find()
                .filter(audit_log::Column::EntityType.eq("booking"))
                .filter(audit_log::Column::EntityId.eq(b.id))
                .filter(audit_log::Column::Action.eq("booking.expired"))
                .count(conn)
                .await?;
            return Ok((expired > 0).then(Vec::new));
        }
        if !is_expired_hold(b, self.clock.now()) {
            return Ok(None);
        }
        let changes = Changes {
            status: Some(BookingStatus::Cancelled),
            ..Changes::default()
        };
        let done = self
            .change_booking(conn, &ActorRef::system(), b, changes, Cause::Expired)
            .await?;
        Ok(Some(done.map(|(_, events)| events).unwrap_or_default()))
    }

    /// Cancels `PENDING_PAYMENT` bookings past `expiresAt` and frees their units, in batches.
    /// On PostgreSQL the due rows are locked `FOR UPDATE SKIP LOCKED`, so several instances (or a
    /// request cancelling a lapsed hold itself) never block or double-cancel; each cancellation is
    /// still a conditional update. Returns how many were cancelled.
    pub async fn expire_holds(&self) -> CoreResult<usize> {
        let mut total = 0;
        loop {
            let txn = begin_write(&self.db).await?;
            let now = self.clock.now();
            let mut due = bookings::Entity::find()
                .filter(bookings::Column::Status.eq(BookingStatus::PendingPayment.as_str()))
                .filter(bookings::Column::ExpiresAt.lt(now))
                .order_by_asc(bookings::Column::ExpiresAt)
                .limit(EXPIRY_BATCH)
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .all(&txn)
                .await?;
            // Projects' seq rows are then locked in one global order: two sweepers cannot deadlock.
            due.sort_by_key(|b| b.project_id);
            let mut events = Vec::new();
            for b in &due {
                let changes = Changes {
                    status: Some(BookingStatus::Cancelled),
                    ..Changes::default()
                };
                if let Some((_, ev)) = self
                    .change_booking(&txn, &ActorRef::system(), b, changes, Cause::Expired)
                    .await?
                {
                    total += 1;
                    events.extend(ev);
                }
            }
            txn.commit().await?;
            self.publish(&events).await;
            if (due.len() as u64) < EXPIRY_BATCH {
                return Ok(total);
            }
        }
    }

    /// One page of the CSV export: bookings after `after` (by id, which is time-ordered), with
    /// the list filters and the viewer's scope.
    pub async fn export_bookings_page(
        &self,
        viewer: Viewer,
        query: &ListQuery<bookings::Column>,
        after: Option<Uuid>,
        limit: u64,
    ) -> CoreResult<Vec<BookingExportRow>> {
        let mut select = query.apply_filters(viewer.scope(bookings::Entity::find()));
        if let Some(a) = after {
            select = select.filter(bookings::Column::Id.gt(a));
        }
        let rows = select
            .order_by_asc(bookings::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let ids = |f: fn(&bookings::Model) -> Uuid| rows.iter().map(f).collect::<Vec<_>>();
        let units: HashMap<Uuid, String> = units::Entity::find()
            .filter(units::Column::Id.is_in(ids(|b| b.unit_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.block_number))
            .collect();
        let customers: HashMap<Uuid, (String, String)> = customers::Entity::find()
            .filter(customers::Column::Id.is_in(ids(|b| b.customer_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.id, (c.name, c.phone)))
            .collect();
        let marketing: HashMap<Uuid, String> = users::Entity::find()
            .filter(users::Column::Id.is_in(ids(|b| b.marketing_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.full_name))
            .collect();
        Ok(rows
            .into_iter()
            .map(|b| {
                let (customer_name, customer_phone) =
                    customers.get(&b.customer_id).cloned().unwrap_or_default();
                BookingExportRow {
                    unit_block_number: units.get(&b.unit_id).cloned().unwrap_or_default(),
                    marketing_name: marketing.get(&b.marketing_id).cloned().unwrap_or_default(),
                    customer_name,
                    customer_phone,
                    id: b.id,
                    booking_code: b.booking_code,
                    booking_date: b.booking_date,
                    status: b.status,
                    payment_status: b.payment_status,
                    payment_method: b.payment_method,
                    payment_date: b.payment_date,
                    booking_fee: b.booking_fee,
                    expires_at: b.expires_at,
                }
            })
            .collect())
    }
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
