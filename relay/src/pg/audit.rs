//! The cluster's one audit chain in PostgreSQL: the same lines as `audit.jsonl` (each names the
//! SHA-256 of the one before, see [`crate::audit`]), one row each in `audit`, keyed by `seq`.
//!
//! Every append is one transaction under `pg_advisory_xact_lock(AUDIT_LOCK)`: the writer reads
//! the last row, chains its lines onto it and commits, so appends from any number of nodes (and
//! the operator commands) form one chain in commit order. A failed transaction stores nothing and
//! the entries stay queued. `audit verify` reads the rows in `seq` order and checks them with
//! [`crate::audit::verify`], exactly as it checks the file.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Pg, words};
use crate::audit::{
    self, AuditError, AuditEvent, AuditLog, AuditSink, Entry, GENESIS, Line, sha256_hex,
};
use crate::metrics::Metrics;

/// Advisory lock key the appends hold ("audit" in ASCII).
const AUDIT_LOCK: i64 = 0x61_7564_6974;

/// The chain in a database, as the audit writer's sink.
#[derive(Debug)]
pub struct PgAudit {
    pg: Pg,
}

impl PgAudit {
    /// The chain in `pg`'s database.
    pub fn new(pg: Pg) -> Self {
        PgAudit { pg }
    }

    fn err(&self, reason: String) -> AuditError {
        AuditError::Database {
            target: self.pg.target().to_string(),
            reason,
        }
    }

    /// Appends one event now (the operator commands).
    pub fn append(&mut self, event: &AuditEvent) -> Result<(), AuditError> {
        self.append_all(&mut VecDeque::from([Entry::now(event.clone())]))
    }

    /// The whole chain as `audit.jsonl` would hold it: one line per row, in `seq` order.
    pub fn text(&self) -> Result<String, AuditError> {
        let target = self.pg.target().to_string();
        let fail = move |reason| AuditError::Database {
            target: target.clone(),
            reason,
        };
        let rows = self.pg.with(fail.clone(), |c| {
            c.query("SELECT line FROM audit ORDER BY seq", &[])
                .map_err(|e| fail(words(&e)))
        })?;
        let mut text = String::new();
        for r in rows {
            text.push_str(r.get(0));
            text.push('\n');
        }
        Ok(text)
    }

    /// Starts the relay's audit writer on the database.
    pub fn spawn(pg: Pg, metrics: Arc<Metrics>) -> Result<AuditLog, AuditError> {
        let name = PathBuf::from(format!("database {} (table audit)", pg.target()));
        AuditLog::spawn_on(Box::new(PgAudit::new(pg)), name, Ok(()), metrics)
    }
}

impl AuditSink for PgAudit {
    fn append_all(&mut self, entries: &mut VecDeque<Entry>) -> Result<(), AuditError> {
        if entries.is_empty() {
            return Ok(());
        }
        let fail = |e: postgres::Error| words(&e);
        let stored = self
            .pg
            .with(
                |e| e,
                |c| {
                    let mut tx = c.transaction().map_err(fail)?;
                    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
                        .map_err(fail)?;
                    let last = tx
                        .query_opt("SELECT seq, line FROM audit ORDER BY seq DESC LIMIT 1", &[])
                        .map_err(fail)?;
                    let (mut seq, mut prev) = match last {
                        Some(r) => (
                            r.get::<_, i64>(0),
                            sha256_hex(r.get::<_, &str>(1).as_bytes()),
                        ),
                        None => (0, GENESIS.to_string()),
                    };
                    for entry in entries.iter() {
                        seq += 1;
                        let line = Line {
                            seq: u64::try_from(seq).map_err(|e| e.to_string())?,
                            ts_unix_ms: entry.ts_unix_ms,
                            prev: &prev,
                            event: &entry.event,
                        };
                        let text = serde_json::to_string(&line).map_err(|e| e.to_string())?;
                        let ts = i64::try_from(entry.ts_unix_ms).unwrap_or(i64::MAX);
                        tx.execute(
                            "INSERT INTO audit (seq, ts_unix_ms, line) VALUES ($1, $2, $3)",
                            &[&seq, &ts, &text],
                        )
                        .map_err(fail)?;
                        prev = sha256_hex(text.as_bytes());
                    }
                    tx.commit().map_err(fail)?;
                    Ok(entries.len())
                },
            )
            .map_err(|reason| self.err(reason))?;
        entries.drain(..stored);
        Ok(())
    }
}

/// Checks the chain in the database (see [`audit::verify`]).
pub fn verify(pg: &Pg) -> Result<Result<audit::Verified, audit::ChainError>, AuditError> {
    Ok(audit::verify(&PgAudit::new(pg.clone()).text()?))
}
