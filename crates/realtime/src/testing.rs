//! An in-memory [`EventStore`] for tests and demos: commits changes, prunes history,
//! counts queries and can delay or fail them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use uuid::Uuid;

use crate::model::{
    BookingInfo, FeedEvent, FeedKey, ProjectHead, Snapshot, TokenChange, UnitEvent, UnitState,
    status_color,
};
use crate::store::{EventStore, StoreError};
use crate::sync::lock;

#[derive(Debug, Default)]
struct ProjectData {
    seq: i64,
    units_version: i64,
    units: Vec<UnitState>,
    events: Vec<UnitEvent>,
    /// Events with seq <= this are gone.
    pruned_upto: i64,
}

/// In-memory event store with query counters.
#[derive(Debug, Default)]
pub struct MemoryStore {
    projects: Mutex<HashMap<Uuid, ProjectData>>,
    /// Users' token versions, as `set_token_version` left them.
    tokens: Mutex<HashMap<Uuid, TokenChange>>,
    /// Committed items of each feed, in seq order.
    feeds: Mutex<HashMap<FeedKey, Vec<FeedEvent>>>,
    /// Parties of each conversation.
    conversations: Mutex<HashMap<Uuid, Vec<Uuid>>>,
    delay_ms: AtomicU64,
    failing: AtomicBool,
    /// Number of `snapshot` calls.
    pub snapshot_calls: AtomicU64,
    /// Number of `events_after` calls.
    pub events_after_calls: AtomicU64,
    /// Number of `latest_heads` calls.
    pub latest_heads_calls: AtomicU64,
    /// Number of `feed_after` calls.
    pub feed_after_calls: AtomicU64,
    /// Number of `feed_heads` calls.
    pub feed_heads_calls: AtomicU64,
    /// Number of `conversation_parties` calls.
    pub conversation_parties_calls: AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a user's new token version now (a committed revocation; nothing is published).
    pub fn set_token_version(&self, user_id: Uuid, token_version: i64) {
        self.set_token_version_at(user_id, token_version, Utc::now());
    }

    /// Records a user's new token version as stamped at `changed_at` (by any instance's clock).
    pub fn set_token_version_at(
        &self,
        user_id: Uuid,
        token_version: i64,
        changed_at: chrono::DateTime<Utc>,
    ) {
        lock(&self.tokens).insert(
            user_id,
            TokenChange {
                user_id,
                token_version,
                changed_at,
            },
        );
    }

    /// Creates a project with `n` AVAILABLE units named A1..An; returns its id and unit ids.
    pub fn add_project(&self, n: usize) -> (Uuid, Vec<Uuid>) {
        let id = Uuid::now_v7();
        let units: Vec<UnitState> = (1..=n)
            .map(|i| UnitState {
                unit_id: Uuid::now_v7(),
                block_number: format!("A{i}"),
                status: "AVAILABLE".to_owned(),
                color: "#22c55e".to_owned(),
            })
            .collect();
        let ids = units.iter().map(|u| u.unit_id).collect();
        lock(&self.projects).insert(
            id,
            ProjectData {
                units,
                ..ProjectData::default()
            },
        );
        (id, ids)
    }

    /// Adds an AVAILABLE unit to a project without an event (as unit creation does), bumping
    /// the project's unit-list version; nothing is published.
    pub fn add_unit(&self, project_id: Uuid, block_number: &str) -> Option<Uuid> {
        let mut projects = lock(&self.projects);
        let p = projects.get_mut(&project_id)?;
        p.units_version += 1;
        let unit_id = Uuid::now_v7();
        p.units.push(UnitState {
            unit_id,
            block_number: block_number.to_owned(),
            status: "AVAILABLE".to_owned(),
            color: "#22c55e".to_owned(),
        });
        Some(unit_id)
    }

    /// Commits a status change and returns its event (not published anywhere).
    /// Returns `None` for an unknown project or unit.
    pub fn commit(
        &self,
        project_id: Uuid,
        unit_id: Uuid,
        status: &str,
        booking: Option<BookingInfo>,
    ) -> Option<UnitEvent> {
        let mut projects = lock(&self.projects);
        let p = projects.get_mut(&project_id)?;
        let unit = p.units.iter_mut().find(|u| u.unit_id == unit_id)?;
        let previous = std::mem::replace(&mut unit.status, status.to_owned());
        unit.color = status_color(status).unwrap_or("#000000").to_owned();
        p.seq += 1;
        let event = UnitEvent {
            project_id,
            seq: p.seq,
            unit_id,
            block_number: unit.block_number.clone(),
            status: status.to_owned(),
            previous_status: previous,
            color: unit.color.clone(),
            at: Utc::now(),
            booking,
        };
        p.events.push(event.clone());
        Some(event)
    }

    /// Commits the next item of a feed (seq = its last + 1, stamped now) and returns it (not
    /// published anywhere). `body` holds the frame's fields after `seq`.
    pub fn commit_feed(
        &self,
        key: FeedKey,
        body: serde_json::Map<String, serde_json::Value>,
    ) -> FeedEvent {
        let mut feeds = lock(&self.feeds);
        let items = feeds.entry(key).or_default();
        let seq = items.last().map_or(1, |e| e.seq + 1);
        let event = FeedEvent {
            key,
            seq,
            at: Utc::now(),
            body,
        };
        items.push(event.clone());
        event
    }

    /// Creates a conversation between `parties`; returns its id.
    pub fn add_conversation(&self, parties: &[Uuid]) -> Uuid {
        let id = Uuid::now_v7();
        lock(&self.conversations).insert(id, parties.to_vec());
        id
    }

    /// Forgets events with seq <= `upto` (as a pruning job would).
    pub fn prune(&self, project_id: Uuid, upto: i64) {
        if let Some(p) = lock(&self.projects).get_mut(&project_id) {
            p.events.retain(|e| e.seq > upto);
            p.pruned_upto = p.pruned_upto.max(upto);
        }
    }

    /// Makes every query sleep this long first (to pile up concurrent callers).
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Makes every query fail (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    async fn pause(&self) -> Result<(), StoreError> {
        let ms = self.delay_ms.load(Ordering::Relaxed);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if self.failing.load(Ordering::Relaxed) {
            return Err(StoreError::Other("memory store set to fail".to_owned()));
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn events_after(
        &self,
        project_id: Uuid,
        after: i64,
        limit: u64,
    ) -> Result<Option<Vec<UnitEvent>>, StoreError> {
        self.events_after_calls.fetch_add(1, Ordering::Relaxed);
        self.pause().await?;
        let projects = lock(&self.projects);
        let Some(p) = projects.get(&project_id) else {
            return Ok(Some(Vec::new()));
        };
        if after < p.pruned_upto {
            return Ok(None);
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(Some(
            p.events
                .iter()
                .filter(|e| e.seq > after)
                .take(limit)
                .cloned()
                .collect(),
        ))
    }

    async fn snapshot(&self, project_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        self.snapshot_calls.fetch_add(1, Ordering::Relaxed);
        self.pause().await?;
        Ok(lock(&self.projects).get(&project_id).map(|p| Snapshot {
            project_id,
            seq: p.seq,
            units_version: p.units_version,
            units: p.units.clone(),
        }))
    }

    async fn token_changes(
        &self,
        since: chrono::DateTime<Utc>,
    ) -> Result<Vec<TokenChange>, StoreError> {
        self.pause().await?;
        Ok(lock(&self.tokens)
            .values()
            .filter(|c| c.changed_at > since)
            .copied()
            .collect())
    }

    async fn feed_after(
        &self,
        key: FeedKey,
        after: i64,
        limit: u64,
    ) -> Result<Vec<FeedEvent>, StoreError> {
        self.feed_after_calls.fetch_add(1, Ordering::Relaxed);
        self.pause().await?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(lock(&self.feeds)
            .get(&key)
            .map(|items| {
                items
                    .iter()
                    .filter(|e| e.seq > after)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn feed_heads(&self, keys: &[FeedKey]) -> Result<HashMap<FeedKey, i64>, StoreError> {
        self.feed_heads_calls.fetch_add(1, Ordering::Relaxed);
        self.pause().await?;
        let feeds = lock(&self.feeds);
        let conversations = lock(&self.conversations);
        Ok(keys
            .iter()
            .filter_map(|key| {
                let head = feeds.get(key).and_then(|items| items.last()).map(|e| e.seq);
                // Every user is known (the hub checked the token); a conversation only if added.
                let known = match key {
                    FeedKey::User(_) => true,
                    FeedKey::Conversation(id) => conversations.contains_key(id),
                };
                (known || head.is_some()).then(|| (*key, head.unwrap_or(0)))
            })
            .collect())
    }

    async fn conversation_parties(
        &self,
        conversation_id: Uuid,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        self.conversation_parties_calls
            .fetch_add(1, Ordering::Relaxed);
        self.pause().await?;
        Ok(lock(&self.conversations).get(&conversation_id).cloned())
    }

    async fn latest_heads(
        &self,
        project_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, ProjectHead>, StoreError> {
        self.latest_heads_calls.fetch_add(1, Ordering::Relaxed);
        self.pause().await?;
        let projects = lock(&self.projects);
        Ok(project_ids
            .iter()
            .filter_map(|id| {
                projects.get(id).map(|p| {
                    let head = ProjectHead {
                        seq: p.seq,
                        units_version: p.units_version,
                    };
                    (*id, head)
                })
            })
            .collect())
    }
}
