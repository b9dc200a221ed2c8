//! Leads, the pay-per-lead wallet, idempotency keys, e-KYC documents and auth rate limits, over
//! real HTTP against a real database (SQLite, or PostgreSQL + Redis when configured). After every
//! concurrent scenario the ledger invariants are checked against the database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use actix_web::http::{Method, StatusCode};
use common::{SpawnOptions, TestApp, TestResponse};
use futures_util::future::join_all;
use kavling_core::audit::ActorRef;
use kavling_core::domain::DisputeReason;
use kavling_core::domain::Role;
use kavling_core::entities::{
    audit_log, lead_consents, lead_disputes, leads, users, wallet_transactions, wallets,
};
use kavling_core::services::bookings::Viewer;
use kavling_core::services::disputes::{DisputeDecision, NewDispute};
use kavling_core::services::leads::{CONSENT_VERSION, ConsentContext, CreateLeadInput};
use kavling_core::services::wallet::TopupInput;
use kavling_core::{CoreError, Services};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

const PRICE: i64 = 50_000;

/// Every wallet's balance equals the sum of its ledger, each `balanceAfter` is the running sum
/// in ledger order, and nothing is negative. Returns the violations (empty when sound).
async fn invariant_violations(svc: &Services) -> Vec<String> {
    let mut bad = Vec::new();
    let wallets = wallets::Entity::find().all(&svc.db).await.unwrap();
    for w in wallets {
        let rows = wallet_transactions::Entity::find()
            .filter(wallet_transactions::Column::WalletId.eq(w.id))
            .order_by_asc(wallet_transactions::Column::Id)
            .all(&svc.db)
            .await
            .unwrap();
        let mut running: i64 = 0;
        for r in &rows {
            running += r.amount;
            if r.balance_after != running {
                bad.push(format!(
                    "wallet {} row {}: balanceAfter {} but running sum {}",
                    w.id, r.id, r.balance_after, running
                ));
            }
            if r.balance_after < 0 {
                bad.push(format!("wallet {} row {} negative", w.id, r.id));
            }
        }
        if w.balance != running {
            bad.push(format!(
                "wallet {}: balance {} but ledger sums to {}",
                w.id, w.balance, running
            ));
        }
        if w.balance < 0 {
            bad.push(format!("wallet {} negative", w.id));
        }
    }
    bad
}

async fn assert_invariants(app: &TestApp) {
    let bad = invariant_violations(&app.state.services).await;
    assert!(bad.is_empty(), "ledger invariant violated: {bad:#?}");
}

async fn buyer_model(app: &TestApp) -> users::Model {
    let (id, _) = app.user(Role::Buyer, false).await;
    app.state.services.user(id).await.unwrap()
}

/// Creates leads directly through the service (fast), one per unit, by `buyer`.
async fn leads_for(app: &TestApp, buyer: &users::Model, units: &[(String, Uuid)]) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for (_, unit) in units {
        let (_, lead) = app
            .state
            .services
            .create_lead(
                &ActorRef::system(),
                buyer,
                CreateLeadInput {
                    unit_id: *unit,
                    message: Some("Tertarik".into()),
                    consent: Some(true),
                    monthly_income: Some(15_000_000),
                    down_payment: Some(100_000_000),
                },
                ConsentContext {
                    ip: "10.0.0.1".into(),
                    user_agent: "test".into(),
                },
            )
            .await
            .unwrap();
        ids.push(lead.id);
    }
    ids
}

async fn send_with_key(
    app: &TestApp,
    path: &str,
    token: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> TestResponse {
    let mut req = app.client.post(app.url(path)).bearer_auth(token);
    if let Some(k) = key {
        req = req.insert_header(("Idempotency-Key", k));
    }
    let mut res = match body {
        Some(b) => req.send_json(b).await,
        None => req.send().await,
    }
    .expect("request sent");
    let bytes = res.body().await.expect("body");
    TestResponse {
        status: res.status(),
        headers: res.headers().clone(),
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        bytes: bytes.to_vec(),
    }
}

async fn topup(app: &TestApp, admin: &str, user: Uuid, amount: i64) {
    let res = send_with_key(
        app,
        &format!("/api/v1/admin/wallets/{user}/topup"),
        admin,
        Some(&Uuid::now_v7().to_string()),
        Some(&json!({"amount": amount, "reference": "TRF-test"})),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
}

async fn balance(app: &TestApp, token: &str) -> i64 {
    let res = app.get("/api/v1/wallet", Some(token)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["currency"], "IDR");
    res.json["balance"].as_i64().unwrap()
}

#[actix_web::test]
async fn fifty_concurrent_unlocks_with_balance_for_ten() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 50).await;
    let buyer = buyer_model(&app).await;
    let lead_ids = leads_for(&app, &buyer, &units).await;
    let (mkt, token) = app.user(Role::Marketing, true).await;
    topup(&app, &admin, mkt, 10 * PRICE).await;

    let paths: Vec<String> = lead_ids
        .iter()
        .map(|id| format!("/api/v1/leads/{id}/unlock"))
        .collect();
    let results = join_all(
        paths
            .iter()
            .map(|p| send_with_key(&app, p, &token, None, None)),
    )
    .await;
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for r in &results {
        *counts.entry(r.status.as_u16()).or_default() += 1;
        if r.status == StatusCode::PAYMENT_REQUIRED {
            r.assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_balance");
        }
    }
    assert_eq!(counts.get(&200), Some(&10), "{counts:?}");
    assert_eq!(counts.get(&402), Some(&40), "{counts:?}");
    assert_eq!(balance(&app, &token).await, 0);
    assert_invariants(&app).await;
    // Exactly the ten winners are unlocked, by this user, at the project's price.
    let unlocked = leads::Entity::find()
        .filter(leads::Column::IsUnlocked.eq(true))
        .all(&app.state.services.db)
        .await
        .unwrap();
    assert_eq!(unlocked.len(), 10);
    assert!(
        unlocked
            .iter()
            .all(|l| l.unlocked_by == Some(mkt) && l.unlock_price == Some(PRICE))
    );
    let res = app
        .get(
            "/api/v1/wallet/transactions?filters[type][$eq]=DEBIT",
            Some(&token),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["meta"]["pagination"]["total"], 10);
    let row = &res.json["data"][0];
    assert_eq!(row["amount"], -PRICE);
    assert_eq!(row["type"], "DEBIT");
    let desc = row["description"].as_str().unwrap();
    assert!(
        desc.starts_with("Unlock Lead: Test User - Unit A"),
        "{desc}"
    );
    // Each unlock wrote its audit rows.
    let audits = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("lead.unlocked"))
        .all(&app.state.services.db)
        .await
        .unwrap();
    assert_eq!(audits.len(), 10);
}

#[actix_web::test]
async fn two_users_race_for_one_lead() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 1).await;
    let buyer = buyer_model(&app).await;
    let lead = leads_for(&app, &buyer, &units).await[0];
    let (a, ta) = app.user(Role::Marketing, true).await;
    let (b, tb) = app.user(Role::Marketing, true).await;
    topup(&app, &admin, a, 3 * PRICE).await;
    topup(&app, &admin, b, 3 * PRICE).await;
    let path = format!("/api/v1/leads/{lead}/unlock");
    let (ra, rb) = futures_util::join!(
        send_with_key(&app, &path, &ta, None, None),
        send_with_key(&app, &path, &tb, None, None)
    );
    let (winner, loser, wt, lt) = if ra.status == StatusCode::OK {
        (ra, rb, ta, tb)
    } else {
        (rb, ra, tb, ta)
    };
    assert_eq!(winner.status, StatusCode::OK, "{}", winner.json);
    loser.assert_problem(StatusCode::CONFLICT, "lead_already_unlocked");
    assert_eq!(winner.json["buyer"]["masked"], false);
    assert_eq!(winner.json["buyer"]["name"], "Test User");
    assert_eq!(balance(&app, &wt).await, 2 * PRICE);
    assert_eq!(balance(&app, &lt).await, 3 * PRICE);
    // The winner again: 200, no second charge; the loser again: still 409.
    let again = send_with_key(&app, &path, &wt, None, None).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(balance(&app, &wt).await, 2 * PRICE);
    send_with_key(&app, &path, &lt, None, None)
        .await
        .assert_problem(StatusCode::CONFLICT, "lead_already_unlocked");
    assert_invariants(&app).await;
}

#[actix_web::test]
async fn idempotency_key_gives_one_effect_and_identical_responses() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 2).await;
    let buyer = buyer_model(&app).await;
    let ids = leads_for(&app, &buyer, &units).await;
    let (mkt, token) = app.user(Role::Marketing, true).await;
    topup(&app, &admin, mkt, 5 * PRICE).await;
    let path = format!("/api/v1/leads/{}/unlock", ids[0]);
    let results = join_all(
        (0..20).map(|_| send_with_key(&app, &path, &token, Some("unlock-once-123"), None)),
    )
    .await;
    for r in &results {
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.bytes, results[0].bytes, "responses differ");
    }
    assert_eq!(balance(&app, &token).await, 4 * PRICE);
    let debits = wallet_transactions::Entity::find()
        .filter(wallet_transactions::Column::TxType.eq("DEBIT"))
        .all(&app.state.services.db)
        .await
        .unwrap();
    assert_eq!(debits.len(), 1);
    // The same key for another lead is refused, and nothing is charged.
    send_with_key(
        &app,
        &format!("/api/v1/leads/{}/unlock", ids[1]),
        &token,
        Some("unlock-once-123"),
        None,
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "idempotency_key_reused");
    assert_eq!(balance(&app, &token).await, 4 * PRICE);
    // Bad keys: empty or longer than 200 characters.
    send_with_key(&app, &path, &token, Some(""), None)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_idempotency_key");
    send_with_key(&app, &path, &token, Some(&"k".repeat(201)), None)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_idempotency_key");
    assert_invariants(&app).await;
}

#[actix_web::test]
async fn topups_validate_and_replay() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (mkt, token) = app.user(Role::Marketing, true).await;
    let (buyer, _) = app.user(Role::Buyer, false).await;
    let path = format!("/api/v1/admin/wallets/{mkt}/topup");
    for amount in [0, -5, 1_000_000_000_001, i64::MAX] {
        send_with_key(
            &app,
            &path,
            &admin,
            Some(&Uuid::now_v7().to_string()),
            Some(&json!({"amount": amount, "reference": "x"})),
        )
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    send_with_key(
        &app,
        &path,
        &admin,
        None,
        Some(&json!({"amount": 1, "reference": "x"})),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "idempotency_key_required");
    send_with_key(
        &app,
        &path,
        &token,
        Some("k1"),
        Some(&json!({"amount": 1, "reference": "x"})),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let body = json!({"amount": 250_000, "reference": "BCA-7781"});
    let first = send_with_key(&app, &path, &admin, Some("topup-1"), Some(&body)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);
    assert_eq!(first.json["balance"], 250_000);
    assert_eq!(first.json["transaction"]["type"], "TOPUP");
    assert_eq!(first.json["transaction"]["balanceAfter"], 250_000);
    let again = send_with_key(&app, &path, &admin, Some("topup-1"), Some(&body)).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.bytes, first.bytes);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    send_with_key(
        &app,
        &path,
        &admin,
        Some("topup-1"),
        Some(&json!({"amount": 999, "reference": "BCA-7781"})),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "idempotency_key_reused");
    assert_eq!(balance(&app, &token).await, 250_000);
    // A user without a wallet row reads 0; a top-up creates the wallet.
    let (_, buyer_token) = app.user(Role::Buyer, false).await;
    assert_eq!(balance(&app, &buyer_token).await, 0);
    let res = app
        .get("/api/v1/wallet/transactions", Some(&buyer_token))
        .await;
    assert_eq!(res.json["meta"]["pagination"]["total"], 0);
    send_with_key(
        &app,
        &format!("/api/v1/admin/wallets/{buyer}/topup"),
        &admin,
        Some("topup-buyer"),
        Some(&json!({"amount": 10, "reference": "r"})),
    )
    .await;
    send_with_key(
        &app,
        &format!("/api/v1/admin/wallets/{}/topup", Uuid::now_v7()),
        &admin,
        Some("topup-nobody"),
        Some(&json!({"amount": 10, "reference": "r"})),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let audits = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("wallet.topup"))
        .all(&app.state.services.db)
        .await
        .unwrap();
    assert_eq!(audits.len(), 2);
    assert_invariants(&app).await;
}

#[actix_web::test]
async fn leads_need_consent_and_one_open_lead_per_unit() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 2).await;
    let unit = units[0].1;
    let (buyer, buyer_token) = app.user(Role::Buyer, false).await;
    for body in [
        json!({"unitId": unit}),
        json!({"unitId": unit, "consent": false}),
    ] {
        app.post("/api/v1/leads", Some(&buyer_token), &body)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let (_, mkt_token) = app.user(Role::Marketing, true).await;
    app.post(
        "/api/v1/leads",
        Some(&mkt_token),
        &json!({"unitId": unit, "consent": true}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post(
        "/api/v1/leads",
        None,
        &json!({"unitId": unit, "consent": true}),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");

    // Ten concurrent identical requests: one lead, one consent row.
    let body = json!({"unitId": unit, "consent": true, "message": "Mau survey",
        "monthlyIncome": 20_000_000, "downPayment": 100_000_000});
    let results =
        join_all((0..10).map(|_| app.post("/api/v1/leads", Some(&buyer_token), &body))).await;
    let created: Vec<_> = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert_eq!(
        created.len(),
        1,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let id = created[0].json["id"].clone();
    for r in &results {
        assert!(r.status == StatusCode::CREATED || r.status == StatusCode::OK);
        assert_eq!(r.json["id"], id);
        assert_eq!(r.json["isUnlocked"], false);
        assert_eq!(r.json["unitId"], unit.to_string());
    }
    // 450M unit, 100M down: ~3.55M a month; a third of 20M covers it.
    assert_eq!(created[0].json["buyerScore"], 100);
    let lead_id: Uuid = id.as_str().unwrap().parse().unwrap();
    let consents = lead_consents::Entity::find()
        .filter(lead_consents::Column::LeadId.eq(lead_id))
        .all(&app.state.services.db)
        .await
        .unwrap();
    assert_eq!(consents.len(), 1);
    let c = &consents[0];
    assert_eq!(c.consent_version, CONSENT_VERSION);
    assert_eq!(c.ip, "127.0.0.1");
    assert_eq!(
        c.proof_sha256,
        kavling_core::services::leads::consent_proof(
            CONSENT_VERSION,
            &c.ip,
            &c.user_agent,
            c.consented_at,
            lead_id,
            buyer
        )
    );
    // Without income the score is 0.
    let res = app
        .post(
            "/api/v1/leads",
            Some(&buyer_token),
            &json!({"unitId": units[1].1, "consent": true}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    assert_eq!(res.json["buyerScore"], 0);
    app.post(
        "/api/v1/leads",
        Some(&buyer_token),
        &json!({"unitId": Uuid::now_v7(), "consent": true}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");

    // Listing: verified marketing sees masked contacts, filters work, admin sees all.
    let res = app
        .get(
            &format!(
                "/api/v1/leads?filters[projectId][$eq]={project}&filters[isUnlocked][$eq]=false"
            ),
            Some(&mkt_token),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["meta"]["pagination"]["total"], 2);
    let row = &res.json["data"][0];
    assert_eq!(row["buyer"]["name"], "Te***");
    assert_eq!(row["buyer"]["masked"], true);
    assert!(
        row["buyer"]["email"]
            .as_str()
            .unwrap()
            .starts_with("bu***@")
    );
    assert!(row["message"].is_null());
    let res = app.get("/api/v1/leads", Some(&admin)).await;
    assert_eq!(res.json["data"][0]["buyer"]["masked"], false);
    assert_eq!(res.json["data"][0]["buyer"]["name"], "Test User");
    app.get("/api/v1/leads?filters[nope][$eq]=1", Some(&admin))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_query");
}

#[actix_web::test]
async fn masking_lifts_only_for_the_unlocker_and_phone_is_masked() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 1).await;
    // A registered buyer with a phone number.
    let res = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "budi@example.com", "password": "password123",
                "fullName": "Budi Santoso", "phone": "081234567890", "role": "BUYER"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let buyer_token = res.json["token"].as_str().unwrap().to_owned();
    let res = app
        .post(
            "/api/v1/leads",
            Some(&buyer_token),
            &json!({"unitId": units[0].1, "consent": true}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let lead = res.json["id"].as_str().unwrap().to_owned();
    let (a, ta) = app.user(Role::Marketing, true).await;
    let (_, tb) = app.user(Role::Marketing, true).await;
    topup(&app, &admin, a, PRICE).await;
    let res = app.get("/api/v1/leads", Some(&ta)).await;
    let b = &res.json["data"][0]["buyer"];
    assert_eq!(b["name"], "Bu***");
    assert_eq!(b["phone"], "0812****890");
    assert_eq!(b["email"], "bu***@example.com");
    let res = send_with_key(
        &app,
        &format!("/api/v1/leads/{lead}/unlock"),
        &ta,
        None,
        None,
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["buyer"]["phone"], "081234567890");
    let res = app.get("/api/v1/leads", Some(&ta)).await;
    assert_eq!(res.json["data"][0]["buyer"]["email"], "budi@example.com");
    assert_eq!(res.json["data"][0]["unlockedByMe"], true);
    let res = app.get("/api/v1/leads", Some(&tb)).await;
    assert_eq!(res.json["data"][0]["buyer"]["name"], "Bu***");
    assert_eq!(res.json["data"][0]["isUnlocked"], true);
    assert_eq!(balance(&app, &ta).await, 0);
}

#[actix_web::test]
async fn unlock_guards_tokens_roles_and_kyc() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 1).await;
    let buyer = buyer_model(&app).await;
    let lead = leads_for(&app, &buyer, &units).await[0];
    let path = format!("/api/v1/leads/{lead}/unlock");
    let (mkt, _) = app.user(Role::Marketing, true).await;
    let now = chrono::Utc::now().timestamp();
    let expired = app
        .state
        .services
        .tokens
        .issue(mkt, Role::Marketing, now - 13 * 3600)
        .unwrap();
    let forged = kavling_core::auth::TokenKeys::new(b"another-secret-another-secret-xx!")
        .issue(mkt, Role::Marketing, now)
        .unwrap();
    for token in [expired.as_str(), forged.as_str(), "not-a-jwt"] {
        send_with_key(&app, &path, token, None, None)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    app.send(Method::POST, &path, None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let (_, unverified) = app.user(Role::Marketing, false).await;
    send_with_key(&app, &path, &unverified, None, None)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "kyc_required");
    app.get("/api/v1/leads", Some(&unverified))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "kyc_required");
    let (_, buyer_token) = app.user(Role::Buyer, false).await;
    send_with_key(&app, &path, &buyer_token, None, None)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.get("/api/v1/leads", Some(&buyer_token))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    send_with_key(&app, &path, &admin, None, None)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let (_, broke) = app.user(Role::Marketing, true).await;
    send_with_key(&app, &path, &broke, None, None)
        .await
        .assert_problem(StatusCode::PAYMENT_REQUIRED, "insufficient_balance");
    send_with_key(
        &app,
        &format!("/api/v1/leads/{}/unlock", Uuid::now_v7()),
        &broke,
        None,
        None,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // Nothing changed.
    let l = leads::Entity::find_by_id(lead)
        .one(&app.state.services.db)
        .await
        .unwrap()
        .unwrap();
    assert!(!l.is_unlocked);
    assert_invariants(&app).await;
}

#[actix_web::test]
async fn login_and_register_are_rate_limited_per_ip() {
    let app = TestApp::spawn_with(SpawnOptions {
        auth_rate_burst: 3,
        ..SpawnOptions::default()
    })
    .await;
    let creds = json!({"email": "nobody@example.com", "password": "wrongpass1"});
    let register = json!({"email": "x@example.com", "password": "password123",
        "fullName": "X", "role": "BUYER"});
    // Sent at once (the limiter answers before the slow password hashing): a burst of 3 passes,
    // the rest of the same instant is refused, register sharing the per-IP budget.
    let results = join_all((0..5).map(|i| {
        if i == 4 {
            app.post("/api/v1/auth/register", None, &register)
        } else {
            app.post("/api/v1/auth/login", None, &creds)
        }
    }))
    .await;
    let limited: Vec<_> = results
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(
        limited.len(),
        2,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in &results {
        if r.status != StatusCode::TOO_MANY_REQUESTS {
            assert!(matches!(r.status.as_u16(), 401 | 201), "{}", r.json);
        }
    }
    for res in limited {
        res.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
    }
    // Other routes are not limited.
    for _ in 0..5 {
        assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    }
}

#[actix_web::test]
async fn cors_allows_only_configured_origins() {
    // TestApp has no CORS origins: a browser origin gets no allow header, and the request still
    // works for same-origin pages and non-browser clients.
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .insert_header(("Origin", "https://evil.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----kavlingboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_kyc(
    app: &TestApp,
    token: Option<&str>,
    parts: &[(&str, Option<&str>, &[u8])],
) -> TestResponse {
    let (ct, body) = multipart(parts);
    let mut req = app
        .client
        .post(app.url("/api/v1/me/kyc"))
        .insert_header(("Content-Type", ct));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let mut res = req.send_body(body).await.expect("sent");
    let bytes = res.body().limit(1 << 20).await.expect("body");
    TestResponse {
        status: res.status(),
        headers: res.headers().clone(),
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        bytes: bytes.to_vec(),
    }
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";

#[actix_web::test]
async fn kyc_upload_is_private_and_admin_only() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (mkt, token) = app.user(Role::Marketing, false).await;
    let gif: &[u8] = b"GIF89a\x01\0\x01\0\0\0\0;";
    let res = post_kyc(
        &app,
        Some(&token),
        &[
            ("idCard", Some("ktp.png"), gif),
            ("selfie", Some("s.png"), PNG),
            ("officeIdCard", Some("o.jpg"), JPEG),
            ("companyName", None, b"PT Maju"),
        ],
    )
    .await;
    res.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let mut big = PNG.to_vec();
    big.resize(5 * 1024 * 1024 + 1, 0);
    let res = post_kyc(
        &app,
        Some(&token),
        &[
            ("idCard", Some("ktp.png"), &big),
            ("selfie", Some("s.png"), PNG),
            ("officeIdCard", Some("o.jpg"), JPEG),
            ("companyName", None, b"PT Maju"),
        ],
    )
    .await;
    res.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large");
    let res = post_kyc(&app, Some(&token), &[("idCard", Some("ktp.png"), PNG)]).await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    post_kyc(&app, None, &[("idCard", Some("ktp.png"), PNG)])
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        app.get("/api/v1/me", Some(&token)).await.json["kycStatus"],
        "NONE"
    );

    let good: &[(&str, Option<&str>, &[u8])] = &[
        ("idCard", Some("../../ktp.png"), PNG),
        ("selfie", Some("selfie.jpg"), JPEG),
        ("officeIdCard", Some("office.png"), PNG),
        ("companyName", None, b"PT Maju Jaya"),
    ];
    let res = post_kyc(&app, Some(&token), good).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.json);
    assert_eq!(res.json["kycStatus"], "PENDING");
    assert_eq!(res.json["companyName"], "PT Maju Jaya");
    let u = app.state.services.user(mkt).await.unwrap();
    let stored = u.kyc_selfie_path.clone().unwrap();
    assert!(
        stored.starts_with("kyc/") && !stored.contains("selfie"),
        "{stored}"
    );
    assert!(app.storage.path().join(&stored).exists());
    let files = std::fs::read_dir(app.storage.path().join("kyc"))
        .unwrap()
        .count();
    assert_eq!(files, 3);

    let doc = format!("/api/v1/admin/users/{mkt}/kyc/selfie");
    app.get(&doc, Some(&token))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.get(&doc, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let res = app.get(&doc, Some(&admin)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.bytes, JPEG);
    assert_eq!(res.header("content-type").as_deref(), Some("image/jpeg"));
    assert!(
        res.header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(
        res.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    app.get(
        &format!("/api/v1/admin/users/{mkt}/kyc/passport"),
        Some(&admin),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");

    // Resubmitting replaces the files (the old ones are deleted).
    let res = post_kyc(&app, Some(&token), good).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let files = std::fs::read_dir(app.storage.path().join("kyc"))
        .unwrap()
        .count();
    assert_eq!(files, 3);

    // The admin approves; both steps are audited.
    let res = app
        .post(
            &format!("/api/v1/admin/users/{mkt}/kyc"),
            Some(&admin),
            &json!({"approved": true}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["kycStatus"], "APPROVED");
    let audits = audit_log::Entity::find()
        .filter(audit_log::Column::EntityId.eq(mkt))
        .all(&app.state.services.db)
        .await
        .unwrap();
    let actions: Vec<&str> = audits.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "kyc.submitted").count(), 2);
    assert!(actions.contains(&"kyc.decided"));
    // Buyers have no e-KYC.
    let (_, buyer) = app.user(Role::Buyer, false).await;
    post_kyc(&app, Some(&buyer), good)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
}

/// 10,000 operations from many tasks: top-ups, unlocks, retries with and without keys, through
/// the services (the bulk) and over HTTP, then the invariants.
#[actix_web::test]
async fn disputes_refund_once_within_the_window() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 4).await;
    let buyer = buyer_model(&app).await;
    let leads = leads_for(&app, &buyer, &units).await;
    let (mkt, token) = app.user(Role::Marketing, true).await;
    let (_, other) = app.user(Role::Marketing, true).await;
    let (_, buyer_token) = app.user(Role::Buyer, true).await;
    topup(&app, &admin, mkt, 4 * PRICE).await;
    for lead in &leads {
        let res = send_with_key(
            &app,
            &format!("/api/v1/leads/{lead}/unlock"),
            &token,
            None,
            None,
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    }
    assert_eq!(balance(&app, &token).await, 0);
    let path = format!("/api/v1/leads/{}/disputes", leads[0]);
    let body = json!({"reason": "WRONG_NUMBER", "note": "Nomor tidak aktif"});
    app.post(&path, Some(&other), &body)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post(&path, Some(&buyer_token), &body)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post(&path, Some(&admin), &body)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post(&path, Some(&token), &json!({"reason": "BORED", "note": ""}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post(
        &path,
        Some(&token),
        &json!({"reason": "OTHER", "note": "x".repeat(1001)}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post(
        &format!("/api/v1/leads/{}/disputes", Uuid::now_v7()),
        Some(&token),
        &body,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let res = app.post(&path, Some(&token), &body).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let dispute = res.json.clone();
    assert_eq!(dispute["status"], "OPEN");
    assert_eq!(dispute["leadId"], leads[0].to_string());
    assert_eq!(dispute["reason"], "WRONG_NUMBER");
    assert_eq!(dispute["note"], "Nomor tidak aktif");
    assert!(dispute["decidedAt"].is_null());
    assert!(dispute["decisionNote"].is_null());
    assert!(dispute["createdAt"].is_string());
    app.post(&path, Some(&token), &body)
        .await
        .assert_problem(StatusCode::CONFLICT, "dispute_exists");

    // Lists: admins all, marketing users their own.
    let mine = app
        .get("/api/v1/disputes?filters[status][$eq]=OPEN", Some(&token))
        .await;
    assert_eq!(mine.json["meta"]["pagination"]["total"], 1, "{}", mine.json);
    let theirs = app.get("/api/v1/disputes", Some(&other)).await;
    assert_eq!(theirs.json["meta"]["pagination"]["total"], 0);
    let all = app.get("/api/v1/disputes", Some(&admin)).await;
    assert_eq!(all.json["meta"]["pagination"]["total"], 1);
    app.get("/api/v1/disputes?filters[nope][$eq]=1", Some(&admin))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_query");

    // Approval refunds once, even when twenty admins click at once.
    let id = dispute["id"].as_str().unwrap();
    let decide = format!("/api/v1/disputes/{id}");
    app.patch(&decide, Some(&token), &json!({"approved": true}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let approve = json!({"approved": true, "note": "Valid"});
    let results = join_all((0..20).map(|_| app.patch(&decide, Some(&admin), &approve))).await;
    for r in &results {
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["status"], "APPROVED");
        assert_eq!(r.json["decisionNote"], "Valid");
        assert_eq!(r.json, results[0].json);
    }
    assert_eq!(balance(&app, &token).await, PRICE);
    let ledger = app
        .get(
            "/api/v1/wallet/transactions?filters[type][$eq]=REFUND",
            Some(&token),
        )
        .await;
    assert_eq!(ledger.json["meta"]["pagination"]["total"], 1);
    let refund = &ledger.json["data"][0];
    assert_eq!(refund["amount"], PRICE);
    assert_eq!(refund["balanceAfter"], PRICE);
    assert_eq!(refund["description"], "Refund Lead: Test User - Unit A1");
    assert_eq!(results[0].json["refundTransactionId"], refund["id"]);
    app.patch(&decide, Some(&admin), &json!({"approved": false}))
        .await
        .assert_problem(StatusCode::CONFLICT, "dispute_already_decided");
    // A refunded lead is not disputed again.
    app.post(&path, Some(&token), &body)
        .await
        .assert_problem(StatusCode::CONFLICT, "dispute_exists");

    // Rejection refunds nothing; the same rejection again is 200.
    let res = app
        .post(
            &format!("/api/v1/leads/{}/disputes", leads[1]),
            Some(&token),
            &json!({"reason": "NOT_INTERESTED"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let decide = format!("/api/v1/disputes/{}", res.json["id"].as_str().unwrap());
    for _ in 0..2 {
        let r = app
            .patch(&decide, Some(&admin), &json!({"approved": false}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["status"], "REJECTED");
        assert!(r.json["refundTransactionId"].is_null());
    }
    app.patch(&decide, Some(&admin), &json!({"approved": true}))
        .await
        .assert_problem(StatusCode::CONFLICT, "dispute_already_decided");
    assert_eq!(balance(&app, &token).await, PRICE);

    // Seven days after the unlock it may still be disputed; later not.
    app.clock
        .advance(chrono::Duration::days(7) - chrono::Duration::minutes(1));
    let res = app
        .post(
            &format!("/api/v1/leads/{}/disputes", leads[2]),
            Some(&token),
            &json!({"reason": "DUPLICATE", "note": ""}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    app.clock.advance(chrono::Duration::minutes(2));
    app.post(
        &format!("/api/v1/leads/{}/disputes", leads[3]),
        Some(&token),
        &json!({"reason": "DUPLICATE", "note": ""}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "dispute_window_closed");
    let audit = app
        .get(
            &format!("/api/v1/admin/audit-log?filters[entityId][$eq]={id}"),
            Some(&admin),
        )
        .await;
    let actions: Vec<&str> = audit.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"lead_dispute.filed"), "{actions:?}");
    assert!(actions.contains(&"lead_dispute.approved"), "{actions:?}");
    assert_invariants(&app).await;
}

#[actix_web::test]
async fn randomized_soak_keeps_the_ledger_exact() {
    let app = TestApp::spawn().await;
    let (admin_id, admin) = app.admin().await;
    let (_, units) = app.project_with_units(&admin, 100).await;
    let mut lead_ids = Vec::new();
    for _ in 0..3 {
        let buyer = buyer_model(&app).await;
        lead_ids.extend(leads_for(&app, &buyer, &units).await);
    }
    let mut marketers = Vec::new();
    for _ in 0..6 {
        marketers.push(app.user(Role::Marketing, true).await);
    }
    const TASKS: u64 = 16;
    const OPS_PER_TASK: u64 = 600;
    let svc = app.state.services.clone();
    let leads = std::sync::Arc::new(lead_ids.clone());
    let users: std::sync::Arc<Vec<Uuid>> =
        std::sync::Arc::new(marketers.iter().map(|(id, _)| *id).collect());
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let svc = svc.clone();
        let leads = leads.clone();
        let users = users.clone();
        handles.push(tokio::spawn(async move {
            // A small deterministic PRNG per task (xorshift), so failures reproduce.
            let mut s: u64 = 0x9E37_79B9_7F4A_7C15 ^ (t + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
            let mut next = move || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            };
            let mut unexpected = Vec::new();
            let mut last_key: Option<(Uuid, Uuid, String)> = None;
            for i in 0..OPS_PER_TASK {
                let r = next();
                let user = users[(r % users.len() as u64) as usize];
                let actor = ActorRef {
                    user_id: Some(user),
                    request_id: None,
                };
                let viewer = Viewer {
                    user_id: user,
                    role: Role::Marketing,
                };
                let res = match r % 10 {
                    3 => {
                        // Dispute one of this user's unlocked leads (maybe already disputed).
                        let mine = leads::Entity::find()
                            .filter(leads::Column::UnlockedBy.eq(user))
                            .all(&svc.db)
                            .await
                            .unwrap();
                        match mine.get((next() % (mine.len() as u64 + 1)) as usize) {
                            None => Ok(()),
                            Some(lead) => svc
                                .file_dispute(
                                    &actor,
                                    viewer,
                                    lead.id,
                                    NewDispute {
                                        reason: DisputeReason::WrongNumber,
                                        note: format!("soak {t}-{i}"),
                                    },
                                )
                                .await
                                .map(|_| ()),
                        }
                    }
                    4 => {
                        // Decide any dispute, open or not: repeats must be idempotent.
                        let all = lead_disputes::Entity::find().all(&svc.db).await.unwrap();
                        match all.get((next() % (all.len() as u64 + 1)) as usize) {
                            None => Ok(()),
                            Some(d) => {
                                let admin = ActorRef {
                                    user_id: Some(admin_id),
                                    request_id: None,
                                };
                                let admin_viewer = Viewer {
                                    user_id: admin_id,
                                    role: Role::Admin,
                                };
                                svc.decide_dispute(
                                    &admin,
                                    admin_viewer,
                                    d.id,
                                    DisputeDecision {
                                        approved: next() % 3 != 0,
                                        note: None,
                                    },
                                )
                                .await
                                .map(|_| ())
                            }
                        }
                    }
                    0 | 1 => {
                        let admin = ActorRef {
                            user_id: Some(admin_id),
                            request_id: None,
                        };
                        svc.topup(
                            &admin,
                            user,
                            TopupInput {
                                amount: 10_000 + (next() % 5) as i64 * 25_000,
                                reference: format!("soak-{t}-{i}"),
                            },
                            Some(format!("soak-topup-{t}-{i}")),
                        )
                        .await
                        .map(|_| ())
                    }
                    2 if last_key.is_some() => {
                        // Retry the last keyed unlock: must replay, never charge again.
                        let (u, lead, key) = last_key.clone().unwrap();
                        let a = ActorRef {
                            user_id: Some(u),
                            request_id: None,
                        };
                        svc.unlock_lead(&a, u, lead, Some(key)).await.map(|_| ())
                    }
                    _ => {
                        let lead = leads[(next() % leads.len() as u64) as usize];
                        let key = (next() % 2 == 0).then(|| format!("soak-unlock-{t}-{i}"));
                        if let Some(k) = &key {
                            last_key = Some((user, lead, k.clone()));
                        }
                        svc.unlock_lead(&actor, user, lead, key).await.map(|_| ())
                    }
                };
                match res {
                    Ok(())
                    | Err(CoreError::PaymentRequired { .. })
                    | Err(CoreError::Conflict {
                        code:
                            "lead_already_unlocked"
                            | "dispute_exists"
                            | "dispute_already_decided"
                            | "dispute_window_closed",
                        ..
                    }) => {}
                    Err(e) => unexpected.push(e.to_string()),
                }
            }
            unexpected
        }));
    }
    // Meanwhile, some HTTP traffic on the same leads and wallets.
    let http = join_all((0..200).map(|i| {
        let (_, token) = &marketers[i % marketers.len()];
        let lead = lead_ids[(i * 7) % lead_ids.len()];
        let key = (i % 3 == 0).then(|| format!("http-{}", i % 30));
        let path = format!("/api/v1/leads/{lead}/unlock");
        let app = &app;
        async move { send_with_key(app, &path, token, key.as_deref(), None).await }
    }))
    .await;
    for r in &http {
        assert!(
            matches!(r.status.as_u16(), 200 | 402 | 409),
            "{} {}",
            r.status,
            r.json
        );
    }
    for h in handles {
        let unexpected = h.await.unwrap();
        assert!(unexpected.is_empty(), "unexpected errors: {unexpected:?}");
    }
    assert_invariants(&app).await;
    // Every unlocked lead was paid for exactly once, by its unlocker.
    let db = &app.state.services.db;
    let unlocked = leads::Entity::find()
        .filter(leads::Column::IsUnlocked.eq(true))
        .all(db)
        .await
        .unwrap();
    let debits = wallet_transactions::Entity::find()
        .filter(wallet_transactions::Column::TxType.eq("DEBIT"))
        .all(db)
        .await
        .unwrap();
    assert_eq!(unlocked.len(), debits.len());
    let mut per_lead: HashMap<Uuid, usize> = HashMap::new();
    for d in &debits {
        *per_lead.entry(d.lead_id.unwrap()).or_default() += 1;
        assert_eq!(d.amount, -PRICE);
    }
    assert!(per_lead.values().all(|n| *n == 1));
    assert!(!unlocked.is_empty());
    // Each approved dispute refunded its lead's price once, to its filer; nothing else refunded.
    let refunds = wallet_transactions::Entity::find()
        .filter(wallet_transactions::Column::TxType.eq("REFUND"))
        .all(db)
        .await
        .unwrap();
    let approved = lead_disputes::Entity::find()
        .filter(lead_disputes::Column::Status.eq("APPROVED"))
        .all(db)
        .await
        .unwrap();
    assert_eq!(refunds.len(), approved.len());
    let mut refunded: HashMap<Uuid, usize> = HashMap::new();
    for r in &refunds {
        assert_eq!(r.amount, PRICE);
        *refunded.entry(r.lead_id.unwrap()).or_default() += 1;
        assert!(
            approved
                .iter()
                .any(|d| d.refund_transaction_id == Some(r.id))
        );
    }
    assert!(refunded.values().all(|n| *n == 1));
    eprintln!(
        "soak: {} unlocks, {} disputes approved and refunded",
        unlocked.len(),
        approved.len()
    );
}
