//! The technician's own key and the certificate the organisation signed for it (issue 22): what a
//! session on an enrolled device, without a code, is authenticated with.
//!
//! The key is made here, on the technician's machine (`tether-console key create`), and never leaves
//! it: only its public half goes to IT's admin, who signs it with the org key
//! (`tether-relay org-key certify`), and the certificate comes back (`tether-console key install`).
//! The relay holds neither, so it cannot speak for a technician.
//!
//! # Files (in `~/.config/tether`, or `--dir`)
//! - `technician.key`: `{"secret": 64 hex digits}`, owner-only, never replaced.
//! - `technician.cert`: the signed certificate as `org-key certify` wrote it (no secret).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tether_proto::org::{OrgPublic, PublicKey, SignedTechnician, TechnicianSecret, TrustError};

/// The key file's name.
pub const KEY_FILE: &str = "technician.key";
/// The certificate file's name.
pub const CERT_FILE: &str = "technician.cert";

/// What went wrong with the technician's key or certificate.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `create` found a key already there.
    #[error("{} already exists; nothing was written (your key is never replaced)", .0.display())]
    Exists(PathBuf),
    /// No key yet.
    #[error("no technician key in {}; make one with `tether-console key create`", .0.display())]
    NoKey(PathBuf),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// Which.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file is not what this module writes or `org-key certify` writes.
    #[error("{} is not a {what}: {reason}", path.display())]
    Corrupt {
        /// Which.
        path: PathBuf,
        /// What it should have been.
        what: &'static str,
        /// Why not.
        reason: String,
    },
    /// The certificate names another key than this machine's.
    #[error(
        "this certificate is for the key {theirs}, not for yours ({yours}); ask IT to certify the key `tether-console key show` prints"
    )]
    OtherKey {
        /// The certificate's key.
        theirs: String,
        /// This machine's key.
        yours: String,
    },
    /// The certificate does not verify under the org key given, or is not valid now.
    #[error("the certificate is not valid: {0}")]
    Trust(#[from] TrustError),
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    secret: String,
}

/// Where the key and certificate live by default: `$XDG_CONFIG_HOME/tether`, else
/// `~/.config/tether`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("tether")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes this machine's technician key in `dir` (never over an existing one); its public half.
pub fn create(dir: &Path) -> Result<PublicKey, KeyError> {
    let path = dir.join(KEY_FILE);
    if path.symlink_metadata().is_ok() {
        return Err(KeyError::Exists(path));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let secret = TechnicianSecret::generate(&mut rand::rngs::OsRng);
    let mut text = serde_json::to_vec_pretty(&KeyFile {
        secret: secret.to_hex(),
    })
    .unwrap_or_default();
    text.push(b'\n');
    tether_net::private_file::write(&path, &text).map_err(io(&path))?;
    Ok(secret.public())
}

/// This machine's technician key from `dir`.
pub fn load(dir: &Path) -> Result<TechnicianSecret, KeyError> {
    let path = dir.join(KEY_FILE);
    let text = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(KeyError::NoKey(path)),
        r => r.map_err(io(&path))?,
    };
    let corrupt = |reason: String| KeyError::Corrupt {
        path: path.clone(),
        what: "technician key file",
        reason,
    };
    let file: KeyFile = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
    TechnicianSecret::from_hex(&file.secret).map_err(|e| corrupt(e.to_string()))
}

/// Reads a signed certificate file.
pub fn read_cert(path: &Path) -> Result<SignedTechnician, KeyError> {
    let text = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&text).map_err(|e| KeyError::Corrupt {
        path: path.to_path_buf(),
        what: "technician certificate",
        reason: e.to_string(),
    })
}

/// The installed certificate, if any.
pub fn installed_cert(dir: &Path) -> Result<Option<SignedTechnician>, KeyError> {
    let path = dir.join(CERT_FILE);
    if !path.exists() {
        return Ok(None);
    }
    read_cert(&path).map(Some)
}

/// Installs the certificate at `cert` for this machine's key: it must name this key, and with
/// `org_key` it must verify under it (for the organisation it names) at `now_unix`. A certificate
/// that fails any check is not installed; an installed one is replaced (a renewal).
pub fn install(
    dir: &Path,
    cert: &Path,
    org_key: Option<&OrgPublic>,
    now_unix: u64,
) -> Result<SignedTechnician, KeyError> {
    let key = load(dir)?.public();
    let signed = read_cert(cert)?;
    if signed.cert.key != key {
        return Err(KeyError::OtherKey {
            theirs: signed.cert.key.fingerprint(),
            yours: key.fingerprint(),
        });
    }
    if let Some(org_key) = org_key {
        signed.verify(org_key, &signed.cert.org, now_unix)?;
    }
    let mut text = serde_json::to_vec_pretty(&signed).unwrap_or_default();
    text.push(b'\n');
    let path = dir.join(CERT_FILE);
    tether_net::private_file::write(&path, &text).map_err(io(&path))?;
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::org::{OrgSecret, TechnicianCert};

    fn certify(org: &OrgSecret, key: PublicKey, path: &Path) {
        let cert = SignedTechnician::issue(
            org,
            TechnicianCert {
                org: "Acme IT".into(),
                name: "Ada".into(),
                key,
                not_before_unix: 1_000,
                not_after_unix: 2_000,
            },
        )
        .unwrap();
        std::fs::write(path, serde_json::to_vec(&cert).unwrap()).unwrap();
    }

    #[test]
    fn a_key_is_made_once_and_only_its_own_valid_certificate_is_installed() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("tether");
        assert!(matches!(load(&keys), Err(KeyError::NoKey(_))));
        let public = create(&keys).unwrap();
        assert!(matches!(create(&keys), Err(KeyError::Exists(_))));
        assert_eq!(load(&keys).unwrap().public(), public);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(keys.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let org = OrgSecret::generate(&mut rand::rngs::OsRng);
        let other = OrgSecret::generate(&mut rand::rngs::OsRng);
        let mine = dir.path().join("mine.cert");
        certify(&org, public, &mine);
        let someone_elses = dir.path().join("theirs.cert");
        certify(&org, other.public(), &someone_elses);

        assert!(matches!(
            install(&keys, &someone_elses, None, 1_500),
            Err(KeyError::OtherKey { .. })
        ));
        // Signed by another org key than the one given, or not valid now: not installed.
        assert!(matches!(
            install(&keys, &mine, Some(&other.public()), 1_500),
            Err(KeyError::Trust(_))
        ));
        assert!(matches!(
            install(&keys, &mine, Some(&org.public()), 2_500),
            Err(KeyError::Trust(_))
        ));
        assert!(installed_cert(&keys).unwrap().is_none());
        let c = install(&keys, &mine, Some(&org.public()), 1_500).unwrap();
        assert_eq!(installed_cert(&keys).unwrap(), Some(c));

        std::fs::write(keys.join(KEY_FILE), b"{\"secret\":\"xyz\"}").unwrap();
        assert!(matches!(load(&keys), Err(KeyError::Corrupt { .. })));
    }
}
