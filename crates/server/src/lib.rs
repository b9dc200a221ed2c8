//! Kavling's HTTP and WebSocket server: routes, auth extractors, the one API error type
//! (problem+json), configuration and startup. Business rules live in `kavling-core`.

pub mod config;
pub mod csv_export;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod ws;
