//! Notifications and the `user:<id>` channel (contract v1.1 "Watching units, notifications,
//! chat"): per-user seq from 1 without gaps under concurrent writers, live delivery, `since`
//! replay, catch-up when the publish is lost, and another user's channel refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestApp, WsClient};
use kavling_core::db::begin_write;
use kavling_core::domain::Role;
use kavling_core::services::notifications::{
    NewNotification, NotificationKind, insert_notifications,
};
use serde_json::{Value, json};
use uuid::Uuid;

/// One notification of `kind` for `user`.
fn item(user: Uuid, kind: NotificationKind, title: String, data: Value) -> NewNotification {
    NewNotification {
        user_id: user,
        kind,
        title,
        body: "Your booking changed".to_owned(),
        data,
    }
}

/// Inserts `n` notifications for `user` in one transaction; publishes them unless `publish` is false.
async fn notify(app: &TestApp, user: Uuid, n: usize, publish: bool) -> Vec<i64> {
    let services = &app.state.services;
    let items: Vec<NewNotification> = (0..n)
        .map(|i| {
            item(
                user,
                NotificationKind::Booking,
                format!("Booking {i}"),
                json!({"i": i}),
            )
        })
        .collect();
    let txn = begin_write(&services.db).await.unwrap();
    let events = insert_notifications(&txn, &items, services.clock.now())
        .await
        .unwrap();
    txn.commit().await.unwrap();
    if publish {
        services.publish_feed(&events).await;
    }
    events.iter().map(|e| e.seq).collect()
}

/// Subscribes to `channel` and returns the frames up to and including `subscribed`.
async fn subscribe(ws: &mut WsClient, channel: &str, since: Option<i64>) -> Vec<Value> {
    let mut msg = json!({"op": "subscribe", "channel": channel});
    if let Some(s) = since {
        msg["since"] = json!(s);
    }
    ws.send(&msg).await;
    let mut frames = Vec::new();
    loop {
        let f = ws.recv().await;
        let done = f["type"] == "subscribed" || f["type"] == "error";
        frames.push(f);
        if done {
            return frames;
        }
    }
}

#[actix_web::test]
async fn concurrent_writers_get_gap_free_seqs_per_user() {
    let app = TestApp::spawn().await;
    let (a, _) = app.user(Role::Buyer, false).await;
    let (b, _) = app.user(Role::Buyer, false).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let services = app.state.services.clone();
        tasks.push(tokio::spawn(async move {
            // Each transaction writes for both users, in alternating order.
            let users = if i % 2 == 0 { [a, b] } else { [b, a] };
            let items: Vec<NewNotification> = users
                .iter()
                .map(|u| item(*u, NotificationKind::Payment, "t".into(), json!({})))
                .collect();
            let txn = begin_write(&services.db).await.unwrap();
            let events = insert_notifications(&txn, &items, services.clock.now())
                .await
                .unwrap();
            txn.commit().await.unwrap();
            events
        }));
    }
    let mut by_user: std::collections::HashMap<Uuid, Vec<i64>> = Default::default();
    for t in tasks {
        for e in t.await.unwrap() {
            let kavling_realtime::FeedKey::User(u) = e.key else {
                panic!("a user feed item")
            };
            by_user.entry(u).or_default().push(e.seq);
        }
    }
    for u in [a, b] {
        let mut seqs = by_user.remove(&u).unwrap();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=16).collect::<Vec<_>>());
    }
    // One transaction, several items for one user: consecutive seqs in item order.
    assert_eq!(notify(&app, a, 3, true).await, vec![17, 18, 19]);
}

#[actix_web::test]
async fn the_user_channel_delivers_replays_and_refuses_others() {
    let app = TestApp::spawn().await;
    let (user, token) = app.user(Role::Buyer, false).await;
    let (other, _) = app.user(Role::Buyer, false).await;
    let channel = format!("user:{user}");

    let mut ws = app.ws(Some(&token)).await;
    let frames = subscribe(&mut ws, &channel, None).await;
    assert_eq!(
        frames,
        vec![json!({"type": "subscribed", "channel": channel, "seq": 0, "recovered": false})]
    );
    notify(&app, user, 3, true).await;
    for seq in 1..=3 {
        let f = ws.recv().await;
        assert_eq!(f["type"], "notification", "{f}");
        assert_eq!(f["channel"], channel.as_str());
        assert_eq!(f["seq"], seq);
        assert_eq!(f["kind"], "booking");
        assert_eq!(f["title"], format!("Booking {}", seq - 1));
        assert_eq!(f["data"]["i"], seq - 1);
        assert!(f["readAt"].is_null());
        assert!(f["id"].as_str().unwrap().parse::<Uuid>().is_ok());
        assert!(f["createdAt"].as_str().is_some());
    }

    // Replay after 1: items 2 and 3, then subscribed (recovered).
    let mut late = app.ws(Some(&token)).await;
    let frames = subscribe(&mut late, &channel, Some(1)).await;
    let seqs: Vec<_> = frames.iter().map(|f| f["seq"].clone()).collect();
    assert_eq!(seqs, vec![json!(2), json!(3), json!(3)]);
    assert_eq!(frames[2]["recovered"], true);

    // Someone else's channel, or no token at all: forbidden.
    let frames = subscribe(&mut ws, &format!("user:{other}"), None).await;
    assert_eq!(frames[0]["type"], "error");
    assert_eq!(frames[0]["code"], "forbidden");
    let mut anon = app.ws(None).await;
    let frames = subscribe(&mut anon, &channel, None).await;
    assert_eq!(frames[0]["code"], "forbidden");

    // A lost publish: the catch-up tick reads the head and delivers the item anyway.
    notify(&app, user, 1, false).await;
    let f = ws
        .recv_within(Duration::from_secs(5))
        .await
        .expect("caught up");
    assert_eq!(
        (f["type"].as_str(), f["seq"].as_i64()),
        (Some("notification"), Some(4))
    );
}
