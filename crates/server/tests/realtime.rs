//! Realtime over real sockets: snapshot then live, `since` replay and its snapshot fallback,
//! staff channels, malformed frames, fan-out to many subscribers, two instances, catch-up of a
//! lost publish, slow clients, pings and idle close, the frame cap, the echo route, `/metrics`.
//! Runs on SQLite with the in-process bus, and on PostgreSQL with Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use awc::ws;
use common::{SpawnOptions, TestApp, WsClient, test_redis_url};
use futures_util::{SinkExt, StreamExt};
use kavling_core::audit::ActorRef;
use kavling_core::domain::{Role, UnitStatus};
use kavling_core::unit_changes::{UnitChange, record_unit_change, set_unit_status};
use kavling_realtime::{BookingInfo, HubConfig};
use kavling_server::ws::WsConfig;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

fn channel(project: Uuid) -> String {
    format!("project:{project}")
}

async fn subscribe(ws: &mut WsClient, channel: &str, since: Option<i64>) {
    let mut msg = json!({"op": "subscribe", "channel": channel});
    if let Some(s) = since {
        msg["since"] = json!(s);
    }
    ws.send(&msg).await;
}

/// Subscribes without `since` and checks the snapshot and `subscribed` frames; returns the seq.
async fn subscribe_fresh(ws: &mut WsClient, channel: &str) -> i64 {
    subscribe(ws, channel, None).await;
    let snap = ws.recv().await;
    assert_eq!(snap["type"], "snapshot", "{snap}");
    assert_eq!(snap["channel"], channel);
    let sub = ws.recv().await;
    assert_eq!(sub["type"], "subscribed", "{sub}");
    assert_eq!(sub["recovered"], false);
    assert_eq!(sub["seq"], snap["seq"]);
    sub["seq"].as_i64().unwrap()
}

/// Changes a unit's status through the API.
async fn set_status(app: &TestApp, token: &str, unit: Uuid, status: &str) {
    let res = app
        .patch(
            &format!("/api/v1/units/{unit}"),
            Some(token),
            &json!({"status": status}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
}

/// The status a unit moves to in the n-th change of a test (alternating, so every PATCH is a change).
fn nth_status(n: usize) -> &'static str {
    if n.is_multiple_of(2) {
        "BOOKED"
    } else {
        "AVAILABLE"
    }
}

/// Expects a `unit` frame with this seq.
async fn expect_unit(ws: &mut WsClient, channel: &str, seq: i64) -> Value {
    let f = ws.recv().await;
    assert_eq!(f["type"], "unit", "{f}");
    assert_eq!(f["channel"], channel, "{f}");
    assert_eq!(f["seq"], seq, "{f}");
    f
}

#[actix_web::test]
async fn snapshot_then_live_then_since_replay_in_order() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 3).await;
    let ch = channel(project);

    let mut a = app.ws(None).await;
    subscribe(&mut a, &ch, None).await;
    let snap = a.recv().await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["seq"], 0);
    let blocks: Vec<&str> = snap["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["blockNumber"].as_str().unwrap())
        .collect();
    assert_eq!(blocks, ["A1", "A2", "A3"]);
    assert_eq!(snap["units"][0]["status"], "AVAILABLE");
    assert_eq!(snap["units"][0]["color"], "#22c55e");
    let sub = a.recv().await;
    assert_eq!(
        sub,
        json!({"type": "subscribed", "channel": ch, "seq": 0, "recovered": false})
    );

    set_status(&app, &admin, units[0].1, "BOOKED").await;
    let f = expect_unit(&mut a, &ch, 1).await;
    assert_eq!(f["unitId"], units[0].1.to_string());
    assert_eq!(f["blockNumber"], "A1");
    assert_eq!(f["status"], "BOOKED");
    assert_eq!(f["previousStatus"], "AVAILABLE");
    assert_eq!(f["color"], "#eab308");
    assert!(f.get("booking").is_none(), "{f}");
    // RFC 3339 UTC with microseconds.
    let at = f["at"].as_str().unwrap();
    assert!(
        at.ends_with('Z') && at.len() == "2026-11-21T08:00:00.123456Z".len(),
        "{at}"
    );
    chrono::DateTime::parse_from_rfc3339(at).unwrap();

    for n in 1..5 {
        set_status(&app, &admin, units[n % 3].1, nth_status(n / 3)).await;
        expect_unit(&mut a, &ch, n as i64 + 1).await;
    }

    // A client that saw seq 2 gets 3, 4, 5 in order, then `subscribed` recovered.
    let mut b = app.ws(None).await;
    subscribe(&mut b, &ch, Some(2)).await;
    for seq in 3..=5 {
        expect_unit(&mut b, &ch, seq).await;
    }
    assert_eq!(
        b.recv().await,
        json!({"type": "subscribed", "channel": ch, "seq": 5, "recovered": true})
    );
    // Up to date already: only `subscribed`.
    let mut c = app.ws(None).await;
    subscribe(&mut c, &ch, Some(5)).await;
    assert_eq!(
        c.recv().await,
        json!({"type": "subscribed", "channel": ch, "seq": 5, "recovered": true})
    );
    // And the live stream goes on after a replay, without duplicates.
    set_status(&app, &admin, units[2].1, "SOLD").await;
    expect_unit(&mut b, &ch, 6).await;
    expect_unit(&mut c, &ch, 6).await;
    expect_unit(&mut a, &ch, 6).await;
    assert!(b.recv_within(Duration::from_millis(300)).await.is_none());
}

#[actix_web::test]
async fn since_not_covered_by_history_falls_back_to_a_snapshot() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 2).await;
    let ch = channel(project);
    for n in 0..5 {
        set_status(&app, &admin, units[n % 2].1, nth_status(n / 2)).await;
    }
    // Simulate pruning: events 1..=3 are gone.
    let db = &app.state.services.db;
    let deleted = db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            match db.get_database_backend() {
                sea_orm::DbBackend::Postgres => {
                    "DELETE FROM unit_events WHERE project_id = $1 AND seq <= 3"
                }
                _ => "DELETE FROM unit_events WHERE project_id = ? AND seq <= 3",
            },
            [project.into()],
        ))
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 3);

    let mut ws = app.ws(None).await;
    subscribe(&mut ws, &ch, Some(1)).await;
    let snap = ws.recv().await;
    assert_eq!(snap["type"], "snapshot", "{snap}");
    assert_eq!(snap["seq"], 5);
    let sub = ws.recv().await;
    assert_eq!(
        sub,
        json!({"type": "subscribed", "channel": ch, "seq": 5, "recovered": false})
    );
    // Still covered from 3 on: a replay.
    let mut ok = app.ws(None).await;
    subscribe(&mut ok, &ch, Some(3)).await;
    expect_unit(&mut ok, &ch, 4).await;
    expect_unit(&mut ok, &ch, 5).await;
    assert_eq!(ok.recv().await["recovered"], true);
}

#[actix_web::test]
async fn a_since_further_behind_than_the_replay_limit_gets_a_snapshot() {
    let app = TestApp::spawn_with(SpawnOptions {
        hub: HubConfig {
            max_replay: 2,
            ..HubConfig::default()
        },
        ..SpawnOptions::default()
    })
    .await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 1).await;
    let ch = channel(project);
    for n in 0..4 {
        set_status(&app, &admin, units[0].1, nth_status(n)).await;
    }
    let mut ws = app.ws(None).await;
    subscribe(&mut ws, &ch, Some(1)).await;
    assert_eq!(ws.recv().await["type"], "snapshot");
    assert_eq!(ws.recv().await["recovered"], false);
    let mut near = app.ws(None).await;
    subscribe(&mut near, &ch, Some(2)).await;
    expect_unit(&mut near, &ch, 3).await;
    expect_unit(&mut near, &ch, 4).await;
    assert_eq!(near.recv().await["recovered"], true);
}

/// Inserts a customer and a booking of `unit` by `marketing` straight into the database.
async fn insert_booking(app: &TestApp, project: Uuid, unit: Uuid, marketing: Uuid) -> Uuid {
    use kavling_core::entities::{bookings, customers};
    let db = &app.state.services.db;
    let now = chrono::Utc::now();
    let customer = customers::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set("Budi".into()),
        phone: Set("081234567890".into()),
        email: Set(None),
        ktp_encrypted: Set(None),
        ktp_hash: Set(None),
        npwp_encrypted: Set(None),
        npwp_hash: Set(None),
        address: Set(None),
        created_by: Set(Some(marketing)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    let booking = bookings::ActiveModel {
        id: Set(Uuid::now_v7()),
        booking_code: Set(format!(
            "BK-2026-{}",
            &Uuid::now_v7().simple().to_string()[24..]
        )),
        project_id: Set(project),
        unit_id: Set(unit),
        customer_id: Set(customer.id),
        marketing_id: Set(marketing),
        booking_date: Set(now),
        status: Set("PENDING_PAYMENT".into()),
        payment_status: Set("PENDING".into()),
        payment_method: Set(None),
        payment_date: Set(None),
        booking_fee: Set(5_000_000),
        notes: Set(None),
        expires_at: Set(now + chrono::Duration::hours(1)),
        cancelled_at: Set(None),
        deleted_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    booking.id
}

/// Commits a status change through the core functions; publishes it only if `publish`.
async fn commit_change(
    app: &TestApp,
    project: Uuid,
    unit: (&str, Uuid),
    from: UnitStatus,
    to: UnitStatus,
    booking: Option<BookingInfo>,
    publish: bool,
) {
    let services = &app.state.services;
    let txn = kavling_core::db::begin_write(&services.db).await.unwrap();
    assert!(
        set_unit_status(&txn, services.clock.now(), unit.1, from, to)
            .await
            .unwrap()
    );
    let event = record_unit_change(
        &txn,
        services.clock.as_ref(),
        &ActorRef::default(),
        UnitChange {
            project_id: project,
            unit_id: unit.1,
            block_number: unit.0.to_owned(),
            from,
            to,
            booking,
        },
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
    if publish {
        services.publish(&[event]).await;
    }
}

#[actix_web::test]
async fn staff_channel_needs_admin_or_verified_marketing_and_carries_booking_details() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, buyer) = app.user(Role::Buyer, true).await;
    let (_, unverified) = app.user(Role::Marketing, false).await;
    let (marketing_id, marketing) = app.user(Role::Marketing, true).await;
    let (project, units) = app.project_with_units(&admin, 2).await;
    let staff = format!("project:{project}:staff");
    let public = channel(project);

    for token in [
        None,
        Some(buyer.as_str()),
        Some(unverified.as_str()),
        Some("not-a-token"),
    ] {
        let mut ws = app.ws(token).await;
        subscribe(&mut ws, &staff, None).await;
        let err = ws.recv().await;
        assert_eq!(err["type"], "error", "{err}");
        assert_eq!(err["code"], "forbidden", "{err}");
        assert_eq!(err["channel"], staff);
        // The connection stays usable for public channels.
        subscribe_fresh(&mut ws, &public).await;
    }

    // Admin with the Authorization header; verified marketing with ?token=.
    let (_res, framed) = awc::Client::new()
        .ws(format!("ws://127.0.0.1:{}/ws", app.port))
        .bearer_auth(&admin)
        .connect()
        .await
        .unwrap();
    let mut by_header = WsClient { framed };
    subscribe_fresh(&mut by_header, &staff).await;
    let mut by_query = app.ws(Some(&marketing)).await;
    subscribe_fresh(&mut by_query, &staff).await;
    let mut anon = app.ws(None).await;
    subscribe_fresh(&mut anon, &public).await;

    // A change without a booking: no booking details anywhere.
    set_status(&app, &admin, units[1].1, "MAINTENANCE").await;
    for ws in [&mut by_header, &mut by_query] {
        let f = expect_unit(ws, &staff, 1).await;
        assert!(f.get("booking").is_none(), "{f}");
    }
    assert!(
        expect_unit(&mut anon, &public, 1)
            .await
            .get("booking")
            .is_none()
    );

    // A booking: staff frames carry its details, public ones do not.
    let booking_id = insert_booking(&app, project, units[0].1, marketing_id).await;
    let info = BookingInfo {
        booking_id,
        booking_code: "BK-2026-777".into(),
        marketing_name: "Test User".into(),
    };
    commit_change(
        &app,
        project,
        ("A1", units[0].1),
        UnitStatus::Available,
        UnitStatus::Booked,
        Some(info),
        true,
    )
    .await;
    for ws in [&mut by_header, &mut by_query] {
        let f = expect_unit(ws, &staff, 2).await;
        assert_eq!(f["booking"]["bookingId"], booking_id.to_string(), "{f}");
        assert_eq!(f["booking"]["bookingCode"], "BK-2026-777");
        assert_eq!(f["booking"]["marketingName"], "Test User");
    }
    let f = expect_unit(&mut anon, &public, 2).await;
    assert!(f.get("booking").is_none(), "{f}");

    // A staff replay reads the details from the database.
    let mut replay = app.ws(Some(&admin)).await;
    subscribe(&mut replay, &staff, Some(1)).await;
    let f = expect_unit(&mut replay, &staff, 2).await;
    assert_eq!(f["booking"]["bookingId"], booking_id.to_string(), "{f}");
    assert_eq!(f["booking"]["marketingName"], "Test User");
    assert_eq!(replay.recv().await["recovered"], true);
}

#[actix_web::test]
async fn malformed_frames_get_bad_request_and_unknown_channels_not_found() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, _) = app.project_with_units(&admin, 1).await;
    let mut ws = app.ws(None).await;

    for bad in [
        "{nope",
        "[]",
        r#"{"op":"dance"}"#,
        r#"{"op":"subscribe"}"#,
        r#"{"op":"subscribe","channel":"x","since":"zero"}"#,
        "",
    ] {
        ws.send_raw(bad).await;
        let err = ws.recv().await;
        assert_eq!(err["type"], "error", "{bad}: {err}");
        assert_eq!(err["code"], "bad_request", "{bad}: {err}");
    }
    // A text frame longer than any request (but under the 64 KiB cap) and a binary frame.
    ws.send_raw(&format!(
        r#"{{"op":"ping","pad":"{}"}}"#,
        "x".repeat(10_000)
    ))
    .await;
    assert_eq!(ws.recv().await["code"], "bad_request");
    ws.framed
        .send(ws::Message::Binary(Bytes::from_static(b"\x00\x01")))
        .await
        .unwrap();
    assert_eq!(ws.recv().await["code"], "bad_request");
    let mut since = json!({"op": "subscribe", "channel": channel(project), "since": -1});
    ws.send(&since).await;
    assert_eq!(ws.recv().await["code"], "bad_request");

    for ch in [
        "lobby".to_owned(),
        "project:".to_owned(),
        "project:not-a-uuid".to_owned(),
        format!("project:{project}:secret"),
        format!("projects:{project}"),
    ] {
        subscribe(&mut ws, &ch, None).await;
        let err = ws.recv().await;
        assert_eq!(err["code"], "not_found", "{ch}: {err}");
        assert_eq!(err["channel"], ch.as_str());
    }
    let unknown = channel(Uuid::now_v7());
    subscribe(&mut ws, &unknown, None).await;
    let err = ws.recv().await;
    assert_eq!(err["code"], "not_found", "{err}");
    assert_eq!(err["channel"], unknown);

    // Still open and working.
    ws.send(&json!({"op": "ping"})).await;
    assert_eq!(ws.recv().await, json!({"type": "pong"}));
    since["since"] = json!(0);
    ws.send(&since).await;
    assert_eq!(ws.recv().await["recovered"], true);
}

#[actix_web::test]
async fn two_hundred_subscribers_get_every_event_in_order() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 4).await;
    let ch = channel(project);
    let mut clients = Vec::new();
    for _ in 0..200 {
        let mut ws = app.ws(None).await;
        subscribe(&mut ws, &ch, None).await;
        clients.push(ws);
    }
    for ws in &mut clients {
        assert_eq!(ws.recv().await["type"], "snapshot");
        assert_eq!(ws.recv().await["type"], "subscribed");
    }
    let mut expected = Vec::new();
    for n in 0..20 {
        let unit = &units[n % 4];
        let status = nth_status(n / 4);
        set_status(&app, &admin, unit.1, status).await;
        expected.push((unit.0.clone(), status));
    }
    for ws in &mut clients {
        for (i, (block, status)) in expected.iter().enumerate() {
            let f = expect_unit(ws, &ch, i as i64 + 1).await;
            assert_eq!(f["blockNumber"], block.as_str());
            assert_eq!(f["status"], *status);
        }
    }
    for ws in &mut clients {
        assert!(ws.recv_within(Duration::from_millis(20)).await.is_none());
    }
    assert_eq!(app.state.hub.metrics().subscriptions.get(), 200);
}

#[actix_web::test]
async fn a_change_on_one_instance_reaches_subscribers_of_another() {
    let app = TestApp::spawn().await;
    let redis = test_redis_url().is_some();
    // With Redis the peer must get it through pub/sub: its catch-up tick is too slow to help.
    // Without Redis, instances share only the database: the catch-up tick (1 s) must deliver it.
    let peer = app
        .spawn_peer(SpawnOptions {
            catch_up_every: if redis {
                Duration::from_secs(60)
            } else {
                Duration::from_secs(1)
            },
            ..SpawnOptions::default()
        })
        .await;
    if !redis {
        eprintln!("REDIS_URL unset: testing cross-instance delivery by database catch-up only");
    }
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 2).await;
    let ch = channel(project);
    let mut on_b = peer.ws(None).await;
    subscribe_fresh(&mut on_b, &ch).await;
    for n in 0..3 {
        let started = std::time::Instant::now();
        set_status(&app, &admin, units[n % 2].1, nth_status(n / 2)).await;
        let f = on_b
            .recv_within(Duration::from_secs(2))
            .await
            .expect("the change reaches the other instance within 2 s");
        assert_eq!(f["type"], "unit", "{f}");
        assert_eq!(f["seq"], n as i64 + 1);
        if redis {
            assert!(started.elapsed() < Duration::from_millis(1500));
        }
    }
    // And the other way round.
    let mut on_a = app.ws(None).await;
    subscribe_fresh(&mut on_a, &ch).await;
    set_status(&peer, &admin, units[0].1, "SOLD").await;
    let f = on_a.recv_within(Duration::from_secs(2)).await.unwrap();
    assert_eq!(f["seq"], 4);
    assert_eq!(f["status"], "SOLD");
    expect_unit(&mut on_b, &ch, 4).await;
}

#[actix_web::test]
async fn a_committed_change_whose_publish_is_lost_arrives_by_catch_up_within_2_s() {
    let app = TestApp::spawn_with(SpawnOptions {
        catch_up_every: Duration::from_secs(1),
        ..SpawnOptions::default()
    })
    .await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 2).await;
    let ch = channel(project);
    let mut ws = app.ws(None).await;
    subscribe_fresh(&mut ws, &ch).await;
    let catch_ups = app.state.hub.metrics().catch_ups.get();

    commit_change(
        &app,
        project,
        ("A1", units[0].1),
        UnitStatus::Available,
        UnitStatus::Sold,
        None,
        false,
    )
    .await;
    let started = std::time::Instant::now();
    let f = ws
        .recv_within(Duration::from_secs(2))
        .await
        .expect("delivered by catch-up within 2 s");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(f["seq"], 1);
    assert_eq!(f["status"], "SOLD");
    assert!(app.state.hub.metrics().catch_ups.get() > catch_ups);

    // A later published event is not held up, and nothing is duplicated.
    set_status(&app, &admin, units[1].1, "BOOKED").await;
    expect_unit(&mut ws, &ch, 2).await;
    assert!(ws.recv_within(Duration::from_millis(1500)).await.is_none());
}

/// A WebSocket client on a bare socket, which reads only when the test says so.
type RawClient = actix_codec::Framed<tokio::net::TcpStream, ws::Codec>;

/// Reads an HTTP answer's head byte by byte, so no frame byte behind it is consumed; lower-cased.
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        stream.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

/// A WebSocket client on a socket with a tiny receive buffer, for a client that never reads.
async fn raw_client(port: u16) -> RawClient {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    actix_codec::Framed::new(
        stream,
        ws::Codec::new().client_mode().max_size(64 * 1024 * 1024),
    )
}

/// Writes `request` on a fresh socket and reads until the server closes it.
async fn exchange(port: u16, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection after its answer")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// WebSocket upgrades leave actix-http for our own socket loop, yet still go through the app:
/// another route's answer, a refused handshake and a client's first frame sent together with
/// its handshake all behave as on any HTTP server.
#[actix_web::test]
async fn upgrade_requests_are_routed_through_the_app_and_frames_behind_the_handshake_are_read() {
    let app = TestApp::spawn().await;
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    // Another route answers as usual, then the connection closes (it asked to leave HTTP).
    let answer = exchange(
        app.port,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{upgrade}\r\n").as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    let answer = exchange(
        app.port,
        format!("GET /no-such-path HTTP/1.1\r\nHost: x\r\n{upgrade}\r\n").as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("\"code\":\"not_found\""), "{answer}");

    // A handshake without a key is refused, not upgraded.
    let answer = exchange(
        app.port,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"code\":\"bad_request\""), "{answer}");

    // A subscribe written in the same packet as the handshake is answered.
    let admin = app.admin().await.1;
    let (project, _) = app.project_with_units(&admin, 3).await;
    let mut frame = actix_web::web::BytesMut::new();
    actix_codec::Encoder::encode(
        &mut ws::Codec::new().client_mode(),
        ws::Message::Text(
            json!({"op": "subscribe", "channel": channel(project)})
                .to_string()
                .into(),
        ),
        &mut frame,
    )
    .unwrap();
    let mut request = format!("GET /ws HTTP/1.1\r\nHost: x\r\n{upgrade}\r\n").into_bytes();
    request.extend_from_slice(&frame);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, &request)
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    // The app's middleware ran on the handshake.
    assert!(head.contains("x-request-id:"), "{head}");
    let mut client = actix_codec::Framed::new(stream, ws::Codec::new().client_mode());
    let first = tokio::time::timeout(Duration::from_secs(5), client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        ws::Frame::Text(t) => {
            let v: Value = serde_json::from_slice(&t).unwrap();
            assert_eq!(v["type"], "snapshot", "{v}");
        }
        other => panic!("expected the snapshot, got {other:?}"),
    }
}

/// An app whose hub closes a client as slow after 4 queued frames.
async fn app_with_short_queues(ws: WsConfig) -> TestApp {
    TestApp::spawn_with(SpawnOptions {
        hub: HubConfig {
            queue_capacity: 4,
            ..HubConfig::default()
        },
        ws,
        ..SpawnOptions::default()
    })
    .await
}

/// Resubscribes (a snapshot each time) without ever reading, until the hub closes the client
/// as slow: by then its socket is full and its receive window closed.
async fn resubscribe_until_closed_as_slow(app: &TestApp, client: &mut RawClient, ch: &str) {
    let metrics = app.state.hub.metrics();
    let before = metrics.slow_client_closes.get();
    let sub = json!({"op": "subscribe", "channel": ch}).to_string();
    let mut sent = 0;
    while metrics.slow_client_closes.get() == before && sent < 2000 {
        client
            .send(ws::Message::Text(sub.clone().into()))
            .await
            .unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        metrics.slow_client_closes.get() > before,
        "not closed after {sent} snapshots"
    );
}

#[actix_web::test]
async fn a_slow_client_is_closed_while_the_others_receive_everything() {
    let app = app_with_short_queues(WsConfig {
        write_timeout: Duration::from_secs(2),
        ..WsConfig::default()
    })
    .await;
    let (_, admin) = app.admin().await;
    // Big snapshots (~48 KiB, under the test client's 64 KiB frame cap) fill the slow
    // client's socket quickly.
    let (project, units) = app.project_with_units(&admin, 500).await;
    let ch = channel(project);
    let mut others = Vec::new();
    for _ in 0..3 {
        let mut ws = app.ws(None).await;
        subscribe_fresh(&mut ws, &ch).await;
        others.push(ws);
    }

    let mut slow = raw_client(app.port).await;
    resubscribe_until_closed_as_slow(&app, &mut slow, &ch).await;

    // The others are not slowed down: they get every event, in order.
    for n in 0..20 {
        set_status(&app, &admin, units[n % 5].1, nth_status(n / 5)).await;
    }
    for ws in &mut others {
        for seq in 1..=20 {
            expect_unit(ws, &ch, seq).await;
        }
    }

    // The slow client, once it reads, finds a Close with 1013 (or 1008) after its backlog.
    let code = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(frame) = slow.next().await {
            if let Ok(ws::Frame::Close(reason)) = frame {
                return reason.map(|r| u16::from(r.code));
            }
        }
        None
    })
    .await
    .expect("the slow client's stream ends");
    assert!(matches!(code, Some(1013 | 1008)), "{code:?}");
}

/// Whether the server's end of the connection from `client_port` is still in the kernel's table.
#[cfg(target_os = "linux")]
fn server_socket_open(server_port: u16, client_port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let (local, remote) = (format!(":{server_port:04X}"), format!(":{client_port:04X}"));
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        matches!((fields.next(), fields.next()), (Some(l), Some(r)) if l.ends_with(&local) && r.ends_with(&remote))
    })
}

/// Linux: `TCP_USER_TIMEOUT` is what gives up on the peer (see `WsConfig::unacked_timeout`).
#[cfg(target_os = "linux")]
#[actix_web::test]
async fn a_client_that_stops_reading_is_dropped_once_nothing_is_acknowledged() {
    let app = app_with_short_queues(WsConfig {
        unacked_timeout: Duration::from_secs(2),
        ..WsConfig::default()
    })
    .await;
    let (_, admin) = app.admin().await;
    let (project, _) = app.project_with_units(&admin, 500).await;
    let ch = channel(project);
    let metrics = app.state.hub.metrics();
    let mut stuck = raw_client(app.port).await;
    assert_eq!(metrics.connections.get(), 1);
    resubscribe_until_closed_as_slow(&app, &mut stuck, &ch).await;

    // The client is alive (its kernel answers every probe) but reads nothing. The server's
    // socket gives up once its bytes have gone unacknowledged for 2 s; without the timeout it
    // would stay established for as long as the client does.
    let client_port = stuck.io_ref().local_addr().unwrap().port();
    let dropped = tokio::time::timeout(Duration::from_secs(30), async {
        while server_socket_open(app.port, client_port) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        dropped.is_ok(),
        "the server still holds the stuck connection"
    );
    assert_eq!(metrics.connections.get(), 0);
    // What the client finally reads ends in a reset, not in the Close queued behind its backlog.
    let ending = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stuck.next().await {
                Some(Ok(ws::Frame::Close(reason))) => return Some(reason),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the client's stream ends");
    assert!(ending.is_none(), "the backlog was delivered: {ending:?}");
}

#[actix_web::test]
async fn the_server_pings_answers_pings_and_closes_idle_connections() {
    let app = TestApp::spawn_with(SpawnOptions {
        ws: WsConfig {
            ping_every: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(3),
            ..WsConfig::default()
        },
        ..SpawnOptions::default()
    })
    .await;
    // A silent client is pinged, then closed after the idle timeout.
    let mut silent = app.ws(None).await;
    let started = std::time::Instant::now();
    let first = tokio::time::timeout(Duration::from_secs(3), silent.framed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first, ws::Frame::Ping(_)), "{first:?}");
    let code = silent.closed_with(Duration::from_secs(6)).await;
    assert_eq!(code, Some(1001));
    // Not before the idle timeout (measured from the server's side, a little before `started`).
    assert!(started.elapsed() >= Duration::from_millis(2500));

    // A WebSocket ping is answered with the same payload.
    let mut live = app.ws(None).await;
    live.framed
        .send(ws::Message::Ping(Bytes::from_static(b"hello")))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), live.framed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, ws::Frame::Pong(Bytes::from_static(b"hello")));

    // A client that answers pings (recv_within does) stays connected well past the timeout.
    assert!(live.recv_within(Duration::from_secs(5)).await.is_none());
    live.send(&json!({"op": "ping"})).await;
    assert_eq!(live.recv().await, json!({"type": "pong"}));
}

#[actix_web::test]
async fn a_frame_over_64_kib_closes_with_1009() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(None).await;
    // 64 KiB exactly is accepted (then rejected as a request).
    ws.send_raw(&"x".repeat(64 * 1024)).await;
    assert_eq!(ws.recv().await["code"], "bad_request");
    ws.send_raw(&"x".repeat(70 * 1024)).await;
    assert_eq!(ws.closed_with(Duration::from_secs(5)).await, Some(1009));
}

#[actix_web::test]
async fn the_echo_route_runs_only_when_enabled_and_echoes_through_the_session_loop() {
    let off = TestApp::spawn().await;
    off.get("/ws-echo", None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let app = TestApp::spawn_with(SpawnOptions {
        ws_echo: true,
        ..SpawnOptions::default()
    })
    .await;
    let connect = || async {
        awc::Client::new()
            .ws(format!("ws://127.0.0.1:{}/ws-echo", app.port))
            .connect()
            .await
            .unwrap()
            .1
    };
    let mut echo = connect().await;
    echo.send(ws::Message::Text("héllo".into())).await.unwrap();
    assert_eq!(
        echo.next().await.unwrap().unwrap(),
        ws::Frame::Text(Bytes::from("héllo"))
    );
    echo.send(ws::Message::Binary(Bytes::from_static(&[0, 159, 146, 150])))
        .await
        .unwrap();
    assert_eq!(
        echo.next().await.unwrap().unwrap(),
        ws::Frame::Binary(Bytes::from_static(&[0, 159, 146, 150]))
    );
    // A frame longer than one 8 KiB read arrives whole, byte for byte, twice in a row.
    let big: String = (0..20_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    for _ in 0..2 {
        echo.send(ws::Message::Text(big.clone().into()))
            .await
            .unwrap();
        assert_eq!(
            echo.next().await.unwrap().unwrap(),
            ws::Frame::Text(Bytes::from(big.clone()))
        );
    }
    // Fragments are reassembled ("é" split across two of them).
    let e = "é".as_bytes();
    echo.send(ws::Message::Continuation(actix_ws::Item::FirstText(
        Bytes::from([b"ab".as_slice(), &e[..1]].concat()),
    )))
    .await
    .unwrap();
    echo.send(ws::Message::Continuation(actix_ws::Item::Last(
        Bytes::from([&e[1..], b"cd".as_slice()].concat()),
    )))
    .await
    .unwrap();
    assert_eq!(
        echo.next().await.unwrap().unwrap(),
        ws::Frame::Text(Bytes::from("abécd"))
    );
    // Invalid UTF-8 in a first fragment fails at once with 1007, without waiting for the rest.
    echo.send(ws::Message::Continuation(actix_ws::Item::FirstText(
        Bytes::from_static(b"ok\xff"),
    )))
    .await
    .unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(5), echo.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match frame {
        ws::Frame::Close(Some(reason)) => assert_eq!(u16::from(reason.code), 1007),
        other => panic!("expected a close, got {other:?}"),
    }
    // A client's close code is echoed.
    let mut bye = connect().await;
    bye.send(ws::Message::Close(Some(ws::CloseReason {
        code: ws::CloseCode::Away,
        description: None,
    })))
    .await
    .unwrap();
    match bye.next().await.unwrap().unwrap() {
        ws::Frame::Close(Some(reason)) => assert_eq!(reason.code, ws::CloseCode::Away),
        other => panic!("expected a close, got {other:?}"),
    }
}

#[actix_web::test]
async fn metrics_expose_http_pool_and_realtime_families() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 1).await;
    let mut ws = app.ws(None).await;
    subscribe_fresh(&mut ws, &channel(project)).await;
    set_status(&app, &admin, units[0].1, "BOOKED").await;
    expect_unit(&mut ws, &channel(project), 1).await;
    app.get(&format!("/api/v1/units/{}", units[0].1), None)
        .await;
    app.get("/api/v1/nope", None).await;

    let res = app.get("/metrics", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(res.bytes).unwrap();
    for needle in [
        r#"kavling_http_requests_total{method="PATCH",route="/api/v1/units/{id}",status="200"} 1"#,
        r#"kavling_http_requests_total{method="GET",route="/api/v1/units/{id}",status="200"} 1"#,
        r#"kavling_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"kavling_http_request_duration_seconds_bucket{method="PATCH",route="/api/v1/units/{id}",le="+Inf"} 1"#,
        "# TYPE kavling_http_request_duration_seconds histogram",
        "# TYPE kavling_db_pool_connections gauge",
        "kavling_db_pool_max_connections ",
        "kavling_db_pool_in_use_connections ",
        "kavling_realtime_connections 1",
        "kavling_realtime_subscriptions 1",
        "kavling_realtime_events_published_total 1",
        "kavling_realtime_frames_sent_total 1",
        "kavling_realtime_catch_ups_total ",
        "kavling_realtime_slow_client_closes_total 0",
        "kavling_realtime_redis_reconnects_total ",
        "kavling_realtime_commit_to_send_seconds_count 1",
        "# TYPE kavling_realtime_commit_to_send_seconds histogram",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

/// The label keys of a sample's rest (`{k="v",…} value`), reading quoted values with escapes.
fn label_keys(rest: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let Some(mut rest) = rest.strip_prefix('{') else {
        return keys;
    };
    while let Some((key, after)) = rest.split_once("=\"") {
        keys.push(key.trim_start_matches(',').to_owned());
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[end..];
        if rest.starts_with('}') {
            break;
        }
    }
    keys
}

/// The exposition's families (name and type) and each sample's name with its label keys,
/// pinned: dashboards and alerts depend on them, so moving to another metrics library (or
/// adding a metric) must not rename one silently. A new metric is added to this list.
#[actix_web::test]
async fn metrics_names_labels_and_types_are_pinned() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 1).await;
    set_status(&app, &admin, units[0].1, "BOOKED").await;
    let res = app.get("/metrics", None).await;
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(res.bytes).unwrap();
    let mut families = std::collections::BTreeSet::new();
    let mut samples = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.insert(rest.to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap();
            let mut keys = label_keys(&line[name_end..]);
            keys.sort_unstable();
            samples.insert(format!("{}{{{}}}", &line[..name_end], keys.join(",")));
        }
    }
    let want_families = [
        "kavling_db_pool_connections gauge",
        "kavling_db_pool_idle_connections gauge",
        "kavling_db_pool_in_use_connections gauge",
        "kavling_db_pool_max_connections gauge",
        "kavling_http_request_duration_seconds histogram",
        "kavling_http_requests_total counter",
        "kavling_job_items_total counter",
        "kavling_job_runs_total counter",
        "kavling_realtime_booking_frames_sent_total counter",
        "kavling_realtime_catch_up_events_total counter",
        "kavling_realtime_catch_ups_total counter",
        "kavling_realtime_commit_to_send_seconds histogram",
        "kavling_realtime_connections gauge",
        "kavling_realtime_duplicates_dropped_total counter",
        "kavling_realtime_events_applied_total counter",
        "kavling_realtime_events_published_total counter",
        "kavling_realtime_events_received_total counter",
        "kavling_realtime_feed_catch_up_events_total counter",
        "kavling_realtime_feed_commit_to_send_seconds histogram",
        "kavling_realtime_feed_duplicates_dropped_total counter",
        "kavling_realtime_feed_frames_sent_total counter",
        "kavling_realtime_frames_sent_total counter",
        "kavling_realtime_redis_reconnects_total counter",
        "kavling_realtime_revoked_closes_total counter",
        "kavling_realtime_slow_client_closes_total counter",
        "kavling_realtime_snapshot_loads_total counter",
        "kavling_realtime_store_errors_total counter",
        "kavling_realtime_subscriptions gauge",
    ];
    assert_eq!(
        families.iter().map(String::as_str).collect::<Vec<_>>(),
        want_families,
        "{text}"
    );
    let want_samples = [
        "kavling_db_pool_connections{}",
        "kavling_db_pool_idle_connections{}",
        "kavling_db_pool_in_use_connections{}",
        "kavling_db_pool_max_connections{}",
        "kavling_http_request_duration_seconds_bucket{le,method,route}",
        "kavling_http_request_duration_seconds_count{method,route}",
        "kavling_http_request_duration_seconds_sum{method,route}",
        "kavling_http_requests_total{method,route,status}",
        "kavling_job_items_total{job}",
        "kavling_job_runs_total{job,outcome}",
        "kavling_realtime_booking_frames_sent_total{}",
        "kavling_realtime_catch_up_events_total{}",
        "kavling_realtime_catch_ups_total{}",
        "kavling_realtime_commit_to_send_seconds_bucket{le}",
        "kavling_realtime_commit_to_send_seconds_count{}",
        "kavling_realtime_commit_to_send_seconds_sum{}",
        "kavling_realtime_connections{}",
        "kavling_realtime_duplicates_dropped_total{}",
        "kavling_realtime_events_applied_total{}",
        "kavling_realtime_events_published_total{}",
        "kavling_realtime_events_received_total{}",
        "kavling_realtime_feed_catch_up_events_total{}",
        "kavling_realtime_feed_commit_to_send_seconds_bucket{le}",
        "kavling_realtime_feed_commit_to_send_seconds_count{}",
        "kavling_realtime_feed_commit_to_send_seconds_sum{}",
        "kavling_realtime_feed_duplicates_dropped_total{}",
        "kavling_realtime_feed_frames_sent_total{}",
        "kavling_realtime_frames_sent_total{}",
        "kavling_realtime_redis_reconnects_total{}",
        "kavling_realtime_revoked_closes_total{}",
        "kavling_realtime_slow_client_closes_total{}",
        "kavling_realtime_snapshot_loads_total{}",
        "kavling_realtime_store_errors_total{}",
        "kavling_realtime_subscriptions{}",
    ];
    assert_eq!(
        samples.iter().map(String::as_str).collect::<Vec<_>>(),
        want_samples,
        "{text}"
    );
    // The buckets keep their bounds (seconds, as before).
    for le in ["0.001", "0.0025", "1", "10", "+Inf"] {
        assert!(
            text.contains(&format!(
                "kavling_http_request_duration_seconds_bucket{{method=\"PATCH\",route=\"/api/v1/units/{{id}}\",le=\"{le}\"}}"
            )),
            "le={le} in\n{text}"
        );
    }
    for le in ["0.001", "0.002", "2.5", "+Inf"] {
        assert!(
            text.contains(&format!(
                "kavling_realtime_commit_to_send_seconds_bucket{{le=\"{le}\"}}"
            )),
            "le={le} in\n{text}"
        );
    }
}

#[actix_web::test]
async fn old_events_are_pruned_beyond_the_retention_and_replays_fall_back_to_snapshots() {
    let app = TestApp::spawn_with(SpawnOptions {
        event_retention: 3,
        prune_every: Duration::from_millis(200),
        ..SpawnOptions::default()
    })
    .await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 1).await;
    let (other, other_units) = app.project_with_units(&admin, 1).await;
    for n in 0..6 {
        set_status(&app, &admin, units[0].1, nth_status(n)).await;
    }
    set_status(&app, &admin, other_units[0].1, "SOLD").await;
    let db = &app.state.services.db;
    let seqs = |p: Uuid| async move {
        use kavling_core::entities::unit_events;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        unit_events::Entity::find()
            .filter(unit_events::Column::ProjectId.eq(p))
            .order_by_asc(unit_events::Column::Seq)
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.seq)
            .collect::<Vec<i64>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while seqs(project).await.len() > 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seqs(project).await, [4, 5, 6]);
    // A project with fewer events than the retention keeps them all.
    assert_eq!(seqs(other).await, [1]);

    let ch = channel(project);
    let mut gone = app.ws(None).await;
    subscribe(&mut gone, &ch, Some(2)).await;
    assert_eq!(gone.recv().await["type"], "snapshot");
    assert_eq!(gone.recv().await["recovered"], false);
    let mut kept = app.ws(None).await;
    subscribe(&mut kept, &ch, Some(3)).await;
    for seq in 4..=6 {
        expect_unit(&mut kept, &ch, seq).await;
    }
    assert_eq!(kept.recv().await["recovered"], true);
}

/// Block numbers in a `snapshot` frame.
fn snapshot_blocks(frame: &Value) -> Vec<String> {
    frame["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["blockNumber"].as_str().unwrap().to_owned())
        .collect()
}

/// Subscribes a new client on `app` every 100 ms until its snapshot lists `block`, within 2 s.
async fn new_subscriber_sees(app: &TestApp, ch: &str, block: &str) -> WsClient {
    let started = std::time::Instant::now();
    loop {
        let mut ws = app.ws(None).await;
        subscribe(&mut ws, ch, None).await;
        let snap = ws.recv().await;
        assert_eq!(snap["type"], "snapshot", "{snap}");
        assert_eq!(ws.recv().await["type"], "subscribed");
        if snapshot_blocks(&snap).iter().any(|b| b == block) {
            return ws;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{block} is not in the other instance's snapshots after 2 s: {snap}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_unit_added_on_one_instance_is_in_the_snapshots_of_another() {
    let app = TestApp::spawn().await;
    let redis = test_redis_url().is_some();
    // With Redis the list change must travel the bus: the peer's catch-up is too slow to help.
    let peer = app
        .spawn_peer(SpawnOptions {
            catch_up_every: if redis {
                Duration::from_secs(60)
            } else {
                Duration::from_secs(1)
            },
            ..SpawnOptions::default()
        })
        .await;
    let (_, admin) = app.admin().await;
    let (project, _) = app.project_with_units(&admin, 1).await;
    let ch = channel(project);
    // B already serves the project (its cache holds the old list).
    let mut watching = peer.ws(None).await;
    subscribe_fresh(&mut watching, &ch).await;

    let res = app
        .post(
            &format!("/api/v1/projects/{project}/units"),
            Some(&admin),
            &json!({"blockNumber": "Y2", "type": "36/72", "price": 450_000_000}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let y2: Uuid = res.json["id"].as_str().unwrap().parse().unwrap();
    let mut fresh = new_subscriber_sees(&peer, &ch, "Y2").await;
    let availability = peer
        .get(&format!("/api/v1/projects/{project}/availability"), None)
        .await;
    assert!(
        availability.json.to_string().contains("Y2"),
        "{}",
        availability.json
    );

    // Its first status change reaches B's subscribers, old and new.
    set_status(&app, &admin, y2, "BOOKED").await;
    for ws in [&mut watching, &mut fresh] {
        let f = ws
            .recv_within(Duration::from_secs(2))
            .await
            .expect("Y2's change reaches the other instance");
        assert_eq!(f["type"], "unit", "{f}");
        assert_eq!(f["blockNumber"], "Y2");
        assert_eq!(f["status"], "BOOKED");
    }
}

#[actix_web::test]
async fn a_unit_list_change_whose_bus_message_is_lost_is_caught_up_within_2_s() {
    use kavling_core::entities::{projects, units};
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, ExprTrait, QueryFilter};

    let app = TestApp::spawn().await;
    let peer = app
        .spawn_peer(SpawnOptions {
            catch_up_every: Duration::from_secs(1),
            ..SpawnOptions::default()
        })
        .await;
    let (_, admin) = app.admin().await;
    let (project, _) = app.project_with_units(&admin, 1).await;
    let ch = channel(project);
    let mut watching = peer.ws(None).await;
    subscribe_fresh(&mut watching, &ch).await;

    // What creating a unit commits, without its publish (as when Redis is down at that moment).
    let db = &app.state.services.db;
    let now = chrono::Utc::now();
    units::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(project),
        block_number: Set("Y2".into()),
        unit_type: Set("36/72".into()),
        price: Set(1),
        land_area: Set(None),
        building_area: Set(None),
        bedrooms: Set(None),
        bathrooms: Set(None),
        status: Set("AVAILABLE".into()),
        version: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    projects::Entity::update_many()
        .col_expr(
            projects::Column::UnitsVersion,
            Expr::col(projects::Column::UnitsVersion).add(1),
        )
        .filter(projects::Column::Id.eq(project))
        .exec(db)
        .await
        .unwrap();
    new_subscriber_sees(&peer, &ch, "Y2").await;
    new_subscriber_sees(&app, &ch, "Y2").await;
}

#[actix_web::test]
async fn a_user_channel_is_open_to_its_own_token_only() {
    let app = TestApp::spawn().await;
    let (me, token) = app.user(Role::Buyer, true).await;
    let (other, _) = app.user(Role::Buyer, true).await;
    let mine = format!("user:{me}");

    // No token, a bad token, or another user's channel: forbidden; the connection stays usable.
    for (token, ch) in [
        (None, mine.clone()),
        (Some("not-a-token"), mine.clone()),
        (Some(token.as_str()), format!("user:{other}")),
    ] {
        let mut ws = app.ws(token).await;
        subscribe(&mut ws, &ch, None).await;
        let err = ws.recv().await;
        assert_eq!(err["type"], "error", "{err}");
        assert_eq!(err["code"], "forbidden", "{err}");
        assert_eq!(err["channel"], ch);
        ws.send(&json!({"op": "ping"})).await;
        assert_eq!(ws.recv().await["type"], "pong");
    }

    // The token's own user: `subscribed` at the feed's head, no snapshot.
    let mut ws = app.ws(Some(&token)).await;
    subscribe(&mut ws, &mine, None).await;
    let sub = ws.recv().await;
    assert_eq!(sub["type"], "subscribed", "{sub}");
    assert_eq!(sub["channel"], mine);
    assert_eq!(sub["recovered"], false);
    assert!(sub["seq"].is_i64(), "{sub}");
}
