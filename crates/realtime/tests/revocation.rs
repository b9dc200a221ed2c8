//! Token revocation in the hub: a revoked user's authenticated connections are closed (1008),
//! others are not; a connection registering after a revocation is closed at once; the catch-up
//! applies revocations the bus never delivered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use kavling_realtime::testing::MemoryStore;
use kavling_realtime::{Bus, HubConfig, InProcessBus, Outbound, Principal, Revocation};
use uuid::Uuid;

fn principal(user_id: Uuid, token_version: i64) -> Option<Principal> {
    Some(Principal {
        user_id,
        token_version,
    })
}

async fn expect_revoked(rx: &mut kavling_realtime::Outbox) {
    match next_out(rx).await {
        Outbound::Close { code, reason } => {
            assert_eq!(code, 1008);
            assert_eq!(reason, "token revoked");
        }
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_revocation_closes_that_users_older_connections_only() {
    let store = Arc::new(MemoryStore::new());
    let (pid, _) = store.add_project(1);
    let hub = hub(&store, HubConfig::default());
    let bus = InProcessBus::new(hub.clone());
    let (user, other) = (Uuid::now_v7(), Uuid::now_v7());
    let channel = format!("project:{pid}:staff");

    let (old, mut old_rx) = hub.connect_as(principal(user, 0));
    old.handle_text(&sub(&channel), true);
    expect_snapshot(&mut old_rx, &channel).await;
    let (fresh, mut fresh_rx) = hub.connect_as(principal(user, 1));
    let (others, mut others_rx) = hub.connect_as(principal(other, 0));
    let (anon, mut anon_rx) = hub.connect();

    bus.publish_revocation(&Revocation {
        user_id: user,
        min_version: 1,
    })
    .await
    .unwrap();
    expect_revoked(&mut old_rx).await;
    assert!(old.is_closed());
    assert_eq!(hub.metrics().revoked_closes.get(), 1);
    for (conn, rx) in [
        (&fresh, &mut fresh_rx),
        (&others, &mut others_rx),
        (&anon, &mut anon_rx),
    ] {
        assert!(!conn.is_closed());
        conn.handle_text(r#"{"op":"ping"}"#, false);
        assert_eq!(next_raw(rx).await, r#"{"type":"pong"}"#);
    }

    // The same revocation again, or an older one, closes nothing more.
    for min_version in [1, 0] {
        let closed = hub.revoke(Revocation {
            user_id: user,
            min_version,
        });
        assert_eq!(closed, 0);
    }
    assert!(!fresh.is_closed());
}

#[tokio::test]
async fn a_connection_authenticated_before_a_revocation_but_registered_after_is_closed_at_once() {
    let store = Arc::new(MemoryStore::new());
    let hub = hub(&store, HubConfig::default());
    let user = Uuid::now_v7();
    hub.revoke(Revocation {
        user_id: user,
        min_version: 2,
    });
    let (late, mut late_rx) = hub.connect_as(principal(user, 1));
    expect_revoked(&mut late_rx).await;
    assert!(late.is_closed());
    let (current, _current_rx) = hub.connect_as(principal(user, 2));
    assert!(!current.is_closed());
}

#[tokio::test]
async fn the_catch_up_applies_a_revocation_the_bus_never_delivered() {
    let store = Arc::new(MemoryStore::new());
    let hub = hub(&store, HubConfig::default());
    let user = Uuid::now_v7();
    let (conn, mut rx) = hub.connect_as(principal(user, 0));
    assert_eq!(hub.catch_up_revocations().await.unwrap(), 0);

    store.set_token_version(user, 1);
    assert_eq!(hub.catch_up_revocations().await.unwrap(), 1);
    expect_revoked(&mut rx).await;
    assert!(conn.is_closed());
    // Re-reading the overlap window is harmless.
    assert_eq!(hub.catch_up_revocations().await.unwrap(), 0);
}

#[tokio::test]
async fn a_change_stamped_by_a_clock_running_ahead_does_not_hide_later_ones_from_the_catch_up() {
    let store = Arc::new(MemoryStore::new());
    let hub = hub(&store, HubConfig::default());
    let (ahead, later) = (Uuid::now_v7(), Uuid::now_v7());
    let (_a, mut ahead_rx) = hub.connect_as(principal(ahead, 0));
    let (_b, mut later_rx) = hub.connect_as(principal(later, 0));

    store.set_token_version_at(ahead, 1, chrono::Utc::now() + chrono::Duration::hours(1));
    assert_eq!(hub.catch_up_revocations().await.unwrap(), 1);
    expect_revoked(&mut ahead_rx).await;
    store.set_token_version(later, 1);
    assert_eq!(hub.catch_up_revocations().await.unwrap(), 1);
    expect_revoked(&mut later_rx).await;
}

#[tokio::test]
async fn revocations_are_remembered_for_revocation_memory_only() {
    let store = Arc::new(MemoryStore::new());
    let user = Uuid::now_v7();
    for (memory, remembered) in [(Duration::from_secs(600), true), (Duration::ZERO, false)] {
        let hub = hub(
            &store,
            HubConfig {
                revocation_memory: memory,
                ..HubConfig::default()
            },
        );
        hub.revoke(Revocation {
            user_id: user,
            min_version: 1,
        });
        hub.forget_old_revocations();
        let (late, _rx) = hub.connect_as(principal(user, 0));
        assert_eq!(late.is_closed(), remembered, "memory {memory:?}");
    }
}
