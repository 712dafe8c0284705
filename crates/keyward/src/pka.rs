//! `keyward pka …`: public-key authentication — a custodian's key exported as OpenSC's
//! `sc-hsm-tool --export-for-pub-key-auth` writes it (`30 { 67 request, 7F21 device certificate,
//! 7F21 Device Issuer CA }`), registered with an element after its chain, the element's status,
//! and the custodians' authentication that lets the user in.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use keyward_apdu::tlv::Tlv;
use keyward_card::{CardChannel, Hsm, open_transport};
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
    /// Authenticate custodians' keys (each custodian's element signs the device id and a fresh
    /// challenge) and report whether the user is in: the PIN (if given) and n of m keys.
    Authenticate(AuthenticateArgs),
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
pub struct AuthenticateArgs {
    /// The element set up for public-key authentication.
    #[arg(long)]
    card: String,
    /// Its user PIN (first line), verified before the custodians authenticate.
    #[arg(long)]
    pin_file: Option<PathBuf>,
    /// A custodian's element (repeat for each custodian).
    #[arg(long, required = true)]
    custodian: Vec<String>,
    /// The PIN file of each custodian's element, in the order of `--custodian`.
    #[arg(long)]
    custodian_pin_file: Vec<PathBuf>,
    /// The registered key's id on the custodians' elements.
    #[arg(long, default_value_t = 1)]
    custodian_key_id: u8,
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

/// The key's authenticated request as its custodian's element keeps it in `CE<kid>`.
fn custodian_request(
    hsm: &mut Hsm<Box<dyn CardChannel + Send>>,
    kid: u8,
) -> anyhow::Result<AuthenticatedRequest> {
    let data = hsm
        .read_file(u16::from_be_bytes([0xCE, kid]))
        .with_context(|| format!("key {kid}'s attestation (CE{kid:02X})"))?;
    let (req, _) = Tlv::parse(&data).map_err(|_| anyhow::anyhow!("CE{kid:02X} is not TLV"))?;
    if req.tag.0 != 0x67 {
        bail!("key {kid} has a certificate, not its attestation, in CE{kid:02X}");
    }
    Ok(AuthenticatedRequest::parse(req.raw)?)
}

fn authenticate(a: &AuthenticateArgs) -> anyhow::Result<()> {
    if a.custodian_pin_file.len() != a.custodian.len() {
        bail!(
            "{} custodians but {} custodian PIN files: give one --custodian-pin-file per --custodian",
            a.custodian.len(),
            a.custodian_pin_file.len()
        );
    }
    let mut hsm = Hsm::new(open_transport(&a.card)?);
    hsm.select()?;
    let chain = Certificate::parse_chain(&hsm.read_file(0x2F02)?)
        .context("the element's device certificate (EF.C_DevAut)")?;
    let device_id = chain
        .first()
        .map(|c| c.body.chr.clone())
        .context("the element has no device certificate")?;
    if let Some(f) = &a.pin_file {
        hsm.verify_pin(crate::dkek::first_line(f)?.as_bytes())
            .context("PIN verification")?;
    }
    for (transport, pin_file) in a.custodian.iter().zip(&a.custodian_pin_file) {
        let mut custodian = Hsm::new(open_transport(transport)?);
        custodian.select()?;
        custodian
            .verify_pin(crate::dkek::first_line(pin_file)?.as_bytes())
            .with_context(|| format!("custodian {transport}: PIN verification"))?;
        let request = custodian_request(&mut custodian, a.custodian_key_id)
            .with_context(|| format!("custodian {transport}"))?;
        let chr = request.request.body.chr;
        hsm.authenticate_public_key(&chr, &device_id, |m| {
            custodian.sign(a.custodian_key_id, 0x73, m)
        })
        .with_context(|| {
            format!(
                "custodian {transport}: key {} was not accepted",
                String::from_utf8_lossy(&chr)
            )
        })?;
        println!("authenticated {}", String::from_utf8_lossy(&chr));
    }
    let status = hsm.pka_status()?;
    print(&status);
    // The element's own verdict: VERIFY without data answers 9000 only for an authenticated user.
    match hsm.pin_status()? {
        keyward_card::PinStatus::Verified => {
            println!("user authenticated");
            Ok(())
        }
        _ if status.authenticated < status.required => bail!(
            "login refused: {} of the {} required public keys authenticated",
            status.authenticated,
            status.required
        ),
        other => bail!("login refused: the element reports the PIN as {other:?}"),
    }
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
            let status = hsm.register_public_key(&request).map_err(|e| match e {
                keyward_card::HsmError::Status { sw, .. } if sw.0 == 0x6A89 => anyhow::anyhow!(
                    "key {} is already registered",
                    String::from_utf8_lossy(&request.request.body.chr)
                ),
                keyward_card::HsmError::Status { sw, .. } if sw.0 == 0x6A84 => {
                    anyhow::anyhow!("every place for a public key is taken")
                }
                e => e.into(),
            })?;
            println!(
                "registered {}",
                String::from_utf8_lossy(&request.request.body.chr)
            );
            print(&status);
            Ok(())
        }
        PkaCommand::Authenticate(a) => authenticate(&a),
        PkaCommand::Status(a) => {
            let mut hsm = Hsm::new(open_transport(&a.card)?);
            hsm.select()?;
            print(&hsm.pka_status()?);
            Ok(())
        }
    }
}
