//! Helpers shared by the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;
use std::time::Duration;

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
