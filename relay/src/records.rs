//! Session records: one per claimed session, kept in the relay's SQLite database next to the fleet
//! store (`fleet.sqlite3`, its own tables, its own connection; WAL lets both write).
//!
//! See `tether_proto::records` for what a record holds and who writes each part. Here:
//! - the session lifecycle hooks ([`Records::start`], [`Records::consent`], [`Records::agent_ended`],
//!   [`Records::finish`], [`Records::add_technician`]) called by the claim/splice code and the agent's
//!   control stream, keyed by the relay's in-memory session id;
//! - [`Records::handle`]: a technician's [`RecordQuery`], with the checks of
//!   [`crate::record_policy`] (who may read or change what);
//! - [`RecordStore`]: the trait the relay holds them by.
//!
//! The `record_service` module answers `ConsoleToRelay::Records` and drives the hooks.
//!
//! Search uses SQLite FTS5 (`records_fts`, one row per record, rowid = record id) over reason, ticket,
//! notes, resolution and device. The technician's words are turned into quoted FTS terms, so
//! punctuation in what they type never becomes FTS query syntax.
//!
//! The device of a record: the relay does not learn the sharing agent's host name (nothing leaves the
//! agent before consent), so the device is the host name of the first inventory the console took in
//! the session, or what the technician sets with `sessions note ID --device D`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use tether_proto::ScopeSet;
use tether_proto::diag::Verdict;
use tether_proto::msg::TechnicianIdentity;
use tether_proto::records::{
    FileDirection, FileMoved, InventoryRef, MAX_LABEL_CHARS, MAX_LIST, MAX_NOTE_CHARS,
    MAX_PROBES_PER_POST, MAX_REASON_CHARS, MAX_SEARCH_CHARS, Notes, ProbeRun, RecordError,
    RecordErrorKind, RecordNote, RecordQuery, RecordReply, RecordState, RecordSummary,
    SessionFacts, SessionRecord, check_text, truncate_text,
};

use crate::ids::{RecordId, SessionId};
use crate::record_policy::{self, Action, Target, unknown};

/// The database file, shared with the fleet store.
pub const FILE: &str = crate::store::FILE;

/// Longest probe description kept (a probe with a long URL is cut).
pub(crate) const MAX_PROBE_CHARS: usize = 300;
/// Longest probe reason kept.
pub(crate) const MAX_PROBE_REASON_CHARS: usize = 500;
/// Longest file path kept in a record.
pub(crate) const MAX_FILE_PATH_CHARS: usize = 1024;
/// Most words of a search used.
pub(crate) const MAX_SEARCH_WORDS: usize = 16;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT, org TEXT NOT NULL, started_unix INTEGER NOT NULL,
    ticket TEXT, device TEXT, reason TEXT, scopes_requested TEXT NOT NULL,
    scopes_granted TEXT NOT NULL DEFAULT '', ended_unix INTEGER, duration_secs INTEGER,
    end_reason TEXT, problem TEXT, cause TEXT, fix TEXT, resolution TEXT,
    state TEXT NOT NULL DEFAULT 'open', closed_by TEXT, closed_unix INTEGER);
CREATE INDEX IF NOT EXISTS records_org ON records (org, id);
CREATE TABLE IF NOT EXISTS record_technicians (
    record_id INTEGER NOT NULL, name TEXT NOT NULL, joined_unix INTEGER NOT NULL,
    PRIMARY KEY (record_id, name));
CREATE TABLE IF NOT EXISTS record_probes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, record_id INTEGER NOT NULL, probe TEXT NOT NULL,
    verdict TEXT NOT NULL, reason TEXT NOT NULL, at_unix INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS record_probes_record ON record_probes (record_id, id);
CREATE TABLE IF NOT EXISTS record_inventories (
    id INTEGER PRIMARY KEY AUTOINCREMENT, record_id INTEGER NOT NULL, digest TEXT NOT NULL,
    collected_unix INTEGER NOT NULL, hostname TEXT NOT NULL, packages INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS record_inventories_record ON record_inventories (record_id, id);
CREATE TABLE IF NOT EXISTS record_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT, record_id INTEGER NOT NULL, direction TEXT NOT NULL,
    path TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, at_unix INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS record_files_record ON record_files (record_id, id);
CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5(
    reason, ticket, problem, cause, fix, resolution, device, tokenize = 'unicode61');
";

/// Session records in SQLite. Every method is short and synchronous; async callers use
/// [`crate::blocking::blocking`].
#[derive(Debug)]
pub struct Records {
    conn: Mutex<Connection>,
    /// Live sessions: the relay's in-memory session id → record id, plus the last
    /// [`RECENTLY_ENDED`] ended ones, whose agent may still be reporting why it ended.
    live: Mutex<Live>,
}

/// How many ended sessions still accept the agent's end reason.
pub(crate) const RECENTLY_ENDED: usize = 256;

/// `closed_by` of a record the relay closed itself: the attempt ended without any consent (wrong
/// code, refused, no answer), so there is nothing for a technician to resolve.
pub const CLOSED_BY_RELAY: &str = "tether-relay";

/// The resolution of such a record, with the attempt's outcome.
pub(crate) fn no_consent_resolution(outcome: &str) -> String {
    format!("No access was given: {outcome}.")
}

/// Closes record `rid` with the outcome if nothing was ever granted in it and it is still open,
/// or refreshes the outcome of one the relay closed that way (the agent's words come later).
fn close_if_no_consent(
    c: &Connection,
    rid: i64,
    outcome: &str,
    now: u64,
) -> Result<(), RecordError> {
    let changed = c
        .execute(
            "UPDATE records SET state = 'closed', resolution = ?2, closed_by = ?3,
             closed_unix = COALESCE(closed_unix, ?4)
             WHERE id = ?1 AND scopes_granted = ''
               AND (state = 'open' OR closed_by = ?3)",
            params![
                rid,
                no_consent_resolution(outcome),
                CLOSED_BY_RELAY,
                int(now)?
            ],
        )
        .map_err(db_err)?;
    if changed > 0 {
        index(c, rid)?;
    }
    Ok(())
}

/// Which live session holds which record (per relay process: a session lives on one node).
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) running: HashMap<u64, u64>,
    pub(crate) ended: std::collections::VecDeque<(u64, u64)>,
}

fn db_err(e: impl std::fmt::Display) -> RecordError {
    tracing::error!(error = %e, "record store failed");
    RecordError::new(
        RecordErrorKind::StoreFailed,
        format!("the relay's record store failed: {e}"),
    )
}

pub(crate) fn scopes_to_db(s: ScopeSet) -> String {
    s.iter().map(|s| s.name()).collect::<Vec<_>>().join(",")
}

pub(crate) fn scopes_from_db(s: &str) -> ScopeSet {
    // Written by `scopes_to_db`; an unknown name (a newer relay's scope) is left out.
    s.split(',').filter_map(|p| p.trim().parse().ok()).collect()
}

pub(crate) fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::Warning => "warning",
        Verdict::Problem => "problem",
        Verdict::NotAvailable => "not-available",
        Verdict::TimedOut => "timed-out",
        Verdict::Failed => "failed",
    }
}

pub(crate) fn verdict_from(s: &str) -> Verdict {
    match s {
        "ok" => Verdict::Ok,
        "warning" => Verdict::Warning,
        "problem" => Verdict::Problem,
        "not-available" => Verdict::NotAvailable,
        "timed-out" => Verdict::TimedOut,
        _ => Verdict::Failed,
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> RecordError {
    RecordError::new(RecordErrorKind::Invalid, msg)
}

/// The technician's words as an FTS5 query: each word quoted (so `-`, `:`, `*` or quotes are never
/// syntax), all required. `None` when there is no word.
pub fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_SEARCH_WORDS)
        .map(|w| format!("\"{w}\""))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

pub(crate) fn id_param(id: u64) -> Result<i64, RecordError> {
    i64::try_from(id).map_err(|_| unknown(id))
}

/// A number from outside (a clock, a console's post) as an SQLite integer: one beyond `i64::MAX`
/// is refused, never wrapped negative.
pub(crate) fn int(v: u64) -> Result<i64, RecordError> {
    i64::try_from(v).map_err(|_| invalid(format!("{v} is too large to store")))
}

/// A stored integer back; they are written by [`int`], so a negative one (never written) reads as 0.
pub(crate) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Records {
    /// Opens (creating) the record tables in `data_dir`'s database.
    pub fn open(data_dir: &Path) -> Result<Self, RecordError> {
        Self::open_file(&data_dir.join(FILE))
    }

    /// Opens (creating) the record tables in the database at `path`.
    pub fn open_file(path: &Path) -> Result<Self, RecordError> {
        let conn = Connection::open(path).map_err(db_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        Ok(Records {
            conn: Mutex::new(conn),
            live: Mutex::new(Live::default()),
        })
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, RecordError>,
    ) -> Result<R, RecordError> {
        // A poisoned lock means a panic mid-call; SQLite rolled the transaction back, so the
        // connection is still consistent.
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        // Every update is a single map operation; a poisoned map is still consistent.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record of a live session (the relay's in-memory session id).
    pub fn record_of(&self, session: u64) -> Option<u64> {
        self.live().running.get(&session).copied()
    }

    /// Creates the record of a session that just started and returns its id.
    pub fn start(
        &self,
        session: u64,
        technician: &TechnicianIdentity,
        reason: Option<&str>,
        requested: ScopeSet,
        now: u64,
    ) -> Result<u64, RecordError> {
        let reason = reason.map(|r| truncate_text(r, MAX_REASON_CHARS, false));
        let id = self.with(|c| {
            let tx = c.transaction().map_err(db_err)?;
            tx.execute(
                "INSERT INTO records (org, started_unix, reason, scopes_requested) VALUES (?1, ?2, ?3, ?4)",
                params![technician.org, int(now)?, reason, scopes_to_db(requested)],
            )
            .map_err(db_err)?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO record_technicians (record_id, name, joined_unix) VALUES (?1, ?2, ?3)",
                params![id, technician.name, int(now)?],
            )
            .map_err(db_err)?;
            index(&tx, id)?;
            tx.commit().map_err(db_err)?;
            Ok(uint(id))
        })?;
        self.live().running.insert(session, id);
        Ok(id)
    }

    /// An invited colleague's `session` joined `parent`: it is part of the parent's record (its
    /// technician, grants and end go there), not a record of its own. Returns that record's id;
    /// `None` if the parent has no record.
    pub fn join(&self, session: u64, parent: u64) -> Option<u64> {
        let mut live = self.live();
        let id = live.running.get(&parent).copied()?;
        live.running.insert(session, id);
        Some(id)
    }

    /// Whether a live session other than `session` shares its record (a colleague, or the one who
    /// invited them): the record ends with the last of them.
    fn shared_with_others(live: &Live, session: u64, id: u64) -> bool {
        live.running.iter().any(|(s, r)| *s != session && *r == id)
    }

    /// Adds a technician who joined `session` (the relay's session id) to its record. Adding one
    /// twice changes nothing. A session without a record (the store failed at its start) is ignored.
    pub fn add_technician(&self, session: u64, name: &str) -> Result<(), RecordError> {
        let Some(id) = self.record_of(session) else {
            return Ok(());
        };
        let name = truncate_text(name, MAX_LABEL_CHARS, false);
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO record_technicians (record_id, name, joined_unix) VALUES (?1, ?2, ?3)",
                params![id_param(id)?, name, int(crate::clock::now_unix())?],
            )
            .map_err(db_err)?;
            Ok(())
        })
    }

    /// The user granted `granted` in `session`. The record keeps every scope ever granted in it.
    pub fn consent(&self, session: u64, granted: ScopeSet) -> Result<(), RecordError> {
        let Some(id) = self.record_of(session) else {
            return Ok(());
        };
        self.with(|c| {
            let old: String = c
                .query_row(
                    "SELECT scopes_granted FROM records WHERE id = ?1",
                    params![id_param(id)?],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            let mut all = scopes_from_db(&old);
            for s in granted.iter() {
                all.insert(s);
            }
            c.execute(
                "UPDATE records SET scopes_granted = ?2 WHERE id = ?1",
                params![id_param(id)?, scopes_to_db(all)],
            )
            .map_err(db_err)?;
            Ok(())
        })
    }

    /// The agent reported why `session` ended; its words win over the relay's own (which only
    /// knows which side hung up first), even when the relay saw the end first.
    pub fn agent_ended(&self, session: u64, reason: &str) -> Result<(), RecordError> {
        let id = {
            let live = self.live();
            let ended = live.ended.iter().find(|(s, _)| *s == session).map(|e| e.1);
            let id = live.running.get(&session).copied().or(ended);
            // One technician leaving a shared session does not say why the session ended.
            match id {
                Some(id) if Self::shared_with_others(&live, session, id) => None,
                id => id,
            }
        };
        let Some(id) = id else {
            return Ok(());
        };
        let reason = truncate_text(reason, MAX_LABEL_CHARS, false);
        self.with(|c| {
            c.execute(
                "UPDATE records SET end_reason = ?2 WHERE id = ?1",
                params![id_param(id)?, reason],
            )
            .map_err(db_err)?;
            // Only an attempt that is already over and was closed for want of consent.
            let ended: Option<i64> = c
                .query_row(
                    "SELECT ended_unix FROM records WHERE id = ?1",
                    params![id_param(id)?],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            if ended.is_some() {
                close_if_no_consent(c, id_param(id)?, &reason, crate::clock::now_unix())?;
            }
            Ok(())
        })
    }

    /// `session` is over: stores its end time, duration and (unless the agent said) end reason, and
    /// forgets the live session. An attempt in which nothing was ever granted is closed with its
    /// outcome (see [`CLOSED_BY_RELAY`]), so it does not stay open in the list forever.
    pub fn finish(
        &self,
        session: u64,
        reason: &str,
        duration_secs: u64,
        now: u64,
    ) -> Result<(), RecordError> {
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
            if Self::shared_with_others(&live, session, id) {
                return Ok(());
            }
            id
        };
        self.with(|c| {
            let tx = c.transaction().map_err(db_err)?;
            // A shared session lasted from the record's start (the first technician's claim).
            tx.execute(
                "UPDATE records SET ended_unix = ?2, duration_secs = MAX(?3, ?2 - started_unix),
                 end_reason = COALESCE(end_reason, ?4) WHERE id = ?1",
                params![id_param(id)?, int(now)?, int(duration_secs)?, reason],
            )
            .map_err(db_err)?;
            let outcome: String = tx
                .query_row(
                    "SELECT end_reason FROM records WHERE id = ?1",
                    params![id_param(id)?],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            close_if_no_consent(&tx, id_param(id)?, &outcome, now)?;
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }

    /// Answers `query` for `who`, after the role and org checks.
    pub fn handle(
        &self,
        who: &TechnicianIdentity,
        query: RecordQuery,
        now: u64,
    ) -> Result<RecordReply, RecordError> {
        answer(self, who, query, now)
    }
}

impl Queries for Records {
    fn words(text: &str) -> Option<String> {
        fts_query(text)
    }

    fn search(
        &self,
        org: &str,
        fts: Option<&str>,
        device: Option<&str>,
        technician: Option<&str>,
        limit: u32,
    ) -> Result<RecordReply, RecordError> {
        let limit = limit.clamp(1, MAX_LIST);
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT r.id FROM records r WHERE r.org = ?1
                     AND (?2 IS NULL OR r.id IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ?2))
                     AND (?3 IS NULL OR lower(r.device) = lower(?3))
                     AND (?4 IS NULL OR EXISTS (SELECT 1 FROM record_technicians t
                          WHERE t.record_id = r.id AND lower(t.name) = lower(?4)))
                     ORDER BY r.started_unix DESC, r.id DESC LIMIT ?5",
                )
                .map_err(db_err)?;
            let ids: Vec<i64> = st
                .query_map(params![org, fts, device, technician, limit], |r| r.get(0))
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(load(c, org, uint(id))?.summary);
            }
            Ok(RecordReply::List(out))
        })
    }

    fn show(&self, org: &str, id: u64) -> Result<SessionRecord, RecordError> {
        self.with(|c| load(c, org, id))
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
        let ticket = label("the ticket", note.ticket)?;
        let device = label("the device", note.device)?;
        let problem = text("the problem", note.problem)?;
        let cause = text("the cause", note.cause)?;
        let fix = text("the fix", note.fix)?;
        self.with(|c| {
            let tx = c.transaction().map_err(db_err)?;
            let rid = writable(&tx, org, id, Action::Note, "")?;
            // An empty value clears the field; an absent one keeps it.
            let set = |col: &str, v: &Option<String>| -> Result<(), RecordError> {
                if let Some(v) = v {
                    let v = (!v.is_empty()).then_some(v.as_str());
                    tx.execute(
                        &format!("UPDATE records SET {col} = ?2 WHERE id = ?1"),
                        params![rid, v],
                    )
                    .map_err(db_err)?;
                }
                Ok(())
            };
            set("ticket", &ticket)?;
            set("device", &device)?;
            set("problem", &problem)?;
            set("cause", &cause)?;
            set("fix", &fix)?;
            index(&tx, rid)?;
            tx.commit().map_err(db_err)?;
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
        self.with(|c| {
            let tx = c.transaction().map_err(db_err)?;
            let rid = writable(&tx, org, id, Action::Close, name)?;
            tx.execute(
                "UPDATE records SET resolution = ?2, state = 'closed', closed_by = ?3, closed_unix = ?4 WHERE id = ?1",
                params![rid, resolution, name, int(now)?],
            )
            .map_err(db_err)?;
            index(&tx, rid)?;
            tx.commit().map_err(db_err)?;
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
        self.with(|c| {
            let tx = c.transaction().map_err(db_err)?;
            let rid = writable(&tx, org, id, Action::PostFacts, name)?;
            match facts {
                SessionFacts::Probes(probes) => {
                    for p in probes {
                        tx.execute(
                            "INSERT INTO record_probes (record_id, probe, verdict, reason, at_unix) VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![
                                rid,
                                truncate_text(&p.probe, MAX_PROBE_CHARS, false),
                                verdict_name(p.verdict),
                                truncate_text(&p.reason, MAX_PROBE_REASON_CHARS, false),
                                int(now)?
                            ],
                        )
                        .map_err(db_err)?;
                    }
                }
                SessionFacts::Inventory(inv) => {
                    let host = truncate_text(&inv.hostname, MAX_LABEL_CHARS, false);
                    tx.execute(
                        "INSERT INTO record_inventories (record_id, digest, collected_unix, hostname, packages) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![rid, inv.digest.to_ascii_lowercase(), int(inv.collected_unix)?, host, inv.packages],
                    )
                    .map_err(db_err)?;
                    if !host.is_empty() {
                        tx.execute(
                            "UPDATE records SET device = ?2 WHERE id = ?1 AND device IS NULL",
                            params![rid, host],
                        )
                        .map_err(db_err)?;
                        index(&tx, rid)?;
                    }
                }
                SessionFacts::File(f) => {
                    tx.execute(
                        "INSERT INTO record_files (record_id, direction, path, size, sha256, at_unix) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            rid,
                            f.direction.name(),
                            truncate_text(&f.path, MAX_FILE_PATH_CHARS, false),
                            int(f.size)?,
                            f.sha256.to_ascii_lowercase(),
                            int(now)?
                        ],
                    )
                    .map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            load(c, org, id)
        })
    }
}

/// What a record store does for each [`RecordQuery`], once [`answer`] has checked the role and the
/// search words: the one dispatch the SQLite and PostgreSQL stores share.
pub(crate) trait Queries {
    /// The backend's search expression for the words of `text`; `None` when it has none.
    fn words(text: &str) -> Option<String>;
    /// Records of `org`, newest first, matching every given filter.
    fn search(
        &self,
        org: &str,
        words: Option<&str>,
        device: Option<&str>,
        technician: Option<&str>,
        limit: u32,
    ) -> Result<RecordReply, RecordError>;
    /// One record of `org`.
    fn show(&self, org: &str, id: u64) -> Result<SessionRecord, RecordError>;
    /// Changes a record's notes (`note` is not empty).
    fn note(&self, org: &str, id: u64, note: RecordNote) -> Result<SessionRecord, RecordError>;
    /// Closes a record with `resolution` (checked, not empty).
    fn close(
        &self,
        org: &str,
        name: &str,
        id: u64,
        resolution: &str,
        now: u64,
    ) -> Result<SessionRecord, RecordError>;
    /// Adds what a console posted (checked by `check_facts`).
    fn facts(
        &self,
        org: &str,
        name: &str,
        id: u64,
        facts: SessionFacts,
        now: u64,
    ) -> Result<SessionRecord, RecordError>;
}

/// What a posted fact must hold before any store sees it: 1 to [`MAX_PROBES_PER_POST`] probe
/// results, digests of 64 hex digits.
fn check_facts(facts: &SessionFacts) -> Result<(), RecordError> {
    if let SessionFacts::Probes(p) = facts
        && (p.is_empty() || p.len() > MAX_PROBES_PER_POST)
    {
        return Err(invalid(format!(
            "a post carries 1–{MAX_PROBES_PER_POST} probe results, not {}",
            p.len()
        )));
    }
    if let SessionFacts::Inventory(inv) = facts
        && !is_sha256_hex(&inv.digest)
    {
        return Err(invalid("an inventory digest is 64 hex digits"));
    }
    if let SessionFacts::File(f) = facts
        && !is_sha256_hex(&f.sha256)
    {
        return Err(invalid("a file digest is 64 hex digits"));
    }
    Ok(())
}

/// Answers `query` for `who` from `store`, after the checks of [`record_policy`].
pub(crate) fn answer<S: Queries>(
    store: &S,
    who: &TechnicianIdentity,
    query: RecordQuery,
    now: u64,
) -> Result<RecordReply, RecordError> {
    record_policy::may(who.role, Action::of(&query))?;
    let org = who.org.as_str();
    match query {
        RecordQuery::List { limit } => store.search(org, None, None, None, limit),
        RecordQuery::Show { id } => store.show(org, id).map(boxed),
        RecordQuery::Search {
            text,
            device,
            technician,
            limit,
        } => {
            let text = check_text("the search text", &text, MAX_SEARCH_CHARS, false)?;
            let words = S::words(&text);
            if !text.is_empty() && words.is_none() {
                return Err(invalid(
                    "the search text has no words (letters or digits) to look for",
                ));
            }
            let device = device
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty());
            let technician = technician
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty());
            store.search(
                org,
                words.as_deref(),
                device.as_deref(),
                technician.as_deref(),
                limit,
            )
        }
        RecordQuery::Note { id, note } => {
            if note.is_empty() {
                return Err(invalid(
                    "nothing to change: give --problem, --cause, --fix, --ticket or --device",
                ));
            }
            store.note(org, id, note).map(boxed)
        }
        RecordQuery::Close { id, resolution } => {
            let resolution = check_text("the resolution", &resolution, MAX_NOTE_CHARS, true)?;
            if resolution.is_empty() {
                return Err(invalid("the resolution must not be empty"));
            }
            store.close(org, &who.name, id, &resolution, now).map(boxed)
        }
        RecordQuery::Facts { id, facts } => {
            check_facts(&facts)?;
            store.facts(org, &who.name, id, facts, now).map(boxed)
        }
    }
}

/// Whether `s` is a SHA-256 digest written as 64 hex digits.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn boxed(r: SessionRecord) -> RecordReply {
    RecordReply::Record(Box::new(r))
}

/// The record's row id if `name` may do `action` to it (see [`record_policy::may_change`]): it
/// exists in `org`, is open, and for posted facts `name` was one of its technicians.
fn writable(
    c: &Connection,
    org: &str,
    id: u64,
    action: Action,
    name: &str,
) -> Result<i64, RecordError> {
    let rid = id_param(id)?;
    let state: Option<String> = c
        .query_row(
            "SELECT state FROM records WHERE id = ?1 AND org = ?2",
            params![rid, org],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    let involved = action == Action::PostFacts
        && state.is_some()
        && c.query_row(
            "SELECT 1 FROM record_technicians WHERE record_id = ?1 AND name = ?2",
            params![rid, name],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .map_err(db_err)?
        .is_some();
    let target = Target {
        id,
        state: state.as_deref().map(state_from),
        involved,
    };
    record_policy::may_change(action, target)?;
    Ok(rid)
}

pub(crate) fn state_from(s: &str) -> RecordState {
    if s == "closed" {
        RecordState::Closed
    } else {
        RecordState::Open
    }
}

/// Rewrites the record's search row from its current text fields.
fn index(c: &Connection, rid: i64) -> Result<(), RecordError> {
    c.execute("DELETE FROM records_fts WHERE rowid = ?1", params![rid])
        .map_err(db_err)?;
    c.execute(
        "INSERT INTO records_fts (rowid, reason, ticket, problem, cause, fix, resolution, device)
         SELECT id, reason, ticket, problem, cause, fix, resolution, device FROM records WHERE id = ?1",
        params![rid],
    )
    .map_err(db_err)?;
    Ok(())
}

fn load(c: &Connection, org: &str, id: u64) -> Result<SessionRecord, RecordError> {
    let rid = id_param(id)?;
    let row = c
        .query_row(
            "SELECT started_unix, ticket, device, reason, scopes_requested, scopes_granted, ended_unix,
                    duration_secs, end_reason, problem, cause, fix, resolution, state, closed_by, closed_unix
             FROM records WHERE id = ?1 AND org = ?2",
            params![rid, org],
            |r| {
                Ok((
                    (
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                        r.get::<_, Option<i64>>(7)?,
                    ),
                    (
                        r.get::<_, Option<String>>(8)?,
                        r.get::<_, Option<String>>(9)?,
                        r.get::<_, Option<String>>(10)?,
                        r.get::<_, Option<String>>(11)?,
                        r.get::<_, Option<String>>(12)?,
                        r.get::<_, String>(13)?,
                        r.get::<_, Option<String>>(14)?,
                        r.get::<_, Option<i64>>(15)?,
                    ),
                ))
            },
        )
        .optional()
        .map_err(db_err)?
        .ok_or_else(|| unknown(id))?;
    let (
        (started, ticket, device, reason, requested, granted, ended, duration),
        (end_reason, problem, cause, fix, resolution, state, closed_by, closed_unix),
    ) = row;
    let mut st = c
        .prepare(
            "SELECT name FROM record_technicians WHERE record_id = ?1 ORDER BY joined_unix, rowid",
        )
        .map_err(db_err)?;
    let technicians: Vec<String> = st
        .query_map(params![rid], |r| r.get(0))
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    let mut st = c
        .prepare(
            "SELECT probe, verdict, reason, at_unix FROM record_probes WHERE record_id = ?1 ORDER BY id",
        )
        .map_err(db_err)?;
    let probes: Vec<ProbeRun> = st
        .query_map(params![rid], |r| {
            Ok(ProbeRun {
                probe: r.get(0)?,
                verdict: verdict_from(&r.get::<_, String>(1)?),
                reason: r.get(2)?,
                at_unix: uint(r.get::<_, i64>(3)?),
            })
        })
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    let mut st = c
        .prepare(
            "SELECT digest, collected_unix, hostname, packages FROM record_inventories WHERE record_id = ?1 ORDER BY id",
        )
        .map_err(db_err)?;
    let inventories: Vec<InventoryRef> = st
        .query_map(params![rid], |r| {
            Ok(InventoryRef {
                digest: r.get(0)?,
                collected_unix: uint(r.get::<_, i64>(1)?),
                hostname: r.get(2)?,
                packages: r.get(3)?,
            })
        })
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    let mut st = c
        .prepare(
            "SELECT direction, path, size, sha256, at_unix FROM record_files WHERE record_id = ?1 ORDER BY id",
        )
        .map_err(db_err)?;
    let files: Vec<FileMoved> = st
        .query_map(params![rid], |r| {
            Ok(FileMoved {
                direction: if r.get::<_, String>(0)? == FileDirection::Pull.name() {
                    FileDirection::Pull
                } else {
                    FileDirection::Push
                },
                path: r.get(1)?,
                size: uint(r.get::<_, i64>(2)?),
                sha256: r.get(3)?,
                at_unix: uint(r.get::<_, i64>(4)?),
            })
        })
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    let state = state_from(&state);
    Ok(SessionRecord {
        summary: RecordSummary {
            id,
            started_unix: uint(started),
            ticket,
            device,
            reason,
            technicians,
            state,
            resolution,
        },
        org: org.to_string(),
        scopes_requested: scopes_from_db(&requested),
        scopes_granted: scopes_from_db(&granted),
        probes,
        inventories,
        files,
        ended_unix: ended.map(uint),
        duration_secs: duration.map(uint),
        end_reason,
        notes: Notes {
            problem,
            cause,
            fix,
        },
        closed_by,
        closed_unix: closed_unix.map(uint),
    })
}

/// The session records as the relay uses them: the lifecycle hooks, keyed by the relay's session
/// id, and a technician's queries. [`Records`] (SQLite) is the implementation; every method is
/// short and synchronous, so async callers use [`crate::blocking::blocking`].
pub trait RecordStore: Send + Sync + std::fmt::Debug {
    /// Creates the record of a session that just started and returns its id.
    fn start(
        &self,
        session: SessionId,
        technician: &TechnicianIdentity,
        reason: Option<&str>,
        requested: ScopeSet,
        now: u64,
    ) -> Result<RecordId, RecordError>;
    /// An invited colleague's `session` joined `parent`'s record; `None` if it has none.
    fn join(&self, session: SessionId, parent: SessionId) -> Option<RecordId>;
    /// Adds a technician who joined `session` to its record.
    fn add_technician(&self, session: SessionId, name: &str) -> Result<(), RecordError>;
    /// The user granted `granted` in `session`.
    fn consent(&self, session: SessionId, granted: ScopeSet) -> Result<(), RecordError>;
    /// The agent reported why `session` ended.
    fn agent_ended(&self, session: SessionId, reason: &str) -> Result<(), RecordError>;
    /// `session` is over.
    fn finish(
        &self,
        session: SessionId,
        reason: &str,
        duration_secs: u64,
        now: u64,
    ) -> Result<(), RecordError>;
    /// Answers `query` for `who`, after the checks of [`record_policy`].
    fn handle(
        &self,
        who: &TechnicianIdentity,
        query: RecordQuery,
        now: u64,
    ) -> Result<RecordReply, RecordError>;
}

impl RecordStore for Records {
    fn start(
        &self,
        session: SessionId,
        technician: &TechnicianIdentity,
        reason: Option<&str>,
        requested: ScopeSet,
        now: u64,
    ) -> Result<RecordId, RecordError> {
        Records::start(self, session.get(), technician, reason, requested, now).map(RecordId)
    }

    fn join(&self, session: SessionId, parent: SessionId) -> Option<RecordId> {
        Records::join(self, session.get(), parent.get()).map(RecordId)
    }

    fn add_technician(&self, session: SessionId, name: &str) -> Result<(), RecordError> {
        Records::add_technician(self, session.get(), name)
    }

    fn consent(&self, session: SessionId, granted: ScopeSet) -> Result<(), RecordError> {
        Records::consent(self, session.get(), granted)
    }

    fn agent_ended(&self, session: SessionId, reason: &str) -> Result<(), RecordError> {
        Records::agent_ended(self, session.get(), reason)
    }

    fn finish(
        &self,
        session: SessionId,
        reason: &str,
        duration_secs: u64,
        now: u64,
    ) -> Result<(), RecordError> {
        Records::finish(self, session.get(), reason, duration_secs, now)
    }

    fn handle(
        &self,
        who: &TechnicianIdentity,
        query: RecordQuery,
        now: u64,
    ) -> Result<RecordReply, RecordError> {
        Records::handle(self, who, query, now)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::msg::TechnicianRole;

    fn who(name: &str, role: TechnicianRole) -> TechnicianIdentity {
        TechnicianIdentity {
            name: name.into(),
            org: "Acme IT".into(),
            role,
            tier: tether_proto::msg::Tier::L1,
        }
    }

    fn records() -> (tempfile::TempDir, Records) {
        let dir = tempfile::tempdir().unwrap();
        let r = Records::open(dir.path()).unwrap();
        (dir, r)
    }

    fn list(r: RecordReply) -> Vec<u64> {
        match r {
            RecordReply::List(l) => l.iter().map(|s| s.id).collect(),
            other => panic!("not a list: {other:?}"),
        }
    }

    #[test]
    fn search_finds_words_anywhere_and_ignores_syntax() {
        let (_d, r) = records();
        let ada = who("Ada", TechnicianRole::Technician);
        let a = r
            .start(1, &ada, Some("printer offline"), ScopeSet::all(), 10)
            .unwrap();
        let b = r
            .start(2, &ada, Some("wifi drops"), ScopeSet::all(), 20)
            .unwrap();
        let search = |text: &str| {
            r.handle(
                &ada,
                RecordQuery::Search {
                    text: text.into(),
                    device: None,
                    technician: None,
                    limit: 10,
                },
                30,
            )
            .map(list)
        };
        assert_eq!(search("Printer").unwrap(), vec![a]);
        assert_eq!(search("offline printer").unwrap(), vec![a]);
        assert_eq!(search("\"printer\" -wifi: OR*").unwrap(), Vec::<u64>::new());
        assert_eq!(search("").unwrap(), vec![b, a], "newest first");
        assert_eq!(
            search("---").unwrap_err().kind,
            RecordErrorKind::Invalid,
            "no words"
        );
    }

    /// Files moved in a session are kept in the record, oldest first, with the relay's time; a
    /// digest that is not SHA-256 hex is refused and changes nothing.
    #[test]
    fn file_facts_are_kept_in_order() {
        let (_d, r) = records();
        let ada = who("Ada", TechnicianRole::Technician);
        let id = r.start(3, &ada, None, ScopeSet::all(), 10).unwrap();
        let file = |direction, path: &str, sha256: String| RecordQuery::Facts {
            id,
            facts: SessionFacts::File(FileMoved {
                direction,
                path: path.into(),
                size: 1 << 20,
                sha256,
                at_unix: 1,
            }),
        };
        let sha = "AB".repeat(32);
        r.handle(
            &ada,
            file(
                FileDirection::Push,
                "/home/u/Downloads/Tether/fix.sh",
                sha.clone(),
            ),
            20,
        )
        .unwrap();
        r.handle(
            &ada,
            file(FileDirection::Pull, "/home/u/crash.log", "cd".repeat(32)),
            21,
        )
        .unwrap();
        let bad = r
            .handle(
                &ada,
                file(FileDirection::Pull, "/etc/x", "not hex".into()),
                22,
            )
            .unwrap_err();
        assert_eq!(bad.kind, RecordErrorKind::Invalid);
        let rec = r.show("Acme IT", id).unwrap();
        let got: Vec<_> = rec
            .files
            .iter()
            .map(|f| {
                (
                    f.direction,
                    f.path.as_str(),
                    f.size,
                    f.sha256.as_str(),
                    f.at_unix,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    FileDirection::Push,
                    "/home/u/Downloads/Tether/fix.sh",
                    1 << 20,
                    "ab".repeat(32).as_str(),
                    20
                ),
                (
                    FileDirection::Pull,
                    "/home/u/crash.log",
                    1 << 20,
                    "cd".repeat(32).as_str(),
                    21
                ),
            ]
        );
    }

    #[test]
    fn other_orgs_records_are_invisible() {
        let (_d, r) = records();
        let ada = who("Ada", TechnicianRole::Technician);
        let id = r.start(1, &ada, None, ScopeSet::all(), 10).unwrap();
        let eve = TechnicianIdentity {
            org: "Other".into(),
            ..who("Eve", TechnicianRole::Admin)
        };
        let e = r.handle(&eve, RecordQuery::Show { id }, 11).unwrap_err();
        assert_eq!(e.kind, RecordErrorKind::UnknownRecord);
        assert!(list(r.handle(&eve, RecordQuery::List { limit: 10 }, 11).unwrap()).is_empty());
    }

    #[test]
    fn lifecycle_hooks_fill_the_record() {
        let (_d, r) = records();
        let ada = who("Ada", TechnicianRole::Technician);
        let id = r.start(7, &ada, None, ScopeSet::all(), 100).unwrap();
        r.add_technician(7, "Grace").unwrap();
        r.add_technician(7, "Grace").unwrap();
        r.consent(7, "view".parse().unwrap()).unwrap();
        r.consent(7, "inventory".parse().unwrap()).unwrap();
        r.finish(7, "agent left", 42, 142).unwrap();
        assert_eq!(
            r.show("Acme IT", id).unwrap().end_reason.as_deref(),
            Some("agent left")
        );
        // The agent's report may arrive just after the relay saw its connection close.
        r.agent_ended(7, "the user ended the session").unwrap();
        assert_eq!(r.record_of(7), None);
        let rec = r.show("Acme IT", id).unwrap();
        assert_eq!(rec.summary.technicians, vec!["Ada", "Grace"]);
        assert_eq!(rec.scopes_granted, "view,inventory".parse().unwrap());
        assert_eq!(rec.duration_secs, Some(42));
        assert_eq!(
            rec.end_reason.as_deref(),
            Some("the user ended the session")
        );
    }

    /// Issue 17 item 20: an attempt that never got consent (wrong code, refused, no answer) is
    /// closed by itself with its outcome, the agent's later words included; one with consent stays
    /// open for the technician's notes.
    #[test]
    fn attempts_without_consent_close_with_their_outcome() {
        let (_d, r) = records();
        let ada = who("Ada", TechnicianRole::Technician);
        let refused = r.start(1, &ada, None, ScopeSet::all(), 10).unwrap();
        r.finish(1, "the agent hung up", 3, 13).unwrap();
        let rec = r.show("Acme IT", refused).unwrap();
        assert_eq!(rec.summary.state, RecordState::Closed);
        assert_eq!(rec.closed_by.as_deref(), Some(CLOSED_BY_RELAY));
        assert_eq!(rec.closed_unix, Some(13));
        assert_eq!(
            rec.summary.resolution.as_deref(),
            Some("No access was given: the agent hung up.")
        );
        // The agent's reason arrives just after: it becomes the outcome.
        r.agent_ended(1, "the user denied consent").unwrap();
        let rec = r.show("Acme IT", refused).unwrap();
        assert_eq!(
            rec.summary.resolution.as_deref(),
            Some("No access was given: the user denied consent.")
        );
        // Searchable like any resolution.
        let hits = r
            .handle(
                &ada,
                RecordQuery::Search {
                    text: "denied".into(),
                    device: None,
                    technician: None,
                    limit: 10,
                },
                20,
            )
            .unwrap();
        assert_eq!(list(hits), vec![refused]);

        let helped = r.start(2, &ada, None, ScopeSet::all(), 30).unwrap();
        r.consent(2, "view".parse().unwrap()).unwrap();
        r.finish(2, "the technician ended the session", 60, 90)
            .unwrap();
        r.agent_ended(2, "the technician ended the session")
            .unwrap();
        let rec = r.show("Acme IT", helped).unwrap();
        assert_eq!(
            rec.summary.state,
            RecordState::Open,
            "left for the technician"
        );
        assert_eq!(rec.summary.resolution, None);
    }
}
