//! `keyward device run`: the device's renewal daemon. Each cycle it looks at the certificates
//! on the element (by profile label), renews every one that is due — a new key and certificate
//! through `/rt/provision?renew=SERIAL`; the old one stays usable until the new one is stored,
//! and is deleted from the element only afterwards — and sleeps until the next is due. While the
//! back end is unreachable it retries with exponential, jittered backoff.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use keyward_ca::x509_read::Certificate;
use keyward_card::{CardChannel, Hsm, HsmError, open_transport};
use zeroize::Zeroizing;

use crate::device::{Element, provision_over, provision_url};

#[derive(Args)]
pub struct RunArgs {
    /// The provisioning service URL, e.g. https://pki.example/rt/provision.
    #[arg(long)]
    url: String,
    /// The element: pcsc:READER-PREFIX, t1:unix:PATH[?variant=…] or se:STATE-FILE.
    #[arg(long)]
    card: String,
    /// The device's PIN (verified locally, never sent).
    #[arg(long, default_value = "keyward-device.pin")]
    pin_file: PathBuf,
    /// Profiles to keep valid (a certificate labelled with the profile's name); one that is
    /// missing is provisioned.
    #[arg(long = "profile", required = true)]
    profiles: Vec<String>,
    /// Renew when this fraction of a certificate's lifetime has passed.
    #[arg(long, default_value_t = 2.0 / 3.0)]
    renew_at: f64,
    /// …or at the latest this many seconds before it expires.
    #[arg(long, default_value_t = 7 * 86_400)]
    renew_before: i64,
    /// Longest sleep between checks, seconds.
    #[arg(long, default_value_t = 3600)]
    interval: u64,
    /// First and longest retry delay while the back end fails, seconds (doubled each time,
    /// jittered ±50 %).
    #[arg(long, default_value_t = 2.0)]
    backoff_min: f64,
    #[arg(long, default_value_t = 600.0)]
    backoff_max: f64,
    /// Exit (0) after the first check that finds every certificate current.
    #[arg(long)]
    until_current: bool,
    /// Give up (exit ≠ 0) after this many seconds without success.
    #[arg(long)]
    deadline: Option<u64>,
    /// PEM bundle of CAs to trust for https:// instead of the system's.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Seconds per HTTP exchange.
    #[arg(long, default_value_t = 40)]
    timeout: u64,
}

/// A certificate on the element with its key.
#[derive(Debug, Clone)]
struct Held {
    kid: u8,
    label: String,
    serial: String,
    not_before: i64,
    not_after: i64,
}

impl Held {
    /// When this certificate is due for renewal.
    fn due(&self, a: &RunArgs) -> i64 {
        let life = (self.not_after - self.not_before).max(0);
        let by_fraction = self.not_before + (life as f64 * a.renew_at.clamp(0.0, 1.0)) as i64;
        by_fraction.min(self.not_after - a.renew_before)
    }
}

fn now() -> i64 {
    keyward_device::now()
}

/// The element's keys that carry an X.509 certificate, with their labels.
fn inventory(hsm: &mut Hsm<&mut Box<dyn CardChannel + Send>>) -> anyhow::Result<Vec<Held>> {
    let mut held = Vec::new();
    for kid in hsm.key_ids()? {
        let cert = match hsm.read_file(u16::from_be_bytes([0xCE, kid])) {
            Ok(c) => c,
            Err(HsmError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        // A key's CE file may hold its attestation instead (keys not certified yet).
        let Ok(parsed) = Certificate::parse(&cert) else {
            continue;
        };
        let label = hsm
            .key_description(kid)?
            .map(|d| d.label)
            .unwrap_or_default();
        held.push(Held {
            kid,
            label,
            serial: hex::encode_upper(parsed.serial),
            not_before: parsed.not_before,
            not_after: parsed.not_after,
        });
    }
    Ok(held)
}

/// What a cycle did: certificates renewed or provisioned, and when the next one is due.
struct Cycle {
    renewed: Vec<String>,
    next_due: i64,
}

fn read_pin(path: &std::path::Path) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    Ok(Zeroizing::new(
        text.trim_end_matches(['\r', '\n']).to_string(),
    ))
}

/// Certificates the element may hold that a failed session announced but the back end never
/// confirmed: renewed at once, whatever their validity says.
type Unconfirmed = std::collections::BTreeSet<String>;

fn cycle(a: &RunArgs, pin: &str, unconfirmed: &mut Unconfirmed) -> anyhow::Result<Cycle> {
    let mut channel = open_transport(&a.card).with_context(|| format!("opening {}", a.card))?;
    let held = {
        let mut hsm = Hsm::new(&mut channel);
        hsm.select()?;
        hsm.verify_pin(pin.as_bytes())
            .context("local PIN verification")?;
        inventory(&mut hsm)?
    };
    let t = now();
    let mut out = Cycle {
        renewed: Vec::new(),
        next_due: i64::MAX,
    };
    for profile in &a.profiles {
        let current = held
            .iter()
            .filter(|h| &h.label == profile)
            .max_by_key(|h| h.not_after);
        // Two certificates for one profile: a renewal whose old key was not deleted, or a
        // session that stored a certificate without confirming it. A renewal sorts it out (the
        // back end deletes what it revoked).
        let doubled = held.iter().filter(|h| &h.label == profile).count() > 1;
        let due = match current {
            Some(h) if !doubled && !unconfirmed.contains(&h.serial) => h.due(a),
            _ => t,
        };
        if t < due {
            out.next_due = out.next_due.min(due);
            continue;
        }
        let mut query = vec![("profile", profile.as_str())];
        if let Some(h) = current {
            query.push(("renew", h.serial.as_str()));
        }
        let url = provision_url(&a.url, &query)?;
        let mut card = Element(channel);
        let result = provision_over(
            &mut card,
            pin.as_bytes(),
            &url,
            a.ca_file.as_ref(),
            a.timeout,
        );
        channel = card.0;
        if let Err(e) = &result
            && let Some(serial) = e
                .downcast_ref::<crate::device::NotConfirmed>()
                .and_then(|n| n.serial())
        {
            unconfirmed.insert(serial.to_string());
        }
        let (certificate, summary) = result.with_context(|| format!("provisioning {profile}"))?;
        tracing::info!(%profile, %certificate, round_trips = summary.round_trips, "certificate renewed");
        out.renewed.push(format!("{profile}: {certificate}"));
        // The new key and certificate are stored and the old certificate is revoked: only now
        // do the keys this profile had before go — the one renewed, and any a session stored
        // without confirming (the back end revoked its certificate). (The session's end also
        // ended the PIN's validity.)
        let before: Vec<&Held> = held.iter().filter(|h| &h.label == profile).collect();
        if !before.is_empty() {
            let mut hsm = Hsm::new(&mut channel);
            hsm.select()?;
            hsm.verify_pin(pin.as_bytes())?;
            for old in before {
                // The back end may have deleted it already (it removes keys of interrupted
                // provisionings in a later session's last batch).
                match hsm.delete_key(old.kid) {
                    Ok(()) => {
                        tracing::info!(kid = old.kid, serial = %old.serial, "superseded key deleted");
                    }
                    Err(HsmError::NotFound) => {}
                    Err(e) => {
                        return Err(e)
                            .with_context(|| format!("deleting the superseded key {}", old.kid));
                    }
                }
            }
        }
    }
    if !out.renewed.is_empty() {
        // When are the replacements due?
        let mut hsm = Hsm::new(&mut channel);
        hsm.select()?;
        hsm.verify_pin(pin.as_bytes())?;
        let held = inventory(&mut hsm)?;
        for profile in &a.profiles {
            if let Some(h) = held
                .iter()
                .filter(|h| &h.label == profile)
                .max_by_key(|h| h.not_after)
            {
                out.next_due = out.next_due.min(h.due(a));
            }
        }
    }
    Ok(out)
}

/// A delay of `base` seconds jittered by ±50 %.
fn jittered(base: f64) -> Duration {
    let r = keyward_crypto::random(2).map_or(0x8000, |b| u16::from_be_bytes([b[0], b[1]]));
    let factor = 0.5 + f64::from(r) / f64::from(u16::MAX);
    Duration::from_secs_f64((base * factor).max(0.05))
}

pub fn run(a: &RunArgs) -> anyhow::Result<()> {
    let pin = read_pin(&a.pin_file)?;
    let started = std::time::Instant::now();
    let mut backoff = a.backoff_min;
    let mut last_success = std::time::Instant::now();
    let mut unconfirmed = Unconfirmed::new();
    loop {
        match cycle(a, &pin, &mut unconfirmed) {
            Ok(c) => {
                backoff = a.backoff_min;
                last_success = std::time::Instant::now();
                for r in &c.renewed {
                    println!("renewed {r}");
                }
                if c.renewed.is_empty() {
                    println!("all certificates current ({})", a.profiles.join(", "));
                    if a.until_current {
                        return Ok(());
                    }
                }
                let until = c.next_due.saturating_sub(now());
                if until <= 0 {
                    // A replacement due at once: the profile's lifetime is shorter than
                    // --renew-before. Renewing in a loop would help nobody.
                    eprintln!(
                        "a new certificate is due at once: the profile's validity is shorter than --renew-before / --renew-at allow; next check in {} s",
                        a.interval
                    );
                }
                let secs = u64::try_from(until.max(1))
                    .unwrap_or(u64::MAX)
                    .min(a.interval);
                // After renewals, one more check soon confirms every certificate current.
                let secs = if c.renewed.is_empty() || until <= 0 {
                    secs
                } else {
                    1
                };
                std::thread::sleep(Duration::from_secs(secs));
            }
            Err(e) => {
                if let Some(limit) = a.deadline
                    && last_success.elapsed() > Duration::from_secs(limit)
                {
                    return Err(e).context(format!(
                        "no success for {limit} s (running {} s)",
                        started.elapsed().as_secs()
                    ));
                }
                let wait = jittered(backoff);
                eprintln!(
                    "renewal failed ({e:#}); retrying in {:.1} s",
                    wait.as_secs_f64()
                );
                std::thread::sleep(wait);
                backoff = (backoff * 2.0).min(a.backoff_max);
            }
        }
    }
}
