//! PostgreSQL: a whole booking as one statement, committed on its own.
//!
//! Every booking of a year shares the counter row and every change of a project its seq row, and
//! both stay locked until commit. As a transaction of separate statements a booking took six round
//! trips (BEGIN, claim, customer, audit rows, counter with booking and event, COMMIT) and held the
//! counter across the last two. As one statement it takes one, and the counter is held for the
//! statement's tail and its commit, with no round trip to the application in between. Its parts
//! commit or roll back together, so it is still one transaction for one business action.
//!
//! Each part reads the claim (`FROM u`), so when the unit was not AVAILABLE nothing is written and
//! no row comes back. PostgreSQL runs a data-modifying CTE when its rows are first read, so the
//! reads fix the order: unit, customer, audit rows (the counter's `count(*) FROM a` forces them
//! first, out of the counter's hold), then counter, project, booking and event.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DbBackend, FromQueryResult, IdenStatic, Iterable, ModelTrait, QueryResult,
    Statement, Value,
};
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::entities::{bookings, customers};
use crate::error::CoreResult;

/// The statement's inputs besides the customer.
pub(super) struct BookingStatement<'a> {
    /// The booking row to insert; its code and hold are computed by the statement.
    pub draft: &'a bookings::Model,
    /// The unit's status before (the claim's condition).
    pub from: &'a str,
    /// The unit's status after.
    pub to: &'a str,
    /// The year whose counter numbers the booking.
    pub year: i32,
    /// The id of the `unit_events` row.
    pub event_id: Uuid,
    /// The acting user.
    pub actor_id: Option<Uuid>,
    /// The request id on the audit rows.
    pub request_id: Option<String>,
    /// `booking.created`; the statement adds `customerId` to its new values.
    pub booking_audit: AuditEntry<'a>,
    /// `unit.status_changed`.
    pub unit_audit: AuditEntry<'a>,
    /// `customer.created`, written only when an inline customer is inserted.
    pub customer_audit: Option<AuditEntry<'a>>,
}

/// What the statement returns for a booking that was made.
pub(super) struct BookedRow {
    /// The unit's project.
    pub project_id: Uuid,
    /// The unit's block number.
    pub block_number: String,
    /// The unit's type.
    pub unit_type: String,
    /// The unit's price.
    pub price: i64,
    /// The year's number taken.
    pub number: i64,
    /// The booking's code.
    pub booking_code: String,
    /// The end of the hold.
    pub expires_at: DateTime<Utc>,
    /// The project's seq taken for the event.
    pub seq: i64,
    /// The project's palette, for the event's colour.
    pub palette: Option<serde_json::Value>,
    /// The customer (None only if it vanished between snapshot and commit).
    pub customer: Option<customers::Model>,
}

/// Parameters `$1..$FIXED` are bound in the order the SQL numbers them; an inline customer's
/// columns follow, in the entity's column order.
const FIXED: usize = 29;

fn customer_columns() -> impl Iterator<Item = &'static str> {
    customers::Column::iter().map(|c| c.as_str())
}

/// Builds the statement for one customer source (see the module doc).
fn build_sql(inline: bool) -> String {
    let cols: Vec<&str> = customer_columns().collect();
    // The placeholder of the new customer's id.
    let id_param = FIXED + 1 + cols.iter().position(|c| *c == "id").unwrap_or_default();
    let col_list = cols.join(", ");
    let (customer_cte, customer_id) = if inline {
        let values: Vec<String> = (1..=cols.len())
            .map(|i| format!("${}", FIXED + i))
            .collect();
        // DO UPDATE (a no-op) rather than DO NOTHING: it returns the existing row even when a
        // concurrent booking committed it after this statement's snapshot was taken.
        (
            format!(
                "k AS (INSERT INTO customers ({col_list}) SELECT {} FROM u \
                 ON CONFLICT (ktp_hash) DO UPDATE SET updated_at = customers.updated_at \
                 RETURNING {col_list}), ",
                values.join(", ")
            ),
            "(SELECT id FROM k)".to_owned(),
        )
    } else {
        (
            format!("k AS (SELECT {col_list} FROM customers WHERE id = $15), "),
            "$15".to_owned(),
        )
    };
    // The customer audit row exists only for an inserted customer: its id is the one we chose.
    let customer_audit = if inline {
        format!(
            "SELECT $16, $14, $17, $18, k.id, NULL::json, $19::json, $13, $4 FROM k \
             WHERE k.id = ${id_param} UNION ALL "
        )
    } else {
        String::new()
    };
    let customer_out: Vec<String> = cols.iter().map(|c| format!("k.{c} AS k_{c}")).collect();
    format!(
        "WITH u AS (UPDATE units SET status = $3, version = version + 1, updated_at = $4 \
         WHERE id = $1 AND status = $2 RETURNING id, project_id, block_number, unit_type, price), \
         {customer_cte}\
         a AS (INSERT INTO audit_log (id, actor_id, action, entity_type, entity_id, old_values, \
         new_values, request_id, created_at) \
         {customer_audit}\
         SELECT $21, $14, $22, $23, $6, NULL::json, \
         ($24::jsonb || jsonb_build_object('customerId', {customer_id}))::json, $13, $4 FROM u \
         UNION ALL SELECT $25, $14, $26, $27, u.id, $28::json, $29::json, $13, $4 FROM u \
         RETURNING 1), \
         c AS (INSERT INTO booking_counters (year, last_value) SELECT $5, 1 FROM u \
         WHERE (SELECT count(*) FROM a) > 0 \
         ON CONFLICT (year) DO UPDATE SET last_value = booking_counters.last_value + 1 \
         RETURNING last_value), \
         p AS (UPDATE projects SET event_seq = projects.event_seq + 1 FROM u, c \
         WHERE projects.id = u.project_id \
         RETURNING projects.event_seq, projects.palette, projects.hold_minutes), \
         b AS (INSERT INTO bookings (id, booking_code, project_id, unit_id, customer_id, \
         marketing_id, booking_date, status, payment_status, payment_method, payment_date, \
         booking_fee, notes, expires_at, cancelled_at, created_at, updated_at) \
         SELECT $6, 'BK-' || $5 || '-' || CASE WHEN c.last_value < 1000 \
         THEN lpad(c.last_value::text, 3, '0') ELSE c.last_value::text END, \
         u.project_id, u.id, {customer_id}, $7, $4, $8, $9, $10, NULL, $11, $12, \
         $4 + make_interval(mins => GREATEST(p.hold_minutes, 1)), NULL, $4, $4 FROM u, c, p \
         RETURNING booking_code, expires_at), \
         e AS (INSERT INTO unit_events (id, project_id, seq, unit_id, block_number, old_status, \
         new_status, actor_id, booking_id, at) \
         SELECT $20, u.project_id, p.event_seq, u.id, u.block_number, $2, $3, $14, $6, $4 \
         FROM u, p) \
         SELECT u.project_id, u.block_number, u.unit_type, u.price, c.last_value, \
         b.booking_code, b.expires_at, p.event_seq, p.palette, {} \
         FROM u CROSS JOIN c CROSS JOIN p CROSS JOIN b LEFT JOIN k ON true",
        customer_out.join(", ")
    )
}

static WITH_INLINE_CUSTOMER: LazyLock<String> = LazyLock::new(|| build_sql(true));
static WITH_EXISTING_CUSTOMER: LazyLock<String> = LazyLock::new(|| build_sql(false));

/// Runs the booking statement on `conn` (outside any transaction: it commits by itself). The
/// customer is `inline_customer` (inserted, or the existing one with its NIK) or else the draft's
/// `customer_id` (a missing one fails the booking's foreign key).
/// `Ok(None)`: the unit was not AVAILABLE (or does not exist) and nothing was written.
pub(super) async fn book<C: ConnectionTrait>(
    conn: &C,
    input: BookingStatement<'_>,
    inline_customer: Option<&customers::Model>,
) -> CoreResult<Option<BookedRow>> {
    let d = input.draft;
    let (ba, ua) = (&input.booking_audit, &input.unit_audit);
    // The customer audit's placeholders are bound (as NULLs) even when the SQL has no such row.
    let (ca_action, ca_type, ca_new) = match &input.customer_audit {
        Some(a) => (Some(a.action), Some(a.entity_type), a.new_values.clone()),
        None => (None, None, None),
    };
    let existing_customer = inline_customer.is_none().then_some(d.customer_id);
    let mut values: Vec<Value> = vec![
        d.unit_id.into(),                    // $1
        input.from.into(),                   // $2
        input.to.into(),                     // $3
        d.booking_date.into(),               // $4
        input.year.into(),                   // $5
        d.id.into(),                         // $6
        d.marketing_id.into(),               // $7
        d.status.clone().into(),             // $8
        d.payment_status.clone().into(),     // $9
        d.payment_method.clone().into(),     // $10
        d.booking_fee.into(),                // $11
        d.notes.clone().into(),              // $12
        input.request_id.clone().into(),     // $13
        input.actor_id.into(),               // $14
        existing_customer.into(),            // $15
        Uuid::now_v7().into(),               // $16
        ca_action.map(str::to_owned).into(), // $17
        ca_type.map(str::to_owned).into(),   // $18
        ca_new.into(),                       // $19
        input.event_id.into(),               // $20
        Uuid::now_v7().into(),               // $21
        ba.action.into(),                    // $22
        ba.entity_type.into(),               // $23
        ba.new_values.clone().into(),        // $24
        Uuid::now_v7().into(),               // $25
        ua.action.into(),                    // $26
        ua.entity_type.into(),               // $27
        ua.old_values.clone().into(),        // $28
        ua.new_values.clone().into(),        // $29
    ];
    debug_assert_eq!(values.len(), FIXED);
    let sql = match inline_customer {
        None => WITH_EXISTING_CUSTOMER.as_str(),
        Some(model) => {
            values.extend(customers::Column::iter().map(|c| model.get(c)));
            WITH_INLINE_CUSTOMER.as_str()
        }
    };
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    row.as_ref().map(decode).transpose()
}

fn decode(row: &QueryResult) -> CoreResult<BookedRow> {
    let customer_id: Option<Uuid> = row.try_get("", "k_id")?;
    Ok(BookedRow {
        project_id: row.try_get("", "project_id")?,
        block_number: row.try_get("", "block_number")?,
        unit_type: row.try_get("", "unit_type")?,
        price: row.try_get("", "price")?,
        number: row.try_get("", "last_value")?,
        booking_code: row.try_get("", "booking_code")?,
        expires_at: row.try_get("", "expires_at")?,
        seq: row.try_get("", "event_seq")?,
        palette: row.try_get("", "palette")?,
        customer: match customer_id {
            Some(_) => Some(customers::Model::from_query_result(row, "k_")?),
            None => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The placeholders `$1..$n` a statement uses, as a sorted, deduplicated list.
    fn placeholders(sql: &str) -> Vec<usize> {
        let mut found: Vec<usize> = sql
            .split('$')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    #[test]
    fn the_statements_use_the_placeholders_bound_for_them() {
        // Both statements get the same fixed values. Each leaves out the ones of the other
        // customer source: the inline one the existing customer's id ($15), the other the
        // customer audit row ($16..$19). That is legal because sqlx declares a type for every bound
        // value when it prepares the statement (like `PREPARE p(int, int) AS SELECT $1`).
        let columns = customers::Column::iter().count();
        let inline: Vec<usize> = (1..=FIXED + columns).filter(|i| *i != 15).collect();
        assert_eq!(placeholders(&WITH_INLINE_CUSTOMER), inline);
        let existing: Vec<usize> = (1..=FIXED).filter(|i| !(16..=19).contains(i)).collect();
        assert_eq!(placeholders(&WITH_EXISTING_CUSTOMER), existing);
    }
}
