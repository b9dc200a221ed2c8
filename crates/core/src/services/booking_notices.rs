//! Notifications about bookings and their payments (kinds `booking` and `payment`), written in
//! the transaction of the change they describe, to the booking's marketing user and its buyer.
//!
//! A booking names a customer, not a user. The buyer is the `BUYER` user whose email is the
//! customer's, or else the buyer of a lead on the same unit that the booking's marketing user
//! unlocked (the usual path: lead, unlock, booking). Without either, only marketing hears.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use kavling_realtime::{BookingNote, FeedEvent};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::domain::Role;
use crate::entities::{bookings, customers, invoices, leads, payments, units, users};
use crate::error::CoreResult;
use crate::services::notifications::{NewNotification, NotificationKind, insert_notifications};

/// The users who hear about a booking: its marketing user, then the buyer if one is known.
pub(crate) async fn booking_recipients<C: ConnectionTrait>(
    conn: &C,
    b: &bookings::Model,
) -> CoreResult<Vec<Uuid>> {
    let buyers = buyers_of(conn, std::slice::from_ref(b)).await?;
    Ok(std::iter::once(b.marketing_id)
        .chain(buyers.get(&b.id).copied())
        .collect())
}

/// The buyer of each booking that has one (by booking id, never its own marketing user): the
/// `BUYER` user whose email is the customer's, else the buyer of the newest lead on the unit that
/// the booking's marketing user unlocked. Three queries at most, whatever the count.
async fn buyers_of<C: ConnectionTrait>(
    conn: &C,
    made: &[bookings::Model],
) -> CoreResult<HashMap<Uuid, Uuid>> {
    let emails: HashMap<Uuid, String> = customers::Entity::find()
        .filter(customers::Column::Id.is_in(made.iter().map(|b| b.customer_id)))
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|c| {
            let email = c.email?.trim().to_lowercase();
            (!email.is_empty()).then_some((c.id, email))
        })
        .collect();
    let wanted: HashSet<&String> = emails.values().collect();
    let by_email: HashMap<String, Uuid> = if wanted.is_empty() {
        HashMap::new()
    } else {
        users::Entity::find()
            .filter(users::Column::Email.is_in(wanted.into_iter().cloned()))
            .filter(users::Column::Role.eq(Role::Buyer.as_str()))
            .all(conn)
            .await?
            .into_iter()
            .map(|u| (u.email, u.id))
            .collect()
    };
    let mut buyers: HashMap<Uuid, Uuid> = made
        .iter()
        .filter_map(|b| {
            let buyer = emails.get(&b.customer_id).and_then(|e| by_email.get(e))?;
            (*buyer != b.marketing_id).then_some((b.id, *buyer))
        })
        .collect();
    let need: Vec<&bookings::Model> = made
        .iter()
        .filter(|b| !buyers.contains_key(&b.id))
        .collect();
    if !need.is_empty() {
        let mut by_lead: HashMap<(Uuid, Uuid), Uuid> = HashMap::new();
        let rows = leads::Entity::find()
            .filter(leads::Column::UnitId.is_in(need.iter().map(|b| b.unit_id)))
            .filter(leads::Column::UnlockedBy.is_in(need.iter().map(|b| b.marketing_id)))
            .order_by_desc(leads::Column::UnlockedAt)
            .all(conn)
            .await?;
        for lead in rows {
            if let Some(by) = lead.unlocked_by {
                by_lead.entry((lead.unit_id, by)).or_insert(lead.buyer_id);
            }
        }
        for b in need {
            if let Some(buyer) = by_lead.get(&(b.unit_id, b.marketing_id))
                && *buyer != b.marketing_id
            {
                buyers.insert(b.id, *buyer);
            }
        }
    }
    Ok(buyers)
}

/// The block number of a booking's unit, for texts.
async fn block_number<C: ConnectionTrait>(conn: &C, unit_id: Uuid) -> CoreResult<String> {
    Ok(units::Entity::find_by_id(unit_id)
        .one(conn)
        .await?
        .map(|u| u.block_number)
        .unwrap_or_default())
}

/// Writes one notification of `kind` to each of the booking's recipients.
async fn notify_recipients<C: ConnectionTrait>(
    conn: &C,
    b: &bookings::Model,
    kind: NotificationKind,
    title: String,
    body: String,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> CoreResult<Vec<FeedEvent>> {
    let items: Vec<NewNotification> = booking_recipients(conn, b)
        .await?
        .into_iter()
        .map(|user_id| NewNotification {
            user_id,
            kind,
            title: title.clone(),
            body: body.clone(),
            data: data.clone(),
        })
        .collect();
    insert_notifications(conn, &items, now).await
}

/// A booking was created or changed (status, payment status): `booking` notifications.
pub(crate) async fn notify_booking<C: ConnectionTrait>(
    conn: &C,
    b: &bookings::Model,
    previous_status: Option<&str>,
    now: DateTime<Utc>,
) -> CoreResult<Vec<FeedEvent>> {
    let block = block_number(conn, b.unit_id).await?;
    let (title, body, data) = booking_news(b, &block, previous_status);
    notify_recipients(conn, b, NotificationKind::Booking, title, body, data, now).await
}

/// The creation of many bookings (one pass of the notifier): the same notifications as
/// [`notify_booking`] for each, with the reads batched (units, then [`buyers_of`]: one query
/// each, whatever the count) and one insert. Per booking, the reads
/// would put thousands of round trips on the database while a sales event books.
pub(crate) async fn notify_bookings_created<C: ConnectionTrait>(
    conn: &C,
    made: &[bookings::Model],
    now: DateTime<Utc>,
) -> CoreResult<Vec<FeedEvent>> {
    if made.is_empty() {
        return Ok(Vec::new());
    }
    let blocks: HashMap<Uuid, String> = units::Entity::find()
        .filter(units::Column::Id.is_in(made.iter().map(|b| b.unit_id)))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u.block_number))
        .collect();
    let buyers = buyers_of(conn, made).await?;
    let mut items = Vec::with_capacity(made.len() * 2);
    for b in made {
        let block = blocks.get(&b.unit_id).cloned().unwrap_or_default();
        let (title, body, data) = booking_news(b, &block, None);
        for user_id in std::iter::once(b.marketing_id).chain(buyers.get(&b.id).copied()) {
            items.push(NewNotification {
                user_id,
                kind: NotificationKind::Booking,
                title: title.clone(),
                body: body.clone(),
                data: data.clone(),
            });
        }
    }
    insert_notifications(conn, &items, now).await
}

/// The title, body and data of a `booking` notification (created when `previous_status` is None).
fn booking_news(
    b: &bookings::Model,
    block: &str,
    previous_status: Option<&str>,
) -> (String, String, serde_json::Value) {
    let (title, body) = match previous_status {
        None => (
            format!("Booking {} created", b.booking_code),
            format!(
                "Unit {block} is booked ({}); the hold lasts until {}.",
                b.booking_code,
                b.expires_at.format("%Y-%m-%d %H:%M UTC")
            ),
        ),
        Some(_) => (
            format!("Booking {} is {}", b.booking_code, b.status),
            format!(
                "Booking {} for unit {block} is now {} (payment {}).",
                b.booking_code, b.status, b.payment_status
            ),
        ),
    };
    let data = serde_json::json!({
        "bookingId": b.id,
        "bookingCode": b.booking_code,
        "projectId": b.project_id,
        "unitId": b.unit_id,
        "blockNumber": block,
        "status": b.status,
        "previousStatus": previous_status,
        "paymentStatus": b.payment_status,
    });
    (title, body, data)
}

/// What happened to an invoice or a payment, for a `payment` notification.
pub(crate) enum PaymentNews<'a> {
    /// A proof was submitted and awaits verification.
    Submitted(&'a payments::Model),
    /// An admin verified the payment.
    Verified(&'a payments::Model),
    /// An admin rejected the payment, with a reason.
    Rejected(&'a payments::Model),
    /// The invoice's due date passed unpaid.
    Overdue,
}

/// A payment or invoice change of a booking: `payment` notifications (a rejection's reason is
/// in the body and in `data.reason`).
pub(crate) async fn notify_payment<C: ConnectionTrait>(
    conn: &C,
    b: &bookings::Model,
    invoice: &invoices::Model,
    news: PaymentNews<'_>,
    now: DateTime<Utc>,
) -> CoreResult<Vec<FeedEvent>> {
    let number = &invoice.invoice_number;
    let (event, payment, title, body) = match news {
        PaymentNews::Submitted(p) => (
            "submitted",
            Some(p),
            format!("Payment for {number} received"),
            format!(
                "A payment of Rp {} for {number} awaits verification.",
                p.amount
            ),
        ),
        PaymentNews::Verified(p) => (
            "verified",
            Some(p),
            format!("Payment for {number} verified"),
            format!(
                "The payment of Rp {} for {number} is verified; the invoice is {}.",
                p.amount, invoice.status
            ),
        ),
        PaymentNews::Rejected(p) => (
            "rejected",
            Some(p),
            format!("Payment for {number} rejected"),
            format!(
                "The payment of Rp {} for {number} was rejected: {}",
                p.amount,
                p.reason.as_deref().unwrap_or("no reason given")
            ),
        ),
        PaymentNews::Overdue => (
            "overdue",
            None,
            format!("Invoice {number} is overdue"),
            format!(
                "Invoice {number} of booking {} (Rp {}) was due on {} and is unpaid.",
                b.booking_code,
                invoice.amount - invoice.paid_amount,
                invoice.due_date
            ),
        ),
    };
    let data = serde_json::json!({
        "event": event,
        "bookingId": b.id,
        "bookingCode": b.booking_code,
        "projectId": b.project_id,
        "bookingStatus": b.status,
        "bookingPaymentStatus": b.payment_status,
        "invoiceId": invoice.id,
        "invoiceNumber": number,
        "invoiceStatus": invoice.status,
        "amount": invoice.amount,
        "paidAmount": invoice.paid_amount,
        "dueDate": invoice.due_date,
        "paymentId": payment.map(|p| p.id),
        "paymentStatus": payment.map(|p| p.status.clone()),
        "reason": payment.and_then(|p| p.reason.clone()),
    });
    notify_recipients(conn, b, NotificationKind::Payment, title, body, data, now).await
}

/// The staff `booking` notes of some committed feed items: one per booking and change among the
/// `booking` and `payment` notifications (each is written to marketing and the buyer, so the same
/// change appears once per recipient). Live only, like the notes themselves: the notifications
/// are the lossless record.
pub(crate) fn staff_notes(items: &[FeedEvent]) -> Vec<BookingNote> {
    let mut seen = std::collections::HashSet::new();
    let mut notes = Vec::new();
    for item in items {
        let kind = item.body.get("kind").and_then(|k| k.as_str());
        if !matches!(kind, Some("booking" | "payment")) {
            continue;
        }
        let Some(data) = item.body.get("data") else {
            continue;
        };
        let Some(project_id) = data
            .get("projectId")
            .and_then(|p| p.as_str())
            .and_then(|p| Uuid::parse_str(p).ok())
        else {
            continue;
        };
        // The same change for another recipient: same data, same commit time.
        if !seen.insert((data.to_string(), item.at)) {
            continue;
        }
        let (status, payment_status, invoice) = if kind == Some("payment") {
            (
                data.get("bookingStatus"),
                data.get("bookingPaymentStatus"),
                serde_json::json!({
                    "id": data.get("invoiceId"),
                    "invoiceNumber": data.get("invoiceNumber"),
                    "status": data.get("invoiceStatus"),
                    "amount": data.get("amount"),
                    "paidAmount": data.get("paidAmount"),
                    "dueDate": data.get("dueDate"),
                    "event": data.get("event"),
                    "reason": data.get("reason"),
                }),
            )
        } else {
            (
                data.get("status"),
                data.get("paymentStatus"),
                serde_json::Value::Null,
            )
        };
        let mut body = serde_json::Map::new();
        body.insert(
            "bookingId".into(),
            data.get("bookingId").cloned().unwrap_or_default(),
        );
        body.insert(
            "bookingCode".into(),
            data.get("bookingCode").cloned().unwrap_or_default(),
        );
        body.insert("status".into(), status.cloned().unwrap_or_default());
        body.insert(
            "paymentStatus".into(),
            payment_status.cloned().unwrap_or_default(),
        );
        body.insert("invoice".into(), invoice);
        body.insert(
            "at".into(),
            serde_json::Value::String(item.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        notes.push(BookingNote { project_id, body });
    }
    notes
}
