//! Realtime hub and event bus for Kavling: per-project channels and per-user / per-conversation
//! feeds over WebSocket sessions,
//! exactly-once ordered delivery by `seq`, an in-memory availability cache, catch-up from
//! the database, and fan-out across instances through Redis pub/sub. No HTTP, no database.
//!
//! Wiring (server side):
//! - `let hub = Hub::new(store, HubConfig::default()); hub.spawn_catch_up(Duration::from_secs(1));`
//! - bus: `InProcessBus::new(hub.clone())`, or `RedisBus::connect(&redis_url, hub.clone()).await?`
//!   (keep the bus alive: dropping a `RedisBus` stops its subscriber).
//! - after each committed status change: `bus.publish(&event)` (log errors; the catch-up
//!   tick delivers what a lost publish missed within ~1 s).
//! - after a committed unit-list change (units added, renamed, removed; no status event):
//!   `bus.publish_units_changed(&UnitsChanged { project_id, units_version })`, which every
//!   instance's hub applies; the catch-up tick compares unit-list versions too (`latest_heads`).
//! - `/availability`: `hub.snapshot(id)`; `/metrics`: `hub.metrics().render_prometheus()`.
//! - after a committed token revocation (password change, disable):
//!   `bus.publish_revocation(&Revocation { user_id, min_version })`; the catch-up tick also reads
//!   recent ones from the store (`EventStore::token_changes`), so a lost message costs ~1 s.
//!
//! - feeds (v1.1: `user:<id>` notifications, `conversation:<id>` messages): implement
//!   `EventStore::{feed_after, feed_heads, conversation_parties}`; after each commit,
//!   `bus.publish_feed(&items)` (any number of items of any feeds, in seq order per feed; Redis
//!   carries them on `<prefix>:feeds` in messages of at most ~1 MiB). The catch-up tick reads
//!   every subscribed feed's head in one `feed_heads` call, so a lost publish costs ~1 s.
//!   `user:<id>` needs the connection's `Principal` to be that user; `conversation:<id>` asks
//!   `conversation_parties` at subscribe. A feed is held only while someone here subscribes.
//! - staff booking notes (payments after the booking): `bus.publish_booking_note(&note)`;
//!   delivered live to the project's staff subscribers only: no seq, no replay, a lost message
//!   is not recovered (the buyer's `user:` notifications and the REST lists are the record).
//!
//! The WebSocket transport stays thin (see `crates/server/src/ws.rs`):
//! - `let (handle, outbox) = hub.connect_as(principal);` (`Some(Principal)` for a connection that
//!   authenticated with a token: it is closed with 1008 once that token is revoked);
//! - client text frames: `handle.handle_text(&text, staff_allowed)`; replies, snapshots and
//!   events all arrive on the outbox, in order;
//! - the socket's writer drains the outbox: `outbox.recv().await`, or `outbox.poll_recv(cx)`
//!   from inside the writer's poll, writing each `Outbound::Text` as a text frame and
//!   ending the connection with the code of an `Outbound::Close` (1013 slow, 1008 flooding);
//! - dropping the handle removes every subscription; dropping the outbox stops the hub
//!   feeding the connection.

mod accounts;
mod bus;
mod config;
mod conn;
mod feed;
mod hub;
mod metrics;
mod model;
mod project;
mod protocol;
mod redis_bus;
mod store;
mod sync;
pub mod testing;

pub use bus::{Bus, BusError, InProcessBus};
pub use config::HubConfig;
pub use conn::{CLOSE_POLICY, CLOSE_SLOW_CLIENT, Outbox};
pub use hub::Hub;
pub use metrics::{Counter, Gauge, LATENCY_BUCKETS_MS, LatencyHistogram, Metrics};
pub use model::{
    BookingInfo, BookingNote, ClientMessage, FeedEvent, FeedKey, Outbound, Principal, ProjectHead,
    Revocation, ServerMessage, Snapshot, TokenChange, UnitEvent, UnitState, UnitsChanged,
    parse_feed_channel, status_color,
};
pub use protocol::{ConnectionHandle, parse_channel};
pub use redis_bus::{RedisBus, RedisBusConfig};
pub use store::{EventStore, StoreError};
