//! Relay identity and client trust.
//!
//! The relay makes its own certificate on first start and prints its SHA-256 fingerprint. Agents and
//! consoles pin that fingerprint, or verify against a CA file the operator provides. The pinning
//! verifier still checks the handshake signature, so only the holder of the pinned key can pass.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};

/// File names inside the relay's data directory.
pub const CERT_FILE: &str = "relay-cert.der";
/// The relay's private key (PKCS#8 DER, mode 0600).
pub const KEY_FILE: &str = "relay-key.der";

/// The server name clients ask for when pinning by fingerprint (the certificate carries it).
pub const DEFAULT_SERVER_NAME: &str = "tether-relay";

/// Errors setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing the certificate or key failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The certificate could not be generated.
    #[error("cannot generate the relay certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls rejected the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A fingerprint was not 64 hex digits.
    #[error("invalid SHA-256 fingerprint {0:?}: expected 64 hex digits (colons allowed)")]
    BadFingerprint(String),
    /// The CA file held no usable certificate.
    #[error("CA file {0}: no usable certificate")]
    BadCaFile(PathBuf),
    /// rustls could not build a verifier from the CA file.
    #[error("CA file: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    /// A certificate or key file held no usable PEM certificate or private key.
    #[error("{0}: no usable PEM certificate or private key")]
    BadPem(PathBuf),
    /// A node certificate does not chain to the cluster CA named in the config (it was issued by
    /// another cluster's CA, or for another name).
    #[error(
        "the node certificate {cert} was not issued by the cluster CA {ca} for node {name:?} \
         ({reason}): it belongs to another cluster or node; issue one with \
         `tether-relay cluster join --ca-dir` this cluster's CA directory"
    )]
    NotIssuedBy {
        /// The node certificate file.
        cert: PathBuf,
        /// The CA file.
        ca: PathBuf,
        /// The node name the certificate should carry.
        name: String,
        /// What the check said.
        reason: String,
    },
}

/// The relay's certificate and private key.
#[derive(Debug)]
pub struct RelayIdentity {
    /// DER certificate.
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl RelayIdentity {
    /// Loads the identity from `dir`, creating a fresh self-signed one on first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, TlsError> {
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TlsError::Io { path, source }
        };
        if cert_path.exists() && key_path.exists() {
            let cert = std::fs::read(&cert_path).map_err(io(&cert_path))?;
            let key = std::fs::read(&key_path).map_err(io(&key_path))?;
            return Ok(RelayIdentity {
                cert: cert.into(),
                key: key.into(),
            });
        }
        let made = rcgen::generate_simple_self_signed(vec![
            DEFAULT_SERVER_NAME.to_string(),
            "localhost".to_string(),
        ])?;
        let cert = made.cert.der().clone();
        let key = made.signing_key.serialize_der();
        crate::private_file::write(&key_path, &key).map_err(io(&key_path))?;
        std::fs::write(&cert_path, &cert).map_err(io(&cert_path))?;
        Ok(RelayIdentity {
            cert,
            key: key.into(),
        })
    }

    /// A node identity issued by a cluster CA (`tether-relay cluster join`): the PEM certificate
    /// and PKCS#8 PEM key files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let cert_der = CertificateDer::from_pem_file(cert)
            .map_err(|_| TlsError::BadPem(cert.to_path_buf()))?;
        let key_der = PrivatePkcs8KeyDer::from_pem_file(key)
            .map_err(|_| TlsError::BadPem(key.to_path_buf()))?;
        Ok(RelayIdentity {
            cert: cert_der,
            key: key_der,
        })
    }

    /// [`RelayIdentity::from_pem_files`] from text in memory (a certificate just issued, checked
    /// before it is written); `cert_path` and `key_path` name it in errors.
    pub fn from_pem(
        cert: &str,
        key: &str,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Self, TlsError> {
        let cert_der = CertificateDer::from_pem_slice(cert.as_bytes())
            .map_err(|_| TlsError::BadPem(cert_path.to_path_buf()))?;
        let key_der = PrivatePkcs8KeyDer::from_pem_slice(key.as_bytes())
            .map_err(|_| TlsError::BadPem(key_path.to_path_buf()))?;
        Ok(RelayIdentity {
            cert: cert_der,
            key: key_der,
        })
    }

    /// Checks that this certificate chains to the CA in `ca_file` and names `name`, as a client
    /// trusting that CA checks it (so a node from another cluster is refused at start, not by
    /// every console).
    pub fn check_issued_by(
        &self,
        cert_file: &Path,
        ca_file: &Path,
        name: &str,
    ) -> Result<(), TlsError> {
        let verifier = ca_verifier(ca_file)?;
        let not_issued = |reason: String| TlsError::NotIssuedBy {
            cert: cert_file.to_path_buf(),
            ca: ca_file.to_path_buf(),
            name: name.to_string(),
            reason,
        };
        let server_name =
            ServerName::try_from(name.to_string()).map_err(|e| not_issued(e.to_string()))?;
        verifier
            .verify_server_cert(&self.cert, &[], &server_name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| not_issued(e.to_string()))
    }

    /// SHA-256 fingerprint of the certificate, as lowercase hex.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert)
    }

    /// A rustls server config for this identity, TLS 1.3 only, ALPN `tether/1`.
    pub fn server_crypto(&self) -> Result<rustls::ServerConfig, TlsError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )?;
        cfg.alpn_protocols = vec![tether_proto::ALPN.to_vec()];
        Ok(cfg)
    }
}

/// The one crypto provider everything uses (ring, shared with quinn).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a DER certificate, lowercase hex.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(cert.as_ref()))
}

/// SHA-256 of the first certificate in a PEM file (a cluster CA's, as `cluster init` prints it).
pub fn pem_fingerprint(path: &Path) -> Result<String, TlsError> {
    let cert =
        CertificateDer::from_pem_file(path).map_err(|_| TlsError::BadPem(path.to_path_buf()))?;
    Ok(fingerprint(&cert))
}

/// Normalises a fingerprint as typed by a person: colons and spaces dropped, lowercased.
pub fn parse_fingerprint(s: &str) -> Result<String, TlsError> {
    let clean: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | ' '))
        .collect::<String>()
        .to_ascii_lowercase();
    if clean.len() != 64 || !clean.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(TlsError::BadFingerprint(s.to_string()));
    }
    Ok(clean)
}

/// How a client decides to trust the relay.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Accept only a certificate with this SHA-256 fingerprint (lowercase hex).
    Fingerprint(String),
    /// Verify the certificate chain against the CA certificates in this PEM file.
    CaFile(PathBuf),
}

/// Records the fingerprint a pinning verifier actually saw, so a mismatch can be reported exactly.
#[derive(Debug, Clone, Default)]
pub struct SeenFingerprint(Arc<Mutex<Option<String>>>);

impl SeenFingerprint {
    /// The fingerprint of the last certificate that failed the pin, if any.
    pub fn mismatch(&self) -> Option<String> {
        self.0.lock().ok().and_then(|g| g.clone())
    }
}

/// Builds a TLS 1.3 client config for `trust`.
pub fn client_crypto(trust: &Trust) -> Result<(rustls::ClientConfig, SeenFingerprint), TlsError> {
    let seen = SeenFingerprint::default();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let mut cfg = match trust {
        Trust::Fingerprint(fp) => {
            let verifier = PinnedVerifier::new(parse_fingerprint(fp)?, seen.clone());
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
        Trust::CaFile(path) => builder
            .with_webpki_verifier(ca_verifier(path)?)
            .with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![tether_proto::ALPN.to_vec()];
    Ok((cfg, seen))
}

/// A verifier trusting the CA certificates in the PEM file at `path`.
fn ca_verifier(path: &Path) -> Result<Arc<rustls::client::WebPkiServerVerifier>, TlsError> {
    let bad = || TlsError::BadCaFile(path.to_path_buf());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|_| bad())? {
        roots.add(cert.map_err(|_| bad())?).map_err(|_| bad())?;
    }
    if roots.is_empty() {
        return Err(bad());
    }
    Ok(
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()?,
    )
}

/// Accepts exactly one certificate, by SHA-256 (lowercase hex), and checks the handshake signature
/// against it: the relay's certificate for a client pinning it, and either end's certificate on a
/// session's end-to-end connection ([`crate::e2e`]). A certificate that fails the pin is recorded in
/// `seen`.
#[derive(Debug)]
pub(crate) struct PinnedVerifier {
    expected: String,
    algs: WebPkiSupportedAlgorithms,
    seen: SeenFingerprint,
}

impl PinnedVerifier {
    /// A verifier for the certificate whose SHA-256 is `expected` (lowercase hex).
    pub(crate) fn new(expected: String, seen: SeenFingerprint) -> PinnedVerifier {
        PinnedVerifier {
            expected,
            algs: provider().signature_verification_algorithms,
            seen,
        }
    }

    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let actual = fingerprint(cert);
        if actual == self.expected {
            return Ok(());
        }
        if let Ok(mut g) = self.seen.0.lock() {
            *g = Some(actual);
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ))
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ClientCertVerifier for PinnedVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls12_signature(self, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls13_signature(self, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_then_reloaded() {
        let dir = std::env::temp_dir().join(format!("tether-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = RelayIdentity::load_or_create(&dir).unwrap();
        let b = RelayIdentity::load_or_create(&dir).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "private key readable by others");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A key rewritten over an old file (say, restored from a backup with default permissions, the
    /// certificate lost) is owner-only: the old file's permissions are not reused.
    #[cfg(unix)]
    #[test]
    fn a_rewritten_key_is_owner_only_whatever_the_old_file_was() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tether-tls-rewrite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(KEY_FILE), b"old key").unwrap();
        std::fs::set_permissions(dir.join(KEY_FILE), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let id = RelayIdentity::load_or_create(&dir).unwrap();
        let mode = std::fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "private key readable by others");
        assert_eq!(
            RelayIdentity::load_or_create(&dir).unwrap().fingerprint(),
            id.fingerprint()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fingerprints_parse_with_colons_and_reject_junk() {
        let fp = "AB".repeat(32);
        let with_colons = fp
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_fingerprint(&with_colons).unwrap(), "ab".repeat(32));
        assert!(parse_fingerprint("abc").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }
}
