#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Device client and session engine end to end on loopback: in-process elements and an element
//! behind a T=1 link; 1,000 concurrent sessions; clients killed mid-session; bad requests that
//! change nothing for other sessions. (The idle-session memory bound is measured alone, in
//! `idle_memory.rs`.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use keyward_ram::client::{self, Card, ClientConfig, ClientError, Notification};
use keyward_ram::codec::{Initiation, ResponseScript};
use keyward_ram::server::{Diag, Engine, EngineConfig, ScriptError, Service, Session};
use keyward_se::{Applet, MemoryStore};

const SELECT: [u8; 17] = [
    0x00, 0xA4, 0x04, 0x0C, 0x0B, 0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01,
    0x00,
];
const CHALLENGE: [u8; 5] = [0x00, 0x84, 0x00, 0x00, 0x08];

/// An in-process element as the device's card.
struct Element(Applet<MemoryStore>);

impl Card for Element {
    fn atr(&mut self) -> Vec<u8> {
        keyward_se::ATR.to_vec()
    }
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, String> {
        Ok(self.0.transmit(apdu))
    }
    fn reset(&mut self) -> Result<Vec<u8>, String> {
        self.0.reset();
        Ok(keyward_se::ATR.to_vec())
    }
}

fn elements(n: usize) -> Vec<Element> {
    static STATE: std::sync::OnceLock<keyward_se::state::State> = std::sync::OnceLock::new();
    let state = STATE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("keyward-ram-e2e-{}", std::process::id()));
        let ca = keyward_se::dev_pki::DevCa::open_or_create(&dir).unwrap();
        ca.new_element().unwrap()
    });
    (0..n)
        .map(|_| Element(Applet::new(state.clone(), MemoryStore)))
        .collect()
}

/// `batches` round trips of SELECT + GET CHALLENGE, each answer checked, a notification before
/// each.
struct Batches(usize);

impl Service for Batches {
    fn run<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> Pin<Box<dyn Future<Output = Result<(), ScriptError>> + Send + 'a>> {
        Box::pin(async move {
            for i in 0..self.0 {
                session.notify(i as i64 + 1, format!("batch {}", i + 1));
                let r = session
                    .transmit(vec![SELECT.to_vec(), CHALLENGE.to_vec()])
                    .await?;
                if r[0] != [0x90, 0x00] || r[1].len() != 10 || r[1][8..] != [0x90, 0x00] {
                    return Err(format!("unexpected answers {r:02X?}").into());
                }
            }
            Ok(())
        })
    }
}

/// Fails after one round trip.
struct Failing;

impl Service for Failing {
    fn run<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> Pin<Box<dyn Future<Output = Result<(), ScriptError>> + Send + 'a>> {
        Box::pin(async move {
            session.transmit(vec![SELECT.to_vec()]).await?;
            Err("policy refused this device".into())
        })
    }
}

/// An impostor back end: after a harmless SELECT it asks the element, in plain, to sign with
/// key 1 and to change the PIN; it reports the status words it got.
struct Impostor;

impl Service for Impostor {
    fn run<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> Pin<Box<dyn Future<Output = Result<(), ScriptError>> + Send + 'a>> {
        Box::pin(async move {
            let r = session
                .transmit(vec![
                    SELECT.to_vec(),
                    vec![0x80, 0x68, 0x01, 0x73, 0x04, 1, 2, 3, 4, 0x00],
                    vec![0x00, 0x24, 0x00, 0x81, 0x04, 1, 2, 3, 4],
                ])
                .await?;
            let sws: Vec<String> = r
                .iter()
                .map(|a| hex::encode_upper(&a[a.len().saturating_sub(2)..]))
                .collect();
            session.notify(1, sws.join(" "));
            Ok(())
        })
    }
}

async fn start(cfg: EngineConfig) -> (Arc<Engine>, String) {
    let engine = Arc::new(
        Engine::new(cfg)
            .service("diag", Diag)
            .service("ten", Batches(10))
            .service("long", Batches(1000))
            .service("fail", Failing)
            .service("impostor", Impostor),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(keyward_ram::server::serve(engine.clone(), listener));
    (engine, base)
}

async fn run_session(
    url: &str,
    card: &mut (dyn Card + Send),
) -> (Result<client::Summary, ClientError>, Vec<Notification>) {
    let cfg = ClientConfig::new(url);
    let http = client::http_client(&cfg).unwrap();
    let mut seen = Vec::new();
    let r = client::connect(&http, &cfg, card, &mut |n| seen.push(n.clone())).await;
    (r, seen)
}

async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diag_and_scripts_end_to_end() {
    let (engine, base) = start(EngineConfig::default()).await;
    let mut card = elements(1).pop().unwrap();
    let (r, seen) = run_session(&format!("{base}/rt/diag"), &mut card).await;
    let summary = r.unwrap();
    assert_eq!(summary.apdus, 2);
    let text = &seen[0].text;
    assert!(text.contains("SELECT SmartCard-HSM: 9000"), "{text}");
    assert!(text.contains("GET CHALLENGE: 9000 (8 bytes)"), "{text}");
    assert!(text.contains(&hex::encode_upper(keyward_se::ATR)), "{text}");

    let (r, seen) = run_session(&format!("{base}/rt/ten"), &mut card).await;
    let summary = r.unwrap();
    // The initiation plus ten answers; the last one is answered with 204.
    assert_eq!((summary.round_trips, summary.apdus), (11, 20));
    assert_eq!(seen.len(), 10);
    assert_eq!(seen[9].text, "batch 10");

    // A failing script stops the device with its reason.
    let (r, _) = run_session(&format!("{base}/rt/fail"), &mut card).await;
    match r {
        Err(ClientError::ServerStopped { id: -1, text }) => {
            assert!(text.contains("policy refused"), "{text}")
        }
        other => panic!("{other:?}"),
    }
    assert!(wait_until(Duration::from_secs(2), || engine.active_sessions() == 0).await);
    let m = &engine.metrics;
    assert_eq!(m.sessions_completed.load(Ordering::Relaxed), 2);
    assert_eq!(m.sessions_failed.load(Ordering::Relaxed), 1);
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("keyward_ram_sessions_started_total 3"),
        "{text}"
    );
    assert!(text.contains("keyward_ram_apdus_total 23"), "{text}");
}

/// The device's card behind a T=1 link (NXP variant) served by another thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_over_the_t1_link() {
    struct T1Card(keyward_card::T1Channel);
    impl Card for T1Card {
        fn atr(&mut self) -> Vec<u8> {
            keyward_se::ATR.to_vec()
        }
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, String> {
            use keyward_card::CardChannel;
            self.0.transmit_raw(apdu).map_err(|e| e.to_string())
        }
        fn reset(&mut self) -> Result<Vec<u8>, String> {
            Ok(keyward_se::ATR.to_vec())
        }
    }
    let (_engine, base) = start(EngineConfig::default()).await;
    let dir = std::env::temp_dir().join(format!("keyward-ram-t1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("se.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let Element(mut applet) = elements(1).pop().unwrap();
    std::thread::spawn(move || {
        let _ =
            keyward_t1::bus::serve_unix(
                &listener,
                keyward_t1::Variant::NxpI2c,
                None,
                |r| match r {
                    keyward_t1::bus::CardRequest::Apdu(apdu) => applet.transmit(apdu),
                    _ => Vec::new(),
                },
            );
    });
    let ch =
        keyward_card::T1Channel::connect_unix(sock.to_str().unwrap(), keyward_t1::Variant::NxpI2c)
            .unwrap();
    let mut card = T1Card(ch);
    let (r, seen) = run_session(&format!("{base}/rt/ten"), &mut card).await;
    assert_eq!(r.unwrap().apdus, 20);
    assert_eq!(seen.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_sessions() {
    let (engine, base) = start(EngineConfig::default()).await;
    let url = format!("{base}/rt/ten");
    let started = Instant::now();
    let tasks: Vec<_> = elements(1000)
        .into_iter()
        .map(|mut card| {
            let url = url.clone();
            tokio::spawn(async move { run_session(&url, &mut card).await.0 })
        })
        .collect();
    let mut apdus = 0;
    for t in tasks {
        apdus += t.await.unwrap().unwrap().apdus;
    }
    assert_eq!(apdus, 20_000);
    let m = &engine.metrics;
    assert_eq!(m.sessions_completed.load(Ordering::Relaxed), 1000);
    assert_eq!(m.sessions_failed.load(Ordering::Relaxed), 0);
    assert!(wait_until(Duration::from_secs(2), || engine.active_sessions() == 0).await);
    println!("1000 sessions x 10 batches in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_clients_free_their_sessions() {
    let cfg = EngineConfig {
        idle_timeout: Duration::from_millis(500),
        ..EngineConfig::default()
    };
    let (engine, base) = start(cfg).await;
    let url = format!("{base}/rt/long");
    let tasks: Vec<_> = elements(50)
        .into_iter()
        .map(|mut card| {
            let url = url.clone();
            tokio::spawn(async move { run_session(&url, &mut card).await })
        })
        .collect();
    assert!(wait_until(Duration::from_secs(10), || engine.active_sessions() == 50).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for t in &tasks {
        t.abort(); // the device dies mid-session
    }
    assert!(
        wait_until(Duration::from_secs(5), || engine.active_sessions() == 0).await,
        "sessions left: {}",
        engine.active_sessions()
    );
    assert_eq!(engine.metrics.sessions_failed.load(Ordering::Relaxed), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_without_effect_on_other_sessions() {
    let cfg = EngineConfig {
        max_body: 4096,
        ..EngineConfig::default()
    };
    let (engine, base) = start(cfg).await;
    let url = format!("{base}/rt/ten");
    // A legitimate session runs throughout.
    let mut card = elements(1).pop().unwrap();
    let legit = {
        let url = url.clone();
        tokio::spawn(async move { run_session(&url, &mut card).await.0 })
    };
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>, ctype: &'static str, cookie: Option<String>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut req = http.post(&url).header("Content-Type", ctype).body(body);
            if let Some(c) = cookie {
                req = req.header("Cookie", c);
            }
            req.send().await.unwrap()
        }
    };
    let ct = keyward_ram::CONTENT_TYPE;
    let init = Initiation::new(vec![0x3B, 0x00]).encode().unwrap();
    let ab = ResponseScript::default().encode().unwrap();
    assert_eq!(post(init.clone(), "text/plain", None).await.status(), 415);
    assert_eq!(
        post(vec![0x12, 0x34], ct, None).await.status(),
        400,
        "garbage"
    );
    assert_eq!(
        post(vec![0xE8, 0x05, 0xC0], ct, None).await.status(),
        400,
        "truncated"
    );
    assert_eq!(
        post(vec![0xE8, 0x02, 0x99, 0x00], ct, None).await.status(),
        400,
        "unknown tag"
    );
    assert_eq!(
        post(vec![0xE8; 10_000], ct, None).await.status(),
        413,
        "overlong"
    );
    assert_eq!(post(ab.clone(), ct, None).await.status(), 400, "no cookie");
    let forged = Some(format!("{}={}", keyward_ram::COOKIE, "00".repeat(16)));
    assert_eq!(
        post(ab.clone(), ct, forged).await.status(),
        410,
        "forged cookie"
    );
    let r = http
        .post(format!("{base}/rt/nosuch"))
        .header("Content-Type", ct)
        .body(init.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A real session: answer once, then replay the same answer.
    let first = post(init.clone(), ct, None).await;
    assert_eq!(first.status(), 200);
    let cookie = first
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let answer = ResponseScript {
        items: vec![
            keyward_ram::codec::Response::Apdu(vec![0x90, 0x00]),
            keyward_ram::codec::Response::Apdu(vec![0; 10]),
        ],
        executed: 2,
    }
    .encode()
    .unwrap();
    // Deliberately wrong answers make the script fail: the device is told to stop.
    let second = post(answer.clone(), ct, Some(cookie.clone())).await;
    assert_eq!(second.status(), 200);
    let replay = post(answer, ct, Some(cookie)).await.status();
    assert!(replay == 409 || replay == 410, "replay answered {replay}");
    let summary = legit.await.unwrap().unwrap();
    assert_eq!(
        summary.apdus, 20,
        "the legitimate session was not disturbed"
    );
    assert!(engine.metrics.bad_requests.load(Ordering::Relaxed) >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_limit_answers_503_with_retry_after() {
    let cfg = EngineConfig {
        max_sessions: 2,
        ..EngineConfig::default()
    };
    let (_engine, base) = start(cfg).await;
    let http = reqwest::Client::new();
    let init = Initiation::new(vec![0x3B, 0x00]).encode().unwrap();
    let mut codes = Vec::new();
    let mut retry = None;
    for _ in 0..3 {
        let r = http
            .post(format!("{base}/rt/ten"))
            .header("Content-Type", keyward_ram::CONTENT_TYPE)
            .body(init.clone())
            .send()
            .await
            .unwrap();
        codes.push(r.status().as_u16());
        if r.status() == 503 {
            retry = r.headers().get("retry-after").cloned();
        }
    }
    assert_eq!(codes, vec![200, 200, 503]);
    assert_eq!(retry.unwrap(), "1");
}

/// Waits longer than the POST may be held, then works: the device gets empty keep-alive scripts
/// meanwhile and the script still gets only its own answer.
struct Slow;

impl Service for Slow {
    fn run<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> Pin<Box<dyn Future<Output = Result<(), ScriptError>> + Send + 'a>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let r = session.transmit(vec![SELECT.to_vec()]).await?;
            if r[0] != [0x90, 0x00] {
                return Err("SELECT failed".into());
            }
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_scripts_keep_the_device_waiting_with_empty_scripts() {
    let cfg = EngineConfig {
        poll_timeout: Duration::from_millis(200),
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::new(cfg).service("slow", Slow));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/rt/slow", listener.local_addr().unwrap());
    tokio::spawn(keyward_ram::server::serve(engine.clone(), listener));
    let mut card = elements(1).pop().unwrap();
    let (r, _) = run_session(&url, &mut card).await;
    let summary = r.unwrap();
    assert_eq!(summary.apdus, 1);
    assert!(summary.round_trips >= 4, "keep-alives: {summary:?}");
    assert_eq!(engine.metrics.sessions_completed.load(Ordering::Relaxed), 1);
}

/// A server replica that lost the session answers 410; the device starts over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_is_restarted_by_the_device() {
    use axum::http::StatusCode;
    use std::sync::atomic::AtomicUsize;
    let posts = Arc::new(AtomicUsize::new(0));
    let counter = posts.clone();
    // First POST (initiation): a batch; second (its answer): 410 Gone, as a replica that never
    // knew the session; third (the new initiation): done.
    let app = axum::Router::new().route(
        "/rt/x",
        axum::routing::post(move |body: axum::body::Bytes| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => {
                        assert_eq!(body[0], 0xE8);
                        (
                            StatusCode::OK,
                            vec![0xAA, 0x07, 0x22, 0x05, 0, 0x84, 0, 0, 8],
                        )
                    }
                    1 => {
                        assert_eq!(body[0], 0xAB);
                        (StatusCode::GONE, Vec::new())
                    }
                    _ => {
                        assert_eq!(body[0], 0xE8, "the device starts over");
                        (StatusCode::NO_CONTENT, Vec::new())
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/rt/x", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut card = elements(1).pop().unwrap();
    let (r, _) = run_session(&url, &mut card).await;
    assert_eq!(r.unwrap().round_trips, 3);
    assert_eq!(posts.load(Ordering::SeqCst), 3);
}

/// Counts the commands that reach the element.
struct Counting<'a>(&'a mut Element, Vec<Vec<u8>>);

impl Card for Counting<'_> {
    fn atr(&mut self) -> Vec<u8> {
        self.0.atr()
    }
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, String> {
        self.1.push(apdu.to_vec());
        self.0.transmit(apdu)
    }
    fn reset(&mut self) -> Result<Vec<u8>, String> {
        self.0.reset()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_firewall_keeps_plain_key_use_from_the_element() {
    let (_, base) = start(EngineConfig::default()).await;
    let mut element = elements(1).pop().unwrap();
    let mut seen = Counting(&mut element, Vec::new());
    let mut guarded =
        keyward_ram::guard::Guarded::new(&mut seen, keyward_ram::guard::BACK_END_SERVICES);
    let (r, notes) = run_session(&format!("{base}/rt/impostor"), &mut guarded).await;
    r.unwrap();
    let refused = guarded.refused.clone();
    assert_eq!(
        refused,
        [[0x80, 0x68, 0x01, 0x73], [0x00, 0x24, 0x00, 0x81]],
        "SIGN and CHANGE REFERENCE DATA refused on the device"
    );
    assert_eq!(notes[0].text, "9000 6982 6982");
    assert_eq!(seen.1.len(), 1, "only SELECT reached the element");
}
