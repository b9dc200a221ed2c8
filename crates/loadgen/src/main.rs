//! `kavling-loadgen`: opens N WebSocket subscribers to one project across one or more Kavling
//! servers, drives unit status changes through the HTTP API at a fixed rate, and reports delivery
//! latency (commit `at` to receipt), missed and duplicated events per client (by seq), server RSS
//! per connection and CPU per delivered frame. `--reconnect-storm` then drops every socket and
//! resubscribes all clients with `since`, timing recovery and counting database work.
//! `--chat-pairs` adds buyer/marketing conversations beside the unit events and compares the
//! chat message p99 (POST to the other party's frame) with the unit-event p99 of the same run.
//! Targets 127.0.0.1 only; every phase is bounded in time.

mod chat;
mod client;
mod http;
mod procstat;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore, mpsc, watch};

use client::{Params, Phase, Shared};
use http::{Client, Endpoint};

/// Command line.
#[derive(Parser, Debug)]
#[command(name = "kavling-loadgen", version, about)]
struct Cli {
    /// Server base URL (repeatable); connections are spread round-robin over them.
    #[arg(long = "server", default_value = "http://127.0.0.1:8080")]
    servers: Vec<String>,
    /// Server that receives the HTTP status changes (default: the first `--server`).
    #[arg(long)]
    api: Option<String>,
    /// Number of WebSocket connections.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    connections: usize,
    /// Project to subscribe to (default: the first project the API lists, unless --create-project).
    #[arg(long)]
    project: Option<String>,
    /// Create a fresh project with `--units` units for this run.
    #[arg(long)]
    create_project: bool,
    /// Units to create, and at most this many units are toggled.
    #[arg(long, default_value_t = 200)]
    units: usize,
    /// Admin bearer token.
    #[arg(long, env = "KAVLING_TOKEN")]
    token: Option<String>,
    /// Admin email (login when no --token).
    #[arg(long)]
    admin_email: Option<String>,
    /// Admin password.
    #[arg(long, env = "KAVLING_ADMIN_PASSWORD")]
    admin_password: Option<String>,
    /// Status changes per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Seconds of driving.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Server process id for RSS and CPU (repeatable, one per server).
    #[arg(long = "server-pid")]
    server_pids: Vec<String>,
    /// Append one JSON line with the results to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Name of the run, copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
    /// After the steady phase, drop all sockets and resubscribe them with `since`.
    #[arg(long)]
    reconnect_storm: bool,
    /// Status changes made while the clients are disconnected (what they must replay).
    #[arg(long, default_value_t = 5)]
    storm_changes: u64,
    /// PostgreSQL database whose `pg_stat_database` transaction counters are read around the storm.
    #[arg(long)]
    pg_stat_db: Option<String>,
    /// Connection string `psql` uses to read `pg_stat_database` (never the measured database).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_admin_url: String,
    /// Tokio worker threads (1: current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Simultaneous connection attempts.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Seconds to wait after connecting before reading RSS.
    #[arg(long, default_value_t = 3)]
    settle: u64,
    /// Concurrent HTTP connections for the status changes.
    #[arg(long, default_value_t = 8)]
    http_workers: usize,
    /// Seconds to wait for the last frames after the driving ends.
    #[arg(long, default_value_t = 15)]
    drain_timeout: u64,
    /// Chat pairs (a buyer and a marketing user in one conversation) beside the unit events.
    #[arg(long, default_value_t = 0)]
    chat_pairs: usize,
    /// Chat messages per second over all pairs, during the steady phase.
    #[arg(long, default_value_t = 10.0)]
    chat_rate: f64,
}

fn main() {
    let cli = Cli::parse();
    let rt = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()
    };
    let result = rt
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(cli)));
    if let Err(e) = result {
        eprintln!("kavling-loadgen: {e:#}");
        std::process::exit(1);
    }
}

/// A unit the driver toggles.
struct UnitRef {
    id: String,
    status: String,
}

/// The admin API session.
struct Api {
    client: Client,
    endpoint: Endpoint,
    token: String,
}

impl Api {
    async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let res = self
            .client
            .request(method, path, Some(&self.token), bytes.as_deref())
            .await?;
        if !(200..300).contains(&res.status) {
            bail!(
                "{method} {path}: HTTP {}: {}",
                res.status,
                String::from_utf8_lossy(&res.body)
            );
        }
        res.json()
    }
}

async fn login(cli: &Cli, endpoint: &Endpoint) -> Result<String> {
    if let Some(t) = &cli.token {
        return Ok(t.clone());
    }
    let (Some(email), Some(password)) = (&cli.admin_email, &cli.admin_password) else {
        bail!("give --token, or --admin-email and --admin-password");
    };
    let mut c = Client::new(endpoint.clone());
    let body = json!({"email": email, "password": password}).to_string();
    let res = c
        .request("POST", "/api/v1/auth/login", None, Some(body.as_bytes()))
        .await?;
    if res.status != 200 {
        bail!(
            "login failed: HTTP {}: {}",
            res.status,
            String::from_utf8_lossy(&res.body)
        );
    }
    res.json()?
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("login response has no token"))
}

async fn resolve_project(cli: &Cli, api: &mut Api) -> Result<String> {
    if let Some(p) = &cli.project {
        return Ok(p.clone());
    }
    if cli.create_project {
        let name = format!("loadgen {}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f"));
        let p = api
            .call(
                "POST",
                "/api/v1/projects",
                Some(json!({"name": name, "description": "kavling-loadgen run", "location": "127.0.0.1"})),
            )
            .await?;
        let id = p
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("project has no id"))?
            .to_owned();
        let units: Vec<Value> = (1..=cli.units)
            .map(|i| json!({"blockNumber": format!("L{i:04}"), "type": "36/72", "price": 350_000_000i64}))
            .collect();
        // The API takes at most 1,000 units per request.
        for batch in units.chunks(1000) {
            api.call(
                "POST",
                &format!("/api/v1/projects/{id}/units"),
                Some(Value::Array(batch.to_vec())),
            )
            .await?;
        }
        return Ok(id);
    }
    let list = api.call("GET", "/api/v1/projects", None).await?;
    list.get("data")
        .and_then(Value::as_array)
        .and_then(|d| d.first())
        .and_then(|p| p.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no project: pass --project or --create-project"))
}

async fn list_units(api: &mut Api, project: &str, max: usize) -> Result<Vec<UnitRef>> {
    let mut out = Vec::new();
    for page in 1..=100 {
        let v = api
            .call(
                "GET",
                &format!(
                    "/api/v1/projects/{project}/units?pagination%5BpageSize%5D=100&pagination%5Bpage%5D={page}"
                ),
                None,
            )
            .await?;
        let data = v
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if data.is_empty() {
            break;
        }
        for u in data {
            let (Some(id), Some(status)) = (
                u.get("id").and_then(Value::as_str),
                u.get("status").and_then(Value::as_str),
            ) else {
                continue;
            };
            out.push(UnitRef {
                id: id.to_owned(),
                status: status.to_owned(),
            });
        }
        if out.len() >= max {
            break;
        }
    }
    out.truncate(max);
    if out.is_empty() {
        bail!("project {project} has no units");
    }
    Ok(out)
}

async fn project_seq(api: &mut Api, project: &str) -> Result<u64> {
    api.call(
        "GET",
        &format!("/api/v1/projects/{project}/availability"),
        None,
    )
    .await?
    .get("seq")
    .and_then(Value::as_u64)
    .context("availability has no seq")
}

/// Outcome of the driving phase.
struct Drive {
    ok: u64,
    failed: u64,
    /// From the first request to the last response.
    elapsed: Duration,
    /// Worst lateness of a request behind its schedule.
    max_late: Duration,
}

/// Toggles units AVAILABLE ⇄ MAINTENANCE at `rate` per second, `count` times, over
/// `workers` keep-alive connections so a slow response does not slow the schedule.
async fn drive(
    endpoint: &Endpoint,
    token: &str,
    units: &mut [UnitRef],
    rate: f64,
    count: u64,
    workers: usize,
) -> Drive {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<(String, &'static str)>(1024);
    let rx = Arc::new(Mutex::new(rx));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers.max(1) {
        let rx = rx.clone();
        let ok = ok.clone();
        let failed = failed.clone();
        let mut client = Client::new(endpoint.clone());
        let token = token.to_owned();
        handles.push(tokio::spawn(async move {
            loop {
                let job = rx.lock().await.recv().await;
                let Some((unit, status)) = job else { break };
                let body = format!(r#"{{"status":"{status}"}}"#);
                let res = client
                    .request(
                        "PATCH",
                        &format!("/api/v1/units/{unit}"),
                        Some(&token),
                        Some(body.as_bytes()),
                    )
                    .await;
                match res {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(r) => {
                        eprintln!(
                            "PATCH {unit}: HTTP {}: {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        );
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        eprintln!("PATCH {unit}: {e:#}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut max_late = Duration::ZERO;
    for i in 0..count {
        let due = tick.tick().await;
        max_late = max_late.max(due.elapsed());
        let n = units.len();
        let Some(u) = units.get_mut(usize::try_from(i).unwrap_or(0) % n.max(1)) else {
            break;
        };
        let next = if u.status == "AVAILABLE" {
            "MAINTENANCE"
        } else {
            "AVAILABLE"
        };
        u.status = next.to_owned();
        if tx.send((u.id.clone(), next)).await.is_err() {
            break;
        }
    }
    drop(tx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for h in handles {
        let _ = tokio::time::timeout_at(deadline, h).await;
    }
    Drive {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        max_late,
    }
}

/// Waits until `cond` holds or `limit` passes; returns the time taken and whether it held.
async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> (Duration, bool) {
    let start = Instant::now();
    loop {
        if cond() {
            return (start.elapsed(), true);
        }
        if start.elapsed() > limit {
            return (start.elapsed(), false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `xact_commit + xact_rollback` of a database (one per statement outside explicit transactions).
fn pg_xacts(admin_url: &str, db: &str) -> Option<u64> {
    if !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let out = std::process::Command::new("psql")
        .args([
            admin_url,
            "-tAc",
            &format!(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{db}'"
            ),
        ])
        .output()
        .ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// The realtime counters of each server's `/metrics`, if it exposes them.
async fn metrics(servers: &[Endpoint]) -> Option<Vec<(String, f64)>> {
    let mut sums: Vec<(String, f64)> = Vec::new();
    for s in servers {
        let mut c = Client::new(s.clone());
        let res = c.request("GET", "/metrics", None, None).await.ok()?;
        if res.status != 200 {
            return None;
        }
        for line in String::from_utf8_lossy(&res.body).lines() {
            let Some((name, value)) = line.split_once(' ') else {
                continue;
            };
            let wanted = name.ends_with("_total") && !name.starts_with('#');
            let Ok(v) = value.trim().parse::<f64>() else {
                continue;
            };
            if !wanted {
                continue;
            }
            match sums.iter_mut().find(|(n, _)| n == name) {
                Some((_, acc)) => *acc += v,
                None => sums.push((name.to_owned(), v)),
            }
        }
    }
    Some(sums)
}

fn metrics_delta(a: &Option<Vec<(String, f64)>>, b: &Option<Vec<(String, f64)>>) -> Value {
    let (Some(a), Some(b)) = (a, b) else {
        return Value::Null;
    };
    let mut out = serde_json::Map::new();
    for (name, vb) in b {
        let va = a.iter().find(|(n, _)| n == name).map_or(0.0, |(_, v)| *v);
        if vb - va != 0.0 {
            out.insert(name.clone(), json!(vb - va));
        }
    }
    Value::Object(out)
}

fn pct(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

fn pct_dur(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64()
}

async fn run(cli: Cli) -> Result<()> {
    let t_run = Instant::now();
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    if (nofile as usize) < cli.connections + 64 {
        eprintln!(
            "warning: open-file limit {nofile} is below {} connections",
            cli.connections
        );
    }
    let servers: Vec<Endpoint> = cli
        .servers
        .iter()
        .map(|s| Endpoint::parse(s))
        .collect::<Result<_>>()?;
    for s in &servers {
        if !s.authority.starts_with("127.0.0.1:") && !s.authority.starts_with("localhost:") {
            bail!("{}: the generator only targets 127.0.0.1", s.authority);
        }
    }
    let api_ep = match &cli.api {
        Some(a) => Endpoint::parse(a)?,
        None => servers.first().cloned().context("no --server")?,
    };
    let token = login(&cli, &api_ep).await?;
    let mut api = Api {
        client: Client::new(api_ep.clone()),
        endpoint: api_ep.clone(),
        token,
    };
    let project = resolve_project(&cli, &mut api).await?;
    let mut units = list_units(&mut api, &project, cli.units).await?;
    let seq_start = project_seq(&mut api, &project).await?;
    let pids = &cli.server_pids;
    println!(
        "project {project}: {} units, seq {seq_start}; {} connections over {} server(s); {} changes/s for {} s",
        units.len(),
        cli.connections,
        servers.len(),
        cli.rate,
        cli.duration
    );

    // Connect.
    let shared = Arc::new(Shared::default());
    let params = Arc::new(Params {
        authorities: servers.iter().map(|s| s.authority.clone()).collect(),
        channel: format!("project:{project}"),
        connect_gate: Arc::new(Semaphore::new(cli.connect_concurrency.max(1))),
        storm_started: std::sync::Mutex::new(None),
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Connect);
    let rss_before = procstat::rss_sum(pids);
    let n = cli.connections;
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        handles.push(tokio::spawn(client::run(
            i,
            params.clone(),
            shared.clone(),
            phase_rx.clone(),
        )));
    }
    let (connect_time, _) = wait_until(Duration::from_secs(180), || {
        shared.connected.load(Ordering::Relaxed)
            + usize::try_from(shared.connect_failures.load(Ordering::Relaxed)).unwrap_or(0)
            >= n
    })
    .await;
    let connected = shared.connected.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(cli.settle)).await;
    let rss_idle = procstat::rss_sum(pids);
    let per_conn = |rss: u64| (rss as f64 - rss_before as f64) / connected.max(1) as f64;
    println!(
        "connected {connected}/{n} in {:.2} s (failures {}); server RSS {rss_before} -> {rss_idle} KiB = {:.2} KiB per idle connection",
        connect_time.as_secs_f64(),
        shared.connect_failures.load(Ordering::Relaxed),
        per_conn(rss_idle)
    );

    // Subscribe.
    phase_tx.send_replace(Phase::Subscribe);
    let (subscribe_time, all_subscribed) = wait_until(Duration::from_secs(180), || {
        shared.subscribed.load(Ordering::Relaxed) >= connected
    })
    .await;
    let subscribed = shared.subscribed.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(cli.settle)).await;
    let rss_subscribed = procstat::rss_sum(pids);
    println!(
        "subscribed {subscribed}/{connected} in {:.2} s{}; server RSS {rss_subscribed} KiB = {:.2} KiB per subscribed connection",
        subscribe_time.as_secs_f64(),
        if all_subscribed { "" } else { " (TIMED OUT)" },
        per_conn(rss_subscribed)
    );

    // Chat pairs: their conversations opened by unlocks, both parties subscribed.
    let chat_receipts = Arc::new(chat::Receipts::default());
    let (chat_stop_tx, chat_stop) = watch::channel(false);
    let mut chat_pairs = Vec::new();
    if cli.chat_pairs > 0 {
        let unit_ids: Vec<String> = units.iter().map(|u| u.id.clone()).collect();
        chat_pairs = chat::setup(&api.endpoint, &api.token, &unit_ids, cli.chat_pairs).await?;
        for (i, pair) in chat_pairs.iter().enumerate() {
            for buyer_side in [true, false] {
                let k = 2 * i + usize::from(!buyer_side);
                let authority = servers[k % servers.len()].authority.clone();
                let (pair, receipts, stop) =
                    (pair.clone(), chat_receipts.clone(), chat_stop.clone());
                tokio::spawn(async move {
                    if let Err(e) = chat::listen(authority, pair, buyer_side, receipts, stop).await
                    {
                        eprintln!("chat socket: {e:#}");
                    }
                });
            }
        }
        let want = 2 * chat_pairs.len();
        let (t, ok) = wait_until(Duration::from_secs(60), || {
            chat_receipts.subscribed() >= want
        })
        .await;
        println!(
            "chat: {} pairs, {}/{want} sockets subscribed in {:.2} s{}",
            chat_pairs.len(),
            chat_receipts.subscribed(),
            t.as_secs_f64(),
            if ok { "" } else { " (TIMED OUT)" }
        );
    }

    // Steady phase: drive and measure.
    let count = (cli.rate * cli.duration as f64).round() as u64;
    let chat_count = if chat_pairs.is_empty() {
        0
    } else {
        (cli.chat_rate * cli.duration as f64).round() as u64
    };
    let frames0 = shared.unit_frames.load(Ordering::Relaxed);
    let srv_cpu0 = procstat::cpu_sum(pids);
    let gen_cpu0 = procstat::cpu_s("self");
    let machine0 = procstat::MachineCpu::now();
    shared.record_latency.store(true, Ordering::Relaxed);
    let t_window = Instant::now();
    let (d, chat_result) = tokio::join!(
        drive(
            &api.endpoint,
            &api.token,
            &mut units,
            cli.rate,
            count,
            cli.http_workers,
        ),
        chat::drive(
            &api.endpoint,
            &chat_pairs,
            &chat_receipts,
            cli.chat_rate,
            chat_count,
            cli.http_workers,
            Duration::from_secs(cli.drain_timeout),
        )
    );
    chat_stop_tx.send_replace(true);
    // A PATCH that finds the unit already in the target status (two toggles of one unit reordered
    // between HTTP workers when responses lag) commits no event, so count events by seq.
    let events = project_seq(&mut api, &project)
        .await?
        .saturating_sub(seq_start);
    let expected_frames = events * subscribed as u64;
    let (drain, drained) = wait_until(Duration::from_secs(cli.drain_timeout), || {
        shared.unit_frames.load(Ordering::Relaxed) - frames0 >= expected_frames
    })
    .await;
    let window = t_window.elapsed();
    let srv_cpu = procstat::cpu_sum(pids) - srv_cpu0;
    let gen_cpu = procstat::cpu_s("self") - gen_cpu0;
    // On a shared host, steal is CPU time this machine did not get: it explains spread between runs.
    let (m_busy, m_idle, m_iowait, m_steal) = procstat::MachineCpu::now().shares_since(&machine0);
    shared.record_latency.store(false, Ordering::Relaxed);
    let frames = shared.unit_frames.load(Ordering::Relaxed) - frames0;
    let rss_after = procstat::rss_sum(pids);
    // Over the scheduled span at least, so the first request's zero wait does not inflate it.
    let span = d
        .elapsed
        .as_secs_f64()
        .max(count as f64 / cli.rate.max(0.001));
    let achieved = events as f64 / span.max(1e-9);
    println!(
        "drove {} changes ({} failed, {events} events) in {:.2} s = {achieved:.2} events/s (max schedule lateness {:.1} ms); drain {:.2} s{}",
        d.ok,
        d.failed,
        d.elapsed.as_secs_f64(),
        d.max_late.as_secs_f64() * 1e3,
        drain.as_secs_f64(),
        if drained { "" } else { " (TIMED OUT)" }
    );
    let us_per_frame = srv_cpu * 1e6 / frames.max(1) as f64;
    println!(
        "frames {frames} of {expected_frames} = {:.0}/s; server CPU {srv_cpu:.2} s ({:.0}% of a core) = {us_per_frame:.2} µs/frame; generator CPU {gen_cpu:.2} s = {:.2} µs/frame; server RSS after {rss_after} KiB",
        frames as f64 / window.as_secs_f64(),
        srv_cpu / window.as_secs_f64() * 100.0,
        gen_cpu * 1e6 / frames.max(1) as f64
    );
    println!(
        "machine CPU during the run: busy {m_busy:.0}%, idle {m_idle:.0}%, iowait {m_iowait:.0}%, steal {m_steal:.0}%"
    );

    // Storm.
    let mut storm = Value::Null;
    if cli.reconnect_storm {
        storm = reconnect_storm(
            &cli, &mut api, &mut units, &project, &servers, &phase_tx, &shared, &params, connected,
        )
        .await?;
    }

    // Stop and collect.
    let seq_end = project_seq(&mut api, &project).await?;
    phase_tx.send_replace(Phase::Stop);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut reports = Vec::with_capacity(n);
    for h in handles {
        if let Ok(Ok(r)) = tokio::time::timeout_at(deadline, h).await {
            reports.push(r);
        }
    }
    let mut lats: Vec<u32> = Vec::new();
    let (mut missed, mut dup, mut clients_missing, mut clients_dup, mut max_missed) =
        (0u64, 0u64, 0usize, 0usize, 0u64);
    let mut storm_times = Vec::new();
    let (mut storm_flag, mut storm_gaps) = (0usize, 0usize);
    for r in &mut reports {
        if !r.subscribed {
            continue;
        }
        // Events committed after the client's last frame were missed too.
        let tail = r.last_seq.map_or(0, |l| seq_end.saturating_sub(l));
        let m = r.missed + tail;
        missed += m;
        dup += r.duplicated;
        clients_missing += usize::from(m > 0);
        clients_dup += usize::from(r.duplicated > 0);
        max_missed = max_missed.max(m);
        lats.append(&mut r.latencies_us);
        if let Some(t) = r.storm_recovery {
            storm_times.push(t);
            storm_flag += usize::from(r.storm_recovered_flag);
            storm_gaps += usize::from(r.storm_missed > 0);
        }
    }
    lats.sort_unstable();
    storm_times.sort_unstable();
    let (p50, p95, p99, max) = (
        pct(&lats, 0.50),
        pct(&lats, 0.95),
        pct(&lats, 0.99),
        lats.last().map_or(0.0, |v| f64::from(*v) / 1000.0),
    );
    println!(
        "latency ms (commit `at` -> receipt, {} samples): p50 {p50:.2} p95 {p95:.2} p99 {p99:.2} max {max:.2}",
        lats.len()
    );
    println!(
        "seq {seq_start} -> {seq_end}: missed {missed} (clients {clients_missing}, worst {max_missed}), duplicated {dup} (clients {clients_dup}); error frames {}, disconnects {}",
        shared.error_frames.load(Ordering::Relaxed),
        shared.disconnects.load(Ordering::Relaxed)
    );
    if cli.reconnect_storm {
        if let Value::Object(m) = &mut storm {
            m.insert("clients".into(), json!(storm_times.len()));
            m.insert("recoveredTrue".into(), json!(storm_flag));
            m.insert("clientsWithGap".into(), json!(storm_gaps));
            m.insert("recoveryP50S".into(), json!(pct_dur(&storm_times, 0.5)));
            m.insert("recoveryP99S".into(), json!(pct_dur(&storm_times, 0.99)));
            m.insert(
                "recoveryMaxS".into(),
                json!(storm_times.last().map_or(0.0, Duration::as_secs_f64)),
            );
        }
        println!(
            "storm: {} of {connected} resubscribed, {storm_flag} with recovered:true, {storm_gaps} with a gap; recovery p50 {:.3} s p99 {:.3} s max {:.3} s",
            storm_times.len(),
            pct_dur(&storm_times, 0.5),
            pct_dur(&storm_times, 0.99),
            storm_times.last().map_or(0.0, Duration::as_secs_f64)
        );
        println!("storm detail: {storm}");
    }

    let chat = if chat_pairs.is_empty() {
        Value::Null
    } else {
        let c = &chat_result;
        let (cp50, cp99, cmax) = (
            pct(&c.post_to_frame_us, 0.50),
            pct(&c.post_to_frame_us, 0.99),
            c.post_to_frame_us
                .last()
                .map_or(0.0, |v| f64::from(*v) / 1000.0),
        );
        let commit_p99 = pct(&c.commit_to_frame_us, 0.99);
        let ratio = if p99 > 0.0 { cp99 / p99 } else { 0.0 };
        println!(
            "chat: {} sent ({} failed), undelivered {}, missed {}, duplicated {}; POST -> other party's frame ms p50 {cp50:.2} p99 {cp99:.2} max {cmax:.2}; commit -> frame p99 {commit_p99:.2}; chat p99 / unit p99 = {ratio:.2} (goal <= 1.25)",
            c.sent, c.failed, c.undelivered, c.missed, c.duplicated
        );
        json!({
            "pairs": chat_pairs.len(),
            "rate": cli.chat_rate,
            "sent": c.sent,
            "failed": c.failed,
            "undelivered": c.undelivered,
            "missed": c.missed,
            "duplicated": c.duplicated,
            "postToFrameMs": {"p50": cp50, "p95": pct(&c.post_to_frame_us, 0.95), "p99": cp99, "max": cmax, "samples": c.post_to_frame_us.len()},
            "commitToFrameMs": {"p50": pct(&c.commit_to_frame_us, 0.50), "p99": commit_p99},
            "p99RatioToUnitEvents": ratio,
        })
    };
    let mut out = json!({
        "label": cli.label,
        "at": chrono::Utc::now().to_rfc3339(),
        "servers": cli.servers,
        "n": n,
        "connected": connected,
        "subscribed": subscribed,
        "connectFailures": shared.connect_failures.load(Ordering::Relaxed),
        "connectS": connect_time.as_secs_f64(),
        "subscribeS": subscribe_time.as_secs_f64(),
        "rate": cli.rate,
        "durationS": cli.duration,
        "changesOk": d.ok,
        "changesFailed": d.failed,
        "events": events,
        "achievedPerS": achieved,
        "maxScheduleLateMs": d.max_late.as_secs_f64() * 1e3,
        "drainS": drain.as_secs_f64(),
        "windowS": window.as_secs_f64(),
        "frames": frames,
        "framesExpected": expected_frames,
        "latencyMs": {"p50": p50, "p95": p95, "p99": p99, "max": max, "samples": lats.len()},
        "missed": missed,
        "clientsMissing": clients_missing,
        "duplicated": dup,
        "clientsDuplicated": clients_dup,
        "errorFrames": shared.error_frames.load(Ordering::Relaxed),
        "disconnects": shared.disconnects.load(Ordering::Relaxed),
        "seqStart": seq_start,
        "seqEnd": seq_end,
        "rssKiB": {"before": rss_before, "idle": rss_idle, "subscribed": rss_subscribed, "after": rss_after},
        "rssPerIdleConnKiB": per_conn(rss_idle),
        "rssPerSubscribedConnKiB": per_conn(rss_subscribed),
        "serverCpuS": srv_cpu,
        "serverCpuPct": srv_cpu / window.as_secs_f64() * 100.0,
        "serverUsPerFrame": us_per_frame,
        "machineCpuPercent": {"busy": m_busy, "idle": m_idle, "iowait": m_iowait, "steal": m_steal},
        "generatorCpuS": gen_cpu,
        "generatorUsPerFrame": gen_cpu * 1e6 / frames.max(1) as f64,
        "loadavg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "storm": storm,
        "totalS": t_run.elapsed().as_secs_f64(),
    });
    if let Value::Object(m) = &mut out {
        m.insert("chat".into(), chat);
    }
    if let Some(path) = &cli.json {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        writeln!(f, "{out}")?;
    }
    println!("RESULT {out}");
    Ok(())
}

/// Drops every socket, makes `--storm-changes` changes nobody sees live, then reconnects all
/// clients at once with `since`; reports recovery time and database work against an idle
/// baseline window of the same length.
#[allow(clippy::too_many_arguments)]
async fn reconnect_storm(
    cli: &Cli,
    api: &mut Api,
    units: &mut [UnitRef],
    project: &str,
    servers: &[Endpoint],
    phase_tx: &watch::Sender<Phase>,
    shared: &Shared,
    params: &Params,
    connected: usize,
) -> Result<Value> {
    // PostgreSQL publishes a backend's counters at most once a second and an idle backend's
    // only after ~10 s, so each reading waits out that delay and both windows are equally long.
    const WINDOW: Duration = Duration::from_secs(12);
    let pg = |db: &Option<String>| db.as_ref().and_then(|d| pg_xacts(&cli.pg_admin_url, d));
    // Baseline: all clients subscribed and idle (background catch-up ticks only).
    let base0 = pg(&cli.pg_stat_db);
    let m_base0 = metrics(servers).await;
    tokio::time::sleep(WINDOW).await;
    let base1 = pg(&cli.pg_stat_db);
    let m_base1 = metrics(servers).await;

    // Drop everyone, then commit changes they will have to replay.
    phase_tx.send_replace(Phase::Drop);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = drive(&api.endpoint, &api.token, units, 10.0, cli.storm_changes, 1).await;
    let seq_before = project_seq(api, project).await?;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let s0 = pg(&cli.pg_stat_db);
    let m0 = metrics(servers).await;
    let started = Instant::now();
    if let Ok(mut g) = params.storm_started.lock() {
        *g = Some(started);
    }
    phase_tx.send_replace(Phase::Resubscribe);
    let (all, done) = wait_until(Duration::from_secs(120), || {
        shared.storm_done.load(Ordering::Relaxed) >= connected
    })
    .await;
    let rest = WINDOW.saturating_sub(started.elapsed());
    tokio::time::sleep(rest).await;
    let s1 = pg(&cli.pg_stat_db);
    let m1 = metrics(servers).await;
    let diff = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => json!(b.saturating_sub(a)),
        _ => Value::Null,
    };
    println!(
        "storm: {} changes while disconnected (seq now {seq_before}); all {} resubscribed in {:.3} s{}",
        d.ok,
        shared.storm_done.load(Ordering::Relaxed),
        all.as_secs_f64(),
        if done { "" } else { " (TIMED OUT)" }
    );
    Ok(json!({
        "changesWhileDown": d.ok,
        "allDoneS": all.as_secs_f64(),
        "allDone": done,
        "windowS": started.elapsed().as_secs_f64().max(WINDOW.as_secs_f64()),
        "pgXactsStormWindow": diff(s0, s1),
        "pgXactsIdleWindow": diff(base0, base1),
        "metricsStormWindow": metrics_delta(&m0, &m1),
        "metricsIdleWindow": metrics_delta(&m_base0, &m_base1),
    }))
}
