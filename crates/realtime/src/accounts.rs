//! Authenticated connections and recent token revocations, for closing a user's connections
//! once their token is revoked (never consulted per delivered frame).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::conn::Conn;
use crate::model::{Principal, Revocation};

/// Open authenticated connections by user, and what was revoked lately.
#[derive(Debug)]
pub(crate) struct Accounts {
    /// Open authenticated connections by user.
    conns: HashMap<Uuid, Vec<Arc<Conn>>>,
    /// The lowest token version still valid, per user revoked lately, and when it was last
    /// applied. A connection that authenticated before a revocation but registers after it is
    /// closed at once.
    min_version: HashMap<Uuid, (i64, Instant)>,
    /// The newest token change the catch-up has read.
    watermark: DateTime<Utc>,
}

impl Accounts {
    /// No connections; revocations committed before now concern none of this hub's
    /// connections, except one racing the start (the catch-up's overlap covers those).
    pub(crate) fn new() -> Self {
        Accounts {
            conns: HashMap::new(),
            min_version: HashMap::new(),
            watermark: Utc::now(),
        }
    }

    /// Remembers an authenticated connection; false (and not kept) if its token is revoked
    /// already.
    pub(crate) fn register(&mut self, conn: &Arc<Conn>) -> bool {
        let Some(p) = conn.principal else {
            return true;
        };
        if self.is_revoked(Some(p)) {
            return false;
        }
        self.conns.entry(p.user_id).or_default().push(conn.clone());
        true
    }

    /// Forgets a connection that ended.
    pub(crate) fn unregister(&mut self, conn: &Arc<Conn>) {
        let Some(p) = conn.principal else { return };
        if let Some(conns) = self.conns.get_mut(&p.user_id) {
            conns.retain(|c| !Arc::ptr_eq(c, conn));
            if conns.is_empty() {
                self.conns.remove(&p.user_id);
            }
        }
    }

    /// Applies a revocation (idempotent; an older one than seen changes nothing) and returns
    /// the user's connections it revokes, for the caller to close.
    pub(crate) fn revoke(&mut self, revocation: Revocation) -> Vec<Arc<Conn>> {
        let Revocation {
            user_id,
            min_version,
        } = revocation;
        let entry = self
            .min_version
            .entry(user_id)
            .or_insert((min_version, Instant::now()));
        *entry = (entry.0.max(min_version), Instant::now());
        let min = entry.0;
        let Some(conns) = self.conns.get_mut(&user_id) else {
            return Vec::new();
        };
        let (revoked, kept): (Vec<_>, Vec<_>) = conns
            .drain(..)
            .partition(|c| c.principal.is_some_and(|p| p.token_version < min));
        *conns = kept;
        if conns.is_empty() {
            self.conns.remove(&user_id);
        }
        revoked
    }

    /// True if this principal's token was revoked lately.
    pub(crate) fn is_revoked(&self, principal: Option<Principal>) -> bool {
        principal.is_some_and(|p| {
            self.min_version
                .get(&p.user_id)
                .is_some_and(|(min, _)| p.token_version < *min)
        })
    }

    /// Forgets revocations applied longer than `memory` ago.
    pub(crate) fn forget_older_than(&mut self, memory: Duration) {
        self.min_version.retain(|_, (_, at)| at.elapsed() < memory);
    }

    /// The newest token change the catch-up has read.
    pub(crate) fn watermark(&self) -> DateTime<Utc> {
        self.watermark
    }

    /// Moves the watermark forward to `newest`, never past our own clock: a row stamped by an
    /// instance whose clock runs ahead would otherwise hide the changes stamped correctly
    /// after it.
    pub(crate) fn advance_watermark(&mut self, newest: DateTime<Utc>) {
        self.watermark = self.watermark.max(newest.min(Utc::now()));
    }
}
