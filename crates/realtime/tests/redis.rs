//! RedisBus against a real Redis (KAVLING_TEST_REDIS_URL or REDIS_URL; skipped when unset).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use kavling_realtime::testing::MemoryStore;
use kavling_realtime::{Bus, BusError, Hub, HubConfig, RedisBus, RedisBusConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

/// CLIENT KILL hits every pub/sub connection: run the Redis tests one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn redis_url() -> Option<String> {
    let url = std::env::var("KAVLING_TEST_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("note: KAVLING_TEST_REDIS_URL / REDIS_URL not set; skipping Redis test");
    }
    url
}

/// Fast timings so failures are noticed in tens of milliseconds; a unique prefix isolates tests.
fn fast_config() -> RedisBusConfig {
    RedisBusConfig {
        channel_prefix: format!("kavling-test-{}", Uuid::now_v7()),
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_secs(2),
        publish_timeout: Duration::from_secs(1),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
    }
}

async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn unreachable_redis_fails_fast() {
    let start = Instant::now();
    let hub = Hub::new(Arc::new(MemoryStore::new()), HubConfig::default());
    let mut config = fast_config();
    config.connect_timeout = Duration::from_millis(500);
    let err = RedisBus::connect_with_config("redis://127.0.0.1:1", hub, config)
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));
    let bad = RedisBus::connect(
        "not a url",
        Hub::new(Arc::new(MemoryStore::new()), HubConfig::default()),
    )
    .await;
    assert!(matches!(bad, Err(BusError::InvalidUrl(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_on_one_instance_reaches_the_other() {
    let Some(url) = redis_url() else { return };
    let _serial = SERIAL.lock().await;
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(2);
    let hub_a = Hub::new(store.clone(), HubConfig::default());
    let hub_b = Hub::new(store.clone(), HubConfig::default());
    let config = fast_config();
    let bus_a = RedisBus::connect_with_config(&url, hub_a.clone(), config.clone())
        .await
        .unwrap();
    let _bus_b = RedisBus::connect_with_config(&url, hub_b.clone(), config)
        .await
        .unwrap();
    let ch = format!("project:{pid}");
    let (ca, mut rx_a) = hub_a.connect();
    ca.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx_a, &ch).await;
    let (cb, mut rx_b) = hub_b.connect();
    cb.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx_b, &ch).await;

    for (i, unit) in units.iter().enumerate() {
        let ev = store.commit(pid, *unit, "BOOKED", None).unwrap();
        bus_a.publish(&ev).await.unwrap();
        assert_eq!(unit_seq(&next_msg(&mut rx_b).await), i as i64 + 1);
        assert_eq!(unit_seq(&next_msg(&mut rx_a).await), i as i64 + 1);
    }
    // A's own copy came back through Redis and was dropped as a duplicate.
    wait_until("echo dedup", Duration::from_secs(2), || {
        hub_a.metrics().duplicates_dropped.get() == 2
    })
    .await;
    expect_silence(&mut rx_a, 50).await;
    expect_silence(&mut rx_b, 50).await;
    assert_eq!(hub_a.metrics().events_published.get(), 2);
    assert!(bus_a.is_subscribed());
    bus_a.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_pubsub_connection_reconnects_and_catches_up() {
    let Some(url) = redis_url() else { return };
    let _serial = SERIAL.lock().await;
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(2);
    let hub_a = Hub::new(store.clone(), HubConfig::default());
    let hub_b = Hub::new(store.clone(), HubConfig::default());
    let config = fast_config();
    let bus_a = RedisBus::connect_with_config(&url, hub_a.clone(), config.clone())
        .await
        .unwrap();
    let bus_b = RedisBus::connect_with_config(&url, hub_b.clone(), config)
        .await
        .unwrap();
    let ch = format!("project:{pid}");
    let (cb, mut rx_b) = hub_b.connect();
    cb.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx_b, &ch).await;

    // Committed but never published (as if the publish was lost): only a catch-up can bring it,
    // and no catch-up tick runs in this test, so it must come from the reconnect.
    store.commit(pid, units[0], "SOLD", None).unwrap();
    expect_silence(&mut rx_b, 100).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 2, "killed {killed}");
    assert_eq!(unit_seq(&next_msg(&mut rx_b).await), 1);
    assert!(hub_b.metrics().redis_reconnects.get() >= 1);
    assert!(hub_b.metrics().catch_ups.get() >= 1);

    // The live path works again after the reconnect.
    wait_until("A resubscribed", Duration::from_secs(3), || {
        hub_a.metrics().redis_reconnects.get() >= 1
    })
    .await;
    let ev = store.commit(pid, units[1], "BOOKED", None).unwrap();
    bus_a.publish(&ev).await.unwrap();
    assert_eq!(unit_seq(&next_msg(&mut rx_b).await), 2);
    assert!(bus_b.is_subscribed());
}

/// TCP proxy that can black-hole its existing connections (bytes vanish, sockets stay open),
/// which is what a half-open link looks like to the client.
/// Returns the proxy address, the black-hole cutoff (connections with id <= it are cut)
/// and the number of connections opened so far.
async fn blackhole_proxy(target: String) -> (String, Arc<AtomicU64>, Arc<AtomicU64>) {
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
fn with_addr(url: &str, addr: &str) -> String {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connection_is_noticed_by_ping() {
    let Some(url) = redis_url() else { return };
    let _serial = SERIAL.lock().await;
    let info = redis::Client::open(url.as_str()).unwrap();
    let target = match info.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        other => {
            eprintln!("note: half-open test needs plain TCP Redis, got {other}; skipping");
            return;
        }
    };
    let (proxy, cutoff, opened) = blackhole_proxy(target).await;
    let proxied = with_addr(&url, &proxy);
    let store = Arc::new(MemoryStore::new());
    let (pid, units) = store.add_project(1);
    let hub = Hub::new(store.clone(), HubConfig::default());
    let _bus = RedisBus::connect_with_config(&proxied, hub.clone(), fast_config())
        .await
        .unwrap();
    let ch = format!("project:{pid}");
    let (c, mut rx) = hub.connect();
    c.handle_text(&sub(&ch), false);
    expect_snapshot(&mut rx, &ch).await;
    // Never published: it can only arrive through the catch-up after the reconnect.
    store.commit(pid, units[0], "BOOKED", None).unwrap();
    // Black-hole every connection opened so far; new ones work.
    cutoff.store(opened.load(Ordering::SeqCst), Ordering::SeqCst);
    let start = Instant::now();
    assert_eq!(unit_seq(&next_msg(&mut rx).await), 1);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(hub.metrics().redis_reconnects.get() >= 1);
}
