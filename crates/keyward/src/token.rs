//! `keyward token create`: API tokens for the REST API. The token is printed once; the database
//! keeps only its SHA-256.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token with a role: operator (reads and revokes) or auditor (reads).
    Create {
        /// Database (default: the SQLite database in --data-dir).
        #[arg(long, env = "KEYWARD_DB")]
        db: Option<String>,
        #[arg(long, default_value = "keyward-data")]
        data_dir: PathBuf,
        /// A name for the token (shown in the audit log).
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: String,
    },
}

pub fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            db,
            data_dir,
            name,
            role,
        } => {
            if !keyward_server::api::ROLES.contains(&role.as_str()) {
                bail!("role must be operator or auditor");
            }
            let url =
                db.unwrap_or_else(|| keyward_server::setup::DataDir::default_db_url(&data_dir));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let token = rt.block_on(async {
                let mut db = keyward_server::db::Db::open(&url, 1)
                    .await
                    .context("opening the database")?;
                // The token's creation is an audit event, chained under the data directory's key.
                match keyward_server::setup::DataDir::audit_key(&data_dir)? {
                    Some(key) => db = db.with_audit_key(key),
                    None => anyhow::bail!(
                        "{} has no master.key: the audit event would not be chained under it (--data-dir names the server's data directory)",
                        data_dir.display()
                    ),
                }
                db.create_token(&name, &role)
                    .await
                    .context("creating the token")
            })?;
            println!("{token}");
            Ok(())
        }
    }
}
