//! SeaORM entities, one module per table. Enum-valued columns are plain strings (SQLite has no
//! enum types); `crate::domain` owns the vocabularies.

pub mod audit_log;
pub mod booking_counters;
pub mod booking_documents;
pub mod bookings;
pub mod conversations;
pub mod customers;
pub mod idempotency_keys;
pub mod invoice_counters;
pub mod invoices;
pub mod lead_consents;
pub mod lead_disputes;
pub mod leads;
pub mod messages;
pub mod notification_heads;
pub mod notifications;
pub mod notifier_cursors;
pub mod payments;
pub mod project_siteplans;
pub mod projects;
pub mod rate_limits;
pub mod siteplan_mappings;
pub mod unit_events;
pub mod unit_price_drops;
pub mod units;
pub mod users;
pub mod wallet_transactions;
pub mod wallets;
pub mod watches;
