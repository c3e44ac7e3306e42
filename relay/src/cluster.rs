//! Cluster trust: `tether-relay cluster init` makes the cluster's CA, `cluster join` issues a node
//! certificate signed by it, and `serve --node-dir` (with `--cluster-ca`) serves as that node.
//!
//! # Why a CA
//! A console or agent that pins one relay's fingerprint trusts that relay only. A console told by
//! node B that node A holds a code must be able to trust A as well: it pins the cluster CA
//! (`Trust::CaFile`) and connects to A under A's node name, which A's certificate carries. So a
//! redirect reaches the node it names, signed by this cluster, and no other.
//!
//! # Files
//! - `cluster init --dir D`: `D/cluster-ca-key.pem` (owner-only, never overwritten) and
//!   `D/cluster-ca.pem` (the CA certificate, what agents and consoles pin).
//! - `cluster join --ca-dir D --name NODE --addr HOST:PORT --out DIR`: `DIR/node-key.pem`
//!   (owner-only), `DIR/node-cert.pem` (names `tether-relay`, NODE and HOST), `DIR/cluster-ca.pem`
//!   (a copy, to hand to agents and consoles) and `DIR/node.toml` (the name and the address
//!   consoles are redirected to). Nothing existing is overwritten.
//!
//! The CA's key stays where `init` put it, on the admin's machine; a node only gets its own key.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};
use tether_net::tls::{RelayIdentity, TlsError};

/// The CA certificate (PEM), in the CA directory and in each node directory.
pub const CA_CERT: &str = "cluster-ca.pem";
/// The CA's private key (PKCS#8 PEM, owner-only), in the CA directory only.
pub const CA_KEY: &str = "cluster-ca-key.pem";
/// A node's certificate (PEM).
pub const NODE_CERT: &str = "node-cert.pem";
/// A node's private key (PKCS#8 PEM, owner-only).
pub const NODE_KEY: &str = "node-key.pem";
/// A node's name and public address (TOML).
pub const NODE_FILE: &str = "node.toml";

/// The subject of every cluster CA (clusters differ by key).
const CA_NAME: &str = "Tether relay cluster CA";

/// Longest node name (one DNS label).
pub const MAX_NODE_NAME: usize = 63;

/// What went wrong making or using cluster credentials. Nothing is written when any of these is
/// returned.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A file would be overwritten (a CA key is never replaced, nor a node's).
    #[error("{} already exists; nothing was written (cluster keys are never replaced)", .0.display())]
    Exists(PathBuf),
    /// The CA directory holds no CA.
    #[error(
        "{} holds no cluster CA ({CA_CERT} and {CA_KEY}); make one with `tether-relay cluster init --dir {}`",
        .0.display(), .0.display()
    )]
    NoCa(PathBuf),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// Which.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A key or certificate file is not one these commands wrote.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// Which.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The node name is not one DNS label.
    #[error(
        "node name {0:?} is not valid: use 1 to {MAX_NODE_NAME} lowercase letters, digits and \
         hyphens, not starting or ending with a hyphen (it is the name in the node's certificate)"
    )]
    BadName(String),
    /// The address is not `host:port`.
    #[error("node address {0:?} is not HOST:PORT (the address consoles are sent to)")]
    BadAddr(String),
    /// The certificate could not be made.
    #[error("cannot make the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Loading or checking a certificate failed (for one, a node of another cluster).
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A CA made by [`init`].
#[derive(Debug, Clone)]
pub struct Ca {
    /// The CA certificate's file.
    pub cert: PathBuf,
    /// Its SHA-256 fingerprint (lowercase hex).
    pub fingerprint: String,
}

/// `node.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// The node's name (the DNS name its certificate carries).
    pub name: String,
    /// `host:port` consoles are redirected to.
    pub addr: String,
}

/// A node's identity, loaded for `serve`.
#[derive(Debug)]
pub struct Node {
    /// Name and address.
    pub file: NodeFile,
    /// Its certificate and key.
    pub identity: RelayIdentity,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn refuse_existing(paths: &[&Path]) -> Result<(), ClusterError> {
    match paths.iter().find(|p| p.exists()) {
        Some(p) => Err(ClusterError::Exists(p.to_path_buf())),
        None => Ok(()),
    }
}

/// The CA's parameters: the same on `init` and whenever it signs (its subject and key usages are
/// what a node certificate names as its issuer), so the CA certificate never has to be parsed.
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// `cluster init --dir D`: a new CA in `dir` (created if missing). Refuses, writing nothing, if
/// either CA file exists.
pub fn init(dir: &Path) -> Result<Ca, ClusterError> {
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    refuse_existing(&[&key_path, &cert_path])?;
    let key = KeyPair::generate()?;
    let cert = ca_params()?.self_signed(&key)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    tether_net::private_file::write(&key_path, key.serialize_pem().as_bytes())
        .map_err(io(&key_path))?;
    std::fs::write(&cert_path, cert.pem()).map_err(io(&cert_path))?;
    Ok(Ca {
        fingerprint: tether_net::tls::fingerprint(cert.der()),
        cert: cert_path,
    })
}

/// Checks a node name: one lowercase DNS label.
pub fn check_name(name: &str) -> Result<(), ClusterError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NODE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ClusterError::BadName(name.to_string()))
    }
}

/// The host of `host:port` (brackets taken off an IPv6 address).
pub fn addr_host(addr: &str) -> Result<&str, ClusterError> {
    let bad = || ClusterError::BadAddr(addr.to_string());
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if port == 0 || host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(host)
}

/// `cluster join`: issues a certificate for node `name`, reached at `addr`, signed by the CA in
/// `ca_dir`, into `out` (created if missing). Refuses, writing nothing, on a bad name or address,
/// a missing CA, or any node file already in `out`.
pub fn join(ca_dir: &Path, name: &str, addr: &str, out: &Path) -> Result<Node, ClusterError> {
    check_name(name)?;
    let host = addr_host(addr)?;
    let (ca_cert, ca_key) = (ca_dir.join(CA_CERT), ca_dir.join(CA_KEY));
    if !ca_cert.exists() || !ca_key.exists() {
        return Err(ClusterError::NoCa(ca_dir.to_path_buf()));
    }
    let paths = [
        out.join(NODE_KEY),
        out.join(NODE_CERT),
        out.join(CA_CERT),
        out.join(NODE_FILE),
    ];
    refuse_existing(&paths.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    let key_text = std::fs::read_to_string(&ca_key).map_err(io(&ca_key))?;
    let ca_text = std::fs::read_to_string(&ca_cert).map_err(io(&ca_cert))?;
    let ca_key_pair = KeyPair::from_pem(&key_text).map_err(|e| ClusterError::Corrupt {
        path: ca_key.clone(),
        reason: e.to_string(),
    })?;
    let issuer = Issuer::new(ca_params()?, ca_key_pair);

    let node_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![
        tether_net::tls::DEFAULT_SERVER_NAME.to_string(),
        name.to_string(),
        host.to_string(),
    ])
    .map_err(|_| ClusterError::BadAddr(addr.to_string()))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&node_key, &issuer)?;

    // The CA's two files must belong together: check the new certificate against the CA's as a
    // console would, before anything is written.
    let [key_path, cert_path, ca_copy, node_path] = &paths;
    let (cert_pem, key_pem) = (cert.pem(), node_key.serialize_pem());
    let identity = RelayIdentity::from_pem(&cert_pem, &key_pem, cert_path, key_path)?;
    identity
        .check_issued_by(cert_path, &ca_cert, name)
        .map_err(|e| ClusterError::Corrupt {
            path: ca_key.clone(),
            reason: format!("the CA key does not match {}: {e}", ca_cert.display()),
        })?;

    let file = NodeFile {
        name: name.to_string(),
        addr: addr.to_string(),
    };
    let toml = toml::to_string(&file).map_err(|e| ClusterError::Corrupt {
        path: out.join(NODE_FILE),
        reason: e.to_string(),
    })?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    tether_net::private_file::write(key_path, key_pem.as_bytes()).map_err(io(key_path))?;
    std::fs::write(cert_path, cert_pem).map_err(io(cert_path))?;
    std::fs::write(ca_copy, ca_text).map_err(io(ca_copy))?;
    std::fs::write(node_path, toml).map_err(io(node_path))?;
    Ok(Node { file, identity })
}

/// Loads the node in `dir` for `serve`; with `ca` (the config's cluster CA), checks that its
/// certificate was issued by that CA for its name, so a node of another cluster stops here.
pub fn load(dir: &Path, ca: Option<&Path>) -> Result<Node, ClusterError> {
    let node_path = dir.join(NODE_FILE);
    let text = std::fs::read_to_string(&node_path).map_err(io(&node_path))?;
    let file: NodeFile = toml::from_str(&text).map_err(|e| ClusterError::Corrupt {
        path: node_path.clone(),
        reason: format!(
            "not a node file of `tether-relay cluster join`: {}",
            e.message()
        ),
    })?;
    check_name(&file.name)?;
    addr_host(&file.addr)?;
    let cert = dir.join(NODE_CERT);
    let identity = RelayIdentity::from_pem_files(&cert, &dir.join(NODE_KEY))?;
    if let Some(ca) = ca {
        identity.check_issued_by(&cert, ca, &file.name)?;
    }
    Ok(Node { file, identity })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_of_one_cluster_is_refused_by_another() {
        let dir = tempfile::tempdir().unwrap();
        let (ca1, ca2) = (dir.path().join("ca1"), dir.path().join("ca2"));
        let first = init(&ca1).unwrap();
        let second = init(&ca2).unwrap();
        assert_ne!(first.fingerprint, second.fingerprint);
        assert!(matches!(init(&ca1), Err(ClusterError::Exists(_))));

        let node_dir = dir.path().join("node-a");
        join(&ca1, "node-a", "127.0.0.1:4433", &node_dir).unwrap();
        let node = load(&node_dir, Some(&first.cert)).unwrap();
        assert_eq!(node.file.name, "node-a");
        let e = load(&node_dir, Some(&second.cert)).unwrap_err();
        assert!(
            e.to_string().contains("not issued by the cluster CA"),
            "{e}"
        );
        assert!(matches!(
            join(&ca1, "node-a", "127.0.0.1:4433", &node_dir),
            Err(ClusterError::Exists(_))
        ));
    }

    #[test]
    fn a_ca_key_that_does_not_match_its_certificate_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (ca1, ca2) = (dir.path().join("ca1"), dir.path().join("ca2"));
        init(&ca1).unwrap();
        init(&ca2).unwrap();
        std::fs::copy(ca2.join(CA_KEY), ca1.join(CA_KEY)).unwrap();
        let out = dir.path().join("node");
        let e = join(&ca1, "node-a", "127.0.0.1:4433", &out).unwrap_err();
        assert!(e.to_string().contains("the CA key does not match"), "{e}");
        assert!(!out.exists(), "nothing written");
        let e = join(&dir.path().join("none"), "node-a", "127.0.0.1:4433", &out).unwrap_err();
        assert!(matches!(e, ClusterError::NoCa(_)), "{e}");
    }

    #[test]
    fn names_and_addresses_are_checked() {
        for bad in ["", "-a", "a-", "Node", "a.b", &"a".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("node-1").unwrap();
        assert_eq!(addr_host("relay.example:4433").unwrap(), "relay.example");
        assert_eq!(addr_host("[::1]:4433").unwrap(), "::1");
        for bad in ["relay", "relay:0", ":4433", "relay:x", "a b:1"] {
            assert!(addr_host(bad).is_err(), "{bad:?}");
        }
    }
}
