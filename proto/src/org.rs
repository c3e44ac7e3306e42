//! Trust for sessions without a code: the organisation's signing key, the technician certificates and
//! IT policies it signs, and the device keys made at enrollment.
//!
//! A code session is safe because the relay never learns the code's secret. A session on an enrolled
//! device has no code, so its trust comes from the organisation instead, never from the relay:
//! - IT's admins hold the **org key** ([`OrgSecret`], Ed25519) on their own machine. Its public half
//!   ([`OrgPublic`]) travels to each device out of band, inside the enrollment token, and the device
//!   pins it at enrollment.
//! - Each technician has a key of their own, made on their machine; the org key signs a
//!   [`TechnicianCert`] for it (name, organisation, validity), giving a [`SignedTechnician`].
//! - Each device makes a **device key** at enrollment ([`DeviceSecret`]); its public half goes into
//!   the fleet record, where the technician's console learns it.
//! - What IT allows without anyone present is a [`Policy`], signed by the org key ([`SignedPolicy`]):
//!   the relay can store and forward it but cannot widen it.
//!
//! [`crate::handshake`] runs the authenticated key exchange between a [`SignedTechnician`] and a
//! device key. Everything here is pure: time is passed in, randomness comes from the caller's RNG.
//!
//! Every signature covers a domain label and the bincode encoding of what it signs, so a signature
//! made for one purpose never verifies for another.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec;
use crate::scope::ScopeSet;

/// Longest organisation or technician name in a certificate, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

const CERT_LABEL: &[u8] = b"tether/1 technician certificate\0";
const POLICY_LABEL: &[u8] = b"tether/1 unattended policy\0";

/// Why a key, certificate, policy or handshake was not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// A signature did not verify (forged, tampered with, or made by another key).
    #[error("{0}: the signature does not verify")]
    BadSignature(&'static str),
    /// A certificate or policy names another organisation than the one pinned.
    #[error("{what} is for the organisation {found:?}, not {expected:?}")]
    WrongOrg {
        /// What was checked.
        what: &'static str,
        /// The pinned organisation.
        expected: String,
        /// The one it names.
        found: String,
    },
    /// A certificate is used outside its validity.
    #[error("the technician certificate of {name:?} {when}")]
    NotValidNow {
        /// The technician.
        name: String,
        /// "expired at …" or "is not valid before …".
        when: String,
    },
    /// A key, name or signature has the wrong shape.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// An Ed25519 public key, as 32 bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The key's fingerprint, as people compare it: `SHA256:` and 64 hex digits.
    pub fn fingerprint(&self) -> String {
        format!("SHA256:{}", hex_lower(&Sha256::digest(self.0)))
    }

    fn verifying(&self, what: &'static str) -> Result<VerifyingKey, TrustError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| TrustError::Malformed(what))
    }

    /// Checks `sig` over `label` + `message` with this key.
    pub(crate) fn verify(
        &self,
        what: &'static str,
        label: &[u8],
        message: &[u8],
        sig: &[u8],
    ) -> Result<(), TrustError> {
        let key = self.verifying(what)?;
        let sig: [u8; SIGNATURE_LEN] = sig.try_into().map_err(|_| TrustError::Malformed(what))?;
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        // verify_strict refuses weak keys and non-canonical signatures.
        key.verify_strict(&labelled(label, message), &sig)
            .map_err(|_| TrustError::BadSignature(what))
    }
}

impl std::str::FromStr for PublicKey {
    type Err = TrustError;

    /// Reads 64 hex digits (how keys are written in files and on command lines).
    fn from_str(s: &str) -> Result<Self, TrustError> {
        let out = hex32(s, "public key (expected 64 hex digits)")?;
        VerifyingKey::from_bytes(&out).map_err(|_| TrustError::Malformed("public key"))?;
        Ok(PublicKey(out))
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex_lower(&self.0))
    }
}

/// 32 bytes from exactly 64 hex digits (surrounding white space ignored); anything else is
/// `Malformed(what)`.
fn hex32(s: &str, what: &'static str) -> Result<[u8; 32], TrustError> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TrustError::Malformed(what));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        // Two ASCII hex digits always parse.
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .map_err(|_| TrustError::Malformed(what))?;
    }
    Ok(out)
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn labelled(label: &[u8], message: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(label.len() + message.len());
    m.extend_from_slice(label);
    m.extend_from_slice(message);
    m
}

/// A secret Ed25519 key of any role. `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.public().fingerprint())
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        SecretKey(SigningKey::generate(rng))
    }

    /// The key from its 32 secret bytes (as kept in a private file).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(SigningKey::from_bytes(&bytes))
    }

    /// The 32 secret bytes, for a private file.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The secret as 64 hex digits, how key files hold it.
    pub fn to_hex(&self) -> String {
        hex_lower(&self.to_bytes())
    }

    /// Reads 64 hex digits written by [`SecretKey::to_hex`].
    pub fn from_hex(s: &str) -> Result<Self, TrustError> {
        Ok(SecretKey::from_bytes(hex32(
            s,
            "secret key (expected 64 hex digits)",
        )?))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `label` + `message`.
    pub(crate) fn sign(&self, label: &[u8], message: &[u8]) -> Vec<u8> {
        self.0.sign(&labelled(label, message)).to_bytes().to_vec()
    }
}

/// The organisation's signing key, held by IT's admins (never by the relay).
pub type OrgSecret = SecretKey;
/// The organisation's public key, pinned by every device at enrollment.
pub type OrgPublic = PublicKey;
/// A device's key, made at enrollment and kept by the agent's service.
pub type DeviceSecret = SecretKey;
/// A technician's own key, made on their machine.
pub type TechnicianSecret = SecretKey;

fn check_name(what: &'static str, name: &str) -> Result<(), TrustError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(TrustError::Malformed(what));
    }
    Ok(())
}

/// What the org key vouches for about a technician.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TechnicianCert {
    /// The organisation ("Acme IT").
    pub org: String,
    /// The technician's name as the user will see it.
    pub name: String,
    /// The technician's public key.
    pub key: PublicKey,
    /// Valid from, Unix seconds.
    pub not_before_unix: u64,
    /// Valid until, Unix seconds.
    pub not_after_unix: u64,
}

/// A [`TechnicianCert`] with the org key's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SignedTechnician {
    /// What is vouched for.
    pub cert: TechnicianCert,
    /// The org key's signature over it.
    pub sig: Vec<u8>,
}

impl SignedTechnician {
    /// Signs `cert` with the org key. The names are checked first.
    pub fn issue(org: &OrgSecret, cert: TechnicianCert) -> Result<Self, TrustError> {
        check_name("organisation name", &cert.org)?;
        check_name("technician name", &cert.name)?;
        if cert.not_after_unix <= cert.not_before_unix {
            return Err(TrustError::Malformed("validity (it ends before it begins)"));
        }
        let body = codec::to_body(&cert).map_err(|_| TrustError::Malformed("certificate"))?;
        let sig = org.sign(CERT_LABEL, &body);
        Ok(SignedTechnician { cert, sig })
    }

    /// Checks the certificate against the pinned org key and organisation name at `now_unix`.
    pub fn verify(
        &self,
        org_key: &OrgPublic,
        org_name: &str,
        now_unix: u64,
    ) -> Result<&TechnicianCert, TrustError> {
        let body = codec::to_body(&self.cert).map_err(|_| TrustError::Malformed("certificate"))?;
        org_key.verify("technician certificate", CERT_LABEL, &body, &self.sig)?;
        let c = &self.cert;
        check_name("technician name", &c.name)?;
        if c.org != org_name {
            return Err(TrustError::WrongOrg {
                what: "the technician certificate",
                expected: org_name.to_owned(),
                found: c.org.clone(),
            });
        }
        if now_unix < c.not_before_unix {
            return Err(TrustError::NotValidNow {
                name: c.name.clone(),
                when: format!("is not valid before {}", c.not_before_unix),
            });
        }
        if now_unix >= c.not_after_unix {
            return Err(TrustError::NotValidNow {
                name: c.name.clone(),
                when: format!("expired at {}", c.not_after_unix),
            });
        }
        Ok(c)
    }
}

/// What IT allows on its enrolled devices when nobody answers a consent dialog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Policy {
    /// The organisation.
    pub org: String,
    /// The scopes a signed technician may use unattended (empty: attended only).
    pub unattended: ScopeSet,
    /// Increases with each new policy; a device never accepts an older one than it holds.
    pub version: u64,
    /// Technician keys IT revoked (a stolen laptop, someone who left): the device refuses them
    /// whatever their certificate says, from the moment it holds this policy.
    pub revoked: Vec<PublicKey>,
}

/// A [`Policy`] with the org key's signature: the relay stores and forwards it, but cannot change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SignedPolicy {
    /// The policy.
    pub policy: Policy,
    /// The org key's signature over it.
    pub sig: Vec<u8>,
}

impl SignedPolicy {
    /// Signs `policy` with the org key.
    pub fn issue(org: &OrgSecret, policy: Policy) -> Result<Self, TrustError> {
        check_name("organisation name", &policy.org)?;
        let body = codec::to_body(&policy).map_err(|_| TrustError::Malformed("policy"))?;
        let sig = org.sign(POLICY_LABEL, &body);
        Ok(SignedPolicy { policy, sig })
    }

    /// Checks the policy against the pinned org key and name.
    pub fn verify(&self, org_key: &OrgPublic, org_name: &str) -> Result<&Policy, TrustError> {
        let body = codec::to_body(&self.policy).map_err(|_| TrustError::Malformed("policy"))?;
        org_key.verify("policy", POLICY_LABEL, &body, &self.sig)?;
        if self.policy.org != org_name {
            return Err(TrustError::WrongOrg {
                what: "the policy",
                expected: org_name.to_owned(),
                found: self.policy.org.clone(),
            });
        }
        Ok(&self.policy)
    }

    /// Whether this (checked) policy may replace `held`: only a newer version does.
    pub fn replaces(&self, held: &Policy) -> bool {
        self.policy.version > held.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scope;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn cert(key: PublicKey) -> TechnicianCert {
        TechnicianCert {
            org: "Acme IT".into(),
            name: "Ada Lovelace".into(),
            key,
            not_before_unix: 1_000,
            not_after_unix: 2_000,
        }
    }

    #[test]
    fn a_certificate_verifies_only_under_its_org_key_name_and_validity() {
        let mut r = rng();
        let org = SecretKey::generate(&mut r);
        let other = SecretKey::generate(&mut r);
        let tech = SecretKey::generate(&mut r);
        let signed = SignedTechnician::issue(&org, cert(tech.public())).unwrap();
        assert_eq!(
            signed.verify(&org.public(), "Acme IT", 1_500).unwrap().name,
            "Ada Lovelace"
        );
        assert_eq!(
            signed.verify(&other.public(), "Acme IT", 1_500),
            Err(TrustError::BadSignature("technician certificate"))
        );
        assert!(matches!(
            signed.verify(&org.public(), "Globex", 1_500),
            Err(TrustError::WrongOrg { .. })
        ));
        assert!(matches!(
            signed.verify(&org.public(), "Acme IT", 2_000),
            Err(TrustError::NotValidNow { .. })
        ));
        assert!(matches!(
            signed.verify(&org.public(), "Acme IT", 999),
            Err(TrustError::NotValidNow { .. })
        ));
    }

    #[test]
    fn a_changed_certificate_or_signature_does_not_verify() {
        let mut r = rng();
        let org = SecretKey::generate(&mut r);
        let tech = SecretKey::generate(&mut r);
        let mallory = SecretKey::generate(&mut r);
        let signed = SignedTechnician::issue(&org, cert(tech.public())).unwrap();

        let mut swapped = signed.clone();
        swapped.cert.key = mallory.public();
        assert_eq!(
            swapped.verify(&org.public(), "Acme IT", 1_500),
            Err(TrustError::BadSignature("technician certificate"))
        );
        let mut longer = signed.clone();
        longer.cert.not_after_unix = u64::MAX;
        assert!(longer.verify(&org.public(), "Acme IT", 1_500).is_err());
        let mut short = signed.clone();
        short.sig.pop();
        assert_eq!(
            short.verify(&org.public(), "Acme IT", 1_500),
            Err(TrustError::Malformed("technician certificate"))
        );
        let mut flipped = signed;
        flipped.sig[10] ^= 1;
        assert!(flipped.verify(&org.public(), "Acme IT", 1_500).is_err());
    }

    #[test]
    fn a_policy_signature_never_verifies_as_a_certificate() {
        let mut r = rng();
        let org = SecretKey::generate(&mut r);
        let policy = SignedPolicy::issue(
            &org,
            Policy {
                org: "Acme IT".into(),
                unattended: [Scope::Inventory].into_iter().collect(),
                version: 1,
                revoked: Vec::new(),
            },
        )
        .unwrap();
        assert_eq!(policy.verify(&org.public(), "Acme IT").unwrap().version, 1);
        let body = codec::to_body(&policy.policy).unwrap();
        assert!(
            org.public()
                .verify("x", CERT_LABEL, &body, &policy.sig)
                .is_err()
        );
        let mut wider = policy.clone();
        wider.policy.unattended = ScopeSet::all();
        assert_eq!(
            wider.verify(&org.public(), "Acme IT"),
            Err(TrustError::BadSignature("policy"))
        );
        let newer = SignedPolicy::issue(
            &org,
            Policy {
                version: 2,
                ..policy.policy.clone()
            },
        )
        .unwrap();
        assert!(newer.replaces(&policy.policy));
        assert!(!policy.replaces(&newer.policy));
    }

    #[test]
    fn names_and_keys_are_checked() {
        let mut r = rng();
        let org = SecretKey::generate(&mut r);
        let mut c = cert(org.public());
        c.name = "Ada\nLovelace".into();
        assert!(SignedTechnician::issue(&org, c).is_err());
        let mut c = cert(org.public());
        c.not_after_unix = c.not_before_unix;
        assert!(SignedTechnician::issue(&org, c).is_err());

        let k = org.public();
        assert_eq!(k.to_string().parse::<PublicKey>().unwrap(), k);
        assert!("zz".parse::<PublicKey>().is_err());
        assert!(k.fingerprint().starts_with("SHA256:"));
        assert_eq!(SecretKey::from_bytes(org.to_bytes()).public(), k);
        assert!(!format!("{org:?}").contains(&hex_lower(&org.to_bytes())));
    }
}
