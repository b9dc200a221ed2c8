//! Chat pairs beside the unit events (issue #16's benchmark): each pair is a buyer and a marketing
//! user registered for the run, whose lead the marketing user unlocks (which opens their
//! conversation). Both parties subscribe to `conversation:<id>`; during the steady phase messages
//! are POSTed at a fixed total rate, alternating senders over the pairs, and each message's
//! latency is taken from the start of its POST to the other party's `message` frame (also from
//! its commit `createdAt`, like unit events). Missed and duplicated frames are counted by seq.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::http::{Client, Endpoint};

/// One party of a pair.
#[derive(Clone, Debug)]
pub struct Party {
    /// User id.
    pub id: String,
    /// Bearer token.
    pub token: String,
}

/// A conversation and its two parties.
#[derive(Clone, Debug)]
pub struct Pair {
    /// Conversation id.
    pub conversation: String,
    /// The buyer.
    pub buyer: Party,
    /// The marketing user who unlocked the buyer's lead.
    pub marketing: Party,
}

async fn call(
    c: &mut Client,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
    headers: &[(&str, &str)],
) -> Result<Value> {
    let bytes = body.to_string().into_bytes();
    let res = c
        .request_with(method, path, token, Some(&bytes), headers)
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

async fn register(c: &mut Client, role: &str, email: &str) -> Result<Party> {
    let v = call(
        c,
        "POST",
        "/api/v1/auth/register",
        None,
        json!({"email": email, "password": "bench-chat-password", "fullName": format!("Bench {role}"), "role": role}),
        &[],
    )
    .await?;
    Ok(Party {
        id: v["user"]["id"].as_str().context("user id")?.to_owned(),
        token: v["token"].as_str().context("token")?.to_owned(),
    })
}

/// Registers `pairs` buyers and marketing users, approves and funds the marketing users, has each
/// buyer leave a lead on a unit and its marketing user unlock it; returns the conversations.
pub async fn setup(
    api: &Endpoint,
    admin_token: &str,
    unit_ids: &[String],
    pairs: usize,
) -> Result<Vec<Pair>> {
    let mut c = Client::new(api.clone());
    let tag = chrono::Utc::now().format("%Y%m%d%H%M%S%3f");
    let mut out = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let unit = unit_ids
            .get(i % unit_ids.len().max(1))
            .ok_or_else(|| anyhow!("no units for leads"))?;
        let buyer = register(&mut c, "BUYER", &format!("chat-b{i}-{tag}@bench.kavling")).await?;
        let marketing = register(
            &mut c,
            "MARKETING",
            &format!("chat-m{i}-{tag}@bench.kavling"),
        )
        .await?;
        let m = &marketing.id;
        call(
            &mut c,
            "POST",
            &format!("/api/v1/admin/users/{m}/kyc"),
            Some(admin_token),
            json!({"approved": true}),
            &[],
        )
        .await?;
        let key = format!("chat-topup-{i}-{tag}");
        call(
            &mut c,
            "POST",
            &format!("/api/v1/admin/wallets/{m}/topup"),
            Some(admin_token),
            json!({"amount": 100_000_000, "reference": "bench"}),
            &[("Idempotency-Key", &key)],
        )
        .await?;
        let lead = call(
            &mut c,
            "POST",
            "/api/v1/leads",
            Some(&buyer.token),
            json!({"unitId": unit, "consent": true}),
            &[],
        )
        .await?;
        let lead = lead["id"].as_str().context("lead id")?;
        let unlocked = call(
            &mut c,
            "POST",
            &format!("/api/v1/leads/{lead}/unlock"),
            Some(&marketing.token),
            Value::Null,
            &[],
        )
        .await?;
        out.push(Pair {
            conversation: unlocked["conversationId"]
                .as_str()
                .context("the unlock names no conversation")?
                .to_owned(),
            buyer,
            marketing,
        });
    }
    Ok(out)
}

/// Receipts and counters all chat sockets update.
#[derive(Default)]
pub struct Receipts {
    /// (message id, receiving user id) → when its frame arrived, and its commit time in µs.
    seen: Mutex<HashMap<(String, String), (Instant, u64)>>,
    /// Frames whose seq was not above the socket's last one.
    duplicated: Mutex<u64>,
    /// Seqs skipped on a socket.
    missed: Mutex<u64>,
    /// Sockets that confirmed their subscription.
    subscribed: Mutex<usize>,
}

impl Receipts {
    /// Sockets subscribed so far.
    pub fn subscribed(&self) -> usize {
        self.subscribed.lock().map(|g| *g).unwrap_or(0)
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One party's socket on `conversation:<id>` until `stop` turns true.
pub async fn listen(
    authority: String,
    pair: Pair,
    buyer_side: bool,
    receipts: Arc<Receipts>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let me = if buyer_side {
        &pair.buyer
    } else {
        &pair.marketing
    };
    let tcp = TcpStream::connect(authority.as_str()).await?;
    tcp.set_nodelay(true)?;
    let url = format!("ws://{authority}/ws?token={}", me.token);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
    let channel = format!("conversation:{}", pair.conversation);
    ws.send(Message::text(
        json!({"op": "subscribe", "channel": channel}).to_string(),
    ))
    .await?;
    let mut last: Option<u64> = None;
    loop {
        tokio::select! {
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else { bail!("chat socket closed") };
                let Message::Text(text) = msg else { continue };
                let recv = Instant::now();
                let recv_us = now_us();
                let Ok(f) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                match f["type"].as_str() {
                    Some("subscribed") => {
                        last = f["seq"].as_u64();
                        if let Ok(mut g) = receipts.subscribed.lock() {
                            *g += 1;
                        }
                    }
                    Some("message") => {
                        let seq = f["seq"].as_u64().unwrap_or(0);
                        match last {
                            Some(l) if seq <= l => {
                                if let Ok(mut g) = receipts.duplicated.lock() { *g += 1; }
                                continue;
                            }
                            Some(l) if seq > l + 1 => {
                                if let Ok(mut g) = receipts.missed.lock() { *g += seq - l - 1; }
                            }
                            _ => {}
                        }
                        last = Some(seq);
                        let commit = f["createdAt"].as_str()
                            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                            .and_then(|t| u64::try_from(t.timestamp_micros()).ok())
                            .unwrap_or(recv_us);
                        let id = f["id"].as_str().unwrap_or_default().to_owned();
                        if let Ok(mut g) = receipts.seen.lock() {
                            g.insert((id, me.id.clone()), (recv, recv_us.saturating_sub(commit)));
                        }
                    }
                    _ => {}
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    return Ok(());
                }
            }
        }
    }
}

/// One message sent: when its POST started, its id, and who should receive it.
struct Sent {
    started: Instant,
    id: String,
    to: String,
}

/// What the chat driving measured.
pub struct ChatResult {
    /// Messages sent (201).
    pub sent: u64,
    /// POSTs that failed.
    pub failed: u64,
    /// Sent messages whose frame never reached the other party.
    pub undelivered: u64,
    /// Duplicate frames seen.
    pub duplicated: u64,
    /// Seqs skipped on sockets.
    pub missed: u64,
    /// POST start → other party's frame, µs, sorted.
    pub post_to_frame_us: Vec<u32>,
    /// Commit `createdAt` → other party's frame, µs, sorted.
    pub commit_to_frame_us: Vec<u32>,
}

/// POSTs `count` messages at `rate` per second over the pairs (senders alternate), with
/// `workers` keep-alive connections; then waits up to `drain` for the frames.
pub async fn drive(
    api: &Endpoint,
    pairs: &[Pair],
    receipts: &Receipts,
    rate: f64,
    count: u64,
    workers: usize,
    drain: Duration,
) -> ChatResult {
    let (tx, rx) = mpsc::channel::<(usize, bool, u64)>(1024);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let sent = Arc::new(Mutex::new(Vec::<Sent>::new()));
    let failed = Arc::new(Mutex::new(0u64));
    let pairs_arc: Arc<Vec<Pair>> = Arc::new(pairs.to_vec());
    let mut handles = Vec::new();
    for _ in 0..workers.max(1) {
        let (rx, sent, failed, pairs) =
            (rx.clone(), sent.clone(), failed.clone(), pairs_arc.clone());
        let mut client = Client::new(api.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let job = rx.lock().await.recv().await;
                let Some((i, from_buyer, n)) = job else { break };
                let Some(pair) = pairs.get(i) else { continue };
                let (from, to) = if from_buyer {
                    (&pair.buyer, &pair.marketing)
                } else {
                    (&pair.marketing, &pair.buyer)
                };
                let body =
                    json!({"text": format!("pesan {n}"), "clientMessageId": format!("bench-{n}")})
                        .to_string();
                let started = Instant::now();
                let res = client
                    .request(
                        "POST",
                        &format!("/api/v1/conversations/{}/messages", pair.conversation),
                        Some(&from.token),
                        Some(body.as_bytes()),
                    )
                    .await;
                let id = match res {
                    Ok(r) if r.status == 201 => r
                        .json()
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_owned)),
                    Ok(r) => {
                        eprintln!(
                            "chat POST: HTTP {}: {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        );
                        None
                    }
                    Err(e) => {
                        eprintln!("chat POST: {e:#}");
                        None
                    }
                };
                match id {
                    Some(id) => {
                        if let Ok(mut g) = sent.lock() {
                            g.push(Sent {
                                started,
                                id,
                                to: to.id.clone(),
                            });
                        }
                    }
                    None => {
                        if let Ok(mut g) = failed.lock() {
                            *g += 1;
                        }
                    }
                }
            }
        }));
    }
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let n_pairs = pairs.len().max(1) as u64;
    for n in 0..count {
        tick.tick().await;
        let i = usize::try_from(n % n_pairs).unwrap_or(0);
        // Each pair's messages alternate sender: buyer, marketing, buyer, ...
        let from_buyer = (n / n_pairs).is_multiple_of(2);
        if tx.send((i, from_buyer, n)).await.is_err() {
            break;
        }
    }
    drop(tx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for h in handles {
        let _ = tokio::time::timeout_at(deadline, h).await;
    }
    let sent = std::mem::take(&mut *sent.lock().unwrap_or_else(|e| e.into_inner()));
    let delivered = |s: &Sent| {
        receipts
            .seen
            .lock()
            .map(|g| g.contains_key(&(s.id.clone(), s.to.clone())))
            .unwrap_or(false)
    };
    let end = Instant::now() + drain;
    while Instant::now() < end && !sent.iter().all(delivered) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = receipts.seen.lock().unwrap_or_else(|e| e.into_inner());
    let (mut post_to_frame, mut commit_to_frame, mut undelivered) = (Vec::new(), Vec::new(), 0);
    for s in &sent {
        match seen.get(&(s.id.clone(), s.to.clone())) {
            Some((at, commit_us)) => {
                let lat = at.saturating_duration_since(s.started).as_micros();
                post_to_frame.push(u32::try_from(lat).unwrap_or(u32::MAX));
                commit_to_frame.push(u32::try_from(*commit_us).unwrap_or(u32::MAX));
            }
            None => undelivered += 1,
        }
    }
    post_to_frame.sort_unstable();
    commit_to_frame.sort_unstable();
    ChatResult {
        sent: sent.len() as u64,
        failed: *failed.lock().unwrap_or_else(|e| e.into_inner()),
        undelivered,
        duplicated: *receipts
            .duplicated
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
        missed: *receipts.missed.lock().unwrap_or_else(|e| e.into_inner()),
        post_to_frame_us: post_to_frame,
        commit_to_frame_us: commit_to_frame,
    }
}
