//! Accounts over real HTTP and WebSocket: the admins' user list, password changes and disabling,
//! and how each revokes tokens at once on every instance (HTTP and open staff sockets), also when
//! the bus message is lost. Runs on SQLite with the in-process bus (instances then share only the
//! database), and on PostgreSQL with Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use common::{SpawnOptions, TestApp, WsClient, test_redis_url};
use kavling_core::clock::Clock;
use kavling_core::domain::Role;
use kavling_core::entities::users;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, ExprTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

/// The close code of a revoked connection.
const POLICY: u16 = 1008;

/// Registers a user through the API; returns (id, email, token).
async fn register(app: &TestApp, role: &str, password: &str) -> (Uuid, String, String) {
    let email = format!("acc-{}@test.kavling", Uuid::now_v7().simple());
    let res = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": email, "password": password, "fullName": "Akun Uji", "role": role}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    let id = res.json["user"]["id"].as_str().unwrap().parse().unwrap();
    (id, email, res.json["token"].as_str().unwrap().to_owned())
}

async fn login(app: &TestApp, email: &str, password: &str) -> common::TestResponse {
    app.post(
        "/api/v1/auth/login",
        None,
        &json!({"email": email, "password": password}),
    )
    .await
}

async fn change_password(
    app: &TestApp,
    token: Option<&str>,
    current: &str,
    new: &str,
) -> common::TestResponse {
    app.post(
        "/api/v1/me/password",
        token,
        &json!({"currentPassword": current, "newPassword": new}),
    )
    .await
}

async fn set_disabled(
    app: &TestApp,
    admin: &str,
    user: Uuid,
    disabled: bool,
) -> common::TestResponse {
    let verb = if disabled { "disable" } else { "enable" };
    app.post(
        &format!("/api/v1/admin/users/{user}/{verb}"),
        Some(admin),
        &json!({}),
    )
    .await
}

/// Audit rows of an action about one user.
async fn audit_rows(app: &TestApp, admin: &str, action: &str, user: Uuid) -> Vec<Value> {
    let res = app
        .get(
            &format!(
                "/api/v1/admin/audit-log?filters[action][$eq]={action}&filters[entityId][$eq]={user}"
            ),
            Some(admin),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    res.json["data"].as_array().unwrap().clone()
}

/// A WebSocket subscribed to the project's staff channel (snapshot and `subscribed` checked).
async fn staff_socket(app: &TestApp, token: &str, project: Uuid) -> WsClient {
    let mut ws = app.ws(Some(token)).await;
    let channel = format!("project:{project}:staff");
    ws.send(&json!({"op": "subscribe", "channel": channel}))
        .await;
    let snap = ws.recv().await;
    assert_eq!(snap["type"], "snapshot", "{snap}");
    let sub = ws.recv().await;
    assert_eq!(sub["type"], "subscribed", "{sub}");
    ws
}

fn emails(res: &common::TestResponse) -> Vec<String> {
    res.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn admins_list_users_with_filters_sorting_and_pagination() {
    let app = TestApp::spawn().await;
    let (admin_id, admin) = app.admin().await;
    let (buyer_id, buyer) = app.user(Role::Buyer, false).await;
    let (approved_id, approved) = app.user(Role::Marketing, true).await;
    let mut pending = Vec::new();
    for _ in 0..2 {
        let (id, _) = app.user(Role::Marketing, false).await;
        pending.push(id);
    }
    // Two marketing users have submitted their documents: the KYC queue.
    let submitted = app.clock.now();
    users::Entity::update_many()
        .col_expr(users::Column::KycStatus, Expr::value("PENDING"))
        .col_expr(users::Column::KycSubmittedAt, Expr::value(submitted))
        .filter(users::Column::Id.is_in(pending.clone()))
        .exec(&app.state.services.db)
        .await
        .unwrap();

    // Everyone, newest first by default, in the admin view.
    let res = app.get("/api/v1/admin/users", Some(&admin)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["meta"]["pagination"]["total"], 5);
    let data = res.json["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|u| u["id"].as_str().unwrap()).collect();
    let expected: Vec<String> = [admin_id, buyer_id, approved_id, pending[0], pending[1]]
        .iter()
        .rev()
        .map(Uuid::to_string)
        .collect();
    assert_eq!(ids, expected);
    let first = &data[0];
    for field in [
        "id",
        "email",
        "fullName",
        "phone",
        "role",
        "isVerified",
        "kycStatus",
        "companyName",
        "isDisabled",
        "createdAt",
        "kycSubmittedAt",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    assert_eq!(first["isDisabled"], false);
    assert!(first.get("passwordHash").is_none() && first.get("tokenVersion").is_none());
    assert!(!res.bytes.windows(7).any(|w| w == b"argon2i"));

    // The KYC queue.
    let res = app
        .get(
            "/api/v1/admin/users?filters[kycStatus][$eq]=PENDING",
            Some(&admin),
        )
        .await;
    assert_eq!(res.json["meta"]["pagination"]["total"], 2, "{}", res.json);
    for u in res.json["data"].as_array().unwrap() {
        assert_eq!(u["kycStatus"], "PENDING");
        assert_eq!(u["role"], "MARKETING");
        assert!(u["kycSubmittedAt"].is_string(), "{u}");
    }
    let res = app
        .get(
            "/api/v1/admin/users?filters[kycStatus][$in][0]=PENDING&filters[kycStatus][$in][1]=APPROVED",
            Some(&admin),
        )
        .await;
    // The two pending, the approved marketing user and the (approved) admin.
    assert_eq!(res.json["meta"]["pagination"]["total"], 4, "{}", res.json);
    let res = app
        .get(
            "/api/v1/admin/users?filters[role][$eq]=MARKETING&filters[kycStatus][$eq]=APPROVED",
            Some(&admin),
        )
        .await;
    assert_eq!(res.json["meta"]["pagination"]["total"], 1);
    assert_eq!(res.json["data"][0]["id"], approved_id.to_string());
    let res = app
        .get("/api/v1/admin/users?filters[role][$eq]=BUYER", Some(&admin))
        .await;
    assert_eq!(res.json["meta"]["pagination"]["total"], 1);
    assert_eq!(res.json["data"][0]["id"], buyer_id.to_string());

    // Email: a case-insensitive part, or the whole address.
    let me = app.get("/api/v1/me", Some(&approved)).await;
    let email = me.json["email"].as_str().unwrap().to_owned();
    // The random tail of the UUID v7 in the address (its head is a timestamp shared by all).
    let local = email.split('@').next().unwrap();
    let part = local[local.len() - 12..].to_uppercase();
    let res = app
        .get(
            &format!("/api/v1/admin/users?filters[email][$containsi]={part}"),
            Some(&admin),
        )
        .await;
    assert_eq!(emails(&res), vec![email.clone()], "{}", res.json);
    let res = app
        .get(
            &format!("/api/v1/admin/users?filters[email][$eq]={email}"),
            Some(&admin),
        )
        .await;
    assert_eq!(emails(&res), vec![email.clone()]);
    let res = app
        .get(
            "/api/v1/admin/users?filters[email][$containsi]=marketing-",
            Some(&admin),
        )
        .await;
    assert_eq!(res.json["meta"]["pagination"]["total"], 3);

    // Sorting and pagination.
    let res = app
        .get("/api/v1/admin/users?sort=email:asc", Some(&admin))
        .await;
    let all = emails(&res);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    let res = app
        .get(
            "/api/v1/admin/users?sort=email:asc&pagination[page]=2&pagination[pageSize]=2",
            Some(&admin),
        )
        .await;
    assert_eq!(emails(&res), all[2..4]);
    assert_eq!(
        res.json["meta"]["pagination"],
        json!({"page": 2, "pageSize": 2, "pageCount": 3, "total": 5})
    );

    // Unknown fields, operators and values.
    for bad in [
        "filters[passwordHash][$eq]=x",
        "filters[role][$like]=ADMIN",
        "filters[role][$eq]=admin",
        "filters[kycStatus][$containsi]=PEN",
        "sort=tokenVersion:asc",
        "pagination[pageSize]=101",
    ] {
        app.get(&format!("/api/v1/admin/users?{bad}"), Some(&admin))
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "invalid_query");
    }

    // Admins only.
    for token in [&approved, &buyer] {
        app.get("/api/v1/admin/users", Some(token))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    app.get("/api/v1/admin/users", None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[actix_web::test]
async fn changing_the_password_revokes_every_older_token() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (id, email, first) = register(&app, "BUYER", "lama-rahasia1").await;
    let second = login(&app, &email, "lama-rahasia1").await.json["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A wrong current password is 403 (the session is fine), and changes nothing.
    change_password(&app, Some(&first), "not-my-password", "baru-rahasia1")
        .await
        .assert_problem(StatusCode::FORBIDDEN, "invalid_credentials");
    // A new password too short, or the current one again: 422 naming the field.
    for new in ["pendek", "lama-rahasia1"] {
        let res = change_password(&app, Some(&first), "lama-rahasia1", new).await;
        res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(
            res.json["errors"][0]["field"], "newPassword",
            "{}",
            res.json
        );
    }
    change_password(&app, None, "lama-rahasia1", "baru-rahasia1")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        app.get("/api/v1/me", Some(&first)).await.status,
        StatusCode::OK
    );
    assert!(
        audit_rows(&app, &admin, "user.password_changed", id)
            .await
            .is_empty()
    );

    let res = change_password(&app, Some(&first), "lama-rahasia1", "baru-rahasia1").await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.json);
    assert!(res.bytes.is_empty());

    // Every token issued before, on every route.
    for token in [&first, &second] {
        app.get("/api/v1/me", Some(token))
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        change_password(&app, Some(token), "baru-rahasia1", "lagi-rahasia1")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        app.post(
            "/api/v1/leads",
            Some(token),
            &json!({"unitId": Uuid::now_v7(), "consent": true}),
        )
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    login(&app, &email, "lama-rahasia1")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let res = login(&app, &email, "baru-rahasia1").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let third = res.json["token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/v1/me", Some(third)).await.json["id"],
        id.to_string()
    );

    // One audit row, without the hash.
    let rows = audit_rows(&app, &admin, "user.password_changed", id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["actorId"], id.to_string());
    assert!(!rows[0].to_string().contains("argon2"), "{}", rows[0]);
    assert!(!rows[0].to_string().contains("rahasia"), "{}", rows[0]);
}

#[actix_web::test]
async fn disabling_a_user_revokes_their_tokens_and_blocks_login_until_enabled() {
    let app = TestApp::spawn().await;
    let (admin_id, admin) = app.admin().await;
    let (id, email, token) = register(&app, "MARKETING", "rahasia-kantor").await;
    assert_eq!(
        app.get("/api/v1/me", Some(&token)).await.status,
        StatusCode::OK
    );

    let res = set_disabled(&app, &admin, id, true).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["id"], id.to_string());
    assert_eq!(res.json["isDisabled"], true);
    assert!(res.json["disabledAt"].is_string(), "{}", res.json);
    assert_eq!(res.json["email"], email);

    // The token stops working at once; login says why only to the right password.
    app.get("/api/v1/me", Some(&token))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    login(&app, &email, "rahasia-kantor")
        .await
        .assert_problem(StatusCode::FORBIDDEN, "account_disabled");
    login(&app, &email, "salah-tebak")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");

    // Idempotent: 200 again, one audit row.
    let again = set_disabled(&app, &admin, id, true).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json["disabledAt"], res.json["disabledAt"]);
    assert_eq!(audit_rows(&app, &admin, "user.disabled", id).await.len(), 1);
    let listed = app
        .get(
            &format!("/api/v1/admin/users?filters[email][$eq]={email}"),
            Some(&admin),
        )
        .await;
    assert_eq!(listed.json["data"][0]["isDisabled"], true);

    // Not themselves; unknown or malformed ids; admins only.
    set_disabled(&app, &admin, admin_id, true)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "cannot_disable_self");
    assert_eq!(
        app.get("/api/v1/me", Some(&admin)).await.status,
        StatusCode::OK
    );
    for disabled in [true, false] {
        set_disabled(&app, &admin, Uuid::now_v7(), disabled)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    app.post(
        "/api/v1/admin/users/not-a-uuid/disable",
        Some(&admin),
        &json!({}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let (_, marketing) = app.user(Role::Marketing, true).await;
    set_disabled(&app, &marketing, id, false)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    // Enabled: login works again, the token from before the disable stays revoked.
    let res = set_disabled(&app, &admin, id, false).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(res.json["isDisabled"], false);
    assert_eq!(res.json["disabledAt"], Value::Null);
    assert_eq!(
        set_disabled(&app, &admin, id, false).await.status,
        StatusCode::OK
    );
    assert_eq!(audit_rows(&app, &admin, "user.enabled", id).await.len(), 1);
    app.get("/api/v1/me", Some(&token))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let res = login(&app, &email, "rahasia-kantor").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let fresh = res.json["token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/v1/me", Some(fresh)).await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn the_staff_socket_of_a_user_who_gets_disabled_is_closed() {
    // No catch-up in time: the revocation published after commit must close it.
    let app = TestApp::spawn_with(SpawnOptions {
        catch_up_every: Duration::from_secs(60),
        ..SpawnOptions::default()
    })
    .await;
    let (_, admin) = app.admin().await;
    let (marketing_id, marketing) = app.user(Role::Marketing, true).await;
    let (project, units) = app.project_with_units(&admin, 1).await;
    let mut theirs = staff_socket(&app, &marketing, project).await;
    let mut admins = staff_socket(&app, &admin, project).await;

    let res = set_disabled(&app, &admin, marketing_id, true).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let started = Instant::now();
    assert_eq!(
        theirs.closed_with(Duration::from_secs(2)).await,
        Some(POLICY),
        "the disabled user's socket is closed with 1008"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // Everyone else keeps their rights.
    let res = app
        .patch(
            &format!("/api/v1/units/{}", units[0].1),
            Some(&admin),
            &json!({"status": "BOOKED"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let f = admins.recv().await;
    assert_eq!(f["type"], "unit", "{f}");

    // The old token now connects as anyone: no staff channel.
    let mut again = app.ws(Some(&marketing)).await;
    let channel = format!("project:{project}:staff");
    again
        .send(&json!({"op": "subscribe", "channel": channel}))
        .await;
    let err = again.recv().await;
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["code"], "forbidden", "{err}");
}

#[actix_web::test]
async fn a_password_changed_on_one_instance_revokes_the_token_on_another_and_closes_its_socket() {
    let app = TestApp::spawn().await;
    let redis = test_redis_url().is_some();
    // With Redis, the peer must learn it through pub/sub: its catch-up is far too slow to help.
    // Without Redis the instances share only the database: the catch-up (1 s) must do it.
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
        eprintln!("REDIS_URL unset: testing cross-instance revocation by database catch-up only");
    }
    let (_, admin) = app.admin().await;
    // `TestApp::user` makes accounts with the password `password123`.
    let (_, marketing) = app.user(Role::Marketing, true).await;
    let (project, _) = app.project_with_units(&admin, 1).await;
    let mut on_peer = staff_socket(&peer, &marketing, project).await;
    let mut admin_on_peer = staff_socket(&peer, &admin, project).await;

    let res = change_password(&app, Some(&marketing), "password123", "kata-sandi-baru").await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.json);
    // Committed (the hashing before it takes its own time, on a busy machine a second or more).
    let started = Instant::now();
    peer.get("/api/v1/me", Some(&marketing))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        on_peer.closed_with(Duration::from_secs(2)).await,
        Some(POLICY),
        "the other instance closes the socket within 2 s"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(peer.state.hub.metrics().revoked_closes.get(), 1);
    // Only that user's socket.
    admin_on_peer.send(&json!({"op": "ping"})).await;
    assert_eq!(admin_on_peer.recv().await["type"], "pong");
}

#[actix_web::test]
async fn a_revocation_whose_bus_message_is_lost_closes_sockets_by_catch_up_within_2_s() {
    let app = TestApp::spawn().await;
    let peer = app
        .spawn_peer(SpawnOptions {
            catch_up_every: Duration::from_secs(1),
            ..SpawnOptions::default()
        })
        .await;
    let (_, admin) = app.admin().await;
    let (marketing_id, marketing) = app.user(Role::Marketing, true).await;
    let (project, _) = app.project_with_units(&admin, 1).await;
    let mut on_app = staff_socket(&app, &marketing, project).await;
    let mut on_peer = staff_socket(&peer, &marketing, project).await;

    // A committed revocation whose publish never happened: the row alone, as the password
    // change writes it.
    let now = app.clock.now();
    let res = users::Entity::update_many()
        .col_expr(
            users::Column::TokenVersion,
            Expr::col(users::Column::TokenVersion).add(1),
        )
        .col_expr(users::Column::TokensChangedAt, Expr::value(now))
        .filter(users::Column::Id.eq(marketing_id))
        .exec(&app.state.services.db)
        .await
        .unwrap();
    assert_eq!(res.rows_affected, 1);
    let started = Instant::now();
    for ws in [&mut on_app, &mut on_peer] {
        assert_eq!(
            ws.closed_with(Duration::from_secs(2)).await,
            Some(POLICY),
            "closed by the catch-up within 2 s"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    app.get("/api/v1/me", Some(&marketing))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}
