//! Business services, one module per area. Each action is one transaction.

pub mod accounts;
pub mod booking_notices;
pub mod bookings;
pub mod conversations;
pub mod customers;
pub mod disputes;
pub mod documents;
pub mod idempotency;
pub mod identity_numbers;
pub mod kyc;
pub mod leads;
pub mod notifications;
pub mod payments;
pub mod projects;
pub mod ratelimit;
pub mod siteplans;
pub mod units;
pub mod users;
pub mod wallet;
pub mod watches;
