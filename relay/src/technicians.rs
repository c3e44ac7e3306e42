//! Registered technicians: name, org, role, and a token shown once and stored only as a SHA-256 hash.
//!
//! Tokens are `tt_` + 192 random bits. A slow password hash (argon2) protects *low-entropy* secrets from
//! offline guessing; against 192 random bits a single SHA-256 is already out of reach, and it keeps
//! every claim cheap, so verifying tokens cannot be turned into a CPU-exhaustion attack on the relay.
//! Tokens can be revoked and can expire. `tether-relay technician add/revoke` write the file while the
//! relay runs; [`Technicians::verify`] keeps the parsed registry in memory and re-reads it only when
//! the file's modification time or length changed (writes go through a rename, so both change), so a
//! claim costs a `stat`, not a read and a parse.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tether_proto::msg::{TechnicianIdentity, TechnicianRole, Tier};

/// File name in the data directory.
pub const FILE: &str = "technicians.json";

/// Errors managing technicians.
#[derive(Debug, thiserror::Error)]
pub enum TechnicianError {
    /// The store could not be read or written.
    #[error("technician store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The store is not valid JSON.
    #[error("technician store {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// Name or org empty or too long.
    #[error("{0}")]
    Invalid(String),
    /// The database behind the directory failed (`crate::pg::directory`).
    #[error("technician directory: {0}")]
    Database(String),
    /// A technician with this name already exists in this org.
    #[error("technician {name:?} already exists in org {org:?}")]
    Exists {
        /// Name.
        name: String,
        /// Org.
        org: String,
    },
    /// No such technician.
    #[error("no technician {name:?} in org {org:?}")]
    NotFound {
        /// Name.
        name: String,
        /// Org.
        org: String,
    },
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// No technician holds it.
    Unknown,
    /// It was revoked.
    Revoked,
    /// It expired.
    Expired,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    name: String,
    org: String,
    #[serde(default = "default_role")]
    role: TechnicianRole,
    #[serde(default)]
    tier: Tier,
    token_sha256: String,
    created_unix: u64,
    #[serde(default)]
    expires_unix: Option<u64>,
    #[serde(default)]
    revoked_unix: Option<u64>,
}

impl Record {
    fn identity(self) -> TechnicianIdentity {
        TechnicianIdentity {
            name: self.name,
            org: self.org,
            role: self.role,
            tier: self.tier,
        }
    }
}

fn default_role() -> TechnicianRole {
    TechnicianRole::Technician
}

/// One technician as listed for operators.
#[derive(Debug, Clone, Serialize)]
pub struct TechnicianInfo {
    /// Name.
    pub name: String,
    /// Org.
    pub org: String,
    /// Role.
    pub role: TechnicianRole,
    /// Support tier.
    pub tier: Tier,
    /// `active`, `revoked` or `expired`.
    pub status: &'static str,
}

/// The technician store in a data directory. Clones share the cache.
#[derive(Debug, Clone)]
pub struct Technicians {
    path: PathBuf,
    cache: Arc<Mutex<Option<Cached>>>,
}

/// The registry as last read, keyed by token hash, with the file's stamp then.
#[derive(Debug)]
struct Cached {
    stamp: Option<(std::time::SystemTime, u64)>,
    by_hash: Arc<HashMap<String, Record>>,
}

pub(crate) fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

pub(crate) fn check_label(what: &str, s: &str) -> Result<(), TechnicianError> {
    if s.trim().is_empty() || s.len() > 64 || s.chars().any(tether_proto::text::is_hidden) {
        return Err(TechnicianError::Invalid(format!(
            "{what} must be 1–64 printable characters"
        )));
    }
    Ok(())
}

impl Record {
    fn status(&self, now: u64) -> Result<(), TokenProblem> {
        if self.revoked_unix.is_some() {
            return Err(TokenProblem::Revoked);
        }
        if self.expires_unix.is_some_and(|e| now >= e) {
            return Err(TokenProblem::Expired);
        }
        Ok(())
    }
}

impl Technicians {
    /// The store in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Technicians {
            path: data_dir.join(FILE),
            cache: Arc::default(),
        }
    }

    /// The file's modification time and length; `None` when it does not exist.
    fn stamp(&self) -> Result<Option<(std::time::SystemTime, u64)>, TechnicianError> {
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(Some((
                m.modified().map_err(|source| TechnicianError::Io {
                    path: self.path.clone(),
                    source,
                })?,
                m.len(),
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(TechnicianError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// The registry by token hash, re-read only when the file changed.
    fn by_hash(&self) -> Result<Arc<HashMap<String, Record>>, TechnicianError> {
        let stamp = self.stamp()?;
        // A poisoned lock means a panic while swapping the cache, which leaves it whole either way.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.as_ref()
            && c.stamp == stamp
        {
            return Ok(c.by_hash.clone());
        }
        let by_hash: Arc<HashMap<String, Record>> = Arc::new(
            self.load()?
                .into_iter()
                .map(|r| (r.token_sha256.clone(), r))
                .collect(),
        );
        *cache = Some(Cached {
            stamp,
            by_hash: by_hash.clone(),
        });
        Ok(by_hash)
    }

    fn load(&self) -> Result<Vec<Record>, TechnicianError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| TechnicianError::Corrupt {
                    path: self.path.clone(),
                    source,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(TechnicianError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn save(&self, all: &[Record]) -> Result<(), TechnicianError> {
        let json = serde_json::to_vec_pretty(all).map_err(|source| TechnicianError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        // Atomic and durable (temp file, sync, rename), so a crash never leaves a half-written store;
        // owner-only, since the hashes are all an attacker would need to aim a guess.
        tether_net::private_file::write(&self.path, &json).map_err(|source| TechnicianError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Registers a technician with the `technician` role and no expiry; returns the token.
    pub fn add(&self, name: &str, org: &str) -> Result<String, TechnicianError> {
        self.add_with(name, org, TechnicianRole::Technician, None)
    }

    /// Registers a technician at tier L1 and returns their token. The token is not stored.
    pub fn add_with(
        &self,
        name: &str,
        org: &str,
        role: TechnicianRole,
        valid_for: Option<std::time::Duration>,
    ) -> Result<String, TechnicianError> {
        self.add_full(name, org, role, Tier::L1, valid_for)
    }

    /// Registers a technician with a role and a tier and returns their token.
    pub fn add_full(
        &self,
        name: &str,
        org: &str,
        role: TechnicianRole,
        tier: Tier,
        valid_for: Option<std::time::Duration>,
    ) -> Result<String, TechnicianError> {
        check_label("name", name)?;
        check_label("org", org)?;
        let mut all = self.load()?;
        if all
            .iter()
            .any(|r| r.name == name && r.org == org && r.revoked_unix.is_none())
        {
            return Err(TechnicianError::Exists {
                name: name.into(),
                org: org.into(),
            });
        }
        let mut raw = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut raw);
        let token = format!("tt_{}", hex::encode(raw));
        let created_unix = crate::clock::now_unix();
        all.push(Record {
            name: name.into(),
            org: org.into(),
            role,
            tier,
            token_sha256: hash(&token),
            created_unix,
            expires_unix: valid_for.map(|d| created_unix + d.as_secs()),
            revoked_unix: None,
        });
        self.save(&all)?;
        Ok(token)
    }

    /// Sets an active technician's tier.
    pub fn set_tier(&self, name: &str, org: &str, tier: Tier) -> Result<(), TechnicianError> {
        let mut all = self.load()?;
        let mut found = false;
        for r in all
            .iter_mut()
            .filter(|r| r.name == name && r.org == org && r.revoked_unix.is_none())
        {
            r.tier = tier;
            found = true;
        }
        if !found {
            return Err(TechnicianError::NotFound {
                name: name.into(),
                org: org.into(),
            });
        }
        self.save(&all)
    }

    /// Every technician whose token is currently good, as the relay would name them.
    pub fn active(&self) -> Result<Vec<TechnicianIdentity>, TechnicianError> {
        let now = crate::clock::now_unix();
        Ok(self
            .load()?
            .into_iter()
            .filter(|r| r.status(now).is_ok())
            .map(Record::identity)
            .collect())
    }

    /// Revokes a technician's token; claims with it fail from now on.
    pub fn revoke(&self, name: &str, org: &str) -> Result<(), TechnicianError> {
        let mut all = self.load()?;
        let now = crate::clock::now_unix();
        let mut found = false;
        for r in all
            .iter_mut()
            .filter(|r| r.name == name && r.org == org && r.revoked_unix.is_none())
        {
            r.revoked_unix = Some(now);
            found = true;
        }
        if !found {
            return Err(TechnicianError::NotFound {
                name: name.into(),
                org: org.into(),
            });
        }
        self.save(&all)
    }

    /// The technician holding `token`, or why the token is not good.
    pub fn verify(
        &self,
        token: &str,
    ) -> Result<Result<TechnicianIdentity, TokenProblem>, TechnicianError> {
        let all = self.by_hash()?;
        let Some(r) = all.get(&hash(token)) else {
            return Ok(Err(TokenProblem::Unknown));
        };
        Ok(r.status(crate::clock::now_unix())
            .map(|()| r.clone().identity()))
    }

    /// All technicians, with their status.
    pub fn list(&self) -> Result<Vec<TechnicianInfo>, TechnicianError> {
        let now = crate::clock::now_unix();
        Ok(self
            .load()?
            .into_iter()
            .map(|r| {
                let status = match r.status(now) {
                    Ok(()) => "active",
                    Err(TokenProblem::Revoked) => "revoked",
                    Err(_) => "expired",
                };
                TechnicianInfo {
                    name: r.name,
                    org: r.org,
                    role: r.role,
                    tier: r.tier,
                    status,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_are_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let t = Technicians::new(dir.path());
        let token = t.add("Ada", "Acme IT").unwrap();
        let who = t.verify(&token).unwrap().unwrap();
        assert_eq!(
            (who.name.as_str(), who.org.as_str(), who.role),
            ("Ada", "Acme IT", TechnicianRole::Technician)
        );
        assert_eq!(t.verify("tt_wrong").unwrap(), Err(TokenProblem::Unknown));
        let stored = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(!stored.contains(&token[3..]), "token stored in clear");
        assert!(matches!(
            t.add("Ada", "Acme IT"),
            Err(TechnicianError::Exists { .. })
        ));
        assert!(matches!(
            t.add("", "Acme IT"),
            Err(TechnicianError::Invalid(_))
        ));
        // Names shown to users may not hide a reversal or a line break (issue 13 item 5).
        for name in ["Ada\u{202e}ecalevoL", "Ada\u{2028}Support", "Ada\u{200b}"] {
            assert!(
                matches!(t.add(name, "Acme IT"), Err(TechnicianError::Invalid(_))),
                "{name:?} accepted"
            );
        }
    }

    #[test]
    fn revoked_and_expired_tokens_fail() {
        let dir = tempfile::tempdir().unwrap();
        let t = Technicians::new(dir.path());
        let token = t
            .add_with("Bob", "Acme IT", TechnicianRole::Viewer, None)
            .unwrap();
        assert_eq!(
            t.verify(&token).unwrap().unwrap().role,
            TechnicianRole::Viewer
        );
        t.revoke("Bob", "Acme IT").unwrap();
        assert_eq!(t.verify(&token).unwrap(), Err(TokenProblem::Revoked));
        assert!(matches!(
            t.revoke("Bob", "Acme IT"),
            Err(TechnicianError::NotFound { .. })
        ));
        let expired = t
            .add_with(
                "Cy",
                "Acme IT",
                TechnicianRole::Admin,
                Some(std::time::Duration::ZERO),
            )
            .unwrap();
        assert_eq!(t.verify(&expired).unwrap(), Err(TokenProblem::Expired));
        let statuses: Vec<_> = t.list().unwrap().into_iter().map(|i| i.status).collect();
        assert_eq!(statuses, ["revoked", "expired"]);
        // A revoked name can be registered again, with a new token.
        let again = t.add("Bob", "Acme IT").unwrap();
        assert!(t.verify(&again).unwrap().is_ok());
    }

    /// A claim does not re-read and re-parse the registry: while the file is unchanged (same
    /// modification time and length) the cached registry answers; a real change is seen at once.
    #[test]
    fn the_registry_is_cached_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let relay = Technicians::new(dir.path());
        let token = relay.add("Ada", "Acme IT").unwrap();
        assert!(relay.verify(&token).unwrap().is_ok());
        // Same length, same modification time, different bytes: only a re-read would notice.
        let path = dir.path().join(FILE);
        let meta = std::fs::metadata(&path).unwrap();
        std::fs::write(&path, vec![b'x'; meta.len() as usize]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(meta.modified().unwrap())
            .unwrap();
        assert!(
            relay.verify(&token).unwrap().is_ok(),
            "the file was re-read"
        );
        // An operator's change (another process: a separate instance) is seen by the next claim.
        std::fs::remove_file(&path).unwrap();
        let cli = Technicians::new(dir.path());
        let bob = cli.add("Bob", "Acme IT").unwrap();
        assert!(relay.verify(&bob).unwrap().is_ok());
        assert_eq!(relay.verify(&token).unwrap(), Err(TokenProblem::Unknown));
        cli.revoke("Bob", "Acme IT").unwrap();
        assert_eq!(relay.verify(&bob).unwrap(), Err(TokenProblem::Revoked));
    }
}
