//! `keyward dkek …` and `keyward key backup|restore`: DKEK shares (files compatible with OpenSC's
//! `sc-hsm-tool`), their import into an element, and key backups under the DKEK — a backup file
//! is `30 { 04 blob, PRKD, certificate }` as `sc-hsm-tool --wrap-key` writes it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use keyward_apdu::tlv::Tlv;
use keyward_card::{Hsm, HsmError, dkek_share, open_transport, password_shares};
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum DkekCommand {
    /// Create a DKEK share file (32 random bytes, password-protected as sc-hsm-tool does).
    CreateShare(CreateShareArgs),
    /// Import a share file into an element (`IMPORT DKEK SHARE`) and show the DKEK's state.
    Import(ImportArgs),
    /// Show an element's DKEK state: shares, outstanding, key check value.
    Status(StatusArgs),
    /// Set a key domain up for N shares (`80 52 01`; 0 shares: a random DKEK of its own).
    CreateDomain(DomainArgs),
    /// Delete a key domain (refused while keys belong to it).
    DeleteDomain(DomainArgs),
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    card: CardArg,
    /// Key domain (default 0, the element's DKEK).
    #[arg(long, default_value_t = 0)]
    domain: u8,
}

#[derive(Args)]
pub struct DomainArgs {
    #[command(flatten)]
    card: CardArg,
    #[arg(long)]
    domain: u8,
    /// Shares the domain's DKEK is made of (create only).
    #[arg(long, default_value_t = 1)]
    shares: u8,
    /// The user PIN (first line).
    #[arg(long)]
    pin_file: PathBuf,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Back a key up: WRAP KEY under the DKEK, with its PKCS#15 description and certificate.
    Backup(BackupArgs),
    /// Restore a backup into an element that holds the same DKEK (UNWRAP KEY).
    Restore(RestoreArgs),
}

#[derive(Args)]
pub struct CreateShareArgs {
    #[arg(long)]
    out: PathBuf,
    /// The share's password: the first line of this file.
    #[arg(long, required_unless_present = "pwd_shares_total")]
    password_file: Option<PathBuf>,
    /// Instead: a random password split into this many shares (3..=9), printed as sc-hsm-tool
    /// prints them, for custodians to note.
    #[arg(
        long,
        requires = "pwd_shares_threshold",
        conflicts_with = "password_file"
    )]
    pwd_shares_total: Option<u64>,
    /// …of which this many recover it.
    #[arg(long, requires = "pwd_shares_total")]
    pwd_shares_threshold: Option<u64>,
}

#[derive(Args)]
pub struct CardArg {
    /// The element: pcsc:READER-PREFIX, t1:unix:PATH[?variant=…] or se:STATE-FILE.
    #[arg(long)]
    card: String,
}

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    card: CardArg,
    /// The share file.
    #[arg(long)]
    share: PathBuf,
    #[arg(long, required_unless_present = "prime")]
    password_file: Option<PathBuf>,
    /// A password split into shares: the prime (hex, `:` separators allowed)…
    #[arg(long, requires = "password_share", conflicts_with = "password_file")]
    prime: Option<String>,
    /// …and the shares, ID:VALUE each (hex value), at least the threshold.
    #[arg(long, requires = "prime")]
    password_share: Vec<String>,
    /// Key domain the share is for (default 0, the element's DKEK).
    #[arg(long, default_value_t = 0)]
    domain: u8,
    /// The user PIN (first line), needed for domains other than 0.
    #[arg(long)]
    pin_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    card: CardArg,
    #[arg(long)]
    key_id: u8,
    #[arg(long)]
    out: PathBuf,
    /// The user PIN (first line).
    #[arg(long)]
    pin_file: PathBuf,
}

#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    card: CardArg,
    #[arg(long)]
    key_id: u8,
    #[arg(long = "in")]
    input: PathBuf,
    #[arg(long)]
    pin_file: PathBuf,
    /// Replace a key, description or certificate already at that id.
    #[arg(long)]
    force: bool,
}

pub(crate) fn first_line(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    Ok(Zeroizing::new(
        text.lines().next().unwrap_or_default().to_string(),
    ))
}

fn print_status(s: &keyward_card::DkekStatus) {
    println!("DKEK shares          : {}", s.total);
    match s.kcv {
        Some(kcv) if s.outstanding == 0 => {
            println!("DKEK key check value : {}", hex::encode_upper(kcv))
        }
        _ => println!(
            "DKEK import pending, {} share(s) still missing",
            s.outstanding
        ),
    }
}

pub fn run_dkek(cmd: DkekCommand) -> anyhow::Result<()> {
    match cmd {
        DkekCommand::CreateShare(a) => {
            if a.out.exists() {
                bail!(
                    "{} exists; a share file is never overwritten",
                    a.out.display()
                );
            }
            let (password, split): (Zeroizing<Vec<u8>>, _) =
                match (&a.password_file, a.pwd_shares_total) {
                    (Some(f), _) => {
                        let p = first_line(f)?;
                        if p.len() < 6 {
                            bail!("a share password has at least 6 characters");
                        }
                        (Zeroizing::new(p.as_bytes().to_vec()), None)
                    }
                    (None, Some(total)) => {
                        let threshold = a.pwd_shares_threshold.unwrap_or(2);
                        let (pw, prime, shares) = password_shares::split(threshold, total)?;
                        (
                            Zeroizing::new(pw.to_vec()),
                            Some((prime, shares, threshold)),
                        )
                    }
                    (None, None) => bail!("give --password-file or --pwd-shares-total"),
                };
            let raw = keyward_crypto::random(32)?;
            let mut share = Zeroizing::new([0u8; 32]);
            share.copy_from_slice(&raw);
            let file = dkek_share::encrypt(&share, &password)?;
            keyward_se::storage::write_atomically(&a.out, &file, 0o600)?;
            if let Some((prime, shares, threshold)) = split {
                let total = shares.len();
                println!(
                    "The share file's password is split into {total} shares; any {threshold} recover it.\n"
                );
                for (i, s) in shares.iter().enumerate() {
                    println!("Share {} of {total}\n\n", i + 1);
                    println!("Prime       : {}", password_shares::colon_hex(prime));
                    println!("Share ID    : {}", s.id);
                    println!("Share value : {}\n\n", password_shares::colon_hex(s.value));
                }
            }
            println!(
                "DKEK share written to {} (its key check value alone: {})",
                a.out.display(),
                hex::encode_upper(&keyward_crypto::HashAlg::Sha256.digest(&share[..])[..8])
            );
            Ok(())
        }
        DkekCommand::Import(a) => {
            let file = std::fs::read(&a.share)
                .with_context(|| format!("reading {}", a.share.display()))?;
            let password: Zeroizing<Vec<u8>> = match (&a.password_file, &a.prime) {
                (Some(f), _) => Zeroizing::new(first_line(f)?.as_bytes().to_vec()),
                (None, Some(prime)) => {
                    let prime = password_shares::parse_hex(prime).context("--prime: hex")?;
                    let shares = a
                        .password_share
                        .iter()
                        .map(|s| {
                            let (id, value) =
                                s.split_once(':').context("--password-share ID:VALUE")?;
                            Ok(password_shares::Share {
                                id: id.trim().parse().context("share id")?,
                                value: password_shares::parse_hex(value)
                                    .context("share value: hex")?,
                            })
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let pw = password_shares::recover(prime, &shares)?;
                    // As sc-hsm-tool: the number's minimal big-endian bytes.
                    let skip = pw.iter().take_while(|b| **b == 0).count();
                    Zeroizing::new(pw[skip..].to_vec())
                }
                (None, None) => bail!("give --password-file or --prime with --password-share"),
            };
            let share = dkek_share::decrypt(&file, &password)?;
            let mut hsm = Hsm::new(open_transport(&a.card.card)?);
            hsm.select()?;
            if let Some(f) = &a.pin_file {
                hsm.verify_pin(first_line(f)?.as_bytes())
                    .context("PIN verification")?;
            }
            let status = hsm
                .dkek_share_in(a.domain, Some(&share))
                .map_err(|e| match e {
                    HsmError::Status { sw, .. } if sw.0 == 0x6D00 => {
                        anyhow::anyhow!("the element was not initialized for DKEK shares")
                    }
                    e => e.into(),
                })?;
            println!("DKEK share imported");
            print_status(&status);
            Ok(())
        }
        DkekCommand::Status(a) => {
            let mut hsm = Hsm::new(open_transport(&a.card.card)?);
            hsm.select()?;
            print_status(&hsm.dkek_share_in(a.domain, None)?);
            Ok(())
        }
        DkekCommand::CreateDomain(a) => {
            let mut hsm = domain_session(&a)?;
            let status = hsm.create_key_domain(a.domain, a.shares)?;
            println!("key domain {} set up", a.domain);
            print_status(&status);
            Ok(())
        }
        DkekCommand::DeleteDomain(a) => {
            let mut hsm = domain_session(&a)?;
            hsm.delete_key_domain(a.domain).map_err(|e| match e {
                HsmError::Status { sw, .. } if sw.0 == 0x6A89 => {
                    anyhow::anyhow!("keys still belong to key domain {}", a.domain)
                }
                e => e.into(),
            })?;
            println!("key domain {} deleted", a.domain);
            Ok(())
        }
    }
}

fn domain_session(
    a: &DomainArgs,
) -> anyhow::Result<Hsm<Box<dyn keyward_card::CardChannel + Send>>> {
    let mut hsm = Hsm::new(open_transport(&a.card.card)?);
    hsm.select()?;
    hsm.verify_pin(first_line(&a.pin_file)?.as_bytes())
        .context("PIN verification")?;
    Ok(hsm)
}

/// The first TLV of a file's content (as sc-hsm-tool keeps it), if any.
fn first_tlv(data: &[u8]) -> Option<Vec<u8>> {
    let (t, _) = Tlv::parse(data).ok()?;
    Some(t.raw.to_vec())
}

pub fn run_key(cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Backup(a) => {
            let pin = first_line(&a.pin_file)?;
            let mut hsm = Hsm::new(open_transport(&a.card.card)?);
            hsm.select()?;
            hsm.verify_pin(pin.as_bytes()).context("PIN verification")?;
            let blob = hsm
                .wrap_key(a.key_id)
                .with_context(|| format!("WRAP KEY {}", a.key_id))?;
            let mut content = keyward_ca::der::tlv(0x04, &blob);
            for prefix in [0xC4, 0xCE] {
                if let Ok(data) = hsm.read_file(u16::from_be_bytes([prefix, a.key_id]))
                    && let Some(t) = first_tlv(&data)
                {
                    content.extend_from_slice(&t);
                }
            }
            let file = keyward_ca::der::tlv(0x30, &content);
            keyward_se::storage::write_atomically(&a.out, &file, 0o600)?;
            println!(
                "key {} wrapped under the DKEK (KCV {}) into {} ({} bytes)",
                a.key_id,
                hex::encode_upper(&blob[..8]),
                a.out.display(),
                file.len()
            );
            Ok(())
        }
        KeyCommand::Restore(a) => {
            let file = std::fs::read(&a.input)
                .with_context(|| format!("reading {}", a.input.display()))?;
            let outer = Tlv::parse_exact(&file).map_err(|_| anyhow::anyhow!("not a key backup"))?;
            let parts: Vec<Tlv<'_>> = outer.children().filter_map(Result::ok).collect();
            let [blob, rest @ ..] = parts.as_slice() else {
                bail!("not a key backup: no key blob");
            };
            if outer.tag.0 != 0x30 || blob.tag.0 != 0x04 {
                bail!("not a key backup (30 {{ 04 blob … }})");
            }
            let pin = first_line(&a.pin_file)?;
            let mut hsm = Hsm::new(open_transport(&a.card.card)?);
            hsm.select()?;
            hsm.verify_pin(pin.as_bytes()).context("PIN verification")?;
            if a.force {
                let _ = hsm.delete_key(a.key_id);
            }
            hsm.unwrap_key(a.key_id, blob.value).map_err(|e| match e {
                HsmError::InvalidData => {
                    anyhow::anyhow!(
                        "the backup does not match this element's DKEK (or was altered)"
                    )
                }
                HsmError::Status { sw, .. } if sw.0 == 0x6A89 => anyhow::anyhow!(
                    "key {} exists on the element (--force replaces it)",
                    a.key_id
                ),
                e => e.into(),
            })?;
            for (prefix, part) in [0xC4u8, 0xCE].into_iter().zip(rest) {
                let fid = u16::from_be_bytes([prefix, a.key_id]);
                // A leftover file of a former key must not keep a longer tail.
                match hsm.delete_file(fid) {
                    Ok(()) | Err(HsmError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
                hsm.write_file(fid, part.raw)?;
            }
            println!(
                "key {} restored (KCV {}){}",
                a.key_id,
                hex::encode_upper(blob.value.get(..8).unwrap_or_default()),
                match rest.len() {
                    0 => "",
                    1 => " with its description",
                    _ => " with its description and certificate",
                }
            );
            Ok(())
        }
    }
}
