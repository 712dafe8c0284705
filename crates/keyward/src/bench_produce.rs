//! `keyward bench produce`: a production line against a running server. N blank virtual
//! elements (behind an NXP T=1 link over a socket pair, or in-process) are produced through
//! `/rt/produce`, C at a time; prints devices/s, latency percentiles, HTTP round trips and
//! bytes per device. With `--retry-for` a device whose production failed (the server was
//! restarted) tries again until it is produced.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use keyward_card::T1Channel;
use keyward_ram::client::{self, ClientConfig, ClientError, Notification};
use keyward_se::state::State;
use keyward_se::{Applet, MemoryStore, Persist, StateFile, StorageError};

use crate::device::Element;

#[derive(Args)]
pub struct ProduceArgs {
    /// The production service URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/rt/produce")]
    url: String,
    /// Devices to produce.
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Devices in production at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The Key for Secure Transport of the blank elements (the server's data directory has it).
    #[arg(long, default_value = "keyward-data/kst.key")]
    kst: PathBuf,
    /// How a device reaches its element: t1 (NXP T=1 framing over a socket pair) or inproc.
    #[arg(long, default_value = "t1")]
    link: String,
    /// Retry a device whose production failed for up to this many seconds.
    #[arg(long, default_value_t = 0)]
    retry_for: u64,
    /// Keep each element as a sealed state file in this directory.
    #[arg(long)]
    elements: Option<PathBuf>,
}

/// Where an element's state goes: memory, or its state file.
enum Store {
    Memory(MemoryStore),
    File(StateFile),
}

impl Persist for Store {
    fn persist(&mut self, state: &State) -> Result<(), StorageError> {
        match self {
            Self::Memory(m) => m.persist(state),
            Self::File(f) => f.persist(state),
        }
    }
}

type Element0 = Applet<Store>;

/// An in-process element as the RAMoverHTTP client's card.
struct Direct<'a>(&'a mut Element0);

impl client::Card for Direct<'_> {
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

/// How one device's production ended.
enum Outcome {
    Produced {
        latency: Duration,
        summary: client::Summary,
    },
    /// A retry found the element produced (its earlier session had finished on the server).
    AlreadyProduced,
    Failed(String),
}

#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    round_trips: u64,
    bytes: u64,
    produced: usize,
    already: usize,
    failed: Vec<String>,
}

/// One production attempt over the chosen link; gives the element back.
fn attempt(
    element: Element0,
    link: &str,
    http: &reqwest::Client,
    cfg: &ClientConfig,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<(Element0, Result<client::Summary, ClientError>)> {
    let mut ignore = |_: &Notification| {};
    match link {
        "inproc" => {
            let mut applet = element;
            let r = rt.block_on(client::connect(
                http,
                cfg,
                &mut Direct(&mut applet),
                &mut ignore,
            ));
            Ok((applet, r))
        }
        "t1" => {
            let (host, card_end) = std::os::unix::net::UnixStream::pair()?;
            let server = std::thread::spawn(move || {
                let mut applet = element;
                keyward_t1::bus::serve_stream(
                    card_end,
                    keyward_t1::Variant::NxpI2c,
                    None,
                    &mut |req| match req {
                        keyward_t1::bus::CardRequest::PowerOn => {
                            applet.reset();
                            Vec::new()
                        }
                        keyward_t1::bus::CardRequest::Apdu(apdu) => applet.transmit(apdu),
                        keyward_t1::bus::CardRequest::LinkError(_) => Vec::new(),
                    },
                );
                applet
            });
            let channel = T1Channel::over(host, keyward_t1::Variant::NxpI2c)?;
            let mut card = Element(Box::new(channel));
            let r = rt.block_on(client::connect(http, cfg, &mut card, &mut ignore));
            drop(card);
            let applet = server
                .join()
                .map_err(|_| anyhow::anyhow!("element thread panicked"))?;
            Ok((applet, r))
        }
        other => bail!("unknown link {other:?} (t1 or inproc)"),
    }
}

fn new_element(kst: &Path, dir: Option<&Path>) -> anyhow::Result<Element0> {
    let state = crate::se::blank_element(kst)?;
    let store = match dir {
        None => Store::Memory(MemoryStore),
        Some(dir) => {
            let serial = state
                .card
                .as_ref()
                .map(|c| hex::encode_upper(&c.kdd.0))
                .unwrap_or_default();
            let path = dir.join(format!("{serial}.state"));
            Store::File(StateFile::create(
                &path,
                &StateFile::default_key_path(&path),
                &state,
            )?)
        }
    };
    Ok(Applet::new(state, store))
}

fn produce_one(
    a: &ProduceArgs,
    http: &reqwest::Client,
    cfg: &ClientConfig,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Outcome> {
    let mut element = new_element(&a.kst, a.elements.as_deref())?;
    let deadline = Instant::now() + Duration::from_secs(a.retry_for);
    let mut first = true;
    loop {
        let start = Instant::now();
        let (back, result) = attempt(element, &a.link, http, cfg, rt)?;
        element = back;
        match result {
            Ok(summary) => {
                return Ok(Outcome::Produced {
                    latency: start.elapsed(),
                    summary,
                });
            }
            Err(ClientError::ServerStopped { text, .. })
                if !first && text.contains("produced already") =>
            {
                return Ok(Outcome::AlreadyProduced);
            }
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "production failed; retrying");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Ok(Outcome::Failed(e.to_string())),
        }
        first = false;
    }
}

pub fn run(a: &ProduceArgs) -> anyhow::Result<()> {
    if let Some(dir) = &a.elements {
        std::fs::create_dir_all(dir)?;
    }
    crate::se::blank_element(&a.kst).with_context(|| format!("KST {}", a.kst.display()))?;
    let next = AtomicUsize::new(0);
    let tally = Mutex::new(Tally::default());
    let start = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..a.concurrency.max(1))
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    let cfg = ClientConfig {
                        timeout: Duration::from_secs(30),
                        ..ClientConfig::new(&a.url)
                    };
                    let http = client::http_client(&cfg)?;
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    while next.fetch_add(1, Ordering::Relaxed) < a.devices {
                        let outcome = produce_one(a, &http, &cfg, &rt)?;
                        let mut t = tally.lock().map_err(|_| anyhow::anyhow!("tally"))?;
                        match outcome {
                            Outcome::Produced { latency, summary } => {
                                t.produced += 1;
                                t.latencies_ms.push(latency.as_secs_f64() * 1e3);
                                t.round_trips += summary.round_trips;
                                t.bytes += summary.bytes_sent + summary.bytes_received;
                            }
                            Outcome::AlreadyProduced => t.already += 1,
                            Outcome::Failed(e) => t.failed.push(e),
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
        }
        Ok(())
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let mut t = tally.into_inner().map_err(|_| anyhow::anyhow!("tally"))?;
    t.latencies_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if t.latencies_ms.is_empty() {
            return 0.0;
        }
        let i = ((t.latencies_ms.len() as f64 - 1.0) * p).round() as usize;
        t.latencies_ms[i]
    };
    let n = t.produced.max(1) as f64;
    println!(
        "produced {} devices ({} found produced on retry, {} failed) in {elapsed:.2} s over {} link, concurrency {}",
        t.produced,
        t.already,
        t.failed.len(),
        a.link,
        a.concurrency
    );
    for e in t.failed.iter().take(5) {
        println!("  failure: {e}");
    }
    println!(
        "devices/s={:.1} p50_ms={:.1} p99_ms={:.1} round_trips={:.1} bytes={:.0}",
        (t.produced + t.already) as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        t.round_trips as f64 / n,
        t.bytes as f64 / n
    );
    if !t.failed.is_empty() {
        bail!("{} of {} productions failed", t.failed.len(), a.devices);
    }
    Ok(())
}
