//! User and conversation channels ("feeds") against the in-memory store: access, `since`
//! replay, ordering, duplicates, gaps, lost bus messages, slow clients, staff booking notes,
//! and 10,000 feeds in one process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use kavling_realtime::testing::MemoryStore;
use kavling_realtime::{
    BookingNote, Bus, ConnectionHandle, FeedEvent, FeedKey, Hub, HubConfig, InProcessBus, Outbound,
    Outbox, Principal, ServerMessage, parse_feed_channel,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

fn as_user(hub: &Arc<Hub>, user: Uuid) -> (ConnectionHandle, Outbox) {
    hub.connect_as(Some(Principal {
        user_id: user,
        token_version: 0,
    }))
}

fn body(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// A notification's fields as core would write them.
fn notification(n: u32) -> Map<String, Value> {
    body(json!({
        "id": Uuid::from_u128(u128::from(n)).to_string(),
        "kind": "unit_available",
        "title": format!("A{n} is available"),
        "body": "Tap to see it",
        "data": {"unitId": Uuid::from_u128(7).to_string()},
        "createdAt": "2026-12-03T08:00:00.000000Z",
        "readAt": null,
    }))
}

fn notify(store: &MemoryStore, user: Uuid, n: u32) -> FeedEvent {
    store.commit_feed(FeedKey::User(user), notification(n))
}

fn say(store: &MemoryStore, conversation: Uuid, sender: Uuid, text: &str) -> FeedEvent {
    store.commit_feed(
        FeedKey::Conversation(conversation),
        body(json!({
            "id": Uuid::now_v7().to_string(),
            "senderId": sender.to_string(),
            "text": text,
            "createdAt": "2026-12-03T08:00:00.000000Z",
        })),
    )
}

/// Checks a frame: `type`, `channel` (and `seq`) first, as the hub writes them, then exactly
/// the fields of `want` (in any order: a JSON map's order is not part of the protocol).
fn assert_frame(raw: &str, head: &str, want: Value) {
    assert!(raw.starts_with(head), "{raw} does not start with {head}");
    assert_eq!(serde_json::from_str::<Value>(raw).unwrap(), want, "{raw}");
}

/// The seq of a notification or message frame.
fn feed_seq(msg: &ServerMessage) -> i64 {
    match msg {
        ServerMessage::Notification { seq, .. } | ServerMessage::Message { seq, .. } => *seq,
        other => panic!("expected a feed frame, got {other:?}"),
    }
}

async fn expect_subscribed(rx: &mut Outbox, channel: &str, seq: i64, recovered: bool) {
    assert_eq!(
        next_msg(rx).await,
        ServerMessage::Subscribed {
            channel: channel.to_owned(),
            seq,
            recovered
        }
    );
}

#[test]
fn feed_channels_parse_and_name_themselves() {
    let id = Uuid::now_v7();
    let user = FeedKey::User(id);
    assert_eq!(user.channel(), format!("user:{id}"));
    assert_eq!(user.frame_type(), "notification");
    assert_eq!(parse_feed_channel(&user.channel()), Some(user));
    let conv = FeedKey::Conversation(id);
    assert_eq!(conv.frame_type(), "message");
    assert_eq!(parse_feed_channel(&conv.channel()), Some(conv));
    assert_eq!(
        parse_feed_channel(&format!("user:{}", id.to_string().to_uppercase())),
        Some(user)
    );
    for bad in [
        "user:".to_owned(),
        format!("users:{id}"),
        format!("user:{id}:x"),
        format!("project:{id}"),
        format!("conversation:{}", id.simple()),
    ] {
        assert_eq!(parse_feed_channel(&bad), None, "{bad}");
    }
    assert_eq!(
        serde_json::to_value(user).unwrap(),
        json!({"kind": "user", "id": id.to_string()})
    );
}

#[tokio::test]
async fn own_user_channel_gets_live_notifications_in_wire_form() {
    let store = Arc::new(MemoryStore::new());
    let user = Uuid::now_v7();
    notify(&store, user, 1);
    notify(&store, user, 2);
    let hub = hub(&store, HubConfig::default());
    let bus = InProcessBus::new(hub.clone());
    let channel = format!("user:{user}");
    let (conn, mut rx) = as_user(&hub, user);
    conn.handle_text(&sub(&channel), false);
    // No snapshot for feeds: the head, then live items.
    expect_subscribed(&mut rx, &channel, 2, false).await;

    let item = notify(&store, user, 3);
    bus.publish_feed(std::slice::from_ref(&item)).await.unwrap();
    let raw = next_raw(&mut rx).await;
    assert_frame(
        &raw,
        &format!(r#"{{"type":"notification","channel":"{channel}","seq":3,"#),
        json!({
            "type": "notification",
            "channel": channel,
            "seq": 3,
            "id": Uuid::from_u128(3).to_string(),
            "kind": "unit_available",
            "title": "A3 is available",
            "body": "Tap to see it",
            "data": {"unitId": Uuid::from_u128(7).to_string()},
            "createdAt": "2026-12-03T08:00:00.000000Z",
            "readAt": null,
        }),
    );
    assert_eq!(hub.metrics().feed_frames_sent.get(), 1);
    assert_eq!(hub.metrics().feed_commit_to_send.count(), 1);
    assert!(
        hub.metrics()
            .render_prometheus()
            .contains("kavling_realtime_feed_commit_to_send_seconds_count 1")
    );

    // Unsubscribe stops it, and the feed is dropped: nobody here watches it.
    conn.handle_text(
        &format!(r#"{{"op":"unsubscribe","channel":"{channel}"}}"#),
        false,
    );
    conn.handle_text(r#"{"op":"ping"}"#, false);
    assert_eq!(next_msg(&mut rx).await, ServerMessage::Pong);
    assert_eq!(hub.cached_feeds(), 0);
    bus.publish_feed(&[notify(&store, user, 4)]).await.unwrap();
    expect_silence(&mut rx, 50).await;
    assert_eq!(hub.metrics().subscriptions.get(), 0);
}

#[tokio::test]
async fn user_channels_belong_to_their_user_only() {
    let store = Arc::new(MemoryStore::new());
    let hub = hub(&store, HubConfig::default());
    let (me, other) = (Uuid::now_v7(), Uuid::now_v7());
    let theirs = format!("user:{other}");
    let (conn, mut rx) = as_user(&hub, me);
    conn.handle_text(&sub(&theirs), true);
    let msg = next_msg(&mut rx).await;
    assert_eq!(error_code(&msg), "forbidden");
    assert!(matches!(msg, ServerMessage::Error { channel: Some(ref c), .. } if *c == theirs));

    let (anon, mut anon_rx) = hub.connect();
    anon.handle_text(&sub(&format!("user:{me}")), true);
    assert_eq!(error_code(&next_msg(&mut anon_rx).await), "forbidden");
    // Nothing was read from the store for that, and nothing is held.
    assert_eq!(store.feed_heads_calls.load(Ordering::Relaxed), 0);
    assert_eq!(hub.cached_feeds(), 0);
    assert_eq!(hub.metrics().subscriptions.get(), 0);
}

#[tokio::test]
async fn conversation_channels_belong_to_their_parties_only() {
    let store = Arc::new(MemoryStore::new());
    let hub = hub(&store, HubConfig::default());
    let (buyer, agent, stranger) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let conv = store.add_conversation(&[buyer, agent]);
    let channel = format!("conversation:{conv}");

    let (s, mut s_rx) = as_user(&hub, stranger);
    s.handle_text(&sub(&channel), true);
    assert_eq!(error_code(&next_msg(&mut s_rx).await), "forbidden");
    let (anon, mut anon_rx) = hub.connect();
    anon.handle_text(&sub(&channel), false);
    assert_eq!(error_code(&next_msg(&mut anon_rx).await), "forbidden");
    let unknown = format!("conversation:{}", Uuid::now_v7());
    s.handle_text(&sub(&unknown), true);
    let msg = next_msg(&mut s_rx).await;
    assert_eq!(error_code(&msg), "not_found");
    assert!(matches!(msg, ServerMessage::Error { channel: Some(ref c), .. } if *c == unknown));
    assert_eq!(hub.cached_feeds(), 0);

    let (b, mut b_rx) = as_user(&hub, buyer);
    b.handle_text(&sub(&channel), false);
    expect_subscribed(&mut b_rx, &channel, 0, false).await;
    let (a, mut a_rx) = as_user(&hub, agent);
    a.handle_text(&sub(&channel), false);
    expect_subscribed(&mut a_rx, &channel, 0, false).await;
    assert_eq!(hub.cached_feeds(), 1);

    let m = say(&store, conv, agent, "Selamat siang");
    hub.deliver_feed(vec![m.clone()]);
    for rx in [&mut a_rx, &mut b_rx] {
        assert_frame(
            &next_raw(rx).await,
            &format!(r#"{{"type":"message","channel":"{channel}","seq":1,"#),
            json!({
                "type": "message",
                "channel": channel,
                "seq": 1,
                "id": m.body["id"],
                "senderId": agent.to_string(),
                "text": "Selamat siang",
                "createdAt": "2026-12-03T08:00:00.000000Z",
            }),
        );
    }
    // Parties are checked at each subscribe (3 subscribes of known or unknown conversations
    // by a token holder, the anonymous one needed no lookup).
    assert_eq!(store.conversation_parties_calls.load(Ordering::Relaxed), 4);
    drop(a);
    drop(b);
    assert_eq!(hub.cached_feeds(), 0);
}

#[tokio::test]
async fn since_replays_the_missing_items_in_order_then_goes_live() {
    let store = Arc::new(MemoryStore::new());
    let user = Uuid::now_v7();
    for n in 1..=5 {
        notify(&store, user, n);
    }
    // Pages of 2 make the replay take several store reads.
    let hub = hub(
        &store,
        HubConfig {
            store_page: 2,
            ..HubConfig::default()
        },
    );
    let channel = format!("user:{user}");
    let (conn, mut rx) = as_user(&hub, user);
    conn.handle_text(&sub_since(&channel, 2), false);
    for want in 3..=5 {
        let msg = next_msg(&mut rx).await;
        assert_eq!(feed_seq(&msg), want);
        let ServerMessage::Notification {
            channel: c, fields, ..
        } = msg
        else {
            unreachable!()
        };
        assert_eq!(c, channel);
        assert_eq!(fields["title"], format!("A{want} is available"));
    }
    expect_subscribed(&mut rx, &channel, 5, true).await;
    hub.deliver_feed(vec![notify(&store, user, 6)]);
    assert_eq!(feed_seq(&next_msg(&mut rx).await), 6);

    // since == head: nothing to replay, recovered.
    let (c2, mut rx2) = as_user(&hub, user);
    c2.handle_text(&sub_since(&channel, 6), false);
    expect_subscribed(&mut rx2, &channel, 6, true).await;
    expect_silence(&mut rx2, 50).await;

    // since beyond the head (after asking the store): at the head, not recovered.
    c2.handle_text(&sub_since(&channel, 99), false);
    expect_subscribed(&mut rx2, &channel, 6, false).await;
    // A second device of the same user and a resubscribe both share the one feed.
    assert_eq!(hub.cached_feeds(), 1);
    assert_eq!(hub.metrics().subscriptions.get(), 2);

    let bad = sub_since(&channel, -1);
    c2.handle_text(&bad, false);
    assert_eq!(error_code(&next_msg(&mut rx2).await), "bad_request");
}

#[tokio::test]
async fn too_far_behind_gets_no_replay() {
    let store = Arc::new(MemoryStore::new());
    let user = Uuid::now_v7();
    for n in 1..=10 {
        notify(&store, user, n);
    }
    let hub = hub(
        &store,
        HubConfig {
            max_replay: 3,
            ..HubConfig::default()
        },
    );
    let channel = format!("user:{user}");
    let (conn, mut rx) = as_user(&hub, user);
    conn.handle_text(&sub_since(&channel, 6), false);
    expect_subscribed(&mut rx, &channel, 10, false).await;
    expect_silence(&mut rx, 50).await;
    assert_eq!(store.feed_after_calls.load(Ordering::Relaxed), 0);
    conn.handle_text(&sub_since(&channel, 7), false);
    for want in 8..=10 {
        assert_eq!(feed_seq(&next_msg(&mut rx).await), want);
    }
    expect_subscribed(&mut rx, &channel, 10, true).await;
}

#[tokio::test]
async fn duplicates_are_dropped_and_gaps_filled_from_the_store() {
    let store = Arc::new(MemoryStore::new());
    let user = Uuid::now_v7();
    let hub = hub(&store, HubConfig::default());
    let channel = format!("user:{user}");
    let (conn, mut rx) = as_user(&hub, user);
    conn.handle_text(&sub(&channel), false);
    expect_subscribed(&mut rx, &channel, 0, false).await;

    let items: Vec<FeedEvent> = (1..=4).map(|n| notify(&store, user, n)).collect();
    // 2 never arrives; 1, 3 and 4 arrive twice and out of order.
    hub.deliver_feed(vec![
        items[0].clone(),
        items[0].clone(),
        items[3].clone(),
        items[2].clone(),
    ]);
    hub.deliver_feed(vec![items[2].clone(), items[0].clone()]);
    for want in 1..=4 {
        assert_eq!(feed_seq(&next_msg(&mut rx).await), want);
    }
    expect_silence(&mut rx, 100).await;
    assert!(hub.metrics().feed_catch_up_events.get() >= 1);
    assert!(hub.metrics().feed_duplicates_dropped.get() >= 3);
    // Late copies of everything change nothing.
    hub.deliver_feed(items.clone());
    expect_silence(&mut rx, 50).await;
}

#[tokio::test]
async fn the_catch_up_tick_delivers_items_the_bus_lost_with_one_head_read() {
    let store = Arc::new(MemoryStore::new());
    let hub = hub(&store, HubConfig::default());
    let users: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();
    let mut clients = Vec::new();
    for user in &users {
        let (conn, mut rx) = as_user(&hub, *user);
        conn.handle_text(&sub(&format!("user:{user}")), false);
        expect_subscribed(&mut rx, &format!("user:{user}"), 0, false).await;
        clients.push((conn, rx));
    }
    let conv = store.add_conversation(&[users[0], users[1]]);
    let conv_channel = format!("conversation:{conv}");
    clients[0].0.handle_text(&sub(&conv_channel), false);
    expect_subscribed(&mut clients[0].1, &conv_channel, 0, false).await;

    // Committed but never published: only the catch-up can bring them.
    notify(&store, users[7], 1);
    notify(&store, users[7], 2);
    say(&store, conv, users[1], "halo");
    let before = store.feed_heads_calls.load(Ordering::Relaxed);
    assert_eq!(hub.catch_up_all().await.unwrap(), 2);
    assert_eq!(store.feed_heads_calls.load(Ordering::Relaxed), before + 1);
    assert_eq!(feed_seq(&next_msg(&mut clients[7].1).await), 1);
    assert_eq!(feed_seq(&next_msg(&mut clients[7].1).await), 2);
    assert_eq!(feed_seq(&next_msg(&mut clients[0].1).await), 1);
    assert_eq!(hub.catch_up_all().await.unwrap(), 0);
    for (_, rx) in &mut clients {
        expect_silence(rx, 10).await;
    }

    // The spawned tick does the same within its interval.
    let _tick = hub.spawn_catch_up(Duration::from_millis(100));
    notify(&store, users[9], 1);
    assert_eq!(feed_seq(&next_msg(&mut clients[9].1).await), 1);
}

#[tokio::test]
async fn concurrent_subscribes_share_head_reads() {
    let store = Arc::new(MemoryStore::new());
    store.set_delay(Duration::from_millis(50));
    let hub = hub(&store, HubConfig::default());
    let mut clients = Vec::new();
    for _ in 0..200 {
        let user = Uuid::now_v7();
        let (conn, rx) = as_user(&hub, user);
        conn.handle_text(&sub(&format!("user:{user}")), false);
        clients.push((conn, rx, user));
    }
    for (_, rx, user) in &mut clients {
        expect_subscribed(rx, &format!("user:{user}"), 0, false).await;
    }
    let calls = store.feed_heads_calls.load(Ordering::Relaxed);
    assert!(calls < 20, "{calls} head reads for 200 subscribes");
    assert_eq!(hub.cached_feeds(), 200);
}

#[tokio::test]
async fn a_failing_store_answers_unavailable_and_holds_nothing() {
    let store = Arc::new(MemoryStore::new());
    let hub = hub(&store, HubConfig::default());
    let user = Uuid::now_v7();
    let channel = format!("user:{user}");
    let (conn, mut rx) = as_user(&hub, user);
    store.set_failing(true);
    conn.handle_text(&sub(&channel), false);
    assert_eq!(error_code(&next_msg(&mut rx).await), "unavailable");
    assert_eq!(hub.cached_feeds(), 0);
    store.set_failing(false);
    conn.handle_text(&sub(&channel), false);
    expect_subscribed(&mut rx, &channel, 0, false).await;
}

#[tokio::test]
async fn a_slow_client_is_closed_while_the_others_get_everything() {
    let store = Arc::new(MemoryStore::new());
    let user = Uuid::now_v7();
    let hub = hub(
        &store,
        HubConfig {
            queue_capacity: 4,
            ..HubConfig::default()
        },
    );
    let channel = format!("user:{user}");
    let (slow, mut slow_rx) = as_user(&hub, user);
    slow.handle_text(&sub(&channel), false);
    expect_subscribed(&mut slow_rx, &channel, 0, false).await;
    let (fast, mut fast_rx) = as_user(&hub, user);
    fast.handle_text(&sub(&channel), false);
    expect_subscribed(&mut fast_rx, &channel, 0, false).await;

    for n in 1..=20 {
        hub.deliver_feed(vec![notify(&store, user, n)]);
        assert_eq!(i64::from(n), feed_seq(&next_msg(&mut fast_rx).await));
    }
    let mut items = Vec::new();
    while let Some(o) = slow_rx.recv().await {
        items.push(o);
    }
    assert_eq!(items.len(), 5);
    assert!(matches!(
        items.last(),
        Some(Outbound::Close { code: 1013, .. })
    ));
    assert!(slow.is_closed());
    assert_eq!(hub.metrics().subscriptions.get(), 1);
    drop(fast);
    drop(slow);
    assert_eq!(hub.cached_feeds(), 0);
}

#[tokio::test]
async fn booking_notes_reach_that_projects_staff_subscribers_only() {
    let store = Arc::new(MemoryStore::new());
    let (pid, _) = store.add_project(1);
    let (other_pid, _) = store.add_project(1);
    let hub = hub(&store, HubConfig::default());
    let bus = InProcessBus::new(hub.clone());
    let staff = format!("project:{pid}:staff");
    let public = format!("project:{pid}");
    let (agent, mut agent_rx) = hub.connect();
    agent.handle_text(&sub(&staff), true);
    expect_snapshot(&mut agent_rx, &staff).await;
    let (buyer, mut buyer_rx) = hub.connect();
    buyer.handle_text(&sub(&public), false);
    expect_snapshot(&mut buyer_rx, &public).await;
    let (elsewhere, mut elsewhere_rx) = hub.connect();
    let other_staff = format!("project:{other_pid}:staff");
    elsewhere.handle_text(&sub(&other_staff), true);
    expect_snapshot(&mut elsewhere_rx, &other_staff).await;

    let booking_id = Uuid::now_v7();
    let note = BookingNote {
        project_id: pid,
        body: body(json!({
            "bookingId": booking_id.to_string(),
            "bookingCode": "BK-2026-001",
            "status": "ACTIVE",
            "paymentStatus": "PAID",
            "invoice": {"id": "i", "number": "INV-2026-001", "status": "PAID"},
            "at": "2026-12-03T08:00:00.000000Z",
        })),
    };
    bus.publish_booking_note(&note).await.unwrap();
    assert_frame(
        &next_raw(&mut agent_rx).await,
        &format!(r#"{{"type":"booking","channel":"{staff}","#),
        json!({
            "type": "booking",
            "channel": staff,
            "bookingId": booking_id.to_string(),
            "bookingCode": "BK-2026-001",
            "status": "ACTIVE",
            "paymentStatus": "PAID",
            "invoice": {"id": "i", "number": "INV-2026-001", "status": "PAID"},
            "at": "2026-12-03T08:00:00.000000Z",
        }),
    );
    expect_silence(&mut buyer_rx, 50).await;
    expect_silence(&mut elsewhere_rx, 10).await;
    assert_eq!(hub.metrics().booking_frames_sent.get(), 1);
    // A project nobody here watches: nothing to do, nothing cached.
    let unwatched = BookingNote {
        project_id: Uuid::now_v7(),
        body: Map::new(),
    };
    assert_eq!(hub.deliver_booking_note(&unwatched), 0);
    assert_eq!(hub.cached_projects(), 2);
}

/// 10,000 users, each on their own `user:` channel, and a burst of one notification each,
/// published in one call. Checks that every user gets exactly their own item, that subscribing
/// and the catch-up tick read heads in batches, and prints the hub's commit-to-send figures (a
/// benchmark, not asserted: `cargo test --release -p kavling-realtime --test feeds -- --nocapture
/// ten_thousand`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_feeds_in_one_process() {
    const N: usize = 10_000;
    let store = Arc::new(MemoryStore::new());
    let hub = hub(&store, HubConfig::default());
    let bus = InProcessBus::new(hub.clone());
    let started = Instant::now();
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N {
        let user = Uuid::now_v7();
        let (conn, rx) = as_user(&hub, user);
        conn.handle_text(&sub(&format!("user:{user}")), false);
        clients.push((conn, rx, user));
    }
    for (_, rx, user) in &mut clients {
        expect_subscribed(rx, &format!("user:{user}"), 0, false).await;
    }
    let subscribe_time = started.elapsed();
    let head_reads = store.feed_heads_calls.load(Ordering::Relaxed);
    assert_eq!(hub.cached_feeds(), N);
    assert_eq!(hub.metrics().subscriptions.get(), N as i64);

    let mut burst: Vec<FeedEvent> = clients
        .iter()
        .map(|(_, _, user)| notify(&store, *user, 1))
        .collect();
    // As if committed in one transaction (one unit becoming available for 10,000 watchers).
    let committed = chrono::Utc::now();
    for item in &mut burst {
        item.at = committed;
    }
    let started = Instant::now();
    bus.publish_feed(&burst).await.unwrap();
    let fan_out = started.elapsed();
    for (_, rx, user) in &mut clients {
        let msg = next_msg(rx).await;
        assert_eq!(feed_seq(&msg), 1);
        let ServerMessage::Notification { channel, .. } = msg else {
            unreachable!()
        };
        assert_eq!(channel, format!("user:{user}"));
        assert!(rx.try_recv().is_none());
    }
    assert_eq!(hub.metrics().feed_frames_sent.get(), N as u64);

    // The tick: one head read for all 10,000 feeds, nobody behind.
    let before = store.feed_heads_calls.load(Ordering::Relaxed);
    let started = Instant::now();
    assert_eq!(hub.catch_up_feeds().await.unwrap(), 0);
    let tick = started.elapsed();
    assert_eq!(store.feed_heads_calls.load(Ordering::Relaxed), before + 1);

    let h = &hub.metrics().feed_commit_to_send;
    let p99_bucket = kavling_realtime::LATENCY_BUCKETS_MS
        .iter()
        .zip(h.cumulative())
        .find(|(_, c)| *c * 100 >= h.count() * 99)
        .map(|(ms, _)| *ms);
    println!(
        "{N} user feeds: subscribed in {subscribe_time:?} with {head_reads} head reads; burst of {N} \
         fanned out in {fan_out:?}; commit-to-send mean {:?}, p99 <= {p99_bucket:?} ms; \
         catch-up tick {tick:?}",
        h.sum() / u32::try_from(h.count()).unwrap_or(1),
    );
    drop(clients);
    assert_eq!(hub.cached_feeds(), 0);
    assert_eq!(hub.metrics().subscriptions.get(), 0);
}
