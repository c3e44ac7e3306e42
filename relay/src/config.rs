//! Relay configuration: where to listen, where to keep state, and the limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default UDP port.
pub const DEFAULT_PORT: u16 = 4433;

/// How long a session code stays claimable.
pub const CODE_TTL: Duration = Duration::from_secs(10 * 60);

/// Connections the relay serves at once; beyond this, new ones are refused with a reason.
pub const MAX_CONNECTIONS: usize = 10_000;

/// Open (unclaimed) slots one agent connection may hold.
pub const MAX_OPEN_SLOTS_PER_AGENT: usize = 4;

/// Claims one technician may make per minute, successful or not.
pub const CLAIMS_PER_TECHNICIAN_PER_MINUTE: usize = 20;

/// Claims one source address may make per minute, before any token is checked.
pub const CLAIMS_PER_SOURCE_PER_MINUTE: usize = 60;

/// Time the agent has to accept or decline a claim.
pub const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a client has to send its `Hello` after opening a stream.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest session before the relay ends it.
pub const MAX_SESSION: Duration = Duration::from_secs(8 * 60 * 60);

/// Called with every chunk of bytes the relay copies between agent and console. For tests that prove
/// the relay only ever sees ciphertext; `None` in the product.
pub type SpliceTap = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Called with every datagram the relay forwards for a session's end-to-end connection, which it
/// may change: for tests that play a relay tampering with packets. `None` in the product.
pub type ForwardTamper = Arc<dyn Fn(&mut [u8]) + Send + Sync>;

/// Limits, all overridable (tests shorten the code lifetime, for example).
#[derive(Debug, Clone)]
pub struct Limits {
    /// See [`CODE_TTL`].
    pub code_ttl: Duration,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`MAX_OPEN_SLOTS_PER_AGENT`].
    pub max_open_slots_per_agent: usize,
    /// See [`CLAIMS_PER_TECHNICIAN_PER_MINUTE`].
    pub claims_per_technician_per_minute: usize,
    /// See [`CLAIMS_PER_SOURCE_PER_MINUTE`].
    pub claims_per_source_per_minute: usize,
    /// See [`HELLO_TIMEOUT`].
    pub hello_timeout: Duration,
    /// See [`MAX_SESSION`].
    pub max_session: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            code_ttl: CODE_TTL,
            max_connections: MAX_CONNECTIONS,
            max_open_slots_per_agent: MAX_OPEN_SLOTS_PER_AGENT,
            claims_per_technician_per_minute: CLAIMS_PER_TECHNICIAN_PER_MINUTE,
            claims_per_source_per_minute: CLAIMS_PER_SOURCE_PER_MINUTE,
            hello_timeout: HELLO_TIMEOUT,
            max_session: MAX_SESSION,
        }
    }
}

/// Everything [`crate::Relay::spawn`] needs.
#[derive(Clone)]
pub struct RelayConfig {
    /// UDP address to bind; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Holds the certificate, technicians and the audit log. Created if missing.
    pub data_dir: PathBuf,
    /// Limits.
    pub limits: Limits,
    /// See [`SpliceTap`].
    pub splice_tap: Option<SpliceTap>,
    /// See [`ForwardTamper`].
    pub forward_tamper: Option<ForwardTamper>,
    /// Serve Prometheus metrics on this TCP address ([`crate::metrics`]); `None` (the default): off.
    pub metrics: Option<SocketAddr>,
    /// A PostgreSQL connection string (`postgres://USER:PASSWORD@HOST:PORT/DB`) for the stores
    /// and the audit chain, shared with the other nodes of a cluster; `None` (the default):
    /// SQLite and `audit.jsonl` in the data directory. Never printed (it may hold a password).
    pub database: Option<String>,
    /// Serve as the cluster node in this directory (`tether-relay cluster join --out`): its
    /// certificate, key, name and public address; `None`: a self-made certificate in `data_dir`.
    pub node_dir: Option<PathBuf>,
    /// The cluster CA's certificate: the node certificate must be issued by it (checked at start,
    /// before anything is written). Needs `node_dir`.
    pub cluster_ca: Option<PathBuf>,
    /// `host:port` consoles are redirected to when this node holds their code (with `database`);
    /// default: the node file's address, else the bound address.
    pub public_addr: Option<String>,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("limits", &self.limits)
            .field("splice_tap", &self.splice_tap.is_some())
            .field("forward_tamper", &self.forward_tamper.is_some())
            .field("metrics", &self.metrics)
            .field("database", &self.database.as_ref().map(|_| "(set)"))
            .field("node_dir", &self.node_dir)
            .field("cluster_ca", &self.cluster_ca)
            .field("public_addr", &self.public_addr)
            .finish()
    }
}

impl RelayConfig {
    /// A config with default limits.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        RelayConfig {
            listen,
            data_dir,
            limits: Limits::default(),
            splice_tap: None,
            forward_tamper: None,
            metrics: None,
            database: None,
            node_dir: None,
            cluster_ca: None,
            public_addr: None,
        }
    }
}

/// The default data directory: `$TETHER_RELAY_DATA`, else `$XDG_DATA_HOME/tether-relay`, else
/// `~/.local/share/tether-relay`, else `./tether-relay-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TETHER_RELAY_DATA") {
        return d.into();
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("tether-relay");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".local/share/tether-relay");
    }
    PathBuf::from("tether-relay-data")
}

/// Parses `30m`, `12h`, `7d`, `90s` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'd')) => (&s[..i], 86_400),
        Some((i, 'h')) => (&s[..i], 3_600),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 's')) => (&s[..i], 1),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30m, 12h or 7d"))?;
    if n == 0 {
        return Err("a duration must be more than zero".into());
    }
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}
