//! The relay's audit log: one JSON object per line in `audit.jsonl` in the data directory.
//!
//! Records facts only: who, which slot, what was granted, how long, how many bytes. Never a full code,
//! a key, a keystroke or a pixel — the relay never has those anyway.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// File name in the data directory.
pub const FILE: &str = "audit.jsonl";

/// One audit event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A technician claimed a slot and the session was spliced.
    SessionStarted {
        /// Session id (relay-local).
        session: u64,
        /// Slot claimed.
        slot: u32,
        /// Technician name.
        technician: String,
        /// Technician org.
        org: String,
        /// Console's address.
        peer: String,
    },
    /// A claim was refused.
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
}

#[derive(Serialize)]
struct Line<'a> {
    ts_unix_ms: u128,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

/// Append-only audit log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl AuditLog {
    /// Opens (creating) the log in `data_dir`.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(AuditLog {
            path,
            file: Mutex::new(file),
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event. A write failure is logged, not fatal: losing the relay over a full disk
    /// would end every session.
    pub fn record(&self, event: AuditEvent) {
        let ts_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let Ok(mut line) = serde_json::to_vec(&Line {
            ts_unix_ms,
            event: &event,
        }) else {
            return;
        };
        line.push(b'\n');
        match self.file.lock() {
            Ok(mut f) => {
                if let Err(e) = f.write_all(&line) {
                    tracing::error!(error = %e, path = %self.path.display(), "audit write failed");
                }
            }
            Err(_) => tracing::error!("audit log lock poisoned"),
        }
    }
}
