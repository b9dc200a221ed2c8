//! Hub behaviour against an in-memory event store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use kavling_realtime::testing::MemoryStore;
use kavling_realtime::{
    BookingInfo, Bus, HubConfig, InProcessBus, Outbound, ServerMessage, UnitState,
};
use uuid::Uuid;

#[tokio::test]
async fn snapshot_then_live() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(3);
    store.commit(pid, units[0], "BOOKED", None).unwrap();
    store.commit(pid, units[1], "SOLD", None).unwrap();
    let hub = hub(&store, HubConfig::default());
    let bus = InProcessBus::new(hub.clone());
    let (conn, mut rx) = hub.connect();
    let channel = format!("project:{pid}");
    conn.handle_text(&sub(&channel), false);
    let (seq, snap) = expect_snapshot(&mut rx, &channel).await;
    assert_eq!(seq, 2);
    let ServerMessage::Snapshot { units: got, .. } = snap else {
        unreachable!()
    };
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].status, "BOOKED");
    assert_eq!(got[0].color, "#eab308");
    assert_eq!(got[1].status, "SOLD");
    assert_eq!(got[2].status, "AVAILABLE");

    let ev = store.commit(pid, units[2], "MAINTENANCE", None).unwrap();
    bus.publish(&ev).await.unwrap();
    let raw = next_raw(&mut rx).await;
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["type"], "unit");
    assert_eq!(v["channel"], channel);
    assert_eq!(v["seq"], 3);
    assert_eq!(v["unitId"], units[2].to_string());
    assert_eq!(v["blockNumber"], "A3");
    assert_eq!(v["status"], "MAINTENANCE");
    assert_eq!(v["previousStatus"], "AVAILABLE");
    assert_eq!(v["color"], "#9ca3af");
    let at = v["at"].as_str().unwrap();
    assert_eq!(at, ev.at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    assert!(v.get("booking").is_none());
    assert_eq!(v.as_object().unwrap().len(), 9);

    // A later subscriber's snapshot comes from the cache, kept current by the event.
    let (c2, mut rx2) = hub.connect();
    c2.handle_text(&sub(&channel), false);
    let (seq, snap) = expect_snapshot(&mut rx2, &channel).await;
    assert_eq!(seq, 3);
    let ServerMessage::Snapshot { units: got, .. } = snap else {
        unreachable!()
    };
    assert_eq!(got[2].status, "MAINTENANCE");
    assert_eq!(store.snapshot_calls.load(Ordering::Relaxed), 1);
    assert_eq!(hub.metrics().subscriptions.get(), 2);
    drop(conn);
    drop(c2);
    assert_eq!(hub.metrics().subscriptions.get(), 0);
    assert_eq!(hub.metrics().connections.get(), 0);
}

async fn replay_case(config: HubConfig) {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(2);
    for i in 0..6 {
        let status = if i % 2 == 0 { "BOOKED" } else { "AVAILABLE" };
        store.commit(pid, units[0], status, None).unwrap();
    }
    let hub = hub(&store, config);
    let channel = format!("project:{pid}");
    let (conn, mut rx) = hub.connect();
    conn.handle_text(&sub_since(&channel, 2), false);
    for want in 3..=6 {
        let msg = next_msg(&mut rx).await;
        assert_eq!(unit_seq(&msg), want);
    }
    assert_eq!(
        next_msg(&mut rx).await,
        ServerMessage::Subscribed {
            channel: channel.clone(),
            seq: 6,
            recovered: true
        }
    );
    // Then live.
    let ev = store.commit(pid, units[1], "SOLD", None).unwrap();
    hub.deliver(ev);
    assert_eq!(unit_seq(&next_msg(&mut rx).await), 7);

    // since == current: nothing to replay, recovered true.
    let (c2, mut rx2) = hub.connect();
    c2.handle_text(&sub_since(&channel, 7), false);
    assert_eq!(
        next_msg(&mut rx2).await,
        ServerMessage::Subscribed {
            channel: channel.clone(),
            seq: 7,
            recovered: true
        }
    );
    expect_silence(&mut rx2, 50).await;
}

#[tokio::test]
async fn since_replays_in_order_from_memory() {
    replay_case(HubConfig::default()).await;
}

#[tokio::test]
async fn since_replays_in_order_from_store() {
    // A tiny ring forces the replay through events_after, in pages of 2.
    replay_case(HubConfig {
        replay_buffer: 1,
        store_page: 2,
        ..HubConfig::default()
    })
    .await;
}

#[tokio::test]
async fn since_not_covered_falls_back_to_snapshot() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(1);
    for s in ["BOOKED", "AVAILABLE", "SOLD", "AVAILABLE", "BOOKED"] {
        store.commit(pid, units[0], s, None).unwrap();
    }
    store.prune(pid, 3);
    let hub = hub(&store, HubConfig::default());
    let channel = format!("project:{pid}");
    let (conn, mut rx) = hub.connect();
    conn.handle_text(&sub_since(&channel, 1), false);
    let (seq, snap) = expect_snapshot(&mut rx, &channel).await;
    assert_eq!(seq, 5);
    let ServerMessage::Snapshot { units: got, .. } = snap else {
        unreachable!()
    };
    assert_eq!(got[0].status, "BOOKED");

    // since beyond the current seq is treated as a fresh subscribe.
    let (c2, mut rx2) = hub.connect();
    c2.handle_text(&sub_since(&channel, 99), false);
    assert_eq!(expect_snapshot(&mut rx2, &channel).await.0, 5);

    // since within history still replays.
    let (c3, mut rx3) = hub.connect();
    c3.handle_text(&sub_since(&channel, 3), false);
    assert_eq!(unit_seq(&next_msg(&mut rx3).await), 4);
    assert_eq!(unit_seq(&next_msg(&mut rx3).await), 5);
    assert!(matches!(
        next_msg(&mut rx3).await,
        ServerMessage::Subscribed {
            seq: 5,
            recovered: true,
            ..
        }
    ));
}

#[tokio::test]
async fn staff_channel_needs_permission_and_carries_booking() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(1);
    let hub = hub(&store, HubConfig::default());
    let staff = format!("project:{pid}:staff");
    let public = format!("project:{pid}");

    let (anon, mut anon_rx) = hub.connect();
    anon.handle_text(&sub(&staff), false);
    let msg = next_msg(&mut anon_rx).await;
    assert_eq!(error_code(&msg), "forbidden");
    assert!(matches!(msg, ServerMessage::Error { channel: Some(ref c), .. } if *c == staff));
    anon.handle_text(&sub(&public), false);
    expect_snapshot(&mut anon_rx, &public).await;

    let (agent, mut agent_rx) = hub.connect();
    agent.handle_text(&sub(&staff), true);
    expect_snapshot(&mut agent_rx, &staff).await;

    let booking = BookingInfo {
        booking_id: Uuid::now_v7(),
        booking_code: "BK-2026-001".to_owned(),
        marketing_name: "Sari".to_owned(),
    };
    let ev = store
        .commit(pid, units[0], "BOOKED", Some(booking.clone()))
        .unwrap();
    hub.deliver(ev);
    let raw = next_raw(&mut agent_rx).await;
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["channel"], staff);
    assert_eq!(v["booking"]["bookingId"], booking.booking_id.to_string());
    assert_eq!(v["booking"]["bookingCode"], "BK-2026-001");
    assert_eq!(v["booking"]["marketingName"], "Sari");
    let raw = next_raw(&mut anon_rx).await;
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["channel"], public);
    assert!(v.get("booking").is_none());
}

#[tokio::test]
async fn malformed_frames_get_bad_request_and_connection_keeps_working() {
    let store = Arc::new(MemoryStore::new());
    let (pid, _) = store.add_project(1);
    let hub = hub(&store, HubConfig::default());
    let (conn, mut rx) = hub.connect();
    let channel = format!("project:{pid}");
    for bad in [
        "not json",
        "",
        "[]",
        r#"{"op":"nope"}"#,
        r#"{"op":"subscribe"}"#,
        r#"{"op":"subscribe","channel":42}"#,
        r#"{"op":"subscribe","channel":"x","since":"3"}"#,
        r#"{"op":"subscribe","channel":"x","since":1.5}"#,
        &sub_since(&channel, -1),
    ] {
        conn.handle_text(bad, false);
        let msg = next_msg(&mut rx).await;
        assert_eq!(error_code(&msg), "bad_request", "for {bad}");
    }
    conn.handle_text(r#"{"op":"ping"}"#, false);
    assert_eq!(next_raw(&mut rx).await, r#"{"type":"pong"}"#);
    conn.handle_text(&sub(&channel), false);
    expect_snapshot(&mut rx, &channel).await;
}

#[tokio::test]
async fn unknown_channels_and_projects_are_not_found() {
    let store = Arc::new(MemoryStore::new());
    let hub = hub(&store, HubConfig::default());
    let (conn, mut rx) = hub.connect();
    let missing = format!("project:{}", Uuid::now_v7());
    for ch in [
        "lobby",
        "project:",
        "project:not-a-uuid",
        "project:123:staff:x",
        &missing,
    ] {
        conn.handle_text(&sub(ch), true);
        let msg = next_msg(&mut rx).await;
        assert_eq!(error_code(&msg), "not_found", "for {ch}");
    }
    conn.handle_text(r#"{"op":"unsubscribe","channel":"lobby"}"#, false);
    assert_eq!(error_code(&next_msg(&mut rx).await), "not_found");
    // Probing ids that do not exist leaves nothing cached.
    assert_eq!(hub.cached_projects(), 0);
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped() {
    let store = Arc::new(MemoryStore::new());
    let projects: Vec<Uuid> = (0..3).map(|_| store.add_project(1).0).collect();
    let hub = hub(
        &store,
        HubConfig {
            max_subscriptions: 2,
            ..HubConfig::default()
        },
    );
    let (conn, mut rx) = hub.connect();
    for p in &projects[..2] {
        let ch = format!("project:{p}");
        conn.handle_text(&sub(&ch), false);
        expect_snapshot(&mut rx, &ch).await;
    }
    conn.handle_text(&sub(&format!("project:{}", projects[2])), false);
    assert_eq!(
        error_code(&next_msg(&mut rx).await),
        "too_many_subscriptions"
    );
    // Re-subscribing an existing channel is a resync, not a third subscription.
    let ch0 = format!("project:{}", projects[0]);
    conn.handle_text(&sub(&ch0), false);
    expect_snapshot(&mut rx, &ch0).await;
    // After an unsubscribe there is room again.
    conn.handle_text(
        &format!(r#"{{"op":"unsubscribe","channel":"{ch0}"}}"#),
        false,
    );
    let ch2 = format!("project:{}", projects[2]);
    conn.handle_text(&sub(&ch2), false);
    expect_snapshot(&mut rx, &ch2).await;
    assert_eq!(hub.metrics().subscriptions.get(), 2);
}

#[tokio::test]
async fn unsubscribe_stops_frames() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(1);
    let hub = hub(&store, HubConfig::default());
    let (conn, mut rx) = hub.connect();
    let ch = format!("project:{pid}");
    conn.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx, &ch).await;
    conn.handle_text(
        &format!(r#"{{"op":"unsubscribe","channel":"{ch}"}}"#),
        false,
    );
    conn.handle_text(r#"{"op":"ping"}"#, false);
    assert_eq!(next_msg(&mut rx).await, ServerMessage::Pong);
    hub.deliver(store.commit(pid, units[0], "SOLD", None).unwrap());
    expect_silence(&mut rx, 50).await;
    assert_eq!(hub.metrics().subscriptions.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_subscribers_get_every_event_once_in_order() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(10);
    let hub = hub(&store, HubConfig::default());
    let ch = format!("project:{pid}");
    let total = 60i64;

    // Events are committed and delivered twice (local + "Redis" copy) while clients subscribe.
    let producer = {
        let (hub, store) = (hub.clone(), store.clone());
        tokio::spawn(async move {
            for i in 0..total {
                let unit = units[(i % 10) as usize];
                let status = if i % 3 == 0 { "BOOKED" } else { "AVAILABLE" };
                let ev = store.commit(pid, unit, status, None).unwrap();
                hub.deliver(ev.clone());
                let hub2 = hub.clone();
                tokio::spawn(async move { hub2.deliver(ev) });
                if i % 4 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    let mut clients = Vec::new();
    for i in 0..200 {
        let (conn, rx) = hub.connect();
        if i % 2 == 0 {
            conn.handle_text(&sub(&ch), false);
        } else {
            conn.handle_text(&sub_since(&ch, i64::from(i % 7)), false);
        }
        clients.push((conn, rx));
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    producer.await.unwrap();
    for (i, (_conn, rx)) in clients.iter_mut().enumerate() {
        let mut next = match next_msg(rx).await {
            ServerMessage::Snapshot { seq, .. } => {
                assert!(
                    matches!(next_msg(rx).await, ServerMessage::Subscribed { seq: s, recovered: false, .. } if s == seq)
                );
                seq + 1
            }
            ServerMessage::Unit { seq, .. } => seq + 1,
            ServerMessage::Subscribed {
                seq,
                recovered: true,
                ..
            } => seq + 1,
            other => panic!("client {i}: unexpected {other:?}"),
        };
        while next <= total {
            match next_msg(rx).await {
                ServerMessage::Unit { seq, .. } => {
                    assert_eq!(seq, next, "client {i}");
                    next += 1;
                }
                ServerMessage::Subscribed {
                    seq,
                    recovered: true,
                    ..
                } => {
                    assert_eq!(seq, next - 1, "client {i}");
                }
                other => panic!("client {i}: unexpected {other:?}"),
            }
        }
        expect_silence(rx, 0).await;
    }
    // Each event goes out at most once however many copies arrive.
    assert!(hub.metrics().events_applied.get() <= total as u64);
    assert!(hub.metrics().duplicates_dropped.get() > 0);
}

#[tokio::test]
async fn gap_is_filled_from_the_store() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(3);
    let hub = hub(&store, HubConfig::default());
    let ch = format!("project:{pid}");
    let (conn, mut rx) = hub.connect();
    conn.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx, &ch).await;
    let e1 = store.commit(pid, units[0], "BOOKED", None).unwrap();
    let _e2 = store.commit(pid, units[1], "BOOKED", None).unwrap();
    let e3 = store.commit(pid, units[2], "SOLD", None).unwrap();
    hub.deliver(e1);
    hub.deliver(e3);
    for want in 1..=3 {
        assert_eq!(unit_seq(&next_msg(&mut rx).await), want);
    }
    expect_silence(&mut rx, 50).await;
    assert_eq!(hub.metrics().catch_ups.get(), 1);
    assert!(
        hub.metrics()
            .render_prometheus()
            .contains("kavling_realtime_catch_ups_total 1")
    );
}

#[tokio::test]
async fn duplicates_are_dropped() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(1);
    let hub = hub(&store, HubConfig::default());
    let ch = format!("project:{pid}");
    let (conn, mut rx) = hub.connect();
    conn.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx, &ch).await;
    let e1 = store.commit(pid, units[0], "BOOKED", None).unwrap();
    hub.deliver(e1.clone());
    hub.deliver(e1.clone());
    let e2 = store.commit(pid, units[0], "SOLD", None).unwrap();
    hub.deliver(e2.clone());
    hub.deliver(e1);
    hub.deliver(e2);
    assert_eq!(unit_seq(&next_msg(&mut rx).await), 1);
    assert_eq!(unit_seq(&next_msg(&mut rx).await), 2);
    expect_silence(&mut rx, 50).await;
    assert_eq!(hub.metrics().duplicates_dropped.get(), 3);
}

#[tokio::test]
async fn slow_client_is_closed_while_others_keep_receiving() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(1);
    let hub = hub(
        &store,
        HubConfig {
            queue_capacity: 8,
            ..HubConfig::default()
        },
    );
    let ch = format!("project:{pid}");
    let (slow, mut slow_rx) = hub.connect();
    slow.handle_text(&sub(&ch), false);
    let (fast, mut fast_rx) = hub.connect();
    fast.handle_text(&sub(&ch), false);
    expect_snapshot(&mut fast_rx, &ch).await;
    // Let the slow client's subscribe finish without reading its queue.
    while hub.metrics().subscriptions.get() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for i in 0..20 {
        let status = if i % 2 == 0 { "BOOKED" } else { "AVAILABLE" };
        hub.deliver(store.commit(pid, units[0], status, None).unwrap());
        assert_eq!(unit_seq(&next_msg(&mut fast_rx).await), i + 1);
    }
    assert!(slow.is_closed());
    assert_eq!(hub.metrics().slow_client_closes.get(), 1);
    assert_eq!(hub.metrics().subscriptions.get(), 1);
    let mut items = Vec::new();
    while let Some(o) = slow_rx.recv().await {
        items.push(o);
    }
    assert_eq!(items.len(), 9, "8 frames then the Close");
    assert_eq!(
        items.last(),
        Some(&Outbound::Close {
            code: 1013,
            reason: "client too slow".to_owned()
        })
    );
}

#[tokio::test]
async fn the_outbound_queue_is_bounded_by_bytes_as_well() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(40);
    // A unit frame is ~230 bytes: two fit in 500 behind the one being written; the snapshot
    // (~4 KB) is larger than the bound but is the one being written, and goes.
    let hub = hub(
        &store,
        HubConfig {
            queue_max_bytes: 500,
            ..HubConfig::default()
        },
    );
    let ch = format!("project:{pid}");
    let (slow, mut slow_rx) = hub.connect();
    slow.handle_text(&sub(&ch), false);
    let (snap, _) = expect_snapshot(&mut slow_rx, &ch).await;
    assert_eq!(snap, 0);
    let (fast, mut fast_rx) = hub.connect();
    fast.handle_text(&sub(&ch), false);
    expect_snapshot(&mut fast_rx, &ch).await;
    for (i, unit) in units.iter().take(6).enumerate() {
        hub.deliver(store.commit(pid, *unit, "BOOKED", None).unwrap());
        assert_eq!(unit_seq(&next_msg(&mut fast_rx).await), i as i64 + 1);
    }
    assert!(slow.is_closed());
    let mut items = Vec::new();
    while let Some(o) = slow_rx.recv().await {
        items.push(o);
    }
    assert_eq!(
        items.len(),
        4,
        "the one being written, 2 more, then the Close: {items:?}"
    );
    assert!(matches!(
        items.last(),
        Some(Outbound::Close { code: 1013, .. })
    ));
    assert_eq!(hub.metrics().slow_client_closes.get(), 1);
}

#[tokio::test]
async fn a_replay_older_than_the_ring_is_read_and_encoded_once_for_many_subscribers() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(2);
    for i in 0..20 {
        let status = if i % 2 == 0 { "BOOKED" } else { "AVAILABLE" };
        store.commit(pid, units[0], status, None).unwrap();
    }
    let hub = hub(
        &store,
        HubConfig {
            replay_buffer: 4,
            ..HubConfig::default()
        },
    );
    let ch = format!("project:{pid}");
    let (first, mut first_rx) = hub.connect();
    first.handle_text(&sub(&ch), false);
    expect_snapshot(&mut first_rx, &ch).await;
    let before = store.events_after_calls.load(Ordering::Relaxed);
    let mut frames = Vec::new();
    for _ in 0..5 {
        let (conn, mut rx) = hub.connect();
        conn.handle_text(&sub_since(&ch, 3), false);
        let mut got = Vec::new();
        for want in 4..=20 {
            let raw = next_raw(&mut rx).await;
            let msg: ServerMessage = serde_json::from_str(&raw).unwrap();
            assert_eq!(unit_seq(&msg), want);
            got.push(raw);
        }
        assert!(matches!(
            next_msg(&mut rx).await,
            ServerMessage::Subscribed {
                seq: 20,
                recovered: true,
                ..
            }
        ));
        frames.push(got);
    }
    assert_eq!(store.events_after_calls.load(Ordering::Relaxed), before + 1);
    assert!(frames.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn catch_up_tick_delivers_events_the_bus_lost() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(1);
    let hub = hub(&store, HubConfig::default());
    let tick = hub.spawn_catch_up(Duration::from_millis(100));
    let ch = format!("project:{pid}");
    let (conn, mut rx) = hub.connect();
    conn.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx, &ch).await;
    // Committed but never published.
    store.commit(pid, units[0], "SOLD", None).unwrap();
    let started = std::time::Instant::now();
    let msg = next_msg(&mut rx).await;
    assert_eq!(unit_seq(&msg), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(store.latest_heads_calls.load(Ordering::Relaxed) >= 1);
    tick.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_cache_loads_once_for_a_thousand_subscribers() {
    let store = Arc::new(MemoryStore::new());
    let (pid, _) = store.add_project(50);
    store.set_delay(Duration::from_millis(100));
    let hub = hub(&store, HubConfig::default());
    let ch = format!("project:{pid}");
    let mut clients = Vec::new();
    for _ in 0..1000 {
        let (conn, rx) = hub.connect();
        conn.handle_text(&sub(&ch), false);
        clients.push((conn, rx));
    }
    for (_conn, rx) in clients.iter_mut() {
        let (seq, snap) = expect_snapshot(rx, &ch).await;
        assert_eq!(seq, 0);
        let ServerMessage::Snapshot { units, .. } = snap else {
            unreachable!()
        };
        assert_eq!(units.len(), 50);
    }
    assert_eq!(store.snapshot_calls.load(Ordering::Relaxed), 1);
    assert_eq!(hub.metrics().subscriptions.get(), 1000);
}

#[tokio::test]
async fn pruned_gap_resyncs_subscribers_with_a_snapshot() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(2);
    let hub = hub(&store, HubConfig::default());
    let ch = format!("project:{pid}");
    let (conn, mut rx) = hub.connect();
    conn.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx, &ch).await;
    for _ in 0..3 {
        store.commit(pid, units[0], "BOOKED", None).unwrap();
    }
    let last = store.commit(pid, units[1], "SOLD", None).unwrap();
    store.prune(pid, 3);
    hub.deliver(last);
    match next_msg(&mut rx).await {
        ServerMessage::Snapshot { seq, units: u, .. } => {
            assert_eq!(seq, 4);
            assert_eq!(u[1].status, "SOLD");
        }
        other => panic!("expected a resync snapshot, got {other:?}"),
    }
    hub.deliver(store.commit(pid, units[1], "AVAILABLE", None).unwrap());
    assert_eq!(unit_seq(&next_msg(&mut rx).await), 5);
}

#[tokio::test]
async fn store_failure_reports_unavailable_then_recovers() {
    let store = Arc::new(MemoryStore::new());
    let (pid, _) = store.add_project(1);
    store.set_failing(true);
    let hub = hub(&store, HubConfig::default());
    let ch = format!("project:{pid}");
    let (conn, mut rx) = hub.connect();
    conn.handle_text(&sub(&ch), false);
    assert_eq!(error_code(&next_msg(&mut rx).await), "unavailable");
    store.set_failing(false);
    conn.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx, &ch).await;
}

#[tokio::test]
async fn availability_snapshot_and_idle_eviction() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(2);
    let hub = hub(
        &store,
        HubConfig {
            idle_evict_after: Duration::ZERO,
            ..HubConfig::default()
        },
    );
    let snap = hub.snapshot(pid).await.unwrap().unwrap();
    assert_eq!(snap.seq, 0);
    assert_eq!(
        snap.units[0],
        UnitState {
            unit_id: units[0],
            block_number: "A1".to_owned(),
            status: "AVAILABLE".to_owned(),
            color: "#22c55e".to_owned()
        }
    );
    assert!(hub.snapshot(Uuid::now_v7()).await.unwrap().is_none());
    assert_eq!(hub.cached_projects(), 1);
    hub.evict_idle();
    hub.evict_idle();
    assert_eq!(hub.cached_projects(), 0);
}

#[tokio::test]
async fn oversized_frames_and_bursts() {
    let store = Arc::new(MemoryStore::new());
    let projects: Vec<Uuid> = (0..100).map(|_| store.add_project(1).0).collect();
    let hub = hub(&store, HubConfig::default());
    let (conn, mut rx) = hub.connect();
    conn.handle_text(&" ".repeat(64 * 1024), false);
    assert_eq!(error_code(&next_msg(&mut rx).await), "bad_request");
    // A burst of 100 subscribes and 100 pings, sent without yielding, is answered in order.
    for p in &projects {
        conn.handle_text(&sub(&format!("project:{p}")), false);
        conn.handle_text(r#"{"op":"ping"}"#, false);
    }
    for p in &projects {
        let ch = format!("project:{p}");
        expect_snapshot(&mut rx, &ch).await;
        assert_eq!(next_msg(&mut rx).await, ServerMessage::Pong);
    }
    assert!(!conn.is_closed());
    assert_eq!(hub.metrics().subscriptions.get(), 100);
}

#[tokio::test]
async fn a_connection_runs_a_task_only_while_it_has_frames_to_handle() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(1);
    let hub = hub(&store, HubConfig::default());
    let ch = format!("project:{pid}");
    let before = tasks_alive();
    // Idle connections cost no task (memory per idle socket is a goal).
    let mut clients: Vec<_> = (0..100).map(|_| hub.connect()).collect();
    assert_eq!(tasks_alive(), before);
    for (conn, _) in &clients {
        conn.handle_text(&sub(&ch), false);
    }
    for (_, rx) in &mut clients {
        expect_snapshot(rx, &ch).await;
    }
    let quiet = |n: usize| async move {
        for _ in 0..200 {
            if tasks_alive() == n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    };
    assert!(
        quiet(before).await,
        "workers end once their frames are handled"
    );
    // A quiet connection still answers and still receives events.
    let (conn, rx) = &mut clients[0];
    conn.handle_text(r#"{"op":"ping"}"#, false);
    assert_eq!(next_msg(rx).await, ServerMessage::Pong);
    hub.deliver(store.commit(pid, units[0], "SOLD", None).unwrap());
    for (_, rx) in &mut clients {
        assert_eq!(unit_seq(&next_msg(rx).await), 1);
    }
    assert!(quiet(before).await);
}

fn tasks_alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test]
async fn since_ahead_of_the_hub_catches_up_from_the_store_first() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(1);
    let hub = hub(&store, HubConfig::default());
    let ch = format!("project:{pid}");
    let (a, mut rx_a) = hub.connect();
    a.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx_a, &ch).await;
    // Committed, but the bus lost all three; another instance told the client about seq 2.
    for s in ["BOOKED", "AVAILABLE", "SOLD"] {
        store.commit(pid, units[0], s, None).unwrap();
    }
    let (b, mut rx_b) = hub.connect();
    b.handle_text(&sub_since(&ch, 2), false);
    assert_eq!(unit_seq(&next_msg(&mut rx_b).await), 3);
    assert!(matches!(
        next_msg(&mut rx_b).await,
        ServerMessage::Subscribed {
            seq: 3,
            recovered: true,
            ..
        }
    ));
    for want in 1..=3 {
        assert_eq!(unit_seq(&next_msg(&mut rx_a).await), want);
    }
}

#[tokio::test]
async fn refresh_units_picks_up_units_added_without_events() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(1);
    let hub = hub(&store, HubConfig::default());
    let ch = format!("project:{pid}");
    let (a, mut rx) = hub.connect();
    a.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx, &ch).await;
    let new_unit = store.add_unit(pid, "B1").unwrap();
    // The store is also one event ahead: it must be delivered, not skipped.
    store.commit(pid, units[0], "SOLD", None).unwrap();
    hub.refresh_units(pid).await.unwrap();
    assert_eq!(unit_seq(&next_msg(&mut rx).await), 1);
    let snap = hub.snapshot(pid).await.unwrap().unwrap();
    assert_eq!(snap.seq, 1);
    assert_eq!(snap.units.len(), 2);
    assert!(snap.units.iter().any(|u| u.unit_id == new_unit));
    assert_eq!(snap.units[0].status, "SOLD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_through_the_store_race_live_events_without_loss_or_repeat() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(4);
    let hub = hub(
        &store,
        HubConfig {
            replay_buffer: 2,
            store_page: 3,
            ..HubConfig::default()
        },
    );
    let ch = format!("project:{pid}");
    for _ in 0..20 {
        store.commit(pid, units[0], "BOOKED", None).unwrap();
    }
    let total = 80i64;
    let producer = {
        let (hub, store) = (hub.clone(), store.clone());
        tokio::spawn(async move {
            for i in 20..total {
                let ev = store
                    .commit(pid, units[(i % 4) as usize], "SOLD", None)
                    .unwrap();
                if i % 5 != 0 {
                    // Every fifth event is "lost" by the bus and must come from a gap fill.
                    hub.deliver(ev);
                }
                tokio::time::sleep(Duration::from_micros(300)).await;
            }
            let last = store.commit(pid, units[0], "AVAILABLE", None).unwrap();
            hub.deliver(last);
        })
    };
    let mut clients = Vec::new();
    for i in 0..50i64 {
        let (conn, rx) = hub.connect();
        conn.handle_text(&sub_since(&ch, i % 20), false);
        clients.push((i % 20, conn, rx));
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    producer.await.unwrap();
    for (since, _conn, rx) in clients.iter_mut() {
        let mut next = *since + 1;
        let mut subscribed = false;
        while next <= total + 1 {
            match next_msg(rx).await {
                ServerMessage::Unit { seq, .. } => {
                    assert_eq!(seq, next, "since {since}");
                    next += 1;
                }
                ServerMessage::Subscribed { seq, recovered, .. } => {
                    assert!(recovered);
                    assert!(!subscribed);
                    assert_eq!(seq, next - 1);
                    subscribed = true;
                }
                other => panic!("since {since}: unexpected {other:?}"),
            }
        }
        assert!(subscribed);
        expect_silence(rx, 0).await;
    }
}

#[tokio::test]
async fn long_replay_waits_for_a_draining_client_but_closes_a_stuck_one() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(1);
    for _ in 0..50 {
        store.commit(pid, units[0], "BOOKED", None).unwrap();
    }
    let hub = hub(
        &store,
        HubConfig {
            queue_capacity: 8,
            replay_patience: Duration::from_millis(200),
            ..HubConfig::default()
        },
    );
    let ch = format!("project:{pid}");
    let (reader, mut rx) = hub.connect();
    reader.handle_text(&sub_since(&ch, 0), false);
    for want in 1..=50 {
        assert_eq!(unit_seq(&next_msg(&mut rx).await), want);
    }
    assert!(matches!(
        next_msg(&mut rx).await,
        ServerMessage::Subscribed {
            seq: 50,
            recovered: true,
            ..
        }
    ));

    let (stuck, mut stuck_rx) = hub.connect();
    stuck.handle_text(&sub_since(&ch, 0), false);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(stuck.is_closed());
    let mut items = Vec::new();
    while let Some(o) = stuck_rx.recv().await {
        items.push(o);
    }
    assert_eq!(items.len(), 9);
    assert!(matches!(
        items.last(),
        Some(Outbound::Close { code: 1013, .. })
    ));
    assert_eq!(hub.metrics().subscriptions.get(), 1);
}

/// Rough fan-out cost; run with `cargo test --release -p kavling-realtime -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn fanout_cost_for_ten_thousand_subscribers() {
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(500);
    let hub = hub(&store, HubConfig::default());
    let ch = format!("project:{pid}");
    let started = std::time::Instant::now();
    let mut clients = Vec::new();
    for _ in 0..10_000 {
        let (conn, rx) = hub.connect();
        conn.handle_text(&sub(&ch), false);
        clients.push((conn, rx));
    }
    while hub.metrics().subscriptions.get() < 10_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "10k subscribes (500-unit snapshot): {:?}, snapshot queries: {}",
        started.elapsed(),
        store.snapshot_calls.load(Ordering::Relaxed)
    );
    let started = std::time::Instant::now();
    for i in 0..100 {
        hub.deliver(store.commit(pid, units[i % 500], "BOOKED", None).unwrap());
    }
    let elapsed = started.elapsed();
    println!(
        "100 events x 10k subscribers: {elapsed:?} ({:?} per event)",
        elapsed / 100
    );
    println!("{}", hub.metrics().render_prometheus());
    assert_eq!(hub.metrics().frames_sent.get(), 1_000_000);
}

#[tokio::test]
async fn a_stuck_store_times_out_instead_of_hanging_subscribers() {
    let store = Arc::new(MemoryStore::new());
    let (pid, _) = store.add_project(1);
    store.set_delay(Duration::from_secs(30));
    let hub = hub(
        &store,
        HubConfig {
            store_timeout: Duration::from_millis(100),
            ..HubConfig::default()
        },
    );
    let (conn, mut rx) = hub.connect();
    conn.handle_text(&sub(&format!("project:{pid}")), false);
    assert_eq!(error_code(&next_msg(&mut rx).await), "unavailable");
    conn.handle_text(r#"{"op":"ping"}"#, false);
    assert_eq!(next_msg(&mut rx).await, ServerMessage::Pong);
    assert_eq!(hub.metrics().store_errors.get(), 1);
}

#[tokio::test]
async fn a_unit_list_change_from_the_bus_reaches_new_snapshots() {
    let store = Arc::new(MemoryStore::new());
    let (pid, _) = store.add_project(1);
    let hub = hub(&store, HubConfig::default());
    let ch = format!("project:{pid}");
    let (a, mut rx) = hub.connect();
    a.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx, &ch).await;
    let new_unit = store.add_unit(pid, "Y2").unwrap();
    // Not yet told: the cache still serves the old list.
    let before = hub.snapshot(pid).await.unwrap().unwrap();
    assert_eq!(before.units.len(), 1);
    // An older or equal version changes nothing; the committed one re-reads the list.
    let snapshots = store.snapshot_calls.load(Ordering::Relaxed);
    hub.units_changed(kavling_realtime::UnitsChanged {
        project_id: pid,
        units_version: 0,
    })
    .await;
    assert_eq!(store.snapshot_calls.load(Ordering::Relaxed), snapshots);
    hub.units_changed(kavling_realtime::UnitsChanged {
        project_id: pid,
        units_version: 1,
    })
    .await;
    let after = hub.snapshot(pid).await.unwrap().unwrap();
    assert_eq!(after.units_version, 1);
    assert!(after.units.iter().any(|u| u.unit_id == new_unit));
    let (b, mut rx_b) = hub.connect();
    b.handle_text(&sub(&ch), false);
    let (_, snap) = expect_snapshot(&mut rx_b, &ch).await;
    let ServerMessage::Snapshot { units, .. } = snap else {
        unreachable!()
    };
    assert!(units.iter().any(|u| u.block_number == "Y2"));
}

#[tokio::test]
async fn a_lost_unit_list_change_is_found_by_the_catch_up() {
    let store = Arc::new(MemoryStore::new());
    let (pid, _) = store.add_project(1);
    let hub = hub(&store, HubConfig::default());
    let ch = format!("project:{pid}");
    let (a, mut rx) = hub.connect();
    a.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx, &ch).await;
    // Committed, never published.
    let new_unit = store.add_unit(pid, "Y2").unwrap();
    assert_eq!(hub.catch_up_all().await.unwrap(), 1);
    let snap = hub.snapshot(pid).await.unwrap().unwrap();
    assert!(snap.units.iter().any(|u| u.unit_id == new_unit));
    assert_eq!(
        hub.catch_up_all().await.unwrap(),
        0,
        "nothing left to catch up"
    );
    // Its first status change is delivered like any other.
    let event = store.commit(pid, new_unit, "BOOKED", None).unwrap();
    hub.deliver(event);
    let msg = next_msg(&mut rx).await;
    assert_eq!(unit_seq(&msg), 1);
}
