//! Registered technicians. Tokens are shown once and stored only as SHA-256 hashes.
//!
//! Tokens are 192 random bits, so a fast hash is enough: there is nothing to brute-force offline.
//! The file is re-read on each lookup so `tether-relay technician add` takes effect on a running relay.

use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tether_proto::msg::TechnicianIdentity;

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
    /// A technician with this name already exists in this org.
    #[error("technician {name:?} already exists in org {org:?}")]
    Exists {
        /// Name.
        name: String,
        /// Org.
        org: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    name: String,
    org: String,
    token_sha256: String,
    created_unix: u64,
}

/// The technician store in a data directory.
#[derive(Debug, Clone)]
pub struct Technicians {
    path: PathBuf,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

fn check_label(what: &str, s: &str) -> Result<(), TechnicianError> {
    if s.trim().is_empty() || s.len() > 64 || s.chars().any(char::is_control) {
        return Err(TechnicianError::Invalid(format!(
            "{what} must be 1–64 printable characters"
        )));
    }
    Ok(())
}

impl Technicians {
    /// The store in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Technicians {
            path: data_dir.join(FILE),
        }
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

    /// Registers a technician and returns their token. The token is not stored.
    pub fn add(&self, name: &str, org: &str) -> Result<String, TechnicianError> {
        check_label("name", name)?;
        check_label("org", org)?;
        let mut all = self.load()?;
        if all.iter().any(|r| r.name == name && r.org == org) {
            return Err(TechnicianError::Exists {
                name: name.into(),
                org: org.into(),
            });
        }
        let mut raw = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut raw);
        let token = format!("tt_{}", hex::encode(raw));
        let created_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        all.push(Record {
            name: name.into(),
            org: org.into(),
            token_sha256: hash(&token),
            created_unix,
        });
        let json = serde_json::to_vec_pretty(&all).map_err(|source| TechnicianError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        // Write then rename, so a crash never leaves a half-written store.
        let tmp = self.path.with_extension("json.tmp");
        let io = |source| TechnicianError::Io {
            path: self.path.clone(),
            source,
        };
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        Ok(token)
    }

    /// The technician holding `token`, if any.
    pub fn verify(&self, token: &str) -> Result<Option<TechnicianIdentity>, TechnicianError> {
        let h = hash(token);
        Ok(self
            .load()?
            .into_iter()
            .find(|r| r.token_sha256 == h)
            .map(|r| TechnicianIdentity {
                name: r.name,
                org: r.org,
            }))
    }

    /// All technicians (name, org).
    pub fn list(&self) -> Result<Vec<TechnicianIdentity>, TechnicianError> {
        Ok(self
            .load()?
            .into_iter()
            .map(|r| TechnicianIdentity {
                name: r.name,
                org: r.org,
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
        assert_eq!((who.name.as_str(), who.org.as_str()), ("Ada", "Acme IT"));
        assert!(t.verify("tt_wrong").unwrap().is_none());
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
    }
}
