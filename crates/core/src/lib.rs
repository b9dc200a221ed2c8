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
pub mod list;
pub mod pii;
pub mod seed;
pub mod services;
pub mod unit_changes;
pub mod whole_numbers;

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
    /// Chat messages a user may send (per minute and burst), decided in the database.
    pub chat_rate: services::ratelimit::RateLimit,
    /// Wakes this instance's notifier after a commit that may concern watchers.
    pub notifier: services::watches::NotifierWake,
}

/// The settings [`Services::new`] takes besides the database, the bus and the clock.
#[derive(Clone, Debug)]
pub struct ServiceSettings {
    /// The shared HS256 secret for access tokens.
    pub jwt_secret: Vec<u8>,
    /// The 32-byte personal-data master key.
    pub pii_key: [u8; 32],
    /// Largest accepted siteplan, in bytes.
    pub max_siteplan_bytes: usize,
    /// Where uploaded files are stored.
    pub storage_dir: std::path::PathBuf,
    /// Annual KPR interest rate in basis points.
    pub kpr_rate_bps: u32,
    /// Chat messages a user may send (per minute and burst).
    pub chat_rate: services::ratelimit::RateLimit,
}

impl Services {
    /// Services over a migrated database and a bus, with an empty siteplan cache and booking queue.
    pub fn new(
        db: sea_orm::DatabaseConnection,
        bus: Arc<dyn kavling_realtime::Bus>,
        clock: Arc<dyn clock::Clock>,
        settings: &ServiceSettings,
    ) -> CoreResult<Self> {
        Ok(Services {
            db,
            bus,
            tokens: auth::TokenKeys::new(&settings.jwt_secret),
            pii: pii::PiiCipher::new(&settings.pii_key)?,
            clock,
            siteplans: Arc::default(),
            max_siteplan_bytes: settings.max_siteplan_bytes,
            storage_dir: settings.storage_dir.clone(),
            kpr_rate_bps: settings.kpr_rate_bps,
            booking_gate: Default::default(),
            chat_rate: settings.chat_rate,
            notifier: Default::default(),
        })
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}
