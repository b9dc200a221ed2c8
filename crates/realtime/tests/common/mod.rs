//! Helpers shared by the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use kavling_realtime::testing::MemoryStore;
use kavling_realtime::{Hub, HubConfig, Outbound, Outbox, ServerMessage};

pub fn hub(store: &Arc<MemoryStore>, config: HubConfig) -> Arc<Hub> {
    Hub::new(store.clone(), config)
}

/// Next outbound item, or panic after 3 s.
pub async fn next_out(rx: &mut Outbox) -> Outbound {
    match tokio::time::timeout(Duration::from_secs(3), rx.recv()).await {
        Ok(Some(o)) => o,
        Ok(None) => panic!("queue closed"),
        Err(_) => panic!("no frame within 3 s"),
    }
}

/// Next text frame as raw JSON.
pub async fn next_raw(rx: &mut Outbox) -> String {
    match next_out(rx).await {
        Outbound::Text(t) => t.to_string(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Next text frame, parsed.
pub async fn next_msg(rx: &mut Outbox) -> ServerMessage {
    let raw = next_raw(rx).await;
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("bad frame {raw}: {e}"))
}

/// Asserts nothing arrives for `ms` milliseconds.
pub async fn expect_silence(rx: &mut Outbox, ms: u64) {
    if let Ok(o) = tokio::time::timeout(Duration::from_millis(ms), rx.recv()).await {
        panic!("expected silence, got {o:?}");
    }
}

pub fn sub(channel: &str) -> String {
    format!(r#"{{"op":"subscribe","channel":"{channel}"}}"#)
}

pub fn sub_since(channel: &str, since: i64) -> String {
    format!(r#"{{"op":"subscribe","channel":"{channel}","since":{since}}}"#)
}

pub fn unit_seq(msg: &ServerMessage) -> i64 {
    match msg {
        ServerMessage::Unit { seq, .. } => *seq,
        other => panic!("expected a unit frame, got {other:?}"),
    }
}

/// Expects a snapshot then `subscribed` (recovered false); returns the seq.
pub async fn expect_snapshot(rx: &mut Outbox, channel: &str) -> (i64, ServerMessage) {
    let snap = next_msg(rx).await;
    let ServerMessage::Snapshot {
        channel: c, seq, ..
    } = &snap
    else {
        panic!("expected snapshot, got {snap:?}");
    };
    assert_eq!(c, channel);
    let seq = *seq;
    match next_msg(rx).await {
        ServerMessage::Subscribed {
            channel: c,
            seq: s,
            recovered,
        } => {
            assert_eq!(c, channel);
            assert_eq!(s, seq);
            assert!(!recovered);
        }
        other => panic!("expected subscribed, got {other:?}"),
    }
    (seq, snap)
}

pub fn error_code(msg: &ServerMessage) -> &str {
    match msg {
        ServerMessage::Error { code, .. } => code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

/// TCP proxy that can black-hole its existing connections (bytes vanish, sockets stay open),
/// which is what a half-open link looks like to the client.
/// Returns the proxy address, the black-hole cutoff (connections with id <= it are cut)
/// and the number of connections opened so far.
pub async fn blackhole_proxy(target: String) -> (String, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cutoff = Arc::new(AtomicU64::new(0));
    let opened = Arc::new(AtomicU64::new(0));
    let (cut, count) = (cutoff.clone(), opened.clone());
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let id = count.fetch_add(1, Ordering::SeqCst) + 1;
            let Ok(outbound) = TcpStream::connect(&target).await else {
                continue;
            };
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            for (mut r, mut w) in [
                (
                    Box::new(ri) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                    Box::new(wo) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                ),
                (Box::new(ro), Box::new(wi)),
            ] {
                let cut = cut.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match r.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if id <= cut.load(Ordering::SeqCst) {
                            continue;
                        }
                        if w.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    (addr.to_string(), cutoff, opened)
}

/// `url` with its host:port replaced by `addr` (keeps credentials and database).
pub fn with_addr(url: &str, addr: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let creds = authority
        .rsplit_once('@')
        .map(|(c, _)| format!("{c}@"))
        .unwrap_or_default();
    format!("{scheme}://{creds}{addr}{path}")
}
