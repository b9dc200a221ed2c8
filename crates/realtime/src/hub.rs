//! The hub: one per server instance. It owns the project caches (`project.rs`), the feeds
//! (`feed.rs`) and the accounts of authenticated connections (`accounts.rs`), takes committed
//! events from the bus, and runs the catch-up tick. The client protocol (requests, replies,
//! subscribe and replay) is in `protocol.rs`.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::accounts::Accounts;
use crate::config::HubConfig;
use crate::conn::{CLOSE_POLICY, Conn, Sub};
use crate::feed::Feeds;
use crate::metrics::Metrics;
use crate::model::{BookingNote, FeedEvent, Revocation, Snapshot, UnitEvent, UnitsChanged};
use crate::project::Projects;
use crate::store::{EventStore, StoreError, timed};
use crate::sync::lock;

/// The realtime hub: one per server instance, shared as `Arc<Hub>`.
pub struct Hub {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) config: HubConfig,
    pub(crate) metrics: Arc<Metrics>,
    /// Projects with a cache or local subscribers.
    pub(crate) projects: Arc<Projects>,
    /// Users' notifications and conversations' messages with local subscribers.
    pub(crate) feeds: Arc<Feeds>,
    pub(crate) accounts: Mutex<Accounts>,
    pub(crate) next_conn: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Creates a hub reading history and snapshots from `store`.
    pub fn new(store: Arc<dyn EventStore>, config: HubConfig) -> Arc<Hub> {
        let metrics = Arc::new(Metrics::default());
        let projects = Projects::new(store.clone(), config.clone(), metrics.clone());
        let feeds = Feeds::new(store.clone(), config.clone(), metrics.clone());
        Arc::new(Hub {
            store,
            config,
            metrics,
            projects,
            feeds,
            accounts: Mutex::new(Accounts::new()),
            next_conn: AtomicU64::new(1),
        })
    }

    /// The hub's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The hub's configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Remembers an authenticated connection for revocations; closes it at once if its token
    /// was revoked already.
    pub(crate) fn register_conn(&self, conn: &Arc<Conn>) {
        self.metrics.connections.inc();
        if !lock(&self.accounts).register(conn) {
            self.close_revoked(conn);
        }
    }

    fn close_revoked(&self, conn: &Conn) {
        self.metrics.revoked_closes.inc();
        conn.close(CLOSE_POLICY, "token revoked");
    }

    /// Applies a revocation to this instance: closes (1008 "token revoked") the user's local
    /// connections whose token version is below `min_version`, and remembers it for connections
    /// that register later. Idempotent; an older revocation than one seen changes nothing.
    /// Returns how many connections were closed.
    pub fn revoke(&self, revocation: Revocation) -> usize {
        let revoked = lock(&self.accounts).revoke(revocation);
        for conn in &revoked {
            self.close_revoked(conn);
        }
        revoked.len()
    }

    /// True if the connection's token was revoked (checked at subscribe, in memory).
    pub(crate) fn is_revoked(&self, conn: &Conn) -> bool {
        lock(&self.accounts).is_revoked(conn.principal)
    }

    /// Forgets revocations older than `revocation_memory` (the catch-up tick calls it).
    pub fn forget_old_revocations(&self) {
        lock(&self.accounts).forget_older_than(self.config.revocation_memory);
    }

    /// Reads the token versions changed since the last call from the store (one query) and
    /// applies them as revocations, so a lost bus message costs at most one catch-up interval.
    /// Returns how many connections were closed.
    pub async fn catch_up_revocations(&self) -> Result<usize, StoreError> {
        let overlap = chrono::Duration::from_std(self.config.revocation_overlap)
            .unwrap_or(chrono::Duration::zero());
        let since = lock(&self.accounts).watermark() - overlap;
        let changes = timed(
            self.config.store_timeout,
            &self.metrics,
            self.store.token_changes(since),
        )
        .await?;
        let mut closed = 0;
        for change in &changes {
            closed += self.revoke(Revocation {
                user_id: change.user_id,
                min_version: change.token_version,
            });
        }
        if let Some(newest) = changes.iter().map(|c| c.changed_at).max() {
            lock(&self.accounts).advance_watermark(newest);
        }
        Ok(closed)
    }

    /// Removes every subscription of a connection (called when its handle is dropped).
    pub(crate) fn disconnect(&self, conn: &Arc<Conn>) {
        lock(&self.accounts).unregister(conn);
        let channels = {
            let mut subs = lock(&conn.subs);
            subs.closed = true;
            std::mem::take(&mut subs.channels)
        };
        for sub in channels {
            self.remove_sub(conn.id, sub);
        }
        conn.close(1000, "bye");
        self.metrics.connections.dec();
    }

    /// Removes one subscription from the project or feed that holds it.
    pub(crate) fn remove_sub(&self, conn_id: u64, sub: Sub) {
        match sub {
            Sub::Project(project_id, staff) => {
                self.projects.remove_sub(conn_id, project_id, staff);
            }
            Sub::Feed(key) => self.feeds.remove_sub(conn_id, key),
        }
    }

    /// Current units and seq of a project from the cache (loading it once if cold).
    /// Ok(None) if the project does not exist. Handy for `GET /projects/{id}/availability`.
    pub async fn snapshot(&self, project_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        self.projects.snapshot(project_id).await
    }

    /// Hands a committed event to the hub (from any bus); never blocks on I/O.
    /// Duplicates are dropped, gaps are filled from the store before later events go out.
    pub fn deliver(&self, event: UnitEvent) {
        self.projects.deliver(event);
    }

    /// Hands committed feed items to the hub (from any bus, any feeds, in seq order per feed);
    /// never blocks on I/O. Duplicates are dropped, gaps are filled from the store before later
    /// items go out, and items of feeds nobody here subscribes to cost a map lookup.
    pub fn deliver_feed(&self, events: Vec<FeedEvent>) {
        self.feeds.deliver(events);
    }

    /// Sends a staff `booking` note to this instance's subscribers of the project's staff
    /// channel. Live only: no seq, no replay, nothing kept (the buyer's `user:` notifications
    /// and the REST lists are the lossless record). Returns how many got it.
    pub fn deliver_booking_note(&self, note: &BookingNote) -> usize {
        self.projects.deliver_booking_note(note)
    }

    /// Re-reads the units of a cached project after changes that emit no event (units added
    /// or removed, block numbers renamed). Statuses stay ordered by seq: if the store is ahead,
    /// the missing events are delivered first. Does nothing for a project not cached here.
    pub async fn refresh_units(&self, project_id: Uuid) -> Result<(), StoreError> {
        self.projects.refresh_units(project_id).await
    }

    /// Applies a committed unit-list change (from the bus): a cached project whose list is older
    /// re-reads it, so new subscribers' snapshots include the new units. Does nothing for a
    /// project not cached here or already at that version.
    pub async fn units_changed(&self, change: UnitsChanged) {
        self.projects.units_changed(change).await;
    }

    /// Checks every cached project against the store in one query, and every feed with local
    /// subscribers in one more (`feed_heads`), and fills any gap. Call after a bus reconnect;
    /// the catch-up tick calls it every interval. Returns how many projects and feeds were
    /// behind (or the first error, after trying both).
    pub async fn catch_up_all(&self) -> Result<usize, StoreError> {
        let projects = self.projects.catch_up().await;
        let feeds = self.catch_up_feeds().await;
        Ok(projects? + feeds?)
    }

    /// Checks every feed with local subscribers against the store in ONE `feed_heads` call,
    /// fills those behind and drops feeds nobody subscribes to. Returns how many were behind.
    pub async fn catch_up_feeds(&self) -> Result<usize, StoreError> {
        self.feeds.catch_up().await
    }

    /// Drops caches of projects without subscribers for `idle_evict_after`.
    pub fn evict_idle(&self) {
        self.projects.evict_idle();
    }

    /// Projects currently cached by this hub.
    pub fn cached_projects(&self) -> usize {
        self.projects.len()
    }

    /// Feeds (user and conversation channels) this hub holds: those with local subscribers.
    pub fn cached_feeds(&self) -> usize {
        self.feeds.len()
    }

    /// One catch-up tick: one `latest_heads` query for all cached projects and one `feed_heads`
    /// call for all subscribed feeds with gap fills where behind, one query for recent token
    /// revocations, and eviction of idle caches and old revocations. Answers how many events and
    /// revocations it caught up. The server runs it among its periodic jobs.
    pub async fn catch_up_once(&self) -> Result<u64, StoreError> {
        let events = self.catch_up_all().await;
        let revocations = self.catch_up_revocations().await;
        self.forget_old_revocations();
        self.evict_idle();
        let caught = events? + revocations?;
        Ok(u64::try_from(caught).unwrap_or(u64::MAX))
    }

    /// Spawns [`Hub::catch_up_once`] every `interval` (for embedders without a job runner);
    /// stops when the hub is dropped.
    pub fn spawn_catch_up(self: &Arc<Self>, interval: Duration) -> JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(hub) = weak.upgrade() else { return };
                if let Err(e) = hub.catch_up_once().await {
                    tracing::warn!(error = %e, "catch-up tick failed");
                }
            }
        })
    }
}
