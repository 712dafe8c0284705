//! `keyward audit verify --db URL [--data-dir DIR]`: checks the chained audit log; any edited,
//! deleted or inserted event — or events cut off the end — fails it. With the data directory's
//! master key (default `./keyward-data`) every event's HMAC is checked, so a log rewritten by
//! someone without that directory fails too.

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the audit log's hash chain.
    Verify {
        /// sqlite://FILE or postgres://…
        #[arg(long, env = "KEYWARD_DB")]
        db: String,
        /// The server's data directory, whose master key the chain is computed under.
        #[arg(long, default_value = "keyward-data")]
        data_dir: std::path::PathBuf,
    },
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { db, data_dir } => {
            let key = keyward_server::setup::DataDir::audit_key(&data_dir)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let check = rt.block_on(async {
                let mut db = keyward_server::db::Db::open(&db, 1)
                    .await
                    .context("opening the database")?;
                if let Some(key) = key {
                    db = db.with_audit_key(key);
                }
                db.verify_audit()
                    .await
                    .context("the audit log does not verify")
            })?;
            println!(
                "audit log intact: {} events, head {}",
                check.events, check.head
            );
            if check.content_unchecked > 0 {
                println!(
                    "  {} events are chained under a key this command does not have ({} has no master.key): their order and links were checked, their content was not (--data-dir)",
                    check.content_unchecked,
                    data_dir.display()
                );
            }
            Ok(())
        }
    }
}
