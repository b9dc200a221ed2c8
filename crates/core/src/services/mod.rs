//! Business services, one module per area. Each action is one transaction.

pub mod idempotency;
pub mod kyc;
pub mod leads;
pub mod projects;
pub mod siteplans;
pub mod units;
pub mod users;
pub mod wallet;
