//! Watch-notification benchmark (issue #16): N buyers watch one unit and are all connected on
//! their own `user:<id>` channel; the unit becomes AVAILABLE; every buyer must get exactly one
//! `unit_available` notification. Reports delivered, missed, duplicated and the latency from the
//! change's commit (the PATCH's answer) to each buyer's frame, plus the PATCH's own time.
//!
//! Two steps, with the seed between them (see scripts/bench-notify.sh):
//! - `notifybench --prepare ...` creates a project with one unit, sets it MAINTENANCE and prints
//!   the unit id;
//! - `kavling seed --watchers N --unit <id> --tokens-out FILE` creates the buyers and watches;
//! - `notifybench --unit <id> --tokens FILE ...` connects, subscribes, changes the unit, measures.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[allow(dead_code)]
#[path = "../http.rs"]
mod http;
use http::{Client, Endpoint};

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Kavling watch-notification benchmark")]
struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Admin email.
    #[arg(long)]
    admin_email: String,
    /// Admin password.
    #[arg(long, env = "KAVLING_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: String,
    /// Create the project and its unit (MAINTENANCE), print the unit id, and stop.
    #[arg(long)]
    prepare: bool,
    /// The watched unit.
    #[arg(long)]
    unit: Option<String>,
    /// `<user id> <token>` lines from `kavling seed --watchers`.
    #[arg(long)]
    tokens: Option<std::path::PathBuf>,
    /// Sockets opening at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// How long to wait for the notifications, in seconds.
    #[arg(long, default_value_t = 30)]
    wait: u64,
    /// Append the result as one JSON line to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Label of the JSON line.
    #[arg(long, default_value = "notify")]
    label: String,
}

/// What one buyer's socket saw.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    subscribed: bool,
    /// `notification` frames received.
    frames: u32,
    /// When the first one arrived.
    first: Option<Instant>,
    /// Its seq.
    first_seq: Option<i64>,
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn call(
    client: &mut Client,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Value> {
    let bytes = body.map(|b| b.to_string().into_bytes());
    let res = client
        .request(method, path, token, bytes.as_deref())
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

async fn login(client: &mut Client, args: &Args) -> Result<String> {
    let body = json!({"email": args.admin_email, "password": args.admin_password});
    call(client, "POST", "/api/v1/auth/login", None, Some(body))
        .await?
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("login answered no token"))
}

async fn prepare(client: &mut Client, token: &str) -> Result<String> {
    let name = format!("notifybench {}", chrono::Utc::now().format("%Y%m%dT%H%M%S"));
    let project = call(
        client,
        "POST",
        "/api/v1/projects",
        Some(token),
        Some(json!({"name": name, "description": "notifybench", "location": "127.0.0.1"})),
    )
    .await?;
    let project = project["id"]
        .as_str()
        .ok_or_else(|| anyhow!("project has no id"))?;
    let units = call(
        client,
        "POST",
        &format!("/api/v1/projects/{project}/units"),
        Some(token),
        Some(json!([{"blockNumber": "W1", "type": "36/72", "price": 450_000_000i64}])),
    )
    .await?;
    let unit = units[0]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("unit has no id"))?
        .to_owned();
    call(
        client,
        "PATCH",
        &format!("/api/v1/units/{unit}"),
        Some(token),
        Some(json!({"status": "MAINTENANCE"})),
    )
    .await?;
    Ok(unit)
}

/// Opens one buyer's socket and subscribes to its channel; None on failure.
async fn connect(authority: &str, user: &str, token: &str, gate: &Semaphore) -> Option<Ws> {
    let _permit = gate.acquire().await.ok()?;
    let attempt = async {
        let tcp = TcpStream::connect(authority).await.ok()?;
        tcp.set_nodelay(true).ok()?;
        let cfg = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(
            format!("ws://{authority}/ws?token={token}"),
            tcp,
            Some(cfg),
        )
        .await
        .ok()?;
        let sub = format!(r#"{{"op":"subscribe","channel":"user:{user}"}}"#);
        ws.send(Message::text(sub)).await.ok()?;
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).ok()?;
                return (v["type"] == "subscribed").then_some(ws);
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(60), attempt)
        .await
        .ok()
        .flatten()
}

/// One buyer: connect, subscribe, then count `notification` frames until told to stop.
async fn buyer(
    authority: Rc<str>,
    user: String,
    token: String,
    gate: Arc<Semaphore>,
    seen: Rc<RefCell<Seen>>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(mut ws) = connect(&authority, &user, &token, &gate).await else {
        return;
    };
    seen.borrow_mut().subscribed = true;
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let text = t.as_str();
                    if text.contains(r#""type":"notification""#) {
                        let mut s = seen.borrow_mut();
                        s.frames += 1;
                        if s.first.is_none() {
                            s.first = Some(Instant::now());
                            s.first_seq = serde_json::from_str::<Value>(text)
                                .ok()
                                .and_then(|v| v["seq"].as_i64());
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            },
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                return;
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run(args: Args) -> Result<()> {
    let endpoint = Endpoint::parse(&args.url)?;
    let mut client = Client::new(endpoint.clone());
    let admin = login(&mut client, &args).await?;
    if args.prepare {
        println!("{}", prepare(&mut client, &admin).await?);
        return Ok(());
    }
    let unit = args.unit.clone().context("--unit is required")?;
    let path = args.tokens.clone().context("--tokens is required")?;
    let lines = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let buyers: Vec<(String, String)> = lines
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(u, t)| (u.to_owned(), t.to_owned()))
        .collect();
    let n = buyers.len();
    let authority: Rc<str> = Rc::from(endpoint.authority.as_str());
    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    let (stop_tx, stop_rx) = watch::channel(false);
    let seen: Vec<Rc<RefCell<Seen>>> = (0..n).map(|_| Rc::default()).collect();
    let local = tokio::task::LocalSet::new();
    let connect_started = Instant::now();
    for ((user, token), s) in buyers.into_iter().zip(&seen) {
        local.spawn_local(buyer(
            authority.clone(),
            user,
            token,
            gate.clone(),
            s.clone(),
            stop_rx.clone(),
        ));
    }
    let summary = local
        .run_until(async {
            // Everyone subscribed (or a minute passed).
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let ready = seen.iter().filter(|s| s.borrow().subscribed).count();
                if ready == n || Instant::now() > deadline {
                    eprintln!(
                        "subscribed {ready}/{n} in {:.1} s",
                        connect_started.elapsed().as_secs_f64()
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let subscribed = seen.iter().filter(|s| s.borrow().subscribed).count();
            // The change.
            let sent = Instant::now();
            let answer = call(
                &mut client,
                "PATCH",
                &format!("/api/v1/units/{unit}"),
                Some(&admin),
                Some(json!({"status": "AVAILABLE"})),
            )
            .await?;
            let committed = Instant::now();
            if answer["status"] != "AVAILABLE" {
                bail!("the unit did not become AVAILABLE: {answer}");
            }
            let deadline = committed + Duration::from_secs(args.wait);
            loop {
                let got = seen.iter().filter(|s| s.borrow().frames > 0).count();
                if got >= subscribed || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let all_in = committed.elapsed();
            // Room for duplicates to show up.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let _ = stop_tx.send(true);
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut lat: Vec<f64> = seen
                .iter()
                .filter_map(|s| s.borrow().first)
                .map(|t| t.saturating_duration_since(committed).as_secs_f64() * 1000.0)
                .collect();
            lat.sort_by(f64::total_cmp);
            let delivered = lat.len();
            let missed = seen
                .iter()
                .filter(|s| s.borrow().subscribed && s.borrow().frames == 0)
                .count();
            let duplicated: u32 = seen
                .iter()
                .map(|s| s.borrow().frames.saturating_sub(1))
                .sum();
            let wrong_seq = seen
                .iter()
                .filter(|s| s.borrow().first_seq.is_some_and(|q| q != 1))
                .count();
            Ok(json!({
                "label": args.label,
                "at": chrono::Utc::now().to_rfc3339(),
                "loadavg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
                "buyers": n,
                "subscribed": subscribed,
                "delivered": delivered,
                "missed": missed,
                "duplicated": duplicated,
                "first_seq_not_1": wrong_seq,
                "patch_ms": (committed - sent).as_secs_f64() * 1000.0,
                "all_delivered_ms": all_in.as_secs_f64() * 1000.0,
                "p50_ms": percentile(&lat, 50.0),
                "p95_ms": percentile(&lat, 95.0),
                "p99_ms": percentile(&lat, 99.0),
                "max_ms": lat.last().copied().unwrap_or(f64::NAN),
            }))
        })
        .await?;
    println!("{summary}");
    if let Some(out) = &args.json {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)?;
        writeln!(f, "{summary}")?;
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(args)));
    if let Err(e) = result {
        eprintln!("notifybench: {e:#}");
        std::process::exit(1);
    }
}
