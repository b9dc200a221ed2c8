//! Realtime hub and event bus for Kavling: per-project channels over WebSocket sessions,
//! exactly-once ordered delivery by `seq`, an in-memory availability cache, catch-up from
//! the database, and fan-out across instances through Redis pub/sub. No HTTP, no database.
//!
//! Wiring (server side):
//! - `let hub = Hub::new(store, HubConfig::default()); hub.spawn_catch_up(Duration::from_secs(1));`
//! - bus: `InProcessBus::new(hub.clone())`, or `RedisBus::connect(&redis_url, hub.clone()).await?`
//!   (keep the bus alive: dropping a `RedisBus` stops its subscriber).
//! - after each committed status change: `bus.publish(&event)` (log errors; the catch-up
//!   tick delivers what a lost publish missed within ~1 s).
//! - after unit changes without an event (units added, renamed): `hub.refresh_units(id)`.
//! - `/availability`: `hub.snapshot(id)`; `/metrics`: `hub.metrics().render_prometheus()`.
//!
//! The WebSocket session loop (actix-ws) stays thin:
//!
//! ```ignore
//! let (res, mut session, stream) = actix_ws::handle(&req, body)?;
//! let mut stream = stream.max_frame_size(64 * 1024).aggregate_continuations().max_continuation_size(64 * 1024);
//! actix_web::rt::spawn(async move {
//!     let (handle, mut outbound) = hub.connect();
//!     let (mut ping, mut last_seen) = (tokio::time::interval(Duration::from_secs(20)), Instant::now());
//!     let reason = loop { tokio::select! {
//!         out = outbound.recv() => match out {
//!             Some(Outbound::Text(t)) => if timeout(Duration::from_secs(10), session.text(t)).await.map_or(true, |r| r.is_err()) { break None },
//!             Some(Outbound::Close { code, reason }) => break Some(CloseReason { code: code.into(), description: Some(reason) }),
//!             None => break None,
//!         },
//!         msg = stream.recv() => { last_seen = Instant::now(); match msg {
//!             Some(Ok(AggregatedMessage::Text(t))) => handle.handle_text(&t, staff_allowed),
//!             Some(Ok(AggregatedMessage::Binary(_))) => handle.handle_text("", staff_allowed), // -> bad_request
//!             Some(Ok(AggregatedMessage::Ping(b))) => { let _ = session.pong(&b).await; }
//!             Some(Ok(AggregatedMessage::Pong(_))) => {}
//!             Some(Ok(AggregatedMessage::Close(r))) => break r,
//!             Some(Err(_)) | None => break None,
//!         }},
//!         _ = ping.tick() => if last_seen.elapsed() > Duration::from_secs(60) || session.ping(b"").await.is_err() { break None },
//!     }};
//!     drop(handle); // removes every subscription
//!     let _ = session.close(reason).await;
//! });
//! ```

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
pub use conn::{CLOSE_POLICY, CLOSE_SLOW_CLIENT, ConnectionHandle, Outbox};
pub use hub::{Hub, HubConfig, parse_channel};
pub use metrics::{Counter, Gauge, LATENCY_BUCKETS_MS, LatencyHistogram, Metrics};
pub use model::{
    BookingInfo, ClientMessage, Outbound, ServerMessage, Snapshot, UnitEvent, UnitState,
    status_color,
};
pub use redis_bus::{RedisBus, RedisBusConfig};
pub use store::{EventStore, StoreError};
