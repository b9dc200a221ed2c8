//! Kavling's domain: SeaORM entities and the business services (users, projects, units, bookings,
//! customers, leads, wallet, audit). No HTTP here: the server calls these services and maps
//! [`CoreError`] to problem+json in one place.

pub mod audit;
pub mod auth;
pub mod clock;
pub mod db;
pub mod domain;
pub mod entities;
pub mod error;
pub mod event_store;
pub mod events;
pub mod json;
pub mod list;
pub mod pii;
pub mod seed;
pub mod services;

use std::sync::Arc;

pub use error::{CoreError, CoreResult, FieldError};

/// Everything a business action needs: the database, the event bus, keys and the clock.
#[derive(Clone)]
pub struct Services {
    /// The connection pool.
    pub db: sea_orm::DatabaseConnection,
    /// Where committed unit events are published.
    pub bus: Arc<dyn kavling_realtime::Bus>,
    /// Access-token keys.
    pub tokens: auth::TokenKeys,
    /// Personal-data cipher.
    pub pii: pii::PiiCipher,
    /// The clock (injectable for tests).
    pub clock: Arc<dyn clock::Clock>,
    /// Prepared siteplans of this instance.
    pub siteplans: Arc<services::siteplans::SiteplanCache>,
    /// Largest accepted siteplan, in bytes.
    pub max_siteplan_bytes: usize,
    /// Where uploaded files (booking documents, KYC images) are stored under generated names.
    pub storage_dir: std::path::PathBuf,
    /// Annual KPR interest rate for the lead affordability score, in basis points (900 = 9%).
    pub kpr_rate_bps: u32,
    /// Queues this instance's bookings for the year's counter row (see [`services::bookings`]).
    pub booking_gate: services::bookings::BookingGate,
    /// Wakes this instance's notifier after a commit that may concern watchers.
    pub notifier: services::watches::NotifierWake,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}
