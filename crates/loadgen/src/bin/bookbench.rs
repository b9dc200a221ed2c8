//! Booking throughput benchmark: creates a project with M units through the API, then books
//! distinct units from C concurrent clients over HTTP and reports throughput and latency
//! percentiles (human-readable on stderr, one JSON line on stdout).
//!
//! `bookbench --url http://127.0.0.1:8080 --email admin@x --password secret --units 6000`
//! (or `KAVLING_TOKEN=<admin token> bookbench ...`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

// Shared with the fan-out generator; this binary uses only the machine-wide CPU reading.
#[allow(dead_code)]
#[path = "../procstat.rs"]
mod procstat;
use procstat::MachineCpu;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Kavling booking throughput benchmark")]
struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Admin bearer token (else log in with --email/--password).
    #[arg(long, env = "KAVLING_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Admin email for login.
    #[arg(long)]
    email: Option<String>,
    /// Admin password for login.
    #[arg(long, env = "KAVLING_ADMIN_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Units to create and book (one booking each).
    #[arg(long, default_value_t = 6000)]
    units: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Bookings made first and left out of the figures (connection setup, caches).
    #[arg(long, default_value_t = 256)]
    warmup: usize,
}

type Client = awc::Client;

async fn call(
    client: &Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let mut req = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let mut res = req
        .send_json(body)
        .await
        .map_err(|e| anyhow::anyhow!("{method} {url}: {e}"))?;
    let bytes = res
        .body()
        .limit(64 << 20)
        .await
        .map_err(|e| anyhow::anyhow!("{method} {url}: reading body: {e}"))?;
    Ok((
        res.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run(args: Args) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/').to_owned();
    let api = |p: &str| format!("{base}/api/v1{p}");
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .connector(awc::Connector::new().limit(args.concurrency * 2))
        .finish();

    let token = match (&args.token, &args.email, &args.password) {
        (Some(t), _, _) => t.clone(),
        (None, Some(e), Some(p)) => {
            let (status, body) = call(
                &client,
                "POST",
                &api("/auth/login"),
                None,
                &json!({"email": e, "password": p}),
            )
            .await?;
            if status != 200 {
                bail!("login failed ({status}): {body}");
            }
            body["token"]
                .as_str()
                .context("no token in login answer")?
                .to_owned()
        }
        _ => bail!("give --token (or KAVLING_TOKEN), or --email and --password"),
    };

    let total = args.units;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let (status, project) = call(
        &client,
        "POST",
        &api("/projects"),
        Some(&token),
        &json!({"name": format!("Bookbench {stamp}"), "description": "benchmark", "location": "Bogor"}),
    )
    .await?;
    if status != 201 {
        bail!("creating the project failed ({status}): {project}");
    }
    let project_id = project["id"].as_str().context("no project id")?.to_owned();
    let mut unit_ids = Vec::with_capacity(total);
    for chunk_start in (0..total).step_by(1000) {
        let units: Vec<Value> = (chunk_start..(chunk_start + 1000).min(total))
            .map(|i| json!({"blockNumber": format!("B{i}"), "type": "36/72", "price": 450_000_000}))
            .collect();
        let (status, created) = call(
            &client,
            "POST",
            &api(&format!("/projects/{project_id}/units")),
            Some(&token),
            &Value::Array(units),
        )
        .await?;
        if status != 201 {
            bail!("creating units failed ({status}): {created}");
        }
        for u in created.as_array().context("units answer is not an array")? {
            unit_ids.push(u["id"].as_str().context("no unit id")?.to_owned());
        }
    }
    eprintln!(
        "project {project_id}: {} units; {} warm-up bookings, then {} measured, {} clients",
        unit_ids.len(),
        args.warmup.min(total),
        total.saturating_sub(args.warmup),
        args.concurrency
    );

    let units = Rc::new(unit_ids);
    let next = Rc::new(Cell::new(0usize));
    let latencies = Rc::new(RefCell::new(Vec::with_capacity(total)));
    let failures = Rc::new(RefCell::new(std::collections::BTreeMap::<u16, usize>::new()));
    let measured_from = Rc::new(Cell::new(None::<(Instant, MachineCpu)>));
    let url = api("/bookings");
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (units, next, latencies, failures, measured_from) = (
            units.clone(),
            next.clone(),
            latencies.clone(),
            failures.clone(),
            measured_from.clone(),
        );
        let (client, token, url, warmup) =
            (client.clone(), token.clone(), url.clone(), args.warmup);
        tasks.push(actix_web::rt::spawn(async move {
            loop {
                let i = next.get();
                if i >= units.len() {
                    return;
                }
                next.set(i + 1);
                if i == warmup {
                    measured_from.set(Some((Instant::now(), MachineCpu::now())));
                }
                let body = json!({
                    "unitId": units[i],
                    "customer": {"name": format!("Pembeli {i}"), "phone": format!("0813{:08}", i)},
                    "bookingFee": 5_000_000,
                    "paymentMethod": "TRANSFER",
                });
                let t = Instant::now();
                let status = match call(&client, "POST", &url, Some(&token), &body).await {
                    Ok((s, _)) => s,
                    Err(_) => 0,
                };
                let took = t.elapsed();
                if status != 201 {
                    *failures.borrow_mut().entry(status).or_default() += 1;
                } else if i >= warmup {
                    latencies.borrow_mut().push(took);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = measured_from
        .get()
        .map(|(s, _)| s.elapsed())
        .unwrap_or_default();
    // Busy, idle, I/O wait and steal over the measured run: on a shared host, steal is CPU the
    // run did not get, which explains much of the spread between runs.
    let (busy, idle, iowait, steal) = measured_from
        .get()
        .map(|(_, cpu)| MachineCpu::now().shares_since(&cpu))
        .unwrap_or_default();
    let mut lat = latencies.borrow().clone();
    lat.sort();
    let ok = lat.len();
    let rate = if elapsed.is_zero() {
        0.0
    } else {
        ok as f64 / elapsed.as_secs_f64()
    };
    let (p50, p95, p99) = (
        percentile(&lat, 50.0),
        percentile(&lat, 95.0),
        percentile(&lat, 99.0),
    );
    let max = lat.last().copied().unwrap_or_default();
    let failures = failures.borrow().clone();
    eprintln!(
        "{ok} bookings in {:.2} s = {rate:.0} bookings/s; latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms; failures {failures:?}",
        elapsed.as_secs_f64(),
        ms(p50),
        ms(p95),
        ms(p99),
        ms(max)
    );
    eprintln!(
        "machine CPU during the run: busy {busy:.0}%, idle {idle:.0}%, iowait {iowait:.0}%, steal {steal:.0}%"
    );
    println!(
        "{}",
        json!({
            "bookings": ok, "seconds": elapsed.as_secs_f64(), "bookingsPerSecond": rate,
            "p50Ms": ms(p50), "p95Ms": ms(p95), "p99Ms": ms(p99), "maxMs": ms(max),
            "concurrency": args.concurrency, "warmup": args.warmup,
            "machineCpuPercent": {"busy": busy, "idle": idle, "iowait": iowait, "steal": steal},
            "failures": failures.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        })
    );
    if !failures.is_empty() {
        bail!("some bookings failed");
    }
    Ok(())
}

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bookbench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
