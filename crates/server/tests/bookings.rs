//! Bookings, customers and documents over real HTTP and WebSocket against a real database:
//! exactly one winner per unit, gap-free codes, every transition, hold expiry (exact, also when it
//! races a payment), validators, masking, the CSV export and document uploads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use common::{SpawnOptions, TestApp, TestResponse};
use futures_util::future::join_all;
use kavling_core::domain::Role;
use kavling_core::entities::{bookings, customers};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

fn inline_customer(i: usize) -> Value {
    json!({"name": format!("Pembeli {i}"), "phone": format!("0812{:08}", i)})
}

async fn book(app: &TestApp, token: &str, unit: Uuid, customer: Value) -> TestResponse {
    app.post(
        "/api/v1/bookings",
        Some(token),
        &json!({"unitId": unit, "customer": customer, "bookingFee": 5_000_000}),
    )
    .await
}

async fn book_existing(app: &TestApp, token: &str, unit: Uuid, customer: &str) -> TestResponse {
    app.post(
        "/api/v1/bookings",
        Some(token),
        &json!({"unitId": unit, "customerId": customer, "bookingFee": 0}),
    )
    .await
}

async fn unit_status(app: &TestApp, unit: Uuid) -> String {
    let res = app.get(&format!("/api/v1/units/{unit}"), None).await;
    assert_eq!(res.status, StatusCode::OK);
    res.json["status"].as_str().unwrap().to_owned()
}

async fn booking_status(app: &TestApp, token: &str, id: &str) -> String {
    let res = app
        .get(&format!("/api/v1/bookings/{id}"), Some(token))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    res.json["status"].as_str().unwrap().to_owned()
}

async fn subscribe(app: &TestApp, project: Uuid) -> common::WsClient {
    let mut ws = app.ws(None).await;
    ws.send(&json!({"op": "subscribe", "channel": format!("project:{project}")}))
        .await;
    assert_eq!(ws.recv().await["type"], "snapshot");
    assert_eq!(ws.recv().await["type"], "subscribed");
    ws
}

#[actix_web::test]
async fn five_hundred_concurrent_bookings_of_one_unit_have_exactly_one_winner() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, marketing) = app.user(Role::Marketing, true).await;
    let (_, units) = app.project_with_units(&admin, 1).await;
    let unit = units[0].1;

    let attempts = (0..500).map(|i| {
        let token = if i % 2 == 0 { &admin } else { &marketing };
        book(&app, token, unit, inline_customer(i))
    });
    let results = join_all(attempts).await;
    let mut created = 0;
    for res in &results {
        if res.status == StatusCode::CREATED {
            created += 1;
        } else {
            res.assert_problem(StatusCode::CONFLICT, "unit_not_available");
        }
    }
    assert_eq!(created, 1);
    let rows = bookings::Entity::find()
        .filter(bookings::Column::UnitId.eq(unit))
        .count(&app.state.services.db)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    assert_eq!(unit_status(&app, unit).await, "BOOKED");

    // Once booked, a later attempt is refused too.
    book(&app, &admin, unit, inline_customer(999))
        .await
        .assert_problem(StatusCode::CONFLICT, "unit_not_available");
}

#[actix_web::test]
async fn fifty_concurrent_bookings_of_different_units_get_gap_free_unique_codes() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 50).await;
    let results = join_all(
        units
            .iter()
            .enumerate()
            .map(|(i, (_, u))| book(&app, &admin, *u, inline_customer(i))),
    )
    .await;
    let mut codes = HashSet::new();
    let mut year = None;
    for res in &results {
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
        let code = res.json["bookingCode"].as_str().unwrap().to_owned();
        let parts: Vec<&str> = code.split('-').collect();
        assert_eq!(parts.len(), 3, "{code}");
        assert_eq!(parts[0], "BK");
        year.get_or_insert(parts[1].to_owned());
        assert_eq!(Some(parts[1]), year.as_deref());
        assert!(parts[2].len() >= 3, "{code}");
        codes.insert(parts[2].parse::<u32>().unwrap());
    }
    assert_eq!(codes, (1..=50).collect::<HashSet<u32>>());
    let y = year.unwrap();
    assert!(
        results
            .iter()
            .any(|r| r.json["bookingCode"] == format!("BK-{y}-001"))
    );
}

/// On PostgreSQL concurrent bookings are made in batches that share a statement; a burst that
/// mixes winners, losers of the same unit, unknown customers and existing customers must still give
/// each booking its own outcome, gap-free codes, and events in seq order with none missing.
#[actix_web::test]
async fn a_mixed_burst_gives_each_booking_its_own_outcome() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 50).await;
    let existing = app
        .post(
            "/api/v1/customers",
            Some(&admin),
            &json!({"name": "Sari", "phone": "081311112222"}),
        )
        .await;
    assert_eq!(existing.status, StatusCode::CREATED, "{}", existing.json);
    let existing_id = existing.json["id"].as_str().unwrap().to_owned();
    let mut ws = subscribe(&app, project).await;

    // Units 0..30: inline customers, and units 0..10 twice (one winner each).
    // Units 30..35: an existing customer. Units 35..40: a customer that does not exist.
    let missing = Uuid::now_v7().to_string();
    let mut requests = Vec::new();
    for (i, (_, unit)) in units.iter().enumerate().take(30) {
        requests.push(futures_util::future::Either::Left(book(
            &app,
            &admin,
            *unit,
            inline_customer(i),
        )));
    }
    for (i, (_, unit)) in units.iter().enumerate().take(10) {
        requests.push(futures_util::future::Either::Left(book(
            &app,
            &admin,
            *unit,
            inline_customer(100 + i),
        )));
    }
    for (_, unit) in &units[30..35] {
        requests.push(futures_util::future::Either::Right(book_existing(
            &app,
            &admin,
            *unit,
            &existing_id,
        )));
    }
    for (_, unit) in &units[35..40] {
        requests.push(futures_util::future::Either::Right(book_existing(
            &app, &admin, *unit, &missing,
        )));
    }
    let results = join_all(requests).await;

    let mut codes = HashSet::new();
    let mut booked_units = HashSet::new();
    let (mut conflicts, mut unknown) = (0, 0);
    for res in &results {
        match res.status {
            StatusCode::CREATED => {
                let code = res.json["bookingCode"].as_str().unwrap();
                codes.insert(code.rsplit('-').next().unwrap().parse::<u32>().unwrap());
                assert!(booked_units.insert(res.json["unitId"].as_str().unwrap().to_owned()));
            }
            StatusCode::CONFLICT => {
                res.assert_problem(StatusCode::CONFLICT, "unit_not_available");
                conflicts += 1;
            }
            _ => {
                res.assert_problem(StatusCode::NOT_FOUND, "not_found");
                assert!(
                    res.json["detail"].as_str().unwrap().contains("customer"),
                    "{}",
                    res.json
                );
                unknown += 1;
            }
        }
    }
    assert_eq!((codes.len(), conflicts, unknown), (35, 10, 5));
    assert_eq!(codes, (1..=35).collect::<HashSet<u32>>());
    for res in results.iter().skip(40).take(5) {
        assert_eq!(res.json["customerId"], existing_id.as_str(), "{}", res.json);
    }
    for (_, unit) in &units[35..40] {
        assert_eq!(unit_status(&app, *unit).await, "AVAILABLE");
    }
    // Every made booking's event, in seq order, none twice.
    let mut seen = HashSet::new();
    for seq in 1..=35 {
        let f = ws.recv().await;
        assert_eq!(f["type"], "unit", "{f}");
        assert_eq!(f["seq"], seq, "{f}");
        assert_eq!(f["status"], "BOOKED", "{f}");
        assert!(seen.insert(f["unitId"].as_str().unwrap().to_owned()), "{f}");
    }
    assert_eq!(seen, booked_units);
    let rows = bookings::Entity::find()
        .count(&app.state.services.db)
        .await
        .unwrap();
    assert_eq!(rows, 35);
}

#[actix_web::test]
async fn codes_keep_counting_past_three_digits() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 3).await;
    let first = book(&app, &admin, units[0].1, inline_customer(0)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json);
    let code = first.json["bookingCode"].as_str().unwrap();
    let year = &code[3..7];
    assert_eq!(code, format!("BK-{year}-001"));
    // Jump the year's counter, as after 998 bookings.
    app.state
        .services
        .db
        .execute_unprepared("UPDATE booking_counters SET last_value = 998")
        .await
        .unwrap();
    let mut codes = Vec::new();
    for (i, (_, unit)) in units.iter().enumerate().skip(1) {
        let res = book(&app, &admin, *unit, inline_customer(i)).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
        codes.push(res.json["bookingCode"].as_str().unwrap().to_owned());
    }
    assert_eq!(codes, [format!("BK-{year}-999"), format!("BK-{year}-1000")]);
}

#[actix_web::test]
async fn booking_response_shape_and_validation() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (marketing_id, marketing) = app.user(Role::Marketing, true).await;
    let (_, units) = app.project_with_units(&admin, 3).await;

    let res = app
        .post(
            "/api/v1/bookings",
            Some(&marketing),
            &json!({
                "unitId": units[0].1,
                "customer": {"name": "Siti Aminah", "phone": "0812-3456-7890", "email": "siti@example.com",
                             "ktpNumber": "3201015505900002", "npwpNumber": "09.254.294.3-407.000"},
                "bookingFee": 10_000_000, "paymentMethod": "TRANSFER", "notes": "pameran"
            }),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let b = &res.json;
    assert_eq!(b["status"], "PENDING_PAYMENT");
    assert_eq!(b["paymentStatus"], "PENDING");
    assert_eq!(b["paymentMethod"], "TRANSFER");
    assert_eq!(b["bookingFee"], 10_000_000);
    assert_eq!(b["marketingId"], marketing_id.to_string());
    assert_eq!(b["unit"]["id"], units[0].1.to_string());
    assert_eq!(b["unit"]["blockNumber"], "A1");
    assert_eq!(b["unit"]["status"], "BOOKED");
    assert_eq!(b["customer"]["name"], "Siti Aminah");
    assert_eq!(b["customer"]["phone"], "+6281234567890");
    // Marketing sees personal identifiers masked.
    assert_eq!(b["customer"]["ktpNumber"], "3201********0002");
    assert_eq!(b["customer"]["npwpNumber"], "0092********7000");
    let date = chrono::DateTime::parse_from_rfc3339(b["bookingDate"].as_str().unwrap()).unwrap();
    let exp = chrono::DateTime::parse_from_rfc3339(b["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(exp - date, chrono::Duration::minutes(60));

    // The same NIK inline matches the existing customer instead of creating another.
    let res = app
        .post(
            "/api/v1/bookings",
            Some(&admin),
            &json!({"unitId": units[1].1, "bookingFee": 0,
                    "customer": {"name": "Siti A.", "phone": "081234567890", "ktpNumber": "3201015505900002"}}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    assert_eq!(res.json["customerId"], b["customerId"]);
    assert_eq!(res.json["customer"]["ktpNumber"], "3201015505900002");

    // By id.
    let res = app
        .post(
            "/api/v1/bookings",
            Some(&admin),
            &json!({"unitId": units[2].1, "bookingFee": 1, "customerId": b["customerId"]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);

    // Validation: fee, both or neither customer forms, bad inline fields, unknown unit.
    let (_, more) = app.project_with_units(&admin, 1).await;
    let u = more[0].1;
    for (body, field) in [
        (
            json!({"unitId": u, "bookingFee": -1, "customer": inline_customer(1)}),
            "bookingFee",
        ),
        (json!({"unitId": u, "bookingFee": 1}), "customerId"),
        (
            json!({"unitId": u, "bookingFee": 1, "customerId": Uuid::now_v7(), "customer": inline_customer(1)}),
            "customerId",
        ),
        (
            json!({"unitId": u, "bookingFee": 1, "customer": {"name": "X", "phone": "021555"}}),
            "customer.phone",
        ),
        (
            json!({"unitId": u, "bookingFee": 1, "customer": {"name": "X", "phone": "081234567890", "ktpNumber": "123"}}),
            "customer.ktpNumber",
        ),
    ] {
        let res = app.post("/api/v1/bookings", Some(&admin), &body).await;
        res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.json["errors"][0]["field"], field, "{}", res.json);
    }
    // A customer that does not exist is a missing resource, like an unknown unit.
    let res = app
        .post(
            "/api/v1/bookings",
            Some(&admin),
            &json!({"unitId": u, "bookingFee": 1, "customerId": Uuid::now_v7()}),
        )
        .await;
    res.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(res.json["detail"], "customer not found");
    // Nothing above claimed the unit.
    assert_eq!(unit_status(&app, u).await, "AVAILABLE");
    app.post(
        "/api/v1/bookings",
        Some(&admin),
        &json!({"unitId": Uuid::now_v7(), "bookingFee": 1, "customer": inline_customer(1)}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

async fn audit_actions(app: &TestApp, admin: &str, entity_type: &str, id: &str) -> Vec<Value> {
    let res = app
        .get(
            &format!("/api/v1/admin/audit-log?filters[entityId][$eq]={id}&filters[entityType][$eq]={entity_type}"),
            Some(admin),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    res.json["data"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn concurrent_bookings_with_one_new_nik_share_one_customer_and_audit_it_once() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 20).await;
    let nik = json!({"name": "Dewi", "phone": "081298765432", "ktpNumber": "3201014107900003"});
    let results = join_all(
        units
            .iter()
            .map(|(_, u)| book(&app, &admin, *u, nik.clone())),
    )
    .await;
    let mut customer_ids = HashSet::new();
    for res in &results {
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
        customer_ids.insert(res.json["customerId"].as_str().unwrap().to_owned());
        assert_eq!(res.json["customer"]["name"], "Dewi");
    }
    assert_eq!(customer_ids.len(), 1, "{customer_ids:?}");
    let customer = customer_ids.into_iter().next().unwrap();
    let rows = customers::Entity::find()
        .count(&app.state.services.db)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    let created = audit_actions(&app, &admin, "customer", &customer).await;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["action"], "customer.created");

    // Each booking's own rows: booking.created naming the shared customer, and the unit's change.
    for res in &results {
        let booking =
            audit_actions(&app, &admin, "booking", res.json["id"].as_str().unwrap()).await;
        assert_eq!(booking.len(), 1, "{booking:?}");
        assert_eq!(booking[0]["action"], "booking.created");
        assert_eq!(booking[0]["newValues"]["customerId"], customer.as_str());
        assert_eq!(booking[0]["newValues"]["unitId"], res.json["unitId"]);
        assert_eq!(booking[0]["newValues"]["status"], "PENDING_PAYMENT");
        let unit = audit_actions(&app, &admin, "unit", res.json["unitId"].as_str().unwrap()).await;
        let changes: Vec<&Value> = unit
            .iter()
            .filter(|r| r["action"] == "unit.status_changed")
            .collect();
        assert_eq!(changes.len(), 1, "{unit:?}");
        assert_eq!(changes[0]["oldValues"]["status"], "AVAILABLE");
        assert_eq!(changes[0]["newValues"]["status"], "BOOKED");
        assert_eq!(changes[0]["newValues"]["bookingId"], res.json["id"]);
    }
}

#[actix_web::test]
async fn roles_kyc_and_visibility() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, unverified) = app.user(Role::Marketing, false).await;
    let (_, buyer) = app.user(Role::Buyer, true).await;
    let (_, m1) = app.user(Role::Marketing, true).await;
    let (_, m2) = app.user(Role::Marketing, true).await;
    let (_, units) = app.project_with_units(&admin, 3).await;

    book(&app, &unverified, units[0].1, inline_customer(1))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "kyc_required");
    book(&app, &buyer, units[0].1, inline_customer(1))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post(
        "/api/v1/bookings",
        None,
        &json!({"unitId": units[0].1, "bookingFee": 1, "customer": inline_customer(1)}),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(unit_status(&app, units[0].1).await, "AVAILABLE");

    let b1 = book(&app, &m1, units[0].1, inline_customer(1)).await.json;
    let b2 = book(&app, &m2, units[1].1, inline_customer(2)).await.json;
    let b1_id = b1["id"].as_str().unwrap();

    // Marketing users see their own bookings; admins see all; buyers none.
    let list = app.get("/api/v1/bookings", Some(&m1)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json["meta"]["pagination"]["total"], 1);
    assert_eq!(list.json["data"][0]["id"], b1["id"]);
    assert_eq!(
        app.get("/api/v1/bookings", Some(&admin)).await.json["meta"]["pagination"]["total"],
        2
    );
    app.get(&format!("/api/v1/bookings/{b1_id}"), Some(&m2))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.patch(
        &format!("/api/v1/bookings/{b1_id}"),
        Some(&m2),
        &json!({"status": "CANCELLED"}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/bookings", Some(&buyer))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // An unverified marketing user may read (their own, here none).
    assert_eq!(
        app.get("/api/v1/bookings", Some(&unverified)).await.json["meta"]["pagination"]["total"],
        0
    );
    app.patch(
        &format!("/api/v1/bookings/{b1_id}"),
        Some(&unverified),
        &json!({"status": "CANCELLED"}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "kyc_required");

    // List filters.
    let code = b2["bookingCode"].as_str().unwrap();
    let tail = &code[code.len() - 3..];
    let res = app
        .get(
            &format!("/api/v1/bookings?filters[bookingCode][$containsi]=bk-%25{tail}"),
            Some(&admin),
        )
        .await;
    assert_eq!(res.json["meta"]["pagination"]["total"], 0, "% is literal");
    let res = app
        .get(
            &format!(
                "/api/v1/bookings?filters[bookingCode][$containsi]=bk-2&filters[unitId][$eq]={}",
                units[1].1
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["meta"]["pagination"]["total"], 1);
    assert_eq!(res.json["data"][0]["id"], b2["id"]);
    let today = chrono::Utc::now().date_naive();
    let res = app
        .get(
            &format!("/api/v1/bookings?filters[bookingDate][$gte]={today}&filters[bookingDate][$lte]={today}&filters[status][$eq]=PENDING_PAYMENT&sort=bookingCode:asc"),
            Some(&admin),
        )
        .await;
    assert_eq!(res.json["meta"]["pagination"]["total"], 2, "{}", res.json);
    assert_eq!(res.json["data"][0]["id"], b1["id"]);
    let res = app
        .get(
            "/api/v1/bookings?filters[bookingDate][$lt]=2000-01-01",
            Some(&admin),
        )
        .await;
    assert_eq!(res.json["meta"]["pagination"]["total"], 0);
    app.get("/api/v1/bookings?filters[nope][$eq]=1", Some(&admin))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_query");
    app.get("/api/v1/bookings?filters[status][$eq]=LOST", Some(&admin))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_query");
}

#[actix_web::test]
async fn every_transition_allowed_and_refused_with_the_unit_following_and_events() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 3).await;
    let mut ws = subscribe(&app, project).await;
    let mut seq = 0;
    let mut expect_event = async |ws: &mut common::WsClient, block: &str, status: &str| {
        let ev = ws.recv().await;
        seq += 1;
        assert_eq!(ev["type"], "unit", "{ev}");
        assert_eq!(ev["seq"], seq, "{ev}");
        assert_eq!(ev["blockNumber"], block, "{ev}");
        assert_eq!(ev["status"], status, "{ev}");
    };
    let patch = async |id: &str, body: Value| {
        app.patch(&format!("/api/v1/bookings/{id}"), Some(&admin), &body)
            .await
    };

    // A1: PENDING_PAYMENT -> ACTIVE (paid) -> COMPLETED; the unit goes BOOKED -> SOLD.
    let b = book(&app, &admin, units[0].1, inline_customer(1))
        .await
        .json;
    let id = b["id"].as_str().unwrap().to_owned();
    expect_event(&mut ws, "A1", "BOOKED").await;
    for refused in ["COMPLETED", "PENDING_PAYMENT"] {
        patch(&id, json!({"status": refused}))
            .await
            .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    }
    let res = patch(&id, json!({"status": "ACTIVE", "paymentStatus": "PAID"})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["status"], "ACTIVE");
    assert_eq!(res.json["paymentStatus"], "PAID");
    assert!(res.json["paymentDate"].is_string());
    // ACTIVE keeps the unit BOOKED: no change, no event.
    assert_eq!(unit_status(&app, units[0].1).await, "BOOKED");
    assert!(ws.recv_within(Duration::from_millis(300)).await.is_none());
    for refused in ["ACTIVE", "PENDING_PAYMENT"] {
        patch(&id, json!({"status": refused}))
            .await
            .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    }
    let res = patch(&id, json!({"status": "COMPLETED"})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(unit_status(&app, units[0].1).await, "SOLD");
    expect_event(&mut ws, "A1", "SOLD").await;
    for refused in ["PENDING_PAYMENT", "ACTIVE", "COMPLETED", "CANCELLED"] {
        patch(&id, json!({"status": refused}))
            .await
            .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    }
    app.send(
        Method::DELETE,
        &format!("/api/v1/bookings/{id}"),
        Some(&admin),
        None,
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");

    // A2: PENDING_PAYMENT -> CANCELLED by DELETE (a soft delete); the unit is AVAILABLE again
    // and bookable.
    let b = book(&app, &admin, units[1].1, inline_customer(2))
        .await
        .json;
    let id2 = b["id"].as_str().unwrap().to_owned();
    expect_event(&mut ws, "A2", "BOOKED").await;
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/v1/bookings/{id2}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["status"], "CANCELLED");
    assert!(res.json["cancelledAt"].is_string());
    assert_eq!(unit_status(&app, units[1].1).await, "AVAILABLE");
    expect_event(&mut ws, "A2", "AVAILABLE").await;
    // Soft delete: the row stays, as CANCELLED, but the API no longer serves it.
    for refused in ["PENDING_PAYMENT", "ACTIVE", "COMPLETED", "CANCELLED"] {
        patch(&id2, json!({"status": refused}))
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    app.get(&format!("/api/v1/bookings/{id2}"), Some(&admin))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let row = bookings::Entity::find_by_id(Uuid::parse_str(&id2).unwrap())
        .one(&app.state.services.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "CANCELLED");
    assert!(row.deleted_at.is_some());
    let again = book(&app, &admin, units[1].1, inline_customer(3)).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.json);
    expect_event(&mut ws, "A2", "BOOKED").await;

    // A3: PENDING_PAYMENT -> ACTIVE -> CANCELLED; payment fields without a status change.
    let b = book(&app, &admin, units[2].1, inline_customer(4))
        .await
        .json;
    let id3 = b["id"].as_str().unwrap().to_owned();
    expect_event(&mut ws, "A3", "BOOKED").await;
    let res = patch(
        &id3,
        json!({"paymentStatus": "PAID", "paymentDate": "2026-11-20T10:00:00Z", "paymentMethod": "CASH", "notes": "lunas"}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["status"], "PENDING_PAYMENT");
    assert_eq!(res.json["paymentDate"], "2026-11-20T10:00:00Z");
    assert_eq!(res.json["paymentMethod"], "CASH");
    assert_eq!(res.json["notes"], "lunas");
    assert_eq!(
        patch(&id3, json!({"status": "ACTIVE"})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        patch(&id3, json!({"status": "CANCELLED"})).await.status,
        StatusCode::OK
    );
    assert_eq!(unit_status(&app, units[2].1).await, "AVAILABLE");
    expect_event(&mut ws, "A3", "AVAILABLE").await;

    // Bad bodies.
    let res = patch(&id3, json!({"status": "LOST"})).await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let res = patch(&id3, json!({"bogus": 1})).await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    patch(&Uuid::now_v7().to_string(), json!({"status": "ACTIVE"}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    // Every booking change left an audit row.
    let res = app
        .get(
            &format!("/api/v1/admin/audit-log?filters[entityId][$eq]={id}&filters[entityType][$eq]=booking"),
            Some(&admin),
        )
        .await;
    let actions: Vec<&str> = res.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert!(actions.contains(&"booking.created"));
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "booking.status_changed")
            .count(),
        2
    );
}

#[actix_web::test]
async fn an_unpaid_hold_expires_and_frees_the_unit_within_ten_seconds() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 2).await;
    let mut ws = subscribe(&app, project).await;
    let held = book(&app, &admin, units[0].1, inline_customer(1))
        .await
        .json;
    let paid = book(&app, &admin, units[1].1, inline_customer(2))
        .await
        .json;
    let held_id = held["id"].as_str().unwrap();
    let paid_id = paid["id"].as_str().unwrap();
    assert_eq!(ws.recv().await["status"], "BOOKED");
    assert_eq!(ws.recv().await["status"], "BOOKED");
    let res = app
        .patch(
            &format!("/api/v1/bookings/{paid_id}"),
            Some(&admin),
            &json!({"status": "ACTIVE", "paymentStatus": "PAID"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);

    // Not yet due: nothing happens.
    app.clock.advance(chrono::Duration::minutes(59));
    assert_eq!(app.state.services.expire_holds().await.unwrap(), 0);
    assert_eq!(
        booking_status(&app, &admin, held_id).await,
        "PENDING_PAYMENT"
    );

    app.clock.advance(chrono::Duration::minutes(2));
    // The background task (every 200 ms in tests) cancels it: wait for its event.
    let ev = ws
        .recv_within(Duration::from_secs(10))
        .await
        .expect("an expiry event within 10 s");
    assert_eq!(ev["blockNumber"], "A1");
    assert_eq!(ev["status"], "AVAILABLE");
    assert_eq!(ev["seq"], 3);
    assert_eq!(booking_status(&app, &admin, held_id).await, "CANCELLED");
    assert_eq!(unit_status(&app, units[0].1).await, "AVAILABLE");
    // The paid booking is untouched.
    assert_eq!(booking_status(&app, &admin, paid_id).await, "ACTIVE");
    assert_eq!(unit_status(&app, units[1].1).await, "BOOKED");
    let res = app
        .get(
            &format!("/api/v1/admin/audit-log?filters[entityId][$eq]={held_id}&filters[action][$eq]=booking.expired"),
            Some(&admin),
        )
        .await;
    assert_eq!(res.json["meta"]["pagination"]["total"], 1);
    assert!(res.json["data"][0]["actorId"].is_null());
}

#[actix_web::test]
async fn expiry_racing_a_payment_cancels_the_hold_exactly_once_200_times() {
    // Contract v1.1: hold expiry is exact. A payment after `expiresAt` never wins: it answers 409
    // `hold_expired` and cancels the hold itself if the sweeper has not yet, with one unit event
    // whoever cancels. The background task is slowed down so the two racers below are the only ones.
    let app = TestApp::spawn_with(SpawnOptions {
        expiry_every: Duration::from_secs(3600),
        ..SpawnOptions::default()
    })
    .await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 200).await;
    let (mut by_sweeper, mut by_request) = (0, 0);
    for (i, (_, unit)) in units.iter().enumerate() {
        let res = book(&app, &admin, *unit, inline_customer(i)).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
        let id = res.json["id"].as_str().unwrap().to_owned();
        app.clock.advance(chrono::Duration::minutes(61));
        let path = format!("/api/v1/bookings/{id}");
        let body = json!({"status": "ACTIVE", "paymentStatus": "PAID"});
        let (cancelled, payment) = futures_util::join!(
            app.state.services.expire_holds(),
            app.patch(&path, Some(&admin), &body)
        );
        let cancelled = cancelled.unwrap();
        payment.assert_problem(StatusCode::CONFLICT, "hold_expired");
        assert_eq!(booking_status(&app, &admin, &id).await, "CANCELLED");
        assert_eq!(unit_status(&app, *unit).await, "AVAILABLE");
        match cancelled {
            0 => by_request += 1,
            1 => by_sweeper += 1,
            n => panic!("iteration {i}: the sweeper cancelled {n}"),
        }
    }
    // BOOKED then AVAILABLE for each unit: exactly one event per change.
    let events = kavling_core::entities::unit_events::Entity::find()
        .filter(kavling_core::entities::unit_events::Column::ProjectId.eq(project))
        .count(&app.state.services.db)
        .await
        .unwrap();
    assert_eq!(events, 400);
    eprintln!(
        "expiry vs payment: {by_sweeper} cancelled by the sweeper, {by_request} by the request"
    );
}

#[actix_web::test]
async fn customers_validate_identifiers_and_mask_them_for_marketing() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, marketing) = app.user(Role::Marketing, false).await;
    let (_, buyer) = app.user(Role::Buyer, true).await;
    let cases: &[(Value, Option<&str>)] = &[
        (
            json!({"name": "Budi", "phone": "081234567890", "ktpNumber": "3201011505900001"}),
            None,
        ),
        (
            json!({"name": "Ani", "phone": "+62 812-3456-7891", "ktpNumber": "3174 0169 0200 0003", "npwpNumber": "01.234.567.8-901.234"}),
            None,
        ),
        (
            json!({"name": "Dewi", "phone": "6281298765432", "email": "dewi@example.co.id"}),
            None,
        ),
        (
            json!({"name": "X", "phone": "081234567890", "ktpNumber": "0001011505900001"}),
            Some("ktpNumber"),
        ),
        (
            json!({"name": "X", "phone": "081234567890", "ktpNumber": "3201013202900001"}),
            Some("ktpNumber"),
        ),
        (
            json!({"name": "X", "phone": "081234567890", "ktpNumber": "320101150590001"}),
            Some("ktpNumber"),
        ),
        (
            json!({"name": "X", "phone": "081234567890", "npwpNumber": "1234567890123"}),
            Some("npwpNumber"),
        ),
        (json!({"name": "X", "phone": "0215551234"}), Some("phone")),
        (json!({"name": "X", "phone": "08123"}), Some("phone")),
        (
            json!({"name": "X", "phone": "081234567890", "email": "not-an-email"}),
            Some("email"),
        ),
        (json!({"name": " ", "phone": "081234567890"}), Some("name")),
    ];
    for (body, bad) in cases {
        let res = app.post("/api/v1/customers", Some(&admin), body).await;
        match bad {
            None => assert_eq!(res.status, StatusCode::CREATED, "{body}: {}", res.json),
            Some(field) => {
                res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
                assert_eq!(res.json["errors"][0]["field"], *field, "{body}");
            }
        }
    }
    // Duplicate NIK, even written differently.
    app.post(
        "/api/v1/customers",
        Some(&marketing),
        &json!({"name": "Budi Lagi", "phone": "081111111111", "ktpNumber": "3201-0115-0590-0001"}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "duplicate_customer");
    app.post(
        "/api/v1/customers",
        Some(&buyer),
        &json!({"name": "B", "phone": "081111111111"}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    // Stored encrypted: the clear NIK is nowhere in the row.
    let rows = customers::Entity::find()
        .all(&app.state.services.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let budi = rows.iter().find(|c| c.name == "Budi").unwrap();
    let enc = budi.ktp_encrypted.as_deref().unwrap();
    assert!(!enc.contains("3201011505900001"));
    assert_eq!(budi.ktp_hash.as_deref().unwrap().len(), 64);
    assert_eq!(budi.phone, "+6281234567890");

    let path = format!("/api/v1/customers/{}", budi.id);
    let whole = app.get(&path, Some(&admin)).await;
    assert_eq!(whole.json["ktpNumber"], "3201011505900001");
    let masked = app.get(&path, Some(&marketing)).await;
    assert_eq!(masked.status, StatusCode::OK);
    assert_eq!(masked.json["ktpNumber"], "3201********0001");
    let ani = app
        .get("/api/v1/customers?filters[name][$eq]=Ani", Some(&marketing))
        .await;
    assert_eq!(ani.json["meta"]["pagination"]["total"], 1);
    assert_eq!(ani.json["data"][0]["ktpNumber"], "3174********0003");
    assert_eq!(ani.json["data"][0]["npwpNumber"], "0012********1234");
    assert_eq!(ani.json["data"][0]["phone"], "+6281234567891");
    let list = app
        .get("/api/v1/customers?sort=name:asc", Some(&admin))
        .await;
    let names: Vec<&str> = list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Ani", "Budi", "Dewi"]);
    assert_eq!(list.json["data"][0]["npwpNumber"], "0012345678901234");
    app.get("/api/v1/customers?filters[ktpHash][$eq]=x", Some(&admin))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_query");
    app.get(&path, Some(&buyer))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.get(
        &format!("/api/v1/customers/{}", Uuid::now_v7()),
        Some(&admin),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[actix_web::test]
async fn csv_export_streams_the_filtered_bookings_with_names() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, marketing) = app.user(Role::Marketing, true).await;
    let (_, units) = app.project_with_units(&admin, 3).await;
    book(
        &app,
        &admin,
        units[0].1,
        json!({"name": "=HYPERLINK(\"x\")", "phone": "081200000001"}),
    )
    .await;
    book(
        &app,
        &marketing,
        units[1].1,
        json!({"name": "Rina, S.E.", "phone": "081200000002"}),
    )
    .await;
    let third = book(&app, &admin, units[2].1, inline_customer(3))
        .await
        .json;
    app.send(
        Method::DELETE,
        &format!("/api/v1/bookings/{}", third["id"].as_str().unwrap()),
        Some(&admin),
        None,
    )
    .await;

    let res = app
        .get(
            "/api/v1/bookings/export.csv?filters[status][$eq]=PENDING_PAYMENT",
            Some(&admin),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.header("content-type").unwrap().starts_with("text/csv"));
    let mut reader = csv::Reader::from_reader(res.bytes.as_slice());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "bookingCode");
    assert!(headers.iter().any(|h| h == "unitBlockNumber"));
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][col("unitBlockNumber")], "A1");
    assert_eq!(&rows[0][col("customerName")], "'=HYPERLINK(\"x\")");
    assert_eq!(&rows[1][col("unitBlockNumber")], "A2");
    assert_eq!(&rows[1][col("customerName")], "Rina, S.E.");
    assert_eq!(&rows[1][col("marketingName")], "Test User");
    assert_eq!(&rows[1][col("status")], "PENDING_PAYMENT");
    assert_eq!(&rows[1][col("bookingFee")], "5000000");

    // Marketing exports only their own; a bad filter is a 400 before any CSV.
    let res = app
        .get("/api/v1/bookings/export.csv", Some(&marketing))
        .await;
    let n = csv::Reader::from_reader(res.bytes.as_slice())
        .records()
        .count();
    assert_eq!(n, 1);
    app.get(
        "/api/v1/bookings/export.csv?filters[nope][$eq]=1",
        Some(&admin),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "invalid_query");
    app.get("/api/v1/bookings/export.csv", None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[actix_web::test]
async fn csv_export_spans_many_pages() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 520).await;
    for chunk in units.chunks(40) {
        join_all(
            chunk
                .iter()
                .map(|(_, u)| book(&app, &admin, *u, inline_customer(1))),
        )
        .await;
    }
    let res = app.get("/api/v1/bookings/export.csv", Some(&admin)).await;
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(res.bytes.as_slice())
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 520);
    let codes: HashSet<String> = rows.iter().map(|r| r[0].to_owned()).collect();
    assert_eq!(codes.len(), 520);
}

/// Sends a multipart upload; `file` is None to leave the file part out.
async fn upload(
    app: &TestApp,
    token: &str,
    booking: &str,
    doc_type: &str,
    name: &str,
    file: Option<&[u8]>,
) -> TestResponse {
    app.post_multipart(
        &format!("/api/v1/bookings/{booking}/documents"),
        token,
        &[("documentType", doc_type), ("documentName", name)],
        file.map(|bytes| ("../../etc/passwd", bytes)),
    )
    .await
}

fn pdf(len: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    v.resize(len, b' ');
    v
}

#[actix_web::test]
async fn documents_are_typed_by_content_capped_stored_safely_and_verified_by_admins() {
    let app = TestApp::spawn().await;
    let (admin_id, admin) = app.admin().await;
    let (_, marketing) = app.user(Role::Marketing, true).await;
    let (_, other) = app.user(Role::Marketing, true).await;
    let (_, units) = app.project_with_units(&admin, 1).await;
    let b = book(&app, &marketing, units[0].1, inline_customer(1))
        .await
        .json;
    let id = b["id"].as_str().unwrap();

    let ktp = pdf(2048);
    let res = upload(&app, &marketing, id, "ktp", "KTP Siti", Some(&ktp)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    assert_eq!(res.json["contentType"], "application/pdf");
    assert_eq!(res.json["sizeBytes"], 2048);
    assert_eq!(res.json["verified"], false);
    let doc_id = res.json["id"].as_str().unwrap().to_owned();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    let res = upload(&app, &marketing, id, "slip-gaji", "Slip", Some(&png)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    assert_eq!(res.json["contentType"], "image/png");
    let jpeg = [
        0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0, 1,
    ];
    let res = upload(&app, &admin, id, "kk", "KK", Some(&jpeg)).await;
    assert_eq!(res.json["contentType"], "image/jpeg", "{}", res.json);
    // Exactly 5 MiB is accepted.
    let res = upload(
        &app,
        &marketing,
        id,
        "lainnya",
        "Besar",
        Some(&pdf(5 << 20)),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);

    // Refused: by content (whatever the client claims), by size, by field.
    for bad in [
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec(),
        b"GIF89a\x01\x00\x01\x00".to_vec(),
        b"just text, named passwd".to_vec(),
    ] {
        upload(&app, &marketing, id, "ktp", "X", Some(&bad))
            .await
            .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    upload(&app, &marketing, id, "ktp", "X", Some(&pdf((5 << 20) + 1)))
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large");
    // A name over the form field's limit is a bad value (the schema's maxLength), not a big file.
    let res = upload(&app, &marketing, id, "ktp", &"N".repeat(2048), Some(&ktp)).await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(res.json["errors"][0]["field"], "documentName");
    let res = upload(&app, &marketing, id, "paspor", "X", Some(&ktp)).await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(res.json["errors"][0]["field"], "documentType");
    let res = upload(&app, &marketing, id, "ktp", "X", None).await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(res.json["errors"][0]["field"], "file");
    app.post(
        &format!("/api/v1/bookings/{id}/documents"),
        Some(&marketing),
        &json!({"file": "x"}),
    )
    .await
    .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    upload(&app, &other, id, "ktp", "X", Some(&ktp))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    // Stored under generated names only, in the storage directory.
    let dir = app.storage.path().join("booking-documents");
    let stored: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert!(
        stored
            .iter()
            .all(|n| !n.contains("passwd") && n.len() <= 40)
    );

    let list = app
        .get(
            &format!("/api/v1/bookings/{id}/documents"),
            Some(&marketing),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json.as_array().unwrap().len(), 4);

    let res = app
        .get(
            &format!("/api/v1/booking-documents/{doc_id}/file"),
            Some(&marketing),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.bytes, ktp);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("application/pdf")
    );
    assert_eq!(
        res.header("content-disposition").as_deref(),
        Some("attachment; filename=\"KTP_Siti.pdf\"")
    );
    assert_eq!(
        res.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    app.get(
        &format!("/api/v1/booking-documents/{doc_id}/file"),
        Some(&other),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get(&format!("/api/v1/booking-documents/{doc_id}/file"), None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");

    // Verification: admins only; sets and clears verifiedBy/verifiedDate.
    let path = format!("/api/v1/booking-documents/{doc_id}");
    app.patch(&path, Some(&marketing), &json!({"verified": true}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let res = app
        .patch(
            &path,
            Some(&admin),
            &json!({"verified": true, "notes": "cocok"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["verified"], true);
    assert_eq!(res.json["verifiedBy"], admin_id.to_string());
    assert!(res.json["verifiedDate"].is_string());
    assert_eq!(res.json["notes"], "cocok");
    let res = app
        .patch(&path, Some(&admin), &json!({"verified": false}))
        .await;
    assert_eq!(res.json["verified"], false);
    assert!(res.json["verifiedBy"].is_null());
    app.patch(
        &format!("/api/v1/booking-documents/{}", Uuid::now_v7()),
        Some(&admin),
        &json!({"verified": true}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[actix_web::test]
async fn a_deleted_booking_is_gone_from_the_api_while_a_cancelled_one_stays() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, marketing) = app.user(Role::Marketing, true).await;
    let (project, units) = app.project_with_units(&admin, 2).await;
    let mut ws = subscribe(&app, project).await;
    let gone = book(&app, &marketing, units[0].1, inline_customer(1))
        .await
        .json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = book(&app, &marketing, units[1].1, inline_customer(2))
        .await
        .json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ws.recv().await["status"], "BOOKED");
    assert_eq!(ws.recv().await["status"], "BOOKED");
    // The booking to delete gets a document and an invoice first.
    let res = upload(&app, &marketing, &gone, "ktp", "KTP", Some(&pdf(1024))).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let doc = res.json["id"].as_str().unwrap().to_owned();
    use kavling_core::clock::Clock;
    let due = (app.clock.now() + chrono::Duration::days(10))
        .date_naive()
        .to_string();
    let item = json!({"items": [{"kind": "INSTALLMENT", "amount": 1_000_000, "dueDate": due}]});
    let res = app
        .post(
            &format!("/api/v1/bookings/{gone}/schedule"),
            Some(&marketing),
            &item,
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let invoice = res.json[0]["id"].as_str().unwrap().to_owned();

    // DELETE cancels (the unit is free again, with its event) and deletes softly.
    let path = format!("/api/v1/bookings/{gone}");
    let res = app
        .send(Method::DELETE, &path, Some(&marketing), None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["status"], "CANCELLED");
    let ev = ws.recv().await;
    assert_eq!(
        (ev["blockNumber"].as_str(), ev["status"].as_str()),
        (Some("A1"), Some("AVAILABLE"))
    );
    assert_eq!(unit_status(&app, units[0].1).await, "AVAILABLE");

    // From then on the booking and everything reached through it answer 404, for everyone.
    for token in [&admin, &marketing] {
        app.get(&path, Some(token))
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
        for sub in ["documents", "invoices"] {
            app.get(&format!("{path}/{sub}"), Some(token))
                .await
                .assert_problem(StatusCode::NOT_FOUND, "not_found");
        }
        app.get(
            &format!("/api/v1/booking-documents/{doc}/file"),
            Some(token),
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
        app.get(&format!("/api/v1/invoices/{invoice}"), Some(token))
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    app.patch(&path, Some(&admin), &json!({"notes": "x"}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.send(Method::DELETE, &path, Some(&admin), None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    upload(&app, &marketing, &gone, "ktp", "KTP", Some(&pdf(1024)))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.post(&format!("{path}/schedule"), Some(&admin), &item)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.patch(
        &format!("/api/v1/booking-documents/{doc}"),
        Some(&admin),
        &json!({"verified": true}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    app.submit_payment(&admin, &invoice, "1000000", Some(png))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // The lists and exports leave it out.
    for token in [&admin, &marketing] {
        let res = app.get("/api/v1/bookings", Some(token)).await;
        assert_eq!(res.json["meta"]["pagination"]["total"], 1, "{}", res.json);
        assert_eq!(res.json["data"][0]["id"], kept.as_str());
        let res = app.get("/api/v1/bookings/export.csv", Some(token)).await;
        let rows = csv::Reader::from_reader(res.bytes.as_slice())
            .records()
            .count();
        assert_eq!(rows, 1);
        let res = app.get("/api/v1/invoices", Some(token)).await;
        assert_eq!(res.json["meta"]["pagination"]["total"], 0, "{}", res.json);
    }
    // The row stays: code, audit trail (`booking.deleted`), status.
    let row = bookings::Entity::find_by_id(Uuid::parse_str(&gone).unwrap())
        .one(&app.state.services.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "CANCELLED");
    assert!(row.deleted_at.is_some() && row.cancelled_at.is_some());
    let actions: Vec<Value> = audit_actions(&app, &admin, "booking", &gone)
        .await
        .iter()
        .map(|a| a["action"].clone())
        .collect();
    assert!(actions.contains(&json!("booking.deleted")), "{actions:?}");

    // Cancelled by PATCH is not deleted: still readable with its documents, and DELETE refuses it.
    let kept_path = format!("/api/v1/bookings/{kept}");
    let res = app
        .patch(
            &kept_path,
            Some(&marketing),
            &json!({"status": "CANCELLED"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(booking_status(&app, &marketing, &kept).await, "CANCELLED");
    app.send(Method::DELETE, &kept_path, Some(&admin), None)
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    assert_eq!(booking_status(&app, &admin, &kept).await, "CANCELLED");
    let res = app
        .get(&format!("{kept_path}/documents"), Some(&admin))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let res = app.get("/api/v1/bookings", Some(&admin)).await;
    assert_eq!(res.json["meta"]["pagination"]["total"], 1);
}
