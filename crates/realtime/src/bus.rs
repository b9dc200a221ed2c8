//! The event bus: how a committed event reaches the hub of every instance.

use std::sync::Arc;

use async_trait::async_trait;

use crate::hub::Hub;
use crate::model::{BookingNote, FeedEvent, Revocation, UnitEvent, UnitsChanged};

/// Failure of a bus operation.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The Redis URL could not be parsed.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(#[source] redis::RedisError),
    /// Redis could not be reached when starting.
    #[error("Redis at {addr} is unreachable: {detail}")]
    Unreachable {
        /// Host and port (never the password).
        addr: String,
        /// What failed.
        detail: String,
    },
    /// A Redis command failed.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A Redis command did not answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The event could not be encoded.
    #[error("encoding the event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Publishes committed events to every instance's hub.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publish a committed event to every instance (fire-and-forget fast path; errors are logged by the caller).
    async fn publish(&self, event: &UnitEvent) -> Result<(), BusError>;

    /// Publish a committed token revocation to every instance's hub (fire-and-forget like
    /// `publish`: the catch-up tick reads revocations from the store too).
    async fn publish_revocation(&self, revocation: &Revocation) -> Result<(), BusError>;

    /// Publish a committed change of a project's unit list to every instance's hub
    /// (fire-and-forget: the catch-up tick compares unit-list versions too).
    async fn publish_units_changed(&self, change: &UnitsChanged) -> Result<(), BusError>;

    /// Publish committed feed items to every instance's hub (fire-and-forget like `publish`;
    /// the catch-up tick covers a lost message). Any number of items, any feeds, in one call;
    /// in seq order per feed.
    async fn publish_feed(&self, events: &[FeedEvent]) -> Result<(), BusError>;

    /// Publish a staff `booking` note (payments after the booking) to every instance's
    /// subscribers of the project's staff channel. Live only: a lost message is not recovered
    /// (the buyer's notifications and the REST lists are the lossless record).
    async fn publish_booking_note(&self, note: &BookingNote) -> Result<(), BusError>;
}

/// Single-instance bus: publishing delivers straight to the local hub.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    hub: Arc<Hub>,
}

impl InProcessBus {
    /// A bus delivering to `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        InProcessBus { hub }
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, event: &UnitEvent) -> Result<(), BusError> {
        self.hub.metrics().events_published.inc();
        self.hub.deliver(event.clone());
        Ok(())
    }

    async fn publish_revocation(&self, revocation: &Revocation) -> Result<(), BusError> {
        self.hub.revoke(*revocation);
        Ok(())
    }

    async fn publish_units_changed(&self, change: &UnitsChanged) -> Result<(), BusError> {
        self.hub.units_changed(*change).await;
        Ok(())
    }

    async fn publish_feed(&self, events: &[FeedEvent]) -> Result<(), BusError> {
        self.hub.deliver_feed(events.to_vec());
        Ok(())
    }

    async fn publish_booking_note(&self, note: &BookingNote) -> Result<(), BusError> {
        self.hub.deliver_booking_note(note);
        Ok(())
    }
}
