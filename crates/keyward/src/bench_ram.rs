//! `keyward bench ram`: one RAMoverHTTP server on loopback with its clients in the same run —
//! sessions/s, APDUs/s, server memory per idle session, and bytes on the wire (everything the
//! server's sockets carry: HTTP headers and bodies) per APDU against the APDUs' own size.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use clap::Args;
use keyward_ram::client::{self, Card, ClientConfig};
use keyward_ram::codec::Initiation;
use keyward_ram::server::{Engine, EngineConfig, ScriptError, Service, Session};
use keyward_se::{Applet, MemoryStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

#[derive(Args)]
pub struct RamArgs {
    /// Sessions per measurement.
    #[arg(long, default_value_t = 2000)]
    sessions: usize,
    /// Sessions running at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Idle sessions for the memory measurement.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
}

/// `batches` batches of `apdus` commands each: SELECT of the applet, then GET CHALLENGEs.
struct Challenges {
    batches: usize,
    apdus: usize,
}

const GET_CHALLENGE: [u8; 5] = [0x00, 0x84, 0x00, 0x00, 0x08];
const SELECT: [u8; 16] = [
    0x00, 0xA4, 0x04, 0x0C, 0x0B, 0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01,
];

impl Challenges {
    fn batch(&self) -> Vec<Vec<u8>> {
        let mut b = vec![SELECT.to_vec()];
        b.extend(std::iter::repeat_n(GET_CHALLENGE.to_vec(), self.apdus - 1));
        b
    }

    /// Average bytes of one command plus its response.
    fn apdu_size(&self) -> f64 {
        let gc = (self.apdus - 1) as f64 * (5.0 + 10.0);
        (SELECT.len() as f64 + 2.0 + gc) / self.apdus as f64
    }
}

impl Service for Challenges {
    fn run<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> Pin<Box<dyn Future<Output = Result<(), ScriptError>> + Send + 'a>> {
        Box::pin(async move {
            for _ in 0..self.batches {
                let r = session.transmit(self.batch()).await?;
                if r[0] != [0x90, 0x00] || r[1..].iter().any(|r| r.len() != 10) {
                    return Err(format!("unexpected answers {r:02X?}").into());
                }
            }
            Ok(())
        })
    }
}

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

/// A socket that counts the bytes it carries.
struct Counted {
    inner: TcpStream,
    bytes: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.bytes.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct CountingListener {
    inner: TcpListener,
    bytes: Arc<AtomicU64>,
}

impl axum::serve::Listener for CountingListener {
    type Io = Counted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok((s, a)) = self.inner.accept().await {
                let _ = s.set_nodelay(true);
                return (
                    Counted {
                        inner: s,
                        bytes: self.bytes.clone(),
                    },
                    a,
                );
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

const ONE: Challenges = Challenges {
    batches: 1,
    apdus: 2,
};
const MANY: Challenges = Challenges {
    batches: 10,
    apdus: 10,
};

pub fn run(a: &RamArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("keyward-bench-ram-{}", std::process::id()));
    let ca = keyward_se::dev_pki::DevCa::open_or_create(&dir)?;
    let state = ca.new_element()?;
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let bytes = Arc::new(AtomicU64::new(0));
        let engine = Arc::new(
            Engine::new(EngineConfig {
                max_sessions: a.idle + a.concurrency + 1000,
                ..EngineConfig::default()
            })
            .service("one", ONE)
            .service("many", MANY),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let counting = CountingListener {
            inner: listener,
            bytes: bytes.clone(),
        };
        tokio::spawn(axum::serve(counting, engine.clone().router()).into_future());

        // `concurrency` devices, each running its share of the sessions one after the other
        // with its own HTTP client (a new initiation replaces the device's previous cookie).
        let sessions = |service: &'static str| {
            let (base, state) = (base.clone(), state.clone());
            async move {
                let cfg = ClientConfig::new(format!("{base}/rt/{service}"));
                let clients = (0..a.concurrency)
                    .map(|_| client::http_client(&cfg))
                    .collect::<Result<Vec<_>, _>>()?;
                let started = Instant::now();
                let mut set = tokio::task::JoinSet::new();
                for (i, http) in clients.into_iter().enumerate() {
                    let n = a.sessions / a.concurrency + usize::from(i < a.sessions % a.concurrency);
                    let (cfg, state) = (cfg.clone(), state.clone());
                    set.spawn(async move {
                        let mut apdus = 0;
                        for _ in 0..n {
                            let mut card = Element(Applet::new(state.clone(), MemoryStore));
                            apdus += client::connect(&http, &cfg, &mut card, &mut |_| {}).await?.apdus;
                        }
                        Ok::<u64, client::ClientError>(apdus)
                    });
                }
                let mut apdus = 0u64;
                while let Some(r) = set.join_next().await {
                    apdus += r??;
                }
                Ok::<_, anyhow::Error>((started.elapsed(), apdus))
            }
        };

        bytes.store(0, Ordering::Relaxed);
        let (t, apdus) = sessions("one").await?;
        let one_wire = bytes.load(Ordering::Relaxed) as f64 / apdus as f64;
        println!(
            "sessions/s (1 batch of 2 APDUs, {} sessions, {} at once): {:.0}",
            a.sessions,
            a.concurrency,
            a.sessions as f64 / t.as_secs_f64()
        );
        bytes.store(0, Ordering::Relaxed);
        let (t, apdus) = sessions("many").await?;
        let many_wire = bytes.load(Ordering::Relaxed) as f64 / apdus as f64;
        println!(
            "APDUs/s (10 batches of 10 APDUs per session): {:.0} ({:.0} sessions/s)",
            apdus as f64 / t.as_secs_f64(),
            a.sessions as f64 / t.as_secs_f64()
        );
        println!(
            "wire bytes per APDU (HTTP headers + bodies, both directions) vs the APDU's own size \
             (command + response): {one_wire:.0} vs {:.1} = {:.1}x with 2 APDUs per session, \
             {many_wire:.0} vs {:.1} = {:.1}x with 100 in batches of 10",
            ONE.apdu_size(),
            one_wire / ONE.apdu_size(),
            MANY.apdu_size(),
            many_wire / MANY.apdu_size()
        );

        // Idle sessions: started, then never answered.
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
        let init = Initiation::new(keyward_se::ATR.to_vec())
        .encode()?;
        let open = |n: usize| {
            let (http, init, url) = (http.clone(), init.clone(), format!("{base}/rt/many"));
            async move {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..n {
                    let (http, init, url) = (http.clone(), init.clone(), url.clone());
                    set.spawn(async move {
                        http.post(url)
                            .header("Content-Type", keyward_ram::CONTENT_TYPE)
                            .body(init)
                            .send()
                            .await
                            .map(|r| r.status().as_u16())
                    });
                    if set.len() >= 200 {
                        set.join_next().await;
                    }
                }
                while set.join_next().await.is_some() {}
            }
        };
        open(1000).await;
        let before = rss_bytes();
        open(a.idle).await;
        let per = rss_bytes().saturating_sub(before) as f64 / a.idle as f64;
        println!(
            "idle sessions: {} open, {per:.0} bytes of server memory each (RSS growth over {} sessions)",
            engine.active_sessions(),
            a.idle
        );
        Ok(())
    })
}
