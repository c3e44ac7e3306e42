//! Enrollment and the device's local state: identity, report queue, last snapshot.
//!
//! # Device secret and device key
//! Enrollment makes two things, for two jobs:
//! - The **device secret**, 32 random bytes, proves the device to the relay. The relay only ever
//!   stores its SHA-256, and at enrollment only the hash travels; on every later connection the
//!   device presents the secret inside the pinned TLS channel, and every report on that connection
//!   is bound to the proven device id. A stolen relay database does not let anyone impersonate a
//!   device to the relay.
//! - The **device key** (Ed25519, `tether_proto::org`) proves the device to a technician in a session
//!   without a code, where the relay is not trusted at all: its public half goes to the relay's fleet
//!   record at enrollment, where the technician's console reads it; its secret never leaves this
//!   directory.
//!
//! The token may carry the organisation's public key after a `.` (`EnrollToken`); the device pins
//! it, and only technicians that key signed ever get a session without a code.
//!
//! # Files in the data directory (all mode 0600)
//! - `identity.json`: device id, org, secret, device key, pinned org key, relay address and pin.
//! - `state.json`: next report number, last acknowledged one, the base of the next delta.
//! - `base.bin`: the inventory of the newest queued report (what the next delta is made against).
//! - `queue/<seq>.report`: reports not yet acknowledged, oldest first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tether_net::client::{self, RelayTarget};
use tether_net::framed;
use tether_net::{ConnectError, FrameError, Trust};
use tether_proto::codec;
use tether_proto::fleet::{DeviceToRelay, EnrollToken, FleetError, RelayToDevice};
use tether_proto::inventory::Inventory;
use tether_proto::msg::{Role, close};
use tether_proto::org::{DeviceSecret, OrgPublic, Policy, SignedPolicy};

/// Identity file name.
pub const IDENTITY: &str = "identity.json";
/// State file name.
pub const STATE: &str = "state.json";
/// Base snapshot file name.
pub const BASE: &str = "base.bin";
/// Held unattended policy file name.
pub const POLICY: &str = "policy.json";
/// Queue directory name.
pub const QUEUE: &str = "queue";

/// Errors enrolling or using the local state.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The relay could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The relay broke protocol or the connection dropped.
    #[error("relay connection: {0}")]
    Frame(#[from] FrameError),
    /// The relay refused (unknown, expired or used token, ...).
    #[error("enrollment refused: {0}")]
    Refused(FleetError),
    /// The relay answered something unexpected.
    #[error("unexpected answer from the relay: {0}")]
    Unexpected(String),
    /// This machine is already enrolled.
    #[error(
        "this machine is already enrolled as {device_id} (in {dir}); remove that directory to enroll again"
    )]
    AlreadyEnrolled {
        /// The existing id.
        device_id: String,
        /// The data directory.
        dir: PathBuf,
    },
    /// This machine is not enrolled.
    #[error("not enrolled: no {IDENTITY} in {0}; run `tether-agent enroll` first")]
    NotEnrolled(PathBuf),
    /// The token was damaged before anything was sent.
    #[error(transparent)]
    Token(#[from] tether_proto::fleet::TokenError),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A local file is corrupt.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The device's identity, stored at enrollment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// Id the relay assigned.
    pub device_id: String,
    /// Org the enrollment token belonged to.
    pub org: String,
    /// The device secret (hex). Never logged.
    pub secret: String,
    /// Relay address.
    pub relay: String,
    /// Relay certificate fingerprint, when pinned.
    pub relay_cert_sha256: Option<String>,
    /// Relay CA file, when used instead.
    pub relay_ca_file: Option<PathBuf>,
    /// Enrollment time, Unix seconds.
    pub enrolled_unix: u64,
    /// The device key's secret (hex), made at enrollment: it signs this device's side of a
    /// session without a code. Never logged. `None` for a device enrolled before device keys.
    #[serde(default)]
    pub device_key: Option<String>,
    /// The organisation's public key, pinned from the enrollment token: only technicians it signed
    /// get a session without a code. `None` when the token carried none (then such sessions are
    /// refused).
    #[serde(default)]
    pub org_key: Option<OrgPublic>,
}

impl Identity {
    /// The device key, if this identity has a well-formed one.
    pub fn device_secret(&self) -> Option<DeviceSecret> {
        DeviceSecret::from_hex(self.device_key.as_deref()?).ok()
    }

    /// The relay target this identity reports to.
    pub fn target(&self) -> RelayTarget {
        let trust = match (&self.relay_cert_sha256, &self.relay_ca_file) {
            (Some(fp), _) => Trust::Fingerprint(fp.clone()),
            (None, Some(ca)) => Trust::CaFile(ca.clone()),
            // Enrollment always records one of them; an edited file without either fails the
            // handshake with a clear fingerprint error instead of skipping verification.
            (None, None) => Trust::Fingerprint(String::new()),
        };
        RelayTarget {
            addr: self.relay.clone(),
            trust,
            connect_timeout: client::CONNECT_TIMEOUT,
            direct: Default::default(),
        }
    }
}

/// Reporting state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// Number of the next report.
    pub next_seq: u64,
    /// Last report the relay acknowledged.
    pub acked_seq: Option<u64>,
    /// Report number of `base.bin`.
    pub base_seq: Option<u64>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EnrollError + '_ {
    move |source| EnrollError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically, durably, owner-only ([`tether_net::private_file`]).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), EnrollError> {
    tether_net::private_file::write(path, bytes).map_err(io(path))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, EnrollError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| EnrollError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), EnrollError> {
    let b = serde_json::to_vec_pretty(v).map_err(|e| EnrollError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_private(path, &b)
}

/// The agent's data directory for enrollment and reporting.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// Its path.
    pub path: PathBuf,
}

impl DataDir {
    /// The directory at `path` (created on first write).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataDir { path: path.into() }
    }

    /// `$TETHER_AGENT_DATA`, else `$XDG_DATA_HOME/tether-agent`, else `~/.local/share/tether-agent`.
    pub fn default_path() -> PathBuf {
        if let Some(d) = std::env::var_os("TETHER_AGENT_DATA") {
            return d.into();
        }
        if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
            return PathBuf::from(d).join("tether-agent");
        }
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(".local/share/tether-agent");
        }
        PathBuf::from("tether-agent-data")
    }

    fn ensure(&self) -> Result<(), EnrollError> {
        std::fs::create_dir_all(self.path.join(QUEUE)).map_err(io(&self.path))
    }

    /// The identity, if enrolled.
    pub fn identity(&self) -> Result<Option<Identity>, EnrollError> {
        read_json(&self.path.join(IDENTITY))
    }

    /// The identity, or [`EnrollError::NotEnrolled`].
    pub fn require_identity(&self) -> Result<Identity, EnrollError> {
        self.identity()?
            .ok_or_else(|| EnrollError::NotEnrolled(self.path.clone()))
    }

    /// Reporting state (default when none yet).
    pub fn state(&self) -> Result<State, EnrollError> {
        Ok(read_json(&self.path.join(STATE))?.unwrap_or(State {
            next_seq: 1,
            ..State::default()
        }))
    }

    /// Saves the reporting state.
    pub fn save_state(&self, s: &State) -> Result<(), EnrollError> {
        self.ensure()?;
        write_json(&self.path.join(STATE), s)
    }

    /// The base snapshot of the next delta.
    pub fn base(&self) -> Result<Option<Inventory>, EnrollError> {
        let p = self.path.join(BASE);
        match std::fs::read(&p) {
            Ok(b) => codec::from_body(&b)
                .map(Some)
                .map_err(|e| EnrollError::Corrupt {
                    path: p,
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// Saves the base snapshot.
    pub fn save_base(&self, inv: &Inventory) -> Result<(), EnrollError> {
        self.ensure()?;
        let p = self.path.join(BASE);
        let b = codec::to_body(inv).map_err(|e| EnrollError::Corrupt {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        write_private(&p, &b)
    }

    /// Queued report files, oldest first, as (seq, path).
    pub fn queued(&self) -> Result<Vec<(u64, PathBuf)>, EnrollError> {
        let dir = self.path.join(QUEUE);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut out: Vec<(u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let seq = name.strip_suffix(".report")?.parse().ok()?;
                Some((seq, e.path()))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Path of queued report `seq`.
    pub fn queue_path(&self, seq: u64) -> PathBuf {
        self.path.join(QUEUE).join(format!("{seq:020}.report"))
    }

    /// Enqueues an encoded report.
    pub fn enqueue(&self, seq: u64, body: &[u8]) -> Result<(), EnrollError> {
        self.ensure()?;
        write_private(&self.queue_path(seq), body)
    }

    /// Drops every queued report.
    pub fn clear_queue(&self) -> Result<(), EnrollError> {
        for (_, p) in self.queued()? {
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
        Ok(())
    }
}

/// What became of a policy the relay forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyOutcome {
    /// Signed by the pinned org key for this organisation and newer: it now holds.
    Adopted(Policy),
    /// The very policy already held.
    Held,
    /// Not taken, and why; the held policy (if any) stays.
    Refused(String),
}

impl DataDir {
    /// The unattended policy this device holds (`None`: attended only).
    pub fn policy(&self) -> Result<Option<SignedPolicy>, EnrollError> {
        read_json(&self.path.join(POLICY))
    }

    /// The policy this device holds, checked again under the org key pinned in `id` (`None`
    /// without one, or if it does not verify).
    pub fn verified_policy(&self, id: &Identity) -> Option<tether_proto::org::Policy> {
        let held = self.policy().ok()??;
        Some(held.verify(&id.org_key?, &id.org).ok()?.clone())
    }

    /// What the held policy allows unattended (nothing without one).
    pub fn unattended_scopes(&self, id: &Identity) -> tether_proto::ScopeSet {
        self.verified_policy(id)
            .map_or(tether_proto::ScopeSet::EMPTY, |p| p.unattended)
    }

    /// Takes `offered` if the org key pinned in `id` signed it for `id`'s organisation and it is
    /// newer than the held one. The relay can only withhold a policy, never widen or roll one back.
    pub fn adopt_policy(
        &self,
        id: &Identity,
        offered: SignedPolicy,
    ) -> Result<PolicyOutcome, EnrollError> {
        let Some(org_key) = &id.org_key else {
            return Ok(PolicyOutcome::Refused(
                "no organisation key is pinned on this device, so no policy can be checked".into(),
            ));
        };
        if let Err(e) = offered.verify(org_key, &id.org) {
            return Ok(PolicyOutcome::Refused(format!(
                "the policy is not the organisation's: {e}"
            )));
        }
        if let Some(held) = self.policy()? {
            if held == offered {
                return Ok(PolicyOutcome::Held);
            }
            if !offered.replaces(&held.policy) {
                return Ok(PolicyOutcome::Refused(format!(
                    "policy version {} is not newer than version {} held here",
                    offered.policy.version, held.policy.version
                )));
            }
        }
        write_json(&self.path.join(POLICY), &offered)?;
        Ok(PolicyOutcome::Adopted(offered.policy))
    }
}

/// What `enroll` needs.
#[derive(Debug, Clone)]
pub struct EnrollConfig {
    /// The relay.
    pub relay: RelayTarget,
    /// The enrollment token.
    pub token: String,
    /// Where to keep the identity.
    pub data_dir: DataDir,
    /// The host name to register under.
    pub hostname: String,
}

/// Enrolls this machine: makes the device secret, registers with the relay, stores the identity.
pub async fn enroll(cfg: &EnrollConfig) -> Result<Identity, EnrollError> {
    if let Some(id) = cfg.data_dir.identity()? {
        return Err(EnrollError::AlreadyEnrolled {
            device_id: id.device_id,
            dir: cfg.data_dir.path.clone(),
        });
    }
    let token: EnrollToken = cfg.token.parse()?;
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let secret = hex::encode(raw);
    let device_key = DeviceSecret::generate(&mut rand::thread_rng());
    let relay = client::connect(&cfg.relay).await?;
    let result = async {
        let (mut send, mut recv) = client::open_control(&relay.conn, Role::Device).await?;
        framed::write_msg(
            &mut send,
            &DeviceToRelay::Enroll {
                token: token.token.clone(),
                secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
                hostname: cfg.hostname.clone(),
                device_key: device_key.public(),
            },
        )
        .await?;
        match tokio::time::timeout(
            Duration::from_secs(30),
            framed::read_msg::<RelayToDevice>(&mut recv),
        )
        .await
        .map_err(|_| EnrollError::Unexpected("no answer in 30 s".into()))??
        {
            RelayToDevice::Enrolled { device_id, org } => Ok((device_id, org)),
            RelayToDevice::Error(e) => Err(EnrollError::Refused(e)),
            other => Err(EnrollError::Unexpected(format!("{other:?}"))),
        }
    }
    .await;
    relay.close(close::NORMAL, "enrolled").await;
    let (device_id, org) = result?;
    let (relay_cert_sha256, relay_ca_file) = match &cfg.relay.trust {
        Trust::Fingerprint(f) => (Some(f.clone()), None),
        Trust::CaFile(p) => (None, Some(p.clone())),
    };
    let identity = Identity {
        device_id,
        org,
        secret,
        relay: cfg.relay.addr.clone(),
        relay_cert_sha256,
        relay_ca_file,
        enrolled_unix: crate::inventory::now_unix(),
        device_key: Some(device_key.to_hex()),
        org_key: token.org_key,
    };
    cfg.data_dir.ensure()?;
    write_json(&cfg.data_dir.path.join(IDENTITY), &identity)?;
    cfg.data_dir.save_state(&State {
        next_seq: 1,
        ..State::default()
    })?;
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::Scope;
    use tether_proto::org::OrgSecret;

    fn identity(org_key: Option<OrgPublic>) -> Identity {
        Identity {
            device_id: "dev_1".into(),
            org: "Acme IT".into(),
            secret: "00".repeat(32),
            relay: "127.0.0.1:1".into(),
            relay_cert_sha256: Some(String::new()),
            relay_ca_file: None,
            enrolled_unix: 0,
            device_key: None,
            org_key,
        }
    }

    fn policy(key: &OrgSecret, version: u64, scopes: &[Scope]) -> SignedPolicy {
        SignedPolicy::issue(
            key,
            Policy {
                org: "Acme IT".into(),
                unattended: scopes.iter().copied().collect(),
                version,
                revoked: Vec::new(),
            },
        )
        .unwrap()
    }

    #[test]
    fn a_policy_is_taken_only_signed_for_this_org_and_newer() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let org = OrgSecret::generate(&mut rand::thread_rng());
        let id = identity(Some(org.public()));
        let v3 = policy(&org, 3, &[Scope::Inventory]);

        // Nothing pinned: nothing can be checked, so nothing is taken.
        let unpinned = data.adopt_policy(&identity(None), v3.clone()).unwrap();
        assert!(
            matches!(unpinned, PolicyOutcome::Refused(_)),
            "{unpinned:?}"
        );
        assert_eq!(data.policy().unwrap(), None);

        assert_eq!(
            data.adopt_policy(&id, v3.clone()).unwrap(),
            PolicyOutcome::Adopted(v3.policy.clone())
        );
        assert_eq!(
            data.adopt_policy(&id, v3.clone()).unwrap(),
            PolicyOutcome::Held
        );
        // A rollback to a wider, older (genuinely signed) policy, and a same-numbered other one.
        let v2 = policy(&org, 2, &[Scope::View, Scope::Control]);
        let rollback = data.adopt_policy(&id, v2).unwrap();
        assert!(
            matches!(&rollback, PolicyOutcome::Refused(r) if r.contains("not newer")),
            "{rollback:?}"
        );
        let twin = policy(&org, 3, &[Scope::View]);
        assert!(matches!(
            data.adopt_policy(&id, twin).unwrap(),
            PolicyOutcome::Refused(_)
        ));
        assert_eq!(data.policy().unwrap(), Some(v3));
    }
}
