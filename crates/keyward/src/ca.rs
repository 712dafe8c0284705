//! `keyward ca …`: certification authorities. `init` creates the development CVC set (root,
//! role C0, and Device Issuer CA, role 80, brainpoolP256r1) that `se new` certifies elements with.

use std::path::PathBuf;

use clap::Subcommand;
use keyward_se::dev_pki::DevCa;

#[derive(Subcommand)]
pub enum CaCommand {
    /// Create (or show) the development CA set in a directory: srca.cvc, dica.cvc and the keys
    /// (dev-ca.json, mode 0600). Point KEYWARD_DEV_CA at the directory to use it.
    Init(InitArgs),
    /// Create the X.509 root and issuing CA for provisioning in a server data directory's
    /// `x509/`: keys generated in PKCS#11 tokens (--root-key/--issuing-key), or else in files
    /// sealed under the data directory's master key. Without it, the server creates a P-256
    /// pair on first start.
    InitX509(InitX509Args),
}

#[derive(clap::Args)]
pub struct InitX509Args {
    /// The directory (a server's `DATA-DIR/x509`).
    #[arg(long)]
    dir: PathBuf,
    /// The root's key: a pkcs11: URI (object= and/or id=; PIN as pin-value or pin-source).
    #[arg(long, requires = "issuing_key")]
    root_key: Option<String>,
    /// The issuing CA's key: a pkcs11: URI.
    #[arg(long, requires = "root_key")]
    issuing_key: Option<String>,
    /// PKCS#11 module for URIs without module-path.
    #[arg(long)]
    module: Option<PathBuf>,
    /// The keys' type: p256, p384 (ECDSA) or rsa2048, rsa3072, rsa4096.
    #[arg(long, default_value = "p256")]
    curve: String,
}

#[derive(clap::Args)]
pub struct InitArgs {
    #[arg(long)]
    dir: PathBuf,
    /// Production set: the CA keys in `srca.key` / `dica.key`, encrypted under the password in
    /// this file (PBKDF2-HMAC-SHA-256 + AES-256-GCM).
    #[arg(long, conflicts_with_all = ["root_key", "dica_key"])]
    password_file: Option<PathBuf>,
    /// Production set with keys generated in PKCS#11 tokens: the root's key (a pkcs11: URI
    /// with object= and/or id=, PIN as pin-value or pin-source).
    #[arg(long, requires = "dica_key")]
    root_key: Option<String>,
    /// The Device Issuer CA's key (a pkcs11: URI).
    #[arg(long, requires = "root_key")]
    dica_key: Option<String>,
    /// PKCS#11 module for URIs without module-path.
    #[arg(long)]
    module: Option<PathBuf>,
    /// Country code of the CAs' holder references.
    #[arg(long, default_value = "ZZ")]
    country: String,
}

pub fn run(cmd: CaCommand) -> anyhow::Result<()> {
    match cmd {
        CaCommand::InitX509(a) => init_x509(&a),
        CaCommand::Init(a) if a.password_file.is_some() || a.root_key.is_some() => {
            production_set(&a)
        }
        CaCommand::Init(InitArgs { dir, .. }) => {
            let existed = dir.join("dev-ca.json").exists();
            let ca = DevCa::open_or_create(&dir)?;
            let chr =
                |c: &keyward_cvc::Certificate| String::from_utf8_lossy(&c.body.chr).into_owned();
            let until = |c: &keyward_cvc::Certificate| {
                c.body
                    .expiration
                    .map_or_else(|| "-".to_string(), |d| d.to_string())
            };
            println!(
                "{} development CA set in {}",
                if existed { "existing" } else { "created" },
                dir.display()
            );
            println!(
                "  root:          {} (srca.cvc), valid until {}",
                chr(&ca.srca),
                until(&ca.srca)
            );
            println!(
                "  device issuer: {} (dica.cvc), valid until {}",
                chr(&ca.dica),
                until(&ca.dica)
            );
            println!(
                "  keys:          {} (0600)",
                dir.join("dev-ca.json").display()
            );
            Ok(())
        }
    }
}

/// `ca init` with encrypted key files or PKCS#11 tokens.
fn production_set(a: &InitArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    use keyward_ca::ca_set::{CaSet, KeyHome};
    let password = match &a.password_file {
        Some(p) => Some(zeroize::Zeroizing::new(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        )),
        None => None,
    };
    let home = match (&password, &a.root_key, &a.dica_key) {
        (Some(p), _, _) => KeyHome::Encrypted {
            password: p.as_bytes(),
        },
        (None, Some(root), Some(dica)) => KeyHome::Pkcs11 {
            root,
            dica,
            module: a.module.as_deref(),
        },
        _ => anyhow::bail!("give --password-file, or --root-key and --dica-key"),
    };
    let set = CaSet::init(&a.dir, &home, &a.country, keyward_se::dev_pki::today())?;
    let chr = |c: &keyward_cvc::Certificate| String::from_utf8_lossy(&c.body.chr).into_owned();
    println!("created CA set in {}", a.dir.display());
    println!("  root:          {} (srca.cvc)", chr(&set.root));
    println!(
        "  device issuer: {} (dica.cvc), key {}",
        chr(&set.dica),
        set.dica_key_location()
    );
    Ok(())
}

/// `ca init-x509`: X.509 CA keys generated in tokens or sealed in the data directory.
fn init_x509(a: &InitX509Args) -> anyhow::Result<()> {
    use anyhow::{Context, bail};
    use keyward_ca::pkcs11_key::Pkcs11Key;
    use keyward_ca::pkcs11_uri::{Pkcs11Uri, without_pin};
    use keyward_server::x509_ca::{KeyType, TOKEN_CA, TokenCa, create, create_sealed};
    let Some(kind) = KeyType::parse(&a.curve) else {
        bail!(
            "key type {:?}: p256, p384, rsa2048, rsa3072 or rsa4096",
            a.curve
        );
    };
    let description = a.dir.join(TOKEN_CA);
    if description.exists() || a.dir.join("issuing.key").exists() {
        bail!(
            "{} holds an X.509 CA already; it is never overwritten",
            a.dir.display()
        );
    }
    let (Some(root_key), Some(issuing_key)) = (&a.root_key, &a.issuing_key) else {
        let data_dir = a
            .dir
            .parent()
            .context("--dir must be a data directory's x509/")?;
        let master = keyward_server::setup::DataDir::master_key(data_dir)?;
        create_sealed(&a.dir, &master, kind)?;
        println!(
            "created X.509 root and issuing CA ({}) in {}; keys sealed under {}",
            a.curve,
            a.dir.display(),
            data_dir.join("master.key").display()
        );
        return Ok(());
    };
    let generate = |uri: &str| -> anyhow::Result<Box<dyn keyward_ca::x509::X509Key>> {
        let parsed = Pkcs11Uri::parse(uri).with_context(|| format!("key {uri}"))?;
        let what = || format!("generating {}", without_pin(uri));
        Ok(match kind {
            KeyType::Ec(curve) => Box::new(
                Pkcs11Key::generate(&parsed, a.module.as_deref(), curve).with_context(what)?,
            ),
            KeyType::Rsa(bits) => Box::new(
                keyward_ca::pkcs11_key::Pkcs11RsaKey::generate(
                    &parsed,
                    a.module.as_deref(),
                    u64::try_from(bits)?,
                )
                .with_context(what)?,
            ),
        })
    };
    create(&a.dir, generate(root_key)?, generate(issuing_key)?)?;
    let toml = toml::to_string(&TokenCa {
        key: without_pin(issuing_key),
    })?;
    std::fs::write(&description, toml)?;
    println!(
        "created X.509 root and issuing CA ({}) in {}; issuing key {}",
        a.curve,
        a.dir.display(),
        without_pin(issuing_key)
    );
    Ok(())
}
