//! Foundation: health, problem+json, auth and role guards, KYC with audit, list conventions,
//! projects and units over real HTTP against a real database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use actix_web::http::{Method, StatusCode};
use common::TestApp;
use kavling_core::domain::Role;
use serde_json::json;

#[actix_web::test]
async fn health_ready_and_problem_json_for_unknown_routes() {
    let app = TestApp::spawn().await;
    let res = app.get("/healthz", None).await;
    assert_eq!(res.status, StatusCode::OK);
    let res = app.get("/readyz", None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["database"], "up");

    let res = app.get("/api/v1/nope", None).await;
    res.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert!(res.header("x-request-id").is_some());

    let res = app
        .client
        .get(app.url("/healthz"))
        .insert_header(("x-request-id", "trace-me-123"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get("x-request-id").unwrap(), "trace-me-123");
}

#[actix_web::test]
async fn register_login_me_and_their_errors() {
    let app = TestApp::spawn().await;
    let body = json!({"email": "Budi@Example.com", "password": "rahasia123", "fullName": "Budi", "role": "BUYER"});
    let res = app.post("/api/v1/auth/register", None, &body).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    assert_eq!(res.json["user"]["email"], "budi@example.com");
    assert_eq!(res.json["user"]["role"], "BUYER");
    assert_eq!(res.json["user"]["kycStatus"], "NONE");
    let token = res.json["token"].as_str().unwrap().to_owned();

    app.post("/api/v1/auth/register", None, &body)
        .await
        .assert_problem(StatusCode::CONFLICT, "email_taken");

    let res = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "x@y.id", "password": "short", "fullName": "X", "role": "BUYER"}),
        )
        .await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(res.json["errors"][0]["field"], "password");

    app.post(
        "/api/v1/auth/register",
        None,
        &json!({"email": "a@y.id", "password": "rahasia123", "fullName": "A", "role": "ADMIN"}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    let res = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"email": "budi@example.com", "password": "rahasia123"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.json["token"].is_string());
    app.post(
        "/api/v1/auth/login",
        None,
        &json!({"email": "budi@example.com", "password": "wrong-pass"}),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    app.post(
        "/api/v1/auth/login",
        None,
        &json!({"email": "nobody@example.com", "password": "wrong-pass"}),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");

    let me = app.get("/api/v1/me", Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK);
    for key in [
        "id",
        "email",
        "fullName",
        "phone",
        "role",
        "isVerified",
        "kycStatus",
        "companyName",
    ] {
        assert!(me.json.get(key).is_some(), "missing {key} in {}", me.json);
    }
    app.get("/api/v1/me", None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.get("/api/v1/me", Some("not.a.token"))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");

    // Forged with another secret, and expired.
    let forged = kavling_core::auth::TokenKeys::new(b"another-secret-another-secret-xx")
        .issue(
            uuid::Uuid::now_v7(),
            Role::Admin,
            chrono::Utc::now().timestamp(),
        )
        .unwrap();
    app.get("/api/v1/me", Some(&forged))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let (id, _) = app.user(Role::Admin, true).await;
    let expired = app
        .state
        .services
        .tokens
        .issue(id, Role::Admin, chrono::Utc::now().timestamp() - 13 * 3600)
        .unwrap();
    app.get("/api/v1/me", Some(&expired))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[actix_web::test]
async fn bad_bodies_and_ids_are_clear_problems() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let res = app
        .client
        .post(app.url("/api/v1/projects"))
        .bearer_auth(&admin)
        .insert_header(("content-type", "application/json"))
        .send_body("{not json")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app
        .post("/api/v1/projects", Some(&admin), &json!({"name": 5}))
        .await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.get("/api/v1/projects/not-a-uuid", None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get(&format!("/api/v1/projects/{}", uuid::Uuid::now_v7()), None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.post("/api/v1/projects", Some(&admin), &json!({"name": "  "}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post(
        "/api/v1/projects",
        Some(&admin),
        &json!({"name": "X", "holdMinutes": 0}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[actix_web::test]
async fn role_guards_kyc_decision_and_audit_log() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, buyer) = app.user(Role::Buyer, false).await;
    let (marketing_id, marketing) = app.user(Role::Marketing, false).await;
    let (_, units) = app.project_with_units(&admin, 2).await;
    let unit = units[0].1;

    app.post("/api/v1/projects", Some(&buyer), &json!({"name": "Nope"}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.patch(
        &format!("/api/v1/units/{unit}"),
        Some(&buyer),
        &json!({"status": "SOLD"}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.patch(
        &format!("/api/v1/units/{unit}"),
        Some(&marketing),
        &json!({"status": "SOLD"}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "kyc_required");
    app.post(
        &format!("/api/v1/admin/users/{marketing_id}/kyc"),
        Some(&marketing),
        &json!({"approved": true}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    let res = app
        .client
        .post(app.url(&format!("/api/v1/admin/users/{marketing_id}/kyc")))
        .bearer_auth(&admin)
        .insert_header(("x-request-id", "kyc-req-1"))
        .send_json(&json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let me = app.get("/api/v1/me", Some(&marketing)).await;
    assert_eq!(me.json["isVerified"], true);
    assert_eq!(me.json["kycStatus"], "APPROVED");
    let res = app
        .patch(
            &format!("/api/v1/units/{unit}"),
            Some(&marketing),
            &json!({"status": "MAINTENANCE"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["status"], "MAINTENANCE");

    // Rejection takes effect at once, even with the old token.
    app.post(
        &format!("/api/v1/admin/users/{marketing_id}/kyc"),
        Some(&admin),
        &json!({"approved": false, "reason": "blurry"}),
    )
    .await;
    app.patch(
        &format!("/api/v1/units/{unit}"),
        Some(&marketing),
        &json!({"status": "AVAILABLE"}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "kyc_required");

    app.get("/api/v1/admin/audit-log", Some(&marketing))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let log = app
        .get(
            "/api/v1/admin/audit-log?filters[action][$eq]=kyc.decided&sort=createdAt:asc",
            Some(&admin),
        )
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.json);
    let rows = log.json["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["requestId"], "kyc-req-1");
    assert_eq!(rows[0]["entityId"], marketing_id.to_string());
    assert_eq!(rows[0]["newValues"]["kycStatus"], "APPROVED");
    assert_eq!(rows[1]["newValues"]["kycStatus"], "REJECTED");
    let status_log = app
        .get(
            "/api/v1/admin/audit-log?filters[action][$eq]=unit.status_changed",
            Some(&admin),
        )
        .await;
    assert_eq!(status_log.json["meta"]["pagination"]["total"], 1);
}

#[actix_web::test]
async fn list_conventions_filter_sort_paginate_and_reject_unknowns() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    for name in ["Alpha Residence", "Beta Garden", "Gamma Residence"] {
        let res = app
            .post("/api/v1/projects", Some(&admin), &json!({"name": name}))
            .await;
        assert_eq!(res.status, StatusCode::CREATED);
    }
    let res = app
        .get("/api/v1/projects?filters[name][$containsi]=residence&sort=name:desc&pagination[pageSize]=1&pagination[page]=2", None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["data"][0]["name"], "Alpha Residence");
    assert_eq!(
        res.json["meta"]["pagination"],
        json!({"page": 2, "pageSize": 1, "pageCount": 2, "total": 2})
    );
    // Dart's Uri percent-encodes brackets.
    let res = app
        .get(
            "/api/v1/projects?filters%5Bname%5D%5B%24eq%5D=Beta%20Garden",
            None,
        )
        .await;
    assert_eq!(res.json["meta"]["pagination"]["total"], 1);

    for bad in [
        "filters[secret][$eq]=1",
        "filters[name][$regex]=x",
        "sort=secret:asc",
        "pagination[pageSize]=1000",
        "pagination[page]=abc",
    ] {
        app.get(&format!("/api/v1/projects?{bad}"), None)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "invalid_query");
    }
}

#[actix_web::test]
async fn units_create_list_patch_compare_and_set_and_availability() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 3).await;

    let one = app
        .post(
            &format!("/api/v1/projects/{project}/units"),
            Some(&admin),
            &json!({"blockNumber": "B1", "type": "45/90", "price": 620_000_000i64, "bedrooms": 2}),
        )
        .await;
    assert_eq!(one.status, StatusCode::CREATED, "{}", one.json);
    assert_eq!(one.json["status"], "AVAILABLE");
    assert_eq!(one.json["color"], "#22c55e");
    assert_eq!(one.json["type"], "45/90");
    app.post(
        &format!("/api/v1/projects/{project}/units"),
        Some(&admin),
        &json!({"blockNumber": "B1", "type": "45/90", "price": 1}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "duplicate_block_number");
    app.post(
        &format!("/api/v1/projects/{project}/units"),
        Some(&admin),
        &json!({"blockNumber": "B2", "type": "45/90", "price": -5}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let a1 = units[0].1;
    app.patch(
        &format!("/api/v1/units/{a1}"),
        Some(&admin),
        &json!({"status": "SOLD", "expectedStatus": "BOOKED"}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "status_conflict");
    let res = app
        .patch(
            &format!("/api/v1/units/{a1}"),
            Some(&admin),
            &json!({"status": "SOLD", "expectedStatus": "AVAILABLE", "price": 500_000_000i64}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["status"], "SOLD");
    assert_eq!(res.json["price"], 500_000_000i64);
    assert_eq!(res.json["color"], "#ef4444");
    let read = app.get(&format!("/api/v1/units/{a1}"), None).await;
    assert_eq!(res.json, read.json);
    // A price-only edit (no event) reads the palette for the colour.
    let res = app
        .patch(
            &format!("/api/v1/units/{a1}"),
            Some(&admin),
            &json!({"price": 510_000_000i64}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["color"], "#ef4444");
    let read = app.get(&format!("/api/v1/units/{a1}"), None).await;
    assert_eq!(res.json, read.json);
    app.patch(
        &format!("/api/v1/units/{a1}"),
        Some(&admin),
        &json!({"status": "BANANA"}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let list = app
        .get(&format!("/api/v1/projects/{project}/units?filters[status][$in][0]=SOLD&filters[status][$in][1]=BOOKED"), None)
        .await;
    assert_eq!(list.json["meta"]["pagination"]["total"], 1);
    assert_eq!(list.json["data"][0]["blockNumber"], "A1");
    let list = app
        .get(
            &format!(
                "/api/v1/projects/{project}/units?filters[price][$gte]=450000002&sort=price:desc"
            ),
            None,
        )
        .await;
    assert_eq!(list.json["data"][0]["blockNumber"], "B1");

    let avail = app
        .get(&format!("/api/v1/projects/{project}/availability"), None)
        .await;
    assert_eq!(avail.status, StatusCode::OK);
    assert_eq!(avail.json["seq"], 1);
    assert_eq!(avail.json["units"].as_array().unwrap().len(), 4);
    let sold = avail.json["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["blockNumber"] == "A1")
        .unwrap();
    assert_eq!(sold["color"], "#ef4444");

    let unit = app.get(&format!("/api/v1/units/{a1}"), None).await;
    assert_eq!(unit.json["version"], 1);
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/v1/units/{a1}"),
            Some(&admin),
            None,
        )
        .await;
    assert!(res.status.is_client_error());
}

#[actix_web::test]
async fn websocket_snapshot_then_live_events_with_seq() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 2).await;
    let mut ws = app.ws(None).await;
    ws.send(&json!({"op": "subscribe", "channel": format!("project:{project}")}))
        .await;
    let snap = ws.recv().await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["seq"], 0);
    assert_eq!(snap["units"].as_array().unwrap().len(), 2);
    let sub = ws.recv().await;
    assert_eq!(sub["type"], "subscribed");
    assert_eq!(sub["recovered"], false);

    let res = app
        .patch(
            &format!("/api/v1/units/{}", units[1].1),
            Some(&admin),
            &json!({"status": "BOOKED"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    // The response is built from the transaction's own rows; it must equal a fresh read.
    assert_eq!(res.json["status"], "BOOKED");
    assert_eq!(res.json["color"], "#eab308");
    assert_eq!(res.json["version"], 1);
    let read = app
        .get(&format!("/api/v1/units/{}", units[1].1), None)
        .await;
    assert_eq!(res.json, read.json);
    let ev = ws.recv().await;
    assert_eq!(ev["type"], "unit");
    assert_eq!(ev["seq"], 1);
    assert_eq!(ev["blockNumber"], "A2");
    assert_eq!(ev["status"], "BOOKED");
    assert_eq!(ev["previousStatus"], "AVAILABLE");
    assert_eq!(ev["color"], "#eab308");
    let at = ev["at"].as_str().unwrap();
    assert!(
        at.ends_with('Z') && at.len() == "2026-11-21T08:00:00.000000Z".len(),
        "{at}"
    );

    ws.send_raw("{nope").await;
    let err = ws.recv().await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "bad_request");
    ws.send(&json!({"op": "ping"})).await;
    assert_eq!(ws.recv().await["type"], "pong");
}
