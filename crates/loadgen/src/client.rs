//! One simulated subscriber: a WebSocket task that connects, subscribes, checks every `unit`
//! frame's `seq` for gaps and duplicates, records commit-to-receipt latency, and on command drops
//! its socket and resubscribes with `since` (the reconnect storm).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// What every client should be doing; clients follow the latest value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Open the socket and wait.
    Connect,
    /// Subscribe and receive.
    Subscribe,
    /// Drop the socket (without a close handshake).
    Drop,
    /// Reconnect and resubscribe with `since` (the reconnect storm).
    Resubscribe,
    /// Close and report.
    Stop,
}

/// Counters all clients update, read by the coordinator while phases run.
#[derive(Default)]
pub struct Shared {
    /// Sockets open (handshake done).
    pub connected: AtomicUsize,
    /// Clients that got their first `subscribed`.
    pub subscribed: AtomicUsize,
    /// Clients whose storm resubscription finished (`subscribed` after the storm).
    pub storm_done: AtomicUsize,
    /// `unit` frames received (all phases).
    pub unit_frames: AtomicU64,
    /// Whether `unit` frames now feed the latency figures (the steady phase only).
    pub record_latency: AtomicBool,
    /// `error` frames received.
    pub error_frames: AtomicU64,
    /// Sockets closed by the server or failed while they should have been open.
    pub disconnects: AtomicU64,
    /// Connection attempts that failed.
    pub connect_failures: AtomicU64,
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Whether the first connection succeeded.
    pub connected: bool,
    /// Whether the first subscription was confirmed.
    pub subscribed: bool,
    /// Seq of the first `subscribed` (the client's starting point).
    pub first_seq: Option<u64>,
    /// Highest seq seen.
    pub last_seq: Option<u64>,
    /// Seqs skipped between frames (gaps).
    pub missed: u64,
    /// Frames whose seq was not above the last one seen (duplicates or reordering).
    pub duplicated: u64,
    /// `unit` frames received.
    pub unit_frames: u64,
    /// Latencies in µs (commit `at` to receipt) of live frames in the steady phase.
    pub latencies_us: Vec<u32>,
    /// Storm: time from the storm start to the `subscribed` after resubscribing.
    pub storm_recovery: Option<Duration>,
    /// Storm: that `subscribed` said `recovered: true`.
    pub storm_recovered_flag: bool,
    /// Storm: gaps found while catching up.
    pub storm_missed: u64,
}

/// Static parameters shared by all clients.
pub struct Params {
    /// `host:port`s, picked round-robin by client index.
    pub authorities: Vec<String>,
    /// The channel, `project:<id>`.
    pub channel: String,
    /// Limits simultaneous connection attempts.
    pub connect_gate: Arc<Semaphore>,
    /// Wall-clock start of the storm, set by the coordinator before switching to `Storm`.
    pub storm_started: std::sync::Mutex<Option<Instant>>,
}

type Ws = WebSocketStream<TcpStream>;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Unsigned integer right after `key` (e.g. `"seq":`).
fn num_after(s: &str, key: &str) -> Option<u64> {
    let i = s.find(key)? + key.len();
    let digits = s[i..].bytes().take_while(u8::is_ascii_digit).count();
    s[i..i + digits].parse().ok()
}

/// String value right after `key` (e.g. `"at":"`), up to the closing quote.
fn str_after<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let i = s.find(key)? + key.len();
    let end = s[i..].find('"')?;
    Some(&s[i..i + end])
}

/// The frame's `type`, by a cheap scan (the server writes `type` first, but any order works).
fn frame_type(s: &str) -> &str {
    str_after(s, "\"type\":\"").unwrap_or("")
}

/// Microseconds since the epoch of an RFC 3339 timestamp.
fn parse_at_us(at: &str) -> Option<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(at).ok()?;
    u64::try_from(t.timestamp_micros()).ok()
}

async fn open(params: &Params, index: usize) -> Option<Ws> {
    let authority = params
        .authorities
        .get(index % params.authorities.len().max(1))?;
    let _permit = params.connect_gate.acquire().await.ok()?;
    let attempt = async {
        let tcp = TcpStream::connect(authority.as_str()).await.ok()?;
        tcp.set_nodelay(true).ok()?;
        // Small buffers: 10,000 clients live in this one process.
        let cfg = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            format!("ws://{authority}/ws"),
            tcp,
            Some(cfg),
        )
        .await
        .ok()?;
        Some(ws)
    };
    tokio::time::timeout(Duration::from_secs(30), attempt)
        .await
        .ok()
        .flatten()
}

async fn subscribe(ws: &mut Ws, channel: &str, since: Option<u64>) -> bool {
    let msg = match since {
        Some(s) => format!(r#"{{"op":"subscribe","channel":"{channel}","since":{s}}}"#),
        None => format!(r#"{{"op":"subscribe","channel":"{channel}"}}"#),
    };
    ws.send(Message::text(msg)).await.is_ok()
}

/// Per-client sequence state.
struct Track {
    report: Report,
    /// Seq of a snapshot waiting for its `subscribed`.
    snapshot_seq: Option<u64>,
    in_storm: bool,
}

impl Track {
    fn on_unit(&mut self, s: &str, shared: &Shared) {
        let recv = now_us();
        let Some(seq) = num_after(s, "\"seq\":") else {
            return;
        };
        self.report.unit_frames += 1;
        shared.unit_frames.fetch_add(1, Ordering::Relaxed);
        match self.report.last_seq {
            Some(last) if seq <= last => self.report.duplicated += 1,
            Some(last) => {
                let gap = seq - last - 1;
                self.report.missed += gap;
                if self.in_storm {
                    self.report.storm_missed += gap;
                }
                self.report.last_seq = Some(seq);
            }
            None => self.report.last_seq = Some(seq),
        }
        if !self.in_storm
            && shared.record_latency.load(Ordering::Relaxed)
            && let Some(at) = str_after(s, "\"at\":\"").and_then(parse_at_us)
        {
            let lat = recv.saturating_sub(at).min(u64::from(u32::MAX));
            self.report
                .latencies_us
                .push(u32::try_from(lat).unwrap_or(u32::MAX));
        }
    }

    /// Handles `subscribed`; returns its `recovered` flag.
    fn on_subscribed(&mut self, s: &str) -> bool {
        let recovered = s.contains("\"recovered\":true");
        let seq = num_after(s, "\"seq\":");
        if let Some(snap) = self.snapshot_seq.take() {
            // A snapshot restarts the sequence: it stands for everything up to its seq.
            self.report.last_seq = Some(snap);
        } else if let (Some(seq), Some(last)) = (seq, self.report.last_seq) {
            if seq > last {
                self.report.missed += seq - last;
                if self.in_storm {
                    self.report.storm_missed += seq - last;
                }
                self.report.last_seq = Some(seq);
            }
        } else if self.report.last_seq.is_none() {
            self.report.last_seq = seq;
        }
        if self.report.first_seq.is_none() {
            self.report.first_seq = self.report.last_seq;
        }
        recovered
    }
}

/// Runs one client until the phase becomes `Stop` (or the socket cannot be opened).
pub async fn run(
    index: usize,
    params: Arc<Params>,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) -> Report {
    let mut t = Track {
        report: Report::default(),
        snapshot_seq: None,
        in_storm: false,
    };
    let Some(mut ws) = open(&params, index).await else {
        shared.connect_failures.fetch_add(1, Ordering::Relaxed);
        return t.report;
    };
    t.report.connected = true;
    shared.connected.fetch_add(1, Ordering::Relaxed);
    // Wait (answering nothing: the server pings only every 20 s) for the go.
    if phase
        .wait_for(|p| *p >= Phase::Subscribe)
        .await
        .map(|p| *p)
        .unwrap_or(Phase::Stop)
        == Phase::Stop
    {
        let _ = ws.close(None).await;
        return t.report;
    }
    let mut alive = subscribe(&mut ws, &params.channel, None).await;
    if !alive {
        shared.disconnects.fetch_add(1, Ordering::Relaxed);
    }
    let mut ws = Some(ws);
    let (mut dropped, mut resubscribed) = (false, false);
    loop {
        match ws.as_mut() {
            Some(sock) if alive => {
                tokio::select! {
                    msg = sock.next() => match msg {
                        Some(Ok(Message::Text(text))) => on_text(text.as_str(), &mut t, &params, &shared),
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                            alive = false;
                            shared.disconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Ok(_)) => {}
                    },
                    changed = phase.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                }
            }
            _ => {
                if phase.changed().await.is_err() {
                    break;
                }
            }
        }
        let now = *phase.borrow_and_update();
        if now == Phase::Stop {
            break;
        }
        if now >= Phase::Drop && !dropped {
            dropped = true;
            // Drop the TCP connection without a close handshake, like a phone losing its network.
            ws = None;
            alive = false;
            t.in_storm = true;
        }
        if now >= Phase::Resubscribe && !resubscribed {
            resubscribed = true;
            let since = t.report.last_seq;
            let Some(mut sock) = open(&params, index).await else {
                shared.connect_failures.fetch_add(1, Ordering::Relaxed);
                return t.report;
            };
            alive = subscribe(&mut sock, &params.channel, since).await;
            ws = Some(sock);
        }
    }
    if let (Some(mut sock), true) = (ws, alive) {
        let _ = tokio::time::timeout(Duration::from_secs(2), sock.close(None)).await;
    }
    t.report
}

/// Handles one text frame.
fn on_text(s: &str, t: &mut Track, params: &Params, shared: &Shared) {
    match frame_type(s) {
        "unit" => t.on_unit(s, shared),
        "subscribed" => {
            let recovered = t.on_subscribed(s);
            if t.in_storm {
                let started = params.storm_started.lock().ok().and_then(|g| *g);
                t.report.storm_recovery = started.map(|s| s.elapsed());
                t.report.storm_recovered_flag = recovered;
                t.in_storm = false;
                shared.storm_done.fetch_add(1, Ordering::Relaxed);
            } else if !t.report.subscribed {
                t.report.subscribed = true;
                shared.subscribed.fetch_add(1, Ordering::Relaxed);
            }
        }
        "snapshot" => t.snapshot_seq = num_after(s, "\"seq\":"),
        "error" => {
            shared.error_frames.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn scans_fields() {
        let f = r#"{"type":"unit","channel":"project:p","seq":42,"unitId":"u","status":"SOLD","at":"2026-11-21T08:00:00.123456Z"}"#;
        assert_eq!(frame_type(f), "unit");
        assert_eq!(num_after(f, "\"seq\":"), Some(42));
        assert_eq!(
            parse_at_us(str_after(f, "\"at\":\"").unwrap()),
            Some(1_795_248_000_123_456)
        );
    }

    #[test]
    fn tracks_gaps_and_duplicates() {
        let shared = Shared::default();
        let mut t = Track {
            report: Report::default(),
            snapshot_seq: Some(5),
            in_storm: false,
        };
        assert!(!t.on_subscribed(r#"{"type":"subscribed","seq":5,"recovered":false}"#));
        assert_eq!(t.report.first_seq, Some(5));
        for seq in [6, 7, 7, 9] {
            t.on_unit(&format!(r#"{{"type":"unit","seq":{seq}}}"#), &shared);
        }
        assert_eq!(t.report.missed, 1);
        assert_eq!(t.report.duplicated, 1);
        assert_eq!(t.report.last_seq, Some(9));
        assert_eq!(t.report.unit_frames, 4);
    }
}
