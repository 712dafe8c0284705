//! `keyward bench produce`: a production line against a running server. N blank virtual
//! elements (behind an NXP T=1 link over a socket pair, or in-process) are produced through
//! `/rt/produce`, C at a time; prints devices/s, latency percentiles, HTTP round trips and
//! bytes per device. With `--retry-for` a device whose production failed (the server was
//! restarted) tries again until it is produced. `keyward bench provision` produces N devices
//! that way, then provisions them (measured); with `--retry-for` a device whose session failed
//! (its replica went away) starts a fresh one, and the retries are counted in the output.

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

/// An in-process element shared with the link for one session.
struct Shared(std::sync::Arc<Mutex<Element0>>);

impl keyward_card::CardChannel for Shared {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Vec<u8>, keyward_card::CardError> {
        // A poisoned lock means a panic elsewhere; the element itself is still consistent.
        let mut e = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(e.transmit(apdu))
    }

    fn reset(&mut self) -> Result<Vec<u8>, keyward_card::CardError> {
        if let Ok(mut e) = self.0.lock() {
            e.reset();
        }
        Ok(keyward_se::ATR.to_vec())
    }
}

/// Attaches the element over the chosen link (a power cycle), runs `f` with the device's
/// channel, and gives the element back.
fn with_link<R>(
    element: Element0,
    link: &str,
    f: impl FnOnce(&mut Element) -> R,
) -> anyhow::Result<(Element0, R)> {
    match link {
        "inproc" => {
            let shared = std::sync::Arc::new(Mutex::new(element));
            let mut card = Element(Box::new(Shared(shared.clone())));
            let r = f(&mut card);
            drop(card);
            let applet = std::sync::Arc::try_unwrap(shared)
                .map_err(|_| anyhow::anyhow!("element still in use"))?
                .into_inner()
                .map_err(|_| anyhow::anyhow!("element lock poisoned"))?;
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
            let r = f(&mut card);
            drop(card);
            let applet = server
                .join()
                .map_err(|_| anyhow::anyhow!("element thread panicked"))?;
            Ok((applet, r))
        }
        other => bail!("unknown link {other:?} (t1 or inproc)"),
    }
}

/// An attempt's element, outcome and transport PIN.
type Attempt = (
    Element0,
    Result<client::Summary, ClientError>,
    Option<zeroize::Zeroizing<String>>,
);

/// One production attempt; gives the element back with the session's outcome and the
/// transport PIN it delivered (sealed to this attempt's PIN key, opened here).
fn attempt(
    element: Element0,
    link: &str,
    http: &reqwest::Client,
    cfg: &ClientConfig,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Attempt> {
    let mut receiver = keyward_server::produce::PinReceiver::new()?;
    let cfg = ClientConfig {
        url: receiver.url(&cfg.url),
        ..cfg.clone()
    };
    let mut on_notify = |n: &Notification| {
        receiver.notice(n);
    };
    let (e, r) = with_link(element, link, |card| {
        rt.block_on(client::connect(http, &cfg, card, &mut on_notify))
    })?;
    Ok((e, r, receiver.finish().map(|(_, pin)| pin)))
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
        let (back, result, _) = attempt(element, &a.link, http, cfg, rt)?;
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
    let start = Instant::now();
    let outcomes = on_workers(a.devices, a.concurrency, &a.url, |_, http, cfg, rt| {
        produce_one(a, http, cfg, rt)
    })?;
    let mut t = Tally::default();
    for outcome in outcomes {
        match outcome {
            Outcome::Produced { latency, summary } => t.add(latency, &summary),
            Outcome::AlreadyProduced => t.already += 1,
            Outcome::Failed(e) => t.failed.push(e),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "produced {} devices ({} found produced on retry, {} failed) in {elapsed:.2} s over {} link, concurrency {}",
        t.produced,
        t.already,
        t.failed.len(),
        a.link,
        a.concurrency
    );
    t.report(elapsed, a.devices)
}

impl Tally {
    fn add(&mut self, latency: Duration, summary: &client::Summary) {
        self.produced += 1;
        self.latencies_ms.push(latency.as_secs_f64() * 1e3);
        self.round_trips += summary.round_trips;
        self.bytes += summary.bytes_sent + summary.bytes_received;
    }

    /// Prints the contract's final line (and the first failures); fails if any device failed.
    fn report(mut self, elapsed: f64, devices: usize) -> anyhow::Result<()> {
        self.latencies_ms.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            if self.latencies_ms.is_empty() {
                return 0.0;
            }
            let i = ((self.latencies_ms.len() as f64 - 1.0) * p).round() as usize;
            self.latencies_ms[i]
        };
        let n = self.produced.max(1) as f64;
        for e in self.failed.iter().take(5) {
            println!("  failure: {e}");
        }
        println!(
            "devices/s={:.1} p50_ms={:.1} p99_ms={:.1} round_trips={:.1} bytes={:.0}",
            (self.produced + self.already) as f64 / elapsed,
            pct(0.50),
            pct(0.99),
            self.round_trips as f64 / n,
            self.bytes as f64 / n
        );
        if !self.failed.is_empty() {
            bail!("{} of {} devices failed", self.failed.len(), devices);
        }
        Ok(())
    }
}

#[derive(Args)]
pub struct ProvisionArgs {
    /// The provisioning service URL (its server's /rt/produce produces the devices first).
    #[arg(long, default_value = "http://127.0.0.1:8080/rt/provision")]
    url: String,
    /// Devices to provision.
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Provisionings at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The Key for Secure Transport of the blank elements.
    #[arg(long, default_value = "keyward-data/kst.key")]
    kst: PathBuf,
    /// How a device reaches its element: t1 or inproc.
    #[arg(long, default_value = "t1")]
    link: String,
    /// Certificate profile.
    #[arg(long, default_value = "tls-client")]
    profile: String,
    /// Retry a device whose production or provisioning session failed (a replica went away)
    /// with a fresh session, as a device would, for up to this many seconds per device.
    #[arg(long, default_value_t = 0)]
    retry_for: u64,
}

/// A produced device: its element, its own PIN and the production attempts that failed.
type Produced = (Element0, Vec<u8>, u32);

/// Runs `work` for `n` items on `workers` threads, each with its own HTTP client and runtime.
fn on_workers<T: Send>(
    n: usize,
    workers: usize,
    url: &str,
    work: impl Fn(usize, &reqwest::Client, &ClientConfig, &tokio::runtime::Runtime) -> anyhow::Result<T>
    + Sync,
) -> anyhow::Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..workers.max(1))
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    let cfg = ClientConfig {
                        timeout: Duration::from_secs(30),
                        ..ClientConfig::new(url)
                    };
                    let http = client::http_client(&cfg)?;
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        let r = work(i, &http, &cfg, &rt)?;
                        out.lock().map_err(|_| anyhow::anyhow!("results"))?.push(r);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
        }
        Ok(())
    })?;
    out.into_inner().map_err(|_| anyhow::anyhow!("results"))
}

/// Phase 1 for one device: a blank element produced (retried until `deadline` when a session
/// fails), then its transport PIN replaced by a PIN of its own.
fn produce_for_provisioning(
    a: &ProvisionArgs,
    deadline: Instant,
    http: &reqwest::Client,
    cfg: &ClientConfig,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Produced> {
    let mut element = new_element(&a.kst, None)?;
    // Every attempt that reached the last batch delivered the same transport PIN (the server
    // keeps it with the element's record).
    let mut transport = None;
    let mut retries = 0u32;
    loop {
        let (back, result, pin) = attempt(element, &a.link, http, cfg, rt)?;
        element = back;
        if pin.is_some() {
            transport = pin;
        }
        match result {
            Ok(_) => break,
            // An earlier attempt completed on the server after its last batch had reached the
            // element (with the transport PIN); only its answer got lost.
            Err(ClientError::ServerStopped { text, .. })
                if retries > 0 && transport.is_some() && text.contains("produced already") =>
            {
                break;
            }
            Err(e) if Instant::now() < deadline => {
                tracing::info!(error = %e, "production failed; retrying with a new session");
                retries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("production (after {retries} retries)"))
                );
            }
        }
    }
    let transport = transport.context("no transport PIN")?;
    let pin: Vec<u8> = keyward_crypto::random(8)?
        .iter()
        .map(|b| b'0' + b % 10)
        .collect();
    let (element, changed) = with_link(element, &a.link, |card| -> anyhow::Result<()> {
        let mut hsm = keyward_card::Hsm::new(&mut card.0);
        hsm.select()?;
        hsm.change_pin(transport.as_bytes(), &pin)?;
        Ok(())
    })?;
    changed?;
    Ok((element, pin, retries))
}

/// How one device's provisioning ended.
enum Provisioned {
    Done {
        /// The successful attempt alone.
        latency: Duration,
        /// From the first attempt's start to the end of the successful one.
        total: Duration,
        summary: client::Summary,
        retries: u32,
    },
    Failed {
        error: String,
        retries: u32,
    },
}

/// Phase 2 for one device: provisioning, retried with a fresh session (the element powered up
/// again, its PIN verified, a new initiation) until `deadline` when a session fails.
///
/// A failed attempt that got as far as the certificate's announcement (it travels with the
/// batch that stores the certificate) leaves the device unsure whether the server recorded the
/// certificate as active. The next attempt therefore renews that certificate: if it is active,
/// the new one supersedes it; if it is only pending, the server refuses the renewal ("nothing
/// to renew") and the attempt after goes back to the previous candidate, or to a plain
/// provisioning, which revokes the pending one. Either way the device ends with exactly one
/// active certificate for the profile.
fn provision_one(
    a: &ProvisionArgs,
    url: &str,
    (mut element, pin): (Element0, Vec<u8>),
    deadline: Instant,
    http: &reqwest::Client,
    cfg: &ClientConfig,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Provisioned> {
    let first = Instant::now();
    let mut retries = 0u32;
    // Serials announced by failed attempts, newest last: certificates that may be active.
    let mut maybe_active: Vec<String> = Vec::new();
    loop {
        let renew = maybe_active.last().cloned();
        let attempt_url = match &renew {
            Some(serial) => crate::device::provision_url(url, &[("renew", serial.as_str())])?,
            None => url.to_string(),
        };
        // No restart inside the session after a 410: the restarted script's plain opening
        // APDUs end the element's earlier secure-messaging channel and the PIN verification
        // with it, so its GENERATE would fail (6982). A lost session is retried here instead,
        // with the element powered up again and its PIN verified.
        let cfg = ClientConfig {
            url: attempt_url,
            max_restarts: 0,
            ..cfg.clone()
        };
        let mut announced = None;
        let mut on_notify = |n: &Notification| {
            if n.id == keyward_server::provision::NOTIFY_CERTIFICATE {
                announced = n
                    .text
                    .strip_prefix("certificate:")
                    .and_then(|t| t.split_whitespace().next())
                    .map(str::to_string);
            }
        };
        let t0 = Instant::now();
        // Outer error: the element itself (not retried: a PIN must not be tried again blindly).
        let (back, r) = with_link(element, &a.link, |card| -> anyhow::Result<_> {
            let mut hsm = keyward_card::Hsm::new(&mut card.0);
            hsm.select()?;
            hsm.verify_pin(&pin)?;
            Ok(rt.block_on(client::connect(http, &cfg, card, &mut on_notify)))
        })?;
        element = back;
        let error = match r {
            Ok(Ok(summary)) => {
                return Ok(Provisioned::Done {
                    latency: t0.elapsed(),
                    total: first.elapsed(),
                    summary,
                    retries,
                });
            }
            Ok(Err(e)) => e,
            Err(e) => {
                return Ok(Provisioned::Failed {
                    error: format!("element: {e:#}"),
                    retries,
                });
            }
        };
        if let Some(serial) = announced {
            maybe_active.push(serial);
        } else if let (Some(old), ClientError::ServerStopped { text, .. }) = (&renew, &error)
            && text.contains("nothing to renew")
        {
            // Not active: it was pending, and the next plain provisioning revokes it.
            tracing::info!(serial = %old, "the certificate to renew is not active");
            maybe_active.pop();
        }
        if Instant::now() >= deadline {
            return Ok(Provisioned::Failed {
                error: format!("{error} (after {retries} retries)"),
                retries,
            });
        }
        tracing::info!(%error, "provisioning failed; retrying with a new session");
        retries += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn run_provision(a: &ProvisionArgs) -> anyhow::Result<()> {
    let base = a.url.split('?').next().unwrap_or_default();
    let produce_url = match base.strip_suffix("/provision") {
        Some(prefix) => format!("{prefix}/produce"),
        None => bail!("the URL must end in /rt/provision"),
    };
    let retry_for = Duration::from_secs(a.retry_for);
    // Phase 1 (not measured): produce the devices; each replaces its transport PIN.
    let produced: Vec<Produced> = on_workers(
        a.devices,
        a.concurrency,
        &produce_url,
        |_, http, cfg, rt| produce_for_provisioning(a, Instant::now() + retry_for, http, cfg, rt),
    )?;
    let production_retries: u32 = produced.iter().map(|p| p.2).sum();
    let pool = Mutex::new(produced);
    let url = crate::device::provision_url(&a.url, &[("profile", a.profile.as_str())])?;
    let start = Instant::now();
    // Phase 2 (measured): provisioning; the PIN is verified locally first, as a device does.
    let results = on_workers(a.devices, a.concurrency, &url, |_, http, cfg, rt| {
        let (element, pin, _) = pool
            .lock()
            .map_err(|_| anyhow::anyhow!("pool"))?
            .pop()
            .context("no device")?;
        provision_one(
            a,
            &url,
            (element, pin),
            Instant::now() + retry_for,
            http,
            cfg,
            rt,
        )
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let mut t = Tally::default();
    let mut totals_ms = Vec::new();
    let (mut retries, mut retried) = (0u32, 0usize);
    for r in results {
        let n = match r {
            Provisioned::Done {
                latency,
                total,
                summary,
                retries,
            } => {
                t.add(latency, &summary);
                totals_ms.push(total.as_secs_f64() * 1e3);
                retries
            }
            Provisioned::Failed { error, retries } => {
                t.failed.push(error);
                retries
            }
        };
        retries += n;
        retried += usize::from(n > 0);
    }
    totals_ms.sort_by(f64::total_cmp);
    let max_total = totals_ms.last().copied().unwrap_or(0.0);
    let p99_total = totals_ms
        .get(((totals_ms.len() as f64 - 1.0) * 0.99).round() as usize)
        .copied()
        .unwrap_or(0.0);
    println!(
        "provisioned {} devices ({} failed) with profile {} in {elapsed:.2} s over {} link, concurrency {}",
        t.produced,
        t.failed.len(),
        a.profile,
        a.link,
        a.concurrency
    );
    println!(
        "retries: {retries} provisioning attempts repeated for {retried} devices, {production_retries} production attempts repeated (phase 1)"
    );
    println!(
        "latency: p50/p99 below are of each device's successful attempt; including failed attempts and pauses: p99_total_ms={p99_total:.1} max_total_ms={max_total:.1}; devices/s counts the whole phase; round trips and bytes are the successful attempt's"
    );
    t.report(elapsed, a.devices)
}
