//! The fleet store: enrollment tokens, enrolled devices, their current inventory snapshot, every
//! report's changes, and a package index for search.
//!
//! [`Store`] is the interface the relay uses, so a PostgreSQL store can serve a relay cluster later;
//! [`SqliteStore`] is the embedded default (`fleet.sqlite3` in the data directory, WAL mode, so
//! `tether-relay enroll-token create` can write while the relay runs).
//!
//! Every ingest is one transaction: a rejected report leaves the store exactly as it was. Reports are
//! stored in order without gaps (`seq` = last + 1); a report is a duplicate only when it is the last
//! stored one with the same digest, and any other number is answered with [`Ingested::Resync`], so
//! nothing is acknowledged that the store does not hold (see `tether_proto::fleet`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use tether_proto::codec;
use tether_proto::fleet::{
    ChangeKind, ChangeRecord, DeviceRecord, DeviceSummary, FleetError, FleetErrorKind,
    MAX_CREDENTIAL_LEN, MAX_SEQ, Report, ReportBody, SearchHit,
};
use tether_proto::inventory::{DeltaError, Inventory, Package, PackageKey, PackageSource};

/// File name in the data directory.
pub const FILE: &str = "fleet.sqlite3";

/// What happened to a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Stored now.
    Stored,
    /// The same report (same number, same digest) was stored earlier; nothing changed.
    Duplicate,
    /// Not stored: the number does not follow the relay's last report (see
    /// [`tether_proto::fleet`]); the device must send a full report numbered `expected`.
    Resync {
        /// The last stored report's number + 1.
        expected: u64,
        /// Why (a `Seq*` kind).
        error: FleetError,
    },
}

/// A new enrollment token.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The token (shown once; only its hash is stored).
    pub token: String,
    /// Expiry, Unix seconds.
    pub expires_unix: u64,
    /// How many enrollments it allows.
    pub uses: u32,
}

/// The fleet store. Every method is short and synchronous; async callers run them on a blocking thread.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Creates an enrollment token for `org`, valid for `ttl_secs` and `uses` enrollments.
    fn create_token(
        &self,
        org: &str,
        ttl_secs: u64,
        uses: u32,
        now: u64,
    ) -> Result<NewToken, FleetError>;
    /// Enrolls a device with `token`; returns (device id, org).
    fn enroll(
        &self,
        token: &str,
        secret_sha256: &str,
        hostname: &str,
        now: u64,
    ) -> Result<(String, String), FleetError>;
    /// Checks a device's secret; returns its last stored report's sequence number.
    fn authenticate(&self, device_id: &str, secret: &str) -> Result<Option<u64>, FleetError>;
    /// Stores a report from `device_id` (already authenticated).
    fn ingest(&self, device_id: &str, report: &Report, now: u64) -> Result<Ingested, FleetError>;
    /// Devices of `org`.
    fn devices(&self, org: &str) -> Result<Vec<DeviceSummary>, FleetError>;
    /// One device of `org` by id or unique host name, with its snapshot.
    fn device(&self, org: &str, device: &str) -> Result<DeviceRecord, FleetError>;
    /// A device's changes, oldest first.
    fn history(&self, org: &str, device: &str) -> Result<Vec<ChangeRecord>, FleetError>;
    /// Devices of `org` with package `name` (and `version`).
    fn search(
        &self,
        org: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<SearchHit>, FleetError>;
    /// Number of stored reports for a device (for tests and operators).
    fn report_count(&self, device_id: &str) -> Result<u64, FleetError>;
}

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn db_err(e: impl std::fmt::Display) -> FleetError {
    tracing::error!(error = %e, "fleet store failed");
    FleetError::new(
        FleetErrorKind::StoreFailed,
        format!("the relay's fleet store failed: {e}"),
    )
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.trim().as_bytes()))
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS enroll_tokens (
    token_sha256 TEXT PRIMARY KEY, org TEXT NOT NULL, created_unix INTEGER NOT NULL,
    expires_unix INTEGER NOT NULL, uses_left INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY, org TEXT NOT NULL, secret_sha256 TEXT NOT NULL, hostname TEXT NOT NULL,
    os TEXT NOT NULL DEFAULT '', enrolled_unix INTEGER NOT NULL, first_seen_unix INTEGER,
    last_seen_unix INTEGER, last_seq INTEGER, snapshot BLOB, package_count INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS reports (
    device_id TEXT NOT NULL, seq INTEGER NOT NULL, at_unix INTEGER NOT NULL, kind TEXT NOT NULL,
    PRIMARY KEY (device_id, seq));
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, seq INTEGER NOT NULL,
    at_unix INTEGER NOT NULL, kind TEXT NOT NULL, item TEXT NOT NULL, old TEXT, new TEXT);
CREATE INDEX IF NOT EXISTS changes_device ON changes (device_id, id);
CREATE TABLE IF NOT EXISTS packages (
    device_id TEXT NOT NULL, source TEXT NOT NULL, name TEXT NOT NULL, arch TEXT NOT NULL,
    version TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS packages_name ON packages (name);
CREATE INDEX IF NOT EXISTS packages_device ON packages (device_id, source, name, arch);
";

impl SqliteStore {
    /// Opens (creating) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, FleetError> {
        Self::open_file(&data_dir.join(FILE))
    }

    /// Opens (creating) the store at `path`.
    pub fn open_file(path: &Path) -> Result<Self, FleetError> {
        let conn = Connection::open(path).map_err(db_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, FleetError>,
    ) -> Result<R, FleetError> {
        // A poisoned lock means a panic mid-call; SQLite rolled the transaction back, so the
        // connection is still consistent.
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }
}

fn check_len(what: &str, s: &str) -> Result<(), FleetError> {
    if s.is_empty() || s.len() > MAX_CREDENTIAL_LEN {
        return Err(FleetError::new(
            FleetErrorKind::Invalid,
            format!("{what} must be 1–{MAX_CREDENTIAL_LEN} bytes"),
        ));
    }
    Ok(())
}

/// Finds the device id for `device` (id or unique host name) within `org`.
fn resolve(c: &Connection, org: &str, device: &str) -> Result<String, FleetError> {
    let by_id: Option<String> = c
        .query_row(
            "SELECT id FROM devices WHERE org = ?1 AND id = ?2",
            params![org, device],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    if let Some(id) = by_id {
        return Ok(id);
    }
    let mut st = c
        .prepare("SELECT id FROM devices WHERE org = ?1 AND hostname = ?2")
        .map_err(db_err)?;
    let ids: Vec<String> = st
        .query_map(params![org, device], |r| r.get(0))
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(FleetError::new(
            FleetErrorKind::UnknownDevice,
            format!("no device {device:?} in your organisation"),
        )),
        _ => Err(FleetError::new(
            FleetErrorKind::UnknownDevice,
            format!(
                "{} devices are named {device:?}; use a device id: {}",
                ids.len(),
                ids.join(", ")
            ),
        )),
    }
}

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceSummary> {
    Ok(DeviceSummary {
        device_id: r.get(0)?,
        org: r.get(1)?,
        hostname: r.get(2)?,
        os: r.get(3)?,
        enrolled_unix: r.get::<_, i64>(4)? as u64,
        first_seen_unix: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
        last_seen_unix: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
        last_seq: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
        packages: r.get::<_, i64>(8)? as u32,
    })
}

const SUMMARY_COLS: &str = "id, org, hostname, os, enrolled_unix, first_seen_unix, last_seen_unix, last_seq, package_count";

fn key_name(k: &PackageKey) -> String {
    if k.arch.is_empty() {
        format!("{}:{}", k.source, k.name)
    } else {
        format!("{}:{}:{}", k.source, k.name, k.arch)
    }
}

fn source_from(s: &str) -> PackageSource {
    match s {
        "rpm" => PackageSource::Rpm,
        "flatpak" => PackageSource::Flatpak,
        "snap" => PackageSource::Snap,
        "windows-registry" => PackageSource::WindowsRegistry,
        "macos-apps" => PackageSource::MacApps,
        _ => PackageSource::Dpkg,
    }
}

/// Flattens a JSON value into `path = value` pairs; array items are named by their `name`,
/// `connector` or `locator` field when they have one, so reordering is not a change.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let label = ["name", "connector", "locator"]
                    .iter()
                    .find_map(|k| v.get(k).and_then(|x| x.as_str()).map(str::to_string))
                    .unwrap_or_else(|| match v {
                        serde_json::Value::String(s) => s.clone(),
                        _ => i.to_string(),
                    });
                flatten(&format!("{prefix}[{label}]"), v, out);
            }
        }
        serde_json::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The changes from `old` to `new`: packages installed, upgraded, removed; hardware facts changed.
pub fn changes(
    old: &Inventory,
    new: &Inventory,
) -> Vec<(ChangeKind, String, Option<String>, Option<String>)> {
    let mut out = Vec::new();
    let o: BTreeMap<PackageKey, &Package> =
        old.software.packages.iter().map(|p| (p.key(), p)).collect();
    let n: BTreeMap<PackageKey, &Package> =
        new.software.packages.iter().map(|p| (p.key(), p)).collect();
    for (k, p) in &n {
        match o.get(k) {
            None => out.push((
                ChangeKind::Installed,
                key_name(k),
                None,
                Some(p.version.clone()),
            )),
            Some(q) if q.version != p.version => out.push((
                ChangeKind::Upgraded,
                key_name(k),
                Some(q.version.clone()),
                Some(p.version.clone()),
            )),
            Some(_) => {}
        }
    }
    for (k, q) in &o {
        if !n.contains_key(k) {
            out.push((
                ChangeKind::Removed,
                key_name(k),
                Some(q.version.clone()),
                None,
            ));
        }
    }
    if old.hardware != new.hardware {
        let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
        if let (Ok(x), Ok(y)) = (
            serde_json::to_value(&old.hardware),
            serde_json::to_value(&new.hardware),
        ) {
            flatten("", &x, &mut a);
            flatten("", &y, &mut b);
        }
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for k in keys {
            let (x, y) = (a.get(k), b.get(k));
            if x != y {
                out.push((ChangeKind::Hardware, k.clone(), x.cloned(), y.cloned()));
            }
        }
    }
    out
}

/// The device's last stored report number. A stored number outside `0..=MAX_SEQ` can only come from
/// a crafted report an older relay accepted (it wrapped negative in SQLite); the device then continues
/// after its last valid report instead of being stuck behind it for good.
fn last_valid_seq(
    c: &Connection,
    device_id: &str,
    stored: Option<i64>,
) -> Result<Option<u64>, FleetError> {
    match stored {
        None => Ok(None),
        Some(v) if v > 0 => Ok(Some(v as u64)),
        Some(_) => c
            .query_row(
                "SELECT MAX(seq) FROM reports WHERE device_id = ?1 AND seq > 0",
                params![device_id],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|v| v.map(|v| v as u64))
            .map_err(db_err),
    }
}

fn reject(kind: FleetErrorKind, msg: impl Into<String>) -> FleetError {
    FleetError::new(kind, msg)
}

impl Store for SqliteStore {
    fn create_token(
        &self,
        org: &str,
        ttl_secs: u64,
        uses: u32,
        now: u64,
    ) -> Result<NewToken, FleetError> {
        if org.trim().is_empty() || org.len() > 64 || org.chars().any(tether_proto::text::is_hidden)
        {
            return Err(reject(
                FleetErrorKind::Invalid,
                "org must be 1–64 printable characters",
            ));
        }
        if uses == 0 {
            return Err(reject(FleetErrorKind::Invalid, "--uses must be at least 1"));
        }
        let token = format!("et_{}", random_hex(24));
        let expires_unix = now.saturating_add(ttl_secs);
        self.with(|c| {
            c.execute(
                "INSERT INTO enroll_tokens VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    sha256_hex(&token),
                    org,
                    now as i64,
                    expires_unix.min(i64::MAX as u64) as i64,
                    i64::from(uses)
                ],
            )
            .map_err(db_err)
        })?;
        Ok(NewToken {
            token,
            expires_unix,
            uses,
        })
    }

    fn enroll(
        &self,
        token: &str,
        secret_sha256: &str,
        hostname: &str,
        now: u64,
    ) -> Result<(String, String), FleetError> {
        check_len("the enrollment token", token)?;
        if secret_sha256.len() != 64 || !secret_sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(reject(
                FleetErrorKind::Invalid,
                "the device secret hash must be 64 hex digits",
            ));
        }
        let hostname: String = hostname
            .chars()
            .filter(|c| !tether_proto::text::is_hidden(*c))
            .take(255)
            .collect();
        self.with(|c| {
            let tx = c.transaction().map_err(db_err)?;
            let row: Option<(String, i64, i64)> = tx
                .query_row(
                    "SELECT org, expires_unix, uses_left FROM enroll_tokens WHERE token_sha256 = ?1",
                    params![sha256_hex(token)],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(db_err)?;
            let Some((org, expires, uses_left)) = row else {
                return Err(reject(
                    FleetErrorKind::UnknownToken,
                    "this enrollment token is not known to the relay (mistyped, or from another relay)",
                ));
            };
            if (expires as u64) <= now {
                return Err(reject(
                    FleetErrorKind::TokenExpired,
                    "this enrollment token has expired; ask IT for a new one",
                ));
            }
            if uses_left <= 0 {
                return Err(reject(
                    FleetErrorKind::TokenUsed,
                    "this enrollment token has already been used; ask IT for a new one",
                ));
            }
            tx.execute(
                "UPDATE enroll_tokens SET uses_left = uses_left - 1 WHERE token_sha256 = ?1",
                params![sha256_hex(token)],
            )
            .map_err(db_err)?;
            let id = format!("dev_{}", random_hex(8));
            tx.execute(
                "INSERT INTO devices (id, org, secret_sha256, hostname, enrolled_unix) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, org, secret_sha256.to_ascii_lowercase(), hostname, now as i64],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok((id, org))
        })
    }

    fn authenticate(&self, device_id: &str, secret: &str) -> Result<Option<u64>, FleetError> {
        check_len("the device id", device_id)?;
        check_len("the device secret", secret)?;
        self.with(|c| {
            let row: Option<(String, Option<i64>)> = c
                .query_row(
                    "SELECT secret_sha256, last_seq FROM devices WHERE id = ?1",
                    params![device_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db_err)?;
            match row {
                Some((h, last)) if h == sha256_hex(secret) => last_valid_seq(c, device_id, last),
                _ => Err(reject(
                    FleetErrorKind::BadDeviceCredentials,
                    "unknown device or wrong device secret; enroll this device again",
                )),
            }
        })
    }

    fn ingest(&self, device_id: &str, report: &Report, now: u64) -> Result<Ingested, FleetError> {
        if report.device_id != device_id {
            return Err(reject(
                FleetErrorKind::WrongDevice,
                format!(
                    "this connection is device {device_id}; it cannot report for {}",
                    report.device_id
                ),
            ));
        }
        self.with(|c| {
            let tx = c.transaction().map_err(db_err)?;
            let (stored_last, snapshot): (Option<i64>, Option<Vec<u8>>) = tx
                .query_row(
                    "SELECT last_seq, snapshot FROM devices WHERE id = ?1",
                    params![device_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(db_err)?;
            let last_seq = last_valid_seq(&tx, device_id, stored_last)?;
            let expected = last_seq.map_or(1, |l| l.saturating_add(1));
            let prev: Option<Inventory> = match snapshot {
                Some(b) => Some(codec::from_body(&b).map_err(db_err)?),
                None => None,
            };
            let resync = |kind, message: String| Ok(Ingested::Resync {
                expected,
                error: reject(kind, message),
            });
            if report.seq == 0 || report.seq > MAX_SEQ {
                return resync(
                    FleetErrorKind::SeqOutOfRange,
                    format!("report number {} is outside 1–{MAX_SEQ}; the relay expects {expected}", report.seq),
                );
            }
            if Some(report.seq) == last_seq {
                // A resend after a lost ack is the same report; anything else under this number is
                // not stored, and acknowledging it would let the device delete it.
                if prev.as_ref().map(Inventory::digest).as_deref() == Some(report.digest.as_str()) {
                    return Ok(Ingested::Duplicate);
                }
                return resync(
                    FleetErrorKind::SeqConflict,
                    format!("the relay holds a different report {}; send the newest inventory as report {expected}", report.seq),
                );
            }
            if let Some(l) = last_seq.filter(|l| report.seq < *l) {
                return resync(
                    FleetErrorKind::SeqConflict,
                    format!(
                        "the relay already has reports up to {l}, so report {} is behind (a restored data directory?); send the newest inventory as report {expected}",
                        report.seq
                    ),
                );
            }
            let (next, kind) = match &report.body {
                ReportBody::Full(inv) => {
                    if inv.digest() != report.digest {
                        return Err(reject(
                            FleetErrorKind::DigestMismatch,
                            "the report's inventory does not match its digest (corrupted or tampered)",
                        ));
                    }
                    ((**inv).clone(), "full")
                }
                ReportBody::Delta { base_seq, delta } => {
                    let Some(base) = prev.as_ref().filter(|_| last_seq == Some(*base_seq)) else {
                        return Err(reject(
                            FleetErrorKind::BaseMismatch,
                            format!(
                                "this delta applies to report {base_seq}, but the relay's last report is {}; send a full report",
                                last_seq.map_or("none".to_string(), |s| s.to_string())
                            ),
                        ));
                    };
                    let next = base.apply_checked(delta, &report.digest).map_err(|e| match e {
                        DeltaError::DigestMismatch => reject(
                            FleetErrorKind::DigestMismatch,
                            "the inventory after this delta does not match its digest (corrupted or tampered)",
                        ),
                        DeltaError::RemovesMissing(_) => reject(FleetErrorKind::BaseMismatch, e.to_string()),
                    })?;
                    (next, "delta")
                }
            };
            if report.seq != expected {
                return resync(
                    FleetErrorKind::SeqGap,
                    format!("report {} skips ahead: the relay's last report is {}; send it as report {expected}", report.seq, last_seq.map_or("none".to_string(), |s| s.to_string())),
                );
            }
            let changes = match &prev {
                None => vec![(ChangeKind::FirstReport, "inventory".to_string(), None, Some(format!("{} packages", next.software.packages.len())))],
                Some(p) => changes(p, &next),
            };
            let body = codec::to_body(&next).map_err(db_err)?;
            let os = format!("{} {}", next.hardware.system.os_name, next.hardware.system.os_version);
            tx.execute(
                "UPDATE devices SET last_seq = ?2, snapshot = ?3, hostname = ?4, os = ?5, package_count = ?6,
                 first_seen_unix = COALESCE(first_seen_unix, ?7), last_seen_unix = ?7 WHERE id = ?1",
                params![device_id, report.seq as i64, body, next.hardware.system.hostname, os.trim(),
                        next.software.packages.len() as i64, now as i64],
            )
            .map_err(db_err)?;
            tx.execute(
                "INSERT INTO reports VALUES (?1, ?2, ?3, ?4)",
                params![device_id, report.seq as i64, now as i64, kind],
            )
            .map_err(db_err)?;
            {
                let mut ins = tx
                    .prepare_cached("INSERT INTO changes (device_id, seq, at_unix, kind, item, old, new) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
                    .map_err(db_err)?;
                for (k, item, old, new) in &changes {
                    ins.execute(params![device_id, report.seq as i64, now as i64, k.name(), item, old, new])
                        .map_err(db_err)?;
                }
                match (&report.body, prev.is_some()) {
                    // A delta touches only the packages it names.
                    (ReportBody::Delta { delta, .. }, true) => {
                        let mut del = tx
                            .prepare_cached("DELETE FROM packages WHERE device_id = ?1 AND source = ?2 AND name = ?3 AND arch = ?4")
                            .map_err(db_err)?;
                        let keys = delta.removed.iter().cloned().chain(delta.upserted.iter().map(Package::key));
                        for k in keys {
                            del.execute(params![device_id, k.source.name(), k.name, k.arch]).map_err(db_err)?;
                        }
                        let mut ins = tx
                            .prepare_cached("INSERT INTO packages VALUES (?1, ?2, ?3, ?4, ?5)")
                            .map_err(db_err)?;
                        for p in &delta.upserted {
                            ins.execute(params![device_id, p.source.name(), p.name, p.arch, p.version])
                                .map_err(db_err)?;
                        }
                    }
                    _ => {
                        tx.execute("DELETE FROM packages WHERE device_id = ?1", params![device_id])
                            .map_err(db_err)?;
                        let mut ins = tx
                            .prepare_cached("INSERT INTO packages VALUES (?1, ?2, ?3, ?4, ?5)")
                            .map_err(db_err)?;
                        for p in &next.software.packages {
                            ins.execute(params![device_id, p.source.name(), p.name, p.arch, p.version])
                                .map_err(db_err)?;
                        }
                    }
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(Ingested::Stored)
        })
    }

    fn devices(&self, org: &str) -> Result<Vec<DeviceSummary>, FleetError> {
        self.with(|c| {
            let mut st = c
                .prepare(&format!(
                    "SELECT {SUMMARY_COLS} FROM devices WHERE org = ?1 ORDER BY hostname, id"
                ))
                .map_err(db_err)?;
            let rows = st
                .query_map(params![org], summary_row)
                .map_err(db_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            Ok(rows)
        })
    }

    fn device(&self, org: &str, device: &str) -> Result<DeviceRecord, FleetError> {
        self.with(|c| {
            let id = resolve(c, org, device)?;
            let (summary, snapshot): (DeviceSummary, Option<Vec<u8>>) = c
                .query_row(
                    &format!("SELECT {SUMMARY_COLS}, snapshot FROM devices WHERE id = ?1"),
                    params![id],
                    |r| Ok((summary_row(r)?, r.get(9)?)),
                )
                .map_err(db_err)?;
            let inventory = match snapshot {
                Some(b) => Some(codec::from_body(&b).map_err(db_err)?),
                None => None,
            };
            Ok(DeviceRecord { summary, inventory })
        })
    }

    fn history(&self, org: &str, device: &str) -> Result<Vec<ChangeRecord>, FleetError> {
        self.with(|c| {
            let id = resolve(c, org, device)?;
            let mut st = c
                .prepare("SELECT seq, at_unix, kind, item, old, new FROM changes WHERE device_id = ?1 ORDER BY id")
                .map_err(db_err)?;
            let rows = st
                .query_map(params![id], |r| {
                    let kind: String = r.get(2)?;
                    Ok(ChangeRecord {
                        device_id: id.clone(),
                        seq: r.get::<_, i64>(0)? as u64,
                        at_unix: r.get::<_, i64>(1)? as u64,
                        kind: match kind.as_str() {
                            "first-report" => ChangeKind::FirstReport,
                            "installed" => ChangeKind::Installed,
                            "upgraded" => ChangeKind::Upgraded,
                            "removed" => ChangeKind::Removed,
                            _ => ChangeKind::Hardware,
                        },
                        item: r.get(3)?,
                        old: r.get(4)?,
                        new: r.get(5)?,
                    })
                })
                .map_err(db_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            Ok(rows)
        })
    }

    fn search(
        &self,
        org: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<SearchHit>, FleetError> {
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT d.id, d.hostname, p.source, p.name, p.arch, p.version FROM packages p
                     JOIN devices d ON d.id = p.device_id
                     WHERE d.org = ?1 AND p.name = ?2 AND (?3 IS NULL OR p.version = ?3)
                     ORDER BY d.hostname, d.id, p.source, p.arch",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map(params![org, name, version], |r| {
                    let source: String = r.get(2)?;
                    Ok(SearchHit {
                        device_id: r.get(0)?,
                        hostname: r.get(1)?,
                        package: Package {
                            source: source_from(&source),
                            name: r.get(3)?,
                            arch: r.get(4)?,
                            version: r.get(5)?,
                        },
                    })
                })
                .map_err(db_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            Ok(rows)
        })
    }

    fn report_count(&self, device_id: &str) -> Result<u64, FleetError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM reports WHERE device_id = ?1",
                params![device_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db_err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::inventory::{
        Cpu, Disk, DiskKind, Dmi, Fact, Hardware, Memory, ModuleListing, Software, SourceState,
        Status, SystemFacts,
    };

    fn inventory(host: &str, packages: usize) -> Inventory {
        let u = || Fact::Unavailable;
        Inventory {
            collected_unix: 1,
            hardware: Hardware {
                system: SystemFacts {
                    hostname: host.into(),
                    os_name: "Debian GNU/Linux".into(),
                    os_version: "12 (bookworm)".into(),
                    kernel: "6.1.0-18-amd64".into(),
                    arch: "x86_64".into(),
                },
                cpu: Cpu {
                    model: "AMD EPYC".into(),
                    vendor: "AuthenticAMD".into(),
                    sockets: 1,
                    cores: 8,
                    threads: 16,
                    max_mhz: Some(3000),
                    current_mhz: None,
                },
                memory: Memory {
                    total: 32 << 30,
                    swap_total: 0,
                    modules: ModuleListing::NeedsRoot,
                },
                disks: vec![],
                interfaces: vec![],
                gpus: vec![],
                displays: vec![],
                batteries: vec![],
                dmi: Dmi {
                    system_vendor: u(),
                    system_model: u(),
                    system_serial: Fact::NeedsRoot,
                    system_uuid: Fact::NeedsRoot,
                    bios_vendor: u(),
                    bios_version: u(),
                    bios_date: u(),
                    board_vendor: u(),
                    board_model: u(),
                    board_serial: Fact::NeedsRoot,
                },
            },
            status: Status {
                uptime_secs: 100,
                boot_unix: 0,
                users: vec![],
                memory_available: 1 << 30,
                swap_free: 0,
                filesystems: vec![],
                battery_percent: vec![],
            },
            software: Software {
                sources: vec![(PackageSource::Dpkg, SourceState::Read)],
                packages: (0..packages)
                    .map(|i| Package {
                        source: PackageSource::Dpkg,
                        name: format!("package-{i:04}"),
                        arch: "amd64".into(),
                        version: format!("1.{i}-1"),
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn hardware_and_package_changes_are_named() {
        let old = inventory("h", 5);
        let mut new = old.clone();
        new.hardware.memory.total *= 2;
        new.hardware.disks.push(Disk {
            name: "sdb".into(),
            model: Fact::Value("Disk 2".into()),
            serial: Fact::NeedsRoot,
            size: 1 << 40,
            kind: DiskKind::Ssd,
            removable: false,
            partitions: vec![],
        });
        new.software.packages.remove(0);
        new.software.packages[0].version = "9".into();
        let c = changes(&old, &new);
        let find = |k: ChangeKind, item: &str| c.iter().find(|x| x.0 == k && x.1 == item).cloned();
        let mem = find(ChangeKind::Hardware, "memory.total").unwrap();
        assert_eq!(mem.2, Some((32u64 << 30).to_string()));
        assert_eq!(mem.3, Some((64u64 << 30).to_string()));
        assert!(
            find(ChangeKind::Hardware, "disks[sdb].size").is_some(),
            "{c:?}"
        );
        assert!(find(ChangeKind::Removed, "dpkg:package-0000:amd64").is_some());
        let up = find(ChangeKind::Upgraded, "dpkg:package-0001:amd64").unwrap();
        assert_eq!(
            (up.2.as_deref(), up.3.as_deref()),
            (Some("1.1-1"), Some("9"))
        );
        // Status-only differences are not changes.
        let mut same = old.clone();
        same.status.uptime_secs += 5;
        assert!(changes(&old, &same).is_empty());
    }

    #[test]
    fn token_uses_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let t = s.create_token("Acme", 100, 1, 1000).unwrap();
        let h = "ab".repeat(32);
        assert_eq!(
            s.enroll(&t.token, &h, "x", 1200).unwrap_err().kind,
            FleetErrorKind::TokenExpired
        );
        s.enroll(&t.token, &h, "x", 1050).unwrap();
        assert_eq!(
            s.enroll(&t.token, &h, "x", 1050).unwrap_err().kind,
            FleetErrorKind::TokenUsed
        );
        assert_eq!(
            s.enroll("et_x", &h, "x", 1050).unwrap_err().kind,
            FleetErrorKind::UnknownToken
        );
        // Only the hash is stored.
        for f in [FILE.to_string(), format!("{FILE}-wal")] {
            let raw = std::fs::read(dir.path().join(f)).unwrap_or_default();
            assert!(!raw.windows(t.token.len()).any(|w| w == t.token.as_bytes()));
        }
        assert_eq!(
            s.create_token("Acme", 100, 0, 1).unwrap_err().kind,
            FleetErrorKind::Invalid
        );
    }

    fn full(device: &str, seq: u64, inv: &Inventory) -> Report {
        Report {
            device_id: device.into(),
            seq,
            digest: inv.digest(),
            body: ReportBody::Full(Box::new(inv.clone())),
        }
    }

    fn expected(r: Result<Ingested, FleetError>) -> (u64, FleetErrorKind) {
        match r {
            Ok(Ingested::Resync { expected, error }) => (expected, error.kind),
            other => panic!("expected a resync, got {other:?}"),
        }
    }

    /// Only `last + 1` is stored, only the same report under `last` is a duplicate, and a device that an
    /// older relay let poison its number (2^63 stored as a negative integer) continues after its last
    /// valid report instead of being stuck behind it.
    #[test]
    fn sequence_numbers_follow_the_last_stored_report() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let t = s.create_token("Acme", 100, 1, 1000).unwrap();
        let (id, _) = s.enroll(&t.token, &"ab".repeat(32), "h", 1000).unwrap();
        let (a, b) = (inventory("h", 1), inventory("h", 2));
        assert_eq!(
            expected(s.ingest(&id, &full(&id, 2, &a), 1)),
            (1, FleetErrorKind::SeqGap)
        );
        assert_eq!(s.ingest(&id, &full(&id, 1, &a), 1), Ok(Ingested::Stored));
        assert_eq!(s.ingest(&id, &full(&id, 1, &a), 1), Ok(Ingested::Duplicate));
        assert_eq!(
            expected(s.ingest(&id, &full(&id, 1, &b), 1)),
            (2, FleetErrorKind::SeqConflict)
        );
        for bad in [0, MAX_SEQ + 1, u64::MAX] {
            assert_eq!(
                expected(s.ingest(&id, &full(&id, bad, &b), 1)),
                (2, FleetErrorKind::SeqOutOfRange)
            );
        }
        assert_eq!(s.report_count(&id).unwrap(), 1);
        // What an older relay stored for a crafted 2^63.
        s.with(|c| {
            c.execute(
                "UPDATE devices SET last_seq = ?2 WHERE id = ?1",
                params![id, i64::MIN],
            )
            .map_err(db_err)
        })
        .unwrap();
        assert_eq!(s.ingest(&id, &full(&id, 2, &b), 1), Ok(Ingested::Stored));
        assert_eq!(s.devices("Acme").unwrap()[0].last_seq, Some(2));
    }
}
