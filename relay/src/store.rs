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

use std::path::Path;
use std::sync::Mutex;

use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use tether_proto::codec;
use tether_proto::fleet::{
    ChangeKind, ChangeRecord, DeviceRecord, DeviceSummary, FleetError, FleetErrorKind,
    MAX_CREDENTIAL_LEN, Report, SearchHit,
};
use tether_proto::inventory::{Package, PackageSource};
use tether_proto::org::{PublicKey, SignedPolicy};

use crate::ingest::{self, Commit, Head, PackageUpdate, Plan};

pub use crate::ingest::changes;

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
    /// Enrolls a device with `token` and the public half of its device key; returns (device id,
    /// org).
    fn enroll(
        &self,
        token: &str,
        secret_sha256: &str,
        hostname: &str,
        device_key: &PublicKey,
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
    /// Every enrollment token, newest first, used-up and expired ones included; `id` is the
    /// token's whole SHA-256 (the token itself is never stored).
    fn tokens(&self) -> Result<Vec<TokenInfo>, FleetError>;
    /// Deletes the enrollment tokens whose SHA-256 starts with `id_prefix` (hex digits only).
    fn delete_token(&self, id_prefix: &str) -> Result<(), FleetError>;
    /// The enrolled devices of `org` (every organisation when `None`), by organisation and host
    /// name.
    fn device_list(&self, org: Option<&str>) -> Result<Vec<DeviceInfo>, FleetError>;
    /// Removes device `device_id` with its reports, changes and package index.
    fn remove_device(&self, device_id: &str) -> Result<(), FleetError>;
    /// Stores `policy` as `org`'s unattended policy (see [`check_new_policy`]).
    fn set_policy(&self, org: &str, policy: &SignedPolicy) -> Result<(), FleetError>;
    /// `org`'s unattended policy, if IT set one.
    fn policy(&self, org: &str) -> Result<Option<SignedPolicy>, FleetError>;
    /// The unattended policy of the organisation device `device_id` belongs to.
    fn device_policy(&self, device_id: &str) -> Result<Option<SignedPolicy>, FleetError>;
}

/// A policy the relay may store for `org`: one naming that organisation, newer than the one it
/// holds (devices would ignore an older one anyway, so storing it would only mislead IT). The relay
/// cannot check the signature (it has no org key); every device does.
pub(crate) fn check_new_policy(
    org: &str,
    policy: &SignedPolicy,
    held: Option<&SignedPolicy>,
) -> Result<(), FleetError> {
    if policy.policy.org != org {
        return Err(reject(
            FleetErrorKind::Invalid,
            format!(
                "this policy is for {:?}, not for {org:?}",
                policy.policy.org
            ),
        ));
    }
    if let Some(held) = held
        && !policy.replaces(&held.policy)
    {
        return Err(reject(
            FleetErrorKind::Invalid,
            format!(
                "the relay holds version {} of {org:?}'s policy; devices take only a newer one (sign it with a higher --version)",
                held.policy.version
            ),
        ));
    }
    Ok(())
}

/// Checks an enrollment's token and secret hash; the host name as stored (hidden characters
/// dropped, at most 255).
pub(crate) fn check_enrollment(
    token: &str,
    secret_sha256: &str,
    hostname: &str,
) -> Result<String, FleetError> {
    check_len("the enrollment token", token)?;
    if secret_sha256.len() != 64 || !secret_sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(reject(
            FleetErrorKind::Invalid,
            "the device secret hash must be 64 hex digits",
        ));
    }
    Ok(hostname
        .chars()
        .filter(|c| !tether_proto::text::is_hidden(*c))
        .take(255)
        .collect())
}

pub(crate) fn policy_body(policy: &SignedPolicy) -> Result<Vec<u8>, FleetError> {
    codec::to_body(policy).map_err(db_err)
}

pub(crate) fn policy_from(body: Option<Vec<u8>>) -> Result<Option<SignedPolicy>, FleetError> {
    body.map(|b| codec::from_body(&b).map_err(db_err))
        .transpose()
}

/// One enrollment token, as an operator sees it (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    /// The start of the token's SHA-256: enough to name it for `revoke`.
    pub id: String,
    /// Organisation its devices join.
    pub org: String,
    /// Created, Unix seconds.
    pub created_unix: u64,
    /// Expires, Unix seconds.
    pub expires_unix: u64,
    /// Enrollments left.
    pub uses_left: u32,
}

/// One enrolled device, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// Device id.
    pub id: String,
    /// Organisation.
    pub org: String,
    /// Host name.
    pub hostname: String,
    /// Last report, Unix seconds.
    pub last_seen_unix: Option<u64>,
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

pub(crate) fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.trim().as_bytes()))
}

pub(crate) fn random_hex(n: usize) -> String {
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
    last_seen_unix INTEGER, last_seq INTEGER, snapshot BLOB, package_count INTEGER NOT NULL DEFAULT 0,
    device_key TEXT);
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
CREATE TABLE IF NOT EXISTS policies (org TEXT PRIMARY KEY, version INTEGER NOT NULL, body BLOB NOT NULL);
";

/// A store made before device keys has no `device_key` column: add it (its devices keep `NULL`, and
/// a session without a code is refused for them until they enroll again).
fn add_device_key_column(conn: &Connection) -> Result<(), FleetError> {
    let has: bool = conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('devices') WHERE name = 'device_key'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db_err)?
        > 0;
    if !has {
        conn.execute_batch("ALTER TABLE devices ADD COLUMN device_key TEXT")
            .map_err(db_err)?;
    }
    Ok(())
}

const POLICY_OF_ORG: &str = "SELECT body FROM policies WHERE org = ?1";
const POLICY_OF_DEVICE: &str =
    "SELECT p.body FROM policies p JOIN devices d ON d.org = p.org WHERE d.id = ?1";

/// The policy `sql` selects for `key` (one row of `body`, or none).
fn one_policy(c: &Connection, sql: &str, key: &str) -> Result<Option<SignedPolicy>, FleetError> {
    policy_from(
        c.query_row(sql, params![key], |r| r.get(0))
            .optional()
            .map_err(db_err)?,
    )
}

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
        add_device_key_column(&conn)?;
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

pub(crate) fn check_len(what: &str, s: &str) -> Result<(), FleetError> {
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
        enrolled_unix: uint(r.get::<_, i64>(4)?),
        first_seen_unix: r.get::<_, Option<i64>>(5)?.map(uint),
        last_seen_unix: r.get::<_, Option<i64>>(6)?.map(uint),
        last_seq: r.get::<_, Option<i64>>(7)?.map(uint),
        packages: u32::try_from(r.get::<_, i64>(8)?).unwrap_or(u32::MAX),
        device_key: device_key(r.get(9)?),
    })
}

/// A stored device key; one that does not parse (an edited database) counts as none, so a session
/// without a code is refused rather than run against it.
pub(crate) fn device_key(stored: Option<String>) -> Option<PublicKey> {
    stored.and_then(|s| s.parse().ok())
}

pub(crate) const SUMMARY_COLS: &str = "id, org, hostname, os, enrolled_unix, first_seen_unix, last_seen_unix, last_seq, package_count, device_key";

pub(crate) fn source_from(s: &str) -> PackageSource {
    match s {
        "rpm" => PackageSource::Rpm,
        "flatpak" => PackageSource::Flatpak,
        "snap" => PackageSource::Snap,
        "windows-registry" => PackageSource::WindowsRegistry,
        "macos-apps" => PackageSource::MacApps,
        _ => PackageSource::Dpkg,
    }
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
        Some(v) if v > 0 => Ok(Some(uint(v))),
        Some(_) => c
            .query_row(
                "SELECT MAX(seq) FROM reports WHERE device_id = ?1 AND seq > 0",
                params![device_id],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|v| v.map(uint))
            .map_err(db_err),
    }
}

pub(crate) fn reject(kind: FleetErrorKind, msg: impl Into<String>) -> FleetError {
    FleetError::new(kind, msg)
}

/// A number from outside (a report, a clock) as an SQLite integer: one beyond `i64::MAX` is
/// refused, never wrapped negative (an older relay stored a crafted 2^63 that way).
pub(crate) fn int(what: &str, v: u64) -> Result<i64, FleetError> {
    i64::try_from(v).map_err(|_| {
        reject(
            FleetErrorKind::Invalid,
            format!("{what} {v} is too large to store"),
        )
    })
}

/// A stored integer back; they are written by [`int`], so a negative one (never written by this
/// relay) reads as 0.
pub(crate) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// What the store holds for `device_id` before a report (see [`ingest::plan`]).
fn load_head(c: &Connection, device_id: &str) -> Result<Head, FleetError> {
    let (stored_last, snapshot): (Option<i64>, Option<Vec<u8>>) = c
        .query_row(
            "SELECT last_seq, snapshot FROM devices WHERE id = ?1",
            params![device_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db_err)?;
    let last_seq = last_valid_seq(c, device_id, stored_last)?;
    let snapshot = match snapshot {
        Some(b) => Some(codec::from_body(&b).map_err(db_err)?),
        None => None,
    };
    Ok(Head {
        device_id: device_id.to_string(),
        last_seq,
        snapshot,
    })
}

/// Writes a planned report: the device's new snapshot, the report, its changes and the package
/// index. The caller commits the transaction.
fn store_commit(
    c: &Connection,
    device_id: &str,
    commit: &Commit,
    now: u64,
) -> Result<(), FleetError> {
    let next = &commit.next;
    let seq = int("report number", commit.seq)?;
    let now = int("time", now)?;
    let body = codec::to_body(next).map_err(db_err)?;
    let os = format!(
        "{} {}",
        next.hardware.system.os_name, next.hardware.system.os_version
    );
    let package_count = i64::try_from(next.software.packages.len()).map_err(db_err)?;
    c.execute(
        "UPDATE devices SET last_seq = ?2, snapshot = ?3, hostname = ?4, os = ?5, package_count = ?6,
         first_seen_unix = COALESCE(first_seen_unix, ?7), last_seen_unix = ?7 WHERE id = ?1",
        params![device_id, seq, body, next.hardware.system.hostname, os.trim(), package_count, now],
    )
    .map_err(db_err)?;
    c.execute(
        "INSERT INTO reports VALUES (?1, ?2, ?3, ?4)",
        params![device_id, seq, now, commit.kind.as_str()],
    )
    .map_err(db_err)?;
    let mut ins = c
        .prepare_cached("INSERT INTO changes (device_id, seq, at_unix, kind, item, old, new) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
        .map_err(db_err)?;
    for (k, item, old, new) in &commit.changes {
        ins.execute(params![device_id, seq, now, k.name(), item, old, new])
            .map_err(db_err)?;
    }
    let insert: &[Package] = match &commit.packages {
        PackageUpdate::Patch { delete, insert } => {
            let mut del = c
                .prepare_cached("DELETE FROM packages WHERE device_id = ?1 AND source = ?2 AND name = ?3 AND arch = ?4")
                .map_err(db_err)?;
            for k in delete {
                del.execute(params![device_id, k.source.name(), k.name, k.arch])
                    .map_err(db_err)?;
            }
            insert
        }
        PackageUpdate::Replace => {
            c.execute(
                "DELETE FROM packages WHERE device_id = ?1",
                params![device_id],
            )
            .map_err(db_err)?;
            &next.software.packages
        }
    };
    let mut ins = c
        .prepare_cached("INSERT INTO packages VALUES (?1, ?2, ?3, ?4, ?5)")
        .map_err(db_err)?;
    for p in insert {
        ins.execute(params![
            device_id,
            p.source.name(),
            p.name,
            p.arch,
            p.version
        ])
        .map_err(db_err)?;
    }
    Ok(())
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
                    int("time", now)?,
                    i64::try_from(expires_unix).unwrap_or(i64::MAX),
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
        device_key: &PublicKey,
        now: u64,
    ) -> Result<(String, String), FleetError> {
        let hostname = check_enrollment(token, secret_sha256, hostname)?;
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
            if uint(expires) <= now {
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
                "INSERT INTO devices (id, org, secret_sha256, hostname, enrolled_unix, device_key) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    org,
                    secret_sha256.to_ascii_lowercase(),
                    hostname,
                    int("time", now)?,
                    device_key.to_string()
                ],
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
        ingest::check_device(device_id, report)?;
        self.with(|c| {
            let tx = c.transaction().map_err(db_err)?;
            let head = load_head(&tx, device_id)?;
            match ingest::plan(&head, report)? {
                Plan::Duplicate => Ok(Ingested::Duplicate),
                Plan::Resync { expected, error } => Ok(Ingested::Resync { expected, error }),
                Plan::Store(commit) => {
                    store_commit(&tx, device_id, &commit, now)?;
                    tx.commit().map_err(db_err)?;
                    Ok(Ingested::Stored)
                }
            }
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
                    |r| Ok((summary_row(r)?, r.get(10)?)),
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
                        seq: uint(r.get::<_, i64>(0)?),
                        at_unix: uint(r.get::<_, i64>(1)?),
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
            .map(uint)
            .map_err(db_err)
        })
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>, FleetError> {
        self.with(|c| {
            let mut q = c
                .prepare(
                    "SELECT token_sha256, org, created_unix, expires_unix, uses_left FROM enroll_tokens \
                     ORDER BY created_unix DESC, token_sha256",
                )
                .map_err(db_err)?;
            let rows = q
                .query_map([], |r| {
                    Ok(TokenInfo {
                        id: r.get(0)?,
                        org: r.get(1)?,
                        created_unix: uint(r.get(2)?),
                        expires_unix: uint(r.get(3)?),
                        uses_left: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                    })
                })
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            Ok(rows)
        })
    }

    fn delete_token(&self, id_prefix: &str) -> Result<(), FleetError> {
        if !id_prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(reject(FleetErrorKind::Invalid, "a token id is hex digits"));
        }
        self.with(|c| {
            // Hex digits only (checked above), so the pattern holds no wildcard of its own.
            c.execute(
                "DELETE FROM enroll_tokens WHERE token_sha256 LIKE ?1",
                params![format!("{id_prefix}%")],
            )
            .map_err(db_err)?;
            Ok(())
        })
    }

    fn device_list(&self, org: Option<&str>) -> Result<Vec<DeviceInfo>, FleetError> {
        self.with(|c| {
            let mut q = c
                .prepare(
                    "SELECT id, org, hostname, last_seen_unix FROM devices \
                     WHERE ?1 IS NULL OR org = ?1 ORDER BY org, hostname, id",
                )
                .map_err(db_err)?;
            let rows = q
                .query_map(params![org], |r| {
                    Ok(DeviceInfo {
                        id: r.get(0)?,
                        org: r.get(1)?,
                        hostname: r.get(2)?,
                        last_seen_unix: r.get::<_, Option<i64>>(3)?.map(uint),
                    })
                })
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            Ok(rows)
        })
    }

    fn remove_device(&self, device_id: &str) -> Result<(), FleetError> {
        self.with(|c| {
            let tx = c.transaction().map_err(db_err)?;
            for table in ["packages", "changes", "reports"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE device_id = ?1"),
                    params![device_id],
                )
                .map_err(db_err)?;
            }
            tx.execute("DELETE FROM devices WHERE id = ?1", params![device_id])
                .map_err(db_err)?;
            tx.commit().map_err(db_err)
        })
    }

    fn set_policy(&self, org: &str, policy: &SignedPolicy) -> Result<(), FleetError> {
        let body = policy_body(policy)?;
        self.with(|c| {
            let tx = c.transaction().map_err(db_err)?;
            let held = one_policy(&tx, POLICY_OF_ORG, org)?;
            check_new_policy(org, policy, held.as_ref())?;
            tx.execute(
                "INSERT INTO policies (org, version, body) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (org) DO UPDATE SET version = excluded.version, body = excluded.body",
                params![org, int("policy version", policy.policy.version)?, body],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)
        })
    }

    fn policy(&self, org: &str) -> Result<Option<SignedPolicy>, FleetError> {
        self.with(|c| one_policy(c, POLICY_OF_ORG, org))
    }

    fn device_policy(&self, device_id: &str) -> Result<Option<SignedPolicy>, FleetError> {
        self.with(|c| one_policy(c, POLICY_OF_DEVICE, device_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::tests::inventory;
    use tether_proto::fleet::{MAX_SEQ, ReportBody};
    use tether_proto::inventory::Inventory;

    /// A device key for stores that only need one.
    fn key() -> PublicKey {
        tether_proto::org::SecretKey::from_bytes([1; 32]).public()
    }

    /// A store written before device keys opens with the column added; its devices have no key
    /// and new enrollments store theirs.
    #[test]
    fn a_store_from_before_device_keys_gains_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE devices (
                    id TEXT PRIMARY KEY, org TEXT NOT NULL, secret_sha256 TEXT NOT NULL,
                    hostname TEXT NOT NULL, os TEXT NOT NULL DEFAULT '',
                    enrolled_unix INTEGER NOT NULL, first_seen_unix INTEGER, last_seen_unix INTEGER,
                    last_seq INTEGER, snapshot BLOB, package_count INTEGER NOT NULL DEFAULT 0);
                 INSERT INTO devices (id, org, secret_sha256, hostname, enrolled_unix)
                    VALUES ('dev_old', 'Acme', 'ab', 'old', 1);",
            )
            .unwrap();
        }
        let s = SqliteStore::open_file(&path).unwrap();
        let old = s.device("Acme", "dev_old").unwrap();
        assert_eq!(old.summary.device_key, None);
        let t = s.create_token("Acme", 100, 1, 1000).unwrap();
        let (id, _) = s
            .enroll(&t.token, &"ab".repeat(32), "new", &key(), 1001)
            .unwrap();
        assert_eq!(
            s.device("Acme", &id).unwrap().summary.device_key,
            Some(key())
        );
        drop(s);
        // Opening again finds the column and adds nothing.
        let s = SqliteStore::open_file(&path).unwrap();
        assert_eq!(
            s.device("Acme", &id).unwrap().summary.device_key,
            Some(key())
        );
    }

    #[test]
    fn token_uses_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let t = s.create_token("Acme", 100, 1, 1000).unwrap();
        let h = "ab".repeat(32);
        assert_eq!(
            s.enroll(&t.token, &h, "x", &key(), 1200).unwrap_err().kind,
            FleetErrorKind::TokenExpired
        );
        s.enroll(&t.token, &h, "x", &key(), 1050).unwrap();
        assert_eq!(
            s.enroll(&t.token, &h, "x", &key(), 1050).unwrap_err().kind,
            FleetErrorKind::TokenUsed
        );
        assert_eq!(
            s.enroll("et_x", &h, "x", &key(), 1050).unwrap_err().kind,
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
        let (id, _) = s
            .enroll(&t.token, &"ab".repeat(32), "h", &key(), 1000)
            .unwrap();
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
