//! One WebSocket connection as the hub sees it: its bounded outbound queue, the client frames
//! waiting to be handled, and its subscriptions.
//!
//! An idle connection costs one small allocation (the `Arc<Conn>`): the queues allocate only
//! while they hold something, and a task to handle client frames exists only while there are
//! frames to handle.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytestring::ByteString;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::model::{FeedKey, Outbound, Principal, ServerMessage};
use crate::sync::lock;

/// Close code for a client too slow to drain its queue ("try again later").
pub const CLOSE_SLOW_CLIENT: u16 = 1013;
/// Close code for a policy violation (flooding the server with requests, a revoked token).
pub const CLOSE_POLICY: u16 = 1008;

/// A drained queue keeps a buffer this big for the next frames; a larger one (after a burst or a
/// replay) is given back to the allocator.
const KEEP_QUEUE_CAPACITY: usize = 8;

/// Shared per-connection state; projects hold an `Arc` of it for fan-out.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: u64,
    /// The user and token version it authenticated with (None: anonymous).
    pub(crate) principal: Option<Principal>,
    /// Frames a client may have queued before it is closed as slow.
    capacity: usize,
    /// Bytes of frames a client may have queued behind the one being written before it is
    /// closed as slow.
    max_bytes: usize,
    queue: Mutex<Queue>,
    dead: AtomicBool,
    pub(crate) subs: Mutex<ConnSubs>,
    ops: Mutex<Ops>,
}

/// The outbound queue: frames for the session, in order, ending with at most one Close.
#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Outbound>,
    /// Length of the text frames in `frames`.
    bytes: usize,
    /// No more frames are taken: a Close was queued or the session's end was dropped.
    shut: bool,
    /// The session waiting for a frame.
    reader: Option<Waker>,
    /// A replay waiting for room.
    writer: Option<Waker>,
}

/// One subscription of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sub {
    /// `project:<id>` (false) or `project:<id>:staff` (true).
    Project(Uuid, bool),
    /// `user:<id>` or `conversation:<id>`.
    Feed(FeedKey),
}

/// Channels a connection is subscribed to; `closed` once the handle is dropped.
#[derive(Debug, Default)]
pub(crate) struct ConnSubs {
    pub(crate) closed: bool,
    /// Each subscription: at most `max_subscriptions` (100), so a short list, which costs less
    /// per subscribed socket than a map keyed by channel name.
    pub(crate) channels: Vec<Sub>,
}

impl ConnSubs {
    /// Removes a subscription; true if it was there.
    pub(crate) fn remove(&mut self, sub: Sub) -> bool {
        match self.channels.iter().position(|c| *c == sub) {
            Some(i) => {
                self.channels.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Adds a subscription unless it is there already.
    pub(crate) fn insert(&mut self, sub: Sub) {
        if !self.channels.contains(&sub) {
            self.channels.push(sub);
        }
    }
}

/// Client frames waiting for the connection's worker task, which runs only while there are some.
#[derive(Debug, Default)]
struct Ops {
    pending: VecDeque<Op>,
    worker: bool,
}

impl Conn {
    pub(crate) fn new(
        id: u64,
        capacity: usize,
        max_bytes: usize,
        principal: Option<Principal>,
    ) -> Self {
        Conn {
            id,
            principal,
            capacity: capacity.max(1),
            max_bytes,
            queue: Mutex::new(Queue::default()),
            dead: AtomicBool::new(false),
            subs: Mutex::new(ConnSubs::default()),
            ops: Mutex::new(Ops::default()),
        }
    }

    /// Queues a client frame for the connection's worker. Returns `Flooding` when too many
    /// are waiting, and `StartWorker` when no worker runs (the caller starts one).
    pub(crate) fn push_op(&self, op: Op, max_pending: usize) -> PushOp {
        let mut ops = lock(&self.ops);
        if ops.pending.len() >= max_pending.max(1) {
            return PushOp::Flooding;
        }
        ops.pending.push_back(op);
        if ops.worker {
            PushOp::Queued
        } else {
            ops.worker = true;
            PushOp::StartWorker
        }
    }

    /// The next client frame for the worker; None (and the worker is over) when none is left
    /// or the connection is closed.
    pub(crate) fn next_op(&self) -> Option<Op> {
        let mut ops = lock(&self.ops);
        match ops.pending.pop_front() {
            Some(op) if !self.is_dead() => Some(op),
            _ => {
                // Give the buffer back: a quiet connection holds no queue.
                ops.pending = VecDeque::new();
                ops.worker = false;
                None
            }
        }
    }

    /// True once the connection was closed (slow, flooding, gone): the hub stops feeding it.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Queues a frame without waiting; a full queue (by count or by bytes) closes the
    /// connection with 1013. The Close itself always fits behind the frames.
    pub(crate) fn send(&self, frame: ByteString, metrics: &Metrics) -> bool {
        let q = lock(&self.queue);
        if q.shut {
            return false;
        }
        let item = if !self.has_room(&q, frame.len()) {
            metrics.slow_client_closes.inc();
            tracing::debug!(conn = self.id, "closing slow client");
            Outbound::Close {
                code: CLOSE_SLOW_CLIENT,
                reason: "client too slow".to_owned(),
            }
        } else {
            Outbound::Text(frame)
        };
        let accepted = matches!(item, Outbound::Text(_));
        self.push(q, item);
        accepted
    }

    /// Queues a message without waiting (see [`Conn::send`]).
    pub(crate) fn send_msg(&self, msg: &ServerMessage, metrics: &Metrics) -> bool {
        self.send(msg.to_frame(), metrics)
    }

    /// Queues a frame, waiting up to `patience` for room (replays may exceed the queue size).
    pub(crate) async fn send_wait(
        &self,
        frame: ByteString,
        patience: Duration,
        metrics: &Metrics,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        let room = std::future::poll_fn(|cx| {
            let mut q = lock(&self.queue);
            if q.shut || self.has_room(&q, frame.len()) {
                return Poll::Ready(());
            }
            if !q.writer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                q.writer = Some(cx.waker().clone());
            }
            Poll::Pending
        });
        // Still full after waiting: `send` now closes it as slow.
        let _ = tokio::time::timeout_at(deadline, room).await;
        self.send(frame, metrics)
    }

    /// True if a frame of `len` bytes fits: below `capacity` frames, and at most `max_bytes`
    /// queued behind the first frame (the one being written), so a snapshot larger than the
    /// bound still goes out, followed by its `subscribed`.
    fn has_room(&self, q: &Queue, len: usize) -> bool {
        let head = match q.frames.front() {
            Some(Outbound::Text(text)) => text.len(),
            _ => 0,
        };
        // Into an empty queue the frame is the one written next.
        q.frames.is_empty()
            || (q.frames.len() < self.capacity
                && (q.bytes - head).saturating_add(len) <= self.max_bytes)
    }

    /// Closes the connection with a code; frames already queued still go out before the Close.
    pub(crate) fn close(&self, code: u16, reason: &str) {
        let q = lock(&self.queue);
        if !q.shut {
            self.push(
                q,
                Outbound::Close {
                    code,
                    reason: reason.to_owned(),
                },
            );
        }
        self.dead.store(true, Ordering::Release);
    }

    /// Appends an item (a Close shuts the queue) and wakes the session.
    fn push(&self, mut q: std::sync::MutexGuard<'_, Queue>, item: Outbound) {
        match &item {
            Outbound::Close { .. } => {
                q.shut = true;
                self.dead.store(true, Ordering::Release);
            }
            Outbound::Text(text) => q.bytes += text.len(),
        }
        q.frames.push_back(item);
        let reader = q.reader.take();
        drop(q);
        if let Some(w) = reader {
            w.wake();
        }
    }
}

/// What became of a client frame handed to [`Conn::push_op`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushOp {
    /// Queued behind a running worker.
    Queued,
    /// Queued; no worker runs: start one.
    StartWorker,
    /// Too many frames waiting: the client is flooding.
    Flooding,
}

/// The session's end of a connection's outbound queue: frames to write to the socket, in order.
/// Dropping it closes the connection.
#[derive(Debug)]
pub struct Outbox {
    conn: Arc<Conn>,
}

impl Outbox {
    /// The outbox of a connection (one per connection: dropping it closes the connection).
    pub(crate) fn new(conn: Arc<Conn>) -> Self {
        Outbox { conn }
    }

    /// The next item; `None` once a Close was taken (or the connection was dropped) and the
    /// queue is empty. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Outbound> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next item (see [`Outbox::recv`]); a pending poll wakes `cx` when one is
    /// queued. Lets a transport drain the queue from its own poll, with no task in between.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        let mut q = lock(&self.conn.queue);
        match self.take(&mut q) {
            Some(item) => Poll::Ready(Some(item)),
            None if q.shut => Poll::Ready(None),
            None => {
                if !q.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    q.reader = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let mut q = lock(&self.conn.queue);
        self.take(&mut q)
    }

    fn take(&self, q: &mut Queue) -> Option<Outbound> {
        let item = q.frames.pop_front()?;
        if let Outbound::Text(text) = &item {
            q.bytes = q.bytes.saturating_sub(text.len());
        }
        if q.frames.is_empty() && q.frames.capacity() > KEEP_QUEUE_CAPACITY {
            q.frames = VecDeque::new();
        }
        if let Some(w) = q.writer.take() {
            w.wake();
        }
        Some(item)
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut q = lock(&self.conn.queue);
        q.shut = true;
        q.frames = VecDeque::new();
        q.bytes = 0;
        // The session's waker would keep its finished task's memory alive as long as the `Conn`.
        q.reader = None;
        let writer = q.writer.take();
        drop(q);
        self.conn.dead.store(true, Ordering::Release);
        if let Some(w) = writer {
            w.wake();
        }
    }
}

/// A client frame waiting for the connection's worker.
#[derive(Debug)]
pub(crate) enum Op {
    /// A frame to parse and act on.
    Text { text: String, staff_allowed: bool },
    /// A frame longer than any valid request; answered with `bad_request` in turn.
    Oversized(usize),
}
