//! `tether-relay org-key`: the organisation's signing key as IT's admins keep it, on their own
//! machine and never in the relay's data directory or database (see `tether_proto::org`).
//!
//! The key file is JSON (`{"org": …, "secret": 64 hex digits}`) written owner-only; an existing file
//! is never replaced. With it an admin signs technician certificates and unattended policies; what
//! they sign is JSON too, and carries no secret.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tether_proto::ScopeSet;
use tether_proto::org::{
    OrgPublic, Policy, PublicKey, SecretKey, SignedPolicy, SignedTechnician, TechnicianCert,
    TrustError,
};

/// Longest validity of a technician certificate, in days.
pub const MAX_CERT_DAYS: u64 = 3 * 365;

/// What went wrong with an org key or what it signs.
#[derive(Debug, thiserror::Error)]
pub enum OrgKeyError {
    /// The output file exists: an org key (or a certificate) is never overwritten.
    #[error("{} already exists; nothing was written (an org key is never replaced)", .0.display())]
    Exists(PathBuf),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// Which.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A key file is not one `org-key create` wrote.
    #[error("{} is not an org key file: {reason}", path.display())]
    Corrupt {
        /// Which.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A name, key or validity is not acceptable.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// A validity of no days or longer than [`MAX_CERT_DAYS`].
    #[error("--days must be between 1 and {MAX_CERT_DAYS}")]
    Days,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    org: String,
    secret: String,
}

/// An org key loaded from its file.
#[derive(Debug)]
pub struct OrgKey {
    /// The organisation it signs for.
    pub org: String,
    /// The key.
    pub secret: SecretKey,
}

impl OrgKey {
    /// Its public half, as devices pin it.
    pub fn public(&self) -> OrgPublic {
        self.secret.public()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OrgKeyError + '_ {
    move |source| OrgKeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<(), OrgKeyError> {
    if path.symlink_metadata().is_ok() {
        return Err(OrgKeyError::Exists(path.to_path_buf()));
    }
    if private {
        tether_net::private_file::write(path, bytes).map_err(io(path))
    } else {
        std::fs::write(path, bytes).map_err(io(path))
    }
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(v).unwrap_or_default();
    text.push(b'\n');
    text
}

/// Makes a new org key for `org` and writes it to `out` (owner-only, never over an existing file).
pub fn create(org: &str, out: &Path) -> Result<OrgKey, OrgKeyError> {
    let secret = SecretKey::generate(&mut rand::rngs::OsRng);
    // The name is checked the way every certificate checks it, before anything is written.
    let probe = TechnicianCert {
        org: org.to_owned(),
        name: "check".into(),
        key: secret.public(),
        not_before_unix: 0,
        not_after_unix: 1,
    };
    SignedTechnician::issue(&secret, probe)?;
    let file = KeyFile {
        org: org.to_owned(),
        secret: secret.to_hex(),
    };
    write_new(out, &json(&file), true)?;
    Ok(OrgKey {
        org: org.to_owned(),
        secret,
    })
}

/// Reads an org key file.
pub fn load(path: &Path) -> Result<OrgKey, OrgKeyError> {
    let text = std::fs::read(path).map_err(io(path))?;
    let corrupt = |reason: String| OrgKeyError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let file: KeyFile = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
    let secret = SecretKey::from_hex(&file.secret)
        .map_err(|_| corrupt("the secret is not 64 hex digits".into()))?;
    Ok(OrgKey {
        org: file.org,
        secret,
    })
}

/// Signs a certificate for technician `name` with public key `technician`, valid `days` from
/// `now_unix`, and writes it to `out`.
pub fn certify(
    key: &OrgKey,
    name: &str,
    technician: PublicKey,
    days: u64,
    now_unix: u64,
    out: &Path,
) -> Result<SignedTechnician, OrgKeyError> {
    if days == 0 || days > MAX_CERT_DAYS {
        return Err(OrgKeyError::Days);
    }
    let cert = SignedTechnician::issue(
        &key.secret,
        TechnicianCert {
            org: key.org.clone(),
            name: name.to_owned(),
            key: technician,
            not_before_unix: now_unix,
            not_after_unix: now_unix + days * 86_400,
        },
    )?;
    write_new(out, &json(&cert), false)?;
    Ok(cert)
}

/// Signs the organisation's unattended policy (version `version`, with the technician keys IT
/// `revoked`) and writes it to `out`.
pub fn sign_policy(
    key: &OrgKey,
    unattended: ScopeSet,
    version: u64,
    revoked: Vec<tether_proto::org::PublicKey>,
    out: &Path,
) -> Result<SignedPolicy, OrgKeyError> {
    let policy = SignedPolicy::issue(
        &key.secret,
        Policy {
            org: key.org.clone(),
            unattended,
            version,
            revoked,
        },
    )?;
    write_new(out, &json(&policy), false)?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::Scope;

    #[test]
    fn a_key_is_written_owner_only_once_and_what_it_signs_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.orgkey");
        let key = create("Acme IT", &path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            create("Acme IT", &path),
            Err(OrgKeyError::Exists(_))
        ));
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.public(), key.public());
        assert_eq!(loaded.org, "Acme IT");

        let tech = SecretKey::generate(&mut rand::rngs::OsRng).public();
        let cert_path = dir.path().join("ada.cert");
        certify(&loaded, "Ada Lovelace", tech, 30, 1_000, &cert_path).unwrap();
        let read: SignedTechnician =
            serde_json::from_slice(&std::fs::read(&cert_path).unwrap()).unwrap();
        let c = read
            .verify(&key.public(), "Acme IT", 1_000 + 86_400)
            .unwrap();
        assert_eq!((c.name.as_str(), c.key), ("Ada Lovelace", tech));
        assert!(
            read.verify(&key.public(), "Acme IT", 1_000 + 31 * 86_400)
                .is_err()
        );

        let policy_path = dir.path().join("policy.json");
        let scopes: ScopeSet = [Scope::Inventory, Scope::Diagnostics].into_iter().collect();
        sign_policy(&loaded, scopes, 1, Vec::new(), &policy_path).unwrap();
        let p: SignedPolicy =
            serde_json::from_slice(&std::fs::read(&policy_path).unwrap()).unwrap();
        assert_eq!(
            p.verify(&key.public(), "Acme IT").unwrap().unattended,
            scopes
        );
    }

    #[test]
    fn bad_names_days_and_files_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        assert!(create("Acme\nIT", &path).is_err());
        assert!(!path.exists());
        let key = create("Acme IT", &path).unwrap();
        let tech = key.public();
        let out = dir.path().join("c");
        assert!(matches!(
            certify(&key, "Ada", tech, 0, 0, &out),
            Err(OrgKeyError::Days)
        ));
        assert!(certify(&key, "", tech, 1, 0, &out).is_err());
        assert!(!out.exists());
        std::fs::write(dir.path().join("bad"), b"{\"org\":\"x\",\"secret\":\"zz\"}").unwrap();
        assert!(matches!(
            load(&dir.path().join("bad")),
            Err(OrgKeyError::Corrupt { .. })
        ));
    }
}
