//! Shared application state handed to every handler.

use std::sync::Arc;

use kavling_core::Services;
use kavling_realtime::Hub;

/// What handlers share: the services, the realtime hub and a few settings.
#[derive(Clone)]
pub struct AppState {
    /// Business services.
    pub services: Services,
    /// The realtime hub of this instance.
    pub hub: Arc<Hub>,
    /// Largest accepted siteplan upload.
    pub max_siteplan_bytes: usize,
    /// Redis URL, when fan-out goes through Redis (for `/readyz`).
    pub redis: Option<redis_probe::RedisProbe>,
    /// WebSocket session timers and limits.
    pub ws: crate::ws::WsConfig,
    /// Serve the `/ws-echo` protocol-compliance route (`KAVLING_WS_ECHO=1`).
    pub ws_echo: bool,
    /// HTTP request metrics for `/metrics`.
    pub http_metrics: Arc<crate::metrics::HttpMetrics>,
    /// Periodic job metrics for `/metrics`.
    pub job_metrics: Arc<crate::jobs::JobMetrics>,
    /// The login/register rate limiter shared by every worker (None: unlimited).
    pub auth_limiter: Option<crate::ratelimit::AuthLimiter>,
    /// The runtime that runs unit status changes (the one that built the app; see [`AppState::write`]).
    pub writes: tokio::runtime::Handle,
}

impl AppState {
    /// Runs a change that publishes unit events on [`AppState::writes`] instead of the HTTP worker.
    ///
    /// A worker that serves WebSockets may have thousands of session tasks queued by a fan-out;
    /// every round trip of a change run there (the commit included) would wait behind them, and the
    /// next event's publish with it. The builder's runtime is otherwise quiet, so the change's
    /// round trips and its publish go ahead at once. It is spawned, so a client that hangs up does
    /// not cancel a change half-way.
    pub async fn write<F, Fut, T>(&self, change: F) -> crate::error::ApiResult<T>
    where
        F: FnOnce(Services) -> Fut,
        Fut: std::future::Future<Output = kavling_core::CoreResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let task = self.writes.spawn(change(self.services.clone()));
        match task.await {
            Ok(result) => Ok(result?),
            Err(e) => {
                Err(kavling_core::CoreError::Internal(format!("a change's task ended: {e}")).into())
            }
        }
    }
}

/// A tiny readiness probe for Redis, independent of the bus's own connections.
pub mod redis_probe {
    /// Pings Redis with a short timeout.
    #[derive(Clone, Debug)]
    pub struct RedisProbe {
        url: String,
    }

    impl RedisProbe {
        /// A probe for a Redis URL.
        pub fn new(url: &str) -> Self {
            RedisProbe {
                url: url.to_owned(),
            }
        }

        /// True when Redis answers PING within a second.
        pub async fn ping(&self) -> bool {
            let fut = async {
                let client = redis::Client::open(self.url.as_str()).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .ok()
            };
            matches!(
                tokio::time::timeout(std::time::Duration::from_secs(1), fut).await,
                Ok(Some(_))
            )
        }
    }
}
