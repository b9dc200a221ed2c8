//! Redis pub/sub bus: a `ConnectionManager` publishes, one supervised pub/sub connection
//! per instance receives (reconnect with backoff, ping for half-open links, catch up after).
//! Unit events travel on `<prefix>:project:<id>`, token revocations on `<prefix>:users`,
//! unit-list changes on `<prefix>:units`, feed items (notifications, messages) on `<prefix>:feeds`
//! as JSON arrays of at most `feed_chunk_bytes` each, and staff booking notes on
//! `<prefix>:bookings`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use tokio::task::AbortHandle;

use crate::bus::{Bus, BusError};
use crate::hub::Hub;
use crate::model::{BookingNote, FeedEvent, Revocation, UnitEvent, UnitsChanged};

/// Settings of a [`RedisBus`]; `Default` gives production values.
#[derive(Clone, Debug)]
pub struct RedisBusConfig {
    /// Channels are `<prefix>:project:<id>` (the subscriber uses the pattern `<prefix>:project:*`)
    /// and `<prefix>:users` for revocations.
    pub channel_prefix: String,
    /// How often the pub/sub connection is pinged.
    pub ping_interval: Duration,
    /// A ping slower than this means the connection is dead.
    pub ping_timeout: Duration,
    /// Time allowed to connect (at start and on each reconnect attempt).
    pub connect_timeout: Duration,
    /// Time allowed for a PUBLISH.
    pub publish_timeout: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Largest feed message: a burst of items is split into messages of at most this many
    /// bytes (an item larger than that travels alone).
    pub feed_chunk_bytes: usize,
}

impl Default for RedisBusConfig {
    fn default() -> Self {
        RedisBusConfig {
            channel_prefix: "kavling".to_owned(),
            ping_interval: Duration::from_secs(2),
            ping_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(3),
            publish_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            feed_chunk_bytes: 1024 * 1024,
        }
    }
}

/// Bus over Redis pub/sub; also delivers locally at once so same-instance latency skips Redis.
pub struct RedisBus {
    hub: Arc<Hub>,
    publisher: ConnectionManager,
    config: RedisBusConfig,
    supervisor: AbortHandle,
    subscribed: Arc<AtomicBool>,
    /// Tags this instance's booking notes, which carry no seq: the copy Redis sends back to us
    /// is recognised and skipped (the local hub already has it).
    origin: uuid::Uuid,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// Connects to Redis with default settings; fails fast if Redis is unreachable.
    pub async fn connect(url: &str, hub: Arc<Hub>) -> Result<RedisBus, BusError> {
        Self::connect_with_config(url, hub, RedisBusConfig::default()).await
    }

    /// Connects with explicit settings: checks Redis with a PING, subscribes, then supervises
    /// the subscription in a background task that lives as long as the bus.
    pub async fn connect_with_config(
        url: &str,
        hub: Arc<Hub>,
        config: RedisBusConfig,
    ) -> Result<RedisBus, BusError> {
        let client = redis::Client::open(url).map_err(BusError::InvalidUrl)?;
        let addr = client.get_connection_info().addr().to_string();
        let unreachable = |detail: String| BusError::Unreachable {
            addr: addr.clone(),
            detail,
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.publish_timeout))
            .set_number_of_retries(1)
            .set_max_delay(config.backoff_max);
        let mut publisher = tokio::time::timeout(
            config.connect_timeout,
            client.get_connection_manager_with_config(manager_config),
        )
        .await
        .map_err(|_| unreachable(format!("no connection within {:?}", config.connect_timeout)))?
        .map_err(|e| unreachable(e.to_string()))?;
        let _: String = tokio::time::timeout(
            config.connect_timeout,
            redis::cmd("PING").query_async(&mut publisher),
        )
        .await
        .map_err(|_| unreachable("PING timed out".to_owned()))?
        .map_err(|e| unreachable(e.to_string()))?;
        let origin = uuid::Uuid::now_v7();
        let channels = Channels {
            projects: format!("{}:project:*", config.channel_prefix),
            users: users_channel(&config.channel_prefix),
            units: units_channel(&config.channel_prefix),
            feeds: feeds_channel(&config.channel_prefix),
            bookings: bookings_channel(&config.channel_prefix),
            origin,
        };
        let pubsub = open_pubsub(&client, &channels, config.connect_timeout)
            .await
            .map_err(&unreachable)?;
        let subscribed = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn(supervise(
            client,
            pubsub,
            channels,
            hub.clone(),
            config.clone(),
            subscribed.clone(),
        ));
        tracing::info!(%addr, "Redis event bus connected");
        Ok(RedisBus {
            hub,
            publisher,
            config,
            supervisor: task.abort_handle(),
            subscribed,
            origin,
        })
    }

    /// True while the pub/sub subscriber is connected (for `/readyz`).
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    /// PINGs Redis over the publishing connection, within the publish timeout (for `/readyz`).
    pub async fn ping(&self) -> Result<(), BusError> {
        let mut conn = self.publisher.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        tokio::time::timeout(self.config.publish_timeout, ping)
            .await
            .map_err(|_| BusError::Timeout(self.config.publish_timeout))??;
        Ok(())
    }

    fn channel(&self, event: &UnitEvent) -> String {
        format!(
            "{}:project:{}",
            self.config.channel_prefix, event.project_id
        )
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, event: &UnitEvent) -> Result<(), BusError> {
        self.hub.metrics().events_published.inc();
        let payload = serde_json::to_string(event)?;
        // Local subscribers first; the copy coming back from Redis is dropped as a duplicate.
        self.hub.deliver(event.clone());
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.channel(event)).arg(payload);
        self.send(cmd).await
    }

    async fn publish_revocation(&self, revocation: &Revocation) -> Result<(), BusError> {
        let payload = serde_json::to_string(revocation)?;
        // Local connections first, as for events; the copy from Redis is a no-op.
        self.hub.revoke(*revocation);
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(users_channel(&self.config.channel_prefix))
            .arg(payload);
        self.send(cmd).await
    }

    async fn publish_units_changed(&self, change: &UnitsChanged) -> Result<(), BusError> {
        let payload = serde_json::to_string(change)?;
        // The local hub first, as for events; the copy from Redis finds it current.
        self.hub.units_changed(*change).await;
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(units_channel(&self.config.channel_prefix))
            .arg(payload);
        self.send(cmd).await
    }

    async fn publish_feed(&self, events: &[FeedEvent]) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let chunks = feed_chunks(events, self.config.feed_chunk_bytes)?;
        // Local subscribers first; the copies coming back from Redis are dropped as duplicates.
        self.hub.deliver_feed(events.to_vec());
        let channel = feeds_channel(&self.config.channel_prefix);
        // One after the other on one connection: Redis keeps their order, so each feed's
        // items arrive in seq order.
        for chunk in chunks {
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(&channel).arg(chunk);
            self.send(cmd).await?;
        }
        Ok(())
    }

    async fn publish_booking_note(&self, note: &BookingNote) -> Result<(), BusError> {
        let payload = serde_json::to_string(&NoteEnvelope {
            origin: self.origin,
            note: note.clone(),
        })?;
        self.hub.deliver_booking_note(note);
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(bookings_channel(&self.config.channel_prefix))
            .arg(payload);
        self.send(cmd).await
    }
}

/// A booking note on Redis, with the instance that published it.
#[derive(serde::Serialize, serde::Deserialize)]
struct NoteEnvelope {
    origin: uuid::Uuid,
    note: BookingNote,
}

/// Feed items as JSON arrays of at most `max_bytes` each (an item larger than that alone), in
/// the given order.
fn feed_chunks(events: &[FeedEvent], max_bytes: usize) -> Result<Vec<String>, serde_json::Error> {
    let mut chunks = Vec::new();
    let mut current = String::from("[");
    for event in events {
        let item = serde_json::to_string(event)?;
        if current.len() > 1 && current.len() + item.len() + 2 > max_bytes {
            current.push(']');
            chunks.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&item);
    }
    if current.len() > 1 {
        current.push(']');
        chunks.push(current);
    }
    Ok(chunks)
}

impl RedisBus {
    /// Runs a PUBLISH within the publish timeout.
    async fn send(&self, cmd: redis::Cmd) -> Result<(), BusError> {
        let mut conn = self.publisher.clone();
        let publish = cmd.query_async::<i64>(&mut conn);
        tokio::time::timeout(self.config.publish_timeout, publish)
            .await
            .map_err(|_| BusError::Timeout(self.config.publish_timeout))??;
        Ok(())
    }
}

/// The revocation channel of a prefix.
fn users_channel(prefix: &str) -> String {
    format!("{prefix}:users")
}

/// The unit-list channel of a prefix.
fn units_channel(prefix: &str) -> String {
    format!("{prefix}:units")
}

/// The feed channel of a prefix (every user's and conversation's items).
fn feeds_channel(prefix: &str) -> String {
    format!("{prefix}:feeds")
}

/// The staff booking-note channel of a prefix.
fn bookings_channel(prefix: &str) -> String {
    format!("{prefix}:bookings")
}

/// What the subscriber listens to.
#[derive(Clone, Debug)]
struct Channels {
    /// Pattern of the project channels.
    projects: String,
    /// The revocation channel.
    users: String,
    /// The unit-list channel.
    units: String,
    /// The feed channel.
    feeds: String,
    /// The booking-note channel.
    bookings: String,
    /// This instance's tag on booking notes.
    origin: uuid::Uuid,
}

async fn open_pubsub(
    client: &redis::Client,
    channels: &Channels,
    timeout: Duration,
) -> Result<PubSub, String> {
    let open = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.psubscribe(&channels.projects).await?;
        pubsub.subscribe(&channels.users).await?;
        pubsub.subscribe(&channels.units).await?;
        pubsub.subscribe(&channels.feeds).await?;
        pubsub.subscribe(&channels.bookings).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(timeout, open).await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no pub/sub connection within {timeout:?}")),
    }
}

/// Keeps one pub/sub connection alive for the life of the bus.
async fn supervise(
    client: redis::Client,
    first: PubSub,
    channels: Channels,
    hub: Arc<Hub>,
    config: RedisBusConfig,
    subscribed: Arc<AtomicBool>,
) {
    let mut current = Some(first);
    let mut backoff = config.backoff_min;
    loop {
        let pubsub = match current.take() {
            Some(p) => p,
            None => match open_pubsub(&client, &channels, config.connect_timeout).await {
                Ok(p) => {
                    hub.metrics().redis_reconnects.inc();
                    subscribed.store(true, Ordering::Relaxed);
                    tracing::info!("Redis pub/sub reconnected; catching up from the store");
                    backoff = config.backoff_min;
                    // Messages published while we were away are lost: ask the store.
                    let h = hub.clone();
                    tokio::spawn(async move {
                        if let Err(e) = h.catch_up_all().await {
                            tracing::warn!(error = %e, "catch-up after Redis reconnect failed");
                        }
                        if let Err(e) = h.catch_up_revocations().await {
                            tracing::warn!(error = %e, "revocation catch-up after Redis reconnect failed");
                        }
                    });
                    p
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "Redis pub/sub reconnect failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(config.backoff_max);
                    continue;
                }
            },
        };
        let reason = pump(pubsub, &hub, &config, &channels).await;
        subscribed.store(false, Ordering::Relaxed);
        tracing::warn!(%reason, "Redis pub/sub connection lost; reconnecting");
    }
}

/// Delivers messages until the connection ends or stops answering pings.
async fn pump(
    pubsub: PubSub,
    hub: &Arc<Hub>,
    config: &RedisBusConfig,
    channels: &Channels,
) -> String {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return "stream ended".to_owned();
                };
                if msg.get_channel_name() == channels.units {
                    match serde_json::from_slice::<UnitsChanged>(msg.get_payload_bytes()) {
                        Ok(change) => {
                            // Re-reading the list is a store round trip: never hold up the pump.
                            let hub = hub.clone();
                            tokio::spawn(async move { hub.units_changed(change).await });
                        }
                        Err(e) => tracing::warn!(error = %e, "ignoring undecodable unit-list change"),
                    }
                    continue;
                }
                if msg.get_channel_name() == channels.feeds {
                    match serde_json::from_slice::<Vec<FeedEvent>>(msg.get_payload_bytes()) {
                        Ok(events) => hub.deliver_feed(events),
                        Err(e) => tracing::warn!(error = %e, "ignoring undecodable feed items"),
                    }
                    continue;
                }
                if msg.get_channel_name() == channels.bookings {
                    match serde_json::from_slice::<NoteEnvelope>(msg.get_payload_bytes()) {
                        Ok(envelope) if envelope.origin == channels.origin => {}
                        Ok(envelope) => {
                            hub.deliver_booking_note(&envelope.note);
                        }
                        Err(e) => tracing::warn!(error = %e, "ignoring undecodable booking note"),
                    }
                    continue;
                }
                if msg.get_channel_name() == channels.users {
                    match serde_json::from_slice::<Revocation>(msg.get_payload_bytes()) {
                        Ok(revocation) => {
                            hub.revoke(revocation);
                        }
                        Err(e) => tracing::warn!(error = %e, "ignoring undecodable revocation"),
                    }
                    continue;
                }
                match serde_json::from_slice::<UnitEvent>(msg.get_payload_bytes()) {
                    Ok(event) => hub.deliver(event),
                    Err(e) => tracing::warn!(channel = msg.get_channel_name(), error = %e, "ignoring undecodable bus message"),
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(config.ping_timeout, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("ping failed: {e}"),
                    Err(_) => return format!("no pong within {:?}", config.ping_timeout),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::FeedKey;

    fn item(n: i64, size: usize) -> FeedEvent {
        let mut body = serde_json::Map::new();
        body.insert("text".to_owned(), "x".repeat(size).into());
        FeedEvent {
            key: FeedKey::User(uuid::Uuid::from_u128(n as u128 % 3)),
            seq: n,
            at: chrono::Utc::now(),
            body,
        }
    }

    #[test]
    fn feed_chunks_stay_under_the_limit_and_keep_the_order() {
        let events: Vec<FeedEvent> = (1..=100).map(|n| item(n, 150)).collect();
        let chunks = feed_chunks(&events, 1_000).unwrap();
        assert!(chunks.len() > 10, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() <= 1_000));
        let back: Vec<FeedEvent> = chunks
            .iter()
            .flat_map(|c| serde_json::from_str::<Vec<FeedEvent>>(c).unwrap())
            .collect();
        assert_eq!(back, events);
        // An item over the limit travels alone; nothing is dropped.
        let big = vec![item(1, 10), item(2, 5_000), item(3, 10)];
        let chunks = feed_chunks(&big, 1_000).unwrap();
        assert_eq!(chunks.len(), 3);
        assert!(feed_chunks(&[], 1_000).unwrap().is_empty());
        // The production limit puts a burst of 10,000 notifications in a handful of messages.
        let burst: Vec<FeedEvent> = (1..=10_000).map(|n| item(n, 300)).collect();
        let chunks = feed_chunks(&burst, RedisBusConfig::default().feed_chunk_bytes).unwrap();
        assert!(chunks.len() <= 6, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() <= 1024 * 1024));
    }
}
