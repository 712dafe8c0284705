//! `keyward pka …`: public-key authentication's registration side — a custodian's key exported
//! as OpenSC's `sc-hsm-tool --export-for-pub-key-auth` writes it (`30 { 67 request, 7F21 device
//! certificate, 7F21 Device Issuer CA }`), registered with an element after its chain, and the
//! element's status.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use keyward_apdu::tlv::Tlv;
use keyward_card::{Hsm, open_transport};
use keyward_cvc::{AuthenticatedRequest, Certificate};

#[derive(Subcommand)]
pub enum PkaCommand {
    /// Export a custodian's key (its attestation and the element's device chain) for
    /// registration.
    Export(ExportArgs),
    /// Register an exported key with an element set up for public-key authentication.
    Register(RegisterArgs),
    /// Show an element's public-key authentication state.
    Status(StatusArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    /// The custodian's element.
    #[arg(long)]
    card: String,
    #[arg(long)]
    key_id: u8,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct RegisterArgs {
    #[arg(long)]
    card: String,
    #[arg(long = "in")]
    input: PathBuf,
}

#[derive(Args)]
pub struct StatusArgs {
    #[arg(long)]
    card: String,
}

/// The request and the device chain (device, issuer) from an export file, in either of the
/// two formats OpenSC reads.
fn parse_export(data: &[u8]) -> anyhow::Result<(AuthenticatedRequest, Vec<Certificate>)> {
    let outer = Tlv::parse_exact(data).map_err(|_| anyhow::anyhow!("not an export file"))?;
    let parts: Vec<Tlv<'_>> = outer.children().filter_map(Result::ok).collect();
    let cert = |t: &Tlv<'_>| Certificate::parse(t.raw).context("certificate in the export");
    let (request, chain) = match parts.as_slice() {
        // sc-hsm-tool -e: 67 request, 7F21 device, 7F21 issuer.
        [req, device, issuer] if req.tag.0 == 0x67 => (req.raw, vec![cert(device)?, cert(issuer)?]),
        // The newer form: 06 OID, 61 { issuer }, 62 { device }, 63 { request }.
        [oid, issuer, device, req] if oid.tag.0 == 0x06 => {
            let inner = |t: &Tlv<'_>| -> anyhow::Result<Vec<u8>> {
                Ok(Tlv::parse_exact(t.value)
                    .map_err(|_| anyhow::anyhow!("export file"))?
                    .raw
                    .to_vec())
            };
            let req_raw = inner(req)?;
            let chain = vec![
                Certificate::parse(&inner(device)?)?,
                Certificate::parse(&inner(issuer)?)?,
            ];
            return Ok((AuthenticatedRequest::parse(&req_raw)?, chain));
        }
        _ => bail!("not an export file for public-key authentication"),
    };
    Ok((AuthenticatedRequest::parse(request)?, chain))
}

fn print(s: &keyward_card::PkaStatus) {
    println!("Number of public keys:     {}", s.total);
    println!("Missing public keys:       {}", s.missing);
    println!("Required pubkeys for auth: {}", s.required);
    println!("Authenticated public keys: {}", s.authenticated);
}

pub fn run(cmd: PkaCommand) -> anyhow::Result<()> {
    match cmd {
        PkaCommand::Export(a) => {
            if a.out.exists() {
                bail!("{} exists", a.out.display());
            }
            let mut hsm = Hsm::new(open_transport(&a.card)?);
            hsm.select()?;
            let request = hsm
                .read_file(u16::from_be_bytes([0xCE, a.key_id]))
                .with_context(|| format!("key {}'s attestation (CE{:02X})", a.key_id, a.key_id))?;
            let (req, _) = Tlv::parse(&request).map_err(|_| anyhow::anyhow!("CE file"))?;
            if req.tag.0 != 0x67 {
                bail!(
                    "key {} has a certificate, not its attestation, in CE{:02X}",
                    a.key_id,
                    a.key_id
                );
            }
            let chain = hsm.read_file(0x2F02)?;
            let content = [req.raw, &chain].concat();
            std::fs::write(&a.out, keyward_ca::der::tlv(0x30, &content))?;
            println!(
                "exported key {} for public-key authentication to {}",
                a.key_id,
                a.out.display()
            );
            Ok(())
        }
        PkaCommand::Register(a) => {
            let data = std::fs::read(&a.input)
                .with_context(|| format!("reading {}", a.input.display()))?;
            let (request, chain) = parse_export(&data)?;
            let mut hsm = Hsm::new(open_transport(&a.card)?);
            hsm.select()?;
            // The issuer first, then the device whose key signed the request.
            for cert in chain.iter().rev() {
                hsm.verify_certificate(cert).with_context(|| {
                    format!(
                        "the element does not accept certificate {}",
                        String::from_utf8_lossy(&cert.body.chr)
                    )
                })?;
            }
            let status = hsm.register_public_key(&request)?;
            println!(
                "registered {}",
                String::from_utf8_lossy(&request.request.body.chr)
            );
            print(&status);
            Ok(())
        }
        PkaCommand::Status(a) => {
            let mut hsm = Hsm::new(open_transport(&a.card)?);
            hsm.select()?;
            print(&hsm.pka_status()?);
            Ok(())
        }
    }
}
