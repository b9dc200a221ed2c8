//! Projects: the per-project availability cache, ordering by seq and exactly-once fan-out to
//! local subscribers, the ring of recent frames for `since` replays, gap fills, resyncs and
//! catch-up from the store. The client protocol (parsing requests, access checks, the replay
//! loop) is in `protocol.rs`; this module only says where a subscription stands and registers
//! it at the right seq.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytestring::ByteString;
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::HubConfig;
use crate::conn::{Conn, Sub};
use crate::metrics::Metrics;
use crate::model::{
    BookingNote, ProjectHead, ServerMessage, Snapshot, UnitEvent, UnitState, UnitsChanged,
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
    /// The page of events older than the ring read last for a replay, encoded: the
    /// subscribers of a reconnect storm resuming from the same seq share one store read and
    /// one encoding. History is immutable, so it stays valid; it goes with the cache.
    older: Option<Arc<Vec<Frames>>>,
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
                older: None,
                subs: HashMap::new(),
                pending: BTreeMap::new(),
                filling: false,
            }),
            loaded,
        }
    }

    pub(crate) fn channel(&self, staff: bool) -> &str {
        if staff {
            &self.staff_channel
        } else {
            &self.public_channel
        }
    }
}

impl Inner {
    /// Replaces the cached units (and their index); the snapshot frames are built again.
    fn set_units(&mut self, units: Vec<UnitState>) {
        self.index = units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.unit_id, i))
            .collect();
        self.units = units;
        self.snapshot_public = None;
        self.snapshot_staff = None;
    }
}

/// Keeps a project from eviction while a subscribe works on it.
pub(crate) struct ProjectRef {
    pub(crate) project: Arc<Project>,
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

/// How a subscribe with `since` continues after looking at the project under its lock.
pub(crate) enum ProjectStep {
    /// Registered at the current seq; `subscribed` (recovered) is queued.
    Done,
    /// Too far behind, or ahead of the store after a catch-up: send a snapshot.
    Snapshot,
    /// The client saw a seq this instance has not: catch up from the store, then look again.
    CatchUpFirst,
    /// These frames from the ring bring the client to the given seq; then look again.
    Send(Vec<ByteString>, i64),
    /// Replay `from + 1 ..= upto` from the store, then look again.
    Fetch { from: i64, upto: i64 },
}

/// Every project with a cache or local subscribers.
pub(crate) struct Projects {
    store: Arc<dyn EventStore>,
    config: HubConfig,
    metrics: Arc<Metrics>,
    map: Mutex<HashMap<Uuid, Arc<Project>>>,
    /// Lets `&self` methods spawn tasks that own the projects.
    this: Weak<Projects>,
}

impl Projects {
    /// No projects yet; caches load from `store` on first use.
    pub(crate) fn new(
        store: Arc<dyn EventStore>,
        config: HubConfig,
        metrics: Arc<Metrics>,
    ) -> Arc<Projects> {
        Arc::new_cyclic(|this| Projects {
            store,
            config,
            metrics,
            map: Mutex::new(HashMap::new()),
            this: this.clone(),
        })
    }

    /// Removes a connection's subscription of a project (the cache stays until idle).
    pub(crate) fn remove_sub(&self, conn_id: u64, project_id: Uuid, staff: bool) {
        let project = lock(&self.map).get(&project_id).cloned();
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

    /// Decides, under the project's lock, how a subscribe resuming after `from` continues;
    /// registers the connection and queues `subscribed` once it is at the current seq, so the
    /// next live event is exactly the one after it.
    pub(crate) fn step(
        &self,
        project: &Project,
        conn: &Arc<Conn>,
        staff: bool,
        from: i64,
        caught_up: bool,
    ) -> ProjectStep {
        let mut inner = lock(&project.inner);
        let cur = inner.seq;
        if from > cur {
            if caught_up {
                ProjectStep::Snapshot
            } else {
                ProjectStep::CatchUpFirst
            }
        } else if cur - from > self.config.max_replay {
            ProjectStep::Snapshot
        } else if from == cur {
            if self.register(conn, project, &mut inner, staff) {
                let reply = ServerMessage::Subscribed {
                    channel: project.channel(staff).to_owned(),
                    seq: cur,
                    recovered: true,
                };
                conn.send_msg(&reply, &self.metrics);
            }
            ProjectStep::Done
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
            ProjectStep::Send(frames, cur)
        } else {
            ProjectStep::Fetch { from, upto: cur }
        }
    }

    /// The frames of events `after + 1 ..` (at most up to `upto`, one store page) from the
    /// store, with the last seq they reach; None when history does not cover `after`. The page
    /// read is kept (see `Inner::older`) and answers the next replay it covers without a query.
    pub(crate) async fn replay(
        &self,
        project: &Project,
        staff: bool,
        after: i64,
        upto: i64,
    ) -> Result<Option<(Vec<ByteString>, i64)>, StoreError> {
        let cached = lock(&project.inner).older.clone();
        let page = match cached {
            Some(page)
                if page.first().is_some_and(|f| f.seq <= after + 1)
                    && page.last().is_some_and(|f| f.seq > after) =>
            {
                page
            }
            _ => {
                let limit = u64::try_from(upto - after)
                    .unwrap_or(0)
                    .min(self.config.store_page);
                let events = match self.q_events_after(project.id, after, limit).await? {
                    Some(events) if events.first().is_some_and(|e| e.seq == after + 1) => events,
                    // History does not cover `since` (pruned or inconsistent).
                    _ => return Ok(None),
                };
                let mut frames = Vec::with_capacity(events.len());
                for e in &events {
                    if frames.last().is_some_and(|f: &Frames| e.seq != f.seq + 1) {
                        break;
                    }
                    frames.push(self.frames(project, e));
                }
                let page = Arc::new(frames);
                lock(&project.inner).older = Some(page.clone());
                page
            }
        };
        let mut last = after;
        let mut out = Vec::new();
        for f in page.iter().filter(|f| f.seq > after && f.seq <= upto) {
            if f.seq != last + 1 {
                break;
            }
            last = f.seq;
            out.push(if staff {
                f.staff.clone()
            } else {
                f.public.clone()
            });
        }
        Ok(Some((out, last)))
    }

    pub(crate) fn acquire(&self, project_id: Uuid) -> ProjectRef {
        let mut map = lock(&self.map);
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
    pub(crate) fn forget_if_unused(&self, project_id: Uuid) {
        let mut map = lock(&self.map);
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
    pub(crate) async fn snapshot(&self, project_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
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
    pub(crate) async fn ensure_loaded(&self, project: &Project) -> Result<bool, StoreError> {
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
        inner.set_units(snapshot.units);
        inner.ring.clear();
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
            let sent = self.fan_out(inner, |staff| {
                Some(if staff { &frames.staff } else { &frames.public })
            });
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
    pub(crate) fn deliver(&self, event: UnitEvent) {
        self.metrics.events_received.inc();
        let Some(project) = lock(&self.map).get(&event.project_id).cloned() else {
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
        let projects = self.this.upgrade();
        let project_arc = lock(&self.map).get(&project.id).cloned();
        let rt = tokio::runtime::Handle::try_current();
        match (projects, project_arc, rt) {
            (Some(projects), Some(p), Ok(rt)) if std::ptr::eq(Arc::as_ptr(&p), project) => {
                rt.spawn(async move { projects.fill(&p).await });
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
    pub(crate) async fn fill_now(&self, project: &Project) {
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
    pub(crate) async fn refresh_units(&self, project_id: Uuid) -> Result<(), StoreError> {
        let Some(project) = lock(&self.map).get(&project_id).cloned() else {
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
                    inner.set_units(snapshot.units);
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
        self.fan_out(&mut inner, |s| Some(if s { &staff } else { &public }));
    }

    /// Queues to every subscriber the frame `pick(staff)` chooses for its channel kind (None:
    /// nothing for that kind); drops subscribers whose connection is closed. Returns how many
    /// got it. Called under the project's lock, which is what orders frames per subscriber.
    fn fan_out<'f>(&self, inner: &mut Inner, pick: impl Fn(bool) -> Option<&'f ByteString>) -> u64 {
        let mut dead = Vec::new();
        let mut sent = 0u64;
        for (key, conn) in &inner.subs {
            let Some(frame) = pick(key.1) else { continue };
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
        sent
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

    pub(crate) async fn catch_up(&self) -> Result<usize, StoreError> {
        let projects: Vec<Arc<Project>> = lock(&self.map).values().cloned().collect();
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

    /// Sends a staff `booking` note to this instance's subscribers of the project's staff
    /// channel. Live only: no seq, no replay, nothing kept (the buyer's `user:` notifications
    /// and the REST lists are the lossless record). Returns how many got it.
    pub(crate) fn deliver_booking_note(&self, note: &BookingNote) -> usize {
        let Some(project) = lock(&self.map).get(&note.project_id).cloned() else {
            return 0;
        };
        let mut inner = lock(&project.inner);
        if !inner.subs.keys().any(|(_, staff)| *staff) {
            return 0;
        }
        let frame = note.to_frame();
        let sent = self.fan_out(&mut inner, |staff| staff.then_some(&frame));
        self.metrics.booking_frames_sent.add(sent);
        usize::try_from(sent).unwrap_or(usize::MAX)
    }

    /// Applies a committed unit-list change (from the bus): a cached project whose list is older
    /// re-reads it, so new subscribers' snapshots include the new units. Does nothing for a
    /// project not cached here or already at that version.
    pub(crate) async fn units_changed(&self, change: UnitsChanged) {
        let stale = lock(&self.map).get(&change.project_id).is_some_and(|p| {
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
    pub(crate) fn evict_idle(&self) {
        let now = Instant::now();
        let after = self.config.idle_evict_after;
        let mut map = lock(&self.map);
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
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Sends the cached snapshot and `subscribed`, registering in the same critical section
    /// so the next live event is exactly the one after the snapshot.
    pub(crate) fn subscribe_snapshot(&self, conn: &Arc<Conn>, project: &Project, staff: bool) {
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
