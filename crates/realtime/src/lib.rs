//! Realtime hub and event bus for Kavling: per-project channels over WebSocket sessions,
//! exactly-once ordered delivery by `seq`, an in-memory availability cache, catch-up from
//! the database, and fan-out across instances through Redis pub/sub. No HTTP, no database.

mod bus;
mod conn;
mod hub;
mod metrics;
mod model;
mod redis_bus;
mod store;
mod sync;
pub mod testing;

pub use bus::{Bus, BusError, InProcessBus};
pub use conn::{CLOSE_POLICY, CLOSE_SLOW_CLIENT, ConnectionHandle};
pub use hub::{Hub, HubConfig, parse_channel};
pub use metrics::{Counter, Gauge, LATENCY_BUCKETS_MS, LatencyHistogram, Metrics};
pub use model::{
    BookingInfo, ClientMessage, Outbound, ServerMessage, Snapshot, UnitEvent, UnitState,
    status_color,
};
pub use redis_bus::{RedisBus, RedisBusConfig};
pub use store::{EventStore, StoreError};
