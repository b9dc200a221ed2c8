//! Feeds (a user's notifications, a conversation's messages): per-feed ordering by seq,
//! exactly-once fan-out to local subscribers, gap fills and catch-up from the store.
//!
//! A feed holds only its last delivered seq, its local subscribers and (rarely) items that
//! arrived ahead of a gap: no history and no snapshot, since history is read over REST and
//! `since` replays come from the store. It exists while someone here subscribes to it and is
//! dropped when its last subscriber leaves, so 10,000 users each watching their own channel
//! cost 10,000 small entries. Heads are read in batches: concurrent subscribes share one
//! `feed_heads` call, and the catch-up tick makes one call for every feed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::config::HubConfig;
use crate::conn::{Conn, Sub};
use crate::metrics::Metrics;
use crate::model::{FeedEvent, FeedKey, ServerMessage};
use crate::store::{EventStore, StoreError, timed};
use crate::sync::lock;

/// Gap fills the catch-up tick runs at once (each is one `feed_after` query): after a lost
/// burst thousands of feeds may be behind, and the database should not get them all at once.
const FILL_CONCURRENCY: usize = 16;

/// Every feed with local subscribers, and the head reads in flight.
pub(crate) struct Feeds {
    store: Arc<dyn EventStore>,
    config: HubConfig,
    metrics: Arc<Metrics>,
    map: Mutex<HashMap<FeedKey, Arc<Feed>>>,
    loads: Mutex<LoadQueue>,
    /// Lets `&self` methods spawn tasks that own the feeds.
    this: Weak<Feeds>,
}

/// Feeds waiting for their head, read together by one task.
#[derive(Default)]
struct LoadQueue {
    waiting: Vec<Arc<Feed>>,
    running: bool,
}

/// One feed with local subscribers (or a subscribe in progress).
pub(crate) struct Feed {
    key: FeedKey,
    inner: Mutex<FeedInner>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Cold,
    Loading,
    Ready,
}

struct FeedInner {
    state: State,
    /// Subscribes waiting for the head (only while loading).
    waiters: Vec<Waker>,
    /// Removed from the map; a fresh `Feed` replaces it.
    detached: bool,
    /// Subscribe operations in progress (they keep the feed in the map).
    inflight: u32,
    /// A gap fill is running (single flight).
    filling: bool,
    /// Last seq delivered to every subscriber.
    seq: i64,
    subs: Vec<Arc<Conn>>,
    /// Items ahead of `seq + 1`, waiting for a gap fill.
    pending: BTreeMap<i64, FeedEvent>,
}

/// Keeps a feed in the map while a subscribe works on it; forgets it after if unused.
pub(crate) struct FeedRef<'a> {
    feeds: &'a Feeds,
    pub(crate) feed: Arc<Feed>,
}

impl Drop for FeedRef<'_> {
    fn drop(&mut self) {
        {
            let mut inner = lock(&self.feed.inner);
            inner.inflight = inner.inflight.saturating_sub(1);
        }
        self.feeds.forget_if_unused(&self.feed);
    }
}

/// Clears `filling` when a gap fill ends, however it ends.
struct FillGuard<'a>(&'a Feed);

impl Drop for FillGuard<'_> {
    fn drop(&mut self) {
        lock(&self.0.inner).filling = false;
    }
}

/// Ends a head-reading task cleanly even if it is cancelled: waiting feeds go back to cold and
/// their subscribers wake (and report `unavailable`) instead of waiting for ever.
struct LoaderGuard<'a> {
    feeds: &'a Feeds,
    batch: Vec<Arc<Feed>>,
    /// False once the task ended normally (and handed `running` back under the lock).
    armed: bool,
}

impl Drop for LoaderGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut rest = std::mem::take(&mut self.batch);
        {
            let mut q = lock(&self.feeds.loads);
            q.running = false;
            rest.append(&mut q.waiting);
        }
        for feed in rest {
            self.feeds.resolve(&feed, None);
        }
    }
}

/// Where a subscribe stands after looking at the feed under its lock.
pub(crate) enum FeedStep {
    /// Registered; `subscribed` is queued.
    Done,
    /// The connection went away meanwhile.
    Gone,
    /// The client saw a seq this instance has not: catch up from the store, then look again.
    CatchUpFirst,
    /// Replay items `from + 1 ..= upto` from the store, then look again.
    Fetch { from: i64, upto: i64 },
}

impl Feeds {
    /// An empty set of feeds reading from `store`.
    pub(crate) fn new(
        store: Arc<dyn EventStore>,
        config: HubConfig,
        metrics: Arc<Metrics>,
    ) -> Arc<Feeds> {
        Arc::new_cyclic(|this| Feeds {
            store,
            config,
            metrics,
            map: Mutex::new(HashMap::new()),
            loads: Mutex::new(LoadQueue::default()),
            this: this.clone(),
        })
    }

    /// Feeds currently held (each has local subscribers or a subscribe in progress).
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// The feed of `key`, created cold if new, kept while the returned reference lives.
    pub(crate) fn acquire(&self, key: FeedKey) -> FeedRef<'_> {
        let mut map = lock(&self.map);
        let feed = map
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Feed {
                    key,
                    inner: Mutex::new(FeedInner {
                        state: State::Cold,
                        waiters: Vec::new(),
                        detached: false,
                        inflight: 0,
                        filling: false,
                        seq: 0,
                        subs: Vec::new(),
                        pending: BTreeMap::new(),
                    }),
                })
            })
            .clone();
        lock(&feed.inner).inflight += 1;
        FeedRef { feeds: self, feed }
    }

    /// Drops the feed from the map if nobody uses it (no subscriber, no subscribe, no fill).
    fn forget_if_unused(&self, feed: &Arc<Feed>) {
        let mut map = lock(&self.map);
        if !map.get(&feed.key).is_some_and(|f| Arc::ptr_eq(f, feed)) {
            return;
        }
        let mut inner = lock(&feed.inner);
        if inner.unused() {
            inner.detached = true;
            drop(inner);
            map.remove(&feed.key);
        }
    }

    /// Drops every feed nobody uses (the catch-up tick calls it; normally the last
    /// unsubscribe already did).
    pub(crate) fn evict_unused(&self) {
        lock(&self.map).retain(|_, feed| {
            let mut inner = lock(&feed.inner);
            let unused = inner.unused();
            if unused {
                inner.detached = true;
            }
            !unused
        });
    }

    /// Waits until the feed knows its head (one batched `feed_heads` call for all feeds loading
    /// at the same time).
    pub(crate) async fn ensure_loaded(&self, feed: &Arc<Feed>) -> Result<(), StoreError> {
        let mut waited = false;
        std::future::poll_fn(|cx| {
            let mut inner = lock(&feed.inner);
            match inner.state {
                State::Ready => Poll::Ready(Ok(())),
                State::Cold if waited => Poll::Ready(Err(StoreError::Other(
                    "reading the feed's head failed".to_owned(),
                ))),
                State::Cold => {
                    inner.state = State::Loading;
                    inner.waiters.push(cx.waker().clone());
                    waited = true;
                    drop(inner);
                    self.request_load(feed.clone());
                    Poll::Pending
                }
                State::Loading => {
                    if !inner.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        inner.waiters.push(cx.waker().clone());
                    }
                    waited = true;
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Queues a feed for the head-reading task, starting it if idle.
    fn request_load(&self, feed: Arc<Feed>) {
        let start = {
            let mut q = lock(&self.loads);
            q.waiting.push(feed);
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            match (self.this.upgrade(), tokio::runtime::Handle::try_current()) {
                (Some(feeds), Ok(rt)) => {
                    rt.spawn(async move { feeds.run_loads().await });
                }
                _ => {
                    // Only reachable outside a runtime (subscribes run in one): fail the waiters.
                    drop(LoaderGuard {
                        feeds: self,
                        batch: Vec::new(),
                        armed: true,
                    });
                }
            }
        }
    }

    /// Reads heads for every queued feed, one `feed_heads` call per batch, until none wait.
    async fn run_loads(&self) {
        let mut guard = LoaderGuard {
            feeds: self,
            batch: Vec::new(),
            armed: true,
        };
        loop {
            // Let the subscribes already on their way join this batch (a reconnect storm
            // then costs a few reads, not one per user).
            tokio::task::yield_now().await;
            guard.batch = {
                let mut q = lock(&self.loads);
                if q.waiting.is_empty() {
                    q.running = false;
                    guard.armed = false;
                    return;
                }
                std::mem::take(&mut q.waiting)
            };
            let keys: Vec<FeedKey> = guard.batch.iter().map(|f| f.key).collect();
            let heads = timed(
                self.config.store_timeout,
                &self.metrics,
                self.store.feed_heads(&keys),
            )
            .await;
            if let Err(e) = &heads {
                tracing::warn!(feeds = keys.len(), error = %e, "reading feed heads failed");
            }
            for feed in std::mem::take(&mut guard.batch) {
                // A feed the store does not list has no items yet (its user or conversation was
                // checked before subscribing).
                let head = heads
                    .as_ref()
                    .ok()
                    .map(|h| h.get(&feed.key).copied().unwrap_or(0));
                self.resolve(&feed, head);
            }
        }
    }

    /// Ends a feed's load: ready at `head`, or back to cold (None); wakes its subscribes.
    fn resolve(&self, feed: &Arc<Feed>, head: Option<i64>) {
        let mut inner = lock(&feed.inner);
        if inner.state != State::Loading {
            return;
        }
        let waiters = std::mem::take(&mut inner.waiters);
        let mut gap = false;
        match head {
            Some(head) => {
                inner.seq = head;
                inner.state = State::Ready;
                self.drain_pending(&mut inner);
                gap = !inner.pending.is_empty() && !inner.filling;
                if gap {
                    inner.filling = true;
                }
            }
            None => {
                inner.state = State::Cold;
                inner.pending.clear();
            }
        }
        drop(inner);
        for w in waiters {
            w.wake();
        }
        if gap {
            self.spawn_fill(feed.clone());
        }
    }

    /// Decides, under the feed's lock, how a subscribe at `since` continues; registers the
    /// connection and queues `subscribed` once it is at the head, so the next live item is
    /// exactly the one after it. Without `since`, too far behind (`max_replay`), or ahead of
    /// the store after a catch-up: `subscribed` with recovered false at the head.
    pub(crate) fn step(
        &self,
        feed: &Feed,
        conn: &Arc<Conn>,
        since: Option<i64>,
        caught_up: bool,
    ) -> FeedStep {
        let mut inner = lock(&feed.inner);
        let cur = inner.seq;
        let recovered = match since {
            None => false,
            Some(from) if from > cur && !caught_up => return FeedStep::CatchUpFirst,
            Some(from) if from > cur => false,
            Some(from) if cur - from > self.config.max_replay => false,
            Some(from) if from < cur => return FeedStep::Fetch { from, upto: cur },
            Some(_) => true,
        };
        {
            let mut subs = lock(&conn.subs);
            if subs.closed || conn.is_dead() {
                return FeedStep::Gone;
            }
            subs.insert(Sub::Feed(feed.key));
        }
        if !inner.subs.iter().any(|c| c.id == conn.id) {
            inner.subs.push(conn.clone());
            self.metrics.subscriptions.inc();
        }
        let reply = ServerMessage::Subscribed {
            channel: feed.key.channel(),
            seq: cur,
            recovered,
        };
        conn.send_msg(&reply, &self.metrics);
        FeedStep::Done
    }

    /// Items of a feed after `after` from the store (at most `limit`), for replays.
    pub(crate) async fn fetch(
        &self,
        key: FeedKey,
        after: i64,
        limit: u64,
    ) -> Result<Vec<FeedEvent>, StoreError> {
        timed(
            self.config.store_timeout,
            &self.metrics,
            self.store.feed_after(key, after, limit),
        )
        .await
    }

    /// Removes a connection's subscription of a feed; drops the feed if it was the last.
    pub(crate) fn remove_sub(&self, conn_id: u64, key: FeedKey) {
        let mut map = lock(&self.map);
        let Some(feed) = map.get(&key).cloned() else {
            return;
        };
        let mut inner = lock(&feed.inner);
        let before = inner.subs.len();
        inner.subs.retain(|c| c.id != conn_id);
        if inner.subs.len() < before {
            self.metrics.subscriptions.dec();
        }
        if inner.unused() {
            inner.detached = true;
            drop(inner);
            map.remove(&key);
        }
    }

    /// Hands committed items to their feeds (from any bus); never blocks on I/O. Items of feeds
    /// nobody here subscribes to are ignored; duplicates are dropped; a gap is filled from the
    /// store before later items go out.
    pub(crate) fn deliver(&self, events: Vec<FeedEvent>) {
        let found: Vec<(Arc<Feed>, FeedEvent)> = {
            let map = lock(&self.map);
            events
                .into_iter()
                .filter_map(|e| map.get(&e.key).cloned().map(|f| (f, e)))
                .collect()
        };
        let mut gaps = Vec::new();
        for (feed, event) in found {
            let mut inner = lock(&feed.inner);
            match inner.state {
                State::Cold => continue,
                State::Loading => {
                    // Applied after the head is known if it is newer than it.
                    if inner.pending.len() < self.config.max_pending_events {
                        inner.pending.insert(event.seq, event);
                    }
                    continue;
                }
                State::Ready => {}
            }
            if event.seq <= inner.seq {
                self.metrics.feed_duplicates_dropped.inc();
                continue;
            }
            if event.seq == inner.seq + 1 {
                self.apply(&mut inner, &event);
                self.drain_pending(&mut inner);
            } else if inner.pending.len() < self.config.max_pending_events {
                inner.pending.insert(event.seq, event);
            }
            if !inner.pending.is_empty() && !inner.filling {
                inner.filling = true;
                drop(inner);
                gaps.push(feed);
            }
        }
        for feed in gaps {
            self.spawn_fill(feed);
        }
    }

    /// Applies the item with seq == `inner.seq + 1`: fan-out to every subscriber.
    fn apply(&self, inner: &mut FeedInner, event: &FeedEvent) {
        inner.seq = event.seq;
        if inner.subs.is_empty() {
            return;
        }
        let frame = event.to_frame();
        let before = inner.subs.len();
        inner
            .subs
            .retain(|conn| conn.send(frame.clone(), &self.metrics));
        for _ in inner.subs.len()..before {
            self.metrics.subscriptions.dec();
        }
        self.metrics.feed_frames_sent.add(inner.subs.len() as u64);
        let latency = (chrono::Utc::now() - event.at).to_std().unwrap_or_default();
        self.metrics.feed_commit_to_send.observe(latency);
    }

    /// Applies pending items that became contiguous; drops stale ones.
    fn drain_pending(&self, inner: &mut FeedInner) {
        while let Some(entry) = inner.pending.first_entry() {
            let seq = *entry.key();
            if seq <= inner.seq {
                entry.remove();
                self.metrics.feed_duplicates_dropped.inc();
            } else if seq == inner.seq + 1 {
                let event = entry.remove();
                self.apply(inner, &event);
            } else {
                break;
            }
        }
    }

    /// Runs a gap fill in the background; the caller has set `filling`.
    fn spawn_fill(&self, feed: Arc<Feed>) {
        match (self.this.upgrade(), tokio::runtime::Handle::try_current()) {
            (Some(feeds), Ok(rt)) => {
                rt.spawn(async move { feeds.fill(&feed).await });
            }
            _ => {
                tracing::warn!("feed gap fill needs a tokio runtime; left to the catch-up tick");
                lock(&feed.inner).filling = false;
            }
        }
    }

    /// Fetches missing items from the store and applies them in order (single flight per
    /// feed). The caller has set `filling`; it is cleared when this returns.
    async fn fill(&self, feed: &Feed) {
        let _guard = FillGuard(feed);
        loop {
            let from = {
                let inner = lock(&feed.inner);
                if inner.state != State::Ready || inner.detached {
                    return;
                }
                inner.seq
            };
            let events = match self.fetch(feed.key, from, self.config.store_page).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(feed = %feed.key.channel(), error = %e, "feed gap fill failed; retrying on the next tick");
                    return;
                }
            };
            let mut inner = lock(&feed.inner);
            if inner.state != State::Ready {
                return;
            }
            let mut applied = 0u64;
            for e in events.iter().filter(|e| e.key == feed.key) {
                if e.seq == inner.seq + 1 {
                    self.metrics.feed_catch_up_events.inc();
                    self.apply(&mut inner, e);
                    applied += 1;
                } else if e.seq > inner.seq + 1 {
                    break;
                }
            }
            self.drain_pending(&mut inner);
            let full_page = events.len() as u64 >= self.config.store_page;
            if applied == 0 || (!full_page && inner.pending.is_empty()) {
                // Done, or the store does not have the missing items yet: the tick retries.
                return;
            }
        }
    }

    /// Runs a gap fill now, or waits (up to 2 s) for the one already running.
    pub(crate) async fn fill_now(&self, feed: &Feed) {
        let run = !std::mem::replace(&mut lock(&feed.inner).filling, true);
        if run {
            self.fill(feed).await;
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while lock(&feed.inner).filling && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Drops unused feeds, then checks every other one against the store in ONE `feed_heads`
    /// call and fills those behind (a lost bus message costs one tick). Returns how many were
    /// behind.
    pub(crate) async fn catch_up(&self) -> Result<usize, StoreError> {
        self.evict_unused();
        let ready: Vec<Arc<Feed>> = lock(&self.map)
            .values()
            .filter(|f| lock(&f.inner).state == State::Ready)
            .cloned()
            .collect();
        if ready.is_empty() {
            return Ok(0);
        }
        let keys: Vec<FeedKey> = ready.iter().map(|f| f.key).collect();
        let heads = timed(
            self.config.store_timeout,
            &self.metrics,
            self.store.feed_heads(&keys),
        )
        .await?;
        let mut behind = Vec::new();
        for feed in ready {
            let mut inner = lock(&feed.inner);
            let ahead = heads.get(&feed.key).is_some_and(|head| *head > inner.seq);
            if (ahead || !inner.pending.is_empty()) && !inner.filling {
                inner.filling = true;
                drop(inner);
                behind.push(feed);
            }
        }
        let n = behind.len();
        futures_util::stream::iter(behind)
            .for_each_concurrent(
                FILL_CONCURRENCY,
                |feed| async move { self.fill(&feed).await },
            )
            .await;
        Ok(n)
    }
}

impl FeedInner {
    /// Nobody subscribes, subscribes or fills: the feed can go.
    fn unused(&self) -> bool {
        self.subs.is_empty() && self.inflight == 0 && !self.filling && self.state != State::Loading
    }
}
