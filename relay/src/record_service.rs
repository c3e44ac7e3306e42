//! The relay's side of session records: one `ConsoleToRelay::Records` query per console
//! connection ([`serve`]), and the hooks the session and agent code call as a session goes
//! (each on a blocking thread, each failure logged: a record that misses a fact never ends a
//! session).

use std::sync::Arc;

use tether_net::framed;
use tether_proto::ScopeSet;
use tether_proto::msg::{RelayErrorKind, SessionReport, TechnicianIdentity};
use tether_proto::records::{RecordError, RecordErrorKind, RecordQuery, RecordReply, SessionFacts};
use tracing::warn;

use crate::audit::AuditEvent;
use crate::audit_writer::AuditWriter;
use crate::blocking::blocking;
use crate::conn::{finish, refuse};
use crate::directory::Directory;
use crate::end::EndReason;
use crate::ids::{RecordId, SessionId};
use crate::records::RecordStore;

/// What answering a record query needs.
#[derive(Debug, Clone)]
pub struct QueryCtx {
    /// Who holds the token.
    pub directory: Arc<dyn Directory>,
    /// The records.
    pub records: Arc<dyn RecordStore>,
    /// Writes are audited.
    pub audit: AuditWriter,
}

/// Logs a failed lifecycle update: a record that misses a fact must never end the session.
pub(crate) fn log_failure(what: &str, r: Result<(), RecordError>) {
    if let Err(e) = r {
        warn!(error = %e, "session record not updated: {what}");
    }
}

/// Creates the record of a session that just started (or, for an invited colleague, joins the
/// record of `parent`); `None` (logged) if the store failed, as a missing record must not stop
/// the session.
pub(crate) async fn session_started(
    records: &Arc<dyn RecordStore>,
    session: SessionId,
    technician: &TechnicianIdentity,
    reason: Option<&str>,
    requested: ScopeSet,
    parent: Option<SessionId>,
) -> Option<RecordId> {
    if let Some(parent) = parent {
        let name = technician.name.clone();
        let r = blocking(records, move |r| {
            r.add_technician(parent, &name)?;
            Ok(r.join(session, parent))
        })
        .await;
        return match r {
            Ok(id) => id,
            Err(e) => {
                log_failure("add a joined technician", Err(e));
                None
            }
        };
    }
    let (who, reason) = (technician.clone(), reason.map(str::to_string));
    let r = blocking(records, move |r| {
        r.start(
            session,
            &who,
            reason.as_deref(),
            requested,
            crate::clock::now_unix(),
        )
    })
    .await;
    match r {
        Ok(id) => Some(id),
        Err(e) => {
            warn!(error = %e, %session, "no session record for this session");
            None
        }
    }
}

/// Stores a finished session's duration and end reason in its record.
pub(crate) async fn session_ended(
    records: &Arc<dyn RecordStore>,
    session: SessionId,
    reason: EndReason,
    duration_secs: f64,
) {
    // Seconds for the record; a session lasts at most `Limits::max_session` (hours), so the
    // rounded value always fits.
    let secs = duration_secs.round().max(0.0) as u64;
    let r = blocking(records, move |r| {
        r.finish(session, reason.as_str(), secs, crate::clock::now_unix())
    })
    .await;
    log_failure("session end", r);
}

/// Copies what the session record keeps from an agent's report: the grant and the end reason.
pub(crate) async fn agent_report(
    records: &Arc<dyn RecordStore>,
    session: SessionId,
    report: &SessionReport,
) {
    match report {
        SessionReport::Consent { granted, .. } => {
            let granted = *granted;
            let r = blocking(records, move |r| r.consent(session, granted)).await;
            log_failure("consent", r);
        }
        SessionReport::Ended { reason } => {
            let reason = reason.to_string();
            let r = blocking(records, move |r| r.agent_ended(session, &reason)).await;
            log_failure("end reason", r);
        }
        _ => {}
    }
}

/// Answers one `ConsoleToRelay::Records` on a console connection.
pub(crate) async fn serve(
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    token: String,
    query: RecordQuery,
    ctx: &QueryCtx,
) {
    let who = match ctx.directory.verify(&token) {
        Ok(Ok(t)) => t,
        Err(_) => {
            let reply = RecordReply::Error(RecordError::new(
                RecordErrorKind::StoreFailed,
                crate::claim::DIRECTORY_DOWN,
            ));
            return refuse(&conn, send, &reply).await;
        }
        Ok(Err(_)) => {
            let reply = RecordReply::Error(RecordError::new(
                RecordErrorKind::BadToken,
                crate::claim::message(RelayErrorKind::BadToken),
            ));
            return refuse(&conn, send, &reply).await;
        }
    };
    let writes = query.writes();
    let audit_query = if writes { Some(describe(&query)) } else { None };
    let reply = blocking(&ctx.records, move |r| {
        r.handle(&who, query, crate::clock::now_unix())
            .map(|reply| (who, reply))
    })
    .await;
    let reply = match reply {
        Ok((who, reply)) => {
            if let (Some(what), RecordReply::Record(rec)) = (audit_query, &reply) {
                ctx.audit.record(AuditEvent::RecordChanged {
                    record: RecordId(rec.summary.id),
                    technician: who.name,
                    org: who.org,
                    change: what,
                });
            }
            reply
        }
        Err(e) => RecordReply::Error(e),
    };
    if let Err(e) = framed::write_msg(&mut send, &reply).await {
        warn!(error = %e, "record answer not delivered");
        return;
    }
    finish(&conn, send).await;
}

/// What a write did, for the audit log (never the note text itself).
fn describe(q: &RecordQuery) -> String {
    match q {
        RecordQuery::Note { note, .. } => {
            let mut f = Vec::new();
            for (name, set) in [
                ("ticket", note.ticket.is_some()),
                ("device", note.device.is_some()),
                ("problem", note.problem.is_some()),
                ("cause", note.cause.is_some()),
                ("fix", note.fix.is_some()),
            ] {
                if set {
                    f.push(name);
                }
            }
            format!("note {}", f.join(","))
        }
        RecordQuery::Close { .. } => "close".into(),
        RecordQuery::Facts {
            facts: SessionFacts::Probes(p),
            ..
        } => format!("probes {}", p.len()),
        RecordQuery::Facts {
            facts: SessionFacts::Inventory(_),
            ..
        } => "inventory".into(),
        // The audit names the direction, never the file: names stay in the record.
        RecordQuery::Facts {
            facts: SessionFacts::File(f),
            ..
        } => format!("file {}", f.direction.name()),
        _ => "read".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::records::RecordNote;

    /// The audit log says what changed, never the words written.
    #[test]
    fn writes_are_described_without_their_text() {
        let note = RecordQuery::Note {
            id: 1,
            note: RecordNote {
                problem: Some("printer on fire".into()),
                fix: Some("water".into()),
                ..RecordNote::default()
            },
        };
        assert_eq!(describe(&note), "note problem,fix");
        let close = RecordQuery::Close {
            id: 1,
            resolution: "secret words".into(),
        };
        assert_eq!(describe(&close), "close");
        assert_eq!(describe(&RecordQuery::List { limit: 5 }), "read");
    }
}
