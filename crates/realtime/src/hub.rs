//! The channel hub: per-project availability cache, ordered exactly-once fan-out, gap fills.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytestring::ByteString;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::config::HubConfig;
use crate::conn::{CLOSE_POLICY, Conn, ConnectionHandle, Op, Outbox, Sub};
use crate::feed::{FeedStep, Feeds};
use crate::metrics::Metrics;
use crate::model::{
    BookingNote, ClientMessage, FeedEvent, FeedKey, Principal, ProjectHead, Revocation,
    ServerMessage, Snapshot, UnitEvent, UnitState, UnitsChanged, parse_feed_channel,
};
use crate::store::{EventStore, StoreError, timed};
use crate::sync::lock;

/// Cache state of a project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoadState {
    Cold,
    Loading,
    Ready,
}

/// Result of one cache load, broadcast to subscribers waiting on it.
#[derive(Clone, Debug)]
enum LoadOutcome {
    Pending,
    Ready,
    NotFound,
    Failed(String),
}

/// Both pre-serialized frames of one event.
#[derive(Debug)]
struct Frames {
    seq: i64,
    public: ByteString,
    staff: ByteString,
}

/// A project with a cache or local subscribers.
#[derive(Debug)]
pub(crate) struct Project {
    id: Uuid,
    public_channel: String,
    staff_channel: String,
    inner: Mutex<Inner>,
    loaded: watch::Sender<LoadOutcome>,
}

#[derive(Debug)]
struct Inner {
    state: LoadState,
    /// Removed from the hub's map; a fresh `Project` replaces it.
    evicted: bool,
    /// Subscribe operations in progress (they keep the project from eviction).
    inflight: usize,
    idle_since: Option<Instant>,
    /// Last seq applied (and delivered to every subscriber).
    seq: i64,
    /// Version of the unit list `units` was read at (units added, removed or renamed).
    units_version: i64,
    units: Vec<UnitState>,
    index: HashMap<Uuid, usize>,
    /// Contiguous recent events ending at `seq`.
    ring: VecDeque<Frames>,
    snapshot_public: Option<(i64, ByteString)>,
    snapshot_staff: Option<(i64, ByteString)>,
    /// (connection id, staff) -> connection.
    subs: HashMap<(u64, bool), Arc<Conn>>,
    /// Events ahead of `seq + 1`, waiting for a gap fill.
    pending: BTreeMap<i64, UnitEvent>,
    /// A gap fill is running (single flight).
    filling: bool,
}

impl Project {
    fn new(id: Uuid) -> Self {
        let (loaded, _) = watch::channel(LoadOutcome::Pending);
        Project {
            id,
            public_channel: format!("project:{id}"),
            staff_channel: format!("project:{id}:staff"),
            inner: Mutex::new(Inner {
                state: LoadState::Cold,
                evicted: false,
                inflight: 0,
                idle_since: Some(Instant::now()),
                seq: 0,
                units_version: 0,
                units: Vec::new(),
                index: HashMap::new(),
                ring: VecDeque::new(),
                snapshot_public: None,
                snapshot_staff: None,
                subs: HashMap::new(),
                pending: BTreeMap::new(),
                filling: false,
            }),
            loaded,
        }
    }

    fn channel(&self, staff: bool) -> &str {
        if staff {
            &self.staff_channel
        } else {
            &self.public_channel
        }
    }
}

/// Keeps a project from eviction while a subscribe works on it.
struct ProjectRef {
    project: Arc<Project>,
}

impl Drop for ProjectRef {
    fn drop(&mut self) {
        let mut inner = lock(&self.project.inner);
        inner.inflight = inner.inflight.saturating_sub(1);
    }
}

/// Resets a load that was cancelled or panicked so waiters do not hang.
struct LoadGuard<'a> {
    project: &'a Project,
    armed: bool,
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut inner = lock(&self.project.inner);
            inner.state = LoadState::Cold;
            self.project
                .loaded
                .send_replace(LoadOutcome::Failed("load cancelled".to_owned()));
        }
    }
}

/// Clears `filling` when a gap fill ends, however it ends.
struct FillGuard<'a> {
    project: &'a Project,
}

impl Drop for FillGuard<'_> {
    fn drop(&mut self) {
        lock(&self.project.inner).filling = false;
    }
}

/// How a subscribe continues after looking at the project under its lock.
enum Step {
    Done,
    Snapshot,
    CatchUpFirst,
    Send(Vec<ByteString>, i64),
    Fetch { from: i64, upto: i64 },
}

/// Authenticated connections and what has been revoked, for closing a user's connections
/// once their token is revoked (never consulted per delivered frame).
#[derive(Debug)]
struct Accounts {
    /// Open authenticated connections by user.
    conns: HashMap<Uuid, Vec<Arc<Conn>>>,
    /// The lowest token version still valid, per user revoked lately, and when it was last
    /// applied. A connection that authenticated before a revocation but registers after it is
    /// closed at once.
    min_version: HashMap<Uuid, (i64, Instant)>,
    /// The newest token change the catch-up has read.
    watermark: chrono::DateTime<chrono::Utc>,
}

/// The realtime hub: one per server instance, shared as `Arc<Hub>`.
pub struct Hub {
    store: Arc<dyn EventStore>,
    config: HubConfig,
    metrics: Arc<Metrics>,
    projects: Mutex<HashMap<Uuid, Arc<Project>>>,
    /// Users' notifications and conversations' messages with local subscribers.
    feeds: Arc<Feeds>,
    accounts: Mutex<Accounts>,
    next_conn: AtomicU64,
    /// Lets `&self` methods spawn tasks that own the hub.
    this: Weak<Hub>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Parses `project:<uuid>` or `project:<uuid>:staff` (hyphenated uuid, any case).
pub fn parse_channel(channel: &str) -> Option<(Uuid, bool)> {
    let rest = channel.strip_prefix("project:")?;
    let (id, staff) = match rest.strip_suffix(":staff") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    if id.len() != 36 {
        return None;
    }
    Uuid::parse_str(id).ok().map(|u| (u, staff))
}

impl Hub {
    /// Creates a hub reading history and snapshots from `store`.
    pub fn new(store: Arc<dyn EventStore>, config: HubConfig) -> Arc<Hub> {
        let metrics = Arc::new(Metrics::default());
        let feeds = Feeds::new(store.clone(), config.clone(), metrics.clone());
        Arc::new_cyclic(|this| Hub {
            store,
            config,
            metrics,
            projects: Mutex::new(HashMap::new()),
            feeds,
            accounts: Mutex::new(Accounts {
                conns: HashMap::new(),
                min_version: HashMap::new(),
                // Revocations committed before this hub started concern no connection of it,
                // except one racing the start: the overlap covers those.
                watermark: chrono::Utc::now(),
            }),
            next_conn: AtomicU64::new(1),
            this: this.clone(),
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

    /// Registers a connection: returns its handle and the session's end of its bounded
    /// outbound queue. Allocates nothing else until the client sends a frame.
    pub fn connect(self: &Arc<Self>) -> (ConnectionHandle, Outbox) {
        self.connect_as(None)
    }

    /// Registers a connection that authenticated as `principal` (None: anonymous). Once that
    /// user's tokens of this version are revoked ([`Hub::revoke`]), the hub closes it with 1008;
    /// if they already were, it is closed at once.
    pub fn connect_as(
        self: &Arc<Self>,
        principal: Option<Principal>,
    ) -> (ConnectionHandle, Outbox) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(id, self.config.queue_capacity, principal));
        self.metrics.connections.inc();
        if let Some(p) = principal {
            let mut accounts = lock(&self.accounts);
            if accounts
                .min_version
                .get(&p.user_id)
                .is_some_and(|(min, _)| p.token_version < *min)
            {
                drop(accounts);
                self.close_revoked(&conn);
            } else {
                accounts
                    .conns
                    .entry(p.user_id)
                    .or_default()
                    .push(conn.clone());
            }
        }
        ConnectionHandle::new(self.clone(), conn)
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
        let Revocation {
            user_id,
            min_version,
        } = revocation;
        let revoked = {
            let mut accounts = lock(&self.accounts);
            let entry = accounts
                .min_version
                .entry(user_id)
                .or_insert((min_version, Instant::now()));
            *entry = (entry.0.max(min_version), Instant::now());
            let min = entry.0;
            let Some(conns) = accounts.conns.get_mut(&user_id) else {
                return 0;
            };
            let (revoked, kept): (Vec<_>, Vec<_>) = conns
                .drain(..)
                .partition(|c| c.principal.is_some_and(|p| p.token_version < min));
            *conns = kept;
            if conns.is_empty() {
                accounts.conns.remove(&user_id);
            }
            revoked
        };
        for conn in &revoked {
            self.close_revoked(conn);
        }
        revoked.len()
    }

    /// True if the connection's token was revoked (checked at subscribe, in memory).
    fn is_revoked(&self, conn: &Conn) -> bool {
        conn.principal.is_some_and(|p| {
            lock(&self.accounts)
                .min_version
                .get(&p.user_id)
                .is_some_and(|(min, _)| p.token_version < *min)
        })
    }

    /// Forgets revocations older than `revocation_memory` (the catch-up tick calls it).
    pub fn forget_old_revocations(&self) {
        let memory = self.config.revocation_memory;
        lock(&self.accounts)
            .min_version
            .retain(|_, (_, at)| at.elapsed() < memory);
    }

    /// Reads the token versions changed since the last call from the store (one query) and
    /// applies them as revocations, so a lost bus message costs at most one catch-up interval.
    /// Returns how many connections were closed.
    pub async fn catch_up_revocations(&self) -> Result<usize, StoreError> {
        let overlap = chrono::Duration::from_std(self.config.revocation_overlap)
            .unwrap_or(chrono::Duration::zero());
        let since = lock(&self.accounts).watermark - overlap;
        let changes = self.q(self.store.token_changes(since)).await?;
        let mut closed = 0;
        for change in &changes {
            closed += self.revoke(Revocation {
                user_id: change.user_id,
                min_version: change.token_version,
            });
        }
        if let Some(newest) = changes.iter().map(|c| c.changed_at).max() {
            // Never past our own clock: a row stamped by an instance whose clock runs ahead
            // would otherwise hide the changes stamped correctly after it.
            let newest = newest.min(chrono::Utc::now());
            let mut accounts = lock(&self.accounts);
            accounts.watermark = accounts.watermark.max(newest);
        }
        Ok(closed)
    }

    /// Removes every subscription of a connection (called when its handle is dropped).
    pub(crate) fn disconnect(&self, conn: &Arc<Conn>) {
        if let Some(p) = conn.principal {
            let mut accounts = lock(&self.accounts);
            if let Some(conns) = accounts.conns.get_mut(&p.user_id) {
                conns.retain(|c| !Arc::ptr_eq(c, conn));
                if conns.is_empty() {
                    accounts.conns.remove(&p.user_id);
                }
            }
        }
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

    fn remove_sub(&self, conn_id: u64, sub: Sub) {
        let (project_id, staff) = match sub {
            Sub::Project(project_id, staff) => (project_id, staff),
            Sub::Feed(key) => {
                self.feeds.remove_sub(conn_id, key);
                return;
            }
        };
        let project = lock(&self.projects).get(&project_id).cloned();
        if let Some(project) = project {
            let mut inner = lock(&project.inner);
            if inner.subs.remove(&(conn_id, staff)).is_some() {
                self.metrics.subscriptions.dec();
            }
            if inner.subs.is_empty() && inner.idle_since.is_none() {
                inner.idle_since = Some(Instant::now());
            }
        }
    }

    fn acquire(&self, project_id: Uuid) -> ProjectRef {
        let mut map = lock(&self.projects);
        let project = map
            .entry(project_id)
            .or_insert_with(|| Arc::new(Project::new(project_id)))
            .clone();
        lock(&project.inner).inflight += 1;
        ProjectRef { project }
    }

    /// Runs a store call with the configured timeout, counting failures.
    async fn q<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        timed(self.config.store_timeout, &self.metrics, call).await
    }

    async fn q_snapshot(&self, project_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        self.q(self.store.snapshot(project_id)).await
    }

    async fn q_events_after(
        &self,
        project_id: Uuid,
        after: i64,
        limit: u64,
    ) -> Result<Option<Vec<UnitEvent>>, StoreError> {
        self.q(self.store.events_after(project_id, after, limit))
            .await
    }

    async fn q_latest_heads(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, ProjectHead>, StoreError> {
        self.q(self.store.latest_heads(ids)).await
    }

    /// Drops the map entry of a project that turned out not to exist, unless someone uses it,
    /// so probing random ids does not grow the map.
    fn forget_if_unused(&self, project_id: Uuid) {
        let mut map = lock(&self.projects);
        let unused = map.get(&project_id).is_some_and(|p| {
            let mut inner = lock(&p.inner);
            let unused =
                inner.inflight == 0 && inner.subs.is_empty() && inner.state == LoadState::Cold;
            if unused {
                inner.evicted = true;
            }
            unused
        });
        if unused {
            map.remove(&project_id);
        }
    }

    /// Current units and seq of a project from the cache (loading it once if cold).
    /// Ok(None) if the project does not exist. Handy for `GET /projects/{id}/availability`.
    pub async fn snapshot(&self, project_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        let pref = self.acquire(project_id);
        if !self.ensure_loaded(&pref.project).await? {
            drop(pref);
            self.forget_if_unused(project_id);
            return Ok(None);
        }
        let inner = lock(&pref.project.inner);
        Ok(Some(Snapshot {
            project_id,
            seq: inner.seq,
            units_version: inner.units_version,
            units: inner.units.clone(),
        }))
    }

    /// Makes sure the project's cache is loaded; one store query however many callers wait.
    /// Ok(false) when the project does not exist.
    async fn ensure_loaded(&self, project: &Project) -> Result<bool, StoreError> {
        loop {
            let mut rx = {
                let mut inner = lock(&project.inner);
                match inner.state {
                    LoadState::Ready => return Ok(true),
                    LoadState::Loading => project.loaded.subscribe(),
                    LoadState::Cold => {
                        inner.state = LoadState::Loading;
                        break;
                    }
                }
            };
            // The loader publishes its outcome under the project lock, after we subscribed.
            if rx.changed().await.is_err() {
                continue;
            }
            let outcome = rx.borrow_and_update().clone();
            match outcome {
                LoadOutcome::Ready | LoadOutcome::Pending => continue,
                LoadOutcome::NotFound => return Ok(false),
                LoadOutcome::Failed(msg) => return Err(StoreError::Other(msg)),
            }
        }
        let mut guard = LoadGuard {
            project,
            armed: true,
        };
        let result = self.load(project).await;
        guard.armed = false;
        let mut inner = lock(&project.inner);
        let (ret, outcome) = match result {
            Ok(Some((snapshot, history))) => {
                self.install(project, &mut inner, snapshot, history);
                inner.state = LoadState::Ready;
                (Ok(true), LoadOutcome::Ready)
            }
            Ok(None) => {
                inner.state = LoadState::Cold;
                (Ok(false), LoadOutcome::NotFound)
            }
            Err(e) => {
                inner.state = LoadState::Cold;
                let msg = e.to_string();
                (Err(e), LoadOutcome::Failed(msg))
            }
        };
        project.loaded.send_replace(outcome);
        let gap = inner.state == LoadState::Ready && !inner.pending.is_empty() && !inner.filling;
        if gap {
            inner.filling = true;
        }
        drop(inner);
        if gap {
            self.spawn_fill(project);
        }
        ret
    }

    /// Snapshot plus recent history (for replays) of a project from the store.
    async fn load(
        &self,
        project: &Project,
    ) -> Result<Option<(Snapshot, Option<Vec<UnitEvent>>)>, StoreError> {
        self.metrics.snapshot_loads.inc();
        let Some(snapshot) = self.q_snapshot(project.id).await? else {
            return Ok(None);
        };
        let keep = i64::try_from(self.config.replay_buffer).unwrap_or(i64::MAX);
        let history = if keep > 0 && snapshot.seq > 0 {
            let after = (snapshot.seq - keep).max(0);
            let limit = u64::try_from(snapshot.seq - after).unwrap_or(0) + self.config.store_page;
            match self.q_events_after(project.id, after, limit).await {
                Ok(h) => h,
                Err(e) => {
                    // The ring is an optimisation: go on without it.
                    tracing::warn!(project = %project.id, error = %e, "loading recent events failed");
                    None
                }
            }
        } else {
            None
        };
        Ok(Some((snapshot, history)))
    }

    /// Replaces the cache with a snapshot, fills the ring from history and applies newer events.
    fn install(
        &self,
        project: &Project,
        inner: &mut Inner,
        snapshot: Snapshot,
        history: Option<Vec<UnitEvent>>,
    ) {
        inner.seq = snapshot.seq;
        inner.units_version = snapshot.units_version;
        inner.index = snapshot
            .units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.unit_id, i))
            .collect();
        inner.units = snapshot.units;
        inner.ring.clear();
        inner.snapshot_public = None;
        inner.snapshot_staff = None;
        if let Some(history) = history {
            let upto: Vec<&UnitEvent> = history.iter().filter(|e| e.seq <= snapshot.seq).collect();
            let contiguous = upto.last().map(|e| e.seq) == Some(snapshot.seq)
                && upto.windows(2).all(|w| match w {
                    [a, b] => b.seq == a.seq + 1,
                    _ => true,
                });
            if contiguous {
                for e in upto {
                    inner.ring.push_back(self.frames(project, e));
                }
                self.trim_ring(inner);
            }
            // Events committed after the snapshot query: apply them now.
            for e in history.iter().filter(|e| e.seq > snapshot.seq) {
                if e.seq == inner.seq + 1 {
                    self.apply(project, inner, e);
                }
            }
        }
        self.drain_pending(project, inner);
    }

    fn frames(&self, project: &Project, event: &UnitEvent) -> Frames {
        Frames {
            seq: event.seq,
            public: ServerMessage::unit(event, &project.public_channel, false).to_frame(),
            staff: ServerMessage::unit(event, &project.staff_channel, true).to_frame(),
        }
    }

    fn trim_ring(&self, inner: &mut Inner) {
        while inner.ring.len() > self.config.replay_buffer {
            inner.ring.pop_front();
        }
    }

    /// Applies the event with seq == inner.seq + 1: cache, ring, fan-out.
    fn apply(&self, project: &Project, inner: &mut Inner, event: &UnitEvent) {
        let state = UnitState {
            unit_id: event.unit_id,
            block_number: event.block_number.clone(),
            status: event.status.clone(),
            color: event.color.clone(),
        };
        match inner.index.get(&event.unit_id).copied() {
            Some(i) => {
                if let Some(u) = inner.units.get_mut(i) {
                    *u = state;
                }
            }
            None => {
                inner.index.insert(event.unit_id, inner.units.len());
                inner.units.push(state);
            }
        }
        inner.seq = event.seq;
        inner.snapshot_public = None;
        inner.snapshot_staff = None;
        let frames = self.frames(project, event);
        self.metrics.events_applied.inc();
        if !inner.subs.is_empty() {
            let mut dead = Vec::new();
            let mut sent = 0u64;
            for (key, conn) in &inner.subs {
                let frame = if key.1 { &frames.staff } else { &frames.public };
                if conn.send(frame.clone(), &self.metrics) {
                    sent += 1;
                } else {
                    dead.push(*key);
                }
            }
            for key in dead {
                if inner.subs.remove(&key).is_some() {
                    self.metrics.subscriptions.dec();
                }
            }
            self.metrics.frames_sent.add(sent);
            let latency = (chrono::Utc::now() - event.at).to_std().unwrap_or_default();
            self.metrics.commit_to_send.observe(latency);
        }
        inner.ring.push_back(frames);
        self.trim_ring(inner);
    }

    /// Applies pending events that became contiguous; drops stale ones.
    fn drain_pending(&self, project: &Project, inner: &mut Inner) {
        while let Some(entry) = inner.pending.first_entry() {
            let seq = *entry.key();
            if seq <= inner.seq {
                entry.remove();
            } else if seq == inner.seq + 1 {
                let event = entry.remove();
                self.apply(project, inner, &event);
            } else {
                break;
            }
        }
    }

    /// Hands a committed event to the hub (from any bus); never blocks on I/O.
    /// Duplicates are dropped, gaps are filled from the store before later events go out.
    pub fn deliver(self: &Arc<Self>, event: UnitEvent) {
        self.metrics.events_received.inc();
        let Some(project) = lock(&self.projects).get(&event.project_id).cloned() else {
            // Nobody here watches this project.
            return;
        };
        let mut inner = lock(&project.inner);
        match inner.state {
            LoadState::Cold => return,
            LoadState::Loading => {
                // Applied after the snapshot if it is newer than it.
                if inner.pending.len() < self.config.max_pending_events {
                    inner.pending.insert(event.seq, event);
                }
                return;
            }
            LoadState::Ready => {}
        }
        if event.seq <= inner.seq {
            self.metrics.duplicates_dropped.inc();
            return;
        }
        if event.seq == inner.seq + 1 {
            self.apply(&project, &mut inner, &event);
            self.drain_pending(&project, &mut inner);
        } else if inner.pending.len() < self.config.max_pending_events {
            inner.pending.insert(event.seq, event);
        }
        let gap = !inner.pending.is_empty() && !inner.filling;
        if gap {
            inner.filling = true;
        }
        drop(inner);
        if gap {
            self.spawn_fill(&project);
        }
    }

    /// Runs a gap fill in the background; the caller has set `filling`.
    fn spawn_fill(&self, project: &Project) {
        let hub = self.this.upgrade();
        let project_arc = lock(&self.projects).get(&project.id).cloned();
        let rt = tokio::runtime::Handle::try_current();
        match (hub, project_arc, rt) {
            (Some(hub), Some(p), Ok(rt)) if std::ptr::eq(Arc::as_ptr(&p), project) => {
                rt.spawn(async move { hub.fill(&p).await });
            }
            (_, _, rt) => {
                if rt.is_err() {
                    tracing::warn!("gap fill needs a tokio runtime; left to the catch-up tick");
                }
                lock(&project.inner).filling = false;
            }
        }
    }

    /// Fetches missing events from the store and applies them in order (single flight per project).
    /// The caller has set `filling`; it is cleared when this returns.
    async fn fill(&self, project: &Project) {
        let _guard = FillGuard { project };
        loop {
            let from = {
                let inner = lock(&project.inner);
                if inner.state != LoadState::Ready || inner.evicted {
                    return;
                }
                inner.seq
            };
            match self
                .q_events_after(project.id, from, self.config.store_page)
                .await
            {
                Ok(Some(events)) => {
                    let mut inner = lock(&project.inner);
                    if inner.state != LoadState::Ready {
                        return;
                    }
                    let mut applied = 0u64;
                    for e in &events {
                        if e.seq == inner.seq + 1 {
                            // Counted before the fan-out so the metric never lags what clients saw.
                            if applied == 0 {
                                self.metrics.catch_ups.inc();
                            }
                            self.metrics.catch_up_events.inc();
                            self.apply(project, &mut inner, e);
                            applied += 1;
                        } else if e.seq > inner.seq + 1 {
                            break;
                        }
                    }
                    self.drain_pending(project, &mut inner);
                    let full_page = events.len() as u64 >= self.config.store_page;
                    if applied == 0 || (!full_page && inner.pending.is_empty()) {
                        // Done, or the store does not have the missing events yet: the tick retries.
                        return;
                    }
                }
                Ok(None) => {
                    // History no longer covers our seq: resynchronise everyone with a snapshot.
                    self.resync(project).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(project = %project.id, error = %e, "gap fill failed; retrying on the next tick");
                    return;
                }
            }
        }
    }

    /// Runs a gap fill now, or waits (up to 2 s) for the one already running.
    async fn fill_now(&self, project: &Project) {
        let run = {
            let mut inner = lock(&project.inner);
            !std::mem::replace(&mut inner.filling, true)
        };
        if run {
            self.fill(project).await;
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while lock(&project.inner).filling && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Re-reads the units of a cached project after changes that emit no event (units added
    /// or removed, block numbers renamed). Statuses stay ordered by seq: if the store is ahead,
    /// the missing events are delivered first. Does nothing for a project not cached here.
    pub async fn refresh_units(&self, project_id: Uuid) -> Result<(), StoreError> {
        let Some(project) = lock(&self.projects).get(&project_id).cloned() else {
            return Ok(());
        };
        for _ in 0..3 {
            if lock(&project.inner).state != LoadState::Ready {
                return Ok(());
            }
            self.metrics.snapshot_loads.inc();
            let Some(snapshot) = self.q_snapshot(project_id).await? else {
                return Ok(());
            };
            {
                let mut inner = lock(&project.inner);
                if snapshot.seq == inner.seq {
                    inner.units_version = inner.units_version.max(snapshot.units_version);
                    inner.index = snapshot
                        .units
                        .iter()
                        .enumerate()
                        .map(|(i, u)| (u.unit_id, i))
                        .collect();
                    inner.units = snapshot.units;
                    inner.snapshot_public = None;
                    inner.snapshot_staff = None;
                    return Ok(());
                }
                if snapshot.seq < inner.seq {
                    // A stale read (replica lag): our cache is newer; try again.
                    continue;
                }
            }
            self.fill_now(&project).await;
        }
        Ok(())
    }

    /// Reloads a project whose missed events were pruned and sends subscribers a fresh snapshot.
    async fn resync(&self, project: &Project) {
        self.metrics.snapshot_loads.inc();
        let snapshot = match self.q_snapshot(project.id).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(project = %project.id, error = %e, "resync failed");
                return;
            }
        };
        let mut inner = lock(&project.inner);
        if snapshot.seq <= inner.seq {
            return;
        }
        tracing::warn!(project = %project.id, from = inner.seq, to = snapshot.seq, "history pruned; resynchronising subscribers with a snapshot");
        self.install(project, &mut inner, snapshot, None);
        let public = self.snapshot_frame(project, &mut inner, false);
        let staff = self.snapshot_frame(project, &mut inner, true);
        let mut dead = Vec::new();
        for (key, conn) in &inner.subs {
            let frame = if key.1 { &staff } else { &public };
            if !conn.send(frame.clone(), &self.metrics) {
                dead.push(*key);
            }
        }
        for key in dead {
            if inner.subs.remove(&key).is_some() {
                self.metrics.subscriptions.dec();
            }
        }
    }

    /// The snapshot frame of the current seq, serialized once per seq and channel kind.
    fn snapshot_frame(&self, project: &Project, inner: &mut Inner, staff: bool) -> ByteString {
        let cached = if staff {
            &inner.snapshot_staff
        } else {
            &inner.snapshot_public
        };
        if let Some((seq, frame)) = cached
            && *seq == inner.seq
        {
            return frame.clone();
        }
        let frame = ServerMessage::Snapshot {
            channel: project.channel(staff).to_owned(),
            seq: inner.seq,
            units: inner.units.clone(),
        }
        .to_frame();
        let slot = if staff {
            &mut inner.snapshot_staff
        } else {
            &mut inner.snapshot_public
        };
        *slot = Some((inner.seq, frame.clone()));
        frame
    }

    /// Checks every cached project against the store in one query, and every feed with local
    /// subscribers in one more (`feed_heads`), and fills any gap. Call after a bus reconnect;
    /// the catch-up tick calls it every interval. Returns how many projects and feeds were
    /// behind (or the first error, after trying both).
    pub async fn catch_up_all(&self) -> Result<usize, StoreError> {
        let projects = self.catch_up_projects().await;
        let feeds = self.catch_up_feeds().await;
        Ok(projects? + feeds?)
    }

    /// Checks every feed with local subscribers against the store in ONE `feed_heads` call,
    /// fills those behind and drops feeds nobody subscribes to. Returns how many were behind.
    pub async fn catch_up_feeds(&self) -> Result<usize, StoreError> {
        self.feeds.catch_up().await
    }

    /// Feeds (user and conversation channels) this hub holds: those with local subscribers.
    pub fn cached_feeds(&self) -> usize {
        self.feeds.len()
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
        let Some(project) = lock(&self.projects).get(&note.project_id).cloned() else {
            return 0;
        };
        let mut inner = lock(&project.inner);
        if !inner.subs.keys().any(|(_, staff)| *staff) {
            return 0;
        }
        let frame = note.to_frame();
        let mut sent = 0;
        let mut dead = Vec::new();
        for (key, conn) in inner.subs.iter().filter(|(k, _)| k.1) {
            if conn.send(frame.clone(), &self.metrics) {
                sent += 1;
            } else {
                dead.push(*key);
            }
        }
        for key in dead {
            if inner.subs.remove(&key).is_some() {
                self.metrics.subscriptions.dec();
            }
        }
        self.metrics.booking_frames_sent.add(sent as u64);
        sent
    }

    async fn catch_up_projects(&self) -> Result<usize, StoreError> {
        let projects: Vec<Arc<Project>> = lock(&self.projects).values().cloned().collect();
        let ready: Vec<Arc<Project>> = projects
            .into_iter()
            .filter(|p| lock(&p.inner).state == LoadState::Ready)
            .collect();
        if ready.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = ready.iter().map(|p| p.id).collect();
        let latest = self.q_latest_heads(&ids).await?;
        let mut behind = Vec::new();
        let mut stale_units = Vec::new();
        for p in ready {
            let mut inner = lock(&p.inner);
            let head = latest.get(&p.id).copied().unwrap_or_default();
            if inner.state != LoadState::Ready {
                continue;
            }
            if head.units_version > inner.units_version {
                stale_units.push(p.id);
            }
            let lagging = head.seq > inner.seq || !inner.pending.is_empty();
            if lagging && !inner.filling {
                inner.filling = true;
                drop(inner);
                behind.push(p);
            }
        }
        let n = behind.len() + stale_units.len();
        futures_util::future::join_all(behind.iter().map(|p| self.fill(p))).await;
        // A unit-list change whose bus message was lost: re-read the list (after the fills, so
        // statuses stay ordered by seq).
        for project_id in stale_units {
            self.refresh_units(project_id).await?;
        }
        Ok(n)
    }

    /// Applies a committed unit-list change (from the bus): a cached project whose list is older
    /// re-reads it, so new subscribers' snapshots include the new units. Does nothing for a
    /// project not cached here or already at that version.
    pub async fn units_changed(&self, change: UnitsChanged) {
        let stale = lock(&self.projects)
            .get(&change.project_id)
            .is_some_and(|p| {
                let inner = lock(&p.inner);
                inner.state == LoadState::Ready && inner.units_version < change.units_version
            });
        if !stale {
            return;
        }
        if let Err(e) = self.refresh_units(change.project_id).await {
            // The catch-up tick compares versions and retries.
            tracing::warn!(project = %change.project_id, error = %e, "re-reading a changed unit list failed");
        }
    }

    /// Drops caches of projects without subscribers for `idle_evict_after`.
    pub fn evict_idle(&self) {
        let now = Instant::now();
        let after = self.config.idle_evict_after;
        let mut map = lock(&self.projects);
        map.retain(|_, p| {
            let mut inner = lock(&p.inner);
            let idle = inner.subs.is_empty()
                && inner.inflight == 0
                && inner.state != LoadState::Loading
                && !inner.filling;
            if !idle {
                inner.idle_since = None;
                return true;
            }
            match inner.idle_since {
                Some(t) if now.duration_since(t) >= after => {
                    inner.evicted = true;
                    false
                }
                Some(_) => true,
                None => {
                    inner.idle_since = Some(now);
                    true
                }
            }
        });
    }

    /// Projects currently cached by this hub.
    pub fn cached_projects(&self) -> usize {
        lock(&self.projects).len()
    }

    /// Spawns the catch-up task: every `interval`, one `latest_heads` query for all cached
    /// projects, gap fills where behind, one query for recent token revocations, and eviction
    /// of idle caches and old revocations. Stops when the hub is dropped.
    pub fn spawn_catch_up(self: &Arc<Self>, interval: Duration) -> JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(hub) = weak.upgrade() else { return };
                if let Err(e) = hub.catch_up_all().await {
                    tracing::warn!(error = %e, "catch-up tick failed");
                }
                if let Err(e) = hub.catch_up_revocations().await {
                    tracing::warn!(error = %e, "revocation catch-up failed");
                }
                hub.forget_old_revocations();
                hub.evict_idle();
            }
        })
    }

    /// Handles one client frame for a connection (run by the connection's worker, in order).
    pub(crate) async fn handle_op(&self, conn: &Arc<Conn>, op: Op) {
        let (text, staff_allowed) = match op {
            Op::Text {
                text,
                staff_allowed,
            } => (text, staff_allowed),
            Op::Oversized(len) => {
                let reply = ServerMessage::error(
                    "bad_request",
                    format!(
                        "frame of {len} bytes exceeds {} bytes",
                        self.config.max_frame_len
                    ),
                    None,
                );
                conn.send_msg(&reply, &self.metrics);
                return;
            }
        };
        let msg: ClientMessage = match serde_json::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                let reply =
                    ServerMessage::error("bad_request", format!("malformed frame: {e}"), None);
                conn.send_msg(&reply, &self.metrics);
                return;
            }
        };
        match msg {
            ClientMessage::Ping => {
                conn.send_msg(&ServerMessage::Pong, &self.metrics);
            }
            ClientMessage::Unsubscribe { channel } => {
                let sub = match (parse_channel(&channel), parse_feed_channel(&channel)) {
                    (Some((project_id, staff)), _) => Sub::Project(project_id, staff),
                    (None, Some(key)) => Sub::Feed(key),
                    (None, None) => {
                        let reply =
                            ServerMessage::error("not_found", "unknown channel", Some(&channel));
                        conn.send_msg(&reply, &self.metrics);
                        return;
                    }
                };
                let removed = lock(&conn.subs).remove(sub);
                if removed {
                    self.remove_sub(conn.id, sub);
                }
            }
            ClientMessage::Subscribe { channel, since } => match parse_feed_channel(&channel) {
                Some(key) => self.subscribe_feed(conn, key, since).await,
                None => self.subscribe(conn, &channel, since, staff_allowed).await,
            },
        }
    }

    async fn subscribe(
        &self,
        conn: &Arc<Conn>,
        channel: &str,
        since: Option<i64>,
        staff_allowed: bool,
    ) {
        let m = &self.metrics;
        let Some((project_id, staff)) = parse_channel(channel) else {
            let reply = ServerMessage::error(
                "not_found",
                "unknown channel; expected project:<id>, project:<id>:staff, user:<id> or conversation:<id>",
                Some(channel),
            );
            conn.send_msg(&reply, m);
            return;
        };
        let canonical = canonical(project_id, staff);
        if self.is_revoked(conn) {
            // Closed when revoked already (a no-op then): it gets nothing more.
            conn.close(CLOSE_POLICY, "token revoked");
            return;
        }
        if staff && !staff_allowed {
            let reply = ServerMessage::error(
                "forbidden",
                "staff channels need an ADMIN or verified MARKETING token",
                Some(&canonical),
            );
            conn.send_msg(&reply, m);
            return;
        }
        if since.is_some_and(|s| s < 0) {
            let reply = ServerMessage::error("bad_request", "since must be >= 0", Some(&canonical));
            conn.send_msg(&reply, m);
            return;
        }
        // A repeated subscribe restarts the subscription (a client's way to resync).
        let existing = lock(&conn.subs).remove(Sub::Project(project_id, staff));
        if existing {
            self.remove_sub(conn.id, Sub::Project(project_id, staff));
        }
        if lock(&conn.subs).channels.len() >= self.config.max_subscriptions {
            let reply = ServerMessage::error(
                "too_many_subscriptions",
                format!(
                    "at most {} subscriptions per connection",
                    self.config.max_subscriptions
                ),
                Some(&canonical),
            );
            conn.send_msg(&reply, m);
            return;
        }
        let pref = self.acquire(project_id);
        let project = &pref.project;
        match self.ensure_loaded(project).await {
            Ok(true) => {}
            Ok(false) => {
                drop(pref);
                self.forget_if_unused(project_id);
                let reply =
                    ServerMessage::error("not_found", "project not found", Some(&canonical));
                conn.send_msg(&reply, m);
                return;
            }
            Err(e) => {
                tracing::warn!(project = %project_id, error = %e, "subscribe: loading the project failed");
                let reply =
                    ServerMessage::error("unavailable", "try again shortly", Some(&canonical));
                conn.send_msg(&reply, m);
                return;
            }
        }
        let Some(mut from) = since else {
            self.subscribe_snapshot(conn, project, staff);
            return;
        };
        let mut caught_up = false;
        loop {
            let step = {
                let mut inner = lock(&project.inner);
                let cur = inner.seq;
                if from > cur {
                    if caught_up {
                        Step::Snapshot
                    } else {
                        Step::CatchUpFirst
                    }
                } else if cur - from > self.config.max_replay {
                    Step::Snapshot
                } else if from == cur {
                    if self.register(conn, project, &mut inner, staff) {
                        let reply = ServerMessage::Subscribed {
                            channel: canonical.clone(),
                            seq: cur,
                            recovered: true,
                        };
                        conn.send_msg(&reply, m);
                    }
                    Step::Done
                } else if inner.ring.front().is_some_and(|f| f.seq <= from + 1) {
                    let frames: Vec<ByteString> = inner
                        .ring
                        .iter()
                        .filter(|f| f.seq > from)
                        .map(|f| {
                            if staff {
                                f.staff.clone()
                            } else {
                                f.public.clone()
                            }
                        })
                        .collect();
                    Step::Send(frames, cur)
                } else {
                    Step::Fetch { from, upto: cur }
                }
            };
            match step {
                Step::Done => return,
                Step::Snapshot => {
                    self.subscribe_snapshot(conn, project, staff);
                    return;
                }
                Step::CatchUpFirst => {
                    // The client saw a seq we have not: we are behind the store, not it ahead.
                    caught_up = true;
                    self.fill_now(project).await;
                }
                Step::Send(frames, to) => {
                    for f in frames {
                        if !conn.send_wait(f, self.config.replay_patience, m).await {
                            return;
                        }
                    }
                    from = to;
                }
                Step::Fetch { from: after, upto } => {
                    let limit = u64::try_from(upto - after)
                        .unwrap_or(0)
                        .min(self.config.store_page);
                    match self.q_events_after(project_id, after, limit).await {
                        Ok(Some(events)) if events.first().is_some_and(|e| e.seq == after + 1) => {
                            let mut last = after;
                            let mut frames = Vec::with_capacity(events.len());
                            for e in events.iter().filter(|e| e.seq <= upto) {
                                if e.seq != last + 1 {
                                    break;
                                }
                                last = e.seq;
                                frames.push(ServerMessage::unit(e, &canonical, staff).to_frame());
                            }
                            for f in frames {
                                if !conn.send_wait(f, self.config.replay_patience, m).await {
                                    return;
                                }
                            }
                            from = last;
                        }
                        Ok(_) => {
                            // History does not cover `since` (pruned or inconsistent).
                            self.subscribe_snapshot(conn, project, staff);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(project = %project_id, error = %e, "replay failed");
                            let reply = ServerMessage::error(
                                "unavailable",
                                "try again shortly",
                                Some(&canonical),
                            );
                            conn.send_msg(&reply, m);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Subscribes to `user:<id>` (the connection's own user only) or `conversation:<id>` (its
    /// parties only): `subscribed` at the head, or the items after `since` from the store first.
    async fn subscribe_feed(&self, conn: &Arc<Conn>, key: FeedKey, since: Option<i64>) {
        let m = &self.metrics;
        let channel = key.channel();
        if self.is_revoked(conn) {
            conn.close(CLOSE_POLICY, "token revoked");
            return;
        }
        let user = conn.principal.map(|p| p.user_id);
        let allowed = match key {
            FeedKey::User(id) => user == Some(id),
            FeedKey::Conversation(id) => {
                let Some(user) = user else {
                    let reply = ServerMessage::error(
                        "forbidden",
                        "conversation channels need a token",
                        Some(&channel),
                    );
                    conn.send_msg(&reply, m);
                    return;
                };
                match self.q(self.store.conversation_parties(id)).await {
                    Ok(Some(parties)) => parties.contains(&user),
                    Ok(None) => {
                        let reply = ServerMessage::error(
                            "not_found",
                            "conversation not found",
                            Some(&channel),
                        );
                        conn.send_msg(&reply, m);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%channel, error = %e, "subscribe: reading the conversation failed");
                        let reply = ServerMessage::error(
                            "unavailable",
                            "try again shortly",
                            Some(&channel),
                        );
                        conn.send_msg(&reply, m);
                        return;
                    }
                }
            }
        };
        if !allowed {
            let message = match key {
                FeedKey::User(_) => "a user channel is its own user's only (token required)",
                FeedKey::Conversation(_) => "only the conversation's parties may subscribe",
            };
            conn.send_msg(
                &ServerMessage::error("forbidden", message, Some(&channel)),
                m,
            );
            return;
        }
        if since.is_some_and(|s| s < 0) {
            let reply = ServerMessage::error("bad_request", "since must be >= 0", Some(&channel));
            conn.send_msg(&reply, m);
            return;
        }
        // A repeated subscribe restarts the subscription (a client's way to resync).
        if lock(&conn.subs).remove(Sub::Feed(key)) {
            self.remove_sub(conn.id, Sub::Feed(key));
        }
        if lock(&conn.subs).channels.len() >= self.config.max_subscriptions {
            let reply = ServerMessage::error(
                "too_many_subscriptions",
                format!(
                    "at most {} subscriptions per connection",
                    self.config.max_subscriptions
                ),
                Some(&channel),
            );
            conn.send_msg(&reply, m);
            return;
        }
        let fref = self.feeds.acquire(key);
        let feed = &fref.feed;
        if let Err(e) = self.feeds.ensure_loaded(feed).await {
            tracing::warn!(%channel, error = %e, "subscribe: reading the feed head failed");
            let reply = ServerMessage::error("unavailable", "try again shortly", Some(&channel));
            conn.send_msg(&reply, m);
            return;
        }
        let mut since = since;
        let mut caught_up = false;
        loop {
            match self.feeds.step(feed, conn, since, caught_up) {
                FeedStep::Done | FeedStep::Gone => return,
                FeedStep::CatchUpFirst => {
                    // The client saw a seq we have not: we are behind the store, not it ahead.
                    caught_up = true;
                    self.feeds.fill_now(feed).await;
                }
                FeedStep::Fetch { from, upto } => {
                    let limit = u64::try_from(upto - from)
                        .unwrap_or(0)
                        .min(self.config.store_page);
                    let events = match self.feeds.fetch(key, from, limit).await {
                        Ok(events) => events,
                        Err(e) => {
                            tracing::warn!(%channel, error = %e, "feed replay failed");
                            let reply = ServerMessage::error(
                                "unavailable",
                                "try again shortly",
                                Some(&channel),
                            );
                            conn.send_msg(&reply, m);
                            return;
                        }
                    };
                    let mut last = from;
                    let mut frames = Vec::with_capacity(events.len());
                    for e in events.iter().filter(|e| e.key == key && e.seq <= upto) {
                        if e.seq != last + 1 {
                            break;
                        }
                        last = e.seq;
                        frames.push(e.to_frame());
                    }
                    if last == from {
                        // The store does not cover `since` (pruned, or inconsistent): no
                        // replay; the client re-reads the REST list.
                        since = None;
                        continue;
                    }
                    for f in frames {
                        if !conn.send_wait(f, self.config.replay_patience, m).await {
                            return;
                        }
                    }
                    since = Some(last);
                }
            }
        }
    }

    /// Sends the cached snapshot and `subscribed`, registering in the same critical section
    /// so the next live event is exactly the one after the snapshot.
    fn subscribe_snapshot(&self, conn: &Arc<Conn>, project: &Project, staff: bool) {
        let mut inner = lock(&project.inner);
        let frame = self.snapshot_frame(project, &mut inner, staff);
        if self.register(conn, project, &mut inner, staff) {
            conn.send(frame, &self.metrics);
            let reply = ServerMessage::Subscribed {
                channel: project.channel(staff).to_owned(),
                seq: inner.seq,
                recovered: false,
            };
            conn.send_msg(&reply, &self.metrics);
        }
    }

    /// Adds the subscription unless the connection is gone. Called under the project lock.
    fn register(
        &self,
        conn: &Arc<Conn>,
        project: &Project,
        inner: &mut Inner,
        staff: bool,
    ) -> bool {
        let mut subs = lock(&conn.subs);
        if subs.closed || conn.is_dead() {
            return false;
        }
        subs.insert(Sub::Project(project.id, staff));
        if inner.subs.insert((conn.id, staff), conn.clone()).is_none() {
            self.metrics.subscriptions.inc();
        }
        inner.idle_since = None;
        true
    }
}

fn canonical(project_id: Uuid, staff: bool) -> String {
    if staff {
        format!("project:{project_id}:staff")
    } else {
        format!("project:{project_id}")
    }
}
