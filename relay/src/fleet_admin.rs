//! Operator commands on the fleet store behind `tether-relay enroll-token list | revoke` and
//! `tether-relay devices list | remove`: offline work on `fleet.sqlite3` (safe while the relay runs:
//! WAL mode, as `enroll-token create`) or on the cluster's database (`--database`).
//!
//! Everything goes through the [`Store`] trait; the SQL lives in [`crate::store`].

use std::path::Path;
use std::sync::Arc;

use tether_proto::fleet::FleetError;

use crate::backend::Backend;
use crate::store::Store;

pub use crate::store::{DeviceInfo, TokenInfo};

/// Shortest token id prefix accepted by `revoke` (a prefix of the token's SHA-256).
pub const MIN_ID_PREFIX: usize = 6;

/// Length of the token ids `list` prints.
pub const ID_LEN: usize = 12;

/// Errors from fleet operator commands.
#[derive(Debug, thiserror::Error)]
pub enum FleetAdminError {
    /// The store could not be opened or queried.
    #[error("fleet store: {0}")]
    Store(#[from] FleetError),
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

/// The store of `backend`, if anything was ever stored there (an operator command never creates
/// an SQLite file; a database is always there once migrated).
fn open(backend: &Backend) -> Result<Arc<dyn Store>, FleetAdminError> {
    if let Backend::Sqlite { data_dir } = backend
        && !data_dir.join(crate::store::FILE).exists()
    {
        return Err(FleetAdminError::NoStore(data_dir.display().to_string()));
    }
    Ok(backend.store()?)
}

fn sqlite(data_dir: &Path) -> Backend {
    Backend::Sqlite {
        data_dir: data_dir.to_path_buf(),
    }
}

/// Every enrollment token, newest first, used-up and expired ones included.
pub fn list_tokens(data_dir: &Path) -> Result<Vec<TokenInfo>, FleetAdminError> {
    list_tokens_in(&sqlite(data_dir))
}

/// [`list_tokens`] in any backend.
pub fn list_tokens_in(backend: &Backend) -> Result<Vec<TokenInfo>, FleetAdminError> {
    let store = match open(backend) {
        Err(FleetAdminError::NoStore(_)) => return Ok(Vec::new()),
        other => other?,
    };
    tokens(store.as_ref())
}

/// The store's tokens, named by the first [`ID_LEN`] characters of their hash.
fn tokens(store: &dyn Store) -> Result<Vec<TokenInfo>, FleetAdminError> {
    Ok(store
        .tokens()?
        .into_iter()
        .map(|t| TokenInfo {
            id: t.id.chars().take(ID_LEN).collect(),
            ..t
        })
        .collect())
}

/// Revokes the token whose id starts with `id`: no device can enroll with it any more. Returns it.
pub fn revoke_token(data_dir: &Path, id: &str) -> Result<TokenInfo, FleetAdminError> {
    revoke_token_in(&sqlite(data_dir), id)
}

/// [`revoke_token`] in any backend.
pub fn revoke_token_in(backend: &Backend, id: &str) -> Result<TokenInfo, FleetAdminError> {
    let id = id.trim().to_ascii_lowercase();
    if id.len() < MIN_ID_PREFIX || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(FleetAdminError::ShortId);
    }
    let store = match open(backend) {
        Err(FleetAdminError::NoStore(_)) => return Err(FleetAdminError::NoToken(id)),
        other => other?,
    };
    let matching: Vec<TokenInfo> = tokens(store.as_ref())?
        .into_iter()
        .filter(|t| t.id.starts_with(&id) || id.starts_with(&t.id))
        .collect();
    let token = match matching.as_slice() {
        [] => return Err(FleetAdminError::NoToken(id)),
        [one] => one.clone(),
        _ => return Err(FleetAdminError::Ambiguous(id)),
    };
    store.delete_token(&token.id)?;
    Ok(token)
}

/// The enrolled devices of `org` (every organisation when `None`), by host name.
pub fn list_devices(
    data_dir: &Path,
    org: Option<&str>,
) -> Result<Vec<DeviceInfo>, FleetAdminError> {
    list_devices_in(&sqlite(data_dir), org)
}

/// [`list_devices`] in any backend.
pub fn list_devices_in(
    backend: &Backend,
    org: Option<&str>,
) -> Result<Vec<DeviceInfo>, FleetAdminError> {
    match open(backend) {
        Err(FleetAdminError::NoStore(_)) => Ok(Vec::new()),
        other => Ok(other?.device_list(org)?),
    }
}

/// Removes a device of `org`, named by id or host name, with its history and package index: it no
/// longer shows anywhere, and its credential no longer reports. Returns what was removed.
pub fn remove_device(
    data_dir: &Path,
    org: &str,
    device: &str,
) -> Result<DeviceInfo, FleetAdminError> {
    remove_device_in(&sqlite(data_dir), org, device)
}

/// [`remove_device`] in any backend.
pub fn remove_device_in(
    backend: &Backend,
    org: &str,
    device: &str,
) -> Result<DeviceInfo, FleetAdminError> {
    let store = open(backend)?;
    let devices = store.device_list(Some(org))?;
    let found = match devices.iter().find(|d| d.id == device) {
        Some(d) => d.clone(),
        None => {
            let by_name: Vec<&DeviceInfo> = devices
                .iter()
                .filter(|d| d.hostname.eq_ignore_ascii_case(device))
                .collect();
            match by_name.as_slice() {
                [] => return Err(FleetAdminError::NoDevice(device.into(), org.into())),
                [one] => (*one).clone(),
                many => return Err(FleetAdminError::SeveralDevices(device.into(), many.len())),
            }
        }
    };
    store.remove_device(&found.id)?;
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
            store
                .enroll(
                    &a.token,
                    &secret,
                    "pc-1",
                    &tether_proto::org::PublicKey([1; 32]),
                    1_100
                )
                .is_err(),
            "a revoked token enrolls nothing"
        );
        let (id, _) = store
            .enroll(
                &b.token,
                &secret,
                "pc-2",
                &tether_proto::org::PublicKey([1; 32]),
                2_010,
            )
            .unwrap();
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
