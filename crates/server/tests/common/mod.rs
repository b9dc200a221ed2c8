//! The test harness every integration test uses: `TestApp::spawn()` starts the real server on
//! port 0 with a fresh database (a temporary SQLite file, or a fresh PostgreSQL database when
//! `KAVLING_TEST_DATABASE_URL`/`DATABASE_URL` points at PostgreSQL, dropped afterwards), and Redis
//! fan-out when `KAVLING_TEST_REDIS_URL`/`REDIS_URL` is set. It talks real HTTP and WebSocket.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use awc::ws;
use futures_util::{SinkExt, StreamExt};
use kavling_core::clock::OffsetClock;
use kavling_core::domain::Role;
use kavling_server::config::{Config, LogFormat};
use kavling_server::startup::{Application, BuildOptions};
use kavling_server::state::AppState;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

/// The PostgreSQL URL tests should use, if any.
pub fn test_database_url() -> Option<String> {
    std::env::var("KAVLING_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok()
        .filter(|u| u.starts_with("postgres"))
}

/// The Redis URL tests should use, if any.
pub fn test_redis_url() -> Option<String> {
    std::env::var("KAVLING_TEST_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .ok()
        .filter(|u| !u.is_empty())
}

/// A fresh database for one test: a SQLite file in a temp dir or a new PostgreSQL database.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_admin: Option<(String, String)>,
}

fn pg_admin_url(url: &str) -> String {
    // Replace the database name with `postgres`, keeping any query string.
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    match base[scheme_end..].find('/') {
        Some(i) => format!("{}/postgres{query}", &base[..scheme_end + i]),
        None => format!("{base}/postgres{query}"),
    }
}

impl TestDb {
    pub async fn new() -> TestDb {
        match test_database_url() {
            Some(url) => {
                let admin = pg_admin_url(&url);
                let name = format!("kavling_t_{}", Uuid::now_v7().simple());
                let conn = sea_orm::Database::connect(&admin)
                    .await
                    .expect("connect to PostgreSQL");
                conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                let base = admin
                    .split('?')
                    .next()
                    .unwrap()
                    .trim_end_matches("/postgres")
                    .to_owned();
                TestDb {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    pg_admin: Some((admin, name)),
                }
            }
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/kavling.db?mode=rwc", dir.path().display());
                TestDb {
                    url,
                    _dir: Some(dir),
                    pg_admin: None,
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg_admin.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_admin.take() {
            // Drop runs outside async; use a private runtime on a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let conn = sea_orm::Database::connect(&admin).await.ok()?;
                    conn.execute_unprepared(&format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    ))
                    .await
                    .ok()?;
                    conn.close().await.ok()
                })
            })
            .join();
        }
    }
}

/// Options for spawning.
#[derive(Clone)]
pub struct SpawnOptions {
    pub use_redis: bool,
    /// With `use_redis`: this Redis instead of the environment's (a test's own redis-server).
    pub redis_url: Option<String>,
    pub seed_demo: bool,
    pub catch_up_every: Duration,
    pub hub: kavling_realtime::HubConfig,
    pub max_siteplan_bytes: usize,
    pub ws: kavling_server::ws::WsConfig,
    pub ws_echo: bool,
    pub event_retention: i64,
    pub prune_every: Duration,
    /// Login/register burst per IP (generous: only the rate-limit test lowers it).
    pub auth_rate_burst: u32,
    pub expiry_every: Duration,
    pub overdue_every: Duration,
    /// Chat messages per user (the rate-limit test lowers it).
    pub chat_rate: kavling_core::services::ratelimit::RateLimit,
    /// Notifier poll (None: this instance runs no notifier).
    pub notify_every: Option<Duration>,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            use_redis: true,
            redis_url: None,
            seed_demo: false,
            catch_up_every: Duration::from_millis(500),
            hub: kavling_realtime::HubConfig::default(),
            max_siteplan_bytes: kavling_server::config::DEFAULT_MAX_SITEPLAN_BYTES,
            ws: kavling_server::ws::WsConfig::default(),
            ws_echo: false,
            event_retention: 10_000,
            prune_every: Duration::from_secs(60),
            auth_rate_burst: 100_000,
            expiry_every: Duration::from_millis(200),
            overdue_every: Duration::from_millis(200),
            chat_rate: kavling_core::services::ratelimit::RateLimit {
                per_minute: 600,
                burst: 100,
            },
            notify_every: Some(Duration::from_millis(500)),
        }
    }
}

/// A running Kavling on a random port.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub state: AppState,
    pub clock: OffsetClock,
    pub client: awc::Client,
    pub storage: Arc<tempfile::TempDir>,
    pub db: Arc<TestDb>,
    pub jwt_secret: Vec<u8>,
    pub pii_key: [u8; 32],
}

pub fn test_config(
    db_url: &str,
    storage: &std::path::Path,
    opts: &SpawnOptions,
    jwt: &[u8],
    pii: [u8; 32],
) -> Config {
    Config {
        bind: "127.0.0.1:0".into(),
        database_url: db_url.to_owned(),
        redis_url: match &opts.redis_url {
            Some(url) => Some(url.clone()),
            None if opts.use_redis => test_redis_url(),
            None => None,
        },
        jwt_secret: jwt.to_vec(),
        pii_key: pii,
        storage_dir: storage.to_path_buf(),
        log_format: LogFormat::Pretty,
        max_siteplan_bytes: opts.max_siteplan_bytes,
        workers: Some(2),
        db_pool_size: None,
        cors_origins: vec![],
        seed_demo: opts.seed_demo,
        auth_rate_per_second: 1,
        auth_rate_burst: opts.auth_rate_burst,
        kpr_rate_bps: 900,
        chat_rate: opts.chat_rate,
        warnings: vec![],
        ws_echo: opts.ws_echo,
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(SpawnOptions::default()).await
    }

    pub async fn spawn_with(opts: SpawnOptions) -> TestApp {
        let db = Arc::new(TestDb::new().await);
        Self::spawn_on(
            db,
            opts,
            b"test-secret-test-secret-test-secret!".to_vec(),
            [42u8; 32],
        )
        .await
    }

    /// A second instance sharing this one's database, keys and Redis.
    pub async fn spawn_peer(&self, opts: SpawnOptions) -> TestApp {
        Self::spawn_on(self.db.clone(), opts, self.jwt_secret.clone(), self.pii_key).await
    }

    async fn spawn_on(db: Arc<TestDb>, opts: SpawnOptions, jwt: Vec<u8>, pii: [u8; 32]) -> TestApp {
        if std::env::var("KAVLING_TEST_LOG").is_ok() {
            kavling_server::telemetry::init(LogFormat::Pretty);
        }
        let storage = Arc::new(tempfile::tempdir().expect("temp dir"));
        let config = test_config(&db.url, storage.path(), &opts, &jwt, pii);
        let clock = OffsetClock::default();
        let app = Application::build(
            &config,
            BuildOptions {
                clock: Arc::new(clock.clone()),
                hub: opts.hub.clone(),
                catch_up_every: opts.catch_up_every,
                ws: opts.ws.clone(),
                event_retention: opts.event_retention,
                prune_every: opts.prune_every,
                expiry_every: opts.expiry_every,
                overdue_every: opts.overdue_every,
                notify_every: opts.notify_every,
            },
        )
        .await
        .expect("build the application");
        let port = app.port();
        let state = app.state.clone();
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            state,
            clock,
            client: awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish(),
            storage,
            db,
            jwt_secret: jwt,
            pii_key: pii,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends a request and returns status, headers and the body parsed as JSON (Null if empty or not JSON).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> TestResponse {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let mut res = match body {
            Some(b) => req.send_json(b).await,
            None => req.send().await,
        }
        .expect("request sent");
        let bytes = res.body().limit(64 * 1024 * 1024).await.expect("body");
        TestResponse {
            status: res.status(),
            headers: res.headers().clone(),
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            bytes: bytes.to_vec(),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> TestResponse {
        self.send(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> TestResponse {
        self.send(Method::PATCH, path, token, Some(body)).await
    }

    /// Creates a user directly and returns (id, token).
    pub async fn user(&self, role: Role, verified: bool) -> (Uuid, String) {
        let email = format!(
            "{}-{}@test.kavling",
            role.as_str().to_lowercase(),
            Uuid::now_v7().simple()
        );
        let user = self
            .state
            .services
            .create_user_with_role(&email, "password123", "Test User", role, verified)
            .await
            .expect("create user");
        let token = self
            .state
            .services
            .tokens
            .issue(user.id, role, chrono::Utc::now().timestamp())
            .expect("token");
        (user.id, token)
    }

    pub async fn admin(&self) -> (Uuid, String) {
        self.user(Role::Admin, true).await
    }

    /// Creates a project with `n` units A1..An and returns (project id, unit ids by block).
    pub async fn project_with_units(&self, admin: &str, n: usize) -> (Uuid, Vec<(String, Uuid)>) {
        let res = self
            .post(
                "/api/v1/projects",
                Some(admin),
                &json!({"name": "Griya Test", "location": "Bogor"}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
        let project: Uuid = res.json["id"].as_str().unwrap().parse().unwrap();
        let units: Vec<Value> = (1..=n)
            .map(|i| json!({"blockNumber": format!("A{i}"), "type": "36/72", "price": 450_000_000 + i as i64}))
            .collect();
        let res = self
            .post(
                &format!("/api/v1/projects/{project}/units"),
                Some(admin),
                &Value::Array(units),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
        let ids = res
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["blockNumber"].as_str().unwrap().to_owned(),
                    u["id"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        (project, ids)
    }

    /// `POST /invoices/{invoice}/payments` (multipart: amount, TRANSFER, a fixed paidAt, and
    /// the proof `file` if given).
    pub async fn submit_payment(
        &self,
        token: &str,
        invoice: &str,
        amount: &str,
        file: Option<&[u8]>,
    ) -> TestResponse {
        self.post_multipart(
            &format!("/api/v1/invoices/{invoice}/payments"),
            token,
            &[
                ("amount", amount),
                ("method", "TRANSFER"),
                ("paidAt", "2026-12-03T10:00:00+07:00"),
            ],
            file.map(|bytes| ("../../bukti.png", bytes)),
        )
        .await
    }

    /// POSTs a multipart form: the text `fields`, then a `file` part (name, bytes) if given.
    pub async fn post_multipart(
        &self,
        path: &str,
        token: &str,
        fields: &[(&str, &str)],
        file: Option<(&str, &[u8])>,
    ) -> TestResponse {
        let boundary = "----kavling-test-boundary-7MA4YWxk";
        let mut body = Vec::new();
        for (field, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        if let Some((filename, bytes)) = file {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let mut res = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .insert_header((
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            ))
            .send_body(body)
            .await
            .expect("upload sent");
        let bytes = res.body().limit(1 << 20).await.expect("body");
        TestResponse {
            status: res.status(),
            headers: res.headers().clone(),
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            bytes: bytes.to_vec(),
        }
    }

    /// Opens a WebSocket to `/ws` (optionally with `?token=`).
    pub async fn ws(&self, token: Option<&str>) -> WsClient {
        let url = match token {
            Some(t) => format!("ws://127.0.0.1:{}/ws?token={t}", self.port),
            None => format!("ws://127.0.0.1:{}/ws", self.port),
        };
        let (_res, framed) = awc::Client::new()
            .ws(url)
            .connect()
            .await
            .expect("ws connect");
        WsClient { framed }
    }
}

/// A response, with the body as JSON.
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub json: Value,
    pub bytes: Vec<u8>,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Asserts a problem+json error with a status and code.
    pub fn assert_problem(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.json);
        assert_eq!(self.json["code"], code, "body: {}", self.json);
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        assert_eq!(self.json["status"], status.as_u16());
    }
}

/// A WebSocket client speaking JSON text frames.
pub struct WsClient {
    pub framed: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
}

impl WsClient {
    pub async fn send(&mut self, v: &Value) {
        self.framed
            .send(ws::Message::Text(v.to_string().into()))
            .await
            .expect("ws send");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.framed
            .send(ws::Message::Text(text.to_owned().into()))
            .await
            .expect("ws send");
    }

    /// The next JSON text frame within `timeout` (pings are answered and skipped).
    pub async fn recv_within(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.framed.next())
                .await
                .ok()??;
            match frame.ok()? {
                ws::Frame::Text(b) => return serde_json::from_slice(&b).ok(),
                ws::Frame::Ping(p) => {
                    let _ = self.framed.send(ws::Message::Pong(p)).await;
                }
                ws::Frame::Close(_) => return None,
                _ => {}
            }
        }
    }

    pub async fn recv(&mut self) -> Value {
        self.recv_within(Duration::from_secs(5))
            .await
            .expect("a frame within 5 s")
    }

    /// The close frame's code, waiting up to `timeout`.
    pub async fn closed_with(&mut self, timeout: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.framed.next())
                .await
                .ok()??;
            if let Ok(ws::Frame::Close(reason)) = frame {
                return reason.map(|r| u16::from(r.code));
            }
        }
    }
}
