//! The periodic jobs of an instance, in one place: hold expiry, overdue invoices, event pruning,
//! the hub's catch-up and the login limiter's housekeeping (and whatever comes next). Each is a
//! named tick run every `every`; [`Jobs::spawn`] is the one way to start one, [`Jobs::stop`]
//! stops them all (after the server drained, so none is cut off half-way through a query), and
//! `/metrics` shows each job's runs by outcome and the items it handled.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of `kavling_job_runs_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    job: &'static str,
    outcome: &'static str,
}

/// Labels of `kavling_job_items_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: &'static str,
}

/// What the jobs did, for `/metrics` (prefix `kavling_job_`).
#[derive(Debug, Default)]
pub struct JobMetrics {
    runs: Family<RunLabels, Counter>,
    items: Family<JobLabels, Counter>,
}

impl JobMetrics {
    /// Registers the job families; the registry shares their values.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kavling_job_runs",
            "Periodic job runs by job and outcome (ok, error)",
            self.runs.clone(),
        );
        registry.register(
            "kavling_job_items",
            "Items the periodic jobs handled (holds expired, invoices marked, events pruned, ...)",
            self.items.clone(),
        );
    }

    /// Creates a job's series at zero, so dashboards see it before its first run.
    fn announce(&self, job: &'static str) {
        for outcome in ["ok", "error"] {
            let _ = self.runs.get_or_create(&RunLabels { job, outcome });
        }
        let _ = self.items.get_or_create(&JobLabels { job });
    }

    fn record(&self, job: &'static str, outcome: Result<u64, String>) {
        let label = match outcome {
            Ok(0) => "ok",
            Ok(n) => {
                tracing::debug!(job, items = n, "periodic job");
                self.items.get_or_create(&JobLabels { job }).inc_by(n);
                "ok"
            }
            Err(e) => {
                tracing::warn!(job, error = %e, "periodic job failed");
                "error"
            }
        };
        self.runs
            .get_or_create(&RunLabels {
                job,
                outcome: label,
            })
            .inc();
    }
}

/// The running jobs of an instance.
#[derive(Debug, Default)]
pub struct Jobs {
    metrics: Arc<JobMetrics>,
    running: Vec<(&'static str, tokio::task::AbortHandle)>,
}

impl Jobs {
    /// No jobs yet; their metrics go to `metrics`.
    pub fn new(metrics: Arc<JobMetrics>) -> Self {
        Jobs {
            metrics,
            running: Vec::new(),
        }
    }

    /// Runs `tick` at once and then `every` after each run ends (a slow run delays the next
    /// rather than piling up) until [`Jobs::stop`]. A tick answers how many items it handled, or why it failed;
    /// a failure is logged and counted, and the job goes on.
    pub fn spawn<F, Fut, E>(&mut self, job: &'static str, every: Duration, tick: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.spawn_woken(job, every, std::future::pending::<()>, tick);
    }

    /// Like [`Jobs::spawn`], but the next run also starts as soon as `woken()` completes (a
    /// commit asking for a pass now); `every` is the longest wait between runs.
    pub fn spawn_woken<W, WF, F, Fut, E>(
        &mut self,
        job: &'static str,
        every: Duration,
        mut woken: W,
        mut tick: F,
    ) where
        W: FnMut() -> WF + Send + 'static,
        WF: Future<Output = ()> + Send + 'static,
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.metrics.announce(job);
        let metrics = self.metrics.clone();
        let handle = tokio::spawn(async move {
            loop {
                metrics.record(job, tick().await.map_err(|e| e.to_string()));
                tokio::select! {
                    () = woken() => {}
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
        self.running.push((job, handle.abort_handle()));
    }

    /// The names of the running jobs, in start order.
    pub fn names(&self) -> Vec<&'static str> {
        self.running.iter().map(|(name, _)| *name).collect()
    }

    /// Stops every job.
    pub fn stop(&self) {
        for (_, handle) in &self.running {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn render(metrics: &JobMetrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_runs_every_period_counts_items_and_failures_and_stops() {
        let metrics = Arc::new(JobMetrics::default());
        let mut jobs = Jobs::new(metrics.clone());
        let calls = Arc::new(AtomicU64::new(0));
        let seen = calls.clone();
        jobs.spawn("demo", Duration::from_secs(10), move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move { if n == 1 { Err("boom") } else { Ok(n) } }
        });
        assert_eq!(jobs.names(), ["demo"]);
        let text = render(&metrics);
        assert!(
            text.contains(r#"kavling_job_runs_total{job="demo",outcome="error"} 0"#),
            "{text}"
        );

        // Runs at 0 s (0 items), 10 s (fails), 20 s (2 items).
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let text = render(&metrics);
        assert!(
            text.contains(r#"kavling_job_runs_total{job="demo",outcome="ok"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kavling_job_runs_total{job="demo",outcome="error"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kavling_job_items_total{job="demo"} 2"#),
            "{text}"
        );

        jobs.stop();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
