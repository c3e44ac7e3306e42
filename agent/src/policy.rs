//! What IT decides for this machine, and what the agent remembers between sessions.
//!
//! - [`Policy`]: IT can pin the organisations allowed to connect (`allowed_orgs` in the agent's config
//!   file). A claim by a technician of another organisation is declined before any pairing or prompt.
//! - [`KnownOrgs`]: organisations this machine has granted access to before. A prompt from an
//!   organisation that is not among them carries a plain warning, because a scammer's "support
//!   company" is by definition new to the victim.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tether_proto::msg::TechnicianIdentity;

/// The default config file.
pub const DEFAULT_CONFIG: &str = "/etc/tether/agent.toml";

/// Errors reading the config.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("agent config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("agent config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: toml::de::Error,
    },
}

/// IT's agent config file (`/etc/tether/agent.toml`): which relay to use and how to trust it, and
/// the rules for this machine. `tether-relay agent-config` writes one for the relay it runs on.
///
/// ```toml
/// relay = "relay.example.org:4433"
/// relay_cert_sha256 = "81c22b7b…"     # or relay_ca_file = "/etc/tether/relay-ca.pem"
/// allowed_orgs = ["Acme IT"]
/// relay_only = false                  # true: sessions never take a direct path
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Relay address, host:port.
    pub relay: Option<String>,
    /// The relay certificate's SHA-256 fingerprint.
    pub relay_cert_sha256: Option<String>,
    /// A PEM file of CA certificates to verify the relay with.
    pub relay_ca_file: Option<PathBuf>,
    /// If set, only technicians of these organisations may even start pairing.
    pub allowed_orgs: Option<Vec<String>>,
    /// Where files a technician sends land (default `~/Downloads/Tether`); `share --files-dir`
    /// overrides it.
    pub files_dir: Option<PathBuf>,
    /// The folders a technician may list and fetch files from (default: the user's home);
    /// `share --files-root` overrides it.
    pub files_roots: Option<Vec<PathBuf>>,
    /// Other nodes of the relay's cluster (`host:port`), tried in turn when the relay is lost;
    /// `share --other-relay` overrides it.
    pub other_relays: Option<Vec<String>>,
    /// Sessions stay on the relay: no direct path to the technician is tried and this machine's
    /// addresses are not offered (for networks that must not see peer addresses). `--relay-only`
    /// can set it, never unset it.
    #[serde(default)]
    pub relay_only: bool,
}

impl AgentConfig {
    /// Reads a config file; a missing default file is an empty config, a missing explicit one an error.
    pub fn load(path: &Path, explicit: bool) -> Result<AgentConfig, PolicyError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(AgentConfig::default());
            }
            Err(source) => {
                return Err(PolicyError::Io {
                    path: path.into(),
                    source,
                });
            }
        };
        toml::from_str(&text).map_err(|source| PolicyError::Parse {
            path: path.into(),
            source,
        })
    }

    /// The relay settings, for flags and the environment to fill in or override.
    pub fn relay_defaults(&self) -> tether_net::cli::RelayDefaults {
        tether_net::cli::RelayDefaults {
            relay: self.relay.clone(),
            relay_cert_sha256: self.relay_cert_sha256.clone(),
            relay_ca_file: self.relay_ca_file.clone(),
            relay_only: self.relay_only,
        }
    }

    /// IT's rules from this file.
    pub fn policy(&self) -> Policy {
        Policy {
            allowed_orgs: self.allowed_orgs.clone(),
        }
    }
}

/// IT's rules for this agent.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// If set, only technicians of these organisations may even start pairing.
    pub allowed_orgs: Option<Vec<String>>,
}

impl Policy {
    /// Reads the rules from a config file (see [`AgentConfig::load`]).
    pub fn load(path: &Path, explicit: bool) -> Result<Policy, PolicyError> {
        AgentConfig::load(path, explicit).map(|c| c.policy())
    }

    /// `Err(reason)` when this technician may not connect here.
    pub fn check(&self, technician: &TechnicianIdentity) -> Result<(), String> {
        match &self.allowed_orgs {
            Some(orgs) if !orgs.iter().any(|o| o == &technician.org) => Err(format!(
                "this computer only accepts support from {}; {:?} is not one of them",
                orgs.join(", "),
                technician.org
            )),
            _ => Ok(()),
        }
    }
}

/// Organisations this machine has granted access to before (`known-orgs.json` in the state dir).
#[derive(Debug, Clone)]
pub struct KnownOrgs {
    path: Option<PathBuf>,
}

impl KnownOrgs {
    /// Known orgs kept in `state_dir`; with `None`, every organisation counts as new.
    pub fn new(state_dir: Option<&Path>) -> Self {
        KnownOrgs {
            path: state_dir.map(|d| d.join("known-orgs.json")),
        }
    }

    fn load(&self) -> Vec<String> {
        self.path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Whether `org` was granted access here before.
    pub fn is_known(&self, org: &str) -> bool {
        self.load().iter().any(|o| o == org)
    }

    /// Remembers `org` after the user granted it something.
    pub fn remember(&self, org: &str) {
        let Some(path) = &self.path else { return };
        let mut all = self.load();
        if all.iter().any(|o| o == org) {
            return;
        }
        all.push(org.to_string());
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(json) = serde_json::to_vec_pretty(&all)
            && let Err(e) = std::fs::write(path, json)
        {
            tracing::warn!(error = %e, "cannot remember the organisation");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::msg::TechnicianRole;

    fn tech(org: &str) -> TechnicianIdentity {
        TechnicianIdentity {
            name: "Ada".into(),
            org: org.into(),
            role: TechnicianRole::Technician,
            tier: tether_proto::msg::Tier::L1,
        }
    }

    #[test]
    fn pinned_orgs_decline_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "allowed_orgs = [\"Acme IT\"]\n").unwrap();
        let p = Policy::load(&path, true).unwrap();
        assert!(p.check(&tech("Acme IT")).is_ok());
        let why = p.check(&tech("Totally Legit Support")).unwrap_err();
        assert!(why.contains("only accepts support from Acme IT"), "{why}");
        assert!(Policy::default().check(&tech("anyone")).is_ok());
        assert!(
            Policy::load(&dir.path().join("missing.toml"), false)
                .unwrap()
                .allowed_orgs
                .is_none()
        );
        assert!(Policy::load(&dir.path().join("missing.toml"), true).is_err());
        std::fs::write(&path, "allowed_org = [\"typo\"]\n").unwrap();
        assert!(matches!(
            Policy::load(&path, true),
            Err(PolicyError::Parse { .. })
        ));
    }

    #[test]
    fn the_config_file_carries_the_relay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let fp = "ab".repeat(32);
        std::fs::write(
            &path,
            format!(
                "relay = \"relay.example.org:4433\"\nrelay_cert_sha256 = \"{fp}\"\nallowed_orgs = [\"Acme IT\"]\n"
            ),
        )
        .unwrap();
        let c = AgentConfig::load(&path, true).unwrap();
        let d = c.relay_defaults();
        assert_eq!(d.relay.as_deref(), Some("relay.example.org:4433"));
        assert_eq!(d.relay_cert_sha256.as_deref(), Some(fp.as_str()));
        assert_eq!(c.policy().allowed_orgs, Some(vec!["Acme IT".to_string()]));
    }

    #[test]
    fn orgs_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownOrgs::new(Some(dir.path()));
        assert!(!known.is_known("Acme IT"));
        known.remember("Acme IT");
        assert!(KnownOrgs::new(Some(dir.path())).is_known("Acme IT"));
        assert!(!KnownOrgs::new(None).is_known("Acme IT"));
    }
}
