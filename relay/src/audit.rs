//! The relay's tamper-evident audit log: one JSON object per line in `audit.jsonl`.
//!
//! # Records
//! Every record carries `seq` (1, 2, 3, ...) and `prev`, the SHA-256 of the previous line exactly as
//! stored (64 zeros for the first). Editing a record breaks the next record's `prev`; deleting or
//! reordering records breaks `seq`. [`verify`] says which record is wrong.
//!
//! Records facts only: who, which slot, what was granted, how long, how many bytes. Never a full code,
//! a key, a keystroke or a pixel — the relay never has those anyway.
//!
//! # Torn tails
//! A record is committed once its closing newline is written (JSON never holds a raw newline), so any
//! bytes after the last newline are a torn record: a write cut short by a full disk or a crash. The
//! next append — at start, or when writing works again — cuts them (at most [`MAX_RECORD`] bytes; a
//! longer tail is not one torn record and is left for an operator) and first writes an
//! `audit_repaired` record saying how many bytes were cut. [`verify`] lists such repairs; it reports a
//! torn tail not yet repaired as [`ChainError::TornTail`], not as an edit.
//!
//! # Writers
//! The relay writes through [`AuditLog`]: [`AuditLog::record`] never blocks — it puts the event on a
//! bounded queue ([`AUDIT_QUEUE`]) drained by one writer thread that owns the file, so no async task
//! ever waits on the disk or the lock. The operator commands (`tether-relay technician ...`) append
//! with [`AuditFile`] directly, possibly while the relay runs, so every append holds an exclusive
//! file lock, and re-reads the last record only when the file changed since its own last append.
//!
//! # Failing closed
//! When an append fails, the writer keeps the record and retries every [`RETRY_INTERVAL`];
//! meanwhile [`AuditLog::writable`] is false and the relay refuses new sessions and enrollments with
//! that reason (and says so in its metrics). Records queued meanwhile are written, in order, when it
//! works again, followed by `audit_resumed`; events that found the queue full are counted in
//! `audit_records_lost`.
//!
//! # Repeated refusals
//! A flood of refused claims (guessing, a bogus token behind a NAT) is recorded as the first
//! `claim_refused` plus, when [`REFUSAL_WINDOW`] closes, one `claims_refused_repeated` with the count
//! of the others, instead of one line each.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::end::EndReason;
use crate::ids::{RecordId, SessionId};
use crate::metrics::Metrics;

/// File name in the data directory.
pub const FILE: &str = "audit.jsonl";

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest record we expect; a torn tail is at most this long, and the tail read looks twice this
/// far back for the last complete record.
pub const MAX_RECORD: u64 = 64 * 1024;

/// Events the relay may queue for the writer; beyond this (the disk stalls), events are counted as
/// lost and new sessions are refused until the writer catches up.
pub const AUDIT_QUEUE: usize = 1024;

/// How often the writer retries while the log cannot be written.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Repeated claim refusals (same reason, technician, source address) within this window after the
/// first are counted, not written one by one.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(60);

/// Distinct refusal keys tracked at once; past this the counts so far are written early.
pub const MAX_REFUSAL_KEYS: usize = 1024;

/// One audit event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A technician claimed a slot, the agent accepted, and the streams were spliced: an attempt.
    /// Key confirmation follows; it succeeds (`session_started`) or fails (`agent_report` with
    /// `pairing_failed`, the code is burned).
    SessionAttempt {
        /// Session id (relay-local).
        session: SessionId,
        /// Slot claimed.
        slot: u32,
        /// Technician name.
        technician: String,
        /// Technician org.
        org: String,
        /// Scopes the technician said they would ask for.
        scopes: String,
        /// Console's address.
        peer: String,
    },
    /// Key confirmation succeeded (the agent reported `paired`): the session is under way.
    SessionStarted {
        /// Session id.
        session: SessionId,
        /// Technician name.
        technician: String,
        /// Technician org.
        org: String,
    },
    /// A claim was refused (by the relay, or declined by the agent). Repeats with the same reason,
    /// technician and source address within [`REFUSAL_WINDOW`] are counted in one
    /// [`AuditEvent::ClaimsRefusedRepeated`] instead of a line each.
    ClaimRefused {
        /// Slot asked for.
        slot: u32,
        /// Why (error kind).
        reason: String,
        /// Technician, when the token was valid.
        technician: Option<String>,
        /// Console's address.
        peer: String,
    },
    /// A fact the agent reported (paired, pairing failed, consent, scope refused, ended).
    AgentReport {
        /// Session id.
        session: SessionId,
        /// What the agent reported.
        report: String,
    },
    /// A device enrolled.
    DeviceEnrolled {
        /// The new device id.
        device_id: String,
        /// Its org.
        org: String,
        /// Its host name as it said.
        hostname: String,
        /// Its address.
        peer: String,
    },
    /// An enrollment was refused.
    EnrollRefused {
        /// Why (error kind).
        reason: String,
        /// The address.
        peer: String,
    },
    /// The session ended.
    SessionEnded {
        /// Session id.
        session: SessionId,
        /// The session record it belongs to (`tether-console sessions show ID`); a colleague's
        /// session belongs to the record of the session they joined. `None` if the record store
        /// failed.
        record: Option<RecordId>,
        /// Seconds it lasted.
        duration_secs: f64,
        /// Bytes copied console → agent.
        bytes_to_agent: u64,
        /// Bytes copied agent → console.
        bytes_to_console: u64,
        /// Why it ended.
        reason: EndReason,
    },
    /// An operator registered a technician.
    TechnicianAdded {
        /// Name.
        technician: String,
        /// Org.
        org: String,
        /// Role.
        role: String,
    },
    /// An operator gave an organisation's devices a new unattended policy (as IT signed it; each
    /// device checks the signature).
    PolicySet {
        /// Org.
        org: String,
        /// The policy's version.
        version: u64,
        /// What it allows unattended ("" for nothing).
        unattended: String,
    },
    /// A technician asked for a session on an enrolled device (no code): the device was woken and
    /// its session connection opened `slot` (the `session_attempt` that follows names the same
    /// slot), or it was not (`refused` says why).
    EnrolledDeviceSession {
        /// The slot the device's session connection opened, when it came.
        slot: Option<u32>,
        /// The device.
        device_id: String,
        /// Its host name.
        hostname: String,
        /// Who asked.
        technician: String,
        /// Their organisation.
        org: String,
        /// Whether nobody was to be asked (only IT's signed policy applies on the device).
        unattended: bool,
        /// Why there is no session.
        refused: Option<String>,
    },
    /// The user let a session's technician invite a colleague; the relay issued a ticket.
    Invited {
        /// The session invited into.
        session: SessionId,
        /// Who invited.
        by: String,
        /// Whom (a name, or "any L2 technician").
        invitee: String,
        /// The inviter leaves once the invitee is in.
        handover: bool,
    },
    /// An invited technician joined: their own session (`session`) runs beside `parent`.
    Joined {
        /// The invitee's session.
        session: SessionId,
        /// The session they were invited into.
        parent: SessionId,
        /// Who joined.
        technician: String,
        /// Who invited them.
        invited_by: String,
    },
    /// An operator set a technician's tier.
    TechnicianTierSet {
        /// Name.
        technician: String,
        /// Org.
        org: String,
        /// The tier.
        tier: String,
    },
    /// An operator revoked a technician's token.
    TechnicianRevoked {
        /// Name.
        technician: String,
        /// Org.
        org: String,
    },
    /// A technician changed a session record (notes, close, probes or inventory posted). The
    /// note text itself stays in the record, not in the log.
    RecordChanged {
        /// Record id.
        record: RecordId,
        /// Technician name.
        technician: String,
        /// Technician org.
        org: String,
        /// What changed (e.g. `note problem,fix`, `close`, `probes 3`).
        change: String,
    },
    /// More claims were refused like an earlier `claim_refused` (same reason, technician and source
    /// address) within [`REFUSAL_WINDOW`] of it; written when the window closes.
    ClaimsRefusedRepeated {
        /// Why (error kind).
        reason: String,
        /// Technician, when the token was valid.
        technician: Option<String>,
        /// The source address (without port).
        peer: String,
        /// How many more were refused.
        count: u64,
        /// The window, in seconds.
        window_secs: u64,
    },
    /// A torn record (a write cut short by a full disk or a crash) was cut from the end of the log
    /// before this record was written. Not an edit: `audit verify` lists it as a repair.
    AuditRepaired {
        /// Bytes cut.
        cut_bytes: u64,
    },
    /// The log could be written again after failing for a while; the relay refused new sessions and
    /// enrollments meanwhile.
    AuditResumed {
        /// How long it could not be written.
        unwritable_secs: f64,
        /// The first failure.
        error: String,
    },
    /// Events that happened while the writer's queue was full and could not be recorded.
    AuditRecordsLost {
        /// How many.
        count: u64,
    },
}

/// The kind of an [`AuditEvent`]: its `event` field in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// [`AuditEvent::SessionAttempt`].
    SessionAttempt,
    /// [`AuditEvent::SessionStarted`].
    SessionStarted,
    /// [`AuditEvent::ClaimRefused`].
    ClaimRefused,
    /// [`AuditEvent::AgentReport`].
    AgentReport,
    /// [`AuditEvent::DeviceEnrolled`].
    DeviceEnrolled,
    /// [`AuditEvent::EnrollRefused`].
    EnrollRefused,
    /// [`AuditEvent::SessionEnded`].
    SessionEnded,
    /// [`AuditEvent::TechnicianAdded`].
    TechnicianAdded,
    /// [`AuditEvent::PolicySet`].
    PolicySet,
    /// [`AuditEvent::EnrolledDeviceSession`].
    EnrolledDeviceSession,
    /// [`AuditEvent::Invited`].
    Invited,
    /// [`AuditEvent::Joined`].
    Joined,
    /// [`AuditEvent::TechnicianTierSet`].
    TechnicianTierSet,
    /// [`AuditEvent::TechnicianRevoked`].
    TechnicianRevoked,
    /// [`AuditEvent::RecordChanged`].
    RecordChanged,
    /// [`AuditEvent::ClaimsRefusedRepeated`].
    ClaimsRefusedRepeated,
    /// [`AuditEvent::AuditRepaired`].
    AuditRepaired,
    /// [`AuditEvent::AuditResumed`].
    AuditResumed,
    /// [`AuditEvent::AuditRecordsLost`].
    AuditRecordsLost,
}

impl AuditKind {
    /// Every kind.
    pub const ALL: [AuditKind; 19] = [
        AuditKind::SessionAttempt,
        AuditKind::SessionStarted,
        AuditKind::ClaimRefused,
        AuditKind::AgentReport,
        AuditKind::DeviceEnrolled,
        AuditKind::EnrollRefused,
        AuditKind::SessionEnded,
        AuditKind::TechnicianAdded,
        AuditKind::PolicySet,
        AuditKind::EnrolledDeviceSession,
        AuditKind::Invited,
        AuditKind::Joined,
        AuditKind::TechnicianTierSet,
        AuditKind::TechnicianRevoked,
        AuditKind::RecordChanged,
        AuditKind::ClaimsRefusedRepeated,
        AuditKind::AuditRepaired,
        AuditKind::AuditResumed,
        AuditKind::AuditRecordsLost,
    ];

    /// The stored name (the `event` field of a log line).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::SessionAttempt => "session_attempt",
            AuditKind::SessionStarted => "session_started",
            AuditKind::ClaimRefused => "claim_refused",
            AuditKind::AgentReport => "agent_report",
            AuditKind::DeviceEnrolled => "device_enrolled",
            AuditKind::EnrollRefused => "enroll_refused",
            AuditKind::SessionEnded => "session_ended",
            AuditKind::TechnicianAdded => "technician_added",
            AuditKind::PolicySet => "policy_set",
            AuditKind::EnrolledDeviceSession => "enrolled_device_session",
            AuditKind::Invited => "invited",
            AuditKind::Joined => "joined",
            AuditKind::TechnicianTierSet => "technician_tier_set",
            AuditKind::TechnicianRevoked => "technician_revoked",
            AuditKind::RecordChanged => "record_changed",
            AuditKind::ClaimsRefusedRepeated => "claims_refused_repeated",
            AuditKind::AuditRepaired => "audit_repaired",
            AuditKind::AuditResumed => "audit_resumed",
            AuditKind::AuditRecordsLost => "audit_records_lost",
        }
    }
}

impl std::str::FromStr for AuditKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        AuditKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

impl AuditEvent {
    /// This event's kind.
    pub fn kind(&self) -> AuditKind {
        match self {
            AuditEvent::SessionAttempt { .. } => AuditKind::SessionAttempt,
            AuditEvent::SessionStarted { .. } => AuditKind::SessionStarted,
            AuditEvent::ClaimRefused { .. } => AuditKind::ClaimRefused,
            AuditEvent::AgentReport { .. } => AuditKind::AgentReport,
            AuditEvent::DeviceEnrolled { .. } => AuditKind::DeviceEnrolled,
            AuditEvent::EnrollRefused { .. } => AuditKind::EnrollRefused,
            AuditEvent::SessionEnded { .. } => AuditKind::SessionEnded,
            AuditEvent::TechnicianAdded { .. } => AuditKind::TechnicianAdded,
            AuditEvent::PolicySet { .. } => AuditKind::PolicySet,
            AuditEvent::EnrolledDeviceSession { .. } => AuditKind::EnrolledDeviceSession,
            AuditEvent::Invited { .. } => AuditKind::Invited,
            AuditEvent::Joined { .. } => AuditKind::Joined,
            AuditEvent::TechnicianTierSet { .. } => AuditKind::TechnicianTierSet,
            AuditEvent::TechnicianRevoked { .. } => AuditKind::TechnicianRevoked,
            AuditEvent::RecordChanged { .. } => AuditKind::RecordChanged,
            AuditEvent::ClaimsRefusedRepeated { .. } => AuditKind::ClaimsRefusedRepeated,
            AuditEvent::AuditRepaired { .. } => AuditKind::AuditRepaired,
            AuditEvent::AuditResumed { .. } => AuditKind::AuditResumed,
            AuditEvent::AuditRecordsLost { .. } => AuditKind::AuditRecordsLost,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Line<'a> {
    pub(crate) seq: u64,
    pub(crate) ts_unix_ms: u64,
    pub(crate) prev: &'a str,
    #[serde(flatten)]
    pub(crate) event: &'a AuditEvent,
}

/// Errors reading or writing the log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be read or written.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The last record could not be read, so the chain cannot continue.
    #[error("audit log {0}: the last record is unreadable; run `tether-relay audit verify`")]
    BrokenTail(PathBuf),
    /// The database holding the cluster's chain failed (`crate::pg::audit`).
    #[error("audit log in the database {target}: {reason}")]
    Database {
        /// user@host:port/database.
        target: String,
        /// What failed.
        reason: String,
    },
}

/// Where the writer thread appends: the file ([`AuditFile`]) or a database
/// (`crate::pg::audit::PgAudit`).
pub(crate) trait AuditSink: Send + std::fmt::Debug {
    /// Appends `entries` in order, removing each from the front once it is stored (and repairing
    /// what the medium needs first); on an error the ones not stored stay.
    fn append_all(&mut self, entries: &mut VecDeque<Entry>) -> Result<(), AuditError>;
}

impl AuditSink for AuditFile {
    fn append_all(&mut self, entries: &mut VecDeque<Entry>) -> Result<(), AuditError> {
        AuditFile::append_all(self, entries)
    }
}

/// An event with the time it happened (not the time it reached the disk).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) ts_unix_ms: u64,
    pub(crate) event: AuditEvent,
}

impl Entry {
    pub(crate) fn now(event: AuditEvent) -> Self {
        let ts_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Entry { ts_unix_ms, event }
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The last complete record's `seq` and hash, and the length of the torn tail after it.
struct Tail {
    seq: u64,
    hash: String,
    torn: u64,
}

/// Reads the end of a `len`-byte log; `None` when the last complete record is unreadable (an edit
/// or corruption, which is not repaired) or the tail is too long to be one torn record.
fn read_tail(f: &mut File, len: u64) -> std::io::Result<Option<Tail>> {
    if len == 0 {
        return Ok(Some(Tail {
            seq: 0,
            hash: GENESIS.to_string(),
            torn: 0,
        }));
    }
    let start = len.saturating_sub(2 * MAX_RECORD);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    Read::take(&mut *f, len - start).read_to_end(&mut buf)?;
    let complete = match buf.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None if start == 0 => 0,
        None => return Ok(None),
    };
    let torn = (buf.len() - complete) as u64;
    if torn > MAX_RECORD {
        return Ok(None);
    }
    let body = &buf[..complete.saturating_sub(1)];
    if complete == 0 {
        return Ok(Some(Tail {
            seq: 0,
            hash: GENESIS.to_string(),
            torn,
        }));
    }
    let (last, whole) = match body.iter().rposition(|b| *b == b'\n') {
        Some(i) => (&body[i + 1..], true),
        None => (body, start == 0),
    };
    if !whole {
        return Ok(None);
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(last) else {
        return Ok(None);
    };
    Ok(v["seq"].as_u64().map(|seq| Tail {
        seq,
        hash: sha256_hex(last),
        torn,
    }))
}

/// The log file, appended to under an exclusive lock. Operator commands use it directly; the relay
/// through [`AuditLog`]'s writer.
#[derive(Debug)]
pub struct AuditFile {
    path: PathBuf,
    file: File,
    /// (file length, seq, hash) after this handle's last append: when the length is unchanged, nobody
    /// else wrote, and the tail need not be read again.
    tail: Option<(u64, u64, String)>,
    /// Bytes cut from torn tails whose `audit_repaired` record is not written yet.
    cut: u64,
}

impl AuditFile {
    /// Opens (creating) the log in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, AuditError> {
        let path = data_dir.join(FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|source| AuditError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(AuditFile {
            path,
            file,
            tail: None,
            cut: 0,
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event now, repairing a torn tail first.
    pub fn append(&mut self, event: &AuditEvent) -> Result<(), AuditError> {
        let mut one = VecDeque::from([Entry::now(event.clone())]);
        self.append_all(&mut one)
    }

    /// Repairs a torn tail (writing its `audit_repaired` record), if there is one.
    pub fn repair(&mut self) -> Result<(), AuditError> {
        self.append_all(&mut VecDeque::new())
    }

    /// Appends `entries` in order, removing each from the front once it is on disk; on an error the
    /// ones not written stay.
    fn append_all(&mut self, entries: &mut VecDeque<Entry>) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.lock().map_err(io)?;
        let result = self.append_locked(entries);
        let _ = self.file.unlock();
        result
    }

    fn append_locked(&mut self, entries: &mut VecDeque<Entry>) -> Result<(), AuditError> {
        let path = self.path.clone();
        let io = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        let len = self.file.seek(SeekFrom::End(0)).map_err(&io)?;
        let (mut end, mut seq, mut prev) = match self.tail.take() {
            Some((l, seq, hash)) if l == len => (len, seq, hash),
            _ => {
                let tail = read_tail(&mut self.file, len)
                    .map_err(&io)?
                    .ok_or_else(|| AuditError::BrokenTail(self.path.clone()))?;
                if tail.torn > 0 {
                    self.file.set_len(len - tail.torn).map_err(&io)?;
                    self.cut += tail.torn;
                    tracing::warn!(bytes = tail.torn, "audit log: cut a torn record");
                }
                (len - tail.torn, tail.seq, tail.hash)
            }
        };
        if self.cut > 0 {
            let repair = Entry::now(AuditEvent::AuditRepaired {
                cut_bytes: self.cut,
            });
            let (n, hash) = self.write_line(seq + 1, &prev, &repair).map_err(&io)?;
            self.cut = 0;
            (end, seq, prev) = (end + n, seq + 1, hash);
        }
        while let Some(entry) = entries.front() {
            let (n, hash) = self.write_line(seq + 1, &prev, entry).map_err(&io)?;
            entries.pop_front();
            (end, seq, prev) = (end + n, seq + 1, hash);
        }
        self.tail = Some((end, seq, prev));
        Ok(())
    }

    /// Writes one record; its length and hash.
    fn write_line(
        &mut self,
        seq: u64,
        prev: &str,
        entry: &Entry,
    ) -> std::io::Result<(u64, String)> {
        let line = Line {
            seq,
            ts_unix_ms: entry.ts_unix_ms,
            prev,
            event: &entry.event,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        let hash = sha256_hex(&bytes);
        bytes.push(b'\n');
        self.file.write_all(&bytes)?;
        Ok((bytes.len() as u64, hash))
    }
}

/// What the writer thread is told.
enum Msg {
    Record(Entry),
    /// Answer once everything before is handled; with `refusals`, write pending refusal counts too.
    Sync {
        reply: SyncSender<()>,
        refusals: bool,
    },
}

/// State shared between [`AuditLog`] and its writer.
#[derive(Debug)]
struct Health {
    writable: AtomicBool,
    /// Events refused by a full queue, not yet accounted for in the log.
    lost: AtomicU64,
    closing: AtomicBool,
    error: Mutex<Option<String>>,
}

/// The relay's audit log: a bounded queue to one writer thread. Dropping it writes what is queued
/// (one attempt) and joins the writer.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    /// `None` once closed. Held only for a `try_send`, never across a wait.
    tx: Mutex<Option<SyncSender<Msg>>>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl AuditLog {
    /// Opens (creating) the log in `data_dir`, repairs a torn tail, and starts the writer. A log
    /// that cannot be written yet (full disk) is not an error: the relay starts failing closed.
    pub fn spawn(data_dir: &Path, metrics: Arc<Metrics>) -> Result<Self, AuditError> {
        let mut file = AuditFile::open(data_dir)?;
        let path = file.path.clone();
        let first = file.repair();
        Self::spawn_on(Box::new(file), path, first, metrics)
    }

    /// Starts the writer on `sink`; `first` is how its first write (a repair) went, and `path`
    /// names it for people.
    pub(crate) fn spawn_on(
        sink: Box<dyn AuditSink>,
        path: PathBuf,
        first: Result<(), AuditError>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AuditError> {
        let file = sink;
        let failing = first.err().map(|e| {
            tracing::error!(error = %e, "audit log cannot be written; refusing new sessions until it can");
            (Instant::now(), e.to_string())
        });
        let health = Arc::new(Health {
            writable: AtomicBool::new(failing.is_none()),
            lost: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            error: Mutex::new(failing.as_ref().map(|(_, e)| e.clone())),
        });
        metrics.set_audit_writable(failing.is_none());
        if failing.is_some() {
            metrics.audit_write_failures.fetch_add(1, Ordering::Relaxed);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(AUDIT_QUEUE);
        let mut writer = Writer {
            file,
            pending: VecDeque::new(),
            failing,
            next_retry: Instant::now() + RETRY_INTERVAL,
            refusals: HashMap::new(),
            health: health.clone(),
            metrics: metrics.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| AuditError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(AuditLog {
            path,
            tx: Mutex::new(Some(tx)),
            health,
            metrics,
            writer: Mutex::new(Some(thread)),
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one event; never blocks. If the queue is full the event is counted as lost (and
    /// recorded as such later), and the log reports itself unwritable until it catches up.
    pub fn record(&self, event: AuditEvent) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = tx.as_ref() else {
            tracing::error!(?event, "audit log closed; event not recorded");
            return;
        };
        match tx.try_send(Msg::Record(Entry::now(event))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.health.lost.fetch_add(1, Ordering::Relaxed);
                self.health.writable.store(false, Ordering::Relaxed);
                self.metrics.set_audit_writable(false);
                self.metrics
                    .audit_records_lost
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("audit writer is gone; event not recorded");
            }
        }
    }

    /// Whether records are reaching the disk. While false the relay refuses new sessions and
    /// enrollments.
    pub fn writable(&self) -> bool {
        self.health.writable.load(Ordering::Relaxed)
    }

    /// Why the log cannot be written, while it cannot.
    pub fn error(&self) -> Option<String> {
        if self.writable() {
            return None;
        }
        self.health
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .or_else(|| Some("the audit queue is full".into()))
    }

    /// Waits (at most `wait`, blocking this thread) until every event recorded so far is on disk;
    /// with `refusals`, pending refusal counts are written too. Returns at once, `false`, while the
    /// log cannot be written.
    pub fn sync(&self, wait: Duration, refusals: bool) -> bool {
        if !self.writable() {
            return false;
        }
        let (reply, done) = std::sync::mpsc::sync_channel(1);
        let sent = match self.tx.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(tx) => tx.try_send(Msg::Sync { reply, refusals }).is_ok(),
            None => false,
        };
        sent && done.recv_timeout(wait).is_ok() && self.writable()
    }

    /// Stops taking events, writes what is queued and the refusal counts (one attempt: a disk that
    /// is still full is not waited for), and joins the writer. Blocks; later events are not recorded.
    pub fn close(&self) {
        self.health.closing.store(true, Ordering::Relaxed);
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = writer {
            w.thread().unpark();
            let _ = w.join();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// A run of refusals with one key.
struct RefusalWindow {
    opened: Instant,
    count: u64,
}

/// (reason, technician, source address).
type RefusalKey = (String, Option<String>, String);

/// The writer thread's state.
struct Writer {
    file: Box<dyn AuditSink>,
    /// Records taken from the queue and not yet on disk, oldest first.
    pending: VecDeque<Entry>,
    /// Since when, and why, appends fail.
    failing: Option<(Instant, String)>,
    next_retry: Instant,
    refusals: HashMap<RefusalKey, RefusalWindow>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

/// The address without the port (`peer` is a `SocketAddr` string).
fn source_of(peer: &str) -> String {
    peer.parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| peer.to_string())
}

impl Writer {
    fn run(&mut self, rx: Receiver<Msg>) {
        loop {
            let now = Instant::now();
            if self.failing.is_some() && self.pending.len() >= AUDIT_QUEUE {
                // Take nothing more while the disk refuses: the queue is the only buffer.
                std::thread::park_timeout(self.next_retry.saturating_duration_since(now));
                if self.health.closing.load(Ordering::Relaxed) {
                    return self.finish(&rx);
                }
                self.retry_if_due();
                continue;
            }
            let wait = self.next_wake(now);
            match rx.recv_timeout(wait) {
                Ok(Msg::Record(entry)) => self.take(entry),
                Ok(Msg::Sync { reply, refusals }) => {
                    if refusals {
                        self.close_refusal_windows(true);
                    }
                    self.write_pending();
                    let _ = reply.try_send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self.finish(&rx),
            }
            self.close_refusal_windows(false);
            if self.failing.is_some() {
                self.retry_if_due();
            } else if !self.pending.is_empty() {
                self.write_pending();
            }
        }
    }

    fn next_wake(&self, now: Instant) -> Duration {
        let window = self
            .refusals
            .values()
            .map(|w| (w.opened + REFUSAL_WINDOW).saturating_duration_since(now))
            .min();
        let retry = self
            .failing
            .as_ref()
            .map(|_| self.next_retry.saturating_duration_since(now));
        window
            .into_iter()
            .chain(retry)
            .min()
            .unwrap_or(REFUSAL_WINDOW)
    }

    fn take(&mut self, entry: Entry) {
        if let AuditEvent::ClaimRefused {
            reason,
            technician,
            peer,
            ..
        } = &entry.event
        {
            let key = (reason.clone(), technician.clone(), source_of(peer));
            if let Some(w) = self.refusals.get_mut(&key) {
                w.count += 1;
                return;
            }
            if self.refusals.len() >= MAX_REFUSAL_KEYS {
                self.close_refusal_windows(true);
            }
            self.refusals.insert(
                key,
                RefusalWindow {
                    opened: Instant::now(),
                    count: 0,
                },
            );
        }
        self.pending.push_back(entry);
    }

    /// Queues the counts of refusal windows that closed (or all, with `all`).
    fn close_refusal_windows(&mut self, all: bool) {
        let now = Instant::now();
        let closed: Vec<RefusalKey> = self
            .refusals
            .iter()
            .filter(|(_, w)| all || now >= w.opened + REFUSAL_WINDOW)
            .map(|(k, _)| k.clone())
            .collect();
        for key in closed {
            if let Some(w) = self.refusals.remove(&key)
                && w.count > 0
            {
                let (reason, technician, peer) = key;
                self.pending
                    .push_back(Entry::now(AuditEvent::ClaimsRefusedRepeated {
                        reason,
                        technician,
                        peer,
                        count: w.count,
                        window_secs: REFUSAL_WINDOW.as_secs(),
                    }));
            }
        }
    }

    fn retry_if_due(&mut self) {
        if Instant::now() >= self.next_retry {
            self.write_pending();
        }
    }

    /// Writes what is pending (and, once that works after a failure, the outage and loss records).
    fn write_pending(&mut self) {
        // At most three rounds: the pending records, then `audit_resumed` and `audit_records_lost`.
        for _ in 0..3 {
            if let Err(e) = self.file.append_all(&mut self.pending) {
                if self.failing.is_none() {
                    tracing::error!(error = %e, "audit log cannot be written; refusing new sessions and enrollments until it can");
                    self.metrics
                        .audit_write_failures
                        .fetch_add(1, Ordering::Relaxed);
                    *self.health.error.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(e.to_string());
                    self.failing = Some((Instant::now(), e.to_string()));
                }
                self.health.writable.store(false, Ordering::Relaxed);
                self.metrics.set_audit_writable(false);
                self.next_retry = Instant::now() + RETRY_INTERVAL;
                return;
            }
            if let Some((since, error)) = self.failing.take() {
                tracing::info!("audit log writable again; accepting sessions");
                self.pending.push_back(Entry::now(AuditEvent::AuditResumed {
                    unwritable_secs: since.elapsed().as_secs_f64(),
                    error,
                }));
            }
            let lost = self.health.lost.swap(0, Ordering::Relaxed);
            if lost > 0 {
                self.pending
                    .push_back(Entry::now(AuditEvent::AuditRecordsLost { count: lost }));
            }
            if self.pending.is_empty() {
                break;
            }
        }
        if self.pending.is_empty() && self.failing.is_none() {
            *self.health.error.lock().unwrap_or_else(|p| p.into_inner()) = None;
            self.health.writable.store(true, Ordering::Relaxed);
            self.metrics.set_audit_writable(true);
        }
    }

    /// The relay is stopping: take what is queued, write it with the refusal counts (one attempt).
    fn finish(&mut self, rx: &Receiver<Msg>) {
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Record(e) = msg {
                self.pending.push_back(e);
            }
        }
        self.close_refusal_windows(true);
        self.next_retry = Instant::now();
        self.write_pending();
        if !self.pending.is_empty() {
            tracing::error!(
                records = self.pending.len(),
                "audit records could not be written before the relay stopped"
            );
        }
    }
}

/// What [`verify`] found wrong, naming the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A line is not a record at all.
    #[error("line {line}: not a valid audit record (edited or corrupted)")]
    Unreadable {
        /// 1-based line number.
        line: usize,
    },
    /// Sequence numbers jump or go back: records were deleted, inserted or reordered.
    #[error(
        "line {line}: record has seq {found} where seq {expected} was expected: records were deleted, inserted or reordered here"
    )]
    Sequence {
        /// 1-based line number.
        line: usize,
        /// The seq found.
        found: u64,
        /// The seq expected.
        expected: u64,
    },
    /// The previous record's hash does not match: that record was edited.
    #[error(
        "record {prev_seq} was altered: its hash no longer matches the one stored in record {seq}"
    )]
    Altered {
        /// The record that was edited.
        prev_seq: u64,
        /// The record that exposed it.
        seq: u64,
    },
    /// The file ends in an incomplete record: a write was cut short (a full disk, a crash). The relay
    /// cuts it and records the repair when it next starts or writes.
    #[error(
        "line {line}: a torn record of {bytes} bytes ends the log (an interrupted write, not an edit); the relay repairs it when it next starts"
    )]
    TornTail {
        /// 1-based line number.
        line: usize,
        /// Its length.
        bytes: usize,
    },
}

/// An intact chain, as [`verify`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Number of records.
    pub records: usize,
    /// The `audit_repaired` records: where a torn record was cut.
    pub repairs: Vec<Repair>,
}

/// A repaired torn tail, as recorded in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repair {
    /// The `audit_repaired` record.
    pub seq: u64,
    /// Bytes that were cut before it.
    pub cut_bytes: u64,
}

/// Checks the whole chain: every record, and the end of the file (see the module doc).
pub fn verify(text: &str) -> Result<Verified, ChainError> {
    let (complete, torn) = match text.rfind('\n') {
        Some(i) => text.split_at(i + 1),
        None => ("", text),
    };
    let mut prev_hash = GENESIS.to_string();
    let mut n = 0;
    let mut repairs = Vec::new();
    for (i, line) in complete.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|_| ChainError::Unreadable { line: i + 1 })?;
        let expected = n as u64 + 1;
        let seq = v["seq"]
            .as_u64()
            .ok_or(ChainError::Unreadable { line: i + 1 })?;
        if seq != expected {
            return Err(ChainError::Sequence {
                line: i + 1,
                found: seq,
                expected,
            });
        }
        if v["prev"].as_str() != Some(prev_hash.as_str()) {
            return Err(ChainError::Altered {
                prev_seq: seq - 1,
                seq,
            });
        }
        if v["event"] == AuditKind::AuditRepaired.as_str() {
            repairs.push(Repair {
                seq,
                cut_bytes: v["cut_bytes"].as_u64().unwrap_or(0),
            });
        }
        prev_hash = sha256_hex(line.as_bytes());
        n += 1;
    }
    if !torn.is_empty() {
        return Err(ChainError::TornTail {
            line: n + 1,
            bytes: torn.len(),
        });
    }
    Ok(Verified {
        records: n,
        repairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `event` name serde writes is the kind's stored name, for every kind.
    #[test]
    fn kinds_name_the_stored_event() {
        let s = |v: &str| v.to_string();
        let events = [
            AuditEvent::SessionAttempt {
                session: SessionId(1),
                slot: 2,
                technician: s("a"),
                org: s("o"),
                scopes: s("view"),
                peer: s("p"),
            },
            AuditEvent::SessionStarted {
                session: SessionId(1),
                technician: s("a"),
                org: s("o"),
            },
            AuditEvent::ClaimRefused {
                slot: 1,
                reason: s("Busy"),
                technician: None,
                peer: s("p"),
            },
            AuditEvent::AgentReport {
                session: SessionId(1),
                report: s("paired"),
            },
            AuditEvent::DeviceEnrolled {
                device_id: s("d"),
                org: s("o"),
                hostname: s("h"),
                peer: s("p"),
            },
            AuditEvent::EnrollRefused {
                reason: s("TokenUsed"),
                peer: s("p"),
            },
            AuditEvent::SessionEnded {
                session: SessionId(1),
                record: Some(RecordId(3)),
                duration_secs: 1.0,
                bytes_to_agent: 1,
                bytes_to_console: 2,
                reason: EndReason::TimeLimit,
            },
            AuditEvent::TechnicianAdded {
                technician: s("a"),
                org: s("o"),
                role: s("admin"),
            },
            AuditEvent::PolicySet {
                org: s("o"),
                version: 2,
                unattended: s("inventory"),
            },
            AuditEvent::EnrolledDeviceSession {
                slot: Some(1),
                device_id: s("d"),
                hostname: s("h"),
                technician: s("a"),
                org: s("o"),
                unattended: true,
                refused: None,
            },
            AuditEvent::Invited {
                session: SessionId(1),
                by: s("a"),
                invitee: s("b"),
                handover: false,
            },
            AuditEvent::Joined {
                session: SessionId(2),
                parent: SessionId(1),
                technician: s("b"),
                invited_by: s("a"),
            },
            AuditEvent::TechnicianTierSet {
                technician: s("a"),
                org: s("o"),
                tier: s("L2"),
            },
            AuditEvent::TechnicianRevoked {
                technician: s("a"),
                org: s("o"),
            },
            AuditEvent::RecordChanged {
                record: RecordId(3),
                technician: s("a"),
                org: s("o"),
                change: s("close"),
            },
            AuditEvent::ClaimsRefusedRepeated {
                reason: s("Busy"),
                technician: None,
                peer: s("p"),
                count: 2,
                window_secs: 60,
            },
            AuditEvent::AuditRepaired { cut_bytes: 1 },
            AuditEvent::AuditResumed {
                unwritable_secs: 1.0,
                error: s("e"),
            },
            AuditEvent::AuditRecordsLost { count: 1 },
        ];
        assert_eq!(events.len(), AuditKind::ALL.len());
        for e in &events {
            let v = serde_json::to_value(e).unwrap();
            assert_eq!(v["event"], e.kind().as_str());
            assert_eq!(e.kind().as_str().parse::<AuditKind>(), Ok(e.kind()));
        }
        let ended = serde_json::to_value(&events[6]).unwrap();
        assert_eq!(ended["reason"], "time limit");
        assert_eq!(ended["session"], 1);
        assert_eq!(ended["record"], 3);
    }

    fn added(i: usize) -> AuditEvent {
        AuditEvent::TechnicianAdded {
            technician: format!("t{i}"),
            org: "Acme".into(),
            role: "technician".into(),
        }
    }

    fn log_with(n: usize) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditFile::open(dir.path()).unwrap();
        for i in 0..n {
            log.append(&added(i)).unwrap();
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        (dir, text)
    }

    fn records(n: usize) -> Result<Verified, ChainError> {
        Ok(Verified {
            records: n,
            repairs: vec![],
        })
    }

    fn read(dir: &tempfile::TempDir) -> String {
        std::fs::read_to_string(dir.path().join(FILE)).unwrap()
    }

    #[test]
    fn an_intact_chain_verifies_and_continues_across_reopen() {
        let (dir, text) = log_with(3);
        assert_eq!(verify(&text), records(3));
        let log = AuditLog::spawn(dir.path(), Arc::default()).unwrap();
        log.record(AuditEvent::TechnicianRevoked {
            technician: "t0".into(),
            org: "Acme".into(),
        });
        assert!(log.sync(Duration::from_secs(5), false));
        assert_eq!(verify(&read(&dir)), records(4));
    }

    #[test]
    fn edits_deletions_and_reorders_are_named() {
        let (_dir, text) = log_with(4);
        let lines: Vec<&str> = text.lines().collect();

        let edited = text.replace("\"t1\"", "\"mallory\"");
        assert_eq!(
            verify(&edited),
            Err(ChainError::Altered {
                prev_seq: 2,
                seq: 3
            })
        );

        let deleted = [lines[0], lines[1], lines[3], ""].join("\n");
        assert_eq!(
            verify(&deleted),
            Err(ChainError::Sequence {
                line: 3,
                found: 4,
                expected: 3
            })
        );

        let reordered = [lines[0], lines[2], lines[1], lines[3], ""].join("\n");
        assert_eq!(
            verify(&reordered),
            Err(ChainError::Sequence {
                line: 2,
                found: 3,
                expected: 2
            })
        );

        let garbage = [lines[0], "not json", lines[2], ""].join("\n");
        assert_eq!(verify(&garbage), Err(ChainError::Unreadable { line: 2 }));

        // Rewriting one record's seq to hide a deletion still breaks the hash chain.
        let renumbered = [
            lines[0],
            lines[1],
            &lines[3].replace("\"seq\":4", "\"seq\":3"),
            "",
        ]
        .join("\n");
        assert!(matches!(
            verify(&renumbered),
            Err(ChainError::Altered { .. })
        ));
    }

    #[test]
    fn two_writers_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let relay = AuditLog::spawn(dir.path(), Arc::default()).unwrap();
        let mut cli = AuditFile::open(dir.path()).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..50 {
                    relay.record(added(i));
                }
            });
            s.spawn(|| {
                for i in 0..50 {
                    cli.append(&added(i)).unwrap();
                }
            });
        });
        assert!(relay.sync(Duration::from_secs(5), false));
        assert_eq!(verify(&read(&dir)), records(100));
    }

    /// A write cut short (here: half a record, as a full disk or a crash leaves it) is reported as a
    /// torn tail, not an edit; the next start cuts it, says how much in the chain, and goes on.
    #[test]
    fn a_torn_tail_is_repaired_on_start_and_noted() {
        let (dir, text) = log_with(3);
        let torn = &text.lines().next().unwrap()[..40];
        std::fs::write(dir.path().join(FILE), format!("{text}{torn}")).unwrap();
        assert_eq!(
            verify(&read(&dir)),
            Err(ChainError::TornTail { line: 4, bytes: 40 })
        );
        let metrics = Arc::new(Metrics::default());
        let log = AuditLog::spawn(dir.path(), metrics.clone()).unwrap();
        assert!(log.writable());
        assert_eq!(
            verify(&read(&dir)),
            Ok(Verified {
                records: 4,
                repairs: vec![Repair {
                    seq: 4,
                    cut_bytes: 40
                }],
            })
        );
        log.record(added(9));
        assert!(log.sync(Duration::from_secs(5), false));
        assert_eq!(verify(&read(&dir)).unwrap().records, 5);
        assert!(metrics.render().contains("tether_relay_audit_writable 1\n"));
    }

    /// An edited last record is not a torn write: it is not cut, and the log refuses to continue.
    #[test]
    fn an_unreadable_last_record_is_not_repaired() {
        let (dir, text) = log_with(2);
        let edited = text.replacen("{", "[", 2);
        std::fs::write(dir.path().join(FILE), &edited).unwrap();
        let mut cli = AuditFile::open(dir.path()).unwrap();
        assert!(matches!(
            cli.append(&added(5)),
            Err(AuditError::BrokenTail(_))
        ));
        assert_eq!(read(&dir), edited);
        let log = AuditLog::spawn(dir.path(), Arc::default()).unwrap();
        assert!(!log.writable());
        assert!(log.error().unwrap().contains("unreadable"));
    }

    /// 70 refusals from one address (different ports) are one line and one count.
    #[test]
    fn repeated_claim_refusals_are_counted_not_written_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::spawn(dir.path(), Arc::default()).unwrap();
        for i in 0..70 {
            log.record(AuditEvent::ClaimRefused {
                slot: 100 + i,
                reason: "BadToken".into(),
                technician: None,
                peer: format!("192.0.2.7:{}", 40000 + i),
            });
        }
        log.record(AuditEvent::ClaimRefused {
            slot: 1,
            reason: "BadToken".into(),
            technician: None,
            peer: "192.0.2.8:1".into(),
        });
        assert!(log.sync(Duration::from_secs(5), true));
        let text = read(&dir);
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let refused = events
            .iter()
            .filter(|e| e["event"] == "claim_refused")
            .count();
        assert_eq!(refused, 2, "{text}");
        let repeated: Vec<_> = events
            .iter()
            .filter(|e| e["event"] == "claims_refused_repeated")
            .collect();
        assert_eq!(repeated.len(), 1, "{text}");
        assert_eq!(repeated[0]["count"], 69);
        assert_eq!(repeated[0]["peer"], "192.0.2.7");
        assert_eq!(verify(&text).unwrap().records, 3);
    }

    /// `record` never waits on the disk or on another writer's lock (the operator's CLI holding it):
    /// the async handlers that call it stay free, and the record is written once the lock is free.
    #[test]
    fn record_never_waits_for_the_file_lock() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::spawn(dir.path(), Arc::default()).unwrap();
        let holder = File::options()
            .append(true)
            .open(dir.path().join(FILE))
            .unwrap();
        holder.lock().unwrap();
        // The holder lets go after 2 s (a writer that waited for it would take that long).
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            holder.unlock().unwrap();
        });
        let started = Instant::now();
        for i in 0..10 {
            log.record(added(i));
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "record waited {:?} for the lock",
            started.elapsed()
        );
        release.join().unwrap();
        assert!(log.sync(Duration::from_secs(5), false));
        assert_eq!(verify(&read(&dir)).unwrap().records, 10);
    }
}
