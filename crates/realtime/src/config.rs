//! Tuning knobs of the hub.

use std::time::Duration;

/// Tuning knobs of the hub; `Default` gives production values.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Frames a client may have queued before it is closed as slow (1013).
    pub queue_capacity: usize,
    /// Bytes of frames a client may have queued behind the one being written before it is
    /// closed as slow (1013), beside `queue_capacity`. The frame being written does not count,
    /// so one snapshot larger than this still reaches a client that keeps up; keep it above
    /// the largest snapshot (2 MiB: ~20,000 units). Frames are shared between subscribers, so
    /// this bounds what one slow client can keep alive, not what it copies.
    pub queue_max_bytes: usize,
    /// Subscriptions allowed per connection.
    pub max_subscriptions: usize,
    /// Recent events kept in memory per project, to replay `since` without the store.
    pub replay_buffer: usize,
    /// Largest `since` gap answered by a replay; further behind gets a snapshot (a feed:
    /// `subscribed` with recovered false, the client re-reads the REST list).
    pub max_replay: i64,
    /// Page size of `events_after` calls.
    pub store_page: u64,
    /// How long a replay may wait for a client to drain its queue before closing it as slow.
    pub replay_patience: Duration,
    /// A project cache without subscribers is dropped after this long.
    pub idle_evict_after: Duration,
    /// Client frames a connection may have waiting before it is closed (1008).
    pub max_pending_ops: usize,
    /// Longest client text frame accepted (longer ones get `bad_request`).
    pub max_frame_len: usize,
    /// Events arriving ahead of a gap kept in memory while the gap is filled.
    pub max_pending_events: usize,
    /// Longest wait for any store call; a stuck database must not hang subscribers forever.
    pub store_timeout: Duration,
    /// How far back each revocation catch-up re-reads before the newest change it has seen:
    /// covers a change stamped before a slow commit, and clock skew between instances.
    pub revocation_overlap: Duration,
    /// How long a revocation is remembered for connections registering after it. Only one that
    /// authenticated (read the user) just before the revocation committed can, so minutes are
    /// plenty, and the map stays small.
    pub revocation_memory: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            queue_capacity: 256,
            queue_max_bytes: 2 * 1024 * 1024,
            max_subscriptions: 100,
            replay_buffer: 1024,
            max_replay: 10_000,
            store_page: 1000,
            replay_patience: Duration::from_secs(10),
            idle_evict_after: Duration::from_secs(30),
            max_pending_ops: 256,
            max_frame_len: 4096,
            max_pending_events: 10_000,
            store_timeout: Duration::from_secs(5),
            revocation_overlap: Duration::from_secs(10),
            revocation_memory: Duration::from_secs(600),
        }
    }
}
