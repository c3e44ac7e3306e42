//! What IT deploys: the relay's own config file, the agent config that knows this relay, and an agent
//! package with that config inside.
//!
//! - [`RelayFile`]: `/etc/tether-relay/relay.toml` (or `serve --config FILE`); flags win over it.
//! - [`agent_config`]: the `agent.toml` an agent needs to reach this relay and trust only it.
//! - [`agent_package`]: an agent `.deb` repacked with that file as `/etc/tether/agent.toml`, so a user
//!   who installs it and clicks the icon gets a window with a code and nothing to configure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use tether_net::tls::RelayIdentity;

/// The relay's config file when `--config` is not given (read only if it exists).
pub const DEFAULT_RELAY_CONFIG: &str = "/etc/tether-relay/relay.toml";

/// Where the relay package keeps the agent package that [`agent_package`] starts from.
pub const DEFAULT_AGENT_DEB: &str = "/usr/share/tether-relay/tether-agent.deb";

/// Where the agent package puts its config.
const AGENT_CONFIG_PATH: &str = "etc/tether/agent.toml";

/// Errors of the deployment commands.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The relay config file is not valid.
    #[error("relay config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: toml::de::Error,
    },
    /// The relay's certificate could not be loaded or made.
    #[error("relay certificate: {0}")]
    Identity(#[from] tether_net::tls::TlsError),
    /// The organisation name is empty or has characters that do not belong in a name.
    #[error("--org must be a non-empty organisation name without control or format characters")]
    BadOrg,
    /// No address agents could use to reach this relay.
    #[error(
        "no public address for this relay: pass --address HOST:PORT (the name agents connect to), \
         or set public_address in the relay config file"
    )]
    NoAddress,
    /// `dpkg-deb` is missing or failed.
    #[error("{0}")]
    Dpkg(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DeployError + '_ {
    move |source| DeployError::Io {
        path: path.into(),
        source,
    }
}

/// The relay's config file. Every field is optional; a flag given on the command line wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayFile {
    /// UDP address to listen on.
    pub listen: Option<SocketAddr>,
    /// State directory (certificate, technicians, audit log, fleet).
    pub data_dir: Option<PathBuf>,
    /// The host:port agents and consoles use to reach this relay (for `agent-config`).
    pub public_address: Option<String>,
    /// Connections served at once.
    pub max_connections: Option<usize>,
    /// Claims one technician may make per minute.
    pub claims_per_minute: Option<usize>,
    /// Claims one source address may make per minute.
    pub claims_per_address_per_minute: Option<usize>,
    /// Serve Prometheus metrics on this address.
    pub metrics: Option<SocketAddr>,
    /// The PostgreSQL database of a relay cluster (`postgres://…`); SQLite when absent.
    pub database: Option<String>,
    /// Serve as the cluster node in this directory (`tether-relay cluster join --out`).
    pub node_dir: Option<PathBuf>,
    /// The cluster CA certificate the node's certificate must be issued by.
    pub cluster_ca: Option<PathBuf>,
}

impl RelayFile {
    /// Reads `path`; a missing default file is an empty config, a missing explicit one an error.
    pub fn load(path: &Path, explicit: bool) -> Result<RelayFile, DeployError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RelayFile::default());
            }
            Err(e) => return Err(io(path)(e)),
        };
        toml::from_str(&text).map_err(|source| DeployError::Parse {
            path: path.into(),
            source,
        })
    }
}

/// The agent's config file, as the agent reads it (`tether_agent::policy::AgentConfig`).
#[derive(Debug, Serialize)]
struct AgentFile<'a> {
    relay: &'a str,
    relay_cert_sha256: &'a str,
    allowed_orgs: [&'a str; 1],
}

fn check_org(org: &str) -> Result<&str, DeployError> {
    let org = org.trim();
    if org.is_empty() || org.chars().any(tether_proto::text::is_hidden) {
        return Err(DeployError::BadOrg);
    }
    Ok(org)
}

/// The `agent.toml` for agents of `org` that reach this relay (data in `data_dir`) at `address`: the
/// address, the certificate fingerprint to pin, and `allowed_orgs = [org]`. Makes the relay's
/// certificate if it has none yet, exactly as `serve` would.
pub fn agent_config(data_dir: &Path, org: &str, address: &str) -> Result<String, DeployError> {
    let org = check_org(org)?;
    if address.trim().is_empty() {
        return Err(DeployError::NoAddress);
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let fingerprint = RelayIdentity::load_or_create(data_dir)?.fingerprint();
    let body = toml::to_string(&AgentFile {
        relay: address.trim(),
        relay_cert_sha256: &fingerprint,
        allowed_orgs: [org],
    })
    .map_err(|e| DeployError::Dpkg(format!("writing the agent config: {e}")))?;
    Ok(format!(
        "# Tether agent configuration for {org}, written by `tether-relay agent-config`.\n\
         # The agent connects to this relay, trusts only its certificate, and accepts only\n\
         # technicians of {org}.\n{body}"
    ))
}

/// A Debian version suffix naming the organisation: lower-case letters and digits, dots between words.
fn version_suffix(org: &str) -> String {
    let words: Vec<String> = org
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if words.is_empty() {
        "org".into()
    } else {
        words.join(".")
    }
}

fn dpkg_deb(args: &[&std::ffi::OsStr]) -> Result<String, DeployError> {
    let out = Command::new("dpkg-deb").args(args).output().map_err(|e| {
        DeployError::Dpkg(format!(
            "cannot run dpkg-deb ({e}); install the Debian package dpkg"
        ))
    })?;
    if !out.status.success() {
        return Err(DeployError::Dpkg(format!(
            "dpkg-deb failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Repacks the agent package `agent_deb` with `config` (from [`agent_config`]) as
/// `/etc/tether/agent.toml`, marked as a conffile, and its version suffixed with the organisation
/// (`0.1.0+acme.it`). Writes it into `out_dir` and returns its path.
pub fn agent_package(
    agent_deb: &Path,
    config: &str,
    org: &str,
    out_dir: &Path,
) -> Result<PathBuf, DeployError> {
    let org = check_org(org)?;
    if !agent_deb.is_file() {
        return Err(DeployError::Dpkg(format!(
            "no agent package at {}: pass --agent-deb with the tether-agent .deb (the relay package \
             installs one at {DEFAULT_AGENT_DEB})",
            agent_deb.display()
        )));
    }
    let work = tempfile::tempdir().map_err(io(Path::new("temporary directory")))?;
    let root = work.path().join("root");
    dpkg_deb(&["-R".as_ref(), agent_deb.as_os_str(), root.as_os_str()])?;
    let control_path = root.join("DEBIAN/control");
    let control = std::fs::read_to_string(&control_path).map_err(io(&control_path))?;
    let suffix = version_suffix(org);
    let mut version = String::new();
    let control: String = control
        .lines()
        .map(|l| match l.strip_prefix("Version: ") {
            Some(v) => {
                version = format!("{}+{suffix}", v.trim());
                format!("Version: {version}\n")
            }
            None => format!("{l}\n"),
        })
        .collect();
    if version.is_empty() {
        return Err(DeployError::Dpkg(format!(
            "{} has no Version field",
            agent_deb.display()
        )));
    }
    std::fs::write(&control_path, control).map_err(io(&control_path))?;
    let config_path = root.join(AGENT_CONFIG_PATH);
    if let Some(dir) = config_path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(&config_path, config).map_err(io(&config_path))?;
    let conffiles = root.join("DEBIAN/conffiles");
    let mut listed = std::fs::read_to_string(&conffiles).unwrap_or_default();
    let entry = format!("/{AGENT_CONFIG_PATH}");
    if !listed.lines().any(|l| l.trim() == entry) {
        if !listed.is_empty() && !listed.ends_with('\n') {
            listed.push('\n');
        }
        listed.push_str(&entry);
        listed.push('\n');
        std::fs::write(&conffiles, listed).map_err(io(&conffiles))?;
    }
    let arch = dpkg_deb(&[
        "-f".as_ref(),
        agent_deb.as_os_str(),
        "Architecture".as_ref(),
    ])?;
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let out = out_dir.join(format!("tether-agent_{version}_{}.deb", arch.trim()));
    dpkg_deb(&[
        "--root-owner-group".as_ref(),
        "-b".as_ref(),
        root.as_os_str(),
        out.as_os_str(),
    ])?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_config_pins_this_relay() {
        let dir = tempfile::tempdir().unwrap();
        let text = agent_config(dir.path(), "Acme IT", "relay.acme.example:4433").unwrap();
        let fp = RelayIdentity::load_or_create(dir.path())
            .unwrap()
            .fingerprint();
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(parsed["relay"].as_str(), Some("relay.acme.example:4433"));
        assert_eq!(parsed["relay_cert_sha256"].as_str(), Some(fp.as_str()));
        assert_eq!(parsed["allowed_orgs"][0].as_str(), Some("Acme IT"));
        for bad in [" ", "Acme\u{202e}TI", "Acme\nIT"] {
            assert!(matches!(
                agent_config(dir.path(), bad, "x:1"),
                Err(DeployError::BadOrg)
            ));
        }
        assert!(matches!(
            agent_config(dir.path(), "Acme", ""),
            Err(DeployError::NoAddress)
        ));
    }

    #[test]
    fn org_names_make_valid_version_suffixes() {
        assert_eq!(version_suffix("Acme IT"), "acme.it");
        assert_eq!(version_suffix("Müller & Söhne GmbH"), "m.ller.s.hne.gmbh");
        assert_eq!(version_suffix("!!!"), "org");
    }

    #[test]
    fn relay_file_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:4433\"\npublic_address = \"r.example:4433\"\n",
        )
        .unwrap();
        let f = RelayFile::load(&path, true).unwrap();
        assert_eq!(f.public_address.as_deref(), Some("r.example:4433"));
        std::fs::write(&path, "listn = \"0.0.0.0:4433\"\n").unwrap();
        assert!(matches!(
            RelayFile::load(&path, true),
            Err(DeployError::Parse { .. })
        ));
        assert_eq!(
            RelayFile::load(&dir.path().join("none.toml"), false).unwrap(),
            RelayFile::default()
        );
        assert!(RelayFile::load(&dir.path().join("none.toml"), true).is_err());
    }
}
