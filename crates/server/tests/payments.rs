//! Payments after the booking over real HTTP and WebSocket against a real database: schedules and
//! gap-free invoice numbers, proofs checked by content, verification with exactly one effect, the
//! booking lifecycle it drives (one unit event), voiding on cancel, exact hold expiry (also racing
//! the sweeper), and the overdue job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use actix_web::http::StatusCode;
use common::{SpawnOptions, TestApp, TestResponse};
use futures_util::future::join_all;
use kavling_core::domain::Role;
use serde_json::{Value, json};
use uuid::Uuid;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// Today's date in Jakarta by the app's clock, shifted by `days`.
fn wib_date(app: &TestApp, days: i64) -> String {
    use kavling_core::clock::Clock;
    let now = app.clock.now() + chrono::Duration::hours(7) + chrono::Duration::days(days);
    now.date_naive().to_string()
}

async fn book(app: &TestApp, token: &str, unit: Uuid, i: usize) -> String {
    let res = app
        .post(
            "/api/v1/bookings",
            Some(token),
            &json!({"unitId": unit, "customer": {"name": format!("Pembeli {i}"), "phone": format!("0812{:08}", i)}, "bookingFee": 5_000_000}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    res.json["id"].as_str().unwrap().to_owned()
}

async fn schedule(app: &TestApp, token: &str, booking: &str, items: Value) -> TestResponse {
    app.post(
        &format!("/api/v1/bookings/{booking}/schedule"),
        Some(token),
        &json!({ "items": items }),
    )
    .await
}

async fn pay(
    app: &TestApp,
    token: &str,
    invoice: &str,
    amount: &str,
    file: Option<&[u8]>,
) -> TestResponse {
    app.submit_payment(token, invoice, amount, file).await
}

async fn decide(app: &TestApp, admin: &str, payment: &str, body: Value) -> TestResponse {
    app.patch(&format!("/api/v1/payments/{payment}"), Some(admin), &body)
        .await
}

async fn get_json(app: &TestApp, token: &str, path: &str) -> Value {
    let res = app.get(path, Some(token)).await;
    assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.json);
    res.json
}

async fn subscribe(app: &TestApp, project: Uuid) -> common::WsClient {
    let mut ws = app.ws(None).await;
    ws.send(&json!({"op": "subscribe", "channel": format!("project:{project}")}))
        .await;
    assert_eq!(ws.recv().await["type"], "snapshot");
    assert_eq!(ws.recv().await["type"], "subscribed");
    ws
}

/// Unit events of a project from the database (every change writes exactly one).
async fn unit_events(app: &TestApp, project: Uuid) -> Vec<(String, String)> {
    use kavling_core::entities::unit_events;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    unit_events::Entity::find()
        .filter(unit_events::Column::ProjectId.eq(project))
        .order_by_asc(unit_events::Column::Seq)
        .all(&app.state.services.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.block_number, e.new_status))
        .collect()
}

#[actix_web::test]
async fn schedules_validate_number_and_list_with_the_list_conventions() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, marketing) = app.user(Role::Marketing, true).await;
    let (_, other) = app.user(Role::Marketing, true).await;
    let (_, buyer) = app.user(Role::Buyer, true).await;
    let (_, units) = app.project_with_units(&admin, 2).await;
    let booking = book(&app, &marketing, units[0].1, 1).await;
    let due = wib_date(&app, 3);
    let year = wib_date(&app, 0)[..4].to_owned();

    let res = schedule(
        &app,
        &marketing,
        &booking,
        json!([
            {"kind": "BOOKING_FEE", "amount": 5_000_000, "dueDate": due},
            {"kind": "DOWN_PAYMENT", "amount": 45_000_000, "dueDate": wib_date(&app, 30)},
        ]),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let created = res.json.as_array().unwrap().clone();
    assert_eq!(created[0]["invoiceNumber"], format!("INV-{year}-001"));
    assert_eq!(created[0]["code"], created[0]["invoiceNumber"]);
    assert_eq!(created[1]["invoiceNumber"], format!("INV-{year}-002"));
    assert_eq!(created[0]["status"], "UNPAID");
    assert_eq!(created[0]["paidAmount"], 0);
    assert_eq!(created[0]["amount"], 5_000_000);
    assert_eq!(created[0]["dueDate"], due);
    assert_eq!(created[0]["bookingId"], booking.as_str());
    assert!(created[0]["paidAt"].is_null());

    // Validation: 422 with field errors, and nothing numbered.
    for (items, field) in [
        (json!([]), "items"),
        (
            json!([{"kind": "KPR", "amount": 0, "dueDate": due}]),
            "items[0].amount",
        ),
        (
            json!([{"kind": "KPR", "amount": 10_000_000_000_001_i64, "dueDate": due}]),
            "items[0].amount",
        ),
    ] {
        let res = schedule(&app, &admin, &booking, items.clone()).await;
        res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.json["errors"][0]["field"], field, "{items}");
    }
    // Posting again adds items, but a second booking fee never: a conflict with the booking's
    // state (409), where two in one request are malformed (422, the schema's maxContains).
    schedule(
        &app,
        &admin,
        &booking,
        json!([{"kind": "BOOKING_FEE", "amount": 1, "dueDate": due}]),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "duplicate_booking_fee");
    let too_many: Vec<Value> = (0..61)
        .map(|_| json!({"kind": "INSTALLMENT", "amount": 1, "dueDate": due}))
        .collect();
    schedule(&app, &admin, &booking, Value::Array(too_many))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    for bad in [
        json!([{"kind": "KPR", "amount": 1, "dueDate": "2026-02-30"}]),
        json!([{"kind": "LOAN", "amount": 1, "dueDate": due}]),
        json!([{"kind": "KPR", "amount": 1.5, "dueDate": due}]),
    ] {
        let res = schedule(&app, &admin, &booking, bad).await;
        res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    // Who may schedule.
    let item = json!([{"kind": "INSTALLMENT", "amount": 1_000_000, "dueDate": due}]);
    schedule(&app, &other, &booking, item.clone())
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    schedule(&app, &buyer, &booking, item.clone())
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    schedule(&app, &admin, &Uuid::now_v7().to_string(), item.clone())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let res = schedule(&app, &admin, &booking, item.clone()).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    assert_eq!(res.json[0]["invoiceNumber"], format!("INV-{year}-003"));

    // Lists.
    let page = get_json(
        &app,
        &marketing,
        &format!("/api/v1/bookings/{booking}/invoices"),
    )
    .await;
    assert_eq!(page["meta"]["pagination"]["total"], 3);
    assert_eq!(page["data"][0]["kind"], "BOOKING_FEE");
    let page = get_json(
        &app,
        &admin,
        &format!(
            "/api/v1/invoices?filters[bookingId][$eq]={booking}&filters[kind][$eq]=DOWN_PAYMENT"
        ),
    )
    .await;
    assert_eq!(page["meta"]["pagination"]["total"], 1);
    let page = get_json(
        &app,
        &admin,
        &format!(
            "/api/v1/invoices?filters[dueDate][$lte]={due}&filters[status][$in][0]=UNPAID&sort=amount:desc"
        ),
    )
    .await;
    assert_eq!(page["meta"]["pagination"]["total"], 2);
    assert_eq!(page["data"][0]["amount"], 5_000_000);
    let page = get_json(
        &app,
        &admin,
        &format!("/api/v1/invoices?filters[dueDate][$eq]={due}"),
    )
    .await;
    assert_eq!(page["meta"]["pagination"]["total"], 2);
    // The other marketing user sees none of it.
    let page = get_json(&app, &other, "/api/v1/invoices").await;
    assert_eq!(page["meta"]["pagination"]["total"], 0);
    app.get(
        &format!("/api/v1/bookings/{booking}/invoices"),
        Some(&other),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let id = created[0]["id"].as_str().unwrap();
    app.get(&format!("/api/v1/invoices/{id}"), Some(&other))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let one = get_json(&app, &marketing, &format!("/api/v1/invoices/{id}")).await;
    assert_eq!(one["invoiceNumber"], created[0]["invoiceNumber"]);
    for bad in [
        "/api/v1/invoices?filters[secret][$eq]=1",
        "/api/v1/invoices?filters[status][$containsi]=PAID",
        "/api/v1/invoices?filters[dueDate][$gte]=yesterday",
        "/api/v1/invoices?sort=nope:asc",
    ] {
        app.get(bad, Some(&admin))
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "invalid_query");
    }

    // The export: the filtered list as CSV.
    let res = app
        .get(
            &format!("/api/v1/invoices/export.csv?filters[bookingId][$eq]={booking}"),
            Some(&admin),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("text/csv; charset=utf-8")
    );
    let text = String::from_utf8(res.bytes.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("invoiceNumber,bookingCode,kind,amount"));
    assert!(
        lines[1].contains(&format!(
            "INV-{year}-001,BK-{year}-001,BOOKING_FEE,5000000,0,{due},UNPAID"
        )),
        "{text}"
    );
    app.get(
        "/api/v1/invoices/export.csv?filters[x][$eq]=1",
        Some(&admin),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "invalid_query");

    // A cancelled booking takes no new invoices, and its open ones are voided.
    let res = app
        .patch(
            &format!("/api/v1/bookings/{booking}"),
            Some(&admin),
            &json!({"status": "CANCELLED"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let page = get_json(
        &app,
        &admin,
        &format!("/api/v1/bookings/{booking}/invoices"),
    )
    .await;
    for inv in page["data"].as_array().unwrap() {
        assert_eq!(inv["status"], "VOID", "{inv}");
    }
    schedule(&app, &admin, &booking, item.clone())
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    // A deleted one (DELETE, a soft delete) is not there at all any more.
    let other_booking = book(&app, &marketing, units[1].1, 2).await;
    let res = app
        .send(
            actix_web::http::Method::DELETE,
            &format!("/api/v1/bookings/{other_booking}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    app.get(
        &format!("/api/v1/bookings/{other_booking}/invoices"),
        Some(&admin),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    schedule(&app, &admin, &other_booking, item)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let audit = get_json(
        &app,
        &admin,
        &format!("/api/v1/admin/audit-log?filters[entityId][$eq]={id}"),
    )
    .await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"invoice.created"), "{actions:?}");
    assert!(actions.contains(&"invoice.voided"), "{actions:?}");
}

#[actix_web::test]
async fn concurrent_schedules_get_gap_free_unique_invoice_numbers() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 20).await;
    let mut bookings = Vec::new();
    for (i, (_, unit)) in units.iter().enumerate() {
        bookings.push(book(&app, &admin, *unit, i).await);
    }
    let due = wib_date(&app, 10);
    let results = join_all(bookings.iter().map(|b| {
        schedule(
            &app,
            &admin,
            b,
            json!([
                {"kind": "BOOKING_FEE", "amount": 1_000_000, "dueDate": due},
                {"kind": "INSTALLMENT", "amount": 2_000_000, "dueDate": due},
                {"kind": "KPR", "amount": 3_000_000, "dueDate": due},
            ]),
        )
    }))
    .await;
    let mut numbers = HashSet::new();
    for r in &results {
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        let mut last = 0;
        for inv in r.json.as_array().unwrap() {
            let n: i64 = inv["invoiceNumber"]
                .as_str()
                .unwrap()
                .rsplit('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            // One request's invoices are consecutive.
            assert!(last == 0 || n == last + 1);
            last = n;
            assert!(numbers.insert(n), "duplicate {n}");
        }
    }
    assert_eq!(numbers, (1..=60).collect::<HashSet<i64>>());
}

#[actix_web::test]
async fn proofs_verification_and_the_booking_lifecycle() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, marketing) = app.user(Role::Marketing, true).await;
    let (_, other) = app.user(Role::Marketing, true).await;
    let (project, units) = app.project_with_units(&admin, 1).await;
    let mut ws = subscribe(&app, project).await;
    let booking = book(&app, &marketing, units[0].1, 1).await;
    assert_eq!(ws.recv().await["status"], "BOOKED");
    let res = schedule(
        &app,
        &marketing,
        &booking,
        json!([
            {"kind": "BOOKING_FEE", "amount": 5_000_000, "dueDate": wib_date(&app, 1)},
            {"kind": "DOWN_PAYMENT", "amount": 45_000_000, "dueDate": wib_date(&app, 30)},
        ]),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let fee = res.json[0]["id"].as_str().unwrap().to_owned();
    let dp = res.json[1]["id"].as_str().unwrap().to_owned();

    // The proof is judged by content and size; only the booking's marketing user or an admin pays.
    pay(
        &app,
        &marketing,
        &fee,
        "5000000",
        Some(b"GIF89a\x01\x00\x01\x00"),
    )
    .await
    .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let mut big = PNG.to_vec();
    big.resize(5 * 1024 * 1024 + 1, 0);
    pay(&app, &marketing, &fee, "5000000", Some(&big))
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large");
    pay(&app, &marketing, &fee, "5000000", None)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    pay(&app, &other, &fee, "5000000", Some(PNG))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    pay(&app, &marketing, &fee, "5000001", Some(PNG))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let res = pay(&app, &marketing, &fee, "abc", Some(PNG)).await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // A first payment, rejected with a reason the marketing user sees.
    let res = pay(&app, &marketing, &fee, "5000000", Some(PNG)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let first = res.json.clone();
    assert_eq!(first["status"], "AWAITING_VERIFICATION");
    assert!(first["reason"].is_null());
    assert!(first["verifiedAt"].is_null());
    assert_eq!(first["amount"], 5_000_000);
    assert_eq!(first["method"], "TRANSFER");
    assert_eq!(first["paidAt"], "2026-12-03T03:00:00Z");
    assert_eq!(first["invoiceId"], fee.as_str());
    let first_id = first["id"].as_str().unwrap().to_owned();
    let inv = get_json(&app, &marketing, &format!("/api/v1/invoices/{fee}")).await;
    assert_eq!(inv["status"], "AWAITING_VERIFICATION");
    // Awaiting payments count against the amount too.
    pay(&app, &marketing, &fee, "1", Some(PNG))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // The proof download: attachment, nosniff, no-store; the colleague cannot.
    let res = app
        .get(first["proofUrl"].as_str().unwrap(), Some(&admin))
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.bytes, PNG);
    assert_eq!(res.header("content-type").as_deref(), Some("image/png"));
    assert!(
        res.header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    assert!(!res.header("content-disposition").unwrap().contains("bukti"));
    assert_eq!(
        res.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(res.header("cache-control").unwrap().contains("no-store"));
    assert_eq!(
        app.get(first["proofUrl"].as_str().unwrap(), Some(&marketing))
            .await
            .status,
        StatusCode::OK
    );
    app.get(first["proofUrl"].as_str().unwrap(), Some(&other))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    // The queue.
    let queue = get_json(
        &app,
        &admin,
        "/api/v1/payments?filters[status][$eq]=AWAITING_VERIFICATION",
    )
    .await;
    assert_eq!(queue["meta"]["pagination"]["total"], 1);
    assert_eq!(queue["data"][0]["bookingId"], booking.as_str());

    decide(&app, &marketing, &first_id, json!({"verified": true}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    decide(&app, &admin, &first_id, json!({"verified": false}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    decide(
        &app,
        &admin,
        &first_id,
        json!({"verified": false, "reason": "x".repeat(501)}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let res = decide(
        &app,
        &admin,
        &first_id,
        json!({"verified": false, "reason": "Bukti buram"}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["status"], "REJECTED");
    let seen = get_json(&app, &marketing, &format!("/api/v1/payments/{first_id}")).await;
    assert_eq!(seen["status"], "REJECTED");
    assert_eq!(seen["reason"], "Bukti buram");
    assert!(seen["verifiedAt"].is_string());
    decide(&app, &admin, &first_id, json!({"verified": true}))
        .await
        .assert_problem(StatusCode::CONFLICT, "payment_already_decided");
    let inv = get_json(&app, &marketing, &format!("/api/v1/invoices/{fee}")).await;
    assert_eq!(inv["status"], "UNPAID");
    assert_eq!(inv["paidAmount"], 0);

    // Paid in two parts: the first verified leaves it UNPAID, the second makes it PAID and the
    // booking ACTIVE (no unit event: the unit stays BOOKED).
    let part = pay(&app, &marketing, &fee, "2000000", Some(PNG)).await.json;
    let res = decide(
        &app,
        &admin,
        part["id"].as_str().unwrap(),
        json!({"verified": true}),
    )
    .await;
    assert_eq!(res.json["status"], "VERIFIED", "{}", res.json);
    let inv = get_json(&app, &marketing, &format!("/api/v1/invoices/{fee}")).await;
    assert_eq!(inv["status"], "UNPAID");
    assert_eq!(inv["paidAmount"], 2_000_000);
    let rest = pay(&app, &marketing, &fee, "3000000", Some(PNG)).await.json;
    let res = decide(
        &app,
        &admin,
        rest["id"].as_str().unwrap(),
        json!({"verified": true}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let inv = get_json(&app, &marketing, &format!("/api/v1/invoices/{fee}")).await;
    assert_eq!(inv["status"], "PAID");
    assert_eq!(inv["paidAmount"], 5_000_000);
    assert!(inv["paidAt"].is_string());
    let b = get_json(&app, &admin, &format!("/api/v1/bookings/{booking}")).await;
    assert_eq!(b["status"], "ACTIVE");
    assert_eq!(b["paymentStatus"], "PAID");
    assert_eq!(b["paymentMethod"], "TRANSFER");
    // A PAID invoice takes no more payments.
    pay(&app, &marketing, &fee, "1", Some(PNG))
        .await
        .assert_problem(StatusCode::CONFLICT, "invoice_not_payable");

    // The last invoice paid: COMPLETED, the unit SOLD, exactly one event.
    let res = pay(
        &app,
        &admin,
        &dp,
        "45000000",
        Some(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    assert_eq!(res.json["proofContentType"], "application/pdf");
    let res = decide(
        &app,
        &admin,
        res.json["id"].as_str().unwrap(),
        json!({"verified": true}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let b = get_json(&app, &admin, &format!("/api/v1/bookings/{booking}")).await;
    assert_eq!(b["status"], "COMPLETED");
    assert_eq!(b["unit"]["status"], "SOLD");
    let ev = ws.recv().await;
    assert_eq!(ev["status"], "SOLD");
    assert_eq!(ev["previousStatus"], "BOOKED");
    assert_eq!(ev["seq"], 2);
    assert!(ws.recv_within(Duration::from_millis(500)).await.is_none());
    assert_eq!(
        unit_events(&app, project).await,
        [("A1".into(), "BOOKED".into()), ("A1".into(), "SOLD".into())]
    );
    let audit = get_json(
        &app,
        &admin,
        &format!("/api/v1/admin/audit-log?filters[entityId][$eq]={booking}"),
    )
    .await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"booking.paid"), "{actions:?}");
    assert!(actions.contains(&"booking.completed"), "{actions:?}");
}

#[actix_web::test]
async fn a_hundred_concurrent_verifications_of_one_payment_have_one_effect() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 1).await;
    let booking = book(&app, &admin, units[0].1, 1).await;
    let res = schedule(
        &app,
        &admin,
        &booking,
        json!([{"kind": "BOOKING_FEE", "amount": 5_000_000, "dueDate": wib_date(&app, 1)}]),
    )
    .await;
    let fee = res.json[0]["id"].as_str().unwrap().to_owned();
    let payment = pay(&app, &admin, &fee, "5000000", Some(PNG)).await.json;
    let id = payment["id"].as_str().unwrap().to_owned();
    let results = join_all((0..100).map(|i| {
        decide(
            &app,
            &admin,
            &id,
            if i % 2 == 0 {
                json!({"verified": true})
            } else {
                json!({"verified": false, "reason": "duplicate click"})
            },
        )
    }))
    .await;
    let ok: Vec<&TestResponse> = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(ok.len(), 1);
    for r in results.iter().filter(|r| r.status != StatusCode::OK) {
        r.assert_problem(StatusCode::CONFLICT, "payment_already_decided");
    }
    let inv = get_json(&app, &admin, &format!("/api/v1/invoices/{fee}")).await;
    let b = get_json(&app, &admin, &format!("/api/v1/bookings/{booking}")).await;
    if ok[0].json["status"] == "VERIFIED" {
        assert_eq!(inv["paidAmount"], 5_000_000);
        assert_eq!(inv["status"], "PAID");
        // The only invoice: ACTIVE and at once COMPLETED, the unit SOLD with one event.
        assert_eq!(b["status"], "COMPLETED");
        assert_eq!(unit_events(&app, project).await.len(), 2);
    } else {
        assert_eq!(inv["paidAmount"], 0);
        assert_eq!(inv["status"], "UNPAID");
        assert_eq!(b["status"], "PENDING_PAYMENT");
        assert_eq!(unit_events(&app, project).await.len(), 1);
    }
}

#[actix_web::test]
async fn paying_a_lapsed_hold_cancels_it_whether_or_not_the_sweeper_ran() {
    // The sweeper is slowed down so only the requests below see the expiry.
    let app = TestApp::spawn_with(SpawnOptions {
        expiry_every: Duration::from_secs(3600),
        ..SpawnOptions::default()
    })
    .await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 2).await;

    // A payment submitted after expiry.
    let booking = book(&app, &admin, units[0].1, 1).await;
    let res = schedule(
        &app,
        &admin,
        &booking,
        json!([{"kind": "BOOKING_FEE", "amount": 5_000_000, "dueDate": wib_date(&app, 1)}]),
    )
    .await;
    let fee = res.json[0]["id"].as_str().unwrap().to_owned();
    app.clock.advance(chrono::Duration::minutes(61));
    pay(&app, &admin, &fee, "5000000", Some(PNG))
        .await
        .assert_problem(StatusCode::CONFLICT, "hold_expired");
    let b = get_json(&app, &admin, &format!("/api/v1/bookings/{booking}")).await;
    assert_eq!(b["status"], "CANCELLED");
    assert_eq!(b["unit"]["status"], "AVAILABLE");
    let inv = get_json(&app, &admin, &format!("/api/v1/invoices/{fee}")).await;
    assert_eq!(inv["status"], "VOID");
    // Again: still 409 `hold_expired`, nothing more happens.
    pay(&app, &admin, &fee, "5000000", Some(PNG))
        .await
        .assert_problem(StatusCode::CONFLICT, "hold_expired");
    app.patch(
        &format!("/api/v1/bookings/{booking}"),
        Some(&admin),
        &json!({"status": "ACTIVE"}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "hold_expired");

    // A payment submitted in time, verified after expiry.
    let booking = book(&app, &admin, units[1].1, 2).await;
    let res = schedule(
        &app,
        &admin,
        &booking,
        json!([{"kind": "BOOKING_FEE", "amount": 5_000_000, "dueDate": wib_date(&app, 1)}]),
    )
    .await;
    let fee = res.json[0]["id"].as_str().unwrap().to_owned();
    let payment = pay(&app, &admin, &fee, "5000000", Some(PNG)).await.json;
    app.clock.advance(chrono::Duration::minutes(61));
    decide(
        &app,
        &admin,
        payment["id"].as_str().unwrap(),
        json!({"verified": true}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "hold_expired");
    let b = get_json(&app, &admin, &format!("/api/v1/bookings/{booking}")).await;
    assert_eq!(b["status"], "CANCELLED");
    let p = get_json(
        &app,
        &admin,
        &format!("/api/v1/payments/{}", payment["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(p["status"], "REJECTED");
    assert_eq!(
        unit_events(&app, project).await,
        [
            ("A1".into(), "BOOKED".into()),
            ("A1".into(), "AVAILABLE".into()),
            ("A2".into(), "BOOKED".into()),
            ("A2".into(), "AVAILABLE".into()),
        ]
    );
}

#[actix_web::test]
async fn verifying_a_lapsed_hold_racing_the_sweeper_cancels_it_once_60_times() {
    let app = TestApp::spawn_with(SpawnOptions {
        expiry_every: Duration::from_secs(3600),
        ..SpawnOptions::default()
    })
    .await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 60).await;
    let due = wib_date(&app, 400);
    for (i, (_, unit)) in units.iter().enumerate() {
        let booking = book(&app, &admin, *unit, i).await;
        let res = schedule(
            &app,
            &admin,
            &booking,
            json!([{"kind": "BOOKING_FEE", "amount": 1_000_000, "dueDate": due}]),
        )
        .await;
        let fee = res.json[0]["id"].as_str().unwrap().to_owned();
        let payment = pay(&app, &admin, &fee, "1000000", Some(PNG)).await.json;
        let pid = payment["id"].as_str().unwrap().to_owned();
        app.clock.advance(chrono::Duration::minutes(61));
        let body = json!({"verified": true});
        let (swept, res) = futures_util::join!(
            app.state.services.expire_holds(),
            decide(&app, &admin, &pid, body)
        );
        let swept = swept.unwrap();
        assert!(swept <= 1, "iteration {i}");
        res.assert_problem(StatusCode::CONFLICT, "hold_expired");
        let b = get_json(&app, &admin, &format!("/api/v1/bookings/{booking}")).await;
        assert_eq!(b["status"], "CANCELLED", "iteration {i}");
        assert_eq!(b["unit"]["status"], "AVAILABLE", "iteration {i}");
    }
    // Exactly one AVAILABLE event per unit, whoever cancelled.
    let events = unit_events(&app, project).await;
    assert_eq!(events.len(), 120);
    assert_eq!(events.iter().filter(|(_, s)| s == "AVAILABLE").count(), 60);
}

#[actix_web::test]
async fn the_overdue_job_marks_unpaid_invoices_past_their_due_date() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 1).await;
    let booking = book(&app, &admin, units[0].1, 1).await;
    let res = schedule(
        &app,
        &admin,
        &booking,
        json!([
            {"kind": "BOOKING_FEE", "amount": 1_000_000, "dueDate": wib_date(&app, 10)},
            {"kind": "INSTALLMENT", "amount": 1_000_000, "dueDate": wib_date(&app, 0)},
            {"kind": "INSTALLMENT", "amount": 1_000_000, "dueDate": wib_date(&app, 10)},
        ]),
    )
    .await;
    let booking_fee = res.json[0]["id"].as_str().unwrap().to_owned();
    let fee = res.json[1]["id"].as_str().unwrap().to_owned();
    let later = res.json[2]["id"].as_str().unwrap().to_owned();
    // The booking fee is paid in time, so the hold does not expire when the clock moves.
    let p = pay(&app, &admin, &booking_fee, "1000000", Some(PNG))
        .await
        .json;
    decide(
        &app,
        &admin,
        p["id"].as_str().unwrap(),
        json!({"verified": true}),
    )
    .await;
    let b = get_json(&app, &admin, &format!("/api/v1/bookings/{booking}")).await;
    assert_eq!(b["status"], "ACTIVE");
    let p = pay(&app, &admin, &fee, "400000", Some(PNG)).await.json;
    decide(
        &app,
        &admin,
        p["id"].as_str().unwrap(),
        json!({"verified": true}),
    )
    .await;
    assert_eq!(app.state.services.mark_overdue().await.unwrap(), 0);
    // Two days on: the job (every 200 ms in tests) marks the partly paid installment OVERDUE.
    app.clock.advance(chrono::Duration::days(2));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let inv = get_json(&app, &admin, &format!("/api/v1/invoices/{fee}")).await;
        if inv["status"] == "OVERDUE" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not overdue: {inv}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let inv = get_json(&app, &admin, &format!("/api/v1/invoices/{later}")).await;
    assert_eq!(inv["status"], "UNPAID");
    // An OVERDUE invoice can still be paid; a partial payment leaves it OVERDUE.
    let p = pay(&app, &admin, &fee, "100000", Some(PNG)).await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.json);
    decide(
        &app,
        &admin,
        p.json["id"].as_str().unwrap(),
        json!({"verified": true}),
    )
    .await;
    let inv = get_json(&app, &admin, &format!("/api/v1/invoices/{fee}")).await;
    assert_eq!(inv["status"], "OVERDUE");
    assert_eq!(inv["paidAmount"], 500_000);
    let audit = get_json(
        &app,
        &admin,
        &format!("/api/v1/admin/audit-log?filters[entityId][$eq]={fee}&filters[action][$eq]=invoice.overdue"),
    )
    .await;
    assert_eq!(audit["meta"]["pagination"]["total"], 1);
    assert!(audit["data"][0]["actorId"].is_null());
}
