//! Session records in PostgreSQL: the rules of [`crate::records`] (the same checks, limits and
//! policy; the live-session map stays in the process, since a session lives on one node), with the
//! rows in the shared database so a record written through one node is found through any.
//!
//! Search: `records.search` is a generated `tsvector` (the `simple` configuration: lower-cased
//! words, no stemming, like the SQLite store's `unicode61` FTS5) over reason, ticket, notes,
//! resolution and device, with a GIN index. The technician's words go in through
//! `plainto_tsquery`, so nothing they type is query syntax, and all of them must match.

use std::sync::Mutex;

use postgres::GenericClient;
use tether_proto::ScopeSet;
use tether_proto::msg::TechnicianIdentity;
use tether_proto::records::{
    FileDirection, FileMoved, InventoryRef, MAX_LABEL_CHARS, MAX_LIST, MAX_NOTE_CHARS,
    MAX_REASON_CHARS, Notes, ProbeRun, RecordError, RecordErrorKind, RecordNote, RecordQuery,
    RecordReply, RecordSummary, SessionFacts, SessionRecord, check_text, truncate_text,
};

use super::{Pg, words};
use crate::ids::{RecordId, SessionId};
use crate::record_policy::{self, Action, Target, unknown};
use crate::records::{
    CLOSED_BY_RELAY, Live, MAX_FILE_PATH_CHARS, MAX_PROBE_CHARS, MAX_PROBE_REASON_CHARS,
    MAX_SEARCH_WORDS, Queries, RECENTLY_ENDED, RecordStore, answer, id_param, int,
    no_consent_resolution, scopes_from_db, scopes_to_db, state_from, uint, verdict_from,
    verdict_name,
};

/// Session records in a PostgreSQL database.
#[derive(Debug)]
pub struct PgRecords {
    pg: Pg,
    live: Mutex<Live>,
}

fn db_err(e: impl std::fmt::Display) -> RecordError {
    tracing::error!(error = %e, "record store failed");
    RecordError::new(
        RecordErrorKind::StoreFailed,
        format!("the relay's record store failed: {e}"),
    )
}

fn q(e: postgres::Error) -> RecordError {
    db_err(words(&e))
}

/// The technician's words for `plainto_tsquery`: letters and digits only, at most
/// [`MAX_SEARCH_WORDS`]; `None` when there is none.
pub fn search_words(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_SEARCH_WORDS)
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

fn shared_with_others(live: &Live, session: u64, id: u64) -> bool {
    live.running.iter().any(|(s, r)| *s != session && *r == id)
}

/// See `records::close_if_no_consent`.
fn close_if_no_consent(
    c: &mut impl GenericClient,
    rid: i64,
    outcome: &str,
    now: u64,
) -> Result<(), RecordError> {
    c.execute(
        "UPDATE records SET state = 'closed', resolution = $2, closed_by = $3,
         closed_unix = COALESCE(closed_unix, $4)
         WHERE id = $1 AND scopes_granted = ''
           AND (state = 'open' OR closed_by = $3)",
        &[
            &rid,
            &no_consent_resolution(outcome),
            &CLOSED_BY_RELAY,
            &int(now)?,
        ],
    )
    .map_err(q)?;
    Ok(())
}

impl PgRecords {
    /// The records in `pg`'s database.
    pub fn new(pg: Pg) -> Self {
        PgRecords {
            pg,
            live: Mutex::default(),
        }
    }

    fn with<R: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<R, RecordError> + Send,
    ) -> Result<R, RecordError> {
        self.pg.with(db_err, f)
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        // Every update is a single map operation; a poisoned map is still consistent.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record_of(&self, session: u64) -> Option<u64> {
        self.live().running.get(&session).copied()
    }
}

impl Queries for PgRecords {
    fn words(text: &str) -> Option<String> {
        search_words(text)
    }

    /// One record of `org`, as `sessions show` prints it.
    fn show(&self, org: &str, id: u64) -> Result<SessionRecord, RecordError> {
        self.with(|c| load(c, org, id))
    }

    fn search(
        &self,
        org: &str,
        text: Option<&str>,
        device: Option<&str>,
        technician: Option<&str>,
        limit: u32,
    ) -> Result<RecordReply, RecordError> {
        let limit = i64::from(limit.clamp(1, MAX_LIST));
        self.with(|c| {
            let ids: Vec<i64> = c
                .query(
                    "SELECT r.id FROM records r WHERE r.org = $1
                     AND ($2::text IS NULL OR r.search @@ plainto_tsquery('simple', $2))
                     AND ($3::text IS NULL OR lower(r.device) = lower($3))
                     AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM record_technicians t
                          WHERE t.record_id = r.id AND lower(t.name) = lower($4)))
                     ORDER BY r.started_unix DESC, r.id DESC LIMIT $5",
                    &[&org, &text, &device, &technician, &limit],
                )
                .map_err(q)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(load(c, org, uint(id))?.summary);
            }
            Ok(RecordReply::List(out))
        })
    }

    fn note(&self, org: &str, id: u64, note: RecordNote) -> Result<SessionRecord, RecordError> {
        let label = |what, v: Option<String>| {
            v.map(|v| check_text(what, &v, MAX_LABEL_CHARS, false))
                .transpose()
        };
        let text = |what, v: Option<String>| {
            v.map(|v| check_text(what, &v, MAX_NOTE_CHARS, true))
                .transpose()
        };
        let fields = [
            ("ticket", label("the ticket", note.ticket)?),
            ("device", label("the device", note.device)?),
            ("problem", text("the problem", note.problem)?),
            ("cause", text("the cause", note.cause)?),
            ("fix", text("the fix", note.fix)?),
        ];
        self.with(|c| {
            let mut tx = c.transaction().map_err(q)?;
            let rid = writable(&mut tx, org, id, Action::Note, "")?;
            // An empty value clears the field; an absent one keeps it.
            for (col, v) in &fields {
                if let Some(v) = v {
                    let v = (!v.is_empty()).then_some(v.as_str());
                    tx.execute(
                        &format!("UPDATE records SET {col} = $2 WHERE id = $1"),
                        &[&rid, &v],
                    )
                    .map_err(q)?;
                }
            }
            tx.commit().map_err(q)?;
            load(c, org, id)
        })
    }

    fn close(
        &self,
        org: &str,
        name: &str,
        id: u64,
        resolution: &str,
        now: u64,
    ) -> Result<SessionRecord, RecordError> {
        let now = int(now)?;
        self.with(|c| {
            let mut tx = c.transaction().map_err(q)?;
            let rid = writable(&mut tx, org, id, Action::Close, name)?;
            tx.execute(
                "UPDATE records SET resolution = $2, state = 'closed', closed_by = $3, closed_unix = $4 WHERE id = $1",
                &[&rid, &resolution, &name, &now],
            )
            .map_err(q)?;
            tx.commit().map_err(q)?;
            load(c, org, id)
        })
    }

    fn facts(
        &self,
        org: &str,
        name: &str,
        id: u64,
        facts: SessionFacts,
        now: u64,
    ) -> Result<SessionRecord, RecordError> {
        let now = int(now)?;
        self.with(|c| {
            let mut tx = c.transaction().map_err(q)?;
            let rid = writable(&mut tx, org, id, Action::PostFacts, name)?;
            match facts {
                SessionFacts::Probes(probes) => {
                    for p in probes {
                        tx.execute(
                            "INSERT INTO record_probes (record_id, probe, verdict, reason, at_unix) VALUES ($1, $2, $3, $4, $5)",
                            &[
                                &rid,
                                &truncate_text(&p.probe, MAX_PROBE_CHARS, false),
                                &verdict_name(p.verdict),
                                &truncate_text(&p.reason, MAX_PROBE_REASON_CHARS, false),
                                &now,
                            ],
                        )
                        .map_err(q)?;
                    }
                }
                SessionFacts::Inventory(inv) => {
                    let host = truncate_text(&inv.hostname, MAX_LABEL_CHARS, false);
                    tx.execute(
                        "INSERT INTO record_inventories (record_id, digest, collected_unix, hostname, packages) VALUES ($1, $2, $3, $4, $5)",
                        &[&rid, &inv.digest.to_ascii_lowercase(), &int(inv.collected_unix)?, &host, &i64::from(inv.packages)],
                    )
                    .map_err(q)?;
                    if !host.is_empty() {
                        tx.execute(
                            "UPDATE records SET device = $2 WHERE id = $1 AND device IS NULL",
                            &[&rid, &host],
                        )
                        .map_err(q)?;
                    }
                }
                SessionFacts::File(f) => {
                    tx.execute(
                        "INSERT INTO record_files (record_id, direction, path, size, sha256, at_unix) VALUES ($1, $2, $3, $4, $5, $6)",
                        &[
                            &rid,
                            &f.direction.name(),
                            &truncate_text(&f.path, MAX_FILE_PATH_CHARS, false),
                            &int(f.size)?,
                            &f.sha256.to_ascii_lowercase(),
                            &now,
                        ],
                    )
                    .map_err(q)?;
                }
            }
            tx.commit().map_err(q)?;
            load(c, org, id)
        })
    }
}

/// The record's row id if `name` may do `action` to it (see [`record_policy::may_change`]); the
/// row stays locked until the transaction ends, so two nodes cannot both close it.
fn writable(
    c: &mut impl GenericClient,
    org: &str,
    id: u64,
    action: Action,
    name: &str,
) -> Result<i64, RecordError> {
    let rid = id_param(id)?;
    let state: Option<String> = c
        .query_opt(
            "SELECT state FROM records WHERE id = $1 AND org = $2 FOR UPDATE",
            &[&rid, &org],
        )
        .map_err(q)?
        .map(|r| r.get(0));
    let involved = action == Action::PostFacts
        && state.is_some()
        && c.query_opt(
            "SELECT 1 FROM record_technicians WHERE record_id = $1 AND name = $2",
            &[&rid, &name],
        )
        .map_err(q)?
        .is_some();
    let target = Target {
        id,
        state: state.as_deref().map(state_from),
        involved,
    };
    record_policy::may_change(action, target)?;
    Ok(rid)
}

fn load(c: &mut impl GenericClient, org: &str, id: u64) -> Result<SessionRecord, RecordError> {
    let rid = id_param(id)?;
    let r = c
        .query_opt(
            "SELECT started_unix, ticket, device, reason, scopes_requested, scopes_granted, ended_unix,
                    duration_secs, end_reason, problem, cause, fix, resolution, state, closed_by, closed_unix
             FROM records WHERE id = $1 AND org = $2",
            &[&rid, &org],
        )
        .map_err(q)?
        .ok_or_else(|| unknown(id))?;
    let technicians: Vec<String> = c
        .query(
            "SELECT name FROM record_technicians WHERE record_id = $1 ORDER BY joined_unix, n",
            &[&rid],
        )
        .map_err(q)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let probes: Vec<ProbeRun> = c
        .query(
            "SELECT probe, verdict, reason, at_unix FROM record_probes WHERE record_id = $1 ORDER BY id",
            &[&rid],
        )
        .map_err(q)?
        .iter()
        .map(|r| ProbeRun {
            probe: r.get(0),
            verdict: verdict_from(r.get(1)),
            reason: r.get(2),
            at_unix: uint(r.get(3)),
        })
        .collect();
    let inventories: Vec<InventoryRef> = c
        .query(
            "SELECT digest, collected_unix, hostname, packages FROM record_inventories WHERE record_id = $1 ORDER BY id",
            &[&rid],
        )
        .map_err(q)?
        .iter()
        .map(|r| InventoryRef {
            digest: r.get(0),
            collected_unix: uint(r.get(1)),
            hostname: r.get(2),
            packages: u32::try_from(r.get::<_, i64>(3)).unwrap_or(u32::MAX),
        })
        .collect();
    let files: Vec<FileMoved> = c
        .query(
            "SELECT direction, path, size, sha256, at_unix FROM record_files WHERE record_id = $1 ORDER BY id",
            &[&rid],
        )
        .map_err(q)?
        .iter()
        .map(|r| FileMoved {
            direction: if r.get::<_, &str>(0) == FileDirection::Pull.name() {
                FileDirection::Pull
            } else {
                FileDirection::Push
            },
            path: r.get(1),
            size: uint(r.get(2)),
            sha256: r.get(3),
            at_unix: uint(r.get(4)),
        })
        .collect();
    let state: String = r.get(13);
    Ok(SessionRecord {
        summary: RecordSummary {
            id,
            started_unix: uint(r.get(0)),
            ticket: r.get(1),
            device: r.get(2),
            reason: r.get(3),
            technicians,
            state: state_from(&state),
            resolution: r.get(12),
        },
        org: org.to_string(),
        scopes_requested: scopes_from_db(r.get(4)),
        scopes_granted: scopes_from_db(r.get(5)),
        probes,
        inventories,
        files,
        ended_unix: r.get::<_, Option<i64>>(6).map(uint),
        duration_secs: r.get::<_, Option<i64>>(7).map(uint),
        end_reason: r.get(8),
        notes: Notes {
            problem: r.get(9),
            cause: r.get(10),
            fix: r.get(11),
        },
        closed_by: r.get(14),
        closed_unix: r.get::<_, Option<i64>>(15).map(uint),
    })
}

impl RecordStore for PgRecords {
    fn start(
        &self,
        session: SessionId,
        technician: &TechnicianIdentity,
        reason: Option<&str>,
        requested: ScopeSet,
        now: u64,
    ) -> Result<RecordId, RecordError> {
        let reason = reason.map(|r| truncate_text(r, MAX_REASON_CHARS, false));
        let now = int(now)?;
        let id = self.with(|c| {
            let mut tx = c.transaction().map_err(q)?;
            let id: i64 = tx
                .query_one(
                    "INSERT INTO records (org, started_unix, reason, scopes_requested) VALUES ($1, $2, $3, $4) RETURNING id",
                    &[&technician.org, &now, &reason, &scopes_to_db(requested)],
                )
                .map_err(q)?
                .get(0);
            tx.execute(
                "INSERT INTO record_technicians (record_id, name, joined_unix) VALUES ($1, $2, $3)",
                &[&id, &technician.name, &now],
            )
            .map_err(q)?;
            tx.commit().map_err(q)?;
            Ok(uint(id))
        })?;
        self.live().running.insert(session.get(), id);
        Ok(RecordId(id))
    }

    fn join(&self, session: SessionId, parent: SessionId) -> Option<RecordId> {
        let mut live = self.live();
        let id = live.running.get(&parent.get()).copied()?;
        live.running.insert(session.get(), id);
        Some(RecordId(id))
    }

    fn add_technician(&self, session: SessionId, name: &str) -> Result<(), RecordError> {
        let Some(id) = self.record_of(session.get()) else {
            return Ok(());
        };
        let name = truncate_text(name, MAX_LABEL_CHARS, false);
        let (rid, now) = (id_param(id)?, int(crate::clock::now_unix())?);
        self.with(|c| {
            c.execute(
                "INSERT INTO record_technicians (record_id, name, joined_unix) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&rid, &name, &now],
            )
            .map_err(q)?;
            Ok(())
        })
    }

    fn consent(&self, session: SessionId, granted: ScopeSet) -> Result<(), RecordError> {
        let Some(id) = self.record_of(session.get()) else {
            return Ok(());
        };
        let rid = id_param(id)?;
        self.with(|c| {
            let mut tx = c.transaction().map_err(q)?;
            let old: String = tx
                .query_one(
                    "SELECT scopes_granted FROM records WHERE id = $1 FOR UPDATE",
                    &[&rid],
                )
                .map_err(q)?
                .get(0);
            let mut all = scopes_from_db(&old);
            for s in granted.iter() {
                all.insert(s);
            }
            tx.execute(
                "UPDATE records SET scopes_granted = $2 WHERE id = $1",
                &[&rid, &scopes_to_db(all)],
            )
            .map_err(q)?;
            tx.commit().map_err(q)
        })
    }

    fn agent_ended(&self, session: SessionId, reason: &str) -> Result<(), RecordError> {
        let session = session.get();
        let id = {
            let live = self.live();
            let ended = live.ended.iter().find(|(s, _)| *s == session).map(|e| e.1);
            let id = live.running.get(&session).copied().or(ended);
            // One technician leaving a shared session does not say why the session ended.
            match id {
                Some(id) if shared_with_others(&live, session, id) => None,
                id => id,
            }
        };
        let Some(id) = id else {
            return Ok(());
        };
        let reason = truncate_text(reason, MAX_LABEL_CHARS, false);
        let rid = id_param(id)?;
        self.with(|c| {
            let mut tx = c.transaction().map_err(q)?;
            let ended: Option<i64> = tx
                .query_one(
                    "UPDATE records SET end_reason = $2 WHERE id = $1 RETURNING ended_unix",
                    &[&rid, &reason],
                )
                .map_err(q)?
                .get(0);
            // Only an attempt that is already over and was closed for want of consent.
            if ended.is_some() {
                close_if_no_consent(&mut tx, rid, &reason, crate::clock::now_unix())?;
            }
            tx.commit().map_err(q)
        })
    }

    fn finish(
        &self,
        session: SessionId,
        reason: &str,
        duration_secs: u64,
        now: u64,
    ) -> Result<(), RecordError> {
        let session = session.get();
        let id = {
            let mut live = self.live();
            let Some(id) = live.running.remove(&session) else {
                return Ok(());
            };
            if live.ended.len() >= RECENTLY_ENDED {
                live.ended.pop_front();
            }
            live.ended.push_back((session, id));
            // The record of a shared session ends with the last technician in it.
            if shared_with_others(&live, session, id) {
                return Ok(());
            }
            id
        };
        let (rid, now_i, duration) = (id_param(id)?, int(now)?, int(duration_secs)?);
        self.with(|c| {
            let mut tx = c.transaction().map_err(q)?;
            // A shared session lasted from the record's start (the first technician's claim).
            let outcome: String = tx
                .query_one(
                    "UPDATE records SET ended_unix = $2, duration_secs = GREATEST($3, $2 - started_unix),
                     end_reason = COALESCE(end_reason, $4) WHERE id = $1 RETURNING end_reason",
                    &[&rid, &now_i, &duration, &reason],
                )
                .map_err(q)?
                .get(0);
            close_if_no_consent(&mut tx, rid, &outcome, now)?;
            tx.commit().map_err(q)
        })
    }

    fn handle(
        &self,
        who: &TechnicianIdentity,
        query: RecordQuery,
        now: u64,
    ) -> Result<RecordReply, RecordError> {
        answer(self, who, query, now)
    }
}
