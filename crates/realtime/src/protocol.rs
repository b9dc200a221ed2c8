//! The client protocol: a connection's handle, its worker that handles client frames in order
//! (`subscribe`, `unsubscribe`, `ping`), access checks, and the subscribe and replay loops of
//! project channels and feeds. Where a subscription stands and the ordering of what it
//! receives belong to `project.rs` and `feed.rs`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use uuid::Uuid;

use crate::conn::{CLOSE_POLICY, Conn, Op, Outbox, PushOp, Sub};
use crate::feed::FeedStep;
use crate::hub::Hub;
use crate::model::{ClientMessage, FeedKey, Principal, ServerMessage, parse_feed_channel};
use crate::project::ProjectStep;
use crate::store::timed;
use crate::sync::lock;

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

fn canonical(project_id: Uuid, staff: bool) -> String {
    if staff {
        format!("project:{project_id}:staff")
    } else {
        format!("project:{project_id}")
    }
}

impl Hub {
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
        let conn = Arc::new(Conn::new(
            id,
            self.config.queue_capacity,
            self.config.queue_max_bytes,
            principal,
        ));
        self.register_conn(&conn);
        let outbox = Outbox::new(conn.clone());
        let handle = ConnectionHandle {
            hub: self.clone(),
            conn,
        };
        (handle, outbox)
    }
}

/// The session's handle on the hub; dropping it removes all its subscriptions.
pub struct ConnectionHandle {
    hub: Arc<Hub>,
    conn: Arc<Conn>,
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

    /// Handles one client text frame; never blocks: replies arrive on the outbox, in order.
    /// `staff_allowed` says whether this client may subscribe to `project:<id>:staff`.
    /// Must be called inside a tokio runtime: frames are handled by a task of the connection's
    /// own, which runs only while there are frames to handle (so the session keeps reading,
    /// answering pings and draining its queue during a long replay).
    pub fn handle_text(&self, text: &str, staff_allowed: bool) {
        if self.conn.is_dead() {
            return;
        }
        // Valid requests are tiny; do not hold large frames in the queue.
        let op = if text.len() > self.hub.config.max_frame_len {
            Op::Oversized(text.len())
        } else {
            Op::Text {
                text: text.to_owned(),
                staff_allowed,
            }
        };
        match self.conn.push_op(op, self.hub.config.max_pending_ops) {
            PushOp::Queued => {}
            PushOp::StartWorker => {
                tokio::spawn(run_worker(self.hub.clone(), self.conn.clone()));
            }
            PushOp::Flooding => {
                // A client that sends faster than we can answer is flooding.
                self.conn.close(CLOSE_POLICY, "too many pending requests");
            }
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

/// Handles a connection's client frames one at a time, in order, until none are left.
async fn run_worker(hub: Arc<Hub>, conn: Arc<Conn>) {
    while let Some(op) = conn.next_op() {
        handle_op(&hub, &conn, op).await;
        // A burst of requests handled without a pause would fill the queue before the session
        // runs (on its thread) to drain it: share the thread as the runtime's budget says.
        tokio::task::coop::consume_budget().await;
    }
}

/// Handles one client frame for a connection (run by the connection's worker, in order).
async fn handle_op(hub: &Hub, conn: &Arc<Conn>, op: Op) {
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
                    hub.config.max_frame_len
                ),
                None,
            );
            conn.send_msg(&reply, &hub.metrics);
            return;
        }
    };
    let msg: ClientMessage = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => {
            let reply = ServerMessage::error("bad_request", format!("malformed frame: {e}"), None);
            conn.send_msg(&reply, &hub.metrics);
            return;
        }
    };
    match msg {
        ClientMessage::Ping => {
            conn.send_msg(&ServerMessage::Pong, &hub.metrics);
        }
        ClientMessage::Unsubscribe { channel } => {
            let sub = match (parse_channel(&channel), parse_feed_channel(&channel)) {
                (Some((project_id, staff)), _) => Sub::Project(project_id, staff),
                (None, Some(key)) => Sub::Feed(key),
                (None, None) => {
                    let reply =
                        ServerMessage::error("not_found", "unknown channel", Some(&channel));
                    conn.send_msg(&reply, &hub.metrics);
                    return;
                }
            };
            let removed = lock(&conn.subs).remove(sub);
            if removed {
                hub.remove_sub(conn.id, sub);
            }
        }
        ClientMessage::Subscribe { channel, since } => match parse_feed_channel(&channel) {
            Some(key) => subscribe_feed(hub, conn, key, since).await,
            None => subscribe_project(hub, conn, &channel, since, staff_allowed).await,
        },
    }
}

/// The checks every subscribe makes after its access check: `since` must not be negative, a
/// repeated subscribe restarts the subscription (a client's way to resync), and a connection
/// holds at most `max_subscriptions`. False when the subscribe ends here (the reply is queued).
fn admit(hub: &Hub, conn: &Arc<Conn>, sub: Sub, channel: &str, since: Option<i64>) -> bool {
    if since.is_some_and(|s| s < 0) {
        let reply = ServerMessage::error("bad_request", "since must be >= 0", Some(channel));
        conn.send_msg(&reply, &hub.metrics);
        return false;
    }
    if lock(&conn.subs).remove(sub) {
        hub.remove_sub(conn.id, sub);
    }
    if lock(&conn.subs).channels.len() >= hub.config.max_subscriptions {
        let reply = ServerMessage::error(
            "too_many_subscriptions",
            format!(
                "at most {} subscriptions per connection",
                hub.config.max_subscriptions
            ),
            Some(channel),
        );
        conn.send_msg(&reply, &hub.metrics);
        return false;
    }
    true
}

fn unavailable(hub: &Hub, conn: &Conn, channel: &str) {
    let reply = ServerMessage::error("unavailable", "try again shortly", Some(channel));
    conn.send_msg(&reply, &hub.metrics);
}

/// Subscribes to `project:<id>` or `project:<id>:staff`: a snapshot, or the events after
/// `since` (from the ring or the store), then `subscribed` and live events.
async fn subscribe_project(
    hub: &Hub,
    conn: &Arc<Conn>,
    channel: &str,
    since: Option<i64>,
    staff_allowed: bool,
) {
    let m = &hub.metrics;
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
    if hub.is_revoked(conn) {
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
    if !admit(
        hub,
        conn,
        Sub::Project(project_id, staff),
        &canonical,
        since,
    ) {
        return;
    }
    let projects = &hub.projects;
    let pref = projects.acquire(project_id);
    let project = &pref.project;
    match projects.ensure_loaded(project).await {
        Ok(true) => {}
        Ok(false) => {
            drop(pref);
            projects.forget_if_unused(project_id);
            let reply = ServerMessage::error("not_found", "project not found", Some(&canonical));
            conn.send_msg(&reply, m);
            return;
        }
        Err(e) => {
            tracing::warn!(project = %project_id, error = %e, "subscribe: loading the project failed");
            unavailable(hub, conn, &canonical);
            return;
        }
    }
    let Some(mut from) = since else {
        projects.subscribe_snapshot(conn, project, staff);
        return;
    };
    let mut caught_up = false;
    loop {
        match projects.step(project, conn, staff, from, caught_up) {
            ProjectStep::Done => return,
            ProjectStep::Snapshot => {
                projects.subscribe_snapshot(conn, project, staff);
                return;
            }
            ProjectStep::CatchUpFirst => {
                // The client saw a seq we have not: we are behind the store, not it ahead.
                caught_up = true;
                projects.fill_now(project).await;
            }
            ProjectStep::Send(frames, to) => {
                for f in frames {
                    if !conn.send_wait(f, hub.config.replay_patience, m).await {
                        return;
                    }
                }
                from = to;
            }
            ProjectStep::Fetch { from: after, upto } => {
                match projects.replay(project, staff, after, upto).await {
                    Ok(Some((frames, last))) => {
                        for f in frames {
                            if !conn.send_wait(f, hub.config.replay_patience, m).await {
                                return;
                            }
                        }
                        from = last;
                    }
                    Ok(None) => {
                        // History does not cover `since` (pruned or inconsistent).
                        projects.subscribe_snapshot(conn, project, staff);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(project = %project_id, error = %e, "replay failed");
                        unavailable(hub, conn, &canonical);
                        return;
                    }
                }
            }
        }
    }
}

/// Subscribes to `user:<id>` (the connection's own user only) or `conversation:<id>` (its
/// parties only): `subscribed` at the head, or the items after `since` from the store first.
async fn subscribe_feed(hub: &Hub, conn: &Arc<Conn>, key: FeedKey, since: Option<i64>) {
    let m = &hub.metrics;
    let channel = key.channel();
    if hub.is_revoked(conn) {
        conn.close(CLOSE_POLICY, "token revoked");
        return;
    }
    let user = conn.principal.map(|p| p.user_id);
    let allowed = match (key, user) {
        (FeedKey::User(id), _) => user == Some(id),
        (FeedKey::Conversation(_), None) => false,
        (FeedKey::Conversation(id), Some(user)) => {
            let parties = timed(
                hub.config.store_timeout,
                m,
                hub.store.conversation_parties(id),
            )
            .await;
            match parties {
                Ok(Some(parties)) => parties.contains(&user),
                Ok(None) => {
                    let reply =
                        ServerMessage::error("not_found", "conversation not found", Some(&channel));
                    conn.send_msg(&reply, m);
                    return;
                }
                Err(e) => {
                    tracing::warn!(%channel, error = %e, "subscribe: reading the conversation failed");
                    unavailable(hub, conn, &channel);
                    return;
                }
            }
        }
    };
    if !allowed {
        let message = match key {
            FeedKey::User(_) => "a user channel is its own user's only (token required)",
            FeedKey::Conversation(_) => {
                "only the conversation's parties may subscribe (token required)"
            }
        };
        conn.send_msg(
            &ServerMessage::error("forbidden", message, Some(&channel)),
            m,
        );
        return;
    }
    if !admit(hub, conn, Sub::Feed(key), &channel, since) {
        return;
    }
    let feeds = &hub.feeds;
    let fref = feeds.acquire(key);
    let feed = &fref.feed;
    if let Err(e) = feeds.ensure_loaded(feed).await {
        tracing::warn!(%channel, error = %e, "subscribe: reading the feed head failed");
        unavailable(hub, conn, &channel);
        return;
    }
    let mut since = since;
    let mut caught_up = false;
    loop {
        match feeds.step(feed, conn, since, caught_up) {
            FeedStep::Done | FeedStep::Gone => return,
            FeedStep::CatchUpFirst => {
                // The client saw a seq we have not: we are behind the store, not it ahead.
                caught_up = true;
                feeds.fill_now(feed).await;
            }
            FeedStep::Fetch { from, upto } => {
                let limit = u64::try_from(upto - from)
                    .unwrap_or(0)
                    .min(hub.config.store_page);
                let events = match feeds.fetch(key, from, limit).await {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::warn!(%channel, error = %e, "feed replay failed");
                        unavailable(hub, conn, &channel);
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
                    // The store does not cover `since` (pruned, or inconsistent): no replay;
                    // the client re-reads the REST list.
                    since = None;
                    continue;
                }
                for f in frames {
                    if !conn.send_wait(f, hub.config.replay_patience, m).await {
                        return;
                    }
                }
                since = Some(last);
            }
        }
    }
}
