//! One WebSocket connection as the hub sees it: its bounded outbound queue and its subscriptions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytestring::ByteString;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::model::{Outbound, ServerMessage};
use crate::sync::lock;

/// Close code for a client too slow to drain its queue ("try again later").
pub const CLOSE_SLOW_CLIENT: u16 = 1013;
/// Close code for a policy violation (flooding the server with requests).
pub const CLOSE_POLICY: u16 = 1008;

/// Shared per-connection state; projects hold an `Arc` of it for fan-out.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: u64,
    tx: Mutex<Option<mpsc::Sender<Outbound>>>,
    dead: AtomicBool,
    pub(crate) subs: Mutex<ConnSubs>,
}

/// Channels a connection is subscribed to; `closed` once the handle is dropped.
#[derive(Debug, Default)]
pub(crate) struct ConnSubs {
    pub(crate) closed: bool,
    pub(crate) channels: HashMap<String, (Uuid, bool)>,
}

impl Conn {
    pub(crate) fn new(id: u64, tx: mpsc::Sender<Outbound>) -> Self {
        Conn {
            id,
            tx: Mutex::new(Some(tx)),
            dead: AtomicBool::new(false),
            subs: Mutex::new(ConnSubs::default()),
        }
    }

    /// True once the connection was closed (slow, flooding, gone): the hub stops feeding it.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Queues a frame without waiting; a full queue closes the connection with 1013.
    /// One slot is always kept free so the Close frame itself fits.
    pub(crate) fn send(&self, frame: ByteString, metrics: &Metrics) -> bool {
        let mut tx = lock(&self.tx);
        let Some(sender) = tx.as_ref() else {
            return false;
        };
        if sender.capacity() <= 1 {
            let _ = sender.try_send(Outbound::Close {
                code: CLOSE_SLOW_CLIENT,
                reason: "client too slow".to_owned(),
            });
            metrics.slow_client_closes.inc();
            *tx = None;
            self.dead.store(true, Ordering::Release);
            tracing::debug!(conn = self.id, "closing slow client");
            return false;
        }
        match sender.try_send(Outbound::Text(frame)) {
            Ok(()) => true,
            Err(_) => {
                // Receiver gone (session ended) or, impossibly, full: stop feeding it.
                *tx = None;
                self.dead.store(true, Ordering::Release);
                false
            }
        }
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
        loop {
            let sender = {
                let tx = lock(&self.tx);
                let Some(sender) = tx.as_ref() else {
                    return false;
                };
                if sender.capacity() > 1 {
                    drop(tx);
                    return self.send(frame, metrics);
                }
                sender.clone()
            };
            // Wait until two slots are free (one for the frame, one kept for Close), then retry.
            let waited = tokio::time::timeout_at(deadline, async {
                sender.reserve_many(2).await.map(drop).is_ok()
            })
            .await;
            drop(sender);
            match waited {
                Ok(true) => {}
                Ok(false) => return false,
                // Still full after waiting: `send` now closes it as slow.
                Err(_) => return self.send(frame, metrics),
            }
        }
    }

    /// Closes the connection with a code, dropping whatever cannot be queued.
    pub(crate) fn close(&self, code: u16, reason: &str) {
        let mut tx = lock(&self.tx);
        if let Some(sender) = tx.take() {
            let _ = sender.try_send(Outbound::Close {
                code,
                reason: reason.to_owned(),
            });
        }
        self.dead.store(true, Ordering::Release);
    }
}

/// A client frame waiting for the connection's worker.
pub(crate) enum Op {
    /// A frame to parse and act on.
    Text { text: String, staff_allowed: bool },
    /// A frame longer than any valid request; answered with `bad_request` in turn.
    Oversized(usize),
}

/// The session's handle on the hub; dropping it removes all its subscriptions.
pub struct ConnectionHandle {
    pub(crate) hub: Arc<Hub>,
    pub(crate) conn: Arc<Conn>,
    pub(crate) ops: mpsc::Sender<Op>,
}

impl std::fmt::Debug for ConnectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionHandle")
            .field("id", &self.conn.id)
            .finish()
    }
}

impl ConnectionHandle {
    /// Process-unique id of this connection (for logs).
    pub fn id(&self) -> u64 {
        self.conn.id
    }

    /// True once the hub closed this connection (slow client, flooding).
    pub fn is_closed(&self) -> bool {
        self.conn.is_dead()
    }

    /// Handles one client text frame; never blocks: replies arrive on the outbound queue, in order.
    /// `staff_allowed` says whether this client may subscribe to `project:<id>:staff`.
    pub fn handle_text(&self, text: &str, staff_allowed: bool) {
        if self.conn.is_dead() {
            return;
        }
        // Valid requests are tiny; do not hold large frames in the queue.
        let op = if text.len() > self.hub.config().max_frame_len {
            Op::Oversized(text.len())
        } else {
            Op::Text {
                text: text.to_owned(),
                staff_allowed,
            }
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.ops.try_send(op) {
            // A client that sends faster than we can answer is flooding.
            self.conn.close(CLOSE_POLICY, "too many pending requests");
        }
    }

    /// Removes all subscriptions and stops the connection (same as dropping the handle).
    pub fn disconnect(self) {}
}

impl Drop for ConnectionHandle {
    fn drop(&mut self) {
        self.hub.disconnect(&self.conn);
    }
}
