//! `keyward audit verify --db URL`: checks the hash-chained audit log; any edited, deleted or
//! inserted event — or events cut off the end — fails it.

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the audit log's hash chain.
    Verify {
        /// sqlite://FILE or postgres://…
        #[arg(long, env = "KEYWARD_DB")]
        db: String,
    },
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { db } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (n, head) = rt.block_on(async {
                let db = keyward_server::db::Db::open(&db, 1)
                    .await
                    .context("opening the database")?;
                db.verify_audit()
                    .await
                    .context("the audit log does not verify")
            })?;
            println!("audit log intact: {n} events, head {head}");
            Ok(())
        }
    }
}
