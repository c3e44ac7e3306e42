//! The relay's tamper-evident audit log: one JSON object per line in `audit.jsonl`.
//!
//! Every record carries `seq` (1, 2, 3, ...) and `prev`, the SHA-256 of the previous line exactly as
//! stored (64 zeros for the first). Editing a record breaks the next record's `prev`; deleting or
//! reordering records breaks `seq`. [`verify`] says which record is wrong. The relay and the
//! `tether-relay technician ...` commands may append at the same time, so each append holds an
//! exclusive file lock while it reads the last record and writes the next.
//!
//! Records facts only: who, which slot, what was granted, how long, how many bytes. Never a full code,
//! a key, a keystroke or a pixel — the relay never has those anyway.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// File name in the data directory.
pub const FILE: &str = "audit.jsonl";

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest record we expect; the tail read looks this far back for the last line.
const MAX_RECORD: u64 = 64 * 1024;

/// One audit event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A technician claimed a slot, the agent accepted, and the session was spliced.
    SessionStarted {
        /// Session id (relay-local).
        session: u64,
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
    /// A claim was refused (by the relay, or declined by the agent).
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
        session: u64,
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
        session: u64,
        /// Seconds it lasted.
        duration_secs: f64,
        /// Bytes copied console → agent.
        bytes_to_agent: u64,
        /// Bytes copied agent → console.
        bytes_to_console: u64,
        /// Why it ended.
        reason: String,
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
    /// The user let a session's technician invite a colleague; the relay issued a ticket.
    Invited {
        /// The session invited into.
        session: u64,
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
        session: u64,
        /// The session they were invited into.
        parent: u64,
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
        record: u64,
        /// Technician name.
        technician: String,
        /// Technician org.
        org: String,
        /// What changed (e.g. `note problem,fix`, `close`, `probes 3`).
        change: String,
    },
}

#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    ts_unix_ms: u64,
    prev: &'a str,
    #[serde(flatten)]
    event: &'a AuditEvent,
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
}

/// Append-only, hash-chained audit log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl AuditLog {
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
        Ok(AuditLog {
            path,
            file: Mutex::new(file),
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event. A write failure is logged, not fatal: losing the relay over a full disk would
    /// end every session.
    pub fn record(&self, event: AuditEvent) {
        if let Err(e) = self.try_record(&event) {
            tracing::error!(error = %e, "audit write failed");
        }
    }

    /// Appends one event, returning any error.
    pub fn try_record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.lock().map_err(io)?;
        let result = (|| {
            let (seq, prev) = tail(&mut f)
                .map_err(io)?
                .ok_or_else(|| AuditError::BrokenTail(self.path.clone()))?;
            let ts_unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let line = Line {
                seq: seq + 1,
                ts_unix_ms,
                prev: &prev,
                event,
            };
            let mut bytes = serde_json::to_vec(&line).map_err(|e| io(std::io::Error::other(e)))?;
            bytes.push(b'\n');
            f.write_all(&bytes).map_err(io)
        })();
        let _ = f.unlock();
        result
    }
}

/// The last record's `seq` and hash; `(0, GENESIS)` for an empty log; `None` if the tail is unreadable.
fn tail(f: &mut std::fs::File) -> std::io::Result<Option<(u64, String)>> {
    let len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(Some((0, GENESIS.to_string())));
    }
    let start = len.saturating_sub(MAX_RECORD);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    f.read_to_end(&mut buf)?;
    let trimmed = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let last = trimmed.rsplit(|b| *b == b'\n').next().unwrap_or(trimmed);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(last) else {
        return Ok(None);
    };
    Ok(v["seq"].as_u64().map(|seq| (seq, sha256_hex(last))))
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
}

/// Checks the whole chain; `Ok(n)` with the number of records when intact.
pub fn verify(text: &str) -> Result<usize, ChainError> {
    let mut prev_hash = GENESIS.to_string();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
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
        prev_hash = sha256_hex(line.as_bytes());
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: usize) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for i in 0..n {
            log.record(AuditEvent::TechnicianAdded {
                technician: format!("t{i}"),
                org: "Acme".into(),
                role: "technician".into(),
            });
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        (dir, text)
    }

    #[test]
    fn an_intact_chain_verifies_and_continues_across_reopen() {
        let (dir, text) = log_with(3);
        assert_eq!(verify(&text), Ok(3));
        let log = AuditLog::open(dir.path()).unwrap();
        log.record(AuditEvent::TechnicianRevoked {
            technician: "t0".into(),
            org: "Acme".into(),
        });
        assert_eq!(verify(&std::fs::read_to_string(log.path()).unwrap()), Ok(4));
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

        let deleted = [lines[0], lines[1], lines[3]].join("\n");
        assert_eq!(
            verify(&deleted),
            Err(ChainError::Sequence {
                line: 3,
                found: 4,
                expected: 3
            })
        );

        let reordered = [lines[0], lines[2], lines[1], lines[3]].join("\n");
        assert_eq!(
            verify(&reordered),
            Err(ChainError::Sequence {
                line: 2,
                found: 3,
                expected: 2
            })
        );

        let garbage = [lines[0], "not json", lines[2]].join("\n");
        assert_eq!(verify(&garbage), Err(ChainError::Unreadable { line: 2 }));

        // Rewriting one record's seq to hide a deletion still breaks the hash chain.
        let renumbered = [
            lines[0],
            lines[1],
            &lines[3].replace("\"seq\":4", "\"seq\":3"),
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
        let a = AuditLog::open(dir.path()).unwrap();
        let b = AuditLog::open(dir.path()).unwrap();
        std::thread::scope(|s| {
            for log in [&a, &b] {
                s.spawn(move || {
                    for i in 0..50 {
                        log.record(AuditEvent::TechnicianRevoked {
                            technician: format!("{i}"),
                            org: "o".into(),
                        });
                    }
                });
            }
        });
        assert_eq!(verify(&std::fs::read_to_string(a.path()).unwrap()), Ok(100));
    }
}
