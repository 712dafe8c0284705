//! RAMoverHTTP sessions for operators: the running ones from this replica's engine, the ended
//! ones from the database every replica writes to (so any replica shows all of them, and they
//! outlive restarts).

use std::sync::Arc;

use keyward_ram::server::{Engine, SessionRecord, SessionSink};

use crate::db::{Db, DbError};

/// Writes each ended session to the database before the device hears how it ended.
pub struct DbSessions(pub Arc<Db>);

impl SessionSink for DbSessions {
    fn ended(
        &self,
        record: SessionRecord,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let db = self.0.clone();
        Box::pin(async move {
            if let Err(e) = db.record_session(&record).await {
                tracing::error!(error = %e, reference = %record.reference, "recording a session");
            }
        })
    }
}

/// This replica's running sessions, then the `limit` most recently ended ones of all replicas
/// (this replica's own from memory too, so one that just ended shows before its row is
/// written), newest first.
pub async fn list(engine: &Engine, db: &Db, limit: i64) -> Result<Vec<SessionRecord>, DbError> {
    let mine = engine.sessions();
    let (mut out, mut ended): (Vec<_>, Vec<_>) =
        mine.into_iter().partition(|s| s.outcome.is_none());
    for s in db.recent_sessions(limit).await? {
        if !ended.iter().any(|e| e.reference == s.reference) {
            ended.push(s);
        }
    }
    ended.sort_by_key(|s| std::cmp::Reverse(s.ended_at));
    ended.truncate(usize::try_from(limit).unwrap_or(0));
    out.extend(ended);
    Ok(out)
}
