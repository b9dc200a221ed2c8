//! PostgreSQL: bookings made in batches, each batch one statement committed on its own.
//!
//! Every booking of a year takes the counter row and every change of a project its seq row, and
//! both stay locked until commit, so bookings pass those rows one commit at a time. Made one by
//! one, each booking paid a whole commit and a lock hand-over under that hold, and 64 clients
//! topped out near 800–950 bookings/s with a p99 around 100 ms. So bookings that arrive while
//! others are inside PostgreSQL wait in [`BookingGate`]'s queue, and the next free place takes the
//! whole queue (up to [`MAX_BATCH`]) into one statement: one commit, one hold of the counter and
//! one of each project's seq for all of them (group commit, as databases do for their own log).
//!
//! The statement reads the bookings as one JSON array. Each unit is claimed with the conditional
//! update (`status = AVAILABLE`); a booking whose unit was not claimed writes nothing and gets no
//! row back, while the others go on. The claimed ones get consecutive numbers and seqs in queue
//! order. PostgreSQL runs a data-modifying CTE when its rows are first read, so the reads fix the
//! order: units, customers, audit rows (the counter's `count(*) FROM a` forces them first, out of
//! the counter's hold), then counter, projects, bookings and events.
//!
//! A batch shares its fate: if the statement fails (a `customerId` that does not exist, two new
//! customers with one NIK, a deadlock), nothing of it was written and each booking is run again
//! alone, so every booking still gets its own outcome and is one atomic action.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, FromQueryResult, IdenStatic, Iterable, QueryResult,
    RuntimeErr, Statement,
};
use serde_json::{Value as Json, json};
use tokio::sync::{Semaphore, oneshot};
use uuid::Uuid;

use super::Booked;
use crate::Services;
use crate::audit::AuditEntry;
use crate::entities::{bookings, customers};
use crate::error::{CoreError, CoreResult};
use crate::unit_changes::UnitChange;

/// How many batches of one instance may be inside PostgreSQL at once: one holds the counter while
/// the next does its claims, customers and audit rows.
const BOOKING_GATE_PERMITS: usize = 2;

/// The most bookings one statement makes.
const MAX_BATCH: usize = 32;

/// One booking's inputs to the statement (owned: it waits in the queue).
pub(super) struct BatchItem {
    /// The booking row to insert; its code and hold are computed by the statement.
    pub draft: bookings::Model,
    /// The unit's status change (AVAILABLE to BOOKED), completed into its event.
    pub change: UnitChange,
    /// The year whose counter numbers the booking.
    pub year: i32,
    /// The id of the `unit_events` row.
    pub event_id: Uuid,
    /// The acting user.
    pub actor_id: Option<Uuid>,
    /// The request id on the audit rows.
    pub request_id: Option<String>,
    /// `booking.created`; the statement adds `customerId` to its new values.
    pub booking_audit: AuditEntry<'static>,
    /// `unit.status_changed`.
    pub unit_audit: AuditEntry<'static>,
    /// An inline customer (inserted, or the existing one with its NIK) and its `customer.created`
    /// row, written only when it is inserted; None: the draft's `customer_id` names an existing one.
    pub inline_customer: Option<(customers::Model, AuditEntry<'static>)>,
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
    pub palette: Option<Json>,
    /// The customer (None only if it vanished between snapshot and commit).
    pub customer: Option<customers::Model>,
}

/// A booking's outcome: `Ok(None)` when its unit was not AVAILABLE (or does not exist).
pub(super) type Outcome = CoreResult<Option<Booked>>;

/// Queues this instance's bookings and lets [`BOOKING_GATE_PERMITS`] batches of them into
/// PostgreSQL at once, first come, first served (see the module doc). Without a gate, 64 clients
/// left most backends in `LWLock:LockManager`; the sweeps in docs/BENCHMARKS.md found 2 places
/// best, one booking per place then and batches of up to 32 now. Clones share the gate.
#[derive(Clone, Debug, Default)]
pub struct BookingGate(Arc<GateInner>);

#[derive(Debug)]
struct GateInner {
    places: Arc<Semaphore>,
    waiting: Mutex<VecDeque<Waiting>>,
}

impl Default for GateInner {
    fn default() -> Self {
        GateInner {
            places: Arc::new(Semaphore::new(BOOKING_GATE_PERMITS)),
            waiting: Mutex::new(VecDeque::new()),
        }
    }
}

struct Waiting {
    item: BatchItem,
    reply: oneshot::Sender<Outcome>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("booking", &self.item.draft.id)
            .finish_non_exhaustive()
    }
}

impl BookingGate {
    /// Makes one booking, in a batch with whatever else is queued when a place comes free, and
    /// publishes its event.
    pub(super) async fn book(&self, services: &Services, item: BatchItem) -> Outcome {
        let (reply, mut answer) = oneshot::channel();
        let _withdraw = Withdraw {
            gate: self,
            booking: item.draft.id,
        };
        self.queue().push_back(Waiting { item, reply });
        loop {
            tokio::select! {
                biased;
                outcome = &mut answer => return outcome.unwrap_or_else(|_| Err(unanswered())),
                place = self.0.places.clone().acquire_owned() => {
                    let place = place.map_err(|_| unanswered())?;
                    let batch = self.take_batch();
                    if batch.is_empty() {
                        // Another batch took this booking; wait for its answer.
                        drop(place);
                        return answer.await.unwrap_or_else(|_| Err(unanswered()));
                    }
                    let services = services.clone();
                    // Spawned, so a client that hangs up does not cancel the others' statement.
                    let run = tokio::spawn(async move {
                        run_batch(&services, batch).await;
                        drop(place);
                    });
                    if run.await.is_err() {
                        tracing::error!("a booking batch panicked");
                    }
                }
            }
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting>> {
        // A panic while holding this lock cannot leave the queue half-changed.
        self.0.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The oldest waiting bookings of one year, at most [`MAX_BATCH`].
    fn take_batch(&self) -> Vec<Waiting> {
        let mut queue = self.queue();
        let Some(year) = queue.front().map(|w| w.item.year) else {
            return Vec::new();
        };
        let n = queue
            .iter()
            .take(MAX_BATCH)
            .take_while(|w| w.item.year == year)
            .count();
        queue.drain(..n).collect()
    }
}

/// Takes a booking out of the queue if its request is dropped before a batch took it, so a
/// client that hung up while waiting does not book (a no-op once it was taken).
struct Withdraw<'a> {
    gate: &'a BookingGate,
    booking: Uuid,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.gate
            .queue()
            .retain(|w| w.item.draft.id != self.booking);
    }
}

/// True when PostgreSQL answered the statement with an error, so it rolled back as a whole.
fn rolled_back(e: &CoreError) -> bool {
    let (CoreError::Db(DbErr::Exec(runtime) | DbErr::Query(runtime))
    | CoreError::Busy(DbErr::Exec(runtime) | DbErr::Query(runtime))) = e
    else {
        return false;
    };
    matches!(runtime, RuntimeErr::SqlxError(e) if e.as_database_error().is_some())
}

fn unanswered() -> CoreError {
    CoreError::Internal("a booking batch ended without answering".into())
}

/// Runs one batch, publishes the events of the bookings made in seq order, then answers each
/// booking. A failed batch is run again one booking at a time.
async fn run_batch(services: &Services, batch: Vec<Waiting>) {
    let items: Vec<&BatchItem> = batch.iter().map(|w| &w.item).collect();
    let rows: Vec<CoreResult<Option<BookedRow>>> = match book_batch(&services.db, &items).await {
        Ok(rows) => rows.into_iter().map(Ok).collect(),
        Err(e) if batch.len() == 1 => vec![Err(e)],
        Err(e) if !rolled_back(&e) => {
            // The statement may have committed (a lost connection): its outcome is unknown, and
            // running the bookings again would tell their winners that the units are taken.
            tracing::error!(size = batch.len(), error = %e, "booking batch outcome unknown");
            let unknown = format!("the outcome of a booking batch is unknown: {e}");
            batch
                .iter()
                .map(|_| Err(CoreError::Internal(unknown.clone())))
                .collect()
        }
        Err(e) => {
            tracing::debug!(size = batch.len(), error = %e, "booking batch failed; booking one by one");
            let mut rows = Vec::with_capacity(batch.len());
            for item in &items {
                rows.push(
                    book_batch(&services.db, &[item])
                        .await
                        .map(|mut made| made.pop().flatten()),
                );
            }
            rows
        }
    };
    let mut answers = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    for (waiting, row) in batch.into_iter().zip(rows) {
        let answer = match row {
            Ok(Some(row)) => services.finish_batched(waiting.item, row).await.map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        if let Ok(Some(booked)) = &answer {
            events.push(booked.3.clone());
        }
        answers.push((waiting.reply, answer));
    }
    // In seq order, so no hub sees a gap that is only a reordering.
    events.sort_by_key(|e| (e.project_id, e.seq));
    services.publish(&events).await;
    for (reply, answer) in answers {
        let _ = reply.send(answer);
    }
}

fn customer_columns() -> impl Iterator<Item = &'static str> {
    customers::Column::iter().map(|c| c.as_str())
}

/// A customer row as the JSON object `jsonb_populate_recordset(NULL::customers, …)` reads.
fn customer_json(c: &customers::Model) -> Json {
    json!({
        "id": c.id, "name": c.name, "phone": c.phone, "email": c.email,
        "ktp_encrypted": c.ktp_encrypted, "ktp_hash": c.ktp_hash,
        "npwp_encrypted": c.npwp_encrypted, "npwp_hash": c.npwp_hash, "address": c.address,
        "created_by": c.created_by, "created_at": c.created_at, "updated_at": c.updated_at,
    })
}

/// One booking as an element of the statement's `$1` (the keys are `i`'s columns).
fn item_json(ord: usize, item: &BatchItem) -> Json {
    let d = &item.draft;
    let (ba, ua) = (&item.booking_audit, &item.unit_audit);
    let (ktp_hash, ca) = match &item.inline_customer {
        Some((c, audit)) => (c.ktp_hash.clone(), Some(audit)),
        None => (None, None),
    };
    json!({
        "ord": ord, "unit_id": d.unit_id, "booking_id": d.id, "customer_id": d.customer_id,
        "inline": ca.is_some(), "ktp_hash": ktp_hash, "marketing_id": d.marketing_id,
        "status": d.status, "payment_status": d.payment_status,
        "payment_method": d.payment_method, "booking_fee": d.booking_fee, "notes": d.notes,
        "at": d.booking_date, "request_id": item.request_id, "actor_id": item.actor_id,
        "event_id": item.event_id,
        "ab_id": Uuid::now_v7(), "ab_action": ba.action, "ab_type": ba.entity_type,
        "ab_new": ba.new_values,
        "au_id": Uuid::now_v7(), "au_action": ua.action, "au_type": ua.entity_type,
        "au_old": ua.old_values, "au_new": ua.new_values,
        "ac_id": Uuid::now_v7(), "ac_action": ca.map(|a| a.action),
        "ac_type": ca.map(|a| a.entity_type), "ac_new": ca.and_then(|a| a.new_values.clone()),
    })
}

/// The batch statement (see the module doc). `$1` the bookings, `$2` their inline customers,
/// `$3`/`$4` the unit's status before and after, `$5` the year.
fn build_sql() -> String {
    let cols: Vec<&str> = customer_columns().collect();
    let col_list = cols.join(", ");
    let list = |prefix: &str| -> String {
        cols.iter()
            .map(|c| format!("{prefix}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let customer_out: Vec<String> = cols.iter().map(|c| format!("ck.{c} AS k_{c}")).collect();
    format!(
        "WITH i AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS t(ord int, unit_id uuid, \
         booking_id uuid, customer_id uuid, inline bool, ktp_hash text, marketing_id uuid, \
         status text, payment_status text, payment_method text, booking_fee bigint, notes text, \
         at timestamptz, request_id text, actor_id uuid, event_id uuid, \
         ab_id uuid, ab_action text, ab_type text, ab_new jsonb, \
         au_id uuid, au_action text, au_type text, au_old jsonb, au_new jsonb, \
         ac_id uuid, ac_action text, ac_type text, ac_new jsonb)), \
         u AS (UPDATE units SET status = $4, version = units.version + 1, updated_at = i.at \
         FROM i WHERE units.id = i.unit_id AND units.status = $3 \
         RETURNING i.ord, units.id, units.project_id, units.block_number, units.unit_type, \
         units.price), \
         k AS (INSERT INTO customers ({col_list}) SELECT {new_cols} \
         FROM jsonb_populate_recordset(NULL::customers, $2::jsonb) AS c \
         JOIN i ON i.customer_id = c.id JOIN u ON u.ord = i.ord \
         ON CONFLICT (ktp_hash) DO UPDATE SET updated_at = customers.updated_at \
         RETURNING {col_list}), \
         ck AS (SELECT i.ord, {k_cols} FROM k JOIN i ON i.inline \
         AND (i.customer_id = k.id OR i.ktp_hash = k.ktp_hash) \
         UNION ALL SELECT u.ord, {old_cols} FROM u JOIN i ON i.ord = u.ord \
         JOIN customers c ON c.id = i.customer_id WHERE NOT i.inline), \
         a AS (INSERT INTO audit_log (id, actor_id, action, entity_type, entity_id, old_values, \
         new_values, request_id, created_at) \
         SELECT i.ac_id, i.actor_id, i.ac_action, i.ac_type, ck.id, NULL::json, i.ac_new::json, \
         i.request_id, i.at FROM ck JOIN i ON i.ord = ck.ord JOIN u ON u.ord = ck.ord \
         WHERE i.inline AND ck.id = i.customer_id \
         UNION ALL SELECT i.ab_id, i.actor_id, i.ab_action, i.ab_type, i.booking_id, NULL::json, \
         (i.ab_new || jsonb_build_object('customerId', COALESCE(ck.id, i.customer_id)))::json, \
         i.request_id, i.at FROM u JOIN i ON i.ord = u.ord LEFT JOIN ck ON ck.ord = u.ord \
         UNION ALL SELECT i.au_id, i.actor_id, i.au_action, i.au_type, u.id, i.au_old::json, \
         i.au_new::json, i.request_id, i.at FROM u JOIN i ON i.ord = u.ord \
         RETURNING 1), \
         n AS (SELECT count(*) AS n FROM u), \
         c AS (INSERT INTO booking_counters (year, last_value) SELECT $5, n.n FROM n \
         WHERE n.n > 0 AND (SELECT count(*) FROM a) > 0 \
         ON CONFLICT (year) DO UPDATE \
         SET last_value = booking_counters.last_value + EXCLUDED.last_value \
         RETURNING last_value), \
         pn AS (SELECT u.project_id, count(*) AS n FROM u GROUP BY u.project_id), \
         p AS (UPDATE projects SET event_seq = projects.event_seq + pn.n FROM pn, c \
         WHERE projects.id = pn.project_id \
         RETURNING projects.id, projects.event_seq, projects.palette, projects.hold_minutes, pn.n), \
         r AS (SELECT u.ord, u.id AS unit_id, u.project_id, u.block_number, u.unit_type, u.price, \
         c.last_value - n.n + row_number() OVER (ORDER BY u.ord) AS number, \
         p.event_seq - p.n + row_number() OVER (PARTITION BY u.project_id ORDER BY u.ord) AS seq, \
         p.palette, p.hold_minutes FROM u CROSS JOIN c CROSS JOIN n JOIN p ON p.id = u.project_id), \
         b AS (INSERT INTO bookings (id, booking_code, project_id, unit_id, customer_id, \
         marketing_id, booking_date, status, payment_status, payment_method, payment_date, \
         booking_fee, notes, expires_at, cancelled_at, created_at, updated_at) \
         SELECT i.booking_id, 'BK-' || $5 || '-' || CASE WHEN r.number < 1000 \
         THEN lpad(r.number::text, 3, '0') ELSE r.number::text END, \
         r.project_id, r.unit_id, COALESCE(ck.id, i.customer_id), i.marketing_id, i.at, i.status, \
         i.payment_status, i.payment_method, NULL, i.booking_fee, i.notes, \
         i.at + make_interval(mins => GREATEST(r.hold_minutes, 1)), NULL, i.at, i.at \
         FROM r JOIN i ON i.ord = r.ord LEFT JOIN ck ON ck.ord = r.ord \
         RETURNING id, booking_code, expires_at), \
         e AS (INSERT INTO unit_events ({event_cols}) \
         SELECT i.event_id, r.project_id, r.seq, r.unit_id, r.block_number, $3, $4, i.actor_id, \
         i.booking_id, i.at FROM r JOIN i ON i.ord = r.ord) \
         SELECT r.ord, r.project_id, r.block_number, r.unit_type, r.price, \
         r.number AS last_value, b.booking_code, b.expires_at, r.seq AS event_seq, r.palette, \
         {customer_out} \
         FROM r JOIN i ON i.ord = r.ord JOIN b ON b.id = i.booking_id \
         LEFT JOIN ck ON ck.ord = r.ord",
        new_cols = list("c"),
        k_cols = list("k"),
        old_cols = list("c"),
        customer_out = customer_out.join(", "),
        event_cols = crate::unit_changes::unit_event_columns!(),
    )
}

static BATCH_SQL: LazyLock<String> = LazyLock::new(build_sql);

/// Runs the batch statement on `conn` (outside any transaction: it commits by itself) and returns
/// each booking's outcome, in order. The items must share one year and one status change.
async fn book_batch<C: ConnectionTrait>(
    conn: &C,
    items: &[&BatchItem],
) -> CoreResult<Vec<Option<BookedRow>>> {
    let Some(first) = items.first() else {
        return Ok(Vec::new());
    };
    let bookings: Vec<Json> = items
        .iter()
        .enumerate()
        .map(|(ord, item)| item_json(ord, item))
        .collect();
    let customers: Vec<Json> = items
        .iter()
        .filter_map(|item| item.inline_customer.as_ref())
        .map(|(c, _)| customer_json(c))
        .collect();
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            BATCH_SQL.as_str(),
            [
                Json::Array(bookings).into(),
                Json::Array(customers).into(),
                first.change.from.as_str().into(),
                first.change.to.as_str().into(),
                first.year.into(),
            ],
        ))
        .await?;
    let mut made: Vec<Option<BookedRow>> = items.iter().map(|_| None).collect();
    for row in &rows {
        let ord: i32 = row.try_get("", "ord")?;
        let slot = usize::try_from(ord)
            .ok()
            .and_then(|ord| made.get_mut(ord))
            .ok_or_else(|| CoreError::Internal(format!("booking batch returned ord {ord}")))?;
        *slot = Some(decode(row)?);
    }
    Ok(made)
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

    #[test]
    fn the_customer_json_names_every_column() {
        let now = Utc::now();
        let row = customers::Model {
            id: Uuid::nil(),
            name: "n".into(),
            phone: "p".into(),
            email: None,
            ktp_encrypted: None,
            ktp_hash: None,
            npwp_encrypted: None,
            npwp_hash: None,
            address: None,
            created_by: None,
            created_at: now,
            updated_at: now,
        };
        let json = customer_json(&row);
        let mut keys: Vec<&str> = json
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut columns: Vec<&str> = customer_columns().collect();
        keys.sort_unstable();
        columns.sort_unstable();
        assert_eq!(keys, columns);
    }

    #[test]
    fn the_statement_uses_its_five_placeholders() {
        for n in 1..=5 {
            assert!(BATCH_SQL.contains(&format!("${n}")), "${n}");
        }
        assert!(!BATCH_SQL.contains("$6"));
    }
}
