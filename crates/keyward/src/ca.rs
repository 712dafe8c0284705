//! `keyward ca …`: certification authorities. `init` creates the development CVC set (root,
//! role C0, and Device Issuer CA, role 80, brainpoolP256r1) that `se new` certifies elements with.

use std::path::PathBuf;

use clap::Subcommand;
use keyward_se::dev_pki::DevCa;

#[derive(Subcommand)]
pub enum CaCommand {
    /// Create (or show) the development CA set in a directory: srca.cvc, dica.cvc and the keys
    /// (dev-ca.json, mode 0600). Point KEYWARD_DEV_CA at the directory to use it.
    Init {
        #[arg(long)]
        dir: PathBuf,
    },
}

pub fn run(cmd: CaCommand) -> anyhow::Result<()> {
    match cmd {
        CaCommand::Init { dir } => {
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
