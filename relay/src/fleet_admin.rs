//! Operator commands on the fleet store behind `tether-relay enroll-token list | revoke` and
//! `tether-relay devices list | remove`: offline work on `fleet.sqlite3`, safe while the relay runs
//! (WAL mode, as `enroll-token create`).
//!
//! These open the store's file themselves instead of going through [`crate::store::Store`]: they
//! are operator-only, never reached from the network, and keep the relay's hot path untouched.
//! Folding them into `Store` is the natural next step once that trait settles.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::FILE;

/// Shortest token id prefix accepted by `revoke` (a prefix of the token's SHA-256).
pub const MIN_ID_PREFIX: usize = 6;

/// Length of the token ids `list` prints.
pub const ID_LEN: usize = 12;

/// Errors from fleet operator commands.
#[derive(Debug, thiserror::Error)]
pub enum FleetAdminError {
    /// The store could not be opened or queried.
    #[error("fleet store: {0}")]
    Db(#[from] rusqlite::Error),
    /// No fleet store exists in the data directory yet.
    #[error("no fleet store in {0} yet (nothing was ever enrolled)")]
    NoStore(String),
    /// No token matches the id.
    #[error("no enrollment token with id {0:?} (see `tether-relay enroll-token list`)")]
    NoToken(String),
    /// The id prefix matches more than one token.
    #[error("{0:?} matches several tokens; give more of the id")]
    Ambiguous(String),
    /// The id is too short to name a token safely.
    #[error("a token id has at least {MIN_ID_PREFIX} characters, as `enroll-token list` prints it")]
    ShortId,
    /// No device matches.
    #[error("no device {0:?} in {1:?} (see `tether-relay devices list`)")]
    NoDevice(String, String),
    /// The host name matches more than one device.
    #[error("{0:?} names {1} devices in that organisation; remove one by its id")]
    SeveralDevices(String, usize),
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

fn open(data_dir: &Path) -> Result<Connection, FleetAdminError> {
    let path = data_dir.join(FILE);
    if !path.exists() {
        return Err(FleetAdminError::NoStore(data_dir.display().to_string()));
    }
    let c = Connection::open(path)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(c)
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Every enrollment token, newest first, used-up and expired ones included.
pub fn list_tokens(data_dir: &Path) -> Result<Vec<TokenInfo>, FleetAdminError> {
    let c = match open(data_dir) {
        Err(FleetAdminError::NoStore(_)) => return Ok(Vec::new()),
        other => other?,
    };
    let mut q = c.prepare(
        "SELECT token_sha256, org, created_unix, expires_unix, uses_left FROM enroll_tokens \
         ORDER BY created_unix DESC, token_sha256",
    )?;
    let rows = q.query_map([], |r| {
        let hash: String = r.get(0)?;
        Ok(TokenInfo {
            id: hash.chars().take(ID_LEN).collect(),
            org: r.get(1)?,
            created_unix: unsigned(r.get(2)?),
            expires_unix: unsigned(r.get(3)?),
            uses_left: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes the token whose id starts with `id`: no device can enroll with it any more. Returns it.
pub fn revoke_token(data_dir: &Path, id: &str) -> Result<TokenInfo, FleetAdminError> {
    let id = id.trim().to_ascii_lowercase();
    if id.len() < MIN_ID_PREFIX || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(FleetAdminError::ShortId);
    }
    let matching: Vec<TokenInfo> = list_tokens(data_dir)?
        .into_iter()
        .filter(|t| t.id.starts_with(&id) || id.starts_with(&t.id))
        .collect();
    let token = match matching.as_slice() {
        [] => return Err(FleetAdminError::NoToken(id)),
        [one] => one.clone(),
        _ => return Err(FleetAdminError::Ambiguous(id)),
    };
    let c = open(data_dir)?;
    // The id is a hex prefix (checked above), so the pattern holds no wildcard of its own.
    c.execute(
        "DELETE FROM enroll_tokens WHERE token_sha256 LIKE ?1",
        params![format!("{}%", token.id)],
    )?;
    Ok(token)
}

/// The enrolled devices of `org` (every organisation when `None`), by host name.
pub fn list_devices(
    data_dir: &Path,
    org: Option<&str>,
) -> Result<Vec<DeviceInfo>, FleetAdminError> {
    let c = match open(data_dir) {
        Err(FleetAdminError::NoStore(_)) => return Ok(Vec::new()),
        other => other?,
    };
    let mut q = c.prepare(
        "SELECT id, org, hostname, last_seen_unix FROM devices \
         WHERE ?1 IS NULL OR org = ?1 ORDER BY org, hostname, id",
    )?;
    let rows = q.query_map(params![org], |r| {
        Ok(DeviceInfo {
            id: r.get(0)?,
            org: r.get(1)?,
            hostname: r.get(2)?,
            last_seen_unix: r.get::<_, Option<i64>>(3)?.map(unsigned),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Removes a device of `org`, named by id or host name, with its history and package index: it no
/// longer shows anywhere, and its credential no longer reports. Returns what was removed.
pub fn remove_device(
    data_dir: &Path,
    org: &str,
    device: &str,
) -> Result<DeviceInfo, FleetAdminError> {
    let mut c = open(data_dir)?;
    let tx = c.transaction()?;
    let by_id: Option<DeviceInfo> = tx
        .query_row(
            "SELECT id, org, hostname, last_seen_unix FROM devices WHERE id = ?1 AND org = ?2",
            params![device, org],
            |r| {
                Ok(DeviceInfo {
                    id: r.get(0)?,
                    org: r.get(1)?,
                    hostname: r.get(2)?,
                    last_seen_unix: r.get::<_, Option<i64>>(3)?.map(unsigned),
                })
            },
        )
        .optional()?;
    let found = match by_id {
        Some(d) => d,
        None => {
            let by_name: Vec<DeviceInfo> = list_devices(data_dir, Some(org))?
                .into_iter()
                .filter(|d| d.hostname.eq_ignore_ascii_case(device))
                .collect();
            match by_name.len() {
                0 => return Err(FleetAdminError::NoDevice(device.into(), org.into())),
                1 => by_name
                    .into_iter()
                    .next()
                    .ok_or_else(|| FleetAdminError::NoDevice(device.into(), org.into()))?,
                n => return Err(FleetAdminError::SeveralDevices(device.into(), n)),
            }
        }
    };
    for table in ["packages", "changes", "reports"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE device_id = ?1"),
            params![found.id],
        )?;
    }
    tx.execute("DELETE FROM devices WHERE id = ?1", params![found.id])?;
    tx.commit()?;
    Ok(found)
}

pub use tether_proto::time::duration_words;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, Store};

    /// Issue 17 item 25: tokens can be listed and revoked (a revoked one enrolls nothing), and a
    /// device can be removed, by host name or id, within its organisation only.
    #[test]
    fn tokens_list_and_revoke_and_devices_remove() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list_tokens(dir.path()).unwrap().is_empty(), "no store yet");
        let store = SqliteStore::open(dir.path()).unwrap();
        let a = store.create_token("Acme IT", 3_600, 2, 1_000).unwrap();
        let b = store.create_token("Other", 60, 1, 2_000).unwrap();
        let list = list_tokens(dir.path()).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].org.as_str(), list[0].uses_left), ("Other", 1));
        assert_eq!(list[1].expires_unix, 4_600);
        assert!(list.iter().all(|t| t.id.len() == ID_LEN));
        assert!(matches!(
            revoke_token(dir.path(), "ab"),
            Err(FleetAdminError::ShortId)
        ));
        let gone = revoke_token(dir.path(), &list[1].id).unwrap();
        assert_eq!(gone.org, "Acme IT");
        let secret = "ab".repeat(32);
        assert!(
            store.enroll(&a.token, &secret, "pc-1", 1_100).is_err(),
            "a revoked token enrolls nothing"
        );
        let (id, _) = store.enroll(&b.token, &secret, "pc-2", 2_010).unwrap();
        assert_eq!(list_devices(dir.path(), None).unwrap().len(), 1);
        assert!(matches!(
            remove_device(dir.path(), "Acme IT", "pc-2"),
            Err(FleetAdminError::NoDevice(..))
        ));
        let removed = remove_device(dir.path(), "Other", "PC-2").unwrap();
        assert_eq!(removed.id, id);
        assert!(list_devices(dir.path(), None).unwrap().is_empty());
    }
}
