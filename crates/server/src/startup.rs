//! Building and running the application: database, migrations, seed, hub, bus, HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::{HttpService, KeepAlive};
use actix_service::map_config;
use actix_web::dev::{AppConfig, Extensions, Server};
use actix_web::middleware::from_fn;
use actix_web::rt::net::TcpStream;
use actix_web::{App, web};
use kavling_core::Services;
use kavling_core::clock::{Clock, SystemClock};
use kavling_core::event_store::DbEventStore;
use kavling_core::seed::DemoSeed;
use kavling_realtime::{Bus, Hub, HubConfig, InProcessBus, RedisBus};

use crate::config::Config;
use crate::error::{json_error, path_error, query_error};
use crate::jobs::{JobMetrics, Jobs};
use crate::middleware::request_id;
use crate::routes;
use crate::state::{AppState, redis_probe::RedisProbe};

/// CORS for browser clients: only the configured origins (none when empty); requests without an
/// `Origin`, or from other origins, pass through without CORS headers.
fn cors(origins: &[String]) -> actix_cors::Cors {
    origins.iter().fold(
        actix_cors::Cors::default()
            .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
            .allowed_headers([
                "authorization",
                "content-type",
                "idempotency-key",
                "x-request-id",
            ])
            .expose_headers(["x-request-id", "retry-after", "idempotent-replayed"])
            .max_age(3600),
        // Config validates origins; skip anything actix-cors would refuse at start rather than fail.
        |cors, origin| {
            if origin != "*" && origin.parse::<actix_web::http::Uri>().is_ok() {
                cors.allowed_origin(origin)
            } else {
                cors
            }
        },
    )
}

/// Largest JSON body accepted.
pub const JSON_LIMIT: usize = 1024 * 1024;

/// Why the application could not start (each names what to fix; the binary exits with code 2).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Database setup.
    #[error(transparent)]
    Db(#[from] kavling_core::db::DbSetupError),
    /// Redis at start.
    #[error("REDIS_URL: {0}")]
    Redis(#[from] kavling_realtime::BusError),
    /// Binding the address.
    #[error("KAVLING_BIND: cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Keys.
    #[error("KAVLING_PII_KEY: {0}")]
    Keys(kavling_core::CoreError),
    /// Seeding.
    #[error("seeding the demo project failed: {0}")]
    Seed(kavling_core::CoreError),
}

/// Options that tests (and only tests) change.
#[derive(Clone)]
pub struct BuildOptions {
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Hub tuning.
    pub hub: HubConfig,
    /// Catch-up tick.
    pub catch_up_every: Duration,
    /// WebSocket session timers and limits.
    pub ws: crate::ws::WsConfig,
    /// Events kept per project in `unit_events` (older ones are pruned); at least the hub's
    /// `max_replay` so any replay it attempts is covered.
    pub event_retention: i64,
    /// How often old events are pruned.
    pub prune_every: Duration,
    /// How often expired booking holds are cancelled.
    pub expiry_every: Duration,
    /// How often unpaid invoices past their due date are marked OVERDUE (at most 60 s).
    pub overdue_every: Duration,
    /// How often the notifier polls for unit changes to notify watchers of (it is also woken
    /// right after each such commit on this instance); None: this instance runs no notifier.
    pub notify_every: Option<Duration>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            clock: Arc::new(SystemClock),
            hub: HubConfig::default(),
            catch_up_every: Duration::from_secs(1),
            ws: crate::ws::WsConfig::default(),
            event_retention: 10_000,
            prune_every: Duration::from_secs(60),
            expiry_every: Duration::from_secs(2),
            overdue_every: Duration::from_secs(30),
            notify_every: Some(Duration::from_secs(1)),
        }
    }
}

/// A built, not yet running, application.
pub struct Application {
    server: Server,
    port: u16,
    /// Shared state (tests reach into the services).
    pub state: AppState,
    /// What the demo seed created, if it ran.
    pub seeded: Option<DemoSeed>,
    /// Periodic jobs, stopped once the server has drained so that none is cut off by the
    /// runtime's shutdown half-way through a query.
    jobs: Jobs,
}

impl Application {
    /// Opens the database, migrates, seeds if configured and empty, wires the hub and bus, binds.
    pub async fn build(
        config: &Config,
        options: BuildOptions,
    ) -> Result<Application, StartupError> {
        let db = kavling_core::db::connect(&config.database_url, config.db_pool_size).await?;
        kavling_core::db::migrate(&db).await?;

        let hub = Hub::new(Arc::new(DbEventStore::new(db.clone())), options.hub.clone());
        let bus: Arc<dyn Bus> = match &config.redis_url {
            Some(url) => Arc::new(RedisBus::connect(url, hub.clone()).await?),
            None => Arc::new(InProcessBus::new(hub.clone())),
        };
        let services = Services::new(db, bus, options.clock.clone(), &config.service_settings())
            .map_err(StartupError::Keys)?;
        let job_metrics = Arc::new(JobMetrics::default());
        let mut jobs = Jobs::new(job_metrics.clone());
        start_jobs(&mut jobs, &hub, &services, &options);
        let seeded = if config.seed_demo && services.is_empty().await.map_err(StartupError::Seed)? {
            Some(services.seed_demo().await.map_err(StartupError::Seed)?)
        } else {
            None
        };

        let listener = TcpListener::bind(&config.bind).map_err(|source| StartupError::Bind {
            addr: config.bind.clone(),
            source,
        })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let state = AppState {
            services,
            hub,
            max_siteplan_bytes: config.max_siteplan_bytes,
            redis: config.redis_url.as_deref().map(RedisProbe::new),
            ws: options.ws.clone(),
            ws_echo: config.ws_echo,
            http_metrics: Arc::default(),
            job_metrics,
            auth_limiter: crate::ratelimit::auth_limiter(
                config.auth_rate_per_second,
                config.auth_rate_burst,
            ),
            writes: tokio::runtime::Handle::current(),
        };
        if let Some(limiter) = &state.auth_limiter {
            let limiter = limiter.limiter().clone();
            // Forgets idle clients so the limiter's memory stays bounded.
            jobs.spawn("auth_limiter_retain", Duration::from_secs(60), move || {
                limiter.retain_recent();
                limiter.shrink_to_fit();
                std::future::ready(Ok::<u64, std::convert::Infallible>(0))
            });
        }
        let server = run(
            listener,
            state.clone(),
            config.workers,
            config.cors_origins.clone(),
        )
        .map_err(|source| StartupError::Bind {
            addr: config.bind.clone(),
            source,
        })?;
        Ok(Application {
            server,
            port,
            state,
            seeded,
            jobs,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until stopped (Ctrl-C or SIGTERM: graceful shutdown).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.jobs.stop();
        result
    }
}

/// Starts the instance's periodic database jobs. Several instances running them at once is
/// harmless: each is idempotent (conditional updates, `SKIP LOCKED`, idempotent deletes).
fn start_jobs(jobs: &mut Jobs, hub: &Arc<Hub>, services: &Services, options: &BuildOptions) {
    let weak = Arc::downgrade(hub);
    jobs.spawn("hub_catch_up", options.catch_up_every, move || {
        let hub = weak.upgrade();
        async move {
            match hub {
                Some(hub) => hub.catch_up_once().await,
                None => Ok(0),
            }
        }
    });
    let db = services.db.clone();
    let keep = options.event_retention;
    jobs.spawn("unit_event_pruning", options.prune_every, move || {
        let db = db.clone();
        async move { kavling_core::unit_changes::prune_unit_events(&db, keep, 1000).await }
    });
    let s = services.clone();
    jobs.spawn("hold_expiry", options.expiry_every, move || {
        let s = s.clone();
        async move { s.expire_holds().await.map(count) }
    });
    let s = services.clone();
    jobs.spawn("overdue_invoices", options.overdue_every, move || {
        let s = s.clone();
        async move { s.mark_overdue().await.map(count) }
    });
    if let Some(every) = options.notify_every {
        // At once when a commit here wakes it, and every `every` for changes committed elsewhere
        // (or before a crash).
        let wake = services.notifier.clone();
        let s = services.clone();
        jobs.spawn_woken(
            "notifier",
            every,
            move || {
                let wake = wake.clone();
                async move { wake.woken().await }
            },
            move || {
                let s = s.clone();
                async move { s.run_notifier().await.map(count) }
            },
        );
    }
}

/// A job's item count as the job runner takes it.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Tunes every accepted socket; see [`disable_nagle`] and [`crate::ws::WsConfig::unacked_timeout`].
fn tune_socket(tcp: &TcpStream, unacked_timeout: Duration) {
    disable_nagle(tcp);
    drop_when_unacknowledged_for(tcp, unacked_timeout);
}

/// Sends every write at once. A WebSocket frame is often a small write after another (the tail of
/// a large frame, the next event of a burst), which Nagle's algorithm would hold until the client
/// acknowledges the previous one: up to its delayed-ACK time, ~40 ms on Linux. The WebSocket
/// writer already gathers what is queued into one write, so this adds no packets to a busy connection.
fn disable_nagle(tcp: &actix_web::rt::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "could not disable Nagle's algorithm on a connection");
    }
}

/// Lets the kernel drop the connection once sent data has gone unacknowledged (or a zero
/// window unopened) for `timeout`, which also ends its dispatcher, session and subscriptions.
fn drop_when_unacknowledged_for(tcp: &actix_web::rt::net::TcpStream, timeout: Duration) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(timeout)) {
        tracing::debug!(error = %e, "could not set TCP_USER_TIMEOUT on a connection");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (tcp, timeout);
}

fn run(
    listener: TcpListener,
    state: AppState,
    workers: Option<usize>,
    cors_origins: Vec<String>,
) -> std::io::Result<Server> {
    let ws_echo = state.ws_echo;
    let unacked_timeout = state.ws.unacked_timeout;
    let local_addr = listener.local_addr()?;
    let data = web::Data::new(state);
    let app = move || {
        let echo = web::resource("/ws-echo").route(web::get().to(crate::ws::echo));
        let app = App::new()
            .wrap(cors(&cors_origins))
            .wrap(from_fn(request_id))
            .app_data(data.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(JSON_LIMIT)
                    .error_handler(json_error),
            )
            .app_data(web::PathConfig::default().error_handler(path_error))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .configure(|cfg| {
                if ws_echo {
                    cfg.service(echo);
                }
            })
            .configure(routes::configure);
        // Nothing here reads the app config's host or address (no URL generation).
        map_config(app, |()| AppConfig::default())
    };
    // actix-web's HttpServer with one addition: WebSocket upgrades go to `ws::Upgrades`, which
    // routes them through the same app and then takes the socket (see `ws/upgrade.rs`). The
    // timeouts are HttpServer's defaults.
    let mut server = Server::build()
        .listen("kavling", listener, move || {
            HttpService::build()
                .keep_alive(KeepAlive::default())
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(local_addr)
                // actix-http keeps asking a response body for more while its write buffer holds
                // less than this (default 32 KiB), and keeps the buffer's grown capacity for the
                // connection's life; large streamed responses (CSV exports) are written in 4-8
                // KiB steps instead.
                .h1_write_buffer_size(crate::ws::H1_WRITE_LIMIT)
                .on_connect_ext(move |tcp: &TcpStream, _: &mut Extensions| {
                    tune_socket(tcp, unacked_timeout)
                })
                .upgrade(crate::ws::Upgrades::new(app()))
                .finish(app())
                .tcp()
        })?
        // WebSocket sessions would hold shutdown for the full default 30 s.
        .shutdown_timeout(5);
    if let Some(n) = workers {
        server = server.workers(n);
    }
    Ok(server.run())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[actix_web::test]
    async fn accepted_connections_send_small_writes_at_once_and_give_up_on_a_silent_peer() {
        let listener = actix_web::rt::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = actix_web::rt::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let options = socket2::SockRef::from(&accepted);
        assert!(
            !accepted.nodelay().unwrap(),
            "the kernel's default is Nagle on"
        );
        assert_eq!(options.tcp_user_timeout().unwrap(), None);

        tune_socket(&accepted, Duration::from_secs(7));
        assert!(accepted.nodelay().unwrap());
        assert_eq!(
            options.tcp_user_timeout().unwrap(),
            Some(Duration::from_secs(7))
        );
    }
}
