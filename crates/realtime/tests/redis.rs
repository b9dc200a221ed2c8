//! RedisBus against a real Redis (KAVLING_TEST_REDIS_URL or REDIS_URL; skipped when unset).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use kavling_realtime::testing::MemoryStore;
use kavling_realtime::{Bus, BusError, Hub, HubConfig, RedisBus, RedisBusConfig};
use uuid::Uuid;

/// CLIENT KILL hits every pub/sub connection: run the Redis tests one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn redis_url() -> Option<String> {
    let url = std::env::var("KAVLING_TEST_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("note: KAVLING_TEST_REDIS_URL / REDIS_URL not set; skipping Redis test");
    }
    url
}

/// Fast timings so failures are noticed in tens of milliseconds; a unique prefix isolates tests.
fn fast_config() -> RedisBusConfig {
    RedisBusConfig {
        channel_prefix: format!("kavling-test-{}", Uuid::now_v7()),
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_secs(2),
        publish_timeout: Duration::from_secs(1),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..RedisBusConfig::default()
    }
}

/// Two hubs over one store, each with its Redis bus (same channel prefix).
async fn two_instances(
    url: &str,
    store: &Arc<MemoryStore>,
    config: RedisBusConfig,
) -> (Arc<Hub>, RedisBus, Arc<Hub>, RedisBus) {
    let hub_a = Hub::new(store.clone(), HubConfig::default());
    let hub_b = Hub::new(store.clone(), HubConfig::default());
    let bus_a = RedisBus::connect_with_config(url, hub_a.clone(), config.clone())
        .await
        .unwrap();
    let bus_b = RedisBus::connect_with_config(url, hub_b.clone(), config)
        .await
        .unwrap();
    (hub_a, bus_a, hub_b, bus_b)
}

/// `host:port` of a plain-TCP Redis URL (the black-hole proxy needs one); None, with a note,
/// for anything else.
fn tcp_target(url: &str) -> Option<String> {
    match redis::Client::open(url)
        .unwrap()
        .get_connection_info()
        .addr()
    {
        redis::ConnectionAddr::Tcp(host, port) => Some(format!("{host}:{port}")),
        other => {
            eprintln!("note: this test needs plain TCP Redis, got {other}; skipping");
            None
        }
    }
}

async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn unreachable_redis_fails_fast() {
    let start = Instant::now();
    let hub = Hub::new(Arc::new(MemoryStore::new()), HubConfig::default());
    let mut config = fast_config();
    config.connect_timeout = Duration::from_millis(500);
    let err = RedisBus::connect_with_config("redis://127.0.0.1:1", hub, config)
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));
    let bad = RedisBus::connect(
        "not a url",
        Hub::new(Arc::new(MemoryStore::new()), HubConfig::default()),
    )
    .await;
    assert!(matches!(bad, Err(BusError::InvalidUrl(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_on_one_instance_reaches_the_other() {
    let Some(url) = redis_url() else { return };
    let _serial = SERIAL.lock().await;
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(2);
    let (hub_a, bus_a, hub_b, _bus_b) = two_instances(&url, &store, fast_config()).await;
    let ch = format!("project:{pid}");
    let (ca, mut rx_a) = hub_a.connect();
    ca.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx_a, &ch).await;
    let (cb, mut rx_b) = hub_b.connect();
    cb.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx_b, &ch).await;

    for (i, unit) in units.iter().enumerate() {
        let ev = store.commit(pid, *unit, "BOOKED", None).unwrap();
        bus_a.publish(&ev).await.unwrap();
        assert_eq!(unit_seq(&next_msg(&mut rx_b).await), i as i64 + 1);
        assert_eq!(unit_seq(&next_msg(&mut rx_a).await), i as i64 + 1);
    }
    // A's own copy came back through Redis and was dropped as a duplicate.
    wait_until("echo dedup", Duration::from_secs(2), || {
        hub_a.metrics().duplicates_dropped.get() == 2
    })
    .await;
    expect_silence(&mut rx_a, 50).await;
    expect_silence(&mut rx_b, 50).await;
    assert_eq!(hub_a.metrics().events_published.get(), 2);
    assert!(bus_a.is_subscribed());
    bus_a.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_pubsub_connection_reconnects_and_catches_up() {
    let Some(url) = redis_url() else { return };
    let _serial = SERIAL.lock().await;
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(2);
    let (hub_a, bus_a, hub_b, bus_b) = two_instances(&url, &store, fast_config()).await;
    let ch = format!("project:{pid}");
    let (cb, mut rx_b) = hub_b.connect();
    cb.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx_b, &ch).await;

    // Committed but never published (as if the publish was lost): only a catch-up can bring it,
    // and no catch-up tick runs in this test, so it must come from the reconnect.
    store.commit(pid, units[0], "SOLD", None).unwrap();
    expect_silence(&mut rx_b, 100).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 2, "killed {killed}");
    assert_eq!(unit_seq(&next_msg(&mut rx_b).await), 1);
    assert!(hub_b.metrics().redis_reconnects.get() >= 1);
    assert!(hub_b.metrics().catch_ups.get() >= 1);

    // The live path works again after the reconnect.
    wait_until("A resubscribed", Duration::from_secs(3), || {
        hub_a.metrics().redis_reconnects.get() >= 1
    })
    .await;
    let ev = store.commit(pid, units[1], "BOOKED", None).unwrap();
    bus_a.publish(&ev).await.unwrap();
    assert_eq!(unit_seq(&next_msg(&mut rx_b).await), 2);
    assert!(bus_b.is_subscribed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connection_is_noticed_by_ping() {
    let Some(url) = redis_url() else { return };
    let _serial = SERIAL.lock().await;
    let Some(target) = tcp_target(&url) else {
        return;
    };
    let (proxy, cutoff, opened) = blackhole_proxy(target).await;
    let proxied = with_addr(&url, &proxy);
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(1);
    let hub = Hub::new(store.clone(), HubConfig::default());
    let _bus = RedisBus::connect_with_config(&proxied, hub.clone(), fast_config())
        .await
        .unwrap();
    let ch = format!("project:{pid}");
    let (c, mut rx) = hub.connect();
    c.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx, &ch).await;
    // Never published: it can only arrive through the catch-up after the reconnect.
    store.commit(pid, units[0], "BOOKED", None).unwrap();
    // Black-hole every connection opened so far; new ones work.
    cutoff.store(opened.load(Ordering::SeqCst), Ordering::SeqCst);
    let start = Instant::now();
    assert_eq!(unit_seq(&next_msg(&mut rx).await), 1);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(hub.metrics().redis_reconnects.get() >= 1);
}

fn user(
    hub: &Arc<Hub>,
    id: Uuid,
) -> (kavling_realtime::ConnectionHandle, kavling_realtime::Outbox) {
    hub.connect_as(Some(kavling_realtime::Principal {
        user_id: id,
        token_version: 0,
    }))
}

fn feed_seq(msg: &kavling_realtime::ServerMessage) -> i64 {
    match msg {
        kavling_realtime::ServerMessage::Notification { seq, .. }
        | kavling_realtime::ServerMessage::Message { seq, .. } => *seq,
        other => panic!("expected a feed frame, got {other:?}"),
    }
}

fn padded_notification(n: usize) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(m) = serde_json::json!({
        "id": Uuid::now_v7().to_string(),
        "kind": "payment",
        "title": format!("Payment {n} verified"),
        "body": "x".repeat(300),
        "data": {},
        "createdAt": "2026-12-03T08:00:00.000000Z",
        "readAt": null,
    }) else {
        unreachable!()
    };
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_items_and_booking_notes_reach_the_other_instance_once() {
    let Some(url) = redis_url() else { return };
    let _serial = SERIAL.lock().await;
    let store = Arc::new(MemoryStore::new());
    // Small messages, so one burst travels as many chunks.
    let config = RedisBusConfig {
        feed_chunk_bytes: 2_000,
        ..fast_config()
    };
    let (hub_a, bus_a, hub_b, _bus_b) = two_instances(&url, &store, config).await;
    let users: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let mut on_b = Vec::new();
    for u in &users {
        let (c, mut rx) = user(&hub_b, *u);
        c.handle_text(&sub(&format!("user:{u}")), false);
        assert!(matches!(
            next_msg(&mut rx).await,
            kavling_realtime::ServerMessage::Subscribed { seq: 0, .. }
        ));
        on_b.push((c, rx));
    }
    let (ca, mut rx_a) = user(&hub_a, users[0]);
    ca.handle_text(&sub(&format!("user:{}", users[0])), false);
    next_msg(&mut rx_a).await;

    // 5 users × 6 items, about 500 bytes each: ~20 messages of at most 2,000 bytes.
    let mut burst = Vec::new();
    for round in 0..6 {
        for u in &users {
            burst.push(store.commit_feed(
                kavling_realtime::FeedKey::User(*u),
                padded_notification(round),
            ));
        }
    }
    bus_a.publish_feed(&burst).await.unwrap();
    for (_, rx) in &mut on_b {
        for want in 1..=6 {
            assert_eq!(feed_seq(&next_msg(rx).await), want);
        }
    }
    for want in 1..=6 {
        assert_eq!(feed_seq(&next_msg(&mut rx_a).await), want);
    }
    // A's own copies came back through Redis and were dropped.
    wait_until("echo dedup", Duration::from_secs(3), || {
        hub_a.metrics().feed_duplicates_dropped.get() == 6
    })
    .await;
    for (_, rx) in &mut on_b {
        expect_silence(rx, 20).await;
    }
    expect_silence(&mut rx_a, 20).await;

    // A booking note: each instance's staff subscriber gets it exactly once.
    let (pid, _) = store.add_project(1);
    let staff = format!("project:{pid}:staff");
    let (sa, mut staff_a) = hub_a.connect();
    sa.handle_text(&sub(&staff), true);
    expect_snapshot(&mut staff_a, &staff).await;
    let (sb, mut staff_b) = hub_b.connect();
    sb.handle_text(&sub(&staff), true);
    expect_snapshot(&mut staff_b, &staff).await;
    let serde_json::Value::Object(body) = serde_json::json!({
        "bookingId": Uuid::now_v7().to_string(), "bookingCode": "BK-2026-007",
        "status": "ACTIVE", "paymentStatus": "PAID", "invoice": null,
        "at": "2026-12-03T08:00:00.000000Z",
    }) else {
        unreachable!()
    };
    let note = kavling_realtime::BookingNote {
        project_id: pid,
        body,
    };
    bus_a.publish_booking_note(&note).await.unwrap();
    for rx in [&mut staff_a, &mut staff_b] {
        let raw = next_raw(rx).await;
        assert!(raw.contains(r#""bookingCode":"BK-2026-007""#), "{raw}");
        expect_silence(rx, 300).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_item_lost_with_the_redis_link_arrives_after_the_reconnect() {
    let Some(url) = redis_url() else { return };
    let _serial = SERIAL.lock().await;
    let Some(target) = tcp_target(&url) else {
        return;
    };
    let (proxy, cutoff, opened) = blackhole_proxy(target).await;
    let store = Arc::new(MemoryStore::new());
    let hub_a = Hub::new(store.clone(), HubConfig::default());
    let hub_b = Hub::new(store.clone(), HubConfig::default());
    let config = fast_config();
    let bus_a = RedisBus::connect_with_config(&url, hub_a.clone(), config.clone())
        .await
        .unwrap();
    // B reaches Redis through the proxy; no catch-up tick runs in this test.
    let _bus_b = RedisBus::connect_with_config(&with_addr(&url, &proxy), hub_b.clone(), config)
        .await
        .unwrap();
    let (buyer, agent) = (Uuid::now_v7(), Uuid::now_v7());
    let conv = store.add_conversation(&[buyer, agent]);
    let channel = format!("conversation:{conv}");
    let (cb, mut rx_b) = user(&hub_b, buyer);
    cb.handle_text(&sub(&channel), false);
    next_msg(&mut rx_b).await;

    let message = |text: &str| {
        let serde_json::Value::Object(body) = serde_json::json!({
            "id": Uuid::now_v7().to_string(), "senderId": agent.to_string(),
            "text": text, "createdAt": "2026-12-03T08:00:00.000000Z",
        }) else {
            unreachable!()
        };
        store.commit_feed(kavling_realtime::FeedKey::Conversation(conv), body)
    };
    // Cut B's link, then publish through A: B's copy vanishes with the link.
    cutoff.store(opened.load(Ordering::SeqCst), Ordering::SeqCst);
    bus_a.publish_feed(&[message("halo")]).await.unwrap();
    // B notices the dead link by its ping, reconnects and catches up from the store.
    assert_eq!(feed_seq(&next_msg(&mut rx_b).await), 1);
    assert!(hub_b.metrics().redis_reconnects.get() >= 1);
    assert_eq!(hub_b.metrics().feed_catch_up_events.get(), 1);
    // And the live path works again.
    bus_a.publish_feed(&[message("apa kabar")]).await.unwrap();
    assert_eq!(feed_seq(&next_msg(&mut rx_b).await), 2);
    expect_silence(&mut rx_b, 100).await;
}

/// Benchmark, not a timed test: 10,000 users on instance B, each on their own `user:` channel; a
/// burst of one notification each published through instance A (one `publish_feed` call, as
/// after one transaction), carried by Redis in ~1 MiB messages. Prints B's commit-to-send
/// histogram. `REDIS_URL=redis://127.0.0.1:6379 cargo test --release -p kavling-realtime --test
/// redis -- --ignored --nocapture ten_thousand`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn ten_thousand_feeds_across_two_instances() {
    const N: usize = 10_000;
    let Some(url) = redis_url() else { return };
    let _serial = SERIAL.lock().await;
    let store = Arc::new(MemoryStore::new());
    let (_hub_a, bus_a, hub_b, _bus_b) = two_instances(&url, &store, fast_config()).await;
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N {
        let id = Uuid::now_v7();
        let (c, rx) = user(&hub_b, id);
        c.handle_text(&sub(&format!("user:{id}")), false);
        clients.push((c, rx, id));
    }
    for (_, rx, _) in &mut clients {
        next_msg(rx).await;
    }
    let mut burst: Vec<_> = clients
        .iter()
        .map(|(_, _, id)| {
            store.commit_feed(kavling_realtime::FeedKey::User(*id), padded_notification(1))
        })
        .collect();
    let committed = chrono::Utc::now();
    for item in &mut burst {
        item.at = committed;
    }
    let started = Instant::now();
    bus_a.publish_feed(&burst).await.unwrap();
    let published = started.elapsed();
    wait_until("every frame on B", Duration::from_secs(30), || {
        hub_b.metrics().feed_frames_sent.get() == N as u64
    })
    .await;
    let all = started.elapsed();
    for (_, rx, _) in &mut clients {
        assert_eq!(feed_seq(&next_msg(rx).await), 1);
    }
    let h = &hub_b.metrics().feed_commit_to_send;
    let cumulative = h.cumulative();
    let p = |q: u64| {
        kavling_realtime::LATENCY_BUCKETS_MS
            .iter()
            .zip(&cumulative)
            .find(|(_, c)| **c * 100 >= h.count() * q)
            .map(|(ms, _)| *ms)
    };
    println!(
        "{N} user feeds on B, burst through A and Redis: publish {published:?}, all queued on B \
         after {all:?}; B commit-to-send mean {:?}, p50 <= {:?} ms, p99 <= {:?} ms, max bucket \
         counts {cumulative:?}",
        h.sum() / u32::try_from(h.count()).unwrap_or(1),
        p(50),
        p(99),
    );
}
