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

// ---------------------------------------------------------------------------------------------
// Watches and the notifier.

use actix_web::http::{Method, StatusCode};
use common::SpawnOptions;

/// Watches a unit; returns the watch id.
async fn watch_unit(app: &TestApp, token: &str, unit: Uuid) -> String {
    let res = app
        .post("/api/v1/me/watches", Some(token), &json!({"unitId": unit}))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    res.json["id"].as_str().unwrap().to_owned()
}

/// Deletes a watch as `token`'s user.
async fn unwatch(app: &TestApp, token: &str, watch: &str) -> common::TestResponse {
    app.send(
        Method::DELETE,
        &format!("/api/v1/me/watches/{watch}"),
        Some(token),
        None,
    )
    .await
}

/// Sets a unit's status (ADMIN).
async fn set_status(app: &TestApp, admin: &str, unit: Uuid, status: &str) {
    let res = app
        .patch(
            &format!("/api/v1/units/{unit}"),
            Some(admin),
            &json!({"status": status}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
}

/// The caller's notifications (newest first), with an optional query.
async fn inbox(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let res = app
        .get(&format!("/api/v1/me/notifications{query}"), Some(token))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    res.json["data"].as_array().unwrap().clone()
}

/// Waits until the inbox holds `n` items (the notifier runs in the background).
async fn inbox_of(app: &TestApp, token: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let items = inbox(app, token, "").await;
        if items.len() >= n || tokio::time::Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next `notification` frames until `quiet` passes without one.
async fn drain(ws: &mut WsClient, quiet: Duration) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Some(f) = ws.recv_within(quiet).await {
        frames.push(f);
    }
    frames
}

#[actix_web::test]
async fn a_watched_unit_becoming_available_notifies_each_watcher_once() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 3).await;
    let a1 = units[0].1;
    let (alice, alice_token) = app.user(Role::Buyer, false).await;
    let (_, bob_token) = app.user(Role::Buyer, false).await;
    let (_, carol_token) = app.user(Role::Buyer, false).await;
    // Alice watches A1 and, with a matching filter, the project too: one notification still.
    watch_unit(&app, &alice_token, a1).await;
    let res = app
        .post(
            "/api/v1/me/watches",
            Some(&alice_token),
            &json!({"projectId": project, "filter": {"type": "36/72", "priceMax": 600_000_000}}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    assert_eq!(res.json["projectId"], project.to_string());
    assert_eq!(res.json["filter"]["type"], "36/72");
    assert!(res.json.get("unitId").is_none());
    // Bob's filter matches A1; Carol's does not (price too low).
    let res = app
        .post(
            "/api/v1/me/watches",
            Some(&bob_token),
            &json!({"projectId": project, "filter": {"bedroomsMin": 0, "priceMin": 1}}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let res = app
        .post(
            "/api/v1/me/watches",
            Some(&carol_token),
            &json!({"projectId": project, "filter": {"priceMax": 1000}}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);

    let mut ws = app.ws(Some(&alice_token)).await;
    subscribe(&mut ws, &format!("user:{alice}"), None).await;
    // Leaving AVAILABLE notifies nobody; coming back does, once.
    set_status(&app, &admin, a1, "MAINTENANCE").await;
    set_status(&app, &admin, a1, "AVAILABLE").await;
    let frames = drain(&mut ws, Duration::from_millis(1500)).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    let f = &frames[0];
    assert_eq!(
        (f["type"].as_str(), f["seq"].as_i64(), f["kind"].as_str()),
        (Some("notification"), Some(1), Some("unit_available"))
    );
    assert_eq!(f["data"]["unitId"], a1.to_string());
    assert_eq!(f["data"]["blockNumber"], "A1");
    assert_eq!(f["title"], "A1 is available");

    let items = inbox(&app, &alice_token, "").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["seq"], 1);
    assert_eq!(items[0]["id"], f["id"]);
    assert_eq!(inbox_of(&app, &bob_token, 1).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(inbox(&app, &carol_token, "").await.is_empty());

    // Read marks and the unread filter.
    let res = app
        .post(
            "/api/v1/me/notifications/read",
            Some(&alice_token),
            &json!({"upTo": 1}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(
        (res.json["updated"].as_i64(), res.json["unread"].as_i64()),
        (Some(1), Some(0))
    );
    assert!(
        inbox(&app, &alice_token, "?filters[readAt][$null]=true")
            .await
            .is_empty()
    );
    let read = inbox(&app, &alice_token, "?filters[readAt][$null]=false").await;
    assert!(read[0]["readAt"].as_str().is_some());
    let res = app
        .post(
            "/api/v1/me/notifications/read",
            Some(&alice_token),
            &json!({"upTo": -1}),
        )
        .await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let res = app
        .get(
            "/api/v1/me/notifications?filters[nope][$eq]=1",
            Some(&alice_token),
        )
        .await;
    res.assert_problem(StatusCode::BAD_REQUEST, "invalid_query");

    // A price drop notifies the watchers; a rise does not.
    let res = app
        .patch(
            &format!("/api/v1/units/{a1}"),
            Some(&admin),
            &json!({"price": 400_000_000}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let res = app
        .patch(
            &format!("/api/v1/units/{a1}"),
            Some(&admin),
            &json!({"price": 410_000_000}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let frames = drain(&mut ws, Duration::from_millis(1500)).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(
        (frames[0]["seq"].as_i64(), frames[0]["kind"].as_str()),
        (Some(2), Some("price_drop"))
    );
    assert_eq!(frames[0]["data"]["price"], 400_000_000);
    assert_eq!(frames[0]["data"]["previousPrice"], 450_000_001);
    // Bob's filter still matches at the new price; Carol's does not.
    assert_eq!(inbox_of(&app, &bob_token, 2).await[0]["kind"], "price_drop");
    assert!(inbox(&app, &carol_token, "").await.is_empty());
}

#[actix_web::test]
async fn watches_are_validated_listed_and_deleted() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 2).await;
    let (_, token) = app.user(Role::Buyer, false).await;
    let (_, other) = app.user(Role::Buyer, false).await;

    for bad in [
        json!({}),
        json!({"unitId": units[0].1, "projectId": project}),
        json!({"unitId": units[0].1, "filter": {}}),
        json!({"projectId": project, "filter": {"priceMin": -1}}),
        json!({"projectId": project, "filter": {"type": " "}}),
    ] {
        let res = app.post("/api/v1/me/watches", Some(&token), &bad).await;
        res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    for unknown in [
        json!({"unitId": Uuid::now_v7()}),
        json!({"projectId": Uuid::now_v7()}),
    ] {
        let res = app.post("/api/v1/me/watches", Some(&token), &unknown).await;
        res.assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    let res = app
        .post("/api/v1/me/watches", None, &json!({"unitId": units[0].1}))
        .await;
    res.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");

    let w1 = watch_unit(&app, &token, units[0].1).await;
    let w2 = watch_unit(&app, &token, units[1].1).await;
    watch_unit(&app, &other, units[1].1).await;
    let res = app.get("/api/v1/me/watches", Some(&token)).await;
    assert_eq!(res.json["meta"]["pagination"]["total"], 2);
    let res = app
        .get(
            &format!("/api/v1/me/watches?filters[unitId][$eq]={}", units[1].1),
            Some(&token),
        )
        .await;
    assert_eq!(res.json["data"][0]["id"], w2.as_str());
    assert_eq!(res.json["data"][0]["projectId"], project.to_string());
    assert_eq!(res.json["meta"]["pagination"]["total"], 1);

    // Someone else's watch is not found; one's own goes once.
    let res = unwatch(&app, &other, &w1).await;
    res.assert_problem(StatusCode::NOT_FOUND, "not_found");
    let res = unwatch(&app, &token, &w1).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    let res = unwatch(&app, &token, &w1).await;
    res.assert_problem(StatusCode::NOT_FOUND, "not_found");
}

/// A change committed while no notifier runs (an instance killed between commit and notify) is
/// notified exactly once by the next instance that starts; a watch deleted meanwhile gets
/// nothing and breaks nothing. Two notifiers then running side by side add nothing twice.
#[actix_web::test]
async fn a_restart_delivers_once_and_a_deleted_watch_gets_nothing() {
    let no_notifier = SpawnOptions {
        notify_every: None,
        ..SpawnOptions::default()
    };
    let app = TestApp::spawn_with(no_notifier).await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 2).await;
    let (stay, stay_token) = app.user(Role::Buyer, false).await;
    let (_, gone_token) = app.user(Role::Buyer, false).await;
    watch_unit(&app, &stay_token, units[0].1).await;
    let gone_watch = watch_unit(&app, &gone_token, units[0].1).await;
    set_status(&app, &admin, units[0].1, "MAINTENANCE").await;
    set_status(&app, &admin, units[0].1, "AVAILABLE").await;
    // In flight: committed, not yet notified. The watch goes away.
    let res = unwatch(&app, &gone_token, &gone_watch).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        inbox(&app, &stay_token, "").await.is_empty(),
        "no notifier ran yet"
    );

    // Two instances with notifiers start on the same database.
    let b = app.spawn_peer(SpawnOptions::default()).await;
    let c = app.spawn_peer(SpawnOptions::default()).await;
    let mut ws = c.ws(Some(&stay_token)).await;
    subscribe(&mut ws, &format!("user:{stay}"), Some(0)).await;
    let items = inbox_of(&b, &stay_token, 1).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["seq"], 1);
    let frames = drain(&mut ws, Duration::from_millis(1500)).await;
    assert!(frames.len() <= 1, "{frames:?}");
    // More changes with both notifiers running: one notification each, seqs without gaps.
    for _ in 0..5 {
        set_status(&b, &admin, units[0].1, "MAINTENANCE").await;
        set_status(&c, &admin, units[0].1, "AVAILABLE").await;
    }
    let items = inbox_of(&b, &stay_token, 6).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let items_later = inbox(&b, &stay_token, "").await;
    assert_eq!(items.len(), 6);
    assert_eq!(items_later.len(), 6, "nothing twice");
    let seqs: Vec<i64> = items_later
        .iter()
        .map(|i| i["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![6, 5, 4, 3, 2, 1]);
    assert!(inbox(&b, &gone_token, "").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Bookings and payments notify the booking's marketing user and its buyer.

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// Today's date in Jakarta by the app's clock, shifted by `days`.
fn wib_date(app: &TestApp, days: i64) -> String {
    use kavling_core::clock::Clock;
    let now = app.clock.now() + chrono::Duration::hours(7) + chrono::Duration::days(days);
    now.date_naive().to_string()
}

/// Waits until `token`'s inbox has an item whose `data.event`/`title` satisfies `pred`.
async fn wait_for(app: &TestApp, token: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = inbox(app, token, "?pagination[pageSize]=100")
            .await
            .into_iter()
            .find(|n| pred(n))
        {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no notification: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn bookings_and_payments_notify_marketing_and_the_buyer() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 1).await;
    let (_, marketing) = app.user(Role::Marketing, true).await;
    let (buyer, buyer_token) = app.user(Role::Buyer, false).await;
    let email = app.get("/api/v1/me", Some(&buyer_token)).await.json["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = app.ws(Some(&buyer_token)).await;
    subscribe(&mut ws, &format!("user:{buyer}"), None).await;

    let res = app
        .post(
            "/api/v1/bookings",
            Some(&marketing),
            &json!({"unitId": units[0].1, "customer": {"name": "Budi", "phone": "081234567890", "email": email.to_uppercase()}, "bookingFee": 1_000_000}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let booking = res.json["id"].as_str().unwrap().to_owned();
    let code = res.json["bookingCode"].as_str().unwrap().to_owned();
    let created = wait_for(&app, &buyer_token, "booking created", |n| {
        n["kind"] == "booking" && n["data"]["previousStatus"].is_null()
    })
    .await;
    assert_eq!(created["data"]["bookingId"], booking.as_str());
    assert_eq!(created["data"]["bookingCode"], code.as_str());
    wait_for(&app, &marketing, "marketing hears of the booking", |n| {
        n["kind"] == "booking"
    })
    .await;

    let res = app
        .post(
            &format!("/api/v1/bookings/{booking}/schedule"),
            Some(&marketing),
            &json!({"items": [
                {"kind": "BOOKING_FEE", "amount": 1_000_000, "dueDate": wib_date(&app, 10)},
                {"kind": "INSTALLMENT", "amount": 2_000_000, "dueDate": wib_date(&app, 0)},
            ]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let fee = res.json[0]["id"].as_str().unwrap().to_owned();
    let installment = res.json[1]["id"].as_str().unwrap().to_owned();

    // Staff follow the project's staff channel: booking notes arrive there live.
    let mut staff = app.ws(Some(&admin)).await;
    let frames = subscribe(&mut staff, &format!("project:{project}:staff"), None).await;
    assert_eq!(frames.last().unwrap()["type"], "subscribed", "{frames:?}");

    // A rejected proof: the buyer and marketing read the reason.
    let p = app
        .submit_payment(&marketing, &fee, "1000000", Some(PNG))
        .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.json);
    let res = app
        .patch(
            &format!("/api/v1/payments/{}", p.json["id"].as_str().unwrap()),
            Some(&admin),
            &json!({"verified": false, "reason": "Bukti transfer buram"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    for token in [&buyer_token, &marketing] {
        let rejected = wait_for(&app, token, "payment rejected", |n| {
            n["data"]["event"] == "rejected"
        })
        .await;
        assert_eq!(rejected["kind"], "payment");
        assert_eq!(rejected["data"]["reason"], "Bukti transfer buram");
        assert!(
            rejected["body"]
                .as_str()
                .unwrap()
                .contains("Bukti transfer buram")
        );
    }
    // The staff channel got a note per change (submitted, then rejected), once each.
    let mut notes = Vec::new();
    while let Some(f) = staff.recv_within(Duration::from_millis(1500)).await {
        if f["type"] == "booking" {
            notes.push(f);
        }
    }
    let events: Vec<_> = notes
        .iter()
        .map(|n| n["invoice"]["event"].clone())
        .collect();
    assert_eq!(
        events,
        vec![json!("submitted"), json!("rejected")],
        "{notes:?}"
    );
    assert_eq!(notes[1]["channel"], format!("project:{project}:staff"));
    assert_eq!(notes[1]["bookingId"], booking.as_str());
    assert_eq!(notes[1]["bookingCode"], code.as_str());
    assert_eq!(notes[1]["status"], "PENDING_PAYMENT");
    assert_eq!(notes[1]["invoice"]["reason"], "Bukti transfer buram");
    assert_eq!(notes[1]["invoice"]["id"], fee.as_str());

    // Verified: a payment notification and the booking becoming ACTIVE.
    let p = app
        .submit_payment(&marketing, &fee, "1000000", Some(PNG))
        .await;
    let res = app
        .patch(
            &format!("/api/v1/payments/{}", p.json["id"].as_str().unwrap()),
            Some(&admin),
            &json!({"verified": true}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let verified = wait_for(&app, &buyer_token, "payment verified", |n| {
        n["data"]["event"] == "verified"
    })
    .await;
    assert_eq!(verified["data"]["invoiceStatus"], "PAID");
    wait_for(&app, &buyer_token, "booking active", |n| {
        n["kind"] == "booking" && n["data"]["status"] == "ACTIVE"
    })
    .await;

    // The installment falls due: both hear it is overdue.
    app.clock.advance(chrono::Duration::days(2));
    for token in [&buyer_token, &marketing] {
        let overdue = wait_for(&app, token, "invoice overdue", |n| {
            n["data"]["event"] == "overdue"
        })
        .await;
        assert_eq!(overdue["data"]["invoiceId"], installment.as_str());
        assert_eq!(overdue["data"]["invoiceStatus"], "OVERDUE");
    }

    // Everything reached the buyer's channel too, seq 1.. without gaps or repeats.
    let total = inbox(&app, &buyer_token, "").await.len();
    let mut seqs = Vec::new();
    while seqs.len() < total {
        let f = ws.recv().await;
        assert_eq!(f["type"], "notification", "{f}");
        seqs.push(f["seq"].as_i64().unwrap());
    }
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// Two instances sharing the database and a Redis of the test's own, which stops mid-burst.

/// A redis-server of this test's own on a free port, killed on drop.
struct OwnRedis {
    child: std::process::Child,
    url: String,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        OwnRedis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A change committed on A reaches a buyer subscribed on B (B runs no notifier). Then Redis
/// stops in the middle of a burst: every notification still arrives on B, in order, once.
#[actix_web::test]
async fn redis_stopping_mid_burst_loses_no_notification_across_instances() {
    let mut redis = OwnRedis::start().await;
    let with_own_redis = SpawnOptions {
        redis_url: Some(redis.url.clone()),
        ..SpawnOptions::default()
    };
    let a = TestApp::spawn_with(with_own_redis.clone()).await;
    let b = a
        .spawn_peer(SpawnOptions {
            notify_every: None,
            ..with_own_redis
        })
        .await;
    let (_, admin) = a.admin().await;
    let (_, units) = a.project_with_units(&admin, 10).await;
    let (buyer, token) = a.user(Role::Buyer, false).await;
    for (_, unit) in &units {
        watch_unit(&a, &token, *unit).await;
    }
    let mut ws = b.ws(Some(&token)).await;
    subscribe(&mut ws, &format!("user:{buyer}"), None).await;

    let started = std::time::Instant::now();
    set_status(&a, &admin, units[0].1, "MAINTENANCE").await;
    set_status(&a, &admin, units[0].1, "AVAILABLE").await;
    let f = ws.recv().await;
    assert_eq!(
        (f["seq"].as_i64(), f["kind"].as_str()),
        (Some(1), Some("unit_available"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The burst: 2 changes per unit, Redis killed half-way.
    let mut expected = 1;
    for round in 0..2 {
        for (i, (_, unit)) in units.iter().enumerate() {
            if round == 1 && i == 0 {
                redis.stop();
            }
            set_status(&a, &admin, *unit, "MAINTENANCE").await;
            set_status(&a, &admin, *unit, "AVAILABLE").await;
            expected += 1;
        }
    }
    let mut seqs = Vec::new();
    while seqs.len() < expected - 1 {
        let f = ws
            .recv_within(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("missing notifications after {seqs:?}"));
        assert_eq!(f["type"], "notification", "{f}");
        seqs.push(f["seq"].as_i64().unwrap());
    }
    assert_eq!(seqs, (2..=expected as i64).collect::<Vec<_>>());
    assert!(
        ws.recv_within(Duration::from_millis(1500)).await.is_none(),
        "nothing twice"
    );
    assert_eq!(
        inbox(&b, &token, "?pagination[pageSize]=100").await.len(),
        expected
    );
}
