#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! 10,000 idle sessions held within the documented memory bound. Alone in its test binary so no
//! other test's allocations blur the measurement.

use std::sync::Arc;

use keyward_ram::codec::Initiation;
use keyward_ram::server::{Diag, Engine, EngineConfig};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Documented bound (docs/ramoverhttp.md): an idle session costs at most 16 KiB of server memory.
const IDLE_SESSION_BOUND: u64 = 16 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_sessions_within_the_memory_bound() {
    let cfg = EngineConfig {
        max_sessions: 20_000,
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::new(cfg).service("diag", Diag));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/rt/diag", listener.local_addr().unwrap());
    tokio::spawn(keyward_ram::server::serve(engine.clone(), listener));
    // No connection pooling: an idle device holds no socket.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let body = Initiation::new(keyward_se::ATR.to_vec()).encode().unwrap();
    let open = |n: usize| {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..n {
                let (http, url, body) = (http.clone(), url.clone(), body.clone());
                tasks.spawn(async move {
                    let r = http
                        .post(&url)
                        .header("Content-Type", keyward_ram::CONTENT_TYPE)
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                });
                if tasks.len() >= 200 {
                    tasks.join_next().await.unwrap().unwrap();
                }
            }
            while let Some(t) = tasks.join_next().await {
                t.unwrap();
            }
        }
    };
    open(1000).await; // warm up allocator and runtime
    let before = rss_bytes();
    open(10_000).await;
    assert_eq!(engine.active_sessions(), 11_000);
    let per_session = rss_bytes().saturating_sub(before) / 10_000;
    println!("idle session: {per_session} bytes of RSS each");
    assert!(
        per_session <= IDLE_SESSION_BOUND,
        "{per_session} bytes per idle session"
    );
}
